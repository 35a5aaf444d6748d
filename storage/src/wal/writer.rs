//! [`WalWriter`]: group commit in front of one writer thread.
//!
//! Invariant (load-bearing): an LSN is reported durable (`durable_lsn`, `wait_durable`,
//! subscribers) only after the write — and under `FsyncPolicy::Always` the fdatasync — covering
//! it returned `Ok`. After any failed write or fsync the log is *poisoned*: appends fail, waiters
//! for LSNs not yet durable fail, and nothing more is acknowledged until `try_recover` has
//! rewritten and synced every record after the last durable position.
//!
//! Durability path of one batch (numbered so a reviewer can check the order):
//! 1. `append` assigns the LSN and encodes the frame into the bounded batch (or waits for room).
//! 2. The writer thread swaps the batch out, so appends continue during the I/O.
//! 3. If the segment is full: fdatasync it, create the next one, write and fdatasync its header,
//!    fsync the directory (so the new name survives a power cut).
//! 4. One `write_at` of the whole batch at the end of the segment; if it reaches past the
//!    zeros written ahead (`WalConfig::preallocate_bytes`), a write of the next run of zeros
//!    after it, so that most fdatasyncs flush data blocks only, not a file-size change.
//! 5. fdatasync per [`FsyncPolicy`].
//! 6. Publish: advance `durable_lsn`, wake waiters, call subscribers.

use super::reader::{list_segments, SegmentInfo, WalEnd, WalReader};
use super::record::{encode_frame, encode_segment_header, segment_file_name, SEGMENT_HEADER_LEN};
use super::tail::TailAction;
use super::{CommitLog, FsyncPolicy};
use crate::error::{StorageError, WalOp};
use crate::io::{Disk, FileHandle};
use crate::limits::{
    WAL_EVERYSEC_INTERVAL_MS, WAL_GROUP_COMMIT_BYTES_MAX_DEFAULT,
    WAL_GROUP_COMMIT_RECORDS_MAX_DEFAULT, WAL_PREALLOCATE_BYTES_DEFAULT,
    WAL_RECORD_PAYLOAD_BYTES_MAX, WAL_RECOVERY_PROBE_BYTES, WAL_SEGMENT_BYTES_DEFAULT,
    WAL_SUBSCRIBERS_MAX, WAL_UNSYNCED_BYTES_MAX,
};
use crate::Lsn;
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Settings of a [`WalWriter`].
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// Size after which a new segment starts.
    pub segment_bytes: u64,
    /// Bound of the group-commit batch in bytes (appends wait beyond it).
    pub group_commit_bytes_max: usize,
    /// Bound of the group-commit batch in records.
    pub group_commit_records_max: usize,
    /// Zeros written ahead of the write position, one run at a time (0: the file grows with
    /// each batch). The reader takes an all-zero frame header followed by zeros only as the
    /// end of the log.
    pub preallocate_bytes: u64,
    /// The first LSN must be at least this (the redo LSN of the installed checkpoint), so LSNs
    /// keep rising even when every segment was removed.
    pub min_next_lsn: Lsn,
    /// Accept a log that ends below its synced mark (records that were fsynced are missing)
    /// and go on without them, as Redis's `aof-load-truncated yes`; otherwise `resume`
    /// refuses it (see `wal::synced`).
    pub load_truncated: bool,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            fsync: FsyncPolicy::Always,
            segment_bytes: WAL_SEGMENT_BYTES_DEFAULT,
            group_commit_bytes_max: WAL_GROUP_COMMIT_BYTES_MAX_DEFAULT,
            group_commit_records_max: WAL_GROUP_COMMIT_RECORDS_MAX_DEFAULT,
            preallocate_bytes: WAL_PREALLOCATE_BYTES_DEFAULT,
            min_next_lsn: Lsn(1),
            load_truncated: false,
        }
    }
}

/// Counters for INFO persistence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalStats {
    /// The LSN the next append gets.
    pub next_lsn: Lsn,
    /// Highest acknowledged LSN.
    pub durable_lsn: Lsn,
    /// Bytes written to segments since open (frames and headers).
    pub bytes_written: u64,
    /// Bytes in the segment files now.
    pub log_bytes: u64,
    /// Segment files now.
    pub segments: u64,
    /// Batches written.
    pub batches: u64,
    /// fdatasync calls that succeeded.
    pub fsyncs: u64,
    /// Duration of the last successful fdatasync, in microseconds.
    pub last_fsync_micros: u64,
    /// Failed writes (including segment creation).
    pub write_errors: u64,
    /// Failed fsyncs.
    pub fsync_errors: u64,
    /// True while the log refuses writes.
    pub poisoned: bool,
}

#[derive(Default)]
struct Counters {
    bytes_written: AtomicU64,
    log_bytes: AtomicU64,
    segments: AtomicU64,
    batches: AtomicU64,
    fsyncs: AtomicU64,
    last_fsync_micros: AtomicU64,
    write_errors: AtomicU64,
    fsync_errors: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Poison {
    op: WalOp,
    kind: io::ErrorKind,
}

struct State {
    batch: Vec<u8>,
    batch_records: usize,
    batch_first_lsn: u64,
    batch_last_lsn: u64,
    next_lsn: u64,
    written_lsn: u64,
    synced_lsn: u64,
    durable_lsn: u64,
    last_sync: Instant,
    poison: Option<Poison>,
    shutdown: bool,
    exited: bool,
    /// The writer thread is in a short timed wait ([`WRITER_LINGER`]) and will look at the
    /// batch by itself: an append into an empty batch need not wake it.
    lingering: bool,
    /// `next_lsn` when the writer last went to wait: whether appends came since.
    seen_lsn: u64,
    /// One-shot `on_durable` callbacks by LSN. Bounded by the appends in flight: an entry is
    /// only added for an assigned, not yet durable LSN, and leaves when it becomes durable or
    /// the log fails.
    pending: BTreeMap<u64, Vec<DurableCallback>>,
}

/// A one-shot completion for [`WalWriter::on_durable`].
pub type DurableCallback = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// State only the I/O path touches; held by the writer thread during a batch's I/O and by
/// `try_recover` / `truncate_before`.
struct WriterIo {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    file: FileHandle,
    path: PathBuf,
    written_offset: u64,
    synced_offset: u64,
    /// The file holds zeros from `written_offset` up to here (step 4).
    zeroed_to: u64,
    /// Frames between `synced_offset` and the end of the last attempted write, kept so that
    /// `try_recover` can rewrite them. Bounded by `WAL_UNSYNCED_BYTES_MAX` plus one batch.
    retained: Vec<u8>,
    written_lsn: u64,
    synced_lsn: u64,
    /// LSN of the last frame in `retained` (what is synced after a successful recovery).
    retained_last_lsn: u64,
    segments: VecDeque<SegmentInfo>,
    /// The batch buffer swapped in by [`WalWriter::write_inline`] (its capacity is kept).
    inline_spare: Vec<u8>,
    /// `SYNCED`, rewritten after every fsync (`wal::synced`); `None` if it could not be made.
    mark: Option<FileHandle>,
}

type Subscriber = Box<dyn Fn(Lsn) + Send + Sync>;

struct Shared {
    config: WalConfig,
    state: Mutex<State>,
    /// The writer thread waits here for work.
    work: Condvar,
    /// Appenders wait here for room in the batch.
    space: Condvar,
    /// `wait_durable` callers wait here.
    durable: Condvar,
    io: Mutex<WriterIo>,
    subscribers: RwLock<Vec<Subscriber>>,
    counters: Counters,
    /// The batch is past three quarters of its bound: appends may soon wait for room (see
    /// [`WalWriter::backlogged`]). Set by `append`, cleared when a batch is taken.
    backlogged: AtomicBool,
}

/// The write-ahead log writer. `Send + Sync`; share it behind an `Arc`.
pub struct WalWriter {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Progress {
    written_lsn: u64,
    synced_lsn: u64,
}

type IoFailure = (WalOp, io::Error);

impl WriterIo {
    fn sync(&mut self, counters: &Counters) -> Result<(), IoFailure> {
        let t = Instant::now();
        if let Err(e) = self.file.sync_data() {
            counters.fsync_errors.fetch_add(1, Ordering::Relaxed);
            return Err((WalOp::Sync, e));
        }
        if crate::buggify!() {
            std::thread::sleep(Duration::from_millis(2)); // a slow fsync
        }
        counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        counters.last_fsync_micros.store(micros, Ordering::Relaxed);
        self.synced_offset = self.written_offset;
        self.synced_lsn = self.written_lsn;
        self.release_retained();
        self.write_mark();
        Ok(())
    }

    /// Empties `retained` after a sync, giving back what a record larger than its bound grew
    /// it to (a 256 MB SET kept 256 MB here for the life of the process).
    fn release_retained(&mut self) {
        self.retained.clear();
        if self.retained.capacity() > WAL_UNSYNCED_BYTES_MAX {
            self.retained.shrink_to(WAL_UNSYNCED_BYTES_MAX);
        }
    }

    /// Records `synced_lsn` in `SYNCED`. Best effort, never synced (see `wal::synced`: a
    /// stale mark only checks less); 20 bytes over the same block never need new space.
    fn write_mark(&self) {
        if let Some(mark) = &self.mark {
            let _ = mark.write_at(&super::synced::encode(Lsn(self.synced_lsn)), 0);
        }
    }

    fn rotate(&mut self, first_lsn: u64, counters: &Counters) -> Result<(), IoFailure> {
        if self.synced_offset < self.written_offset {
            self.sync(counters)?;
        }
        let path = self.dir.join(segment_file_name(Lsn(first_lsn)));
        let fail = |e| {
            counters.write_errors.fetch_add(1, Ordering::Relaxed);
            (WalOp::CreateSegment, e)
        };
        let file = self.disk.create(&path).map_err(fail)?;
        let header = encode_segment_header(Lsn(first_lsn));
        let made = file
            .write_at(&header, 0)
            .and_then(|()| file.sync_data())
            .and_then(|()| self.disk.sync_dir(&self.dir));
        if let Err(e) = made {
            // Best effort: a half-made segment after the live one must not outlive us; if it
            // does, the reader sees a torn header in the last segment and removes it.
            let _ = self.disk.remove(&path);
            return Err(fail(e));
        }
        counters
            .bytes_written
            .fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
        counters
            .log_bytes
            .fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
        counters.segments.fetch_add(1, Ordering::Relaxed);
        self.file = file;
        self.path = path.clone();
        self.written_offset = SEGMENT_HEADER_LEN as u64;
        self.synced_offset = self.written_offset;
        self.zeroed_to = self.written_offset;
        self.segments.push_back(SegmentInfo {
            path,
            first_lsn: Lsn(first_lsn),
        });
        Ok(())
    }

    fn write_batch(
        &mut self,
        batch: &[u8],
        first_lsn: u64,
        last_lsn: u64,
        config: &WalConfig,
        last_sync: Option<Instant>,
        counters: &Counters,
    ) -> Result<Progress, IoFailure> {
        let len = batch.len() as u64;
        if self.written_offset > SEGMENT_HEADER_LEN as u64
            && self.written_offset + len > config.segment_bytes
        {
            if let Err(e) = self.rotate(first_lsn, counters) {
                // The batch stays with the old segment: `recover` writes it there.
                self.retained.extend_from_slice(batch);
                self.retained_last_lsn = last_lsn;
                return Err(e);
            }
        }
        // Kept before writing: after a failed write the batch must still be rewritable.
        self.retained.extend_from_slice(batch);
        self.retained_last_lsn = last_lsn;
        let written = if crate::buggify!() && batch.len() > 1 {
            // Two writes instead of one: a crash between them tears the batch.
            let (a, b) = batch.split_at(batch.len() / 2);
            self.file
                .write_at(a, self.written_offset)
                .and_then(|()| self.file.write_at(b, self.written_offset + a.len() as u64))
        } else {
            self.file.write_at(batch, self.written_offset)
        };
        let end = self.written_offset + len;
        let file_len = self.written_offset.max(self.zeroed_to);
        let written = written.and_then(|()| self.zero_ahead(end, config));
        if let Err(e) = written {
            counters.write_errors.fetch_add(1, Ordering::Relaxed);
            return Err((WalOp::Write, e));
        }
        self.written_offset += len;
        self.written_lsn = last_lsn;
        counters.bytes_written.fetch_add(len, Ordering::Relaxed);
        let grown = end.max(self.zeroed_to).saturating_sub(file_len);
        counters.log_bytes.fetch_add(grown, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        // `None`: an inline write (`WalWriter::write_inline`), which never syncs.
        let Some(last_sync) = last_sync else {
            return Ok(Progress {
                written_lsn: self.written_lsn,
                synced_lsn: self.synced_lsn,
            });
        };
        let due = last_sync.elapsed() >= Duration::from_millis(WAL_EVERYSEC_INTERVAL_MS);
        let must_sync = match config.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::EverySec => due,
            FsyncPolicy::No => false,
        } || self.retained.len() >= WAL_UNSYNCED_BYTES_MAX;
        if must_sync {
            self.sync(counters)?;
        }
        Ok(Progress {
            written_lsn: self.written_lsn,
            synced_lsn: self.synced_lsn,
        })
    }

    /// Step 4's second half: once the log reaches `end` past the zeros written ahead, writes the
    /// next run of zeros (up to the segment size) after it. Zeros are never written over log
    /// bytes: the run starts at `end` or later.
    fn zero_ahead(&mut self, end: u64, config: &WalConfig) -> io::Result<()> {
        if config.preallocate_bytes == 0 || end < self.zeroed_to {
            return Ok(());
        }
        let to = (end + config.preallocate_bytes).min(config.segment_bytes.max(end));
        if to > end {
            let zeros = vec![0u8; usize::try_from(to - end).unwrap_or(0)];
            self.file.write_at(&zeros, end)?;
        }
        self.zeroed_to = to;
        Ok(())
    }

    /// Reopens the segment, cuts it back to the last synced position, rewrites everything
    /// after it, then writes [`WAL_RECOVERY_PROBE_BYTES`] of zeros past the end as a probe and
    /// syncs. The probe is what tells a disk that has room again from one still full: cutting
    /// the segment frees exactly the blocks the rewrite needs, so without it recovery
    /// "succeeded" on a full disk and the next write failed again (the WAL flipped between
    /// recovered and poisoned every few seconds, issue #13 item 6). On failure the probe's
    /// zeros are cut again and the log stays poisoned.
    fn recover(&mut self, counters: &Counters) -> Result<Progress, StorageError> {
        let at = |e| StorageError::io_at(&self.path, e);
        let file = self.disk.open(&self.path).map_err(at)?;
        file.truncate(self.synced_offset).map_err(at)?;
        if !self.retained.is_empty() {
            file.write_at(&self.retained, self.synced_offset)
                .map_err(at)?;
        }
        let end = self.synced_offset + self.retained.len() as u64;
        let probe = vec![0u8; WAL_RECOVERY_PROBE_BYTES];
        if let Err(e) = file.write_at(&probe, end).and_then(|()| file.sync_data()) {
            // Give the blocks back (best effort); zeros past the end read as the log's end.
            let _ = file.truncate(end);
            return Err(at(e));
        }
        counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.file = file;
        self.written_offset = end;
        self.synced_offset = self.written_offset;
        self.zeroed_to = end + WAL_RECOVERY_PROBE_BYTES as u64;
        if !self.retained.is_empty() {
            self.written_lsn = self.retained_last_lsn;
        }
        self.synced_lsn = self.written_lsn;
        self.release_retained();
        self.write_mark();
        Ok(Progress {
            written_lsn: self.written_lsn,
            synced_lsn: self.synced_lsn,
        })
    }
}

impl Shared {
    fn ack_lsn(&self, st: &State) -> u64 {
        match self.config.fsync {
            FsyncPolicy::Always => st.synced_lsn,
            FsyncPolicy::EverySec | FsyncPolicy::No => st.written_lsn,
        }
    }

    fn notify_subscribers(&self, lsn: u64) {
        for s in self.subscribers.read().iter() {
            s(Lsn(lsn));
        }
    }

    /// Step 6: publish progress or poison the log.
    fn publish(&self, result: Result<Progress, IoFailure>) {
        let mut st = self.state.lock();
        match result {
            Ok(p) => {
                st.written_lsn = st.written_lsn.max(p.written_lsn);
                if p.synced_lsn > st.synced_lsn {
                    st.synced_lsn = p.synced_lsn;
                    st.last_sync = Instant::now();
                }
                let ack = self.ack_lsn(&st);
                let advanced = ack > st.durable_lsn;
                st.durable_lsn = st.durable_lsn.max(ack);
                let done = take_through(&mut st.pending, ack);
                drop(st);
                if advanced {
                    self.durable.notify_all();
                    self.notify_subscribers(ack);
                }
                for cb in done {
                    cb(Ok(()));
                }
            }
            Err((op, e)) => {
                tracing::error!(%op, error = %e, "WAL poisoned; writes refused until the disk recovers");
                let poison = Poison { op, kind: e.kind() };
                st.poison = Some(poison);
                let durable = st.durable_lsn;
                let failed = std::mem::take(&mut st.pending);
                let err = || Shared::poisoned_error(&st, poison);
                let failed: Vec<_> = failed
                    .into_values()
                    .flatten()
                    .map(|cb| (cb, err()))
                    .collect();
                drop(st);
                self.wake_all();
                for (cb, e) in failed {
                    cb(Err(e));
                }
                // Unchanged LSN: lets async waiters wake and see the failure.
                self.notify_subscribers(durable);
            }
        }
    }

    fn wake_all(&self) {
        self.durable.notify_all();
        self.space.notify_all();
        self.work.notify_all();
    }

    fn poisoned_error(st: &State, p: Poison) -> StorageError {
        StorageError::WalPoisoned {
            op: p.op,
            kind: p.kind,
            durable_lsn: Lsn(st.durable_lsn),
        }
    }
}

/// Removes and returns every callback registered for an LSN ≤ `lsn`.
fn take_through(
    pending: &mut BTreeMap<u64, Vec<DurableCallback>>,
    lsn: u64,
) -> Vec<DurableCallback> {
    let rest = pending.split_off(&(lsn.saturating_add(1)));
    std::mem::replace(pending, rest)
        .into_values()
        .flatten()
        .collect()
}

/// How long the writer thread waits before looking at the batch again while appends keep
/// coming under `everysec` or `no` (then appends don't wake it; see `write_inline`).
const WRITER_LINGER: Duration = Duration::from_millis(2);

enum Job {
    Batch,
    Sync,
    Exit,
}

/// Marks the log failed if the writer thread unwinds, so no one waits forever.
struct ExitGuard<'a>(&'a Shared);

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        if std::thread::panicking() && st.poison.is_none() {
            st.poison = Some(Poison {
                op: WalOp::WriterThread,
                kind: io::ErrorKind::Other,
            });
        }
        st.exited = true;
        let orphans = std::mem::take(&mut st.pending);
        drop(st);
        self.0.wake_all();
        for cb in orphans.into_values().flatten() {
            cb(Err(StorageError::WalClosed));
        }
    }
}

/// Step 5 on its own: fsync what was written (EverySec timer, shutdown).
fn sync_now(shared: &Shared) -> Result<Progress, IoFailure> {
    let mut io = shared.io.lock();
    io.sync(&shared.counters).map(|()| Progress {
        written_lsn: io.written_lsn,
        synced_lsn: io.synced_lsn,
    })
}

/// Empties a written batch buffer for reuse, giving back what a record larger than the batch
/// bound grew it to: the buffers take turns as the batch, so a 256 MB SET otherwise left two
/// 256 MB buffers resident for the life of the process (issue #13 item 9).
fn recycle(buffer: &mut Vec<u8>, config: &WalConfig) {
    buffer.clear();
    if buffer.capacity() > config.group_commit_bytes_max {
        buffer.shrink_to(config.group_commit_bytes_max);
    }
}

fn writer_loop(shared: &Shared) {
    let _guard = ExitGuard(shared);
    let mut spare: Vec<u8> = Vec::new();
    let interval = Duration::from_millis(WAL_EVERYSEC_INTERVAL_MS);
    loop {
        let mut st = shared.state.lock();
        let job = loop {
            if st.poison.is_none() && !st.batch.is_empty() {
                break Job::Batch;
            }
            if st.shutdown {
                break Job::Exit;
            }
            let unsynced = st.written_lsn > st.synced_lsn;
            // While appends keep coming (and acknowledgements need no fsync), look again
            // after a short linger instead of being woken per batch: waiters mostly write
            // their batch themselves (`write_inline`), and this picks up what they leave.
            let active = shared.config.fsync != FsyncPolicy::Always && st.next_lsn != st.seen_lsn;
            st.seen_lsn = st.next_lsn;
            let due =
                (st.poison.is_none() && unsynced && shared.config.fsync == FsyncPolicy::EverySec)
                    .then(|| st.last_sync + interval);
            let now = Instant::now();
            if due.is_some_and(|due| now >= due) {
                break Job::Sync;
            }
            let wake = match (due, active) {
                (Some(due), true) => Some((due - now).min(WRITER_LINGER)),
                (Some(due), false) => Some(due - now),
                (None, true) => Some(WRITER_LINGER),
                (None, false) => None,
            };
            st.lingering = active;
            match wake {
                Some(timeout) => {
                    shared.work.wait_for(&mut st, timeout);
                }
                None => shared.work.wait(&mut st),
            }
            st.lingering = false;
        };
        match job {
            Job::Exit => {
                let sync_needed = st.poison.is_none() && st.written_lsn > st.synced_lsn;
                drop(st);
                if sync_needed {
                    shared.publish(sync_now(shared));
                }
                return;
            }
            Job::Sync => {
                drop(st);
                shared.publish(sync_now(shared));
            }
            Job::Batch => {
                // The I/O lock before the batch, as `write_inline` takes them: whoever swaps
                // a batch out writes it before anyone swaps the next (log order).
                drop(st);
                let mut io = shared.io.lock();
                let mut st = shared.state.lock();
                if st.batch.is_empty() || st.poison.is_some() {
                    continue;
                }
                std::mem::swap(&mut st.batch, &mut spare);
                let (first, last) = (st.batch_first_lsn, st.batch_last_lsn);
                st.batch_records = 0;
                shared.backlogged.store(false, Ordering::Relaxed);
                let last_sync = st.last_sync;
                drop(st);
                shared.space.notify_all();
                let r = io.write_batch(
                    &spare,
                    first,
                    last,
                    &shared.config,
                    Some(last_sync),
                    &shared.counters,
                );
                drop(io);
                recycle(&mut spare, &shared.config);
                shared.publish(r);
            }
        }
    }
}

impl WalWriter {
    /// Opens the log in `dir` (created if missing): reads it to its end, repairs a damaged tail
    /// (see `wal::tail`), and starts the writer thread. Fails on corruption before the tail.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        config: WalConfig,
    ) -> Result<(WalWriter, WalEnd), StorageError> {
        disk.create_dir_all(dir)
            .map_err(|e| StorageError::io_at(dir, e))?;
        let end = WalReader::open(Arc::clone(&disk), dir, Lsn(0))?.into_end()?;
        let writer = WalWriter::resume(disk, dir, &end, config)?;
        Ok((writer, end))
    }

    /// Starts the writer after a reader already went through the log (recovery reads it once):
    /// repairs the tail `end` reports, then appends after it.
    pub fn resume(
        disk: Arc<dyn Disk>,
        dir: &Path,
        end: &WalEnd,
        config: WalConfig,
    ) -> Result<WalWriter, StorageError> {
        let at = |p: &Path| {
            let p = p.to_path_buf();
            move |e| StorageError::io_at(p, e)
        };
        let mut last = end.last_segment.clone();
        // Records an fsync covered are never torn by a crash: a log that ends below the synced
        // mark lost durable ones (checked before anything is cut; records the checkpoint
        // covers, below `min_next_lsn`, are not needed).
        let ends_at = end.next_lsn.0.max(config.min_next_lsn.0).max(1) - 1;
        let synced = super::synced::read(disk.as_ref(), dir)
            .filter(|s| s.0 > ends_at && end.tail.state.action() != TailAction::Refuse);
        if let Some(synced) = synced {
            let missing = StorageError::WalSyncedRecordsMissing {
                dir: dir.to_path_buf(),
                ends_at: Lsn(ends_at),
                synced,
            };
            if !config.load_truncated {
                return Err(missing);
            }
            tracing::warn!(
                first_missing = ends_at + 1,
                last_missing = synced.0,
                records = synced.0 - ends_at,
                file = ?end.tail.file,
                offset = end.tail.offset,
                "{missing}; going on without them (wal-load-truncated yes)"
            );
        }
        match end.tail.state.action() {
            TailAction::Accept => {}
            TailAction::Truncate => {
                if let Some(seg) = &last {
                    tracing::warn!(file = %seg.path.display(), offset = end.valid_len,
                        reason = %end.tail.state, "cutting damaged WAL tail");
                    let f = disk.open(&seg.path).map_err(at(&seg.path))?;
                    f.truncate(end.valid_len).map_err(at(&seg.path))?;
                    f.sync_data().map_err(at(&seg.path))?;
                }
            }
            TailAction::RemoveSegment => {
                if let Some(seg) = last.take() {
                    tracing::warn!(file = %seg.path.display(), "removing WAL segment with torn header");
                    disk.remove(&seg.path).map_err(at(&seg.path))?;
                    disk.sync_dir(dir).map_err(at(dir))?;
                }
            }
            TailAction::Refuse => {
                return Err(StorageError::WalCorrupt {
                    file: end.tail.file.clone().unwrap_or_default(),
                    dir: dir.to_path_buf(),
                    offset: end.tail.offset,
                    reason: crate::error::Corruption::Unrecoverable(end.tail.state),
                })
            }
        }
        let mut segments: VecDeque<SegmentInfo> = list_segments(disk.as_ref(), dir)?.into();
        let mut next = end.next_lsn.0.max(1);
        if config.min_next_lsn.0 > next {
            // Every record on disk is older than the checkpoint: the segments are not needed,
            // and keeping them would leave an LSN gap before the new one.
            for seg in segments.drain(..) {
                disk.remove(&seg.path).map_err(at(&seg.path))?;
            }
            disk.sync_dir(dir).map_err(at(dir))?;
            next = config.min_next_lsn.0;
            last = None;
        }
        let counters = Counters::default();
        let reuse = last.filter(|_| end.valid_len < config.segment_bytes);
        let io = match reuse {
            Some(seg) => {
                let file = disk.open(&seg.path).map_err(at(&seg.path))?;
                // The reader ended the log where zeros (or the file) begin.
                let zeroed_to = file.len().map_err(at(&seg.path))?.max(end.valid_len);
                WriterIo {
                    disk: Arc::clone(&disk),
                    dir: dir.to_path_buf(),
                    file,
                    path: seg.path,
                    written_offset: end.valid_len,
                    synced_offset: end.valid_len,
                    zeroed_to,
                    retained: Vec::new(),
                    written_lsn: next - 1,
                    synced_lsn: next - 1,
                    retained_last_lsn: next - 1,
                    segments: segments.clone(),
                    inline_spare: Vec::new(),
                    mark: None,
                }
            }
            None => {
                // Placeholder handle replaced by `rotate`, which creates the real first segment.
                let path = dir.join(segment_file_name(Lsn(next)));
                let mut io = WriterIo {
                    disk: Arc::clone(&disk),
                    dir: dir.to_path_buf(),
                    file: Box::new(NoFile),
                    path,
                    written_offset: 0,
                    synced_offset: 0,
                    zeroed_to: 0,
                    retained: Vec::new(),
                    written_lsn: next - 1,
                    synced_lsn: next - 1,
                    retained_last_lsn: next - 1,
                    segments: segments.clone(),
                    inline_spare: Vec::new(),
                    mark: None,
                };
                io.rotate(next, &counters)
                    .map_err(|(_, e)| StorageError::io_at(dir, e))?;
                io
            }
        };
        let mut io = io;
        // The mark now names where this log ends (a log cut on purpose is not reported again).
        let mark_path = dir.join(super::synced::SYNCED_FILE);
        io.mark = disk.create(&mark_path).ok();
        io.write_mark();
        counters
            .segments
            .store(io.segments.len() as u64, Ordering::Relaxed);
        let mut log_bytes = 0;
        for seg in &io.segments {
            if let Ok(f) = disk.open_read(&seg.path) {
                log_bytes += f.len().unwrap_or(0);
            }
        }
        counters.log_bytes.store(log_bytes, Ordering::Relaxed);
        counters.bytes_written.store(0, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                batch: Vec::new(),
                batch_records: 0,
                batch_first_lsn: next,
                batch_last_lsn: next - 1,
                next_lsn: next,
                written_lsn: next - 1,
                synced_lsn: next - 1,
                durable_lsn: next - 1,
                last_sync: Instant::now(),
                poison: None,
                shutdown: false,
                exited: false,
                lingering: false,
                seen_lsn: next,
                pending: BTreeMap::new(),
            }),
            config,
            work: Condvar::new(),
            space: Condvar::new(),
            durable: Condvar::new(),
            io: Mutex::new(io),
            subscribers: RwLock::new(Vec::new()),
            counters,
            backlogged: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("tierkv-wal".into())
            .spawn(move || writer_loop(&thread_shared))
            .map_err(StorageError::Io)?;
        Ok(WalWriter {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Step 1: queues `payload` as the next record and returns its LSN. Only enqueues: call
    /// [`WalWriter::wait_durable`] (or `on_durable`, or subscribe) before acknowledging. Blocks
    /// while the group-commit batch is full (backpressure). Fails while the log is poisoned or
    /// closed; on error nothing was enqueued and no LSN was used.
    pub fn append(&self, payload: &[u8]) -> Result<Lsn, StorageError> {
        if payload.len() > WAL_RECORD_PAYLOAD_BYTES_MAX {
            return Err(StorageError::RecordTooLarge {
                len: payload.len(),
                max: WAL_RECORD_PAYLOAD_BYTES_MAX,
            });
        }
        let frame_len = super::record::RECORD_HEADER_LEN + payload.len();
        let cfg = &self.shared.config;
        let mut st = self.shared.state.lock();
        loop {
            if let Some(p) = st.poison {
                return Err(Shared::poisoned_error(&st, p));
            }
            if st.shutdown {
                return Err(StorageError::WalClosed);
            }
            let fits = st.batch.is_empty()
                || (st.batch.len() + frame_len <= cfg.group_commit_bytes_max
                    && st.batch_records < cfg.group_commit_records_max);
            if fits {
                break;
            }
            self.shared.space.wait(&mut st);
        }
        let lsn = st.next_lsn;
        st.next_lsn += 1;
        let was_empty = st.batch.is_empty();
        if was_empty {
            st.batch_first_lsn = lsn;
        }
        encode_frame(&mut st.batch, Lsn(lsn), payload);
        st.batch_records += 1;
        st.batch_last_lsn = lsn;
        if st.batch.len() >= cfg.group_commit_bytes_max / 4 * 3
            || st.batch_records >= cfg.group_commit_records_max / 4 * 3
        {
            self.shared.backlogged.store(true, Ordering::Relaxed);
        }
        let wake = was_empty && !st.lingering;
        drop(st);
        if wake {
            self.shared.work.notify_one();
        }
        Ok(Lsn(lsn))
    }

    /// Whether the group-commit batch is past three quarters of its bound, so an append may
    /// soon wait for room, blocking its thread (inside the engine's commit lock). A server
    /// checks it before a write and waits on the connection instead, where it blocks nothing
    /// else (issue #11 item 2). A hint: one relaxed load.
    pub fn backlogged(&self) -> bool {
        self.shared.backlogged.load(Ordering::Relaxed)
    }

    /// Writes the queued batch on the calling thread, as Redis writes its AOF buffer from
    /// its event loop, when that is one `write` into the page cache: under `everysec` or `no`
    /// (acknowledgements wait for the write, not an fsync), with no segment to start, no zeros
    /// to write ahead and no fsync due. Otherwise, or while the writer thread is writing,
    /// wakes that thread instead. Either way the batch is on its way: call it before waiting
    /// for an LSN. It saves a hand-off to the writer thread and back per batch (on one core,
    /// two context switches: 23 % of the server's CPU under pipelined SETs).
    pub fn write_inline(&self) {
        let shared = &self.shared;
        let wake = || {
            shared.work.notify_one();
        };
        if shared.config.fsync == FsyncPolicy::Always {
            // Appends wake the writer already; its fdatasync never runs on a caller's thread.
            return;
        }
        let Some(mut io) = shared.io.try_lock() else {
            return wake();
        };
        let mut st = shared.state.lock();
        if st.poison.is_some() || st.batch.is_empty() {
            return;
        }
        let len = st.batch.len();
        let interval = Duration::from_millis(WAL_EVERYSEC_INTERVAL_MS);
        let sync_due =
            shared.config.fsync == FsyncPolicy::EverySec && st.last_sync.elapsed() >= interval;
        let cheap = io.written_offset > SEGMENT_HEADER_LEN as u64
            && io.written_offset + (len as u64) < io.zeroed_to
            && io.retained.len() + len < WAL_UNSYNCED_BYTES_MAX
            && !sync_due;
        if !cheap {
            drop(st);
            drop(io);
            return wake();
        }
        let mut batch = std::mem::take(&mut io.inline_spare);
        std::mem::swap(&mut st.batch, &mut batch);
        let (first, last) = (st.batch_first_lsn, st.batch_last_lsn);
        st.batch_records = 0;
        shared.backlogged.store(false, Ordering::Relaxed);
        drop(st);
        shared.space.notify_all();
        // No fsync here, even one that comes due meanwhile: the writer thread's timer does it.
        let r = io.write_batch(&batch, first, last, &shared.config, None, &shared.counters);
        recycle(&mut batch, &shared.config);
        io.inline_spare = batch;
        drop(io);
        shared.publish(r);
    }

    /// Blocks until `lsn` is durable (per the policy). Fails if the log is poisoned before
    /// that, or closed.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<(), StorageError> {
        self.write_inline();
        let mut st = self.shared.state.lock();
        loop {
            if st.durable_lsn >= lsn.0 {
                return Ok(());
            }
            if lsn.0 >= st.next_lsn {
                return Err(StorageError::LsnNotAssigned {
                    lsn,
                    next: Lsn(st.next_lsn),
                });
            }
            if let Some(p) = st.poison {
                return Err(Shared::poisoned_error(&st, p));
            }
            if st.exited {
                return Err(StorageError::WalClosed);
            }
            self.shared.durable.wait(&mut st);
        }
    }

    /// Calls `done` once `lsn` is durable (`Ok`) or can no longer become durable because the
    /// log failed or closed (`Err`). Runs at once on this thread if already decided, otherwise
    /// later on the writer thread: keep it short (e.g. complete a oneshot channel). For async
    /// callers that must not block.
    pub fn on_durable(&self, lsn: Lsn, done: DurableCallback) {
        let mut st = self.shared.state.lock();
        let now = if st.durable_lsn >= lsn.0 {
            Some(Ok(()))
        } else if lsn.0 >= st.next_lsn {
            Some(Err(StorageError::LsnNotAssigned {
                lsn,
                next: Lsn(st.next_lsn),
            }))
        } else if let Some(p) = st.poison {
            Some(Err(Shared::poisoned_error(&st, p)))
        } else if st.exited {
            Some(Err(StorageError::WalClosed))
        } else {
            st.pending.entry(lsn.0).or_default().push(done);
            // A lingering writer would find the batch within `WRITER_LINGER`; a waiter
            // should not wait that long (callers write inline first when they can).
            let wake = st.lingering && !st.batch.is_empty();
            drop(st);
            if wake {
                self.shared.work.notify_one();
            }
            return;
        };
        drop(st);
        if let Some(r) = now {
            done(r);
        }
    }

    /// Highest LSN acknowledged as durable.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn(self.shared.state.lock().durable_lsn)
    }

    /// Registers `f`, called from the writer thread (or from the thread running `try_recover`)
    /// with the new durable LSN whenever it advances, and with the unchanged one when the log
    /// becomes poisoned, so an async waiter wakes and checks [`WalWriter::failure`]. Keep it
    /// short: it runs on the commit path.
    pub fn subscribe(&self, f: Box<dyn Fn(Lsn) + Send + Sync>) -> Result<(), StorageError> {
        let mut subs = self.shared.subscribers.write();
        if subs.len() >= WAL_SUBSCRIBERS_MAX {
            return Err(StorageError::TooManySubscribers {
                max: WAL_SUBSCRIBERS_MAX,
            });
        }
        subs.push(f);
        Ok(())
    }

    /// The error appends get now, if the log is poisoned or closed.
    pub fn failure(&self) -> Option<StorageError> {
        let st = self.shared.state.lock();
        match st.poison {
            Some(p) => Some(Shared::poisoned_error(&st, p)),
            None if st.shutdown => Some(StorageError::WalClosed),
            None => None,
        }
    }

    /// After a poisoning failure: reopens the segment, truncates it to the last synced
    /// position, rewrites and fsyncs every record after it (including those whose waiters got
    /// an error: their outcome was reported as unknown) and resumes writing. `Ok` if the log
    /// is healthy afterwards; on error it stays poisoned and this can be retried.
    pub fn try_recover(&self) -> Result<(), StorageError> {
        let mut io = self.shared.io.lock();
        if self.shared.state.lock().poison.is_none() {
            return Ok(());
        }
        let p = io.recover(&self.shared.counters)?;
        let mut st = self.shared.state.lock();
        st.poison = None;
        st.written_lsn = st.written_lsn.max(p.written_lsn);
        st.synced_lsn = st.synced_lsn.max(p.synced_lsn);
        st.last_sync = Instant::now();
        let ack = self.shared.ack_lsn(&st);
        st.durable_lsn = st.durable_lsn.max(ack);
        let durable = st.durable_lsn;
        let done = take_through(&mut st.pending, durable);
        drop(st);
        drop(io);
        for cb in done {
            cb(Ok(()));
        }
        tracing::info!(durable_lsn = durable, "WAL recovered; accepting writes");
        self.shared.wake_all();
        self.shared.notify_subscribers(durable);
        Ok(())
    }

    /// Starts a new segment now if the current one holds records, so that a checkpoint taken
    /// next can remove it (`truncate_before` never removes the segment being written). Step 3
    /// out of turn: syncs the current segment first. A failure poisons the log like any failed
    /// write or fsync. Returns whether a segment was started.
    pub fn rotate_segment(&self) -> Result<bool, StorageError> {
        let mut io = self.shared.io.lock();
        if self.shared.state.lock().poison.is_some()
            || io.written_offset <= SEGMENT_HEADER_LEN as u64
        {
            return Ok(false);
        }
        let next = io.written_lsn + 1;
        let rotated = io.rotate(next, &self.shared.counters);
        let progress = rotated.map(|()| Progress {
            written_lsn: io.written_lsn,
            synced_lsn: io.synced_lsn,
        });
        drop(io);
        let failed = progress
            .as_ref()
            .err()
            .map(|(op, e)| StorageError::WalPoisoned {
                op: *op,
                kind: e.kind(),
                durable_lsn: self.durable_lsn(),
            });
        self.shared.publish(progress);
        failed.map_or(Ok(true), Err)
    }

    /// Removes every segment whose records all have LSN < `lsn` (call after a checkpoint with
    /// redo LSN `lsn` is installed). The segment being written is never removed. Returns how
    /// many were removed.
    ///
    /// The covered segments leave the list under the I/O lock, but their files are unlinked
    /// and the directory synced after it is released: the writer needs that lock for every
    /// batch, and deleting a gigabyte of segments (freeing its extents, a journal commit for
    /// the directory) took long enough to stall every commit behind it (half a second on the
    /// 2-core VM, docs/BENCHMARKS.md).
    pub fn truncate_before(&self, lsn: Lsn) -> Result<usize, StorageError> {
        let (disk, dir, covered) = {
            let mut io = self.shared.io.lock();
            let mut covered = Vec::new();
            while io.segments.len() >= 2 && io.segments.get(1).is_some_and(|s| s.first_lsn <= lsn) {
                let Some(seg) = io.segments.pop_front() else {
                    break;
                };
                covered.push(seg.path);
            }
            (Arc::clone(&io.disk), io.dir.clone(), covered)
        };
        let mut removed = 0;
        for path in &covered {
            let size = disk.open_read(path).and_then(|f| f.len()).unwrap_or(0);
            disk.remove(path)
                .map_err(|e| StorageError::io_at(path, e))?;
            self.shared.counters.log_bytes.fetch_sub(
                size.min(self.shared.counters.log_bytes.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            self.shared
                .counters
                .segments
                .fetch_sub(1, Ordering::Relaxed);
            removed += 1;
        }
        if removed > 0 {
            disk.sync_dir(&dir)
                .map_err(|e| StorageError::io_at(&dir, e))?;
        }
        Ok(removed)
    }

    /// Counters for INFO persistence.
    pub fn stats(&self) -> WalStats {
        let c = &self.shared.counters;
        let st = self.shared.state.lock();
        WalStats {
            next_lsn: Lsn(st.next_lsn),
            durable_lsn: Lsn(st.durable_lsn),
            poisoned: st.poison.is_some(),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            log_bytes: c.log_bytes.load(Ordering::Relaxed),
            segments: c.segments.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            last_fsync_micros: c.last_fsync_micros.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            fsync_errors: c.fsync_errors.load(Ordering::Relaxed),
        }
    }

    /// Writes out and syncs everything queued, then stops the writer thread. Later appends
    /// fail with `WalClosed`. Returns the failure if the log is poisoned.
    pub fn close(&self) -> Result<(), StorageError> {
        self.shared.state.lock().shutdown = true;
        self.shared.wake_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
        let st = self.shared.state.lock();
        match st.poison {
            Some(p) => Err(Shared::poisoned_error(&st, p)),
            None => Ok(()),
        }
    }
}

impl Drop for WalWriter {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl CommitLog for WalWriter {
    fn append(&self, payload: &[u8]) -> Result<Lsn, StorageError> {
        WalWriter::append(self, payload)
    }
    fn wait_durable(&self, lsn: Lsn) -> Result<(), StorageError> {
        WalWriter::wait_durable(self, lsn)
    }
    fn durable_lsn(&self) -> Lsn {
        WalWriter::durable_lsn(self)
    }
    fn on_durable(&self, lsn: Lsn, done: DurableCallback) {
        WalWriter::on_durable(self, lsn, done)
    }
}

/// Stands in for a segment until `rotate` creates the first real one.
struct NoFile;

impl crate::io::DiskFile for NoFile {
    fn read_at(&self, _buf: &mut [u8], _offset: u64) -> io::Result<usize> {
        Ok(0)
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::ErrorKind::NotFound.into())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(0)
    }
    fn truncate(&self, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_batch_buffer_keeps_at_most_the_batch_bound() {
        let config = WalConfig {
            group_commit_bytes_max: 4096,
            ..WalConfig::default()
        };
        let mut big = vec![7u8; 1 << 20];
        recycle(&mut big, &config);
        assert!(
            big.is_empty() && big.capacity() <= 4096,
            "{}",
            big.capacity()
        );
        let mut small = Vec::with_capacity(1000);
        small.push(1u8);
        recycle(&mut small, &config);
        assert!(
            small.is_empty() && small.capacity() >= 1000,
            "kept when within the bound"
        );
    }
}
