//! The slow log (Redis's SLOWLOG): the most recent commands that took at least
//! `slowlog-log-slower-than` microseconds to execute, at most `slowlog-max-len` of them.
//!
//! Invariant: a command that is not slow costs two relaxed atomic loads here, and no lock;
//! only a slow command takes the log's mutex. As in Redis the time is the command's execution,
//! not the wait for durability or the network.
//!
//! Difference from Redis: an entry keeps the command's name (lower case) and first argument
//! (its key, for most commands; 128 bytes at most, as Redis) and says how many more there were
//! (`... (N more arguments)`), not up to 32 arguments as sent: keeping them would mean copying
//! every command's arguments before it runs, on the chance that it turns out slow. The first
//! argument's leading bytes are copied to the stack instead, which costs no atomic operation.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

/// Longest argument an entry keeps, in bytes (Redis's `SLOWLOG_ENTRY_MAX_STRING`).
pub const SLOWLOG_ARG_BYTES_MAX: usize = 128;

/// A command's first argument as the slow log may need it: its leading
/// [`SLOWLOG_ARG_BYTES_MAX`] bytes copied into a fixed buffer, and its length. Cheaper than a
/// reference-counted clone on every command (no atomics; most keys are a few bytes).
pub struct FirstArg {
    bytes: [u8; SLOWLOG_ARG_BYTES_MAX],
    copied: usize,
    len: Option<usize>,
}

impl Default for FirstArg {
    fn default() -> Self {
        FirstArg {
            bytes: [0; SLOWLOG_ARG_BYTES_MAX],
            copied: 0,
            len: None,
        }
    }
}

impl FirstArg {
    /// Keeps `arg`'s leading bytes and length.
    pub fn keep(&mut self, arg: &[u8]) {
        let n = arg.len().min(SLOWLOG_ARG_BYTES_MAX);
        if let (Some(dst), Some(src)) = (self.bytes.get_mut(..n), arg.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.copied = n;
        self.len = Some(arg.len());
    }

    /// `(leading bytes, full length)`, if an argument was kept.
    pub fn get(&self) -> Option<(&[u8], usize)> {
        self.len
            .map(|len| (self.bytes.get(..self.copied).unwrap_or_default(), len))
    }
}

/// One slow command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowEntry {
    /// Unique, increasing from 0 since the start (RESET does not restart it, as in Redis).
    pub id: u64,
    /// When it ran, Unix seconds.
    pub unix_s: u64,
    /// How long it executed, microseconds.
    pub micros: u64,
    /// Name, first argument, and a note of how many more there were.
    pub args: Vec<Bytes>,
    /// The client's address.
    pub addr: String,
    /// The client's name (CLIENT SETNAME), or empty.
    pub name: String,
}

/// The log. Shared by every connection.
#[derive(Debug)]
pub struct SlowLog {
    /// Microseconds from which a command is logged; negative: never (Redis's semantics).
    threshold_us: AtomicI64,
    max_len: AtomicUsize,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<SlowEntry>>,
}

impl SlowLog {
    /// An empty log with Redis's defaults (10 000 µs, 128 entries).
    pub fn new() -> SlowLog {
        SlowLog {
            threshold_us: AtomicI64::new(10_000),
            max_len: AtomicUsize::new(128),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// Applies `slowlog-log-slower-than` and `slowlog-max-len`; a shorter log drops its oldest.
    pub fn configure(&self, threshold_us: i64, max_len: usize) {
        self.threshold_us.store(threshold_us, Ordering::Relaxed);
        self.max_len.store(max_len, Ordering::Relaxed);
        let mut entries = self.entries.lock();
        while entries.len() > max_len {
            entries.pop_back();
        }
    }

    /// Whether the log is on at all (so a command's first argument is worth keeping).
    pub fn enabled(&self) -> bool {
        self.threshold_us.load(Ordering::Relaxed) >= 0 && self.max_len.load(Ordering::Relaxed) > 0
    }

    /// Whether a command that executed for `took` is slow.
    pub fn is_slow(&self, took: Duration) -> bool {
        let threshold = self.threshold_us.load(Ordering::Relaxed);
        threshold >= 0 && i64::try_from(took.as_micros()).unwrap_or(i64::MAX) >= threshold
    }

    /// Logs a slow command: `name`, its `first` argument (leading bytes and full length, see
    /// [`FirstArg`]) and `argc` arguments in all (the name included).
    pub fn push(
        &self,
        name: &str,
        first: Option<(&[u8], usize)>,
        argc: usize,
        took: Duration,
        addr: String,
        client_name: String,
    ) {
        let max_len = self.max_len.load(Ordering::Relaxed);
        if max_len == 0 {
            return;
        }
        let mut args = vec![Bytes::copy_from_slice(name.as_bytes())];
        if let Some((head, len)) = first {
            args.push(truncated(head, len));
        }
        let more = argc.saturating_sub(args.len());
        if more > 0 {
            args.push(Bytes::from(format!("... ({more} more arguments)")));
        }
        let entry = SlowEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            micros: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            args,
            addr,
            name: client_name,
        };
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        while entries.len() > max_len {
            entries.pop_back();
        }
    }

    /// The newest `count` entries, newest first (`None`: all).
    pub fn get(&self, count: Option<usize>) -> Vec<SlowEntry> {
        let entries = self.entries.lock();
        let n = count.unwrap_or(entries.len()).min(entries.len());
        entries.iter().take(n).cloned().collect()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every entry.
    pub fn reset(&self) {
        self.entries.lock().clear();
    }
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog::new()
    }
}

/// An argument's leading bytes `head` (of `len` in all), with Redis's note of how many were
/// left out when it was longer than [`SLOWLOG_ARG_BYTES_MAX`].
fn truncated(head: &[u8], len: usize) -> Bytes {
    let mut out = head.to_vec();
    if len > head.len() {
        out.extend_from_slice(format!("... ({} more bytes)", len - head.len()).as_bytes());
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_within_its_length_and_follows_the_threshold() {
        let log = SlowLog::new();
        log.configure(1_000, 2);
        assert!(!log.is_slow(Duration::from_micros(999)));
        assert!(log.is_slow(Duration::from_micros(1_000)));
        let key = Bytes::from_static(b"k");
        for i in 0..3u64 {
            log.push(
                "get",
                Some((&key, 1)),
                2,
                Duration::from_micros(i),
                "a:1".into(),
                "".into(),
            );
        }
        let got = log.get(None);
        assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(got[0].args, vec![Bytes::from("get"), key.clone()]);
        log.configure(-1, 2);
        assert!(!log.is_slow(Duration::from_secs(10)) && !log.enabled());
        log.configure(0, 1);
        assert_eq!(log.len(), 1, "a shorter log drops its oldest");
        let mut first = FirstArg::default();
        first.keep(&[b'x'; 200]);
        log.push(
            "mset",
            first.get(),
            7,
            Duration::ZERO,
            "a:1".into(),
            "n".into(),
        );
        let e = &log.get(Some(1))[0];
        assert_eq!(e.args.len(), 3);
        assert!(e.args[1].ends_with(b"... (72 more bytes)"));
        assert_eq!(e.args[2], Bytes::from("... (5 more arguments)"));
        log.reset();
        assert!(log.is_empty());
    }
}
