//! [`Durability`]: an [`Engine`] bound to a data directory — recovery on open, the write-ahead
//! log as the commit sink, and checkpoints.
//!
//! Data directory layout:
//! ```text
//! DIR/MANIFEST               names the installed checkpoint (storage::checkpoint::manifest)
//! DIR/ckpt-<ts>.tkc          the checkpoint: one CheckpointEntry per live key (FORMATS.md)
//! DIR/wal/wal-<lsn>.log      WAL segments: one LogRecord per committed transaction
//! ```
//!
//! Invariants:
//! - Recovery = the MANIFEST's checkpoint + every WAL record from its `redo_lsn` on whose
//!   commit timestamp is above `snapshot_ts`. A checkpoint reads its start timestamp and the
//!   WAL's next LSN together under the commit lock, and the commit path appends to the WAL and
//!   publishes inside that same lock, so every record at or after `redo_lsn` carries a
//!   timestamp above `snapshot_ts` and every record before it one at or below.
//! - Checkpoints are **fuzzy** when a WAL exists: each batch of keys is read at the newest
//!   commit of the moment, so the scan pins no old version (an exact snapshot kept one old
//!   value per key overwritten ahead of its cursor: RSS spikes at every checkpoint under
//!   churn). A key's value in the file is its state at some commit in `[snapshot_ts, end]`.
//!   Replaying every record after `snapshot_ts` over it ends in the exact state, because
//!   every record is an after-image (`Put`, `Delete`, a `SetExpiry` that keeps the current
//!   value), a delete or TTL change of an absent key installs nothing, and FLUSHDB/FLUSHALL
//!   remove whatever a key holds; per key, the last record replayed wins. Two conditions
//!   make that hold, both checked on the calling thread after the scan:
//!   1. No SWAPDB committed during the scan (a swap replayed over databases read on both
//!      sides of it would move the wrong contents): otherwise the checkpoint is written
//!      again from one exact snapshot (`write_exact`).
//!   2. Every record up to the scan's end (`consistent_lsn`, in the MANIFEST) is fsynced
//!      before the MANIFEST names the file, whatever `appendfsync` says, so a power cut cannot
//!      keep a value the scan read and lose an older commit. Recovery refuses a WAL that ends
//!      below it (`TxnError::CheckpointUnreplayed`); a point-in-time replay cannot stop
//!      before it.
//! - Without a WAL, checkpoints are *exact*: one MVCC snapshot streamed while writers go on.
//!   Nothing stops the world; GC waits for the scan only key by key: it publishes its
//!   cursor, and GC frees what the keys behind it held for the checkpoint
//!   (`checkpoint_scan.rs`).
//! - WAL segments wholly below a checkpoint's `redo_lsn` are removed only after that checkpoint
//!   and its MANIFEST are durable.
//! - A WAL append error means the record was not appended: the commit aborts and the client gets
//!   the error; once [`Durability::try_recover_log`] succeeds writes resume.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use storage::checkpoint::{CheckpointReader, CheckpointWriter};
use storage::wal::{TailReport, WalConfig, WalReader};
use storage::{Lsn, StorageError};

use crate::engine::{CommitSink, Engine, EngineConfig};
use crate::error::TxnError;
use crate::index::KeyIndex;
use crate::limits::DATABASES;
use crate::log_record::{DecodeError, LogRecord};
use crate::memory::KeyAccess;
use crate::timestamp::TxnId;
use crate::{DbIndex, Isolation};

pub use storage::io::{Disk, FileDisk};
pub use storage::wal::{FsyncPolicy, WalStats, WalWriter};

/// Name of the WAL directory inside the data directory.
pub const WAL_DIR: &str = "wal";
/// Keys read from the snapshot per scan call while checkpointing (bounds the memory a
/// checkpoint holds besides the one block the writer buffers).
const CHECKPOINT_SCAN_BATCH: usize = 1024;
/// Keys per scan batch with the SSD tier attached: each may be a disk read made while the
/// batch's snapshot holds the tier's frames back.
const CHECKPOINT_SCAN_BATCH_COLD: usize = 128;

/// How long a fuzzy checkpoint's scan may run at the lowest priority before it finishes at
/// normal priority: it pins no memory, but the WAL segments it will let go of keep growing
/// (under the issue #9 churn a scan at normal priority takes about 5 s).
const FUZZY_SCAN_IDLE_MAX: Duration = Duration::from_secs(5);

/// How to open a durable engine.
#[derive(Clone)]
pub struct DurabilityConfig {
    /// The data directory.
    pub dir: PathBuf,
    /// The file system (a `FileDisk`, or a `SimDisk` in simulations).
    pub disk: Arc<dyn Disk>,
    /// Whether to keep a write-ahead log (Redis's `appendonly`). Without one, only checkpoints
    /// persist anything.
    pub wal: bool,
    /// When the WAL fsyncs.
    pub fsync: FsyncPolicy,
    /// Size after which a new WAL segment starts.
    pub wal_segment_bytes: u64,
    /// Start over a WAL that lost fsynced records (ends below its synced mark), as Redis's
    /// `aof-load-truncated yes`; otherwise recovery refuses it.
    pub wal_load_truncated: bool,
    /// The engine's settings; its `sink` is replaced by the WAL.
    pub engine: EngineConfig,
}

impl std::fmt::Debug for DurabilityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurabilityConfig")
            .field("dir", &self.dir)
            .field("wal", &self.wal)
            .field("fsync", &self.fsync)
            .finish()
    }
}

/// What recovery found.
#[derive(Debug, Clone)]
pub struct RecoveryReport {
    /// Snapshot timestamp of the loaded checkpoint (0 when there was none).
    pub checkpoint_ts: u64,
    /// Keys loaded from the checkpoint.
    pub checkpoint_keys: u64,
    /// WAL records replayed (those after the checkpoint).
    pub wal_records: u64,
    /// WAL records skipped because the checkpoint already held them.
    pub wal_records_skipped: u64,
    /// How the WAL ended (a torn tail is reported here and was cut off).
    pub tail: Option<TailReport>,
    /// Wall time of the whole recovery.
    pub elapsed: Duration,
}

/// How a checkpoint's scan thread is scheduled: the server runs it at the lowest priority, so
/// it uses the cycles connections leave. A starved exact scan holds its snapshot, and every
/// version written meanwhile, for as long as it runs; so once the memory snapshots pin passes
/// `snapshot-max-pinned-memory` or an eighth of the dataset, the scan is put back at normal
/// priority to finish. A fuzzy scan pins nothing, but the WAL it covers keeps growing, so it
/// is put back after 5 s (`FUZZY_SCAN_IDLE_MAX`). That is how checkpoints are bounded (they are
/// never aborted, see `snapshot_limits.rs`).
pub trait ScanPriority: Sync {
    /// Called first, on the scan thread.
    fn lower(&self);
    /// Called at most once, on the scan thread, when pinned memory passes the cap.
    fn restore(&self);
    /// Called on the scan thread before a batch read under a snapshot of its own (every
    /// batch of a fuzzy scan; an exact scan's with the SSD tier), until [`Self::end_batch`]:
    /// what others wait for (GC's watermark, the SSD tier's frames, compaction's old places)
    /// waits for that snapshot, and at the lowest priority the thread would wait for a core
    /// mid-batch, for seconds on a saturated machine: priority inversion. Raise it for the
    /// batch.
    fn begin_batch(&self) {}
    /// Called after such a batch: back to the lowest priority.
    fn end_batch(&self) {}
    /// Called on the scan thread after each batch is written, holding nothing (tests commit
    /// here to interleave writes with the scan deterministically).
    fn between_batches(&self) {}
}

/// Whether a checkpoint's snapshot pins enough that its scan should stop yielding to
/// connections: more than `snapshot-max-pinned-memory`, or more than an eighth of the dataset
/// (index nodes and live values), whichever is less, so a large dataset under heavy writes
/// does not carry a quarter-gigabyte of old versions for the whole of a slow scan.
fn pins_too_much(inner: &crate::engine::Inner) -> bool {
    let cap = inner.long_snapshots.limits().max_pinned_bytes;
    let memory = inner.memory.stats(&inner.pages, &inner.compactor);
    let dataset = memory.index_bytes + memory.value_bytes;
    let cap = if cap == 0 { u64::MAX } else { cap };
    inner.pinned_bytes() > cap.min(dataset / 8)
}

/// A checkpoint claimed by [`Durability::claim_checkpoint`], to run on another thread.
#[derive(Debug)]
pub struct CheckpointClaim {
    durability: Arc<Durability>,
    ran: bool,
}

impl CheckpointClaim {
    /// Runs the claimed checkpoint, as [`Durability::checkpoint_with_scan_thread`].
    pub fn run(mut self, prepare_scan: &dyn ScanPriority) -> Result<CheckpointReport, TxnError> {
        self.ran = true;
        self.durability.run_claimed(Some(prepare_scan))
    }
}

impl Drop for CheckpointClaim {
    fn drop(&mut self) {
        if !self.ran {
            self.durability.in_progress.store(false, Ordering::Release);
        }
    }
}

/// What one checkpoint did.
#[derive(Debug, Clone)]
pub struct CheckpointReport {
    /// The snapshot it holds.
    pub snapshot_ts: u64,
    /// Replay starts here after loading it.
    pub redo_lsn: Lsn,
    /// Keys written.
    pub keys: u64,
    /// Size of the installed file.
    pub bytes: u64,
    /// WAL segments removed because the checkpoint covers them.
    pub wal_segments_removed: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Nothing was committed since the installed checkpoint, so none was written: rewriting
    /// the file the MANIFEST names under the same name is the one unsafe way to "refresh" it.
    pub unchanged: bool,
    /// Read while commits went on, exact once the WAL is replayed over it (see the module
    /// invariants); `false` for one MVCC snapshot.
    pub fuzzy: bool,
}

impl CheckpointReport {
    /// A checkpoint just installed (`wal_segments_removed` is filled in by the caller, which
    /// removes them).
    fn installed(
        (snapshot_ts, redo_lsn): (u64, Lsn),
        keys: u64,
        info: &storage::checkpoint::CheckpointInfo,
        started: Instant,
        fuzzy: bool,
    ) -> CheckpointReport {
        CheckpointReport {
            snapshot_ts,
            redo_lsn,
            keys,
            bytes: info.manifest.checkpoint_len,
            wal_segments_removed: 0,
            elapsed: started.elapsed(),
            unchanged: false,
            fuzzy,
        }
    }
}

/// Persistence counters for INFO.
#[derive(Debug, Clone, Default)]
pub struct PersistenceStats {
    /// A checkpoint is being written now.
    pub checkpoint_in_progress: bool,
    /// Unix time (s) of the last successful checkpoint, or of startup.
    pub last_checkpoint_unix_s: u64,
    /// Whether the last checkpoint attempt succeeded.
    pub last_checkpoint_ok: bool,
    /// Duration of the last checkpoint (ms), if any ran.
    pub last_checkpoint_ms: Option<u64>,
    /// Checkpoints completed since start.
    pub checkpoints: u64,
    /// WAL records appended since the last checkpoint (Redis's `rdb_changes_since_last_save`).
    pub changes_since_checkpoint: u64,
    /// The WAL's counters, when a WAL is kept.
    pub wal: Option<WalStats>,
    /// The WAL's failure, if it is poisoned.
    pub wal_error: Option<String>,
}

/// The WAL seen as the engine's commit sink. Set once recovery has replayed the old log, so
/// replay itself is never re-logged.
struct WalSink {
    wal: OnceLock<Arc<WalWriter>>,
}

impl CommitSink for WalSink {
    fn append(&self, record: &[u8]) -> Result<Lsn, TxnError> {
        match self.wal.get() {
            Some(wal) => wal.append(record).map_err(TxnError::Sink),
            None => Err(TxnError::Sink(StorageError::WalClosed)),
        }
    }
}

/// An engine bound to a data directory.
pub struct Durability {
    engine: Engine,
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    wal: Option<Arc<WalWriter>>,
    /// One checkpoint at a time.
    checkpoint_lock: Mutex<()>,
    in_progress: AtomicBool,
    last_checkpoint_unix_s: AtomicU64,
    last_checkpoint_ok: AtomicBool,
    last_checkpoint_ms: AtomicU64,
    checkpoints: AtomicU64,
    /// `next_lsn` of the WAL when the last checkpoint started.
    checkpoint_lsn: AtomicU64,
    /// Snapshot timestamp of the installed checkpoint (0 = none yet).
    installed_ts: AtomicU64,
    /// What the recovery at open found (INFO reports it).
    recovery: RecoveryReport,
}

impl std::fmt::Debug for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durability")
            .field("dir", &self.dir)
            .field("wal", &self.wal.is_some())
            .finish()
    }
}

fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Durability {
    /// Opens (or creates) the data directory and recovers: loads the installed checkpoint,
    /// replays the WAL after it (cutting a torn tail, refusing corruption before the tail), then
    /// starts logging.
    pub fn open(config: DurabilityConfig) -> Result<(Durability, RecoveryReport), TxnError> {
        // Every line logged while recovering carries `recovery{dir=…}`.
        let _span = tracing::info_span!("recovery", dir = %config.dir.display()).entered();
        let started = Instant::now();
        let disk = config.disk;
        let dir = config.dir;
        disk.create_dir_all(&dir)
            .map_err(|e| StorageError::io_at(&dir, e))?;
        let sink = Arc::new(WalSink {
            wal: OnceLock::new(),
        });
        let mut engine_config = config.engine;
        engine_config.sink = if config.wal {
            Some(Arc::clone(&sink) as Arc<dyn CommitSink>)
        } else {
            None
        };
        let engine = Engine::new(engine_config);

        // 1. The checkpoint.
        let loaded = load_current_checkpoint(&engine, disk.as_ref(), &dir)?;
        let (checkpoint_ts, checkpoint_keys, redo_lsn) = (loaded.ts, loaded.keys, loaded.redo_lsn);

        // 2. The WAL tail.
        let mut wal_records = 0;
        let mut wal_records_skipped = 0;
        let mut tail = None;
        let mut wal = None;
        let wal_dir = dir.join(WAL_DIR);
        if config.wal {
            disk.create_dir_all(&wal_dir)
                .map_err(|e| StorageError::io_at(&wal_dir, e))?;
            let mut reader = WalReader::open(Arc::clone(&disk), &wal_dir, redo_lsn)?;
            let replayed = replay_wal(&engine, &mut reader, &wal_dir, checkpoint_ts, None)?;
            // A fuzzy checkpoint is exact only with the records it was installed with.
            loaded.check_replayed(replayed.last_lsn)?;
            wal_records = replayed.records;
            wal_records_skipped = replayed.skipped;
            let end = reader.into_end()?;
            if end.tail.state.action() != storage::wal::TailAction::Accept {
                tracing::warn!(
                    file = ?end.tail.file,
                    offset = end.tail.offset,
                    reason = %end.tail.state,
                    "WAL tail damaged by a crash; cutting it off"
                );
            }
            tail = Some(end.tail.clone());
            let writer = WalWriter::resume(
                Arc::clone(&disk),
                &wal_dir,
                &end,
                WalConfig {
                    fsync: config.fsync,
                    segment_bytes: config.wal_segment_bytes,
                    min_next_lsn: Lsn(redo_lsn.0.max(1)),
                    load_truncated: config.wal_load_truncated,
                    ..WalConfig::default()
                },
            )?;
            let writer = Arc::new(writer);
            // The sink is empty here (set exactly once, now), so this cannot fail.
            let _ = sink.wal.set(Arc::clone(&writer));
            wal = Some(writer);
        } else if loaded.consistent_lsn > loaded.redo_lsn {
            // Started without a WAL over a fuzzy checkpoint written with one: the records it
            // needs are in the WAL directory, read (never changed) up to the checkpoint's
            // consistent point, so the state is the one the checkpoint stands for.
            let mut reader = WalReader::open(Arc::clone(&disk), &wal_dir, redo_lsn)?;
            let until = Some(ReplayUntil::Lsn(Lsn(loaded.consistent_lsn.0 - 1)));
            let replayed = replay_wal(&engine, &mut reader, &wal_dir, checkpoint_ts, until)?;
            loaded.check_replayed(replayed.last_lsn)?;
            wal_records = replayed.records;
            wal_records_skipped = replayed.skipped;
        }
        let checkpoint_lsn = wal.as_ref().map_or(0, |w| w.stats().next_lsn.0);
        let report = RecoveryReport {
            checkpoint_ts,
            checkpoint_keys,
            wal_records,
            wal_records_skipped,
            tail,
            elapsed: started.elapsed(),
        };
        let durability = Durability {
            engine,
            disk,
            dir,
            wal,
            checkpoint_lock: Mutex::new(()),
            in_progress: AtomicBool::new(false),
            last_checkpoint_unix_s: AtomicU64::new(unix_now_s()),
            last_checkpoint_ok: AtomicBool::new(true),
            last_checkpoint_ms: AtomicU64::new(u64::MAX),
            checkpoints: AtomicU64::new(0),
            checkpoint_lsn: AtomicU64::new(checkpoint_lsn),
            installed_ts: AtomicU64::new(checkpoint_ts),
            recovery: report.clone(),
        };
        Ok((durability, report))
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What the recovery at open found.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The write-ahead log, when one is kept.
    pub fn wal(&self) -> Option<&Arc<WalWriter>> {
        self.wal.as_ref()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a checkpoint of the current snapshot and installs it, then removes the WAL
    /// segments it covers. Blocking (call it from a background thread for BGSAVE); readers and
    /// writers go on meanwhile. Fails with [`TxnError::CheckpointInProgress`] when one runs.
    pub fn checkpoint(&self) -> Result<CheckpointReport, TxnError> {
        self.checkpoint_with(None)
    }

    /// [`Self::checkpoint`], with the snapshot scan and the file's writes on a thread of their
    /// own that first calls `prepare_scan.lower()` (the server puts that thread in the lowest
    /// scheduling class there), and `prepare_scan.restore()` once if the memory snapshots pin
    /// passes `snapshot-max-pinned-memory` while it scans (see [`ScanPriority`]). Only that part may run at a low priority: it holds no lock
    /// anyone else waits for, where the steps before and after it (a new WAL segment, the
    /// snapshot taken under the commit lock, the WAL cut) hold locks that commits and the WAL
    /// writer need, and stay on the calling thread.
    pub fn checkpoint_with_scan_thread(
        &self,
        prepare_scan: &dyn ScanPriority,
    ) -> Result<CheckpointReport, TxnError> {
        self.checkpoint_with(Some(prepare_scan))
    }

    /// Claims the next checkpoint for a caller that will run it on another thread (BGSAVE): from
    /// now on `stats().checkpoint_in_progress` is true and every other checkpoint fails with
    /// [`TxnError::CheckpointInProgress`], so a second BGSAVE can be told so at once. `None` if
    /// one is claimed or running. Run it with [`CheckpointClaim::run`]; dropping the claim
    /// unused gives it back.
    pub fn claim_checkpoint(self: &Arc<Self>) -> Option<CheckpointClaim> {
        self.in_progress
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(CheckpointClaim {
            durability: Arc::clone(self),
            ran: false,
        })
    }

    fn checkpoint_with(
        &self,
        prepare_scan: Option<&dyn ScanPriority>,
    ) -> Result<CheckpointReport, TxnError> {
        if self
            .in_progress
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(TxnError::CheckpointInProgress);
        }
        self.run_claimed(prepare_scan)
    }

    /// Runs a checkpoint whose `in_progress` flag the caller set.
    fn run_claimed(
        &self,
        prepare_scan: Option<&dyn ScanPriority>,
    ) -> Result<CheckpointReport, TxnError> {
        let Some(one) = self.checkpoint_lock.try_lock() else {
            // Unreachable: the lock is held only by a thread that set `in_progress`, which it
            // clears only after unlocking. Kept so two checkpoints can never interleave.
            return Err(TxnError::CheckpointInProgress);
        };
        let started = Instant::now();
        let _span = tracing::info_span!("checkpoint").entered();
        let result = self.write_checkpoint(started, prepare_scan);
        drop(one);
        self.in_progress.store(false, Ordering::Release);
        self.last_checkpoint_ok
            .store(result.is_ok(), Ordering::Release);
        if let Ok(report) = &result {
            self.last_checkpoint_unix_s
                .store(unix_now_s(), Ordering::Release);
            self.last_checkpoint_ms
                .store(report.elapsed.as_millis() as u64, Ordering::Release);
            self.checkpoints.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                snapshot_ts = report.snapshot_ts,
                fuzzy = report.fuzzy,
                keys = report.keys,
                bytes = report.bytes,
                ms = report.elapsed.as_millis() as u64,
                "checkpoint installed"
            );
        }
        result
    }

    fn write_checkpoint(
        &self,
        started: Instant,
        prepare_scan: Option<&dyn ScanPriority>,
    ) -> Result<CheckpointReport, TxnError> {
        if let Some(wal) = &self.wal {
            // A fresh segment before the snapshot starts at or below the redo LSN, so the one
            // written so far is wholly covered and `truncate_before` removes it below.
            wal.rotate_segment().map_err(TxnError::Sink)?;
        }
        // Fuzzy when a WAL can make it exact; an exact snapshot without one, or when a
        // SWAPDB ran during the fuzzy scan (see the module invariants).
        let fuzzy = match &self.wal {
            Some(wal) => self.write_fuzzy(wal, started, prepare_scan)?,
            None => None,
        };
        let report = match fuzzy {
            Some(report) => report,
            None => {
                if let Some(wal) = &self.wal {
                    // Again, so the segment written during the fuzzy scan goes too.
                    wal.rotate_segment().map_err(TxnError::Sink)?;
                }
                self.write_exact(started, prepare_scan)?
            }
        };
        if report.unchanged {
            return Ok(report);
        }
        self.installed_ts
            .store(report.snapshot_ts, Ordering::Release);
        self.checkpoint_lsn
            .store(report.redo_lsn.0, Ordering::Release);
        let wal_segments_removed = match &self.wal {
            Some(wal) => wal.truncate_before(report.redo_lsn)?,
            None => 0,
        };
        Ok(CheckpointReport {
            wal_segments_removed,
            elapsed: started.elapsed(),
            ..report
        })
    }

    /// The timestamp and redo LSN a checkpoint starts from, read together under the commit
    /// lock (see the module invariant).
    fn start_point(&self) -> (u64, Lsn) {
        let _commit = self.engine.inner.commit_lock.lock();
        let ts = self.engine.inner.oracle.visible();
        let redo = self.wal.as_ref().map_or(Lsn(0), |w| w.stats().next_lsn);
        (ts, redo)
    }

    /// A report for a checkpoint not written because nothing changed since the installed one.
    fn unchanged(
        &self,
        snapshot_ts: u64,
        redo_lsn: Lsn,
        started: Instant,
    ) -> Option<CheckpointReport> {
        (snapshot_ts > 0 && snapshot_ts == self.installed_ts.load(Ordering::Acquire)).then(|| {
            CheckpointReport {
                snapshot_ts,
                redo_lsn,
                keys: 0,
                bytes: 0,
                wal_segments_removed: 0,
                elapsed: started.elapsed(),
                unchanged: true,
                fuzzy: false,
            }
        })
    }

    /// Writes a fuzzy checkpoint and installs it: each batch of keys is read at the newest
    /// commit then, so nothing is pinned for the scan; the WAL from the start point on, made
    /// durable through the scan's end before the MANIFEST names the file, turns it into an
    /// exact state at recovery. `None` (nothing installed) if a SWAPDB committed during the
    /// scan: replaying a swap over databases read on both sides of it would be wrong.
    fn write_fuzzy(
        &self,
        wal: &WalWriter,
        started: Instant,
        prepare_scan: Option<&dyn ScanPriority>,
    ) -> Result<Option<CheckpointReport>, TxnError> {
        let (snapshot_ts, redo_lsn) = self.start_point();
        if let Some(report) = self.unchanged(snapshot_ts, redo_lsn, started) {
            return Ok(Some(report));
        }
        let inner = &self.engine.inner;
        let (keys, mut writer) = self.on_scan_thread(prepare_scan, |priority| {
            write_scan(
                Source::Fuzzy(inner),
                Arc::clone(&self.disk),
                &self.dir,
                (snapshot_ts, redo_lsn),
                priority,
            )
        })?;
        // Back on the calling thread, as what follows takes the commit lock and the WAL's.
        // Every read is done: a SWAPDB after this check comes after all of them.
        if inner.checkpoint_scan.swapped_since(snapshot_ts) {
            tracing::info!(
                snapshot_ts,
                "a SWAPDB ran during the checkpoint's scan; writing an exact snapshot instead"
            );
            return Ok(None); // dropping the writer removes its temp file
        }
        // The consistent point, and every record up to it durable (fsynced, whatever the
        // policy) before the MANIFEST can name the file: otherwise a power cut could keep a
        // value the scan read and lose an older commit the WAL had not synced yet.
        let (end_ts, end_lsn) = self.start_point();
        if end_lsn > redo_lsn {
            wal.wait_durable(Lsn(end_lsn.0 - 1))
                .map_err(TxnError::Sink)?;
            // Step 3 of a rotation syncs what is written, whatever the policy.
            wal.rotate_segment().map_err(TxnError::Sink)?;
            if let Some(error) = wal.failure() {
                return Err(TxnError::Sink(error));
            }
        }
        writer.consistent_at(end_ts, end_lsn);
        let info = writer.finish()?;
        Ok(Some(CheckpointReport::installed(
            (snapshot_ts, redo_lsn),
            keys,
            &info,
            started,
            true,
        )))
    }

    /// Writes an exact checkpoint (one MVCC snapshot) and installs it.
    fn write_exact(
        &self,
        started: Instant,
        prepare_scan: Option<&dyn ScanPriority>,
    ) -> Result<CheckpointReport, TxnError> {
        // Snapshot and redo LSN together, under the commit lock (see the module invariant).
        let (mut tx, redo_lsn) = {
            let _commit = self.engine.inner.commit_lock.lock();
            // Tracked (INFO shows it), never aborted: see `snapshot_limits.rs`.
            let tx = self.engine.begin_checkpoint();
            let redo = self.wal.as_ref().map_or(Lsn(0), |w| w.stats().next_lsn);
            (tx, redo)
        };
        let snapshot_ts = tx.snapshot_ts().0;
        if let Some(report) = self.unchanged(snapshot_ts, redo_lsn, started) {
            tx.abort();
            return Ok(report);
        }
        let written = self.on_scan_thread(prepare_scan, |priority| {
            let (keys, writer) = write_scan(
                Source::Snapshot(&mut tx),
                Arc::clone(&self.disk),
                &self.dir,
                (snapshot_ts, redo_lsn),
                priority,
            )?;
            Ok((keys, writer.finish()?))
        });
        tx.abort();
        let (keys, info) = written?;
        Ok(CheckpointReport::installed(
            (snapshot_ts, redo_lsn),
            keys,
            &info,
            started,
            false,
        ))
    }

    /// Runs `scan` here, or on a thread of its own first lowered by `prepare_scan`.
    fn on_scan_thread<T: Send>(
        &self,
        prepare_scan: Option<&dyn ScanPriority>,
        scan: impl FnOnce(Option<&dyn ScanPriority>) -> Result<T, TxnError> + Send,
    ) -> Result<T, TxnError> {
        match prepare_scan {
            None => scan(None),
            Some(priority) => std::thread::scope(|scope| {
                std::thread::Builder::new()
                    .name("tierkv-ckpt-scan".into())
                    .spawn_scoped(scope, move || {
                        priority.lower();
                        scan(Some(priority))
                    })
                    .map_err(|_| TxnError::CheckpointThread)?
                    .join()
                    .unwrap_or(Err(TxnError::CheckpointThread))
            }),
        }
    }

    /// Retries a failed (poisoned) WAL: rewrites what was not yet durable and resumes appends.
    pub fn try_recover_log(&self) -> Result<(), TxnError> {
        match &self.wal {
            Some(wal) => wal.try_recover().map_err(TxnError::Sink),
            None => Ok(()),
        }
    }

    /// Blocks until everything appended so far is durable (shutdown), then closes the log.
    pub fn close(&self) -> Result<(), TxnError> {
        match &self.wal {
            Some(wal) => wal.close().map_err(TxnError::Sink),
            None => Ok(()),
        }
    }

    /// Counters for INFO persistence.
    pub fn stats(&self) -> PersistenceStats {
        let wal = self.wal.as_ref().map(|w| w.stats());
        let changes = wal.as_ref().map_or(0, |w| {
            w.next_lsn
                .0
                .saturating_sub(self.checkpoint_lsn.load(Ordering::Acquire))
        });
        let ms = self.last_checkpoint_ms.load(Ordering::Acquire);
        PersistenceStats {
            checkpoint_in_progress: self.in_progress.load(Ordering::Acquire),
            last_checkpoint_unix_s: self.last_checkpoint_unix_s.load(Ordering::Acquire),
            last_checkpoint_ok: self.last_checkpoint_ok.load(Ordering::Acquire),
            last_checkpoint_ms: (ms != u64::MAX).then_some(ms),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            changes_since_checkpoint: changes,
            wal_error: self
                .wal
                .as_ref()
                .and_then(|w| w.failure())
                .map(|e| e.to_string()),
            wal,
        }
    }
}

/// Where a checkpoint's scan reads.
enum Source<'a> {
    /// One MVCC snapshot, held for the whole scan (exact).
    Snapshot(&'a mut crate::Transaction),
    /// Each batch at the newest commit when it is read (fuzzy).
    Fuzzy(&'a Arc<crate::engine::Inner>),
}

impl Source<'_> {
    fn inner(&self) -> Arc<crate::engine::Inner> {
        match self {
            Source::Snapshot(tx) => Arc::clone(&tx.inner),
            Source::Fuzzy(inner) => Arc::clone(inner),
        }
    }
}

/// Streams every live key `source` reads into a new checkpoint in `dir` starting from
/// `(snapshot_ts, redo_lsn)`: the keys written and the writer, not yet finished (installed).
fn write_scan(
    mut source: Source<'_>,
    disk: Arc<dyn Disk>,
    dir: &Path,
    (snapshot_ts, redo_lsn): (u64, Lsn),
    mut priority: Option<&dyn ScanPriority>,
) -> Result<(u64, CheckpointWriter), TxnError> {
    let mut writer = CheckpointWriter::create(disk, dir, snapshot_ts, redo_lsn)?;
    let (hooks, scan_started) = (priority, Instant::now());
    let mut keys = 0u64;
    let mut buf = Vec::new();
    let inner = source.inner();
    // As Redis writes idle time or frequency into its RDB only under an LRU or LFU policy:
    // otherwise nothing ranks keys by their access words, and a loaded key starts fresh.
    let save_access = matches!(
        crate::memory::relief(inner.memory.config().policy),
        crate::memory::Relief::Evict(_, crate::memory::Rank::Lru | crate::memory::Rank::Lfu)
    );
    // An exact scan's snapshot: GC collects behind its cursor (see `checkpoint_scan.rs`);
    // withdrawn on return, before the caller releases the snapshot. A fuzzy scan pins
    // nothing beyond the batch it reads.
    let exact = matches!(source, Source::Snapshot(_));
    let progress = if exact {
        inner.checkpoint_scan.begin(snapshot_ts)
    } else {
        None
    };
    // With the SSD tier, a batch's reads may each wait for the disk while its snapshot holds
    // frames and old places back: smaller batches.
    let cold = crate::tier::attached(&inner);
    let batch_keys = if cold {
        CHECKPOINT_SCAN_BATCH_COLD
    } else {
        CHECKPOINT_SCAN_BATCH
    };
    for db in 0..DATABASES as DbIndex {
        let mut after: Option<Bytes> = None;
        loop {
            // A low-priority scan on a busy machine is slow. An exact one keeps the old
            // version of everything written meanwhile: past `pins_too_much`, it finishes at
            // normal priority instead (checkpoints are bounded this way, never aborted). A
            // fuzzy one pins nothing, but the WAL it will let go of keeps growing: past
            // `FUZZY_SCAN_IDLE_MAX`, the same.
            if let Some(lowered) = priority {
                let slow = if exact {
                    pins_too_much(&inner)
                } else {
                    scan_started.elapsed() > FUZZY_SCAN_IDLE_MAX
                };
                if slow {
                    lowered.restore();
                    priority = None;
                }
            }
            // A batch reads under a snapshot of its own; at the lowest priority a scan thread
            // preempted on a busy core holds it for seconds, and with it GC's watermark:
            // under churn, hundreds of megabytes of old versions (priority inversion). So a
            // fuzzy scan's batches, and an exact one's with the tier (whose frames and old
            // places wait too), run raised; an exact scan without the tier pins everything
            // for its whole run anyway.
            let ceiling = priority.filter(|_| cold || !exact);
            if let Some(raised) = ceiling {
                raised.begin_batch();
            }
            let batch = match &mut source {
                Source::Snapshot(tx) => {
                    // An ordinary snapshot for the batch's reads, which the old places of
                    // relocated values wait for (`checkpoint_scan.rs`); the long one only
                    // names what is read.
                    let reading = inner.snapshots.register(&inner.oracle);
                    let batch = tx.scan(db, after.as_deref(), None, batch_keys);
                    inner.snapshots.release(&reading);
                    batch
                }
                Source::Fuzzy(inner) => {
                    let id = TxnId(inner.next_txn_id.fetch_add(1, Ordering::Relaxed));
                    let mut tx =
                        crate::Transaction::new(Arc::clone(inner), id, Isolation::Snapshot);
                    tx.allow_cold_reads();
                    let batch = tx.scan(db, after.as_deref(), None, batch_keys);
                    tx.abort();
                    batch
                }
            };
            if let Some(raised) = ceiling {
                raised.end_batch();
            }
            let batch = batch?;
            let Some((last, _)) = batch.last() else { break };
            let last = last.clone();
            let access = if save_access {
                access_of(&inner, db, &batch)
            } else {
                Vec::new()
            };
            for (i, (key, entry)) in batch.iter().enumerate() {
                let access = access.get(i).copied().flatten();
                buf.clear();
                CheckpointEntry {
                    db,
                    key,
                    value: &entry.value,
                    expire_at_ms: entry.expire_at_ms,
                    access,
                }
                .encode_into(&mut buf);
                writer.add(&buf)?;
                keys += 1;
            }
            if let Some(hooks) = hooks {
                hooks.between_batches();
            }
            if batch.len() < batch_keys {
                break;
            }
            if let Some(progress) = &progress {
                progress.advance(db, Some(&last));
            }
            after = Some(last);
        }
        if let Some(progress) = &progress {
            progress.advance(db + 1, None);
        }
    }
    drop(progress);
    Ok((keys, writer))
}

/// What a checkpoint saves of each key's access in `batch` (keys ascending): idle time or
/// frequency as of now (access words are not versioned, so not as of the snapshot); `None`
/// for a key removed since. The nodes are found by one walk of the skip list over the batch's
/// range, which takes no lock: the checkpoint thread runs at the lowest priority, and a shard
/// lock held by it while it waits for a core would hold up commits.
fn access_of(
    inner: &crate::engine::Inner,
    db: DbIndex,
    batch: &[(Bytes, crate::Entry)],
) -> Vec<Option<KeyAccess>> {
    let mut access = vec![None; batch.len()];
    let (Ok(d), Some((first, _)), Some((last, _))) = (inner.db(db), batch.first(), batch.last())
    else {
        return access;
    };
    let tracking = inner.memory.tracking();
    let mut i = 0;
    d.index.for_each_in(
        Bound::Included(first.as_ref()),
        Bound::Included(last.as_ref()),
        &mut |node| {
            while batch
                .get(i)
                .is_some_and(|(key, _)| key.as_ref() < node.key())
            {
                i += 1;
            }
            if let Some(slot) = batch
                .get(i)
                .filter(|(key, _)| key.as_ref() == node.key())
                .and_then(|_| access.get_mut(i))
            {
                *slot = Some(tracking.report(node.access()));
                i += 1;
            }
            i < batch.len()
        },
    );
    access
}

/// Loads the checkpoint the MANIFEST of `dir` names, if any: (snapshot ts, keys, redo LSN).
/// The installed checkpoint as loaded.
#[derive(Debug, Clone, Copy, Default)]
struct Loaded {
    /// Its snapshot (start) timestamp; 0 for none.
    ts: u64,
    keys: u64,
    /// Replay from here.
    redo_lsn: Lsn,
    /// The state is exact once every record below this is replayed (= `redo_lsn` unless the
    /// checkpoint is fuzzy), at commit `consistent_ts`.
    consistent_lsn: Lsn,
    consistent_ts: u64,
}

impl Loaded {
    /// Fails unless the replay that read through `last_lsn` (`Lsn(0)`: nothing) reached the
    /// point where this checkpoint is exact.
    fn check_replayed(&self, last_lsn: Lsn) -> Result<(), TxnError> {
        if self.consistent_lsn > self.redo_lsn
            && last_lsn.0.saturating_add(1) < self.consistent_lsn.0
        {
            return Err(TxnError::CheckpointUnreplayed {
                wal_end: last_lsn.0,
                consistent_lsn: self.consistent_lsn.0,
            });
        }
        Ok(())
    }
}

/// Loads the checkpoint the MANIFEST of `dir` names, if any.
fn load_current_checkpoint(
    engine: &Engine,
    disk: &dyn Disk,
    dir: &Path,
) -> Result<Loaded, TxnError> {
    let Some((manifest, reader)) = CheckpointReader::open_current(disk, dir)? else {
        return Ok(Loaded::default());
    };
    let keys = crate::recovery::load_checkpoint(&engine.inner, reader, manifest.snapshot_ts)?;
    tracing::info!(
        checkpoint = %manifest.checkpoint,
        snapshot_ts = manifest.snapshot_ts,
        consistent_ts = manifest.consistent_ts,
        keys,
        "loaded checkpoint"
    );
    Ok(Loaded {
        ts: manifest.snapshot_ts,
        keys,
        redo_lsn: manifest.redo_lsn,
        consistent_lsn: manifest.consistent_lsn,
        consistent_ts: manifest.consistent_ts,
    })
}

/// Where a replay stops (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayUntil {
    /// The last record with this commit timestamp or an older one.
    CommitTs(u64),
    /// The record at this LSN.
    Lsn(Lsn),
}

#[derive(Debug, Default)]
struct Replayed {
    records: u64,
    skipped: u64,
    last_ts: u64,
    last_lsn: Lsn,
}

/// Applies the records of `reader` newer than the checkpoint, up to `until`, over the loader
/// threads of `recovery.rs`.
fn replay_wal(
    engine: &Engine,
    reader: &mut WalReader,
    wal_dir: &Path,
    checkpoint_ts: u64,
    until: Option<ReplayUntil>,
) -> Result<Replayed, TxnError> {
    let mut out = Replayed {
        last_ts: checkpoint_ts,
        ..Replayed::default()
    };
    crate::recovery::replay(&engine.inner, checkpoint_ts, |replay| {
        while let Some(rec) = reader.next_record()? {
            let record = LogRecord::decode(&rec.payload)
                .map_err(|error| corrupt_payload(wal_dir, &rec.file, rec.offset, error))?;
            let past = match until {
                Some(ReplayUntil::CommitTs(ts)) => record.commit_ts.0 > ts,
                Some(ReplayUntil::Lsn(lsn)) => rec.lsn > lsn,
                None => false,
            };
            if past {
                break;
            }
            out.last_lsn = rec.lsn;
            if record.commit_ts.0 <= checkpoint_ts {
                out.skipped += 1;
                continue;
            }
            let ts = record.commit_ts;
            if !replay.apply(ts, record.ops)? {
                break; // a loader failed: `replay` returns its error
            }
            out.records += 1;
            out.last_ts = ts.0;
        }
        Ok(())
    })?;
    Ok(out)
}

/// What [`replay_offline`] produced.
#[derive(Debug)]
pub struct OfflineReplay {
    /// The recovered engine (in memory, no log).
    pub engine: Engine,
    /// Snapshot timestamp of the checkpoint it started from (0 for none).
    pub checkpoint_ts: u64,
    /// Keys loaded from that checkpoint.
    pub checkpoint_keys: u64,
    /// WAL records applied.
    pub wal_records: u64,
    /// Commit timestamp of the newest applied change.
    pub last_commit_ts: u64,
    /// LSN of the last WAL record read (`Lsn(0)` if none).
    pub last_lsn: Lsn,
    /// How the WAL ended, when the replay reached its end.
    pub tail: Option<TailReport>,
}

/// Recovers `dir` into an in-memory engine without changing any file there (for `kvtool`):
/// the installed checkpoint, then the WAL records after it up to `until` (inclusive), stopping
/// at a damaged tail (reported in `tail`) and failing on corruption before it.
pub fn replay_offline(
    disk: Arc<dyn Disk>,
    dir: &Path,
    until: Option<ReplayUntil>,
    engine: EngineConfig,
) -> Result<OfflineReplay, TxnError> {
    let engine = Engine::new(EngineConfig {
        sink: None,
        ..engine
    });
    let loaded = load_current_checkpoint(&engine, disk.as_ref(), dir)?;
    let (checkpoint_ts, checkpoint_keys, redo_lsn) = (loaded.ts, loaded.keys, loaded.redo_lsn);
    // Stopping inside a fuzzy checkpoint's window would leave keys newer than the stop.
    let before = match until {
        Some(ReplayUntil::CommitTs(ts)) => ts < loaded.consistent_ts,
        Some(ReplayUntil::Lsn(lsn)) => lsn.0.saturating_add(1) < loaded.consistent_lsn.0,
        None => false,
    };
    if before {
        return Err(TxnError::ReplayBeforeCheckpoint {
            until: match until {
                Some(ReplayUntil::CommitTs(ts)) => format!("commit ts {ts}"),
                Some(ReplayUntil::Lsn(lsn)) => format!("LSN {}", lsn.0),
                None => String::new(),
            },
            consistent_ts: loaded.consistent_ts,
            last_lsn: loaded.consistent_lsn.0.saturating_sub(1),
        });
    }
    let wal_dir = dir.join(WAL_DIR);
    let mut replayed = Replayed {
        last_ts: checkpoint_ts,
        ..Replayed::default()
    };
    let mut tail = None;
    // `Disk::list` fails on a missing directory: then there is no WAL to replay.
    if disk.list(&wal_dir).is_ok() {
        let mut reader = WalReader::open(disk, &wal_dir, redo_lsn)?;
        replayed = replay_wal(&engine, &mut reader, &wal_dir, checkpoint_ts, until)?;
        tail = reader.end().map(|end| end.tail.clone());
    }
    loaded.check_replayed(replayed.last_lsn)?;
    Ok(OfflineReplay {
        engine,
        checkpoint_ts,
        checkpoint_keys,
        wal_records: replayed.records,
        last_commit_ts: replayed.last_ts,
        last_lsn: replayed.last_lsn,
        tail,
    })
}

/// Writes the engine's current state as the checkpoint of a new data directory `out` (created
/// if missing; must hold no MANIFEST yet). A server started on `out` continues from there, with
/// WAL numbering from `next_lsn`. Returns the number of keys written.
pub fn write_checkpoint_dir(
    engine: &Engine,
    disk: Arc<dyn Disk>,
    out: &Path,
    next_lsn: Lsn,
) -> Result<u64, TxnError> {
    disk.create_dir_all(out)
        .map_err(|e| StorageError::io_at(out, e))?;
    let mut tx = engine.begin(Isolation::Snapshot);
    let ts = tx.snapshot_ts().0;
    let written = write_scan(
        Source::Snapshot(&mut tx),
        disk,
        out,
        (ts, Lsn(next_lsn.0.max(1))),
        None,
    );
    tx.abort();
    let (keys, writer) = written?;
    writer.finish()?;
    Ok(keys)
}

fn corrupt_payload(wal_dir: &Path, file: &Path, offset: u64, error: DecodeError) -> TxnError {
    tracing::error!(file = %file.display(), offset, %error, "WAL record does not decode");
    TxnError::Storage(StorageError::WalCorrupt {
        file: file.to_path_buf(),
        dir: wal_dir.to_path_buf(),
        offset,
        reason: storage::error::Corruption::FooterMismatch(
            "record passes its checksum but its payload is not a tierkv log record",
        ),
    })
}

/// One key of a checkpoint: the opaque record txn hands to `CheckpointWriter::add`, in strictly
/// ascending (db, key) order (recovery refuses a file out of order).
///
/// Layout (little-endian; keep in sync with docs/FORMATS.md § "Record payload: one key"):
/// ```text
/// offset 0   u8   db index (< 16)
/// offset 1   u8   value kind (0 = string)
/// offset 2   u8   flags: bit 0 a deadline follows, bit 1 an idle time, bit 2 a frequency
/// [then      u64  deadline, ms since the Unix epoch]
/// [then      u32  idle seconds at the save (LRU policies)]
/// [then      u8   LFU counter at the save (LFU policies); at most one of bits 1 and 2]
/// then       u32  key length, key bytes, then the value bytes (the rest of the record)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointEntry<'a> {
    /// Database.
    pub db: DbIndex,
    /// Key.
    pub key: &'a [u8],
    /// Value.
    pub value: &'a [u8],
    /// Absolute deadline.
    pub expire_at_ms: Option<u64>,
    /// How recently or often the key was used, saved when the eviction policy ranks keys by
    /// it, relative to the save as Redis's RDB keeps it (idle seconds, or the LFU counter).
    pub access: Option<KeyAccess>,
}

/// Flag bit: a deadline follows.
const FLAG_DEADLINE: u8 = 1;
/// Flag bit: idle seconds follow.
const FLAG_IDLE: u8 = 2;
/// Flag bit: an LFU counter follows.
const FLAG_FREQUENCY: u8 = 4;

/// Why bytes are not a [`CheckpointEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad checkpoint entry: {}", self.reason())]
pub struct EntryError(&'static str);

impl EntryError {
    /// An entry whose (database, key) does not come after the one before it: a checkpoint
    /// lists each database's keys in ascending byte order, one database after another.
    pub(crate) const OUT_OF_ORDER: EntryError = EntryError("entries out of (database, key) order");

    /// What is wrong.
    pub fn reason(&self) -> &'static str {
        self.0
    }
}

const KIND_STRING: u8 = 0;

impl<'a> CheckpointEntry<'a> {
    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.db);
        out.push(KIND_STRING);
        let deadline = if self.expire_at_ms.is_some() {
            FLAG_DEADLINE
        } else {
            0
        };
        let access = match self.access {
            Some(KeyAccess::Idle { .. }) => FLAG_IDLE,
            Some(KeyAccess::Frequency { .. }) => FLAG_FREQUENCY,
            None => 0,
        };
        out.push(deadline | access);
        if let Some(at) = self.expire_at_ms {
            out.extend_from_slice(&at.to_le_bytes());
        }
        match self.access {
            Some(KeyAccess::Idle { ms }) => {
                let secs = u32::try_from(ms / 1000).unwrap_or(u32::MAX);
                out.extend_from_slice(&secs.to_le_bytes());
            }
            Some(KeyAccess::Frequency { counter }) => out.push(counter),
            None => {}
        }
        out.extend_from_slice(&(self.key.len() as u32).to_le_bytes());
        out.extend_from_slice(self.key);
        out.extend_from_slice(self.value);
    }

    /// Decodes an entry; never panics.
    pub fn decode(bytes: &'a [u8]) -> Result<CheckpointEntry<'a>, EntryError> {
        let (&db, rest) = bytes.split_first().ok_or(EntryError("empty"))?;
        if db as usize >= DATABASES {
            return Err(EntryError("database index out of range"));
        }
        let (&kind, rest) = rest.split_first().ok_or(EntryError("truncated kind"))?;
        if kind != KIND_STRING {
            return Err(EntryError("unknown value kind"));
        }
        let (&flags, rest) = rest.split_first().ok_or(EntryError("truncated flags"))?;
        if flags & !(FLAG_DEADLINE | FLAG_IDLE | FLAG_FREQUENCY) != 0 {
            return Err(EntryError("unknown flag bits"));
        }
        if flags & FLAG_IDLE != 0 && flags & FLAG_FREQUENCY != 0 {
            return Err(EntryError("both an idle time and a frequency"));
        }
        let (expire_at_ms, rest) = if flags & FLAG_DEADLINE != 0 {
            let (at, rest) = split_u64(rest).ok_or(EntryError("truncated deadline"))?;
            (Some(at), rest)
        } else {
            (None, rest)
        };
        let (access, rest) = if flags & FLAG_IDLE != 0 {
            let (secs, rest) = split_u32(rest).ok_or(EntryError("truncated idle time"))?;
            let ms = u64::from(secs) * 1000;
            (Some(KeyAccess::Idle { ms }), rest)
        } else if flags & FLAG_FREQUENCY != 0 {
            let (&counter, rest) = rest
                .split_first()
                .ok_or(EntryError("truncated frequency"))?;
            (Some(KeyAccess::Frequency { counter }), rest)
        } else {
            (None, rest)
        };
        let (len, rest) = split_u32(rest).ok_or(EntryError("truncated key length"))?;
        if len as usize > rest.len() {
            return Err(EntryError("key length past the end"));
        }
        let (key, value) = rest.split_at(len as usize);
        Ok(CheckpointEntry {
            db,
            key,
            value,
            expire_at_ms,
            access,
        })
    }
}

fn split_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = b.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*head), rest))
}

fn split_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = b.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn entry_round_trips(db in 0u8..16, key in proptest::collection::vec(any::<u8>(), 0..40),
                             value in proptest::collection::vec(any::<u8>(), 0..80),
                             at in proptest::option::of(any::<u64>()),
                             idle in proptest::option::of(any::<u32>()),
                             frequency in any::<u8>()) {
            let access = Some(idle.map_or(KeyAccess::Frequency { counter: frequency },
                |secs| KeyAccess::Idle { ms: u64::from(secs) * 1000 }))
                .filter(|_| frequency % 3 != 0);
            let e = CheckpointEntry { db, key: &key, value: &value, expire_at_ms: at, access };
            let mut buf = Vec::new();
            e.encode_into(&mut buf);
            prop_assert_eq!(CheckpointEntry::decode(&buf), Ok(e));
        }

        #[test]
        fn entry_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = CheckpointEntry::decode(&bytes);
        }
    }
}
