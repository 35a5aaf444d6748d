//! [`Engine`]: the API boundary the server (or an embedding program) uses.
//!
//! Invariant: every change to the index goes through the commit lock (`commit.rs`), in commit
//! timestamp order, which is also the order of the commit sink (the WAL); everything else here
//! only reads, or delegates.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use storage::page::{PageStats, PageStore, PageStoreConfig};

use crate::checkpoint_scan::CheckpointScan;
use crate::commit_lock::CommitLock;
use crate::compact::{self, CompactionConfig, CompactionStats, Compactor};
use crate::error::TxnError;
use crate::expiry::{Clock, ExpirySchedule, SystemClock};
use crate::gc::{GcQueue, GcState, GcStats};
use crate::index::{HybridIndex, KeyHasher, KeyIndex};
use crate::keyspace::Keyspaces;
use crate::limits::{DATABASES, GC_QUEUE_ENTRIES_MAX, RUN_ATTEMPTS_MAX};
use crate::log_record::LogRecord;
use crate::memory::{Accounting, Governor, MemoryConfig, MemoryStats};
use crate::oracle::TimestampOracle;
use crate::snapshot::ActiveSnapshots;
use crate::snapshot_limits::{
    LongSnapshots, OldestSnapshot, SnapshotHolder, SnapshotLimitReport, SnapshotLimits,
};
use crate::timestamp::{CommitTs, TxnId};
use crate::transaction::{check_key, entry_of, is_due_now, Transaction, WatchMark};
use crate::{commit, gc, CommitInfo, DbIndex, Entry, Expiry, Isolation};

/// The write-ahead-log hook: receives each committed transaction's encoded [`LogRecord`], in
/// commit-timestamp order, inside the commit critical section.
pub trait CommitSink: Send + Sync {
    /// Appends one record and returns its log position. An error must mean the record was NOT
    /// appended (a poisoned or closed log refuses before enqueuing): the commit then aborts with
    /// nothing installed, and later commits are tried again.
    fn append(&self, record: &[u8]) -> Result<storage::Lsn, TxnError>;
}

/// What [`Engine::update`]'s decision writes to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyWrite {
    /// Set the key's value; [`Expiry::Keep`] keeps the deadline of the value decided on.
    Put {
        /// The new value.
        value: Bytes,
        /// Its deadline.
        expiry: Expiry,
    },
    /// Delete the key (writes nothing if it held no live value).
    Delete,
}

/// How to build an [`Engine`].
#[derive(Clone)]
pub struct EngineConfig {
    /// Wall-clock time for expiry.
    pub clock: Arc<dyn Clock>,
    /// Where committed transactions are logged; `None` for a purely in-memory engine.
    pub sink: Option<Arc<dyn CommitSink>>,
    /// The value page store's configuration.
    pub page_store: PageStoreConfig,
    /// Bound of GC's queue of keys that may hold garbage (see `gc.rs`).
    pub gc_queue_entries_max: usize,
    /// `maxmemory` and the eviction policy from the start, so recovery already loads keys'
    /// access words as the policy reads them (see [`Engine::set_memory_config`]).
    pub memory: MemoryConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            clock: Arc::new(SystemClock),
            sink: None,
            page_store: PageStoreConfig::default(),
            gc_queue_entries_max: GC_QUEUE_ENTRIES_MAX,
            memory: MemoryConfig::default(),
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("sink", &self.sink.is_some())
            .field("page_store", &self.page_store)
            .finish()
    }
}

/// Per-database counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Keys whose newest version holds a value (expired-but-not-yet-deleted ones included, as
    /// Redis's DBSIZE counts them).
    pub keys: u64,
    /// Of those, keys with a deadline.
    pub expires: u64,
    /// Versions held, all keys together (including tombstones awaiting GC).
    pub versions: u64,
    /// Key nodes in the index (live keys plus tombstoned ones awaiting GC).
    pub key_nodes: u64,
}

/// Engine-wide counters.
#[derive(Debug, Clone, Default)]
pub struct EngineStats {
    /// One entry per database.
    pub dbs: Vec<DbStats>,
    /// The value page store.
    pub pages: PageStats,
    /// Newest fully published commit.
    pub visible_ts: CommitTs,
    /// Oldest snapshot any open transaction reads at (or `visible_ts` if none).
    pub low_watermark: CommitTs,
    /// Open transactions (snapshots).
    pub active_snapshots: u64,
    /// GC calls so far.
    pub gc_runs: u64,
    /// Versions GC unlinked so far.
    pub gc_versions_unlinked: u64,
    /// Key nodes GC removed so far.
    pub gc_keys_removed: u64,
    /// Keys waiting in GC's queue (see `gc.rs`), due or not.
    pub gc_queued: u64,
    /// Queue entries dropped because the queue was full, ever (each forces a sweep).
    pub gc_queue_dropped: u64,
    /// Keys deleted by active expiry so far.
    pub expired_keys: u64,
    /// Entries in the expiry timing wheel (stale ones included).
    pub expiry_wheel_entries: u64,
    /// `used_memory` and its parts, the limit and the eviction count.
    pub memory: MemoryStats,
    /// The oldest tracked snapshot (interactive transaction or checkpoint), if any.
    pub oldest_snapshot: Option<OldestSnapshot>,
    /// Interactive transactions aborted by a [`SnapshotLimits`] limit, ever.
    pub snapshots_aborted: u64,
    /// Commits refused for a conflict (first committer wins; the server retries a single
    /// command's transaction, so most are retries), ever.
    pub conflicts: u64,
    /// Commits refused because a WATCHed key changed (EXEC replied nil), ever.
    pub watch_failures: u64,
    /// Key nodes of flushed databases not reclaimed yet (Redis's `lazyfree_pending_objects`:
    /// FLUSHDB and FLUSHALL hand their keys to GC, see `keyspace.rs`).
    pub lazyfree_pending_objects: u64,
    /// Key nodes of flushed databases freed so far (Redis's `lazyfreed_objects`).
    pub lazyfreed_objects: u64,
}

/// A keyspace: what a database shows (`keyspace.rs` says which, since when).
pub(crate) struct Db {
    pub(crate) index: HybridIndex,
    pub(crate) live_keys: AtomicI64,
    pub(crate) expires: AtomicI64,
    pub(crate) versions: AtomicI64,
    /// Node bytes of the keys whose newest version holds a value, and those values'
    /// footprints: what a flush hands to GC at once (`keyspace.rs`).
    pub(crate) live_node_bytes: AtomicI64,
    pub(crate) live_value_bytes: AtomicI64,
}

pub(crate) struct Inner {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sink: Option<Arc<dyn CommitSink>>,
    pub(crate) pages: PageStore,
    /// How keys hash in every database (one seed), and the owner tags of values.
    pub(crate) hasher: KeyHasher,
    /// Which keyspace each database shows, and since when (O(1) flushes).
    pub(crate) keyspaces: Keyspaces,
    pub(crate) oracle: TimestampOracle,
    pub(crate) snapshots: ActiveSnapshots,
    /// Interactive transactions' and checkpoints' leases, and their limits.
    pub(crate) long_snapshots: LongSnapshots,
    /// The commit critical section: validate, stamp, log, install, publish.
    pub(crate) commit_lock: CommitLock,
    /// Commits with a keyspace-wide op (FLUSHDB, FLUSHALL, SWAPDB) waiting for or holding
    /// the commit lock: they hold it O(keys), so a server makes writes wait elsewhere.
    pub(crate) keyspace_ops: std::sync::atomic::AtomicU32,
    pub(crate) wheel: Mutex<ExpirySchedule>,
    pub(crate) gc_state: Mutex<GcState>,
    /// How far the checkpoint in progress has read (GC collects behind it).
    pub(crate) checkpoint_scan: CheckpointScan,
    /// Keys that may hold garbage (see `gc.rs`). Never held while taking the commit lock.
    pub(crate) gc_queue: Mutex<GcQueue>,
    /// LSN of the newest record handed to the sink (set inside the commit lock, so everything
    /// visible to a snapshot taken before reading it has an LSN at or below it).
    pub(crate) last_lsn: AtomicU64,
    pub(crate) next_txn_id: AtomicU64,
    pub(crate) random_state: AtomicU64,
    pub(crate) gc_runs: AtomicU64,
    /// Commits refused by first-committer-wins (a conflict), and by a changed WATCH.
    pub(crate) conflicts: AtomicU64,
    /// See `conflicts`.
    pub(crate) watch_failures: AtomicU64,
    pub(crate) gc_versions_unlinked: AtomicU64,
    pub(crate) gc_keys_removed: AtomicU64,
    pub(crate) expired_keys: AtomicU64,
    /// Memory counters, the `maxmemory` settings, the access clock, eviction state.
    pub(crate) memory: Governor,
    /// Compaction of value pages: its settings, the retire list, its counters.
    pub(crate) compactor: Compactor,
    /// The SSD tier's driver (`tier.rs`).
    pub(crate) tier: crate::tier::Tier,
}

impl Inner {
    /// Memory waiting for open snapshots to end: what GC has not freed yet (old versions, the
    /// values only they hold, tombstoned keys) and the old copies of values compaction moved.
    /// The one definition of "pinned": the oldest snapshot's pinned bytes in INFO and
    /// `snapshot-max-pinned-memory` read it, so a new kind of memory awaiting release is added
    /// here and nowhere else.
    pub(crate) fn pinned_bytes(&self) -> u64 {
        self.memory.accounting.pinned_bytes() + self.compactor.retired_bytes()
    }

    /// The keyspace `db` shows now (see `keyspace.rs`: for writers under the commit lock,
    /// and reads of the newest state without a snapshot).
    pub(crate) fn db(&self, db: DbIndex) -> Result<&Db, TxnError> {
        self.keyspaces.current(db)
    }

    /// The keyspace `db` showed at the registered snapshot `ts`.
    pub(crate) fn db_at(&self, db: DbIndex, ts: u64) -> Result<&Db, TxnError> {
        self.keyspaces.at(db, ts)
    }
}

/// The steps of [`Engine::prefetch_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPrefetch {
    /// The hash table's lines where the key's probe starts.
    Table,
    /// The key's node (its probe's lines should be in cache by now).
    Node,
    /// The first line of the key's newest value, if in RAM (its node should be in cache by
    /// now): for a command that reads the value (INCR, GET, APPEND).
    Value,
}

/// The transactional engine. Cheap to clone (an `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("visible_ts", &self.inner.oracle.visible())
            .finish()
    }
}

impl Engine {
    /// An empty engine.
    pub fn new(config: EngineConfig) -> Engine {
        let now = config.clock.now_ms();
        let accounting = Arc::new(Accounting::default());
        let hasher = KeyHasher::random();
        let keyspaces = Keyspaces::new(&accounting, hasher);
        let engine = Engine {
            inner: Arc::new(Inner {
                clock: config.clock,
                sink: config.sink,
                pages: PageStore::new(config.page_store),
                hasher,
                keyspaces,
                oracle: TimestampOracle::default(),
                snapshots: ActiveSnapshots::default(),
                long_snapshots: LongSnapshots::default(),
                commit_lock: CommitLock::default(),
                keyspace_ops: std::sync::atomic::AtomicU32::new(0),
                wheel: Mutex::new(ExpirySchedule::new(now, Arc::clone(&accounting))),
                gc_state: Mutex::new(GcState::default()),
                checkpoint_scan: CheckpointScan::default(),
                gc_queue: Mutex::new(GcQueue::new(config.gc_queue_entries_max)),
                last_lsn: AtomicU64::new(0),
                next_txn_id: AtomicU64::new(1),
                random_state: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
                gc_runs: AtomicU64::new(0),
                conflicts: AtomicU64::new(0),
                watch_failures: AtomicU64::new(0),
                gc_versions_unlinked: AtomicU64::new(0),
                gc_keys_removed: AtomicU64::new(0),
                expired_keys: AtomicU64::new(0),
                memory: Governor::new(accounting, now),
                compactor: Compactor::new(),
                tier: crate::tier::Tier::new(),
            }),
        };
        engine.set_memory_config(config.memory);
        engine
    }

    /// Starts a transaction reading at the newest fully published commit.
    pub fn begin(&self, isolation: Isolation) -> Transaction {
        let id = TxnId(self.inner.next_txn_id.fetch_add(1, Ordering::Relaxed));
        Transaction::new(Arc::clone(&self.inner), id, isolation)
    }

    /// Starts an interactive transaction (the server's `TXN BEGIN`) for client `client_id`.
    /// Unlike [`Engine::begin`], its snapshot is tracked and bounded by [`SnapshotLimits`]:
    /// past either limit [`Engine::enforce_snapshot_limits`] aborts it, and its operations
    /// fail with [`TxnError::SnapshotTooOld`] from then on. Each operation takes the
    /// transaction's lease, an uncontended lock (see `snapshot_limits.rs`).
    pub fn begin_interactive(&self, isolation: Isolation, client_id: u64) -> Transaction {
        let id = TxnId(self.inner.next_txn_id.fetch_add(1, Ordering::Relaxed));
        Transaction::new_leased(
            Arc::clone(&self.inner),
            id,
            isolation,
            SnapshotHolder::Client(client_id),
        )
    }

    /// A checkpoint's snapshot: tracked (INFO shows it as the oldest snapshot while it is)
    /// but never aborted.
    pub(crate) fn begin_checkpoint(&self) -> Transaction {
        let id = TxnId(self.inner.next_txn_id.fetch_add(1, Ordering::Relaxed));
        let mut tx = Transaction::new_leased(
            Arc::clone(&self.inner),
            id,
            Isolation::Snapshot,
            SnapshotHolder::Checkpoint,
        );
        tx.allow_cold_reads();
        tx
    }

    /// Sets the limits on interactive transactions' snapshots; the next
    /// [`Engine::enforce_snapshot_limits`] applies them.
    pub fn set_snapshot_limits(&self, limits: SnapshotLimits) {
        self.inner.long_snapshots.set_limits(limits);
    }

    /// The limits in force.
    pub fn snapshot_limits(&self) -> SnapshotLimits {
        self.inner.long_snapshots.limits()
    }

    /// Aborts the interactive transactions past a [`SnapshotLimits`] limit (see
    /// `snapshot_limits.rs`): every one open longer than the age limit, and, when pinned
    /// memory is over its cap and GC has settled, the oldest one if it holds GC's low
    /// watermark. A transaction busy in an operation is not waited for: it fails at its next
    /// operation. Call it after [`Engine::gc`] on a timer (the server does every GC tick);
    /// GC then frees what the aborted ones pinned. Checkpoints and per-command transactions
    /// are never aborted.
    pub fn enforce_snapshot_limits(&self) -> SnapshotLimitReport {
        crate::snapshot_limits::enforce(&self.inner)
    }

    /// Memory waiting for open snapshots to end (old versions, the values only they hold,
    /// tombstoned keys, old copies of moved values): what `snapshot-max-pinned-memory` bounds.
    pub fn pinned_bytes(&self) -> u64 {
        self.inner.pinned_bytes()
    }

    /// The oldest tracked snapshot (interactive transaction or checkpoint) still held: who
    /// holds it, its age and the memory snapshots pin.
    pub fn oldest_snapshot(&self) -> Option<OldestSnapshot> {
        self.inner.long_snapshots.oldest(&self.inner)
    }

    /// Runs `f` in a transaction and commits it, retrying from a fresh snapshot on
    /// [`TxnError::Conflict`] (at most [`RUN_ATTEMPTS_MAX`] attempts). Other errors, including
    /// [`TxnError::WatchFailed`], are returned at once.
    pub fn run<T>(
        &self,
        isolation: Isolation,
        mut f: impl FnMut(&mut Transaction) -> Result<T, TxnError>,
    ) -> Result<(T, CommitInfo), TxnError> {
        for attempt in 0..RUN_ATTEMPTS_MAX {
            let mut tx = self.begin(isolation);
            let outcome = f(&mut tx).and_then(|value| tx.commit().map(|info| (value, info)));
            match outcome {
                Err(TxnError::Conflict { .. }) => {
                    if attempt > 2 {
                        std::thread::yield_now();
                    }
                }
                other => return other,
            }
        }
        Err(TxnError::TooManyRetries {
            attempts: RUN_ATTEMPTS_MAX,
        })
    }

    /// Single-key fast path: writes `key` without reading it, with the same outcome, log record
    /// and durability as `run(Isolation::Serializable, |tx| tx.put(db, key, value, expiry))`
    /// for an expiry other than [`Expiry::Keep`] (`expire_at_ms`: `None` = no deadline), but
    /// without building a [`Transaction`]: a blind write has nothing to validate (see
    /// `commit.rs`, `put_one`).
    pub fn put(
        &self,
        db: DbIndex,
        key: &[u8],
        value: &[u8],
        expire_at_ms: Option<u64>,
    ) -> Result<CommitInfo, TxnError> {
        commit::put_one(&self.inner, db, key, value, expire_at_ms)
    }

    /// Single-key fast path for a read-modify-write (INCR, DEL of one key): `decide` sees the
    /// key's newest committed live value (`None` if absent or expired) and returns what to
    /// write, if anything, plus a result. The write commits only if nothing committed the key
    /// since the read (else `decide` runs again on the newer value, at last under the commit
    /// lock), so the outcome is that of a `Serializable` transaction doing the same read and
    /// write, which never conflicts; the log record is the one that transaction would write.
    /// An error from `decide` writes nothing. `decide` may run more than once: only the last
    /// run's outcome counts.
    /// `may_create`: `decide` may write a key that is absent now (its ordered-index insert then
    /// happens before the lock, as in every commit).
    pub fn update<T, E: From<TxnError>>(
        &self,
        db: DbIndex,
        key: &[u8],
        may_create: bool,
        decide: impl FnMut(Option<Entry>) -> Result<(Option<KeyWrite>, T), E>,
    ) -> Result<(T, CommitInfo), E> {
        commit::update_one(&self.inner, db, key, may_create, true, decide)
    }

    /// Single-key fast path for DEL of one key: deletes `key` if it is live, without reading
    /// its value (a value on SSD is not fetched). Returns whether it was live.
    pub fn delete_one(&self, db: DbIndex, key: &[u8]) -> Result<(bool, CommitInfo), TxnError> {
        commit::update_one(&self.inner, db, key, false, false, |current| {
            let existed = current.is_some();
            Ok::<_, TxnError>((existed.then_some(KeyWrite::Delete), existed))
        })
    }

    /// Whether some version of `key` in `db` names `value` (which key a failed read of
    /// `value` from SSD was for: the server's error names the key). Reads no value.
    pub fn key_names_value(&self, db: DbIndex, key: &[u8], value: storage::page::ValueRef) -> bool {
        let Ok(d) = self.inner.db(db) else {
            return false;
        };
        let guard = crossbeam_epoch::pin();
        d.index
            .get(key, &guard)
            .is_some_and(|node| node.names(value, &guard))
    }

    /// Hints the CPU to bring into cache what a lookup of `key` in `db` will touch, ahead of
    /// the command that looks it up (a pipelined batch: the hash probe's cache misses are a
    /// fifth of a pipelined SET or GET). [`KeyPrefetch::Table`] first, then, one command
    /// later, [`KeyPrefetch::Node`], then [`KeyPrefetch::Value`]. Reads nothing a client sees;
    /// changes nothing.
    pub fn prefetch_key(&self, db: DbIndex, key: &[u8], step: KeyPrefetch) {
        let Ok(d) = self.inner.db(db) else {
            return;
        };
        let hash = d.index.hash_of(key);
        match step {
            KeyPrefetch::Table => d.index.prefetch(hash),
            KeyPrefetch::Node => d.index.prefetch_node(hash),
            KeyPrefetch::Value => {
                let guard = crossbeam_epoch::pin();
                if let Some(view) = d.index.get(key, &guard).and_then(|n| n.newest(&guard)) {
                    self.inner.pages.prefetch_value(view.value);
                }
            }
        }
    }

    /// The values of `keys` in `db` that a read now would miss (their newest versions' pages
    /// are on SSD), at most `max`: what later commands of a pipeline will read, fetched
    /// together with the first one's miss. A probe: no snapshot, no value bytes, and not
    /// counted as an access by the tier's policy or the eviction clock; the hit ratio counts
    /// each value found as a miss (`INFO tiering_fetched_ahead`).
    pub fn values_on_ssd<'k>(
        &self,
        db: DbIndex,
        keys: impl IntoIterator<Item = &'k [u8]>,
        max: usize,
    ) -> Vec<storage::page::ValueRef> {
        let Ok(d) = self.inner.db(db) else {
            return Vec::new();
        };
        let guard = crossbeam_epoch::pin();
        let mut cold = Vec::new();
        for key in keys {
            if cold.len() >= max {
                break;
            }
            let newest = d
                .index
                .get(key, &guard)
                .and_then(|node| node.newest(&guard));
            if let Some(view) = newest {
                if !view.tombstone && self.inner.pages.on_ssd(view.value) {
                    cold.push(view.value);
                }
            }
        }
        crate::tier::count_fetched_ahead(&self.inner, cold.len());
        cold
    }

    /// Single-key fast path for a read: `key`'s value at a fresh snapshot (`None` if absent or
    /// expired), as `begin(Isolation::Snapshot)`, `get`, `commit` would read it.
    pub fn get(&self, db: DbIndex, key: &[u8]) -> Result<Option<Entry>, TxnError> {
        let inner = &self.inner;
        inner.db(db)?;
        check_key(key)?;
        let registration = inner.snapshots.register(&inner.oracle);
        let read = || {
            let d = inner.db_at(db, registration.ts)?;
            let guard = crossbeam_epoch::pin();
            let Some(node) = d.index.get(key, &guard) else {
                return Ok(None);
            };
            let Some(version) = node
                .visible(registration.ts, &guard)
                .filter(|v| !v.tombstone)
            else {
                return Ok(None);
            };
            // A GET is an access of the key (LRU clock / LFU counter), as in `Transaction::get`.
            inner.memory.touch(node);
            if is_due_now(inner, version.expiry()) {
                return Ok(None);
            }
            entry_of(inner, &version).map(Some)
        };
        let result = read();
        inner.snapshots.release(&registration);
        result
    }

    /// The engine's clock (the server computes TTL replies and deadlines from it).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// LSN of the newest commit handed to the log (0 when nothing is logged). A reply that
    /// depends on what a snapshot saw waits until this LSN, read after the snapshot, is durable:
    /// then no client learns of a write a crash could still take back.
    pub fn last_logged_lsn(&self) -> u64 {
        self.inner.last_lsn.load(Ordering::Acquire)
    }

    /// The engine clock's time (ms since the Unix epoch).
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Bytes of `db`'s hash index arrays now (MEMORY STATS' `overhead.hashtable.main`); 0 for
    /// a bad index. Walks the database's 1024 hash shards.
    pub fn hash_index_bytes(&self, db: DbIndex) -> u64 {
        self.inner.db(db).map_or(0, |d| d.index.table_bytes())
    }

    /// Keys in `db` whose newest version holds a value (exact, O(1)); 0 for a bad index.
    pub fn dbsize(&self, db: DbIndex) -> u64 {
        self.inner
            .db(db)
            .map_or(0, |d| d.live_keys.load(Ordering::Relaxed).max(0) as u64)
    }

    /// Deletes every key of `db`, atomically, as one logged commit (a transaction of just
    /// [`Transaction::flush_db`]).
    pub fn flush_db(&self, db: DbIndex) -> Result<CommitInfo, TxnError> {
        self.run(Isolation::Serializable, |tx| tx.flush_db(db))
            .map(|((), info)| info)
    }

    /// Deletes every key of every database, atomically, as one logged commit.
    pub fn flush_all(&self) -> Result<CommitInfo, TxnError> {
        self.run(Isolation::Serializable, |tx| tx.flush_all())
            .map(|((), info)| info)
    }

    /// Exchanges the contents of databases `a` and `b`, atomically, as one logged commit.
    pub fn swap_db(&self, a: DbIndex, b: DbIndex) -> Result<CommitInfo, TxnError> {
        self.run(Isolation::Serializable, |tx| tx.swap_db(a, b))
            .map(|((), info)| info)
    }

    /// What `WATCH key` remembers: a snapshot timestamp and the key's version visible in it.
    /// Pass it to [`Transaction::watch`] at EXEC.
    ///
    /// The version is the one visible at the snapshot, not the newest installed one: a commit
    /// above the visible watermark may already be installed in the node while reads that
    /// follow the WATCH (which read at the watermark) still see the value before it. Marking
    /// that in-flight version would let EXEC pass on a value the client never saw, losing the
    /// in-flight update; marking the visible one makes EXEC fail instead.
    pub fn watch_mark(&self, db: DbIndex, key: &[u8]) -> WatchMark {
        let inner = &self.inner;
        // A registered snapshot, so GC keeps the version visible at it while we look.
        let registration = inner.snapshots.register(&inner.oracle);
        let taken_at = registration.ts;
        let seen = inner.db_at(db, taken_at).ok().and_then(|d| {
            let guard = crossbeam_epoch::pin();
            d.index
                .get(key, &guard)
                .and_then(|node| node.visible(taken_at, &guard))
        });
        inner.snapshots.release(&registration);
        // Redis's `watchForKey` notes whether the key is logically expired already; a live
        // key's deadline lets EXEC see it expire before active expiry deletes it.
        let live = seen.filter(|v| !v.tombstone);
        let expired = live.is_some_and(|v| is_due_now(inner, v.expiry()));
        WatchMark {
            version: CommitTs(seen.map_or(0, |v| v.commit_ts)),
            taken_at: CommitTs(taken_at),
            deadline: live.filter(|_| !expired).and_then(|v| v.expiry()),
            expired,
        }
    }

    /// A random live key of `db`, or `None` if it has none.
    pub fn random_key(&self, db: DbIndex) -> Option<Bytes> {
        random_key_in(&self.inner, db)
    }

    /// Active expiry: deletes up to `max_keys` keys whose deadline has passed, found through the
    /// timing wheel, as one logged commit of explicit deletes. Returns how many were deleted.
    /// Also advances the clock keys' access words are stamped with (LRU/LFU), so call it
    /// regularly (the server does every 10 ms).
    pub fn expire_tick(&self, max_keys: usize) -> usize {
        crate::commit::expire_tick(&self.inner, max_keys)
    }

    /// Whether the timing wheel may still hold keys due now: [`Engine::expire_tick`] can come
    /// back empty while it moves a crowded slot down a level (a million keys due in the same
    /// millisecond), so an expiry loop stops on this, not on an empty tick.
    pub fn expiry_pending(&self) -> bool {
        let now = self.inner.clock.now_ms();
        !self.inner.wheel.lock().is_caught_up(now)
    }

    /// Sets `maxmemory`, the eviction policy and its tuning; takes effect at the next
    /// [`Engine::make_room`]. Switching between LRU and LFU policies reinterprets every key's
    /// access word, as Redis does.
    pub fn set_memory_config(&self, config: MemoryConfig) {
        self.inner.memory.set_config(config);
    }

    /// The memory settings in force.
    pub fn memory_config(&self) -> MemoryConfig {
        self.inner.memory.config()
    }

    /// `used_memory` and its parts (a few atomic loads, no scan).
    pub fn memory_stats(&self) -> MemoryStats {
        self.inner
            .memory
            .stats(&self.inner.pages, &self.inner.compactor)
    }

    /// Makes room for a write that may grow memory (Redis's `denyoom` commands): when the memory
    /// counted for eviction is over `maxmemory`, evicts keys as the policy says (each batch one
    /// logged commit of deletes) until it is not, or fails with [`TxnError::OutOfMemory`] under
    /// `noeviction` or when nothing is left to evict. Free (one load) without a limit.
    pub fn make_room(&self) -> Result<(), TxnError> {
        crate::memory::evict::make_room(&self.inner)
    }

    /// Unlinks versions no snapshot can see and removes dead key nodes (bounded work).
    pub fn gc(&self) -> GcStats {
        gc::gc(&self.inner)
    }

    /// One paced step of compaction (see `compact.rs`): frees old value copies no snapshot can
    /// read any more, then, if the value pages are fragmented past the configured threshold,
    /// moves live values out of the emptiest pages within a budget paced by the rate values
    /// are freed. The server calls it every 10 ms.
    pub fn compact_tick(&self) -> CompactionStats {
        compact::tick(&self.inner)
    }

    /// Attaches the SSD tier's spill file: from now on [`Engine::tier_tick`] keeps at most
    /// `resident_budget` bytes of sealed value pages in RAM, choosing by `policy`, and reads
    /// of a value whose page went to SSD fail with `NotResident` (see
    /// [`TxnError::page_not_resident`]) until [`Engine::load_page`]. False if a file with
    /// pages on it is attached already.
    pub fn attach_spill_file(
        &self,
        file: storage::tier::SpillFile,
        resident_budget: u64,
        policy: storage::tier::EvictionPolicy,
    ) -> bool {
        crate::tier::attach(&self.inner, file, resident_budget, policy)
    }

    /// One step of the SSD tier's driver (`tier.rs`): pages over the budget go to SSD, and
    /// the frames of pages no reader can hold any more go back to the OS. Does nothing
    /// without a spill file.
    pub fn tier_tick(&self) -> crate::tier::TierStats {
        crate::tier::tick(&self.inner)
    }

    /// The spill file's counters and whether it bypasses the page cache (`O_DIRECT`), if one
    /// is attached (INFO's tiering section).
    pub fn spill_stats(&self) -> Option<(storage::tier::SpillStats, bool)> {
        let stats = self.inner.pages.spill_stats()?;
        Some((stats, self.inner.pages.spill_file_direct().unwrap_or(false)))
    }

    /// Brings a value from SSD into RAM after a read failed with `NotResident`
    /// ([`TxnError::value_not_resident`]): a small value alone, promoted into a RAM page; a
    /// large one with its page. Blocks on the disk: call it off the async workers.
    pub fn fetch_value(
        &self,
        value: storage::page::ValueRef,
    ) -> Result<Option<crate::tier::Prefetched>, TxnError> {
        crate::tier::fetch(&self.inner, value)
    }

    /// How to serve a miss of `value` (recorded with the promotion doorkeeper once): read its
    /// blocks asynchronously ([`crate::tier::Miss::Read`]: submit the read, then
    /// [`Engine::complete_read_through`]) or fetch it on a blocking thread
    /// ([`Engine::fetch_missed`]).
    pub fn plan_miss(&self, value: storage::page::ValueRef) -> Result<crate::tier::Miss, TxnError> {
        crate::tier::plan_miss(&self.inner, value)
    }

    /// Checks the blocks an asynchronous read brought back (no disk access: call it
    /// anywhere) and hands the value for the command's retry; `None` if its page changed
    /// meanwhile.
    pub fn complete_read_through(
        &self,
        plan: &storage::page::ColdPlan,
        blocks: &[u8],
        took: std::time::Duration,
    ) -> Result<Option<crate::tier::Prefetched>, TxnError> {
        crate::tier::complete_read_through(&self.inner, plan, blocks, took)
    }

    /// [`Engine::fetch_value`] with the promotion decided by [`Engine::plan_miss`]. Blocks
    /// on the disk.
    pub fn fetch_missed(
        &self,
        value: storage::page::ValueRef,
        promote: bool,
    ) -> Result<Option<crate::tier::Prefetched>, TxnError> {
        crate::tier::fetch_decided(&self.inner, value, promote)
    }

    /// Reads several values a command missed in one page on SSD with one read of the page and
    /// hands them back for its retry (see [`Engine::with_prefetched`]); a page of one large
    /// value is loaded instead. Blocks on the disk: call it off the async workers.
    pub fn fetch_from_page(
        &self,
        values: &[storage::page::ValueRef],
    ) -> Result<Vec<crate::tier::Prefetched>, TxnError> {
        crate::tier::fetch_from_page(&self.inner, values)
    }

    /// Runs `f` (a command's retry after its misses) with the values [`Engine::fetch_value`]
    /// read through for it readable on this thread, while their pages' images on SSD are
    /// unchanged.
    pub fn with_prefetched<R>(
        &self,
        prefetched: &[crate::tier::Prefetched],
        f: impl FnOnce() -> R,
    ) -> R {
        crate::tier::with_prefetched(prefetched, false, f)
    }

    /// [`Engine::with_prefetched`] for a command's first run, with values fetched while an
    /// earlier command of its pipeline missed ([`Engine::values_on_ssd`]): the hit ratio
    /// counts them as misses that needed no second run.
    pub fn with_fetched_ahead<R>(
        &self,
        prefetched: &[crate::tier::Prefetched],
        f: impl FnOnce() -> R,
    ) -> R {
        crate::tier::with_prefetched(prefetched, true, f)
    }

    /// The SSD tier's counters and rates (INFO's tiering section).
    pub fn tier_info(&self) -> crate::tier::TierInfo {
        crate::tier::info(&self.inner)
    }

    /// Whether writes should wait for the SSD tier to catch up (it writes pages out more
    /// slowly than writes fill them: RAM is over `maxmemory` by more than a headroom). The
    /// server makes a write wait, off its worker, a bounded time. A few atomic loads.
    pub fn tier_write_pressure(&self) -> bool {
        crate::tier::write_pressure(&self.inner)
    }

    /// Whether a FLUSHDB, FLUSHALL or SWAPDB is waiting for or holding the commit lock, which
    /// it holds for O(keys) (a tombstone or a moved version per key). A server makes its
    /// writes wait for the end of it off its threads instead of blocking one on the lock,
    /// so the reads sharing that thread go on. One relaxed load.
    pub fn keyspace_op_running(&self) -> bool {
        self.inner.keyspace_ops.load(Ordering::Relaxed) > 0
    }

    /// Whether a spill file is attached: reads may then fail with `NotResident`
    /// ([`TxnError::page_not_resident`]). One relaxed load.
    pub fn tier_attached(&self) -> bool {
        crate::tier::attached(&self.inner)
    }

    /// Brings a page from SSD back into RAM, after a read failed with `NotResident`. Blocks
    /// on the disk: call it off the async workers.
    pub fn load_page(&self, page: storage::page::PageId) -> Result<(), TxnError> {
        crate::tier::load_page(&self.inner, page).map_err(TxnError::from)
    }

    /// Moves the live values out of every sealed page at most `fill_max_pct` percent full,
    /// whatever it costs, and frees the old copies no snapshot can read (tests, tools).
    pub fn compact_now(&self, fill_max_pct: u32) -> CompactionStats {
        compact::compact_now(&self.inner, fill_max_pct)
    }

    /// Frees the old copies of moved values that no snapshot can read any more.
    pub fn release_retired(&self) {
        compact::release_retired_now(&self.inner)
    }

    /// Compaction's counters since start, and the old copies waiting now.
    pub fn compaction_stats(&self) -> CompactionStats {
        self.inner.compactor.stats()
    }

    /// The compaction settings in force.
    pub fn compaction_config(&self) -> CompactionConfig {
        self.inner.compactor.config()
    }

    /// Sets the compaction settings (Redis's `activedefrag` family); the next tick obeys them.
    pub fn set_compaction_config(&self, config: CompactionConfig) {
        self.inner.compactor.set_config(config)
    }

    /// Gives back memory a dataset that shrank (FLUSHALL, mass deletes) no longer needs: the
    /// bucket arrays of hash shards holding less than half their capacity, and the resident
    /// empty value pages beyond a few, and the buffers of GC's queue and compaction's retire list.
    pub fn release_memory(&self) {
        for d in self.inner.keyspaces.all() {
            d.index.shrink_oversized();
        }
        self.inner.pages.release_free_pages();
        // Queues keep the capacity a burst grew; their touched pages stay resident.
        self.inner.gc_queue.lock().shrink();
        self.inner.compactor.shrink();
    }

    /// Replays one logged record (recovery). Records must come in commit-timestamp order; the
    /// commit sink is not called.
    pub fn apply_record(&self, record: &LogRecord) -> Result<(), TxnError> {
        commit::apply_record(&self.inner, record)
    }

    /// Counters for INFO and tests.
    pub fn stats(&self) -> EngineStats {
        let inner = &self.inner;
        let dbs = (0..DATABASES as DbIndex)
            .filter_map(|db| inner.db(db).ok())
            .map(|d| DbStats {
                keys: d.live_keys.load(Ordering::Relaxed).max(0) as u64,
                expires: d.expires.load(Ordering::Relaxed).max(0) as u64,
                versions: d.versions.load(Ordering::Relaxed).max(0) as u64,
                key_nodes: d.index.len() as u64,
            })
            .collect();
        // One guard, dropped here: a guard taken inside the struct expression below would live
        // to the end of it, and a second lock of the same mutex there would deadlock.
        let (gc_queued, gc_queue_dropped) = {
            let queue = inner.gc_queue.lock();
            (queue.len() as u64, queue.dropped())
        };
        EngineStats {
            dbs,
            pages: inner.pages.stats(),
            visible_ts: CommitTs(inner.oracle.visible()),
            low_watermark: CommitTs(inner.snapshots.low_watermark(&inner.oracle)),
            active_snapshots: inner.snapshots.len() as u64,
            gc_runs: inner.gc_runs.load(Ordering::Relaxed),
            gc_versions_unlinked: inner.gc_versions_unlinked.load(Ordering::Relaxed),
            gc_keys_removed: inner.gc_keys_removed.load(Ordering::Relaxed),
            gc_queued,
            gc_queue_dropped,
            expired_keys: inner.expired_keys.load(Ordering::Relaxed),
            expiry_wheel_entries: inner.wheel.lock().len() as u64,
            memory: self.memory_stats(),
            oldest_snapshot: self.oldest_snapshot(),
            snapshots_aborted: inner.long_snapshots.aborted(),
            lazyfree_pending_objects: inner.keyspaces.retired_nodes(),
            lazyfreed_objects: inner.keyspaces.lazyfreed(),
            conflicts: inner.conflicts.load(Ordering::Relaxed),
            watch_failures: inner.watch_failures.load(Ordering::Relaxed),
        }
    }
}

/// A random live key of `db` in the live index (not at a snapshot), or `None` if it has none.
pub(crate) fn random_key_in(inner: &Inner, db: DbIndex) -> Option<Bytes> {
    let d = inner.db(db).ok()?;
    if d.live_keys.load(Ordering::Relaxed) <= 0 {
        return None;
    }
    let seed = inner
        .random_state
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    crate::transaction::random_live_key(inner, d, splitmix(seed), inner.clock.now_ms())
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
};
