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
//! All chain surgery happens under the commit lock, in batches of [`GC_KEYS_PER_BATCH`] keys,
//! so writers wait at most one short batch and readers never wait. Work per call is bounded
//! by [`GC_KEYS_PER_CALL`]; a cursor resumes where the last call stopped, so repeated calls
//! sweep every database.
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

use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::Inner;
use crate::index::{KeyIndex, KeyNode};
use crate::limits::{DATABASES, GC_KEYS_PER_BATCH, GC_KEYS_PER_CALL, REMOVAL_MARK_BUCKETS};
use crate::timestamp::CommitTs;

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
    /// True when this call finished a sweep of all databases.
    pub sweep_completed: bool,
}

/// Where the next GC call resumes.
#[derive(Debug, Default)]
pub(crate) struct GcState {
    db: usize,
    after: Option<Vec<u8>>,
}

/// One bounded GC step (see the module docs).
pub(crate) fn gc(inner: &Inner) -> GcStats {
    let mut state = inner.gc_state.lock();
    let watermark = inner.snapshots.low_watermark(&inner.oracle);
    let mut stats = GcStats {
        low_watermark: CommitTs(watermark),
        ..GcStats::default()
    };
    let guard = crossbeam_epoch::pin();
    let mut examined = 0usize;
    let mut dbs_finished = 0usize;
    while examined < GC_KEYS_PER_CALL && dbs_finished < DATABASES {
        let db = state.db % DATABASES;
        let Some(d) = inner.dbs.get(db) else { break };
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
        let lock = inner.commit_lock.lock();
        let mut last_key: Option<Vec<u8>> = None;
        for pointer in &batch {
            // SAFETY: nodes are removed only by GC (serialised by `gc_state`) under the commit
            // lock, and destroyed only after `guard` unpins, so every collected node is alive.
            let node = unsafe { &**pointer };
            let unlinked = node.cut_below(watermark, &guard, |value| {
                // SAFETY: no registered snapshot can see this version (it is older than the
                // version kept, whose timestamp is <= every snapshot), and the value is not
                // shared with a version that stays (see `KeyNode::cut_below`).
                if unsafe { inner.pages.free(value) }.is_ok() {
                    stats.values_freed += 1;
                }
            });
            stats.versions_unlinked += unlinked;
            d.versions.fetch_sub(unlinked as i64, Ordering::Relaxed);
            if node.is_empty(&guard) {
                // Under the commit lock every node in the hash table holds a version, so an
                // empty one was reserved by a commit that aborted, or by one that has not taken
                // the lock yet (it will insert a fresh node). Either way nothing reads it.
                let key = node.key().to_vec();
                d.index.remove(&key);
                stats.keys_removed += 1;
                last_key = Some(key);
            } else if node.is_dead(watermark, &guard) {
                let key = node.key().to_vec();
                d.removed.note(&key, node.newest_ts(&guard));
                d.index.remove(&key);
                d.versions.fetch_sub(1, Ordering::Relaxed);
                stats.keys_removed += 1;
                last_key = Some(key);
            } else {
                last_key = Some(node.key().to_vec());
            }
        }
        drop(lock);
        if exhausted {
            state.db = (db + 1) % DATABASES;
            state.after = None;
            dbs_finished += 1;
            if state.db == 0 {
                stats.sweep_completed = true;
                break;
            }
        } else if let Some(key) = last_key {
            state.after = Some(key);
        }
    }
    inner.gc_runs.fetch_add(1, Ordering::Relaxed);
    inner
        .gc_versions_unlinked
        .fetch_add(stats.versions_unlinked, Ordering::Relaxed);
    inner
        .gc_keys_removed
        .fetch_add(stats.keys_removed, Ordering::Relaxed);
    stats
}
