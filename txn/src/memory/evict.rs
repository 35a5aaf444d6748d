//! Eviction: Redis's approximated LRU / LFU / TTL / random choice (src/evict.c), over this
//! engine's MVCC index.
//!
//! Steps of [`make_room`] (one evictor at a time, under the pool's lock):
//! 1. if the memory counted for eviction is at most `maxmemory`, done;
//! 2. ask [`relief`] what the policy does: refuse ([`TxnError::OutOfMemory`]) or evict;
//! 3. choose victims until their estimated cost covers the excess (at most
//!    [`EVICTION_BATCH_KEYS`]): sample `maxmemory-samples` keys of each database that has
//!    keys in scope from random positions of its hash index, merge them into the pool of the
//!    [`EVICTION_POOL_KEYS`] best candidates, take the best one still present (random
//!    policies take a sampled key of the next database in turn);
//! 4. delete them in one engine commit, logged as explicit deletes (so replay is
//!    deterministic: recovery never decides anything), re-checking under the commit lock that
//!    each is still present and in scope; count them in `evicted_keys`;
//! 5. collect their nodes at once (`gc::collect_keys`), so the memory returns now unless a
//!    snapshot still needs the old versions; go back to 1.
//!
//! Invariant: nothing is evicted while counted memory is at or below the limit, and an
//! eviction never removes a key a snapshot can still read (it is an ordinary commit; GC keeps
//! what open snapshots see).

use bytes::Bytes;

use super::{relief, Rank, Relief, Scope};
use crate::commit;
use crate::engine::Inner;
use crate::error::TxnError;
use crate::gc;
use crate::index::{KeyIndex, KeyNode, NO_EXPIRY};
use crate::limits::{
    DATABASES, EVICTION_BATCH_KEYS, EVICTION_POOL_KEYS, EVICTION_SAMPLES_MAX,
    EVICTION_SAMPLE_STEPS_PER_KEY,
};
use crate::log_record::LogOp;
use crate::DbIndex;

/// Rounds in a row whose victims had all vanished before the commit (overwritten, deleted)
/// after which eviction gives up on this call.
const FUTILE_ROUNDS_MAX: u32 = 8;

/// A key sampled for eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Higher evicts first (idle ms, 255 - LFU counter, or `u64::MAX - deadline`).
    pub(crate) score: u64,
    pub(crate) db: DbIndex,
    pub(crate) key: Bytes,
    /// What deleting it releases from counted memory: its node and its value.
    pub(crate) bytes: u64,
}

/// Redis's eviction pool: the best candidates seen so far, kept between calls.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// Sorted by score, best last; at most [`EVICTION_POOL_KEYS`].
    candidates: Vec<Candidate>,
    /// Where random policies look next (round robin over databases).
    next_db: usize,
    /// Sampling randomness (seeded from the engine's random state at first use).
    random: u64,
}

impl Pool {
    fn insert(&mut self, candidate: Candidate) {
        if let Some(existing) = self
            .candidates
            .iter_mut()
            .find(|c| c.db == candidate.db && c.key == candidate.key)
        {
            *existing = candidate;
        } else {
            self.candidates.push(candidate);
        }
        self.candidates.sort_by_key(|c| c.score);
        let excess = self.candidates.len().saturating_sub(EVICTION_POOL_KEYS);
        self.candidates.drain(..excess);
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.random = self.random.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// See [`crate::Engine::make_room`] and the module docs.
pub(crate) fn make_room(inner: &Inner) -> Result<(), TxnError> {
    let limit = inner.memory.maxmemory();
    if limit == 0 {
        return Ok(());
    }
    let policy = relief(inner.memory.policy());
    // Under `spill` the limit is on RAM: values on SSD cost none (`used_memory` counts RAM
    // only), and what is over goes to SSD while the disk takes it.
    let used = if policy == Relief::Spill {
        inner
            .memory
            .stats(&inner.pages, &inner.compactor)
            .used_bytes
    } else {
        counted(inner)
    };
    if used <= limit {
        return Ok(());
    }
    // Under `spill`, where RAM is what counts, a flush's keys count until GC has reclaimed
    // their keyspace (in the background, within a second or two; for eviction they stopped
    // counting at the flush). As Redis does while its lazy free runs, the write goes ahead
    // meanwhile: -OOM for memory already let go would be wrong, and reclaiming here would put
    // GC's work on the writer's thread.
    let watermark = || {
        let (all, _, _) = inner
            .checkpoint_scan
            .low_watermarks(&inner.snapshots, &inner.oracle);
        all
    };
    if crate::keyspace::reclaim_due_with(inner, watermark) {
        return Ok(());
    }
    match policy {
        Relief::Refuse => Err(TxnError::OutOfMemory { used, limit }),
        Relief::Evict(scope, rank) => evict(inner, limit, scope, rank),
        // The tier's tick brings the resident pages back under the budget; a write waits for
        // nothing unless the disk is full too.
        Relief::Spill if crate::tier::can_spill(inner) => Ok(()),
        Relief::Spill => Err(TxnError::OutOfMemory { used, limit }),
    }
}

fn counted(inner: &Inner) -> u64 {
    inner
        .memory
        .stats(&inner.pages, &inner.compactor)
        .counted_for_evict_bytes()
}

fn evict(inner: &Inner, limit: u64, scope: Scope, rank: Rank) -> Result<(), TxnError> {
    let mut pool = inner.memory.pool.lock();
    if pool.random == 0 {
        pool.random = inner
            .random_state
            .fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed)
            | 1;
    }
    inner.memory.refresh_clock(inner.clock.now_ms());
    let samples = inner.memory.config().samples.clamp(1, EVICTION_SAMPLES_MAX) as usize;
    let mut futile = 0;
    loop {
        // Another evictor, GC or a delete may have made room while we waited.
        let used = counted(inner);
        if used <= limit {
            return Ok(());
        }
        let need = used - limit;
        let mut victims: Vec<(DbIndex, Bytes)> = Vec::new();
        let mut planned = 0u64;
        while planned < need && victims.len() < EVICTION_BATCH_KEYS {
            let Some(victim) = choose(inner, &mut pool, scope, rank, samples, &victims) else {
                break;
            };
            planned += victim.bytes;
            victims.push((victim.db, victim.key));
        }
        if victims.is_empty() {
            return Err(TxnError::OutOfMemory { used, limit });
        }
        let evicted = delete(inner, scope, &victims)?;
        if evicted.is_empty() {
            futile += 1;
            if futile >= FUTILE_ROUNDS_MAX {
                return Err(TxnError::OutOfMemory { used, limit });
            }
            continue;
        }
        futile = 0;
        inner
            .memory
            .evicted_keys
            .fetch_add(evicted.len() as u64, std::sync::atomic::Ordering::Relaxed);
        gc::collect_keys(inner, &evicted);
    }
}

/// Whether `db` has keys the scope may evict.
fn has_keys_in_scope(inner: &Inner, db: usize, scope: Scope) -> bool {
    inner.db(db as crate::DbIndex).is_ok_and(|d| {
        let counter = match scope {
            Scope::AllKeys => &d.live_keys,
            Scope::Volatile => &d.expires,
        };
        counter.load(std::sync::atomic::Ordering::Relaxed) > 0
    })
}

/// The next victim (step 3 of the module docs), or `None` if nothing in scope is left.
fn choose(
    inner: &Inner,
    pool: &mut Pool,
    scope: Scope,
    rank: Rank,
    samples: usize,
    chosen: &[(DbIndex, Bytes)],
) -> Option<Candidate> {
    if rank == Rank::Random {
        for _ in 0..DATABASES {
            let db = pool.next_db % DATABASES;
            pool.next_db = pool.next_db.wrapping_add(1);
            if !has_keys_in_scope(inner, db, scope) {
                continue;
            }
            let random = pool.next_random();
            let found = sample_db(inner, db as DbIndex, scope, rank, 1, random, chosen);
            if let Some(candidate) = found.into_iter().next() {
                return Some(candidate);
            }
        }
        return None;
    }
    // A few rounds: the pool may hold only keys deleted since they were sampled ("ghosts").
    for _ in 0..4 {
        let mut any = false;
        for db in 0..DATABASES {
            if !has_keys_in_scope(inner, db, scope) {
                continue;
            }
            any = true;
            let random = pool.next_random();
            for candidate in sample_db(inner, db as DbIndex, scope, rank, samples, random, chosen) {
                pool.insert(candidate);
            }
        }
        if !any {
            return None;
        }
        while let Some(best) = pool.candidates.pop() {
            let taken = chosen
                .iter()
                .any(|(db, key)| *db == best.db && *key == best.key);
            if !taken && still_in_scope(inner, best.db, &best.key, scope) {
                return Some(best);
            }
        }
    }
    None
}

fn still_in_scope(inner: &Inner, db: DbIndex, key: &[u8], scope: Scope) -> bool {
    let Ok(d) = inner.db(db) else { return false };
    let guard = crossbeam_epoch::pin();
    d.index
        .get(key, &guard)
        .and_then(|node| node.newest(&guard))
        .is_some_and(|v| !v.tombstone && (scope == Scope::AllKeys || v.expire_at_ms != NO_EXPIRY))
}

/// Up to `count` candidates of `db`: from the hash index, or, for a volatile scope whose
/// sample found none (few keys have a TTL), from the expiry schedule's keys.
fn sample_db(
    inner: &Inner,
    db: DbIndex,
    scope: Scope,
    rank: Rank,
    count: usize,
    random: u64,
    chosen: &[(DbIndex, Bytes)],
) -> Vec<Candidate> {
    let Ok(d) = inner.db(db) else {
        return Vec::new();
    };
    let tracking = inner.memory.tracking();
    let guard = crossbeam_epoch::pin();
    let mut out = Vec::with_capacity(count);
    let candidate = |node: &KeyNode| -> Option<Candidate> {
        let version = node.newest(&guard)?;
        if version.tombstone || (scope == Scope::Volatile && version.expire_at_ms == NO_EXPIRY) {
            return None;
        }
        let key = node.key();
        if chosen
            .iter()
            .any(|(c_db, c_key)| *c_db == db && c_key == key)
        {
            return None;
        }
        let score = match rank {
            Rank::Lru | Rank::Lfu => tracking.eviction_score(node.access()),
            Rank::Ttl => u64::MAX - version.expire_at_ms,
            Rank::Random => 0,
        };
        Some(Candidate {
            score,
            db,
            key: Bytes::copy_from_slice(key),
            bytes: super::node_bytes(key.len()) + inner.compactor.charge(version.value.footprint()),
        })
    };
    let steps_max = count.saturating_mul(EVICTION_SAMPLE_STEPS_PER_KEY);
    d.index
        .sample(random, count, steps_max, &guard, &mut |node| {
            candidate(node).map(|c| out.push(c)).is_some()
        });
    if out.is_empty() && scope == Scope::Volatile {
        // The schedule still lists keys deleted or evicted since (stale entries, kept until
        // their slot comes due): ask for a few more than `count`, keep the live ones, and drop
        // the stale ones from the schedule's index so later samples stop drawing them.
        // Otherwise a sample of stale keys alone reports no candidate, hence a false OOM,
        // while volatile keys remain.
        let wanted = count.saturating_add(EVICTION_SAMPLE_STEPS_PER_KEY);
        let keys = inner.wheel.lock().sample_keys(db, random, wanted);
        let mut stale = Vec::new();
        for key in &keys {
            let node = d.index.get(key, &guard);
            let volatile = node
                .and_then(|node| node.newest(&guard))
                .is_some_and(|v| !v.tombstone && v.expire_at_ms != NO_EXPIRY);
            let Some(node) = node.filter(|_| volatile) else {
                stale.push(key.clone());
                continue;
            };
            if out.len() >= count || out.iter().any(|c| c.key.as_ref() == node.key()) {
                continue;
            }
            if let Some(c) = candidate(node) {
                out.push(c);
            }
        }
        if !stale.is_empty() {
            let mut wheel = inner.wheel.lock();
            for key in stale {
                wheel.forget(&(db, key));
            }
        }
    }
    out
}

/// Deletes the victims still present and in scope, as one logged commit (step 4); returns
/// them.
fn delete(
    inner: &Inner,
    scope: Scope,
    victims: &[(DbIndex, Bytes)],
) -> Result<Vec<(DbIndex, Bytes)>, TxnError> {
    let mut evicted = Vec::new();
    commit::commit_ops(inner, |inner, _lock| {
        let guard = crossbeam_epoch::pin();
        let mut ops = Vec::with_capacity(victims.len());
        for (db, key) in victims {
            let Ok(d) = inner.db(*db) else { continue };
            let present = d
                .index
                .get(key, &guard)
                .and_then(|node| node.newest(&guard))
                .is_some_and(|v| {
                    !v.tombstone && (scope == Scope::AllKeys || v.expire_at_ms != NO_EXPIRY)
                });
            if present {
                ops.push(LogOp::Delete {
                    db: *db,
                    key: key.clone(),
                });
                evicted.push((*db, key.clone()));
            }
        }
        Ok(ops)
    })
    .inspect_err(|_| evicted.clear())?;
    Ok(evicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(score: u64, key: &'static str) -> Candidate {
        Candidate {
            score,
            db: 0,
            key: Bytes::from_static(key.as_bytes()),
            bytes: 1,
        }
    }

    #[test]
    fn the_pool_keeps_the_best_candidates_once_each() {
        let mut pool = Pool::default();
        for i in 0..40u64 {
            pool.insert(candidate(i, "filler"));
        }
        assert_eq!(pool.candidates.len(), 1, "one entry per key, re-scored");
        let keys: Vec<&'static str> = (0..40)
            .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            pool.insert(candidate(i as u64 * 7 % 40, key));
        }
        assert_eq!(pool.candidates.len(), EVICTION_POOL_KEYS);
        let best = pool.candidates.pop().unwrap();
        assert_eq!(best.score, 39);
        assert!(pool.candidates.windows(2).all(|w| w[0].score <= w[1].score));
    }
}
