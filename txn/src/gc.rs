//! Version garbage collection below the low watermark.
//!
//! Invariant: let `W` be the low watermark (the oldest registered snapshot, or the visible
//! timestamp if none; see `snapshot.rs`). For each key, the newest version with
//! `commit_ts <= W` ("keep") is what every present and future snapshot resolves to at the
//! latest, so every version older than keep is unreachable by readers: GC cuts the chain
//! below keep, frees those versions' values (a value shared by a TTL-only change is freed
//! once: by the oldest version that does not hand it on), and destroys the version nodes
//! through the epoch collector. A key whose only version left is a tombstone at or below `W`
//! has its node removed from the index, under the commit lock so no commit races it.
//!
//! Work per call is bounded by [`GC_KEYS_PER_CALL`]; a cursor resumes where the last call
//! stopped, so repeated calls sweep every database.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use crossbeam_epoch::Guard;

use crate::engine::Inner;
use crate::index::{KeyIndex, KeyNode};
use crate::limits::{DATABASES, GC_KEYS_PER_CALL};
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
    after: Option<Bytes>,
}

/// Cuts `node`'s chain below the version GC keeps. Returns (unlinked, freed, dead tombstone ts).
fn collect_node(
    inner: &Inner,
    node: &KeyNode,
    watermark: u64,
    guard: &Guard,
) -> (u64, u64, Option<u64>) {
    let Some(head) = node.newest(guard) else {
        return (0, 0, None);
    };
    let Some(keep) = node.visible(watermark, guard) else {
        return (0, 0, None);
    };
    let dead = (std::ptr::eq(head, keep) && keep.tombstone).then_some(keep.commit_ts);
    let mut tail = keep
        .next
        .swap(crossbeam_epoch::Shared::null(), Ordering::AcqRel, guard);
    let mut newer_inherits = keep.inherits_value;
    let (mut unlinked, mut freed) = (0, 0);
    while !tail.is_null() {
        // SAFETY: `tail` was reachable from the chain until the swap above and is destroyed
        // only via `defer_destroy` below, after all pinned readers have moved on.
        let version = unsafe { tail.deref() };
        if !version.tombstone && !newer_inherits {
            // SAFETY: no registered snapshot can see this version (it is older than `keep`,
            // and `keep.commit_ts <= watermark <= every snapshot`); readers resolve to `keep`
            // or newer. Its value is not shared with `keep` or anything newer (the newer
            // neighbour does not inherit it), and each value is freed by exactly one version.
            if unsafe { inner.pages.free(version.value) }.is_ok() {
                freed += 1;
            }
        }
        newer_inherits = version.inherits_value;
        let next = version.next.load(Ordering::Acquire, guard);
        // SAFETY: unlinked above; no new reference can be created to it.
        unsafe { guard.defer_destroy(tail) };
        unlinked += 1;
        tail = next;
    }
    (unlinked, freed, dead)
}

/// One bounded GC step (see the module docs).
pub(crate) fn gc(inner: &Inner) -> GcStats {
    let mut state = inner.gc_state.lock();
    let watermark = inner.snapshots.low_watermark(&inner.oracle);
    let mut stats = GcStats {
        low_watermark: CommitTs(watermark),
        ..GcStats::default()
    };
    let mut budget = GC_KEYS_PER_CALL;
    let mut dead: Vec<(DbIndex, Bytes, u64)> = Vec::new();
    let guard = crossbeam_epoch::pin();
    let mut dbs_visited = 0;
    while budget > 0 && dbs_visited <= DATABASES {
        let db = state.db % DATABASES;
        let Some(d) = inner.dbs.get(db) else { break };
        let start = state.after.clone();
        let start_bound = match &start {
            Some(key) => Bound::Excluded(key.as_ref()),
            None => Bound::Unbounded,
        };
        let mut last: Option<Bytes> = None;
        let mut exhausted = true;
        d.index
            .for_each_in(start_bound, Bound::Unbounded, &mut |key, node| {
                if budget == 0 {
                    exhausted = false;
                    return false;
                }
                budget -= 1;
                stats.keys_examined += 1;
                let (unlinked, freed, dead_ts) = collect_node(inner, node, watermark, &guard);
                stats.versions_unlinked += unlinked;
                stats.values_freed += freed;
                d.versions.fetch_sub(unlinked as i64, Ordering::Relaxed);
                if let Some(ts) = dead_ts {
                    dead.push((db as DbIndex, key.clone(), ts));
                }
                last = Some(key.clone());
                true
            });
        if exhausted {
            state.db = (db + 1) % DATABASES;
            state.after = None;
            dbs_visited += 1;
            if state.db == 0 {
                stats.sweep_completed = true;
            }
        } else {
            state.after = last.or(start);
        }
    }
    if !dead.is_empty() {
        let _lock = inner.commit_lock.lock();
        for (db, key, ts) in dead {
            let Ok(d) = inner.db(db) else { continue };
            let Some(node) = d.index.get(&key) else {
                continue;
            };
            let still_dead = node
                .newest(&guard)
                .is_some_and(|v| v.tombstone && v.commit_ts == ts && ts <= watermark);
            if still_dead && node.chain_len(&guard) == 1 {
                d.index.remove(&key);
                d.versions.fetch_sub(1, Ordering::Relaxed);
                stats.keys_removed += 1;
            }
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
