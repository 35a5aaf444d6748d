//! Version garbage collection below the low watermark.
//!
//! Invariant: let `W` be the low watermark (the oldest registered snapshot, or the visible
//! timestamp if none; see `snapshot.rs`). For each key, the newest version with
//! `commit_ts <= W` ("keep") is what every present and future snapshot resolves to at the
//! latest, so every version older than keep is unreachable by readers: GC cuts the chain
//! below keep, frees those versions' values (a value shared by a TTL-only change is freed
//! once: by the oldest version that does not hand it on), and destroys the version nodes
//! through the epoch collector. A key whose only version left is a tombstone at or below `W`
//! has its node removed from the index.
//!
//! All chain surgery happens under the commit lock, in batches of [`GC_KEYS_PER_BATCH`] keys,
//! so writers wait at most one short batch and readers never wait. Work per call is bounded
//! by [`GC_KEYS_PER_CALL`]; a cursor resumes where the last call stopped, so repeated calls
//! sweep every database.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use crossbeam_epoch::Guard;

use crate::engine::{Db, Inner};
use crate::index::{KeyIndex, KeyNode};
use crate::limits::{DATABASES, GC_KEYS_PER_BATCH, GC_KEYS_PER_CALL};
use crate::memory::{self, Accounting};
use crate::timestamp::CommitTs;
use crate::DbIndex;

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
            // SAFETY: nodes are removed only under `gc_state` (held) and the commit lock, and
            // destroyed only after `guard` unpins, so every collected node is alive.
            let node = unsafe { &**pointer };
            collect_node(inner, d, node, watermark, &guard, &mut stats);
            last_key = Some(node.key().to_vec());
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
    record(inner, &stats);
    stats
}

fn record(inner: &Inner, stats: &GcStats) {
    inner
        .gc_versions_unlinked
        .fetch_add(stats.versions_unlinked, Ordering::Relaxed);
    inner
        .gc_keys_removed
        .fetch_add(stats.keys_removed, Ordering::Relaxed);
}

/// Collects one node: cuts its chain below `watermark`, frees the values no remaining version
/// uses, removes the node if it is empty or dead. Caller holds `gc_state` and the commit lock.
fn collect_node(
    inner: &Inner,
    d: &Db,
    node: &KeyNode,
    watermark: u64,
    guard: &Guard,
    stats: &mut GcStats,
) {
    let a = &inner.memory.accounting;
    let unlinked = node.cut_below(watermark, guard, |value| {
        // SAFETY: no registered snapshot can see this version (it is older than the version
        // kept, whose timestamp is <= every snapshot), and the value is not shared with a
        // version that stays (see `KeyNode::cut_below`).
        if unsafe { inner.pages.free(value) }.is_ok() {
            stats.values_freed += 1;
            Accounting::sub(&a.garbage_value_bytes, u64::from(value.len));
        }
    });
    stats.versions_unlinked += unlinked;
    Accounting::sub(&a.older_versions, unlinked);
    d.versions.fetch_sub(unlinked as i64, Ordering::Relaxed);
    if node.is_empty(guard) {
        // Under the commit lock every node in the hash table holds a version, so an empty one
        // was reserved by a commit that aborted, or by one that has not taken the lock yet (it
        // will insert a fresh node). Either way nothing reads it, and it was never counted.
        let key = node.key().to_vec();
        d.index.remove(&key);
        stats.keys_removed += 1;
    } else if node.is_dead(watermark, guard) {
        let key = node.key().to_vec();
        d.index.remove(&key);
        d.versions.fetch_sub(1, Ordering::Relaxed);
        Accounting::sub(&a.garbage_node_bytes, memory::node_bytes(key.len()));
        stats.keys_removed += 1;
    }
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
            collect_node(inner, d, node, watermark, &guard, &mut stats);
        }
    }
    drop(lock);
    record(inner, &stats);
    stats
}
