//! Long-lived snapshots: the leases of interactive transactions and checkpoints, and the limits
//! that stop an idle one from pinning old versions for ever (PostgreSQL's
//! `idle_in_transaction_session_timeout`, Oracle's "snapshot too old").
//!
//! # Which snapshots are tracked, and which are bounded
//!
//! | snapshot | tracked here | bounded by |
//! |---|---|---|
//! | interactive transaction ([`crate::Engine::begin_interactive`], `TXN BEGIN`) | yes | [`SnapshotLimits`]: aborted past either limit |
//! | checkpoint (BGSAVE, SAVE, the schedule) | yes (shown as the oldest snapshot) | its own duration: never aborted (a half-written checkpoint helps no one, and it ends by itself); its scan, which yields to connections, stops yielding once the snapshot pins `max_pinned_bytes` or an eighth of the dataset (`durability::ScanPriority`) |
//! | one command's transaction, a MULTI/EXEC block, a fast path's read, a WATCH mark | no | the command: it lives for one command |
//!
//! The untracked ones stay as cheap as before (no lock beyond their registry shard's); this
//! module costs them nothing.
//!
//! # The lease, and why releasing an aborted snapshot is sound
//!
//! A tracked transaction's snapshot [`Registration`] is owned by its [`SnapshotLease`], not by
//! the transaction. Every operation of the transaction runs holding the lease's mutex
//! ([`SnapshotLease::hold`]), and reads only if the lease is still open; the enforcer
//! ([`enforce`]) only ever `try_lock`s a lease and, if it gets it, releases the registration
//! and marks the lease aborted under that same lock. Hence:
//!
//! 1. The registration is released only while no operation of the transaction runs (the mutex
//!    excludes it), whichever thread that operation would run on. Every operation that starts
//!    later sees the abort under the mutex (which orders it after the release) and fails with
//!    [`TxnError::SnapshotTooOld`] before reading anything. What earlier operations returned
//!    was copied out of the page store (`PageStore::read` copies), so nothing refers to the
//!    snapshot once the operation that read it has returned.
//! 2. GC frees only what no registered snapshot can see (`gc.rs`, `snapshot.rs`); once the
//!    registration is gone nobody reads at that snapshot again, so nothing GC then frees is
//!    read.
//! 3. The enforcer never waits for a lease (it runs on the GC tick and must not stall behind a
//!    client's long SCAN). A transaction busy in an operation is *doomed* instead, and the next
//!    operation that takes its lease releases the registration itself before failing: the
//!    owner is not reading through it at that moment either. So a transaction that is never
//!    idle when the enforcer looks cannot dodge the limit, and a busy one is released either
//!    by the next tick's `try_lock` or by its own next operation, whichever comes first.
//!
//! Lock order: commit lock → registry (a checkpoint registers under the commit lock); lease →
//! commit lock (a commit holds its lease); lease → snapshot shard, lease → registry. The
//! enforcer never holds the registry while it takes a lease, and only `try_lock`s leases.
//!
//! # The limits
//!
//! - **Age**: an interactive transaction open longer than `max_age_ms` (engine clock) is
//!   aborted, idle or not.
//! - **Pinned memory**: when `Inner::pinned_bytes` (old versions, the values only they hold,
//!   tombstoned nodes, compaction's old copies of moved values) exceeds `max_pinned_bytes`, the oldest
//!   interactive transaction is aborted, but only if it is what holds GC's low watermark (a
//!   checkpoint older than it pins the memory, and aborting a transaction would free nothing),
//!   and only once GC has settled at the current watermark (has no work left it could do
//!   there; `gc.rs` reports it): then what is left is memory the watermark pins, not garbage GC
//!   has yet to reach. One such abort per call; the next needs GC to settle at the new
//!   watermark first, so one idle transaction does not take younger ones down with it while GC
//!   is still freeing what it pinned.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use crate::engine::Inner;
use crate::error::TxnError;
use crate::snapshot::Registration;
use crate::timestamp::{SnapshotTs, TxnId};

/// The limits on interactive transactions' snapshots (0 = that limit is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotLimits {
    /// Longest an interactive transaction may stay open, in ms of the engine's clock.
    pub max_age_ms: u64,
    /// Most memory GC may be kept from freeing (`memory::Accounting::pinned_bytes`) before
    /// the oldest interactive transaction, if it holds the watermark, is aborted.
    pub max_pinned_bytes: u64,
}

/// Default age limit: 60 s. An interactive transaction is a few round trips; a minute is far
/// beyond any that is working, and at the write rate issue 9 measured (130 k overwrites/s, 19
/// MB/s of old versions) it bounds what an idle one pins to about a minute of writes. The
/// memory cap below trips first under heavy writes.
pub const SNAPSHOT_MAX_AGE_MS_DEFAULT: u64 = 60 * 1000;
/// Default pinned-memory cap: 256 MiB. Small next to any production server's memory, so an
/// idle transaction cannot take the server down (issue 9's grew by 290 MB in 15 s), and large
/// enough that no transaction that is working trips it: at 19 MB/s of old versions a
/// transaction would have to stay open for about 13 s.
pub const SNAPSHOT_MAX_PINNED_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;

impl Default for SnapshotLimits {
    /// The server's defaults (see [`SNAPSHOT_MAX_AGE_MS_DEFAULT`] and
    /// [`SNAPSHOT_MAX_PINNED_BYTES_DEFAULT`] for why).
    fn default() -> Self {
        SnapshotLimits {
            max_age_ms: SNAPSHOT_MAX_AGE_MS_DEFAULT,
            max_pinned_bytes: SNAPSHOT_MAX_PINNED_BYTES_DEFAULT,
        }
    }
}

/// Which limit aborted a transaction, with what was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    /// Open longer than [`SnapshotLimits::max_age_ms`].
    MaxAge {
        /// The limit, ms.
        limit_ms: u64,
        /// The transaction's age when aborted, ms.
        age_ms: u64,
    },
    /// Pinned memory over [`SnapshotLimits::max_pinned_bytes`] while this transaction held
    /// the watermark.
    MaxPinnedMemory {
        /// The limit, bytes.
        limit_bytes: u64,
        /// Pinned bytes when aborted.
        pinned_bytes: u64,
    },
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitExceeded::MaxAge { limit_ms, age_ms } => {
                write!(f, "open {age_ms} ms, over the limit of {limit_ms} ms")
            }
            LimitExceeded::MaxPinnedMemory {
                limit_bytes,
                pinned_bytes,
            } => write!(
                f,
                "{pinned_bytes} bytes of old versions pinned, over the limit of {limit_bytes}"
            ),
        }
    }
}

/// Who holds a tracked snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotHolder {
    /// An interactive transaction of this client (the server's CLIENT ID). Bounded.
    Client(u64),
    /// A checkpoint's scan. Never aborted.
    Checkpoint,
}

/// The oldest tracked snapshot (INFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldestSnapshot {
    /// Who holds it.
    pub holder: SnapshotHolder,
    /// The timestamp it reads at.
    pub snapshot_ts: SnapshotTs,
    /// How long it has been open, ms of the engine's clock.
    pub age_ms: u64,
    /// Memory GC cannot free while snapshots are open
    /// (`memory::Accounting::pinned_bytes`), all of it ascribed to the oldest.
    pub pinned_bytes: u64,
}

/// What one [`crate::Engine::enforce_snapshot_limits`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotLimitReport {
    /// Transactions aborted by this call: their holder and the limit they passed.
    pub aborted: Vec<(SnapshotHolder, LimitExceeded)>,
    /// Transactions over a limit but busy in an operation: doomed, they fail at their next
    /// operation (or are released at the next call).
    pub busy: u64,
}

/// A lease's protected state.
#[derive(Debug)]
pub(crate) struct LeaseState {
    /// The snapshot's registration while it is held; `None` once released (aborted or ended).
    registration: Option<Registration>,
    /// Why the enforcer aborted it, if it did.
    aborted: Option<LimitExceeded>,
}

/// One tracked snapshot (see the module docs).
#[derive(Debug)]
pub(crate) struct SnapshotLease {
    id: TxnId,
    holder: SnapshotHolder,
    began_ms: u64,
    snapshot_ts: u64,
    state: Mutex<LeaseState>,
    /// Set by an enforcer that found the lease busy; read by the next `hold`.
    doomed: AtomicBool,
    doom: Mutex<Option<LimitExceeded>>,
}

/// Proof that a transaction's operation holds its lease (the registration stays registered).
pub(crate) type LeaseHold<'a> = MutexGuard<'a, LeaseState>;

impl SnapshotLease {
    fn bounded(&self) -> bool {
        matches!(self.holder, SnapshotHolder::Client(_))
    }

    /// The snapshot timestamp it reads at.
    pub(crate) fn snapshot_ts(&self) -> u64 {
        self.snapshot_ts
    }

    /// Takes the lease for one operation of its transaction: fails with
    /// [`TxnError::SnapshotTooOld`] if the enforcer aborted it, or releases the registration
    /// and fails if the enforcer doomed it while it was busy.
    pub(crate) fn hold(&self, inner: &Inner) -> Result<LeaseHold<'_>, TxnError> {
        let mut state = self.state.lock();
        if self.doomed.load(Ordering::Acquire) && state.aborted.is_none() {
            if let Some(exceeded) = *self.doom.lock() {
                self.abort_locked(inner, &mut state, exceeded);
            }
        }
        match state.aborted {
            Some(exceeded) => Err(TxnError::SnapshotTooOld { exceeded }),
            None => Ok(state),
        }
    }

    /// Releases the registration and records the abort. Caller holds `state`.
    fn abort_locked(&self, inner: &Inner, state: &mut LeaseState, exceeded: LimitExceeded) -> bool {
        let Some(registration) = state.registration.take() else {
            return false;
        };
        inner.snapshots.release(&registration);
        state.aborted = Some(exceeded);
        let limits = &inner.long_snapshots;
        limits.leases.lock().remove(&self.id);
        limits.aborted.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            txn = self.id.0,
            holder = ?self.holder,
            snapshot_ts = self.snapshot_ts,
            %exceeded,
            "aborted a long-lived snapshot"
        );
        true
    }

    /// The enforcer's attempt: aborts the lease if no operation holds it, dooms it otherwise.
    fn try_abort(&self, inner: &Inner, exceeded: LimitExceeded) -> Attempt {
        let Some(mut state) = self.state.try_lock() else {
            let mut doom = self.doom.lock();
            if doom.is_none() {
                *doom = Some(exceeded);
            }
            self.doomed.store(true, Ordering::Release);
            return Attempt::Busy;
        };
        if self.abort_locked(inner, &mut state, exceeded) {
            Attempt::Aborted
        } else {
            Attempt::Gone
        }
    }

    /// Ends the lease with its transaction (commit, abort, drop): releases the registration if
    /// still held and forgets the lease.
    pub(crate) fn end(&self, inner: &Inner) {
        let registration = self.state.lock().registration.take();
        if let Some(registration) = registration {
            inner.snapshots.release(&registration);
        }
        inner.long_snapshots.leases.lock().remove(&self.id);
    }
}

enum Attempt {
    Aborted,
    Busy,
    Gone,
}

/// The tracked snapshots, the limits and the counters (one per engine).
#[derive(Debug)]
pub(crate) struct LongSnapshots {
    /// Leases whose registration is held, by transaction id.
    leases: Mutex<HashMap<TxnId, Arc<SnapshotLease>>>,
    max_age_ms: AtomicU64,
    max_pinned_bytes: AtomicU64,
    /// Transactions aborted by a limit, ever.
    aborted: AtomicU64,
    /// The highest low watermark at which a GC call found nothing left to do (see `gc.rs`).
    gc_settled_at: AtomicU64,
}

impl Default for LongSnapshots {
    fn default() -> Self {
        let limits = SnapshotLimits::default();
        LongSnapshots {
            leases: Mutex::new(HashMap::new()),
            max_age_ms: AtomicU64::new(limits.max_age_ms),
            max_pinned_bytes: AtomicU64::new(limits.max_pinned_bytes),
            aborted: AtomicU64::new(0),
            gc_settled_at: AtomicU64::new(0),
        }
    }
}

impl LongSnapshots {
    pub(crate) fn set_limits(&self, limits: SnapshotLimits) {
        self.max_age_ms.store(limits.max_age_ms, Ordering::Relaxed);
        self.max_pinned_bytes
            .store(limits.max_pinned_bytes, Ordering::Relaxed);
    }

    pub(crate) fn limits(&self) -> SnapshotLimits {
        SnapshotLimits {
            max_age_ms: self.max_age_ms.load(Ordering::Relaxed),
            max_pinned_bytes: self.max_pinned_bytes.load(Ordering::Relaxed),
        }
    }

    /// Transactions aborted by a limit, ever.
    pub(crate) fn aborted(&self) -> u64 {
        self.aborted.load(Ordering::Relaxed)
    }

    /// GC found nothing left to do at `watermark` (called by `gc.rs`).
    pub(crate) fn note_gc_settled(&self, watermark: u64) {
        self.gc_settled_at.fetch_max(watermark, Ordering::Relaxed);
    }

    /// Registers a snapshot for `holder` under a new lease.
    pub(crate) fn lease(
        &self,
        inner: &Inner,
        id: TxnId,
        holder: SnapshotHolder,
    ) -> Arc<SnapshotLease> {
        let began_ms = inner.clock.now_ms();
        let registration = inner.snapshots.register(&inner.oracle);
        let lease = Arc::new(SnapshotLease {
            id,
            holder,
            began_ms,
            snapshot_ts: registration.ts,
            state: Mutex::new(LeaseState {
                registration: Some(registration),
                aborted: None,
            }),
            doomed: AtomicBool::new(false),
            doom: Mutex::new(None),
        });
        self.leases.lock().insert(id, Arc::clone(&lease));
        lease
    }

    /// The oldest tracked snapshot still held.
    pub(crate) fn oldest(&self, inner: &Inner) -> Option<OldestSnapshot> {
        let now = inner.clock.now_ms();
        let leases = self.leases.lock();
        let oldest = leases
            .values()
            .min_by_key(|lease| (lease.snapshot_ts, lease.began_ms, lease.id))?;
        Some(OldestSnapshot {
            holder: oldest.holder,
            snapshot_ts: SnapshotTs(oldest.snapshot_ts),
            age_ms: now.saturating_sub(oldest.began_ms),
            pinned_bytes: inner.pinned_bytes(),
        })
    }
}

/// One enforcement pass (see the module docs): aborts interactive transactions over the age
/// limit, and the oldest one if pinned memory is over its cap and it holds the watermark.
pub(crate) fn enforce(inner: &Inner) -> SnapshotLimitReport {
    let this = &inner.long_snapshots;
    let limits = this.limits();
    let mut report = SnapshotLimitReport::default();
    if limits.max_age_ms == 0 && limits.max_pinned_bytes == 0 {
        return report;
    }
    let now = inner.clock.now_ms();
    let pinned_bytes = inner.pinned_bytes();
    let over_memory = limits.max_pinned_bytes > 0 && pinned_bytes > limits.max_pinned_bytes;
    // Only when needed: it takes every registry shard's lock.
    let watermark = over_memory.then(|| inner.snapshots.low_watermark(&inner.oracle));
    let mut victims: Vec<(Arc<SnapshotLease>, LimitExceeded)> = Vec::new();
    {
        let leases = this.leases.lock();
        let bounded = || leases.values().filter(|lease| lease.bounded());
        if limits.max_age_ms > 0 {
            for lease in bounded() {
                let age_ms = now.saturating_sub(lease.began_ms);
                if age_ms > limits.max_age_ms {
                    let exceeded = LimitExceeded::MaxAge {
                        limit_ms: limits.max_age_ms,
                        age_ms,
                    };
                    victims.push((Arc::clone(lease), exceeded));
                }
            }
        }
        let settled = watermark
            .filter(|&w| this.gc_settled_at.load(Ordering::Relaxed) >= w)
            .is_some();
        let oldest = bounded().min_by_key(|lease| (lease.snapshot_ts, lease.began_ms, lease.id));
        if let (true, Some(oldest), Some(watermark)) = (settled, oldest, watermark) {
            let holds_watermark = oldest.snapshot_ts <= watermark;
            if holds_watermark && !victims.iter().any(|(v, _)| v.id == oldest.id) {
                let exceeded = LimitExceeded::MaxPinnedMemory {
                    limit_bytes: limits.max_pinned_bytes,
                    pinned_bytes,
                };
                victims.push((Arc::clone(oldest), exceeded));
            }
        }
    }
    for (lease, exceeded) in victims {
        match lease.try_abort(inner, exceeded) {
            Attempt::Aborted => report.aborted.push((lease.holder, exceeded)),
            Attempt::Busy => report.busy += 1,
            Attempt::Gone => {}
        }
    }
    report
}
