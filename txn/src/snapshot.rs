//! [`ActiveSnapshots`]: the registry of open snapshots and the low watermark below which no
//! snapshot reads.
//!
//! Invariant: a snapshot timestamp is read from the oracle *while holding its registry shard's
//! lock*, and [`ActiveSnapshots::low_watermark`] holds *all* shard locks while it reads the
//! oracle; so a snapshot either is counted by a watermark computation or is taken after it (and
//! is then at least that watermark). GC never frees what a registered snapshot can see.
//!
//! Second invariant, for the single-key fast paths' reclamation at commit (`commit.rs`): the
//! open-snapshot count is raised *before* a registering snapshot reads the oracle, and a
//! committer reads it *after* publishing, with a sequentially consistent fence on both sides;
//! so a committer that sees no open snapshot knows every snapshot registered later reads at its
//! timestamp or above.

use std::cell::Cell;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::limits::SNAPSHOT_SHARDS;
use crate::oracle::TimestampOracle;

thread_local! {
    static SHARD_HINT: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_SHARD_HINT: AtomicUsize = AtomicUsize::new(0);

fn shard_hint() -> usize {
    SHARD_HINT.with(|hint| {
        let mut value = hint.get();
        if value == usize::MAX {
            value = NEXT_SHARD_HINT.fetch_add(1, Ordering::Relaxed) % SNAPSHOT_SHARDS;
            hint.set(value);
        }
        value
    })
}

/// A registered snapshot; unregister it with [`ActiveSnapshots::release`].
#[derive(Debug)]
pub(crate) struct Registration {
    shard: usize,
    pub(crate) ts: u64,
}

/// One shard: `(snapshot timestamp, open snapshots at it)`, timestamps strictly increasing
/// (registration reads the monotone visible watermark under the shard lock, so new timestamps
/// come last). A shard rarely holds more than a few entries, and a vector that keeps its
/// capacity costs no allocation per transaction (a `BTreeMap` allocated and freed a node
/// whenever its shard went from empty to one snapshot and back, i.e. per transaction).
type Shard = CachePadded<Mutex<Vec<(u64, u32)>>>;

/// Open snapshots, sharded so begin/end on different threads don't contend.
pub(crate) struct ActiveSnapshots {
    shards: Box<[Shard]>,
    count: AtomicUsize,
}

impl Default for ActiveSnapshots {
    fn default() -> Self {
        ActiveSnapshots {
            shards: (0..SNAPSHOT_SHARDS)
                .map(|_| CachePadded::new(Mutex::new(Vec::new())))
                .collect(),
            count: AtomicUsize::new(0),
        }
    }
}

impl ActiveSnapshots {
    /// Takes a snapshot at the oracle's visible watermark and registers it.
    pub(crate) fn register(&self, oracle: &TimestampOracle) -> Registration {
        let shard = shard_hint();
        // Counted before the oracle is read (see the module docs, second invariant).
        self.count.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let ts = match self.shards.get(shard) {
            Some(lock) => {
                let mut entries = lock.lock();
                let ts = oracle.visible();
                match entries.last_mut() {
                    Some((last, count)) if *last == ts => *count += 1,
                    _ => entries.push((ts, 1)),
                }
                ts
            }
            None => oracle.visible(),
        };
        Registration { shard, ts }
    }

    /// Unregisters a snapshot.
    pub(crate) fn release(&self, registration: &Registration) {
        if let Some(lock) = self.shards.get(registration.shard) {
            let mut entries = lock.lock();
            if let Ok(i) = entries.binary_search_by_key(&registration.ts, |&(ts, _)| ts) {
                if let Some((_, count)) = entries.get_mut(i) {
                    *count -= 1;
                    if *count == 0 {
                        entries.remove(i);
                    }
                }
            }
        }
        self.count.fetch_sub(1, Ordering::Release);
    }

    /// The oldest registered snapshot, or the visible watermark if none: no present or future
    /// snapshot reads below it.
    pub(crate) fn low_watermark(&self, oracle: &TimestampOracle) -> u64 {
        let guards: Vec<_> = self.shards.iter().map(|shard| shard.lock()).collect();
        let mut watermark = oracle.visible();
        for entries in &guards {
            if let Some(&(oldest, _)) = entries.first() {
                watermark = watermark.min(oldest);
            }
        }
        watermark
    }

    /// The low watermark ([`Self::low_watermark`]) and the one the snapshots other than one
    /// registration at `excluded` hold (the checkpoint scan's, see `gc.rs`): `(all, others)`.
    /// The caller guarantees that such a registration is open throughout the call; otherwise
    /// another snapshot at `excluded` would go uncounted.
    pub(crate) fn low_watermarks(
        &self,
        oracle: &TimestampOracle,
        excluded: Option<u64>,
    ) -> (u64, u64) {
        let guards: Vec<_> = self.shards.iter().map(|shard| shard.lock()).collect();
        let visible = oracle.visible();
        let mut all = visible;
        let mut others = visible;
        let mut skip = excluded;
        for entries in &guards {
            for &(ts, count) in entries.iter().take(2) {
                all = all.min(ts);
                // One registration at `excluded` is not counted in `others`.
                let counted = if skip == Some(ts) {
                    skip = None;
                    count - 1
                } else {
                    count
                };
                if counted > 0 {
                    others = others.min(ts);
                    break;
                }
            }
        }
        (all, others)
    }

    /// Number of open snapshots.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True if no snapshot is open or being registered. Called by a committer after it
    /// published timestamp `ts`: then every snapshot registered from now on reads at `ts` or
    /// above (see the module docs, second invariant), so versions only older snapshots could
    /// read are garbage at once.
    pub(crate) fn none_open(&self) -> bool {
        fence(Ordering::SeqCst);
        self.count.load(Ordering::SeqCst) == 0
    }
}
