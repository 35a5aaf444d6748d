//! The server's side of durability: opening the data directory from the config, letting
//! replies wait for the WAL's durable position, and the background checkpoint schedule
//! (Redis's `save` rules, plus a WAL-size trigger).
//!
//! Invariant: a reply to a write leaves the server only once its LSN is durable under the
//! configured `appendfsync` policy; if the WAL fails first, the connection is closed without
//! the reply (the client sees the same as a crash: outcome unknown), never an early `+OK`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use txn::durability::{Disk, FileDisk, FsyncPolicy, WalWriter};
use txn::{
    Durability, DurabilityConfig, EngineConfig, Lsn, RecoveryReport, StorageError, TxnError,
};

use crate::config::{AppendFsync, Config};
use crate::server::{unix_secs, Shared};

/// WAL segment size of the server's log.
pub const WAL_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// A checkpoint starts once the WAL holds this much past the last one, whatever `save` says,
/// so restarts stay fast and the log's disk use stays bounded.
pub const CHECKPOINT_WAL_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// How often the schedule is looked at.
pub const SCHEDULE_INTERVAL: Duration = Duration::from_secs(1);

/// The server's handle on persistence; `Default` is a purely in-memory server.
#[derive(Clone, Default)]
pub struct Persistence {
    /// The engine's data directory binding (recovery, WAL, checkpoints).
    pub durability: Option<Arc<Durability>>,
    /// What replies wait on: the WAL, when one is kept.
    pub waiter: Option<Arc<dyn DurableWaiter>>,
}

/// Completion of a wait for durability: `Ok` once the LSN is durable, or `Err` with the LSN up
/// to which everything is durable if it can no longer become durable (the log failed or
/// closed).
pub type DurableDone = Box<dyn FnOnce(Result<(), u64>) + Send>;

/// Where replies wait for durability: the WAL writer, or a gate a test moves by hand.
pub trait DurableWaiter: Send + Sync {
    /// Calls `done` once `lsn` is decided (at once if it already is).
    fn on_durable(&self, lsn: u64, done: DurableDone);
    /// Moves queued records towards durability on this thread when that is cheap (the WAL:
    /// one `write` into the page cache, [`WalWriter::write_inline`]); called before waiting.
    fn write_inline(&self) {}
}

impl DurableWaiter for WalWriter {
    fn write_inline(&self) {
        WalWriter::write_inline(self);
    }

    fn on_durable(&self, lsn: u64, done: DurableDone) {
        WalWriter::on_durable(
            self,
            Lsn(lsn),
            Box::new(move |r| {
                done(r.map_err(|e| match e {
                    StorageError::WalPoisoned { durable_lsn, .. } => durable_lsn.0,
                    _ => 0,
                }))
            }),
        );
    }
}

impl Persistence {
    /// Lets replies wait on `durability`'s WAL (if any).
    pub fn new(durability: Arc<Durability>) -> Result<Persistence, TxnError> {
        let waiter = durability
            .wal()
            .map(|w| Arc::clone(w) as Arc<dyn DurableWaiter>);
        Ok(Persistence {
            waiter,
            durability: Some(durability),
        })
    }

    /// Waits until `lsn` is durable; if the WAL fails (or is gone) first, `Err` with the LSN
    /// up to which everything is durable.
    ///
    /// Each waiter registers for its own LSN, and the WAL writer completes exactly the waiters
    /// a batch made durable. (A broadcast of the durable position woke every waiting
    /// connection after each fsync; under `appendfsync always` with 50 clients most of those
    /// wake-ups found their LSN still pending.)
    pub async fn wait_durable(&self, lsn: u64) -> Result<(), u64> {
        let Some(waiter) = self.waiter.as_ref() else {
            return Ok(());
        };
        waiter.write_inline();
        let (tx, rx) = oneshot::channel();
        waiter.on_durable(
            lsn,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await.unwrap_or(Err(0))
    }
}

/// Opens the configured data directory: recovery, then the WAL per `appendonly`/`appendfsync`.
pub fn open(config: &Config) -> Result<(Arc<Durability>, RecoveryReport), TxnError> {
    let fsync = match config.appendfsync {
        AppendFsync::Always => FsyncPolicy::Always,
        AppendFsync::EverySec => FsyncPolicy::EverySec,
        AppendFsync::No => FsyncPolicy::No,
    };
    let (durability, report) = Durability::open(DurabilityConfig {
        dir: config.dir.clone(),
        disk: Arc::new(FileDisk),
        wal: config.appendonly,
        fsync,
        wal_segment_bytes: WAL_SEGMENT_BYTES,
        wal_load_truncated: config.wal_load_truncated,
        // The eviction policy from the start: a checkpoint's idle times or frequencies load
        // only under the policy that reads them.
        engine: EngineConfig {
            memory: config.memory_config(),
            page_store: txn::PageStoreConfig {
                survivor_pages: config.active_defrag_survivor_pages,
                ..txn::PageStoreConfig::default()
            },
            ..EngineConfig::default()
        },
    })?;
    attach_tier(config, durability.engine())?;
    Ok((Arc::new(durability), report))
}

/// Under `maxmemory-policy spill` with a `maxmemory`, creates the SSD tier's spill file
/// (`<dir>/tier.spill`, empty: it holds nothing durable, docs/FORMATS.md) and hands it to the
/// engine, which keeps the resident value pages under the budget (`txn/src/tier.rs`). At
/// start, and when CONFIG SET first asks for both. A tier once attached stays (its pages may
/// be on SSD): a later `maxmemory` changes its budget, and under another policy it keeps the
/// budget it was attached with.
pub fn attach_tier(config: &Config, engine: &txn::Engine) -> Result<(), TxnError> {
    if config.maxmemory_policy != txn::EvictionPolicy::Spill
        || config.maxmemory_bytes == 0
        || engine.tier_attached()
    {
        return Ok(());
    }
    let path = config.dir.join("tier.spill");
    let (file, direct) = FileDisk.create_direct(&path).map_err(|source| {
        TxnError::Storage(txn::StorageError::IoAt {
            path: path.clone(),
            source,
        })
    })?;
    let cap = match config.tiered_max_file_size_bytes {
        0 => u64::MAX,
        bytes => bytes,
    };
    let file = txn::SpillFile::new(file, path.clone(), direct, cap);
    engine.attach_spill_file(file, config.maxmemory_bytes, config.tiered_policy);
    tracing::info!(
        path = %path.display(),
        io = if direct { "O_DIRECT, positioned reads and writes" } else { "page cache (O_DIRECT refused by the file system), positioned reads and writes" },
        policy = ?config.tiered_policy,
        "SSD tier on"
    );
    Ok(())
}

/// Parses Redis's `save` value: pairs of `seconds changes`; `""` disables the schedule.
pub fn parse_save_rules(text: &str) -> Option<Vec<(u64, u64)>> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if !words.len().is_multiple_of(2) {
        return None;
    }
    words
        .chunks(2)
        .map(|pair| match pair {
            [secs, changes] => Some((secs.parse().ok()?, changes.parse().ok()?)),
            _ => None,
        })
        .collect()
}

/// Whether a checkpoint is due: a `save` rule is met, or the WAL grew past its bound.
pub fn checkpoint_due(
    rules: &[(u64, u64)],
    secs_since_last: u64,
    changes: u64,
    wal_bytes: u64,
) -> bool {
    wal_bytes >= CHECKPOINT_WAL_BYTES_MAX
        || rules
            .iter()
            .any(|&(secs, n)| changes >= n.max(1) && secs_since_last >= secs)
}

/// CPU priority (`nice`) of a background checkpoint's scan thread, set first and kept where
/// the scheduling class of [`lower_scan_thread`] cannot be had: about a tenth of a core that
/// connections also want (weights 110 : 1024).
pub const CHECKPOINT_NICE: i32 = 10;

/// Starts a checkpoint on a thread of its own unless one runs; `false` if one was running (or
/// no thread could be started). The steps that hold locks commits or the WAL writer need run
/// on that thread at normal priority; the long scan runs on a thread of its own at the lowest
/// priority ([`lower_scan_thread`], through `Durability::checkpoint_with_scan_thread`), which
/// holds no such lock, so a preempted scan never holds anyone up.
pub fn start_background_checkpoint(durability: &Arc<Durability>) -> bool {
    // Claimed here, before the thread starts, so a second BGSAVE right after this one is told
    // "already in progress" (a claim the thread never runs is given back when dropped).
    let Some(claim) = durability.claim_checkpoint() else {
        return false;
    };
    std::thread::Builder::new()
        .name("tierkv-checkpoint".into())
        .spawn(move || {
            if let Err(error) = claim.run(&ScanThread) {
                tracing::error!(%error, "background checkpoint failed");
            }
        })
        .is_ok()
}

/// The scheduling of a checkpoint's scan thread (see `txn::durability::ScanPriority`).
struct ScanThread;

impl txn::durability::ScanPriority for ScanThread {
    fn lower(&self) {
        lower_scan_thread();
    }

    fn restore(&self) {
        tracing::info!(
            "checkpoint scan at normal priority: an exact scan's snapshot pins more than \
             snapshot-max-pinned-memory, or a fuzzy scan ran 5 s at the lowest priority"
        );
        restore_scan_thread();
    }

    /// Out of `SCHED_IDLE` for the batch, at nice [`CHECKPOINT_NICE`] (a tenth of a core
    /// against connections), as the priority-ceiling cure for inversion: the batch's snapshot
    /// holds back GC and the SSD tier's frames, which a starved reader held for seconds (RSS
    /// grew past `maxmemory` by 700 MB in `benches/scripts/tier-spill-churn.sh`).
    fn begin_batch(&self) {
        #[cfg(target_os = "linux")]
        {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: sched_setscheduler only reads `param`, a valid local; pid 0 names the
            // calling thread.
            let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
        }
        lower_this_threads_priority(CHECKPOINT_NICE);
    }

    fn end_batch(&self) {
        use_idle_scheduling();
    }
}

/// Puts the scan thread back in the normal class at nice 0, so the checkpoint finishes at the
/// speed the machine allows and lets go of what its snapshot pins (best effort: without
/// privileges the nice value may have to stay at [`CHECKPOINT_NICE`], which still ends
/// `SCHED_IDLE`'s near-starvation). Measured against keeping nice 10 in docs/BENCHMARKS.md.
fn restore_scan_thread() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler only reads `param`, a valid local; pid 0 names the calling
        // thread.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
        if rc != 0 {
            tracing::debug!("could not take the checkpoint thread out of SCHED_IDLE");
        }
    }
    lower_this_threads_priority(0);
}

/// Lowers the calling thread (a checkpoint's scan thread, used for nothing else) to `nice`
/// [`CHECKPOINT_NICE`], then puts it in
/// Linux's `SCHED_IDLE` class: any other thread that wakes up preempts it at once, and under
/// contention it gets a minimal share (weight 3 against 1024), so the scan runs in the cycles
/// connections leave. On 2 cores with 10 M keys this held foreground p99.9 within 1.6-2.0x of
/// quiet where `nice 10` alone gave 1.9-2.5x (docs/BENCHMARKS.md); the price is a longer
/// checkpoint on a busy machine (8-14 s against 5). It is never starved: the minimal share
/// still moves it on a saturated machine.
fn lower_scan_thread() {
    lower_this_threads_priority(CHECKPOINT_NICE);
    use_idle_scheduling();
}

/// Puts the calling thread in `SCHED_IDLE` (see [`lower_scan_thread`]); best effort.
fn use_idle_scheduling() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler only reads `param`, a valid local; pid 0 names the calling
        // thread.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            tracing::debug!(
                "could not put the checkpoint thread in SCHED_IDLE; it keeps its nice value"
            );
        }
    }
}

/// Sets the calling thread's nice value (Linux gives each thread its own); best effort.
fn lower_this_threads_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; `who == 0` with PRIO_PROCESS
        // names the calling thread on Linux.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if rc != 0 {
            tracing::debug!(nice, "could not lower the checkpoint thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Longest wait between two attempts to recover a failed WAL.
pub const WAL_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// When a failed WAL is tried again: doubling waits from one second, capped.
#[derive(Debug)]
struct WalRetry {
    next: Instant,
    wait: Duration,
}

impl Default for WalRetry {
    fn default() -> Self {
        WalRetry {
            next: Instant::now(),
            wait: Duration::from_secs(1),
        }
    }
}

impl WalRetry {
    fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    /// An attempt failed: the next waits twice as long (capped). Returns the wait.
    fn failed(&mut self) -> Duration {
        let wait = self.wait;
        self.next = Instant::now() + wait;
        self.wait = (self.wait * 2).min(WAL_RETRY_BACKOFF_MAX);
        wait
    }
}

/// The schedule: checkpoints per `save` and WAL size; retries a failed WAL with backoff.
pub async fn schedule(shared: Arc<Shared>) {
    let Some(durability) = shared.persistence.durability.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(SCHEDULE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // A failed WAL is retried after 1 s, then 2, 4, … up to WAL_RETRY_BACKOFF_MAX, as long as
    // its recovery's probe write keeps failing (a disk still full); back to 1 s once it works.
    let mut retry = WalRetry::default();
    loop {
        tick.tick().await;
        let stats = durability.stats();
        if stats.wal_error.is_some() {
            if !retry.due() {
                continue;
            }
            let d = Arc::clone(&durability);
            let recovered = tokio::task::spawn_blocking(move || d.try_recover_log()).await;
            match recovered {
                Ok(Ok(())) => {
                    retry = WalRetry::default();
                    tracing::info!("write-ahead log recovered; accepting writes again");
                }
                Ok(Err(error)) => {
                    let wait = retry.failed();
                    tracing::warn!(%error, retry_in_s = wait.as_secs(), "write-ahead log still failing; writes get -MISCONF");
                }
                Err(_) => {
                    retry.failed();
                }
            }
            continue;
        }
        if stats.checkpoint_in_progress {
            continue;
        }
        let rules = parse_save_rules(&shared.config.read().save).unwrap_or_default();
        let since = unix_secs().saturating_sub(stats.last_checkpoint_unix_s);
        let wal_bytes = stats.wal.as_ref().map_or(0, |w| w.log_bytes);
        if checkpoint_due(&rules, since, stats.changes_since_checkpoint, wal_bytes) {
            start_background_checkpoint(&durability);
        }
        shared
            .lastsave_unix
            .store(stats.last_checkpoint_unix_s, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_rules_parse_like_redis() {
        assert_eq!(
            parse_save_rules("3600 1 300 100 60 10000"),
            Some(vec![(3600, 1), (300, 100), (60, 10000)])
        );
        assert_eq!(parse_save_rules(""), Some(vec![]));
        assert_eq!(parse_save_rules("3600"), None);
        assert_eq!(parse_save_rules("x 1"), None);
    }

    #[test]
    fn due_when_a_rule_is_met_or_the_wal_is_big() {
        let rules = [(3600, 1), (60, 10000)];
        assert!(!checkpoint_due(&rules, 59, 20_000, 0));
        assert!(checkpoint_due(&rules, 60, 10_000, 0));
        assert!(!checkpoint_due(&rules, 3599, 9_999, 0));
        assert!(checkpoint_due(&rules, 3600, 1, 0));
        assert!(!checkpoint_due(&rules, 10_000, 0, 0), "nothing changed");
        assert!(checkpoint_due(&[], 0, 0, CHECKPOINT_WAL_BYTES_MAX));
    }
}
