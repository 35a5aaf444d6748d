//! Version garbage collection below the low watermark.
//!
//! Invariant: let `W` be the low watermark (the oldest registered snapshot, or the visible
//! timestamp if none; see `snapshot.rs`). For each key, the newest version with
//! `commit_ts <= W` ("keep") is what every present and future snapshot resolves to at the
//! latest, so every version older than keep is unreachable by readers: GC cuts the chain
//! below keep, frees those versions' values (a value shared by a TTL-only change, or moved into
//! the other database's chain by SWAPDB, is freed once, through the one chain that owns it:
//! see `VersionView::older_value_in_use`), and destroys the version nodes
//! through the epoch collector. A key whose only version left is a tombstone at or below `W`
//! has its node removed from the index.
//!
//! Finding the garbage: a commit that installs a version over an older one (overwrite,
//! delete, TTL change) queues `(commit_ts, db, key)` in the [`GcQueue`]; a commit that aborts
//! after reserving index nodes for new keys queues those keys as orphans. Every version that
//! can become garbage is therefore named by a queue entry whose timestamp is at most the
//! timestamp at which it became garbage, and GC visits exactly those keys once the watermark
//! passes them: its work follows the write rate, not the key count. Entries are pushed under
//! the commit lock, so the queue is in timestamp order (orphans, pushed after it, carry
//! timestamp 0 and are always due). The one exception: a single-key commit that finds no
//! snapshot open right after it published cuts the versions it superseded itself, under the
//! commit lock, and queues nothing (`commit.rs`, `reclaim_or_queue`): no snapshot can read them
//! any more (see `snapshot.rs`), so they are no longer garbage to find. The queue is bounded ([`GC_QUEUE_ENTRIES_MAX`]); an entry
//! that does not fit is dropped and the next calls fall back to a sweep of every database, which
//! finds all garbage, until one sweep begun after the last drop has completed.
//!
//! All chain surgery happens under the commit lock, in batches of [`GC_KEYS_PER_BATCH`] keys,
//! so writers wait at most one short batch and readers never wait. Work per call is bounded
//! by [`GC_KEYS_PER_CALL`].
//!
//! # Removing a node forgets the key's history: removal marks
//!
//! Snapshots are protected by the watermark, but a WATCH is not a snapshot (a session may hold
//! one for ever without holding back GC). A WATCH remembers the key's newest version and the
//! visible timestamp when it was taken ([`crate::WatchMark`]); if the key then gets a version
//! (SET) and loses it (DEL), GC may remove its node, and at EXEC the key looks exactly as
//! when watched: absent, no node. So, before removing a dead node, GC raises its
//! [`RemovalMarks`] bucket to the node's tombstone timestamp (under the commit lock, before the
//! hash-table removal that readers synchronise with). Invariant: for every key, the newest
//! tombstone timestamp of any node of it that GC removed is <= its bucket's mark. The EXEC
//! check (`commit.rs`) then fails a watch on a key absent at EXEC iff the mark exceeds both
//! timestamps the watch remembered: any change after the watch has a timestamp above both, and
//! its node's removal would have raised the mark at least to it. This is sound and O(1) per
//! watched key; it costs a false failure only when another key of the same bucket
//! ([`REMOVAL_MARK_BUCKETS`] per database) was removed after the WATCH, and holds back no GC.

use std::collections::{BTreeSet, VecDeque};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use crossbeam_epoch::Guard;

use crate::checkpoint_scan::ScanProgress;
use crate::commit_lock::CommitLocked;
use crate::engine::{Db, Inner};
use crate::index::{KeyIndex, KeyNode};
use crate::limits::{
    DATABASES, GC_KEYS_PER_BATCH, GC_KEYS_PER_CALL, GC_QUEUE_ENTRIES_MAX, REMOVAL_MARK_BUCKETS,
};
use crate::memory::{self, Accounting};
use crate::timestamp::CommitTs;
use crate::DbIndex;

/// Per database: for each bucket of keys, the newest tombstone timestamp of a key node GC
/// removed (see the module docs).
pub(crate) struct RemovalMarks {
    buckets: Box<[AtomicU64]>,
    /// Seeded per engine, so clients cannot pick keys that share one bucket everywhere.
    hasher: std::collections::hash_map::RandomState,
}

impl Default for RemovalMarks {
    fn default() -> Self {
        RemovalMarks {
            buckets: (0..REMOVAL_MARK_BUCKETS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl RemovalMarks {
    fn bucket(&self, key: &[u8]) -> Option<&AtomicU64> {
        let hash = self.hasher.hash_one(key);
        self.buckets
            .get((hash % self.buckets.len().max(1) as u64) as usize)
    }

    /// Records that a node of `key` whose newest version is the tombstone at `ts` is about to
    /// be removed. Caller holds the commit lock, before the removal.
    pub(crate) fn note(&self, key: &[u8], ts: u64) {
        if let Some(bucket) = self.bucket(key) {
            bucket.fetch_max(ts, Ordering::Release);
        }
    }

    /// At least the newest tombstone timestamp of any removed node of `key`.
    pub(crate) fn newest(&self, key: &[u8]) -> u64 {
        self.bucket(key)
            .map_or(u64::MAX, |bucket| bucket.load(Ordering::Acquire))
    }
}

/// What one [`crate::Engine::gc`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// The low watermark used.
    pub low_watermark: CommitTs,
    /// Key nodes examined.
    pub keys_examined: u64,
    /// Versions unlinked.
    pub versions_unlinked: u64,
    /// Values whose page space was freed.
    pub values_freed: u64,
    /// Dead key nodes removed from the index.
    pub keys_removed: u64,
    /// True when this call left nothing due behind: every queued entry left is above the
    /// watermark and no sweep is pending. Call `gc` until it says so to collect everything.
    pub caught_up: bool,
    /// Entries still queued after this call (due or not).
    pub queued: u64,
    /// Keys set aside until the checkpoint in progress has read them (see
    /// `checkpoint_scan.rs`), after this call.
    pub deferred: u64,
}

/// A key as queued: inline when short, so the common small key costs no allocation.
enum QueuedKey {
    Inline { len: u8, bytes: [u8; 22] },
    Heap(Box<[u8]>),
}

impl QueuedKey {
    fn new(key: &[u8]) -> QueuedKey {
        let mut bytes = [0u8; 22];
        match bytes.get_mut(..key.len()) {
            Some(prefix) => {
                prefix.copy_from_slice(key);
                QueuedKey::Inline {
                    len: key.len() as u8,
                    bytes,
                }
            }
            None => QueuedKey::Heap(Box::from(key)),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            QueuedKey::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            QueuedKey::Heap(bytes) => bytes,
        }
    }
}

/// One key that may hold garbage once the watermark reaches `ts`.
struct GcEntry {
    ts: u64,
    db: DbIndex,
    /// Reserved for a commit that aborted: the node may be in the skip list only.
    orphan: bool,
    key: QueuedKey,
}

/// Room a drained GC queue keeps (see `GcQueue::take_due`), so steady churn does not
/// reallocate it every GC tick.
const GC_QUEUE_SHRINK_ENTRIES: usize = 1 << 12;

/// Keys that may hold garbage, oldest first (see the module docs).
/// Entries a drained GC queue keeps room for when it gives its buffer back.
const GC_QUEUE_SHRUNK_ENTRIES: usize = 1024;

pub(crate) struct GcQueue {
    entries: VecDeque<GcEntry>,
    capacity: usize,
    /// Entries dropped because the queue was full, ever.
    dropped: u64,
    /// The newest timestamp among them: a sweep covers them only once the watermark reaches
    /// it, as the versions they superseded are garbage only from then on.
    dropped_max_ts: u64,
}

impl GcQueue {
    /// Gives back the buffer a burst of superseded keys grew (up to 12 MiB at
    /// [`GC_QUEUE_ENTRIES_MAX`]): a `VecDeque` keeps its capacity, and its touched pages stay
    /// resident after it drains (2 MB after a churn then FLUSHALL). Keeps room for twice what
    /// it holds.
    pub(crate) fn shrink(&mut self) {
        let keep = self
            .entries
            .len()
            .saturating_mul(2)
            .max(GC_QUEUE_SHRUNK_ENTRIES);
        if self.entries.capacity() > keep {
            self.entries.shrink_to(keep);
        }
    }

    /// An empty queue holding at most `capacity` entries (at most [`GC_QUEUE_ENTRIES_MAX`]).
    pub(crate) fn new(capacity: usize) -> GcQueue {
        GcQueue {
            entries: VecDeque::new(),
            capacity: capacity.min(GC_QUEUE_ENTRIES_MAX),
            dropped: 0,
            dropped_max_ts: 0,
        }
    }

    fn push(&mut self, entry: GcEntry) {
        if self.entries.len() >= self.capacity {
            self.note_dropped(entry.ts);
        } else {
            self.entries.push_back(entry);
        }
    }

    /// Counts an entry at `ts` that could not be kept: the sweep covers it.
    fn note_dropped(&mut self, ts: u64) {
        self.dropped += 1;
        self.dropped_max_ts = self.dropped_max_ts.max(ts);
    }

    /// Queues `key` of `db`, which got a version at `ts` over an older one. Caller holds the
    /// commit lock (that keeps the queue in timestamp order).
    pub(crate) fn superseded(&mut self, ts: CommitTs, db: DbIndex, key: &[u8]) {
        self.push(GcEntry {
            ts: ts.0,
            db,
            orphan: false,
            key: QueuedKey::new(key),
        });
    }

    /// Queues `key` of `db`, whose node an aborted commit reserved.
    pub(crate) fn orphaned(&mut self, db: DbIndex, key: &[u8]) {
        self.push(GcEntry {
            ts: 0,
            db,
            orphan: true,
            key: QueuedKey::new(key),
        });
    }

    /// Entries queued, due or not.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries dropped because the queue was full, ever.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Takes up to `n` entries due at `watermark` from the front.
    fn take_due(&mut self, watermark: u64, n: usize) -> Vec<GcEntry> {
        let due = self
            .entries
            .iter()
            .take(n)
            .take_while(|e| e.ts <= watermark)
            .count();
        let taken = self.entries.drain(..due).collect();
        // A FLUSHALL queues every key; its room would otherwise stay allocated for good.
        if self.entries.is_empty() && self.entries.capacity() > GC_QUEUE_SHRINK_ENTRIES {
            self.entries.shrink_to(GC_QUEUE_SHRINK_ENTRIES);
        }
        taken
    }
}

/// Where the fallback sweep resumes, and whether one is needed.
#[derive(Debug, Default)]
pub(crate) struct GcState {
    db: usize,
    after: Option<Vec<u8>>,
    /// `GcQueue::dropped` as of the start of the sweep in progress (`None`: none in progress).
    sweep_from_dropped: Option<u64>,
    /// `GcQueue::dropped` covered by the last completed sweep.
    swept_dropped: u64,
    /// Keys whose old versions the checkpoint in progress still reads, to collect once it has
    /// read them or ended (see `checkpoint_scan.rs`). Bounded like the queue.
    deferred: BTreeSet<(DbIndex, Bytes)>,
}

impl GcState {
    /// Defers `key` of `db`; false if the set is full (the caller counts the entry as dropped).
    fn defer(&mut self, db: DbIndex, key: &[u8]) -> bool {
        if self.deferred.len() >= GC_QUEUE_ENTRIES_MAX {
            return false;
        }
        self.deferred.insert((db, Bytes::copy_from_slice(key)));
        true
    }
}

/// One bounded GC step (see the module docs).
pub(crate) fn gc(inner: &Inner) -> GcStats {
    let mut state = inner.gc_state.lock();
    // The watermarks and the checkpoint scan's progress read together (`checkpoint_scan.rs`).
    // `scan` is set when the checkpoint alone holds the watermark below `others`.
    let (watermark, others, scan) = inner
        .checkpoint_scan
        .low_watermarks(&inner.snapshots, &inner.oracle);
    let mut stats = GcStats {
        low_watermark: CommitTs(watermark),
        ..GcStats::default()
    };
    let guard = crossbeam_epoch::pin();
    // Flushed keyspaces first (`keyspace.rs`): a FLUSHALL's memory goes back within a few
    // calls, at GC's pace.
    let mut examined =
        crate::keyspace::reclaim(inner, watermark, GC_KEYS_PER_CALL, &guard, &mut stats);
    // Keys deferred while the checkpoint had not read them, now that it has (or has ended).
    while examined < GC_KEYS_PER_CALL && !state.deferred.is_empty() {
        let lock = inner.commit_lock.lock();
        let batch = take_deferred(inner, &mut state, scan.as_ref(), GC_KEYS_PER_BATCH);
        if batch.is_empty() {
            break;
        }
        examined += batch.len();
        stats.keys_examined += batch.len() as u64;
        for (db, key) in &batch {
            let Ok(d) = inner.db(*db) else { continue };
            let marks = inner.keyspaces.removed(*db);
            if let Some(node) = d.index.get(key, &guard) {
                collect(inner, &lock, d, marks, node, others, &guard, &mut stats);
            }
        }
        drop(lock);
    }
    // The queue: it names exactly the keys that may hold garbage.
    while examined < GC_KEYS_PER_CALL {
        let batch = inner.gc_queue.lock().take_due(others, GC_KEYS_PER_BATCH);
        if batch.is_empty() {
            break;
        }
        examined += batch.len();
        stats.keys_examined += batch.len() as u64;
        let lock = inner.commit_lock.lock();
        // The checkpoint's snapshot, below `others` (else `lo == others`). Under the commit
        // lock: after a SWAPDB above it, it is an ordinary snapshot again, read key by key no
        // more (see `checkpoint_scan.rs`).
        let (lo, per_key) = match &scan {
            Some(p) if !inner.checkpoint_scan.swapped_since(p.ts) => (p.ts, Some(p)),
            _ => (watermark, None),
        };
        let mut overflow = Vec::new();
        for entry in &batch {
            let Ok(d) = inner.db(entry.db) else { continue };
            let marks = inner.keyspaces.removed(entry.db);
            let key = entry.key.as_bytes();
            match d.index.get(key, &guard) {
                Some(node) if lo < others && !per_key.is_some_and(|p| p.passed(entry.db, key)) => {
                    // Keep what the checkpoint reads, drop what neither it nor the others
                    // read, and come back for the rest once it has read the key.
                    collect(inner, &lock, d, marks, node, lo, &guard, &mut stats);
                    if per_key.is_some() && d.index.get(key, &guard).is_some() {
                        let (unlinked, freed) =
                            cut_interval(inner, &lock, d, node, lo, others, &guard);
                        stats.versions_unlinked += unlinked;
                        stats.values_freed += freed;
                    }
                    if entry.ts > lo && !state.defer(entry.db, key) {
                        overflow.push(entry.ts);
                    }
                }
                Some(node) => collect(inner, &lock, d, marks, node, others, &guard, &mut stats),
                // Under the commit lock a node outside the hash table is an unadopted
                // reservation: empty, read by no one.
                None if entry.orphan && d.index.remove_reserved(key, &guard) => {
                    stats.keys_removed += 1;
                }
                None => {}
            }
        }
        drop(lock);
        if !overflow.is_empty() {
            let mut queue = inner.gc_queue.lock();
            for ts in overflow {
                queue.note_dropped(ts);
            }
        }
    }
    // Then the sweep, while entries were dropped that no completed sweep covered. It starts
    // only once the watermark has reached every dropped entry's timestamp: a sweep at a lower
    // watermark keeps the versions those entries superseded (an open snapshot may read them),
    // and once it counted as covering them nothing would name those keys again, leaking
    // their old versions for good. (Entries dropped while a sweep runs have later timestamps
    // and are the next sweep's.)
    let (dropped, dropped_max_ts) = {
        let queue = inner.gc_queue.lock();
        (queue.dropped, queue.dropped_max_ts)
    };
    if state.sweep_from_dropped.is_none()
        && dropped > state.swept_dropped
        && watermark >= dropped_max_ts
    {
        state.sweep_from_dropped = Some(dropped);
    }
    let mut sweeping = state.sweep_from_dropped.is_some();
    if sweeping && examined < GC_KEYS_PER_CALL {
        let done = sweep(
            inner,
            &mut state,
            watermark,
            GC_KEYS_PER_CALL - examined,
            &guard,
            &mut stats,
        );
        if done {
            state.swept_dropped = state.sweep_from_dropped.take().unwrap_or(dropped);
            sweeping = false;
        }
    }
    let deferred_due = first_deferred_due(inner, &state, scan.as_ref());
    stats.deferred = state.deferred.len() as u64;
    let queue = inner.gc_queue.lock();
    stats.queued = queue.entries.len() as u64;
    let due_left = queue.entries.front().is_some_and(|e| e.ts <= others)
        || deferred_due
        || crate::keyspace::reclaim_due(inner, watermark);
    stats.caught_up = !due_left && !sweeping && queue.dropped <= state.swept_dropped;
    drop(queue);
    if !due_left && !sweeping {
        // Nothing left GC could free at this watermark (a sweep waiting for the watermark to
        // pass dropped entries is waiting on the snapshots, too): the pinned-memory limit may
        // now blame the snapshot holding it (`snapshot_limits.rs`).
        inner.long_snapshots.note_gc_settled(watermark);
    }
    inner.gc_runs.fetch_add(1, Ordering::Relaxed);
    record(inner, &stats);
    stats
}

/// Up to `n` deferred keys GC may now collect at the others' watermark: all of them once no
/// checkpoint holds the watermark, else those its scan has passed (a prefix of the set, as
/// both go in (database, key) order), none after a SWAPDB above its snapshot. Caller holds
/// the commit lock (the SWAPDB check needs it).
fn take_deferred(
    inner: &Inner,
    state: &mut GcState,
    scan: Option<&ScanProgress>,
    n: usize,
) -> Vec<(DbIndex, Bytes)> {
    let mut taken = Vec::new();
    while taken.len() < n && first_deferred_due(inner, state, scan) {
        match state.deferred.pop_first() {
            Some(entry) => taken.push(entry),
            None => break,
        }
    }
    taken
}

/// Whether GC may collect the first deferred key now (see [`take_deferred`]).
fn first_deferred_due(inner: &Inner, state: &GcState, scan: Option<&ScanProgress>) -> bool {
    let Some((db, key)) = state.deferred.first() else {
        return false;
    };
    match scan {
        None => true,
        Some(p) => !inner.checkpoint_scan.swapped_since(p.ts) && p.passed(*db, key),
    }
}

fn record(inner: &Inner, stats: &GcStats) {
    inner
        .gc_versions_unlinked
        .fetch_add(stats.versions_unlinked, Ordering::Relaxed);
    inner
        .gc_keys_removed
        .fetch_add(stats.keys_removed, Ordering::Relaxed);
}

/// Collects the nodes of `keys` now (eviction calls it for the keys it just deleted, so their
/// memory is released at once when no snapshot needs them, instead of at GC's next pass).
pub(crate) fn collect_keys(inner: &Inner, keys: &[(DbIndex, Bytes)]) -> GcStats {
    let _state = inner.gc_state.lock();
    let lock = inner.commit_lock.lock();
    let watermark = inner.snapshots.low_watermark(&inner.oracle);
    let mut stats = GcStats {
        low_watermark: CommitTs(watermark),
        ..GcStats::default()
    };
    let guard = crossbeam_epoch::pin();
    for (db, key) in keys {
        let Ok(d) = inner.db(*db) else { continue };
        // Looked up afresh under both locks: the node found is the key's current one.
        if let Some(node) = d.index.get(key, &guard) {
            stats.keys_examined += 1;
            let marks = inner.keyspaces.removed(*db);
            collect(inner, &lock, d, marks, node, watermark, &guard, &mut stats);
        }
    }
    drop(lock);
    record(inner, &stats);
    stats
}

/// Cuts `node`'s chain below the watermark and removes the node if nothing is left, noting a
/// dead node's removal in `marks` (its database's).
#[allow(clippy::too_many_arguments)]
pub(crate) fn collect(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    d: &Db,
    marks: Option<&RemovalMarks>,
    node: &KeyNode,
    watermark: u64,
    guard: &Guard,
    stats: &mut GcStats,
) {
    let a = &inner.memory.accounting;
    let (unlinked, freed) = cut_chain(inner, locked, d, node, watermark, guard);
    stats.versions_unlinked += unlinked;
    stats.values_freed += freed;
    if node.is_empty(guard) {
        // Under the commit lock every node in the hash table holds a version, so an empty one
        // was reserved by a commit that aborted, or by one that has not taken the lock yet (it
        // will insert a fresh node). Either way nothing reads it, and it was never counted.
        d.index.remove(node.key());
        stats.keys_removed += 1;
    } else if node.is_dead(watermark, guard) {
        // The removal forgets the key's history: a WATCH may need it (see above).
        // (Reclaim of a flushed keyspace notes its own marks and passes none.)
        if let Some(marks) = marks {
            marks.note(node.key(), node.newest_ts(guard));
        }
        d.index.remove(node.key());
        d.versions.fetch_sub(1, Ordering::Relaxed);
        Accounting::sub(&a.garbage_node_bytes, memory::node_bytes(node.key().len()));
        stats.keys_removed += 1;
    }
}

/// Cuts `node`'s chain below `watermark` (a timestamp no registered or future snapshot reads
/// below), frees the values no remaining version uses, and counts it: memory accounting and
/// the database's version count. Returns (versions unlinked, values freed). Caller holds the
/// commit lock. GC and the single-key commit path (`commit::reclaim_or_queue`) both cut here,
/// so the counters cannot drift apart.
pub(crate) fn cut_chain(
    inner: &Inner,
    _locked: &CommitLocked<'_>,
    d: &Db,
    node: &KeyNode,
    watermark: u64,
    guard: &Guard,
) -> (u64, u64) {
    // SAFETY (of each free): no registered snapshot can see these versions (they are older
    // than the version kept, whose timestamp is <= every snapshot), and their values are not
    // shared with a version that stays (see `KeyNode::cut_below`).
    cut_counted(inner, d, |free| node.cut_below(watermark, guard, free))
}

/// Unlinks the versions of `node` no snapshot reads when every snapshot is at `lo` (the
/// checkpoint's) or at `hi` and above (`KeyNode::cut_between`), frees their values and counts
/// it as [`cut_chain`] does. Returns (versions unlinked, values freed). Caller holds the commit
/// lock.
fn cut_interval(
    inner: &Inner,
    _locked: &CommitLocked<'_>,
    d: &Db,
    node: &KeyNode,
    lo: u64,
    hi: u64,
    guard: &Guard,
) -> (u64, u64) {
    if lo >= hi {
        return (0, 0);
    }
    // SAFETY (of each free): the checkpoint reads the version kept for `lo`, every other
    // snapshot one at or above the version kept for `hi`, and each value belongs to an
    // unlinked version alone (see `KeyNode::cut_between`).
    cut_counted(inner, d, |free| node.cut_between(lo, hi, guard, free))
}

/// Runs a chain cut `cut`, which unlinks versions no reader can reach and hands it each value
/// only they used, frees those values and counts the whole: the one accounting of both cuts.
fn cut_counted(
    inner: &Inner,
    d: &Db,
    cut: impl FnOnce(&mut dyn FnMut(storage::page::ValueRef)) -> u64,
) -> (u64, u64) {
    let a = &inner.memory.accounting;
    let mut freed = 0;
    let unlinked = cut(&mut |value| {
        // SAFETY: the caller's cut hands over only values no reader can reach (see above).
        if unsafe { inner.pages.free(value) }.is_ok() {
            freed += 1;
            Accounting::sub(&a.garbage_value_bytes, value.footprint());
        }
    });
    Accounting::sub(&a.older_versions, unlinked);
    d.versions.fetch_sub(unlinked as i64, Ordering::Relaxed);
    (unlinked, freed)
}

/// Up to `budget` keys of the sweep over every database; true when it completed.
fn sweep(
    inner: &Inner,
    state: &mut GcState,
    watermark: u64,
    budget: usize,
    guard: &Guard,
    stats: &mut GcStats,
) -> bool {
    let mut examined = 0usize;
    let mut dbs_finished = 0usize;
    while examined < budget && dbs_finished < DATABASES {
        let db = state.db % DATABASES;
        let Ok(d) = inner.db(db as DbIndex) else {
            break;
        };
        let marks = inner.keyspaces.removed(db as DbIndex);
        // Collect a batch of nodes after the cursor (lock-free), then operate under the lock.
        let mut batch: Vec<*const KeyNode> = Vec::with_capacity(GC_KEYS_PER_BATCH);
        let start = match &state.after {
            Some(key) => Bound::Excluded(key.as_slice()),
            None => Bound::Unbounded,
        };
        d.index.for_each_in(start, Bound::Unbounded, &mut |node| {
            batch.push(node as *const KeyNode);
            batch.len() < GC_KEYS_PER_BATCH
        });
        let exhausted = batch.len() < GC_KEYS_PER_BATCH;
        examined += batch.len();
        stats.keys_examined += batch.len() as u64;
        // The cursor: the last key of the batch, taken before any removal.
        let last_key = batch.last().map(|pointer| {
            // SAFETY: as below; no removal has happened yet.
            unsafe { &**pointer }.key().to_vec()
        });
        let lock = inner.commit_lock.lock();
        for pointer in &batch {
            // SAFETY: nodes are removed only by GC (serialised by `gc_state`) under the commit
            // lock, and destroyed only after `guard` unpins, so every collected node is alive.
            let node = unsafe { &**pointer };
            collect(inner, &lock, d, marks, node, watermark, guard, stats);
        }
        drop(lock);
        if exhausted {
            state.db = (db + 1) % DATABASES;
            state.after = None;
            dbs_finished += 1;
            if state.db == 0 {
                return true;
            }
        } else if let Some(key) = last_key {
            state.after = Some(key);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{GcQueue, GC_QUEUE_ENTRIES_MAX};
    use crate::index::KeyIndex;
    use crate::timestamp::CommitTs;
    use crate::{Engine, EngineConfig, Isolation};

    /// A drained queue gives back the buffer a burst grew, keeping room for twice what it
    /// holds (at least `GC_QUEUE_SHRUNK_ENTRIES`).
    #[test]
    fn a_drained_queue_gives_its_buffer_back() {
        let mut q = GcQueue::new(GC_QUEUE_ENTRIES_MAX);
        for i in 0..100_000u64 {
            q.superseded(CommitTs(i + 1), 0, format!("k{i}").as_bytes());
        }
        assert!(q.entries.capacity() >= 100_000);
        let taken = q.take_due(u64::MAX, 99_000);
        assert_eq!((taken.len(), q.len()), (99_000, 1_000));
        q.shrink();
        assert!(q.entries.capacity() < 4_000, "{}", q.entries.capacity());
        assert_eq!(q.len(), 1_000, "nothing queued is lost");
    }

    fn chain_len(engine: &Engine, db: u8, key: &str) -> usize {
        let guard = crossbeam_epoch::pin();
        let d = engine.inner.db(db).unwrap();
        d.index
            .get(key.as_bytes(), &guard)
            .map_or(0, |node| node.chain_len(&guard))
    }

    fn settle(engine: &Engine) {
        for _ in 0..100 {
            if engine.gc().caught_up {
                return;
            }
        }
        panic!("GC never caught up");
    }

    fn value(key: &str, round: u32) -> Vec<u8> {
        format!("{key}#{round}").into_bytes()
    }

    const KEYS: [&str; 4] = ["a1", "a2", "z1", "z2"];

    /// A checkpoint half-way through its scan: keys it has read lose every old version the
    /// other snapshots don't read; keys ahead keep the one it reads and the ones the others
    /// read, and lose the versions in between; all of them once it has read them.
    #[test]
    fn gc_collects_behind_the_checkpoint_scan_and_between_its_snapshot_and_the_others() {
        let engine = Engine::new(EngineConfig::default());
        for key in KEYS {
            engine.put(0, key.as_bytes(), &value(key, 0), None).unwrap();
        }
        let mut checkpoint = engine.begin_checkpoint();
        let scan = engine
            .inner
            .checkpoint_scan
            .begin(checkpoint.snapshot_ts().0)
            .unwrap();
        scan.advance(0, Some(&bytes::Bytes::from_static(b"m")));
        for round in 1..=5 {
            for key in KEYS {
                engine
                    .put(0, key.as_bytes(), &value(key, round), None)
                    .unwrap();
            }
        }
        // Another reader, at round 5.
        let mut reader = engine.begin(Isolation::Snapshot);
        for key in KEYS {
            engine.put(0, key.as_bytes(), &value(key, 6), None).unwrap();
        }
        settle(&engine);
        for key in ["a1", "a2"] {
            assert_eq!(chain_len(&engine, 0, key), 2, "{key}: round 5 (reader), 6");
        }
        for key in ["z1", "z2"] {
            assert_eq!(
                chain_len(&engine, 0, key),
                3,
                "{key}: round 0 (checkpoint), 5, 6"
            );
            let seen = checkpoint.get(0, key.as_bytes()).unwrap().unwrap();
            assert_eq!(
                seen.value.as_ref(),
                value(key, 0),
                "the checkpoint reads intact"
            );
        }
        for key in KEYS {
            let seen = reader.get(0, key.as_bytes()).unwrap().unwrap();
            assert_eq!(
                seen.value.as_ref(),
                value(key, 5),
                "the reader reads intact"
            );
        }
        // The scan reads the rest; then the reader ends.
        scan.advance(1, None);
        settle(&engine);
        assert_eq!(chain_len(&engine, 0, "z1"), 2, "round 5 (reader), 6");
        reader.abort();
        settle(&engine);
        for key in KEYS {
            assert_eq!(chain_len(&engine, 0, key), 1, "{key}");
        }
        drop(scan);
        checkpoint.abort();
    }

    /// After a SWAPDB above its snapshot the checkpoint is an ordinary snapshot again (values
    /// move between databases, so a key it has read may share a value with one it has not).
    #[test]
    fn a_swapdb_during_the_scan_makes_the_checkpoint_an_ordinary_snapshot() {
        let engine = Engine::new(EngineConfig::default());
        for key in KEYS {
            engine.put(0, key.as_bytes(), &value(key, 0), None).unwrap();
            engine
                .put(1, key.as_bytes(), &value(key, 100), None)
                .unwrap();
        }
        let mut checkpoint = engine.begin_checkpoint();
        let scan = engine
            .inner
            .checkpoint_scan
            .begin(checkpoint.snapshot_ts().0)
            .unwrap();
        scan.advance(0, Some(&bytes::Bytes::from_static(b"m")));
        engine.swap_db(0, 1).unwrap();
        for round in 1..=3 {
            for key in KEYS {
                engine
                    .put(1, key.as_bytes(), &value(key, round), None)
                    .unwrap();
            }
        }
        settle(&engine);
        // Database 1 now holds the values database 0 had at the snapshot; the checkpoint has
        // not read database 1 and must still find its own values there and in database 0.
        for key in KEYS {
            let seen = checkpoint.get(1, key.as_bytes()).unwrap().unwrap();
            assert_eq!(seen.value.as_ref(), value(key, 100), "{key} in db 1");
            let seen = checkpoint.get(0, key.as_bytes()).unwrap().unwrap();
            assert_eq!(seen.value.as_ref(), value(key, 0), "{key} in db 0");
        }
        drop(scan);
        checkpoint.abort();
        settle(&engine);
        for key in KEYS {
            assert_eq!(chain_len(&engine, 1, key), 1, "{key}");
        }
    }
}
