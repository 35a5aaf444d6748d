//! Which keyspace each database shows, and since when: FLUSHDB and FLUSHALL in O(1).
//!
//! A database (the `DbIndex` a client SELECTs) shows one of [`KEYSPACES`] keyspaces ([`Db`]:
//! an index and its counters). The first [`DATABASES`] are the databases' own at start; the
//! others are spares, built on first use. A flush committed at `f` points the database at an
//! empty spare and *retires* the keyspace it showed: a few stores under the commit lock,
//! however many keys it held. The retired keyspace stays readable for the snapshots older
//! than `f`. Once the low watermark (a checkpoint's snapshot included) reaches `f`, GC
//! reclaims it in bounded batches ([`reclaim`]): each key that held a value gets the tombstone
//! at `f` the flush stands for, then GC's own code cuts the chain and removes the node, so
//! every value is freed exactly once whatever SWAPDB moved between chains. The empty keyspace
//! becomes a spare again.
//!
//! Invariants:
//! 1. The mapping changes only under the commit lock, at the committing timestamp, before
//!    it is published. `current[db]` packs (keyspace, since) in one word, so a reader sees
//!    both halves of one change.
//! 2. A reader at snapshot `s` resolves a database with [`Keyspaces::at`]: the keyspace it
//!    showed at `s`. Writers and everything under the commit lock use the current one; a
//!    writer that looked a keyspace up before taking the lock looks again under it (a node
//!    it reserved in a keyspace retired meanwhile is removed, never adopted).
//! 3. A remap stays in the history until its retired keyspace is reclaimed, which waits for
//!    the low watermark to reach its timestamp: every registered snapshot older than a remap
//!    finds it, and the keyspace it resolves to is intact.
//! 4. Nothing is installed in a retired keyspace but reclaim's tombstones, which no reader
//!    can see (every snapshot is at `f` or above by then, and resolves elsewhere).
//! 5. With no spare left (flushes faster than reclaim, or an old snapshot holding the
//!    watermark below several flushes), a flush tombstones every key under the lock, as
//!    before (`commit.rs`): slower, never wrong.
//!
//! Conflicts: a flush writes every key live in the database when it commits (as the
//! tombstones it stands for would). [`changed_since`] and [`range_changed_since`] answer
//! first-committer-wins across remaps, and [`watch_changed`] answers WATCH with Redis's rules
//! (`touchAllWatchedKeysInDb`: a key already expired when watched is not touched by a flush).

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use crossbeam_epoch::Guard;
use parking_lot::Mutex;

use crate::commit_lock::CommitLocked;
use crate::engine::{Db, Inner};
use crate::error::TxnError;
use crate::gc::{GcStats, RemovalMarks};
use crate::index::{HybridIndex, KeyHasher, KeyIndex, KeyNode};
use crate::limits::{DATABASES, GC_KEYS_PER_BATCH};
use crate::memory::Accounting;
use crate::transaction::is_due_now;
use crate::{DbIndex, WatchMark};

/// Keyspaces in all: each database's own, and as many spares for flushed ones awaiting
/// reclaim.
pub(crate) const KEYSPACES: usize = DATABASES * 2;

/// Bits of `since` in a packed mapping word; the keyspace takes the top byte.
const SINCE_BITS: u32 = 56;
const SINCE_MASK: u64 = (1 << SINCE_BITS) - 1;
const _: () = assert!(KEYSPACES <= 1 << (64 - SINCE_BITS));

fn pack(keyspace: usize, since: u64) -> u64 {
    ((keyspace as u64) << SINCE_BITS) | (since & SINCE_MASK)
}

fn unpack(word: u64) -> (usize, u64) {
    ((word >> SINCE_BITS) as usize, word & SINCE_MASK)
}

impl Db {
    /// An empty keyspace.
    pub(crate) fn new(accounting: &Arc<Accounting>, hasher: KeyHasher) -> Db {
        Db {
            index: HybridIndex::new(Arc::clone(accounting), hasher),
            live_keys: AtomicI64::new(0),
            expires: AtomicI64::new(0),
            versions: AtomicI64::new(0),
            live_node_bytes: AtomicI64::new(0),
            live_value_bytes: AtomicI64::new(0),
        }
    }
}

/// One flush's remap: database `db` showed keyspace `old` until `ts`, and `new` from then on.
#[derive(Debug, Clone, Copy)]
struct Remap {
    ts: u64,
    db: DbIndex,
    old: usize,
    /// The engine clock at the flush: a key already expired then was not touched by it.
    now_ms: u64,
}

#[derive(Default)]
struct State {
    /// Remaps whose old keyspace is not reclaimed yet, in timestamp order.
    history: VecDeque<Remap>,
    /// Empty keyspaces a flush may take.
    spares: Vec<usize>,
    /// How far reclaim of the history's front has gone (the last key done).
    cursor: Option<Vec<u8>>,
    /// Per database, the newest timestamp of a remap reclaimed and forgotten.
    forgotten: [u64; DATABASES],
}

/// The databases' keyspaces and their history (see the module docs).
pub(crate) struct Keyspaces {
    slots: Box<[OnceLock<Db>]>,
    accounting: Arc<Accounting>,
    hasher: KeyHasher,
    /// Per database: (keyspace, timestamp of the remap that made it current), packed.
    current: Box<[AtomicU64]>,
    /// Per database: removal marks of the nodes GC or reclaim removed (see `gc.rs`).
    removed: Box<[RemovalMarks]>,
    state: Mutex<State>,
    /// Key nodes reclaim removed from flushed keyspaces, ever (INFO `lazyfreed_objects`).
    lazyfreed: AtomicU64,
}

/// The keyspaces a database showed after a snapshot (see [`Keyspaces::trail`]).
struct Trail<'a> {
    /// The keyspace at the snapshot; `None` if the flush that retired it was reclaimed and
    /// forgotten. Nothing newer than that flush is in it, but reclaim's tombstones.
    first: Option<&'a Db>,
    /// The keyspaces after it: all their versions are newer than the snapshot.
    later: Vec<&'a Db>,
}

impl Keyspaces {
    pub(crate) fn new(accounting: &Arc<Accounting>, hasher: KeyHasher) -> Keyspaces {
        let slots = (0..KEYSPACES)
            .map(|k| {
                let slot = OnceLock::new();
                if k < DATABASES {
                    let _ = slot.set(Db::new(accounting, hasher));
                }
                slot
            })
            .collect();
        Keyspaces {
            slots,
            accounting: Arc::clone(accounting),
            hasher,
            current: (0..DATABASES)
                .map(|db| AtomicU64::new(pack(db, 0)))
                .collect(),
            removed: (0..DATABASES).map(|_| RemovalMarks::default()).collect(),
            state: Mutex::new(State {
                spares: (DATABASES..KEYSPACES).rev().collect(),
                ..State::default()
            }),
            lazyfreed: AtomicU64::new(0),
        }
    }

    fn slot(&self, keyspace: usize) -> Option<&Db> {
        self.slots.get(keyspace).and_then(OnceLock::get)
    }

    fn word(&self, db: DbIndex) -> Result<u64, TxnError> {
        self.current
            .get(usize::from(db))
            .map(|word| word.load(Ordering::Acquire))
            .ok_or(TxnError::BadDb { db })
    }

    /// The keyspace `db` shows now: for writers under the commit lock, and for what reads
    /// the newest state without a snapshot.
    pub(crate) fn current(&self, db: DbIndex) -> Result<&Db, TxnError> {
        let (keyspace, _) = unpack(self.word(db)?);
        self.slot(keyspace).ok_or(TxnError::BadDb { db })
    }

    /// The keyspace `db` showed at snapshot `ts` (registered, so invariant 3 holds).
    pub(crate) fn at(&self, db: DbIndex, ts: u64) -> Result<&Db, TxnError> {
        let (keyspace, since) = unpack(self.word(db)?);
        if since <= ts {
            return self.slot(keyspace).ok_or(TxnError::BadDb { db });
        }
        let state = self.state.lock();
        let older = state
            .history
            .iter()
            .find(|r| r.db == db && r.ts > ts)
            .map_or(keyspace, |r| r.old);
        drop(state);
        self.slot(older).ok_or(TxnError::BadDb { db })
    }

    /// Whether `db` was remapped after `ts`.
    pub(crate) fn remapped_since(&self, db: DbIndex, ts: u64) -> bool {
        self.word(db).is_ok_and(|word| unpack(word).1 > ts)
    }

    /// Every keyspace built so far, retired and spare ones included (compaction and the SSD
    /// tier re-point values wherever a version names them).
    pub(crate) fn all(&self) -> impl Iterator<Item = &Db> {
        self.slots.iter().filter_map(OnceLock::get)
    }

    /// Keyspaces retired by a flush at or below `watermark`: no snapshot reads them any more,
    /// so what only they name is garbage reclaim is about to free (compaction leaves it).
    /// Meaningful under the commit lock: reclaim may hand such a keyspace back as a spare.
    pub(crate) fn unreadable(&self, watermark: u64) -> Vec<*const Db> {
        let state = self.state.lock();
        state
            .history
            .iter()
            .filter(|r| r.ts <= watermark)
            .filter_map(|r| self.slot(r.old))
            .map(|d| d as *const Db)
            .collect()
    }

    /// The removal marks of database `db`.
    pub(crate) fn removed(&self, db: DbIndex) -> Option<&RemovalMarks> {
        self.removed.get(usize::from(db))
    }

    /// Flushes `db` at `ts` by pointing it at an empty spare; false (nothing changed) if no
    /// spare is left or `db` holds no key node at all.
    pub(crate) fn remap_empty(
        &self,
        _locked: &CommitLocked<'_>,
        db: DbIndex,
        ts: u64,
        now_ms: u64,
    ) -> bool {
        let Ok(word) = self.word(db) else {
            return false;
        };
        let (old, _) = unpack(word);
        if self.slot(old).is_none_or(|d| d.index.len() == 0) {
            return false;
        }
        let mut state = self.state.lock();
        let Some(new) = state.spares.pop() else {
            return false;
        };
        let Some(slot) = self.slots.get(new) else {
            return false;
        };
        let fresh = slot.get_or_init(|| {
            Accounting::add(&self.accounting.spare_keyspaces, 1);
            Db::new(&self.accounting, self.hasher)
        });
        if fresh.index.len() != 0 {
            // A reservation that outlived a reclaim (see `reclaim`): not empty, not taken.
            state.spares.insert(0, new);
            return false;
        }
        // Every live key of the old keyspace is garbage from now on, as if tombstoned: not
        // counted for eviction, reported as pinned while a snapshot holds it (reclaim's
        // tombstones then add nothing, `commit::tombstone_retired`).
        if let Some(retired) = self.slot(old) {
            let load = |c: &AtomicI64| c.load(Ordering::Relaxed).max(0) as u64;
            Accounting::add(
                &self.accounting.garbage_value_bytes,
                load(&retired.live_value_bytes),
            );
            Accounting::add(
                &self.accounting.garbage_node_bytes,
                load(&retired.live_node_bytes),
            );
        }
        state.history.push_back(Remap {
            ts,
            db,
            old,
            now_ms,
        });
        if let Some(current) = self.current.get(usize::from(db)) {
            current.store(pack(new, ts), Ordering::Release);
        }
        true
    }

    /// Key nodes reclaim removed from flushed keyspaces, ever (INFO's `lazyfreed_objects`).
    pub(crate) fn lazyfreed(&self) -> u64 {
        self.lazyfreed.load(Ordering::Relaxed)
    }

    /// Key nodes in flushed keyspaces awaiting reclaim (INFO's `lazyfree_pending_objects`).
    pub(crate) fn retired_nodes(&self) -> u64 {
        let state = self.state.lock();
        state
            .history
            .iter()
            .filter_map(|r| self.slot(r.old))
            .map(|d| d.index.len() as u64)
            .sum()
    }

    /// The keyspaces `db` showed after `ts`; `None` if it was not remapped since.
    fn trail(&self, db: DbIndex, ts: u64) -> Option<Trail<'_>> {
        if !self.remapped_since(db, ts) {
            return None;
        }
        let state = self.state.lock();
        let forgotten = state.forgotten.get(usize::from(db)).copied().unwrap_or(0);
        let mut remaps = state.history.iter().filter(|r| r.db == db && r.ts > ts);
        let mut later = Vec::new();
        let first = if forgotten > ts {
            None
        } else {
            remaps.next().and_then(|r| self.slot(r.old))
        };
        later.extend(remaps.filter_map(|r| self.slot(r.old)));
        // Under the state lock, as a remap pushes its history and moves `current`: the trail
        // is of one moment.
        later.extend(self.current(db).ok());
        drop(state);
        Some(Trail { first, later })
    }
}

/// Whether some commit after snapshot `ts` wrote `key` in `db` (first committer wins): a
/// version newer than `ts`, or a flush while the key held a value. For a registered snapshot.
pub(crate) fn changed_since(inner: &Inner, db: DbIndex, key: &[u8], ts: u64) -> bool {
    let guard = crossbeam_epoch::pin();
    let Some(trail) = inner.keyspaces.trail(db, ts) else {
        return inner
            .keyspaces
            .current(db)
            .ok()
            .and_then(|d| d.index.get(key, &guard))
            .is_some_and(|node| node.newest_ts(&guard) > ts);
    };
    let Some(first) = trail.first else {
        return true;
    };
    let written_before_flush = first
        .index
        .get(key, &guard)
        .and_then(|node| node.newest(&guard))
        .is_some_and(|v| v.commit_ts > ts || !v.tombstone);
    written_before_flush
        || trail.later.iter().any(|d| {
            d.index
                .get(key, &guard)
                .is_some_and(|n| n.newest_ts(&guard) > 0)
        })
}

/// The first key in `[start, end)` of `db` some commit after snapshot `ts` wrote (see
/// [`changed_since`]), if any.
pub(crate) fn range_changed_since(
    inner: &Inner,
    db: DbIndex,
    start: Bound<&[u8]>,
    end: Bound<&[u8]>,
    ts: u64,
) -> Option<Bytes> {
    let guard = crossbeam_epoch::pin();
    let first_in = |d: &Db, written: &dyn Fn(&KeyNode) -> bool| {
        let mut found = None;
        d.index.for_each_in(start, end, &mut |node| {
            if written(node) {
                found = Some(Bytes::copy_from_slice(node.key()));
                return false;
            }
            true
        });
        found
    };
    let Some(trail) = inner.keyspaces.trail(db, ts) else {
        let d = inner.keyspaces.current(db).ok()?;
        return first_in(d, &|node| node.newest_ts(&guard) > ts);
    };
    let Some(first) = trail.first else {
        return Some(Bytes::new());
    };
    first_in(first, &|node| {
        node.newest(&guard)
            .is_some_and(|v| v.commit_ts > ts || !v.tombstone)
    })
    .or_else(|| {
        trail
            .later
            .iter()
            .find_map(|d| first_in(d, &|node| node.newest_ts(&guard) > 0))
    })
}

/// EXEC's check of a WATCH on `key` in `db` remapped since the watch (the caller checks the
/// other case): whether the key changed for Redis. A flush touches the key if it held a value
/// not already expired when watched; any version in a later keyspace is a change; what
/// reclaim and GC removed meanwhile is in the removal marks.
pub(crate) fn watch_changed(inner: &Inner, db: DbIndex, key: &[u8], mark: &WatchMark) -> bool {
    let Some(trail) = inner.keyspaces.trail(db, mark.taken_at.0) else {
        return false;
    };
    let base = mark.version.0.max(mark.taken_at.0);
    if inner
        .keyspaces
        .removed(db)
        .is_none_or(|marks| marks.newest(key) > base)
        || is_due_now(inner, mark.deadline)
    {
        return true;
    }
    let guard = crossbeam_epoch::pin();
    if let Some(first) = trail.first {
        if let Some(node) = first.index.get(key, &guard) {
            let before = node.newest(&guard);
            let before_ts = before.map_or(0, |v| v.commit_ts);
            // As `check_watches`: the version watched, or (for a key expired when watched)
            // a tombstone right on top of it.
            let same = before_ts == mark.version.0
                || (mark.expired
                    && before.is_some_and(|v| v.tombstone)
                    && node
                        .visible(before_ts.saturating_sub(1), &guard)
                        .is_some_and(|below| below.commit_ts == mark.version.0));
            if !same || before.is_some_and(|v| !v.tombstone && !mark.expired) {
                return true;
            }
        }
    }
    trail.later.iter().any(|d| {
        d.index
            .get(key, &guard)
            .is_some_and(|n| n.newest_ts(&guard) > 0)
    })
}

/// Reclaims retired keyspaces whose flush the low watermark `all` (a checkpoint's snapshot
/// included) has reached, oldest first: up to `budget` key nodes, in batches under the commit
/// lock. Each key holding a value gets the flush's tombstone, and GC's `collect` cuts the
/// chain and removes the node. Returns the nodes examined. Caller holds `gc_state`.
pub(crate) fn reclaim(
    inner: &Inner,
    all: u64,
    budget: usize,
    guard: &Guard,
    stats: &mut GcStats,
) -> usize {
    let keyspaces = &inner.keyspaces;
    let mut examined = 0;
    while examined < budget {
        let (remap, cursor) = {
            let state = keyspaces.state.lock();
            match state.history.front() {
                Some(r) if r.ts <= all => (*r, state.cursor.clone()),
                _ => break,
            }
        };
        let (Some(d), Some(marks)) = (keyspaces.slot(remap.old), keyspaces.removed(remap.db))
        else {
            break;
        };
        let start = match &cursor {
            Some(key) => Bound::Excluded(key.as_slice()),
            None => Bound::Unbounded,
        };
        let mut batch: Vec<*const KeyNode> = Vec::with_capacity(GC_KEYS_PER_BATCH);
        d.index.for_each_in(start, Bound::Unbounded, &mut |node| {
            batch.push(node as *const KeyNode);
            batch.len() < GC_KEYS_PER_BATCH
        });
        let exhausted = batch.len() < GC_KEYS_PER_BATCH;
        examined += batch.len().max(1);
        stats.keys_examined += batch.len() as u64;
        let last_key = batch.last().map(|pointer| {
            // SAFETY: as below; nothing is removed yet.
            unsafe { &**pointer }.key().to_vec()
        });
        let removed_before = stats.keys_removed;
        let lock = inner.commit_lock.lock();
        for pointer in &batch {
            // SAFETY: nodes of a retired keyspace are removed only here (serialised by
            // `gc_state`) or, for a writer's stray reservation, under the commit lock, and
            // destroyed only after `guard` unpins: every node collected is alive.
            let node = unsafe { &**pointer };
            crate::commit::tombstone_retired(
                inner,
                &lock,
                d,
                marks,
                node,
                remap.db,
                remap.ts,
                remap.now_ms,
                guard,
            );
            crate::gc::collect(inner, &lock, d, None, node, all, guard, stats);
        }
        drop(lock);
        keyspaces
            .lazyfreed
            .fetch_add(stats.keys_removed - removed_before, Ordering::Relaxed);
        let mut state = keyspaces.state.lock();
        if !exhausted {
            state.cursor = last_key;
            continue;
        }
        state.cursor = None;
        if d.index.len() != 0 {
            // A reservation made before the flush and not yet removed by its writer: go
            // round again (next call) rather than hand out a keyspace that is not empty.
            break;
        }
        state.history.pop_front();
        // A spare holds no table: its shards' arrays go back now, not at the next large drop.
        d.index.shrink_oversized();
        if let Some(forgotten) = state.forgotten.get_mut(usize::from(remap.db)) {
            *forgotten = (*forgotten).max(remap.ts);
        }
        state.spares.push(remap.old);
    }
    examined
}

/// Whether a retired keyspace is due for reclaim at watermark `all` (GC is not caught up).
pub(crate) fn reclaim_due(inner: &Inner, all: u64) -> bool {
    reclaim_due_with(inner, || all)
}

/// [`reclaim_due`] with the watermark computed only if a flush awaits reclaim at all (the
/// watermark takes every snapshot shard's lock; a write over `maxmemory` asks this).
pub(crate) fn reclaim_due_with(inner: &Inner, watermark: impl FnOnce() -> u64) -> bool {
    let Some(oldest) = inner.keyspaces.state.lock().history.front().map(|r| r.ts) else {
        return false;
    };
    oldest <= watermark()
}
