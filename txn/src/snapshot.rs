//! [`ActiveSnapshots`]: the registry of open snapshots and the low watermark below which no
//! snapshot reads.
//!
//! Invariant: a snapshot timestamp is read from the oracle *while holding its registry shard's
//! lock*, and [`ActiveSnapshots::low_watermark`] holds *all* shard locks while it reads the
//! oracle; so a snapshot either is counted by a watermark computation or is taken after it (and
//! is then at least that watermark). GC never frees what a registered snapshot can see.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// One shard: snapshot timestamp -> number of open snapshots at it.
type Shard = CachePadded<Mutex<BTreeMap<u64, u32>>>;

/// Open snapshots, sharded so begin/end on different threads don't contend.
pub(crate) struct ActiveSnapshots {
    shards: Box<[Shard]>,
    count: AtomicUsize,
}

impl Default for ActiveSnapshots {
    fn default() -> Self {
        ActiveSnapshots {
            shards: (0..SNAPSHOT_SHARDS)
                .map(|_| CachePadded::new(Mutex::new(BTreeMap::new())))
                .collect(),
            count: AtomicUsize::new(0),
        }
    }
}

impl ActiveSnapshots {
    /// Takes a snapshot at the oracle's visible watermark and registers it.
    pub(crate) fn register(&self, oracle: &TimestampOracle) -> Registration {
        let shard = shard_hint();
        let ts = match self.shards.get(shard) {
            Some(lock) => {
                let mut map = lock.lock();
                let ts = oracle.visible();
                *map.entry(ts).or_insert(0) += 1;
                ts
            }
            None => oracle.visible(),
        };
        self.count.fetch_add(1, Ordering::Relaxed);
        Registration { shard, ts }
    }

    /// Unregisters a snapshot.
    pub(crate) fn release(&self, registration: &Registration) {
        if let Some(lock) = self.shards.get(registration.shard) {
            let mut map = lock.lock();
            if let Some(count) = map.get_mut(&registration.ts) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&registration.ts);
                }
            }
        }
        self.count.fetch_sub(1, Ordering::Relaxed);
    }

    /// The oldest registered snapshot, or the visible watermark if none: no present or future
    /// snapshot reads below it.
    pub(crate) fn low_watermark(&self, oracle: &TimestampOracle) -> u64 {
        let guards: Vec<_> = self.shards.iter().map(|shard| shard.lock()).collect();
        let mut watermark = oracle.visible();
        for map in &guards {
            if let Some((&oldest, _)) = map.first_key_value() {
                watermark = watermark.min(oldest);
            }
        }
        watermark
    }

    /// Number of open snapshots.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}
