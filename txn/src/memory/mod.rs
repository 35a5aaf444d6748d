//! Memory: what the dataset costs (`used_memory`), the `maxmemory` limit, and what happens when
//! a write would go over it (Redis's eight `maxmemory-policy`s).
//!
//! # Accounting
//!
//! [`Accounting`] holds counters the engine keeps as it changes the index, so reading
//! `used_memory` is a handful of relaxed loads, never a scan:
//!
//! | part | counted as | updated where |
//! |---|---|---|
//! | index nodes | [`SKIP_NODE_BYTES`] per key node in the hash index, plus the heap copy of keys longer than 22 bytes | `HybridIndex` on hash insert/remove |
//! | hash index | the bucket arrays of the 1024 shards per database (allocation size, not load) | `HybridIndex` when a shard grows |
//! | version chains | [`VERSION_BYTES`] per older version | `commit::install` (push), GC (cut) |
//! | values | page memory held for values (sealed pages whole, the used part of open pages), plus the page directory | the page store |
//! | expiry | an estimate per timing-wheel entry and per-key earliest-deadline entry | `ExpirySchedule` |
//! | fixed | the hash shards' headers | at start |
//!
//! Allocation sizes are glibc malloc's (8-byte header, 16-byte granularity, 32-byte minimum,
//! [`malloc_bytes`]), the allocator the server runs on; the skip-list node's size is the
//! expectation over crossbeam-skiplist's geometric tower heights. Values count by the page
//! memory held for them, freed space inside pages included: what the process really holds,
//! unlike Redis's `used_memory`, which leaves allocator fragmentation out.
//!
//! # What eviction counts
//!
//! Eviction cannot count freed space in pages directly: evicting a key frees its value, but
//! the space stays held until compaction moves its page's other values out, so an evictor
//! counting held pages would go on evicting for bytes it has already freed. Instead each live
//! value byte is charged `1 + active-defrag-threshold-lower/100` bytes: its share of the
//! fragmentation compaction tolerates (`compact.rs`, `Compactor::charge`). An eviction lowers
//! the count at once, and as long as compaction keeps up (it is paced by the rate space is
//! freed) the pages held stay within what is charged, so `maxmemory` bounds the memory the
//! process really holds for values. `compaction_backlog_bytes` shows what compaction has left
//! to give back; with compaction off, values are charged their live bytes only (nothing would
//! bound fragmentation).
//!
//! Invariant: every counter is changed under the commit lock (or the expiry schedule's lock),
//! in the same critical section as the change it describes, so at rest the counters equal the
//! sums they name (checked by tests that load, delete and collect, and by the RSS comparison
//! in docs/BENCHMARKS.md).
//!
//! Of `used_memory`, the part GC will free without any eviction (older versions, values only
//! they hold, tombstoned key nodes) is *not counted for eviction*
//! (`mem_not_counted_for_evict`, as Redis names its own such memory): evicting live keys could
//! not release it sooner, and counting it would make a long-open snapshot evict the whole
//! keyspace.
//!
//! # The policy decision point
//!
//! [`relief`] maps the configured policy to what `make_room` does when counted memory exceeds
//! `maxmemory`: refuse (`noeviction`) or evict by a sampled ranking. It is the one place a
//! future `spill` behaviour (maxmemory as the RAM budget, cold pages written to the SSD tier
//! before anything is refused or evicted) slots in, as another [`Relief`].

pub(crate) mod access;
pub(crate) mod evict;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use parking_lot::Mutex;

use crate::index::{KeyNode, HASH_SHARDS, SHARD_HEADER_BYTES};
use crate::limits::DATABASES;

pub use access::KeyAccess;

/// What glibc malloc takes for a request of `n` bytes: an 8-byte header, 16-byte granularity,
/// 32 bytes at least (0 for no request).
pub(crate) const fn malloc_bytes(n: usize) -> u64 {
    if n == 0 {
        return 0;
    }
    let chunk = (n + 8 + 15) & !15;
    (if chunk < 32 { 32 } else { chunk }) as u64
}

/// crossbeam-skiplist 0.1's node header beside the key: one refcount-and-height word.
const SKIP_NODE_HEADER_BYTES: usize = 8;
/// crossbeam-skiplist 0.1's tallest tower.
const SKIP_MAX_HEIGHT: usize = 32;

/// Expected malloc chunk of one key's skip-list entry (header, [`KeyNode`], a tower of `h`
/// pointers with `P(h) = 2^-h`): Σ 2^-h · malloc(64 + 8h), about 91 bytes.
pub(crate) const SKIP_NODE_BYTES: u64 = {
    let base = SKIP_NODE_HEADER_BYTES + std::mem::size_of::<KeyNode>();
    let mut sum: u64 = 0;
    let mut height = 1;
    while height <= SKIP_MAX_HEIGHT {
        let tower = height * std::mem::size_of::<usize>();
        sum += malloc_bytes(base + tower) << (SKIP_MAX_HEIGHT - height);
        height += 1;
    }
    (sum + (1 << (SKIP_MAX_HEIGHT - 1))) >> SKIP_MAX_HEIGHT
};

/// One older version on a chain (`index::version::Version`).
pub(crate) const VERSION_BYTES: u64 =
    malloc_bytes(std::mem::size_of::<crate::index::version::Version>());

/// What one key's node costs in `used_memory`: its skip-list entry (the expected malloc chunk,
/// about 91 bytes), plus the heap copy of a key longer than 22 bytes.
pub fn node_bytes(key_len: usize) -> u64 {
    SKIP_NODE_BYTES + malloc_bytes(crate::index::heap_key_len(key_len))
}

/// What one key costs in `used_memory` (MEMORY USAGE): its node ([`node_bytes`]), its value's
/// footprint in the page store (a small value's 8-byte header included), and with a deadline
/// its timing-wheel entry. Old versions kept for snapshots are not the key's.
pub fn key_bytes(key_len: usize, value_len: usize, has_deadline: bool) -> u64 {
    use storage::page::{SMALL_VALUE_MAX_BYTES, VALUE_HEADER_BYTES};
    let value = match value_len {
        0 => 0,
        n if n <= SMALL_VALUE_MAX_BYTES => (n + VALUE_HEADER_BYTES) as u64,
        n => n as u64,
    };
    let deadline = if has_deadline {
        crate::expiry::schedule::entry_bytes(key_len)
            + crate::expiry::schedule::EARLIEST_ENTRY_BYTES
    } else {
        0
    };
    node_bytes(key_len) + value + deadline
}

/// Bytes of the allocation behind a hash shard's bucket array of `allocated` bytes.
pub(crate) fn table_bytes(allocated: usize) -> u64 {
    malloc_bytes(allocated)
}

/// The engine's memory counters (see the module docs). Shared by the engine, its indexes and
/// its expiry schedule.
#[derive(Debug, Default)]
pub(crate) struct Accounting {
    /// Key nodes in the hash indexes: [`node_bytes`] each.
    pub(crate) node_bytes: AtomicU64,
    /// Hash shards' bucket arrays.
    pub(crate) hash_bytes: AtomicU64,
    /// Older versions on chains.
    pub(crate) older_versions: AtomicU64,
    /// Value bytes only older versions (or tombstoned keys) hold: GC frees them.
    pub(crate) garbage_value_bytes: AtomicU64,
    /// [`node_bytes`] of keys whose newest version is a tombstone: GC removes them.
    pub(crate) garbage_node_bytes: AtomicU64,
    /// The expiry schedule's estimate.
    pub(crate) expiry_bytes: AtomicU64,
    /// Keyspaces built beyond the databases' own (spares for flushes, `keyspace.rs`): each
    /// costs its hash shards' headers.
    pub(crate) spare_keyspaces: AtomicU64,
}

impl Accounting {
    pub(crate) fn add(counter: &AtomicU64, bytes: u64) {
        counter.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Memory GC has not freed yet: older versions, the values only they hold, tombstoned key
    /// nodes. With compaction's old value copies (`Inner::pinned_bytes`), what open snapshots
    /// pin.
    pub(crate) fn pinned_bytes(&self) -> u64 {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        load(&self.older_versions) * VERSION_BYTES
            + load(&self.garbage_value_bytes)
            + load(&self.garbage_node_bytes)
    }

    /// Subtracts, stopping at 0 (a bug would show as a wrong figure, not a wrapped one).
    pub(crate) fn sub(counter: &AtomicU64, bytes: u64) {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(bytes))
        });
    }
}

/// Redis's `maxmemory-policy`: what happens when a write needs memory and the dataset is over
/// `maxmemory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EvictionPolicy {
    /// Refuse commands that may grow memory (Redis's default); reads and deletes still work.
    #[default]
    NoEviction,
    /// Evict the least recently used of the sampled keys.
    AllKeysLru,
    /// Evict the least frequently used of the sampled keys.
    AllKeysLfu,
    /// Evict random keys.
    AllKeysRandom,
    /// Like `AllKeysLru`, among keys with a TTL only.
    VolatileLru,
    /// Like `AllKeysLfu`, among keys with a TTL only.
    VolatileLfu,
    /// Random keys with a TTL.
    VolatileRandom,
    /// The sampled key with a TTL whose deadline is nearest.
    VolatileTtl,
    /// tierkv's: keep every key; cold value pages go to the SSD tier's spill file to keep the
    /// RAM under `maxmemory` (`tier.rs`); refuse writes only once that file is full too.
    Spill,
}

impl EvictionPolicy {
    /// Every policy, in Redis's order of `CONFIG SET` error text.
    pub const ALL: [EvictionPolicy; 9] = [
        EvictionPolicy::VolatileLru,
        EvictionPolicy::VolatileLfu,
        EvictionPolicy::VolatileRandom,
        EvictionPolicy::VolatileTtl,
        EvictionPolicy::AllKeysLru,
        EvictionPolicy::AllKeysLfu,
        EvictionPolicy::AllKeysRandom,
        EvictionPolicy::NoEviction,
        EvictionPolicy::Spill,
    ];

    /// Redis's name (`allkeys-lru`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EvictionPolicy::NoEviction => "noeviction",
            EvictionPolicy::AllKeysLru => "allkeys-lru",
            EvictionPolicy::AllKeysLfu => "allkeys-lfu",
            EvictionPolicy::AllKeysRandom => "allkeys-random",
            EvictionPolicy::VolatileLru => "volatile-lru",
            EvictionPolicy::VolatileLfu => "volatile-lfu",
            EvictionPolicy::VolatileRandom => "volatile-random",
            EvictionPolicy::VolatileTtl => "volatile-ttl",
            EvictionPolicy::Spill => "spill",
        }
    }

    /// The policy named `name`, case-insensitively.
    pub fn from_name(name: &str) -> Option<EvictionPolicy> {
        EvictionPolicy::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether keys' access words count frequency (LFU) rather than recency (LRU). OBJECT FREQ
    /// answers only then, OBJECT IDLETIME only otherwise, as in Redis.
    pub fn is_lfu(self) -> bool {
        matches!(
            self,
            EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu
        )
    }

    fn code(self) -> u8 {
        match self {
            EvictionPolicy::NoEviction => 0,
            EvictionPolicy::AllKeysLru => 1,
            EvictionPolicy::AllKeysLfu => 2,
            EvictionPolicy::AllKeysRandom => 3,
            EvictionPolicy::VolatileLru => 4,
            EvictionPolicy::VolatileLfu => 5,
            EvictionPolicy::VolatileRandom => 6,
            EvictionPolicy::VolatileTtl => 7,
            EvictionPolicy::Spill => 8,
        }
    }

    fn from_code(code: u8) -> EvictionPolicy {
        match code {
            1 => EvictionPolicy::AllKeysLru,
            2 => EvictionPolicy::AllKeysLfu,
            3 => EvictionPolicy::AllKeysRandom,
            4 => EvictionPolicy::VolatileLru,
            5 => EvictionPolicy::VolatileLfu,
            6 => EvictionPolicy::VolatileRandom,
            7 => EvictionPolicy::VolatileTtl,
            8 => EvictionPolicy::Spill,
            _ => EvictionPolicy::NoEviction,
        }
    }
}

/// Which keys a policy may evict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    AllKeys,
    /// Keys with a deadline only.
    Volatile,
}

/// How sampled candidates are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rank {
    /// Longest idle first.
    Lru,
    /// Lowest (decayed) access frequency first.
    Lfu,
    /// Any key.
    Random,
    /// Nearest deadline first.
    Ttl,
}

/// What `make_room` does when counted memory is over `maxmemory`. The one policy decision
/// point: `Spill` (the SSD tier takes cold value pages; refuse only once it cannot) was added
/// here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relief {
    /// Refuse the write ([`crate::TxnError::OutOfMemory`]).
    Refuse,
    /// Evict keys chosen by sampling until under the limit; refuse if none is left to evict.
    Evict(Scope, Rank),
    /// Let the SSD tier's driver move cold value pages out (`tier.rs`); refuse only when no
    /// spill file is attached or it is full.
    Spill,
}

/// The decision table (see [`Relief`]).
pub(crate) fn relief(policy: EvictionPolicy) -> Relief {
    match policy {
        EvictionPolicy::NoEviction => Relief::Refuse,
        EvictionPolicy::AllKeysLru => Relief::Evict(Scope::AllKeys, Rank::Lru),
        EvictionPolicy::AllKeysLfu => Relief::Evict(Scope::AllKeys, Rank::Lfu),
        EvictionPolicy::AllKeysRandom => Relief::Evict(Scope::AllKeys, Rank::Random),
        EvictionPolicy::VolatileLru => Relief::Evict(Scope::Volatile, Rank::Lru),
        EvictionPolicy::VolatileLfu => Relief::Evict(Scope::Volatile, Rank::Lfu),
        EvictionPolicy::VolatileRandom => Relief::Evict(Scope::Volatile, Rank::Random),
        EvictionPolicy::VolatileTtl => Relief::Evict(Scope::Volatile, Rank::Ttl),
        EvictionPolicy::Spill => Relief::Spill,
    }
}

/// The memory settings (Redis's names in the docs of each field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryConfig {
    /// `maxmemory`: the limit on counted memory in bytes; 0 = none.
    pub maxmemory_bytes: u64,
    /// `maxmemory-policy`.
    pub policy: EvictionPolicy,
    /// `maxmemory-samples`: keys sampled per database for each eviction choice (clamped to
    /// [`crate::limits::EVICTION_SAMPLES_MAX`]).
    pub samples: u32,
    /// `lfu-log-factor`: how slowly the LFU counter grows.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time`: minutes of idleness per decrement of a key's LFU counter (0 = never
    /// decay).
    pub lfu_decay_time_min: u32,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            maxmemory_bytes: 0,
            policy: EvictionPolicy::NoEviction,
            samples: 5,
            lfu_log_factor: 10,
            lfu_decay_time_min: 1,
        }
    }
}

/// A breakdown of `used_memory` (see the module docs), for INFO and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Everything counted: the sum of the parts below.
    pub used_bytes: u64,
    /// What eviction compares with the limit: `used_bytes` less what GC frees without
    /// eviction (older versions, values only they hold, tombstoned keys), with values charged
    /// their live bytes plus the share of fragmentation compaction tolerates instead of the
    /// pages they occupy (see the module docs).
    pub counted_for_evict_bytes: u64,
    /// `used_bytes - counted_for_evict_bytes` where positive (Redis's
    /// `mem_not_counted_for_evict`).
    pub not_counted_for_evict_bytes: u64,
    /// Key nodes (skip-list entries) and long keys' heap copies.
    pub index_bytes: u64,
    /// The hash index's bucket arrays.
    pub hash_index_bytes: u64,
    /// Older versions on chains.
    pub version_bytes: u64,
    /// Live value bytes in pages (small values' 8-byte headers included).
    pub value_bytes: u64,
    /// Page memory held for values (`PageStore::bytes_held`): sealed pages whole, the used
    /// part of open pages, large values' pages. The part of `used_bytes` for values.
    pub value_held_bytes: u64,
    /// Of `value_held_bytes`, freed space beyond the fragmentation compaction tolerates, plus
    /// old copies of moved values awaiting a grace period: what compaction is working off.
    pub compaction_backlog_bytes: u64,
    /// Fixed structures: the hash shards' headers and the page directory.
    pub overhead_bytes: u64,
    /// Bytes of resident value pages (held ones, plus open pages' free tails and the empty
    /// pages kept for reuse): what values cost in RSS.
    pub value_pages_bytes: u64,
    /// The expiry schedule's estimate.
    pub expiry_bytes: u64,
    /// The configured limit (0 = none).
    pub maxmemory_bytes: u64,
    /// The configured policy.
    pub policy: EvictionPolicy,
    /// Keys evicted so far.
    pub evicted_keys: u64,
}

impl MemoryStats {
    /// What eviction compares with the limit (the field of the same name).
    pub fn counted_for_evict_bytes(&self) -> u64 {
        self.counted_for_evict_bytes
    }
}

/// One keyspace's hash shard headers.
pub const KEYSPACE_FIXED_BYTES: u64 = (HASH_SHARDS * SHARD_HEADER_BYTES) as u64;
/// The databases' hash shard headers, allocated at start.
const FIXED_BYTES: u64 = DATABASES as u64 * KEYSPACE_FIXED_BYTES;

/// The engine's memory state: counters, settings, the access clock, eviction bookkeeping.
pub(crate) struct Governor {
    pub(crate) accounting: std::sync::Arc<Accounting>,
    maxmemory_bytes: AtomicU64,
    policy: AtomicU8,
    samples: AtomicU32,
    lfu_log_factor: AtomicU32,
    lfu_decay_time_min: AtomicU32,
    /// The engine clock as of the last refresh (ms): what access words are stamped with.
    /// Refreshed by `expire_tick` (every 10 ms in the server) and by eviction, so a read does
    /// not call the clock.
    clock_ms: AtomicU64,
    pub(crate) evicted_keys: AtomicU64,
    /// One evictor at a time; holds Redis's eviction pool of the best candidates seen.
    pub(crate) pool: Mutex<evict::Pool>,
}

impl Governor {
    pub(crate) fn new(accounting: std::sync::Arc<Accounting>, now_ms: u64) -> Governor {
        let defaults = MemoryConfig::default();
        let governor = Governor {
            accounting,
            maxmemory_bytes: AtomicU64::new(0),
            policy: AtomicU8::new(0),
            samples: AtomicU32::new(0),
            lfu_log_factor: AtomicU32::new(0),
            lfu_decay_time_min: AtomicU32::new(0),
            clock_ms: AtomicU64::new(now_ms),
            evicted_keys: AtomicU64::new(0),
            pool: Mutex::new(evict::Pool::default()),
        };
        governor.set_config(defaults);
        governor
    }

    pub(crate) fn set_config(&self, config: MemoryConfig) {
        self.maxmemory_bytes
            .store(config.maxmemory_bytes, Ordering::Relaxed);
        self.policy.store(config.policy.code(), Ordering::Relaxed);
        self.samples.store(config.samples, Ordering::Relaxed);
        self.lfu_log_factor
            .store(config.lfu_log_factor, Ordering::Relaxed);
        self.lfu_decay_time_min
            .store(config.lfu_decay_time_min, Ordering::Relaxed);
    }

    pub(crate) fn config(&self) -> MemoryConfig {
        MemoryConfig {
            maxmemory_bytes: self.maxmemory_bytes.load(Ordering::Relaxed),
            policy: self.policy(),
            samples: self.samples.load(Ordering::Relaxed),
            lfu_log_factor: self.lfu_log_factor.load(Ordering::Relaxed),
            lfu_decay_time_min: self.lfu_decay_time_min.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn maxmemory(&self) -> u64 {
        self.maxmemory_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn policy(&self) -> EvictionPolicy {
        EvictionPolicy::from_code(self.policy.load(Ordering::Relaxed))
    }

    pub(crate) fn clock_ms(&self) -> u64 {
        self.clock_ms.load(Ordering::Relaxed)
    }

    /// Moves the access clock to `now_ms` (never backwards).
    pub(crate) fn refresh_clock(&self, now_ms: u64) {
        self.clock_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// The settings the access words are read and written with (the LFU tuning is loaded
    /// only under an LFU policy, so an LRU read costs two relaxed loads here).
    pub(crate) fn tracking(&self) -> access::Tracking {
        let lfu = self.policy().is_lfu();
        let (lfu_log_factor, lfu_decay_time_min) = if lfu {
            (
                self.lfu_log_factor.load(Ordering::Relaxed),
                self.lfu_decay_time_min.load(Ordering::Relaxed),
            )
        } else {
            (0, 0)
        };
        access::Tracking {
            lfu,
            now_ms: self.clock_ms(),
            lfu_log_factor,
            lfu_decay_time_min,
        }
    }

    /// Records a read or an overwrite of `node`'s key.
    pub(crate) fn touch(&self, node: &KeyNode) {
        let tracking = self.tracking();
        node.update_access(|word| tracking.touched(word));
    }

    /// Stamps a key that just got a value after having none.
    pub(crate) fn stamp_new(&self, node: &KeyNode) {
        let tracking = self.tracking();
        node.update_access(|_| tracking.fresh());
    }

    /// `used_memory` and its parts (atomic loads only: no lock, no scan); `compactor` says
    /// which part of the page memory held is its backlog.
    pub(crate) fn stats(
        &self,
        pages: &storage::page::PageStore,
        compactor: &crate::compact::Compactor,
    ) -> MemoryStats {
        let a = &self.accounting;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let index_bytes = load(&a.node_bytes);
        let hash_index_bytes = load(&a.hash_bytes);
        let version_bytes = load(&a.older_versions) * VERSION_BYTES;
        let value_bytes = pages.bytes_live();
        let value_held_bytes = pages.bytes_held();
        let overhead_bytes =
            FIXED_BYTES + load(&a.spare_keyspaces) * KEYSPACE_FIXED_BYTES + pages.directory_bytes();
        let expiry_bytes = load(&a.expiry_bytes);
        let used_bytes = index_bytes
            + hash_index_bytes
            + version_bytes
            + value_held_bytes
            + overhead_bytes
            + expiry_bytes;
        // Values GC will free, and old copies compaction will free, are not charged.
        let charged_values = compactor.charge(
            value_bytes
                .saturating_sub(load(&a.garbage_value_bytes))
                .saturating_sub(compactor.retired_bytes()),
        );
        let counted_for_evict_bytes = index_bytes.saturating_sub(load(&a.garbage_node_bytes))
            + hash_index_bytes
            + charged_values
            + overhead_bytes
            + expiry_bytes;
        MemoryStats {
            used_bytes,
            counted_for_evict_bytes,
            not_counted_for_evict_bytes: used_bytes.saturating_sub(counted_for_evict_bytes),
            index_bytes,
            hash_index_bytes,
            version_bytes,
            value_bytes,
            value_held_bytes,
            compaction_backlog_bytes: compactor.backlog_bytes(value_held_bytes, value_bytes),
            overhead_bytes,
            value_pages_bytes: pages.bytes_allocated(),
            expiry_bytes,
            maxmemory_bytes: self.maxmemory(),
            policy: self.policy(),
            evicted_keys: self.evicted_keys.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bytes_adds_node_value_and_deadline() {
        let plain = key_bytes(1, 1, false);
        assert_eq!(plain, node_bytes(1) + 9);
        assert!(key_bytes(1, 1, true) > plain);
        assert_eq!(key_bytes(1, 100_000, false), node_bytes(1) + 100_000);
        assert_eq!(key_bytes(30, 0, false), node_bytes(30));
    }

    #[test]
    fn malloc_model_matches_glibc_size_classes() {
        assert_eq!(malloc_bytes(0), 0);
        assert_eq!(malloc_bytes(1), 32);
        assert_eq!(malloc_bytes(24), 32);
        assert_eq!(malloc_bytes(25), 48);
        assert_eq!(malloc_bytes(72), 80);
        assert_eq!(malloc_bytes(80), 96);
    }

    #[test]
    fn skip_node_estimate_is_the_expected_chunk() {
        // 64-byte node + 8h tower: 80 B at h=1 (p 1/2), 96 at h=2,3, 112 at h=4,5, ...
        assert!((90..=92).contains(&SKIP_NODE_BYTES), "{SKIP_NODE_BYTES}");
        assert_eq!(VERSION_BYTES, 48);
        assert_eq!(node_bytes(16), SKIP_NODE_BYTES);
        assert_eq!(node_bytes(23), SKIP_NODE_BYTES + 32);
        assert_eq!(node_bytes(100), SKIP_NODE_BYTES + 112);
    }

    #[test]
    fn policies_round_trip_by_name_and_code() {
        for policy in EvictionPolicy::ALL {
            assert_eq!(EvictionPolicy::from_name(policy.name()), Some(policy));
            assert_eq!(
                EvictionPolicy::from_name(&policy.name().to_ascii_uppercase()),
                Some(policy)
            );
            assert_eq!(EvictionPolicy::from_code(policy.code()), policy);
        }
        assert_eq!(EvictionPolicy::from_name("lru"), None);
        assert_eq!(EvictionPolicy::default(), EvictionPolicy::NoEviction);
        assert_eq!(relief(EvictionPolicy::NoEviction), Relief::Refuse);
        assert_eq!(
            relief(EvictionPolicy::VolatileTtl),
            Relief::Evict(Scope::Volatile, Rank::Ttl)
        );
    }
}
