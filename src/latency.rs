//! The latency monitor (Redis's LATENCY): for each kind of event that took at least
//! `latency-monitor-threshold` milliseconds, the latest and the worst, and a history of up to
//! [`LATENCY_HISTORY_MAX`] samples (one per second: two events in the same second keep the
//! longer one). Off while the threshold is 0, as in Redis.
//!
//! Events tierkv records, the stalls an operator looks for: `command` (a command's execution),
//! `expire-cycle` (one tick of active expiry) and `wal-fsync` (the WAL's fsync, sampled every
//! 100 ms from its last latency). Checkpoints run beside the clients and stall nothing, so they
//! are not events (INFO `rdb_last_bgsave_time_sec` has their duration).
//!
//! Invariant: with the monitor off, or below the threshold, recording is one relaxed load and
//! a comparison; only an event worth keeping takes the mutex.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const LATENCY_HISTORY_MAX: usize = 160;

/// One event's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventHistory {
    /// `(unix seconds, milliseconds)`, oldest first.
    pub samples: VecDeque<(u64, u64)>,
    /// The worst ever recorded (since the last reset).
    pub max_ms: u64,
}

/// The monitor. Shared by the whole server.
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    threshold_ms: AtomicU64,
    events: Mutex<BTreeMap<&'static str, EventHistory>>,
}

impl LatencyMonitor {
    /// Sets `latency-monitor-threshold` (ms; 0 turns the monitor off).
    pub fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.store(ms, Ordering::Relaxed);
    }

    /// Records that `event` took `took`, if the monitor is on and it reaches the threshold.
    pub fn record(&self, event: &'static str, took: Duration) {
        let threshold = self.threshold_ms.load(Ordering::Relaxed);
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        if threshold == 0 || ms < threshold {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut events = self.events.lock();
        let history = events.entry(event).or_default();
        history.max_ms = history.max_ms.max(ms);
        match history.samples.back_mut() {
            Some((at, worst)) if *at == now => *worst = (*worst).max(ms),
            _ => {
                if history.samples.len() >= LATENCY_HISTORY_MAX {
                    history.samples.pop_front();
                }
                history.samples.push_back((now, ms));
            }
        }
    }

    /// Every event with its latest sample and its worst: `(event, at, latest ms, max ms)`.
    pub fn latest(&self) -> Vec<(&'static str, u64, u64, u64)> {
        self.events
            .lock()
            .iter()
            .filter_map(|(event, h)| h.samples.back().map(|&(at, ms)| (*event, at, ms, h.max_ms)))
            .collect()
    }

    /// One event's samples, oldest first (empty for an event never recorded).
    pub fn history(&self, event: &str) -> Vec<(u64, u64)> {
        self.events
            .lock()
            .get(event)
            .map(|h| h.samples.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Forgets the named events (all of them if none is named); how many were forgotten.
    pub fn reset(&self, names: &[String]) -> usize {
        let mut events = self.events.lock();
        if names.is_empty() {
            let n = events.len();
            events.clear();
            return n;
        }
        names
            .iter()
            .filter(|name| events.remove(name.as_str()).is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_above_the_threshold_one_sample_a_second() {
        let m = LatencyMonitor::default();
        m.record("command", Duration::from_secs(5));
        assert!(m.latest().is_empty(), "off while the threshold is 0");
        m.set_threshold_ms(100);
        m.record("command", Duration::from_millis(99));
        assert!(m.latest().is_empty(), "below the threshold");
        m.record("command", Duration::from_millis(150));
        m.record("command", Duration::from_millis(300));
        m.record("command", Duration::from_millis(200));
        let latest = m.latest();
        assert_eq!(latest.len(), 1);
        let (event, _, last, max) = latest[0];
        // One second's events merge into one sample holding the worst.
        assert_eq!((event, max), ("command", 300));
        assert!(last >= 200);
        assert!(m.history("command").len() <= 2);
        m.record("checkpoint", Duration::from_millis(120));
        assert_eq!(m.reset(&["checkpoint".to_owned(), "nope".to_owned()]), 1);
        assert_eq!(m.reset(&[]), 1);
        assert!(m.latest().is_empty());
    }
}
