//! Every limit of the transaction layer, units last.

/// Number of logical databases (Redis `SELECT 0..15`).
pub const DATABASES: usize = 16;
/// Longest key accepted.
pub const KEY_MAX_BYTES: usize = 1024 * 1024;
/// Longest value accepted (Redis's `proto-max-bulk-len`).
pub const VALUE_MAX_BYTES: usize = storage::page::VALUE_MAX_BYTES;
/// Most bytes (keys + values) one transaction may buffer before commit.
pub const TXN_WRITE_BYTES_MAX: usize = 1024 * 1024 * 1024;
/// Attempts [`crate::Engine::run`] makes before [`crate::TxnError::TooManyRetries`].
pub const RUN_ATTEMPTS_MAX: u32 = 100;
/// Key nodes one [`crate::Engine::gc`] call examines (bounds its pause).
pub const GC_KEYS_PER_CALL: usize = 4096;
/// Keys GC handles per hold of the commit lock (bounds the pause writers may see).
pub const GC_KEYS_PER_BATCH: usize = 256;
/// Keys queued for GC at most (see `gc.rs`): about 40 bytes each. Beyond it GC falls back to
/// sweeping every database until it has caught up.
pub const GC_QUEUE_ENTRIES_MAX: usize = 1 << 18;
/// Shards of the active-snapshot registry (begin/end take one shard's lock).
pub const SNAPSHOT_SHARDS: usize = 32;
/// Buckets per database of GC's removal marks (`gc.rs`): a WATCH on a key that is absent at
/// EXEC fails if GC removed a key hashing to the same bucket after the WATCH. 1024 buckets (8
/// KiB per database) make that false failure need a removal in the same 1/1024 of the keyspace
/// meanwhile.
pub const REMOVAL_MARK_BUCKETS: usize = 1024;
/// Most keys sampled per database for one eviction choice (`maxmemory-samples` above this is
/// clamped; Redis accepts larger values but gains nothing from them).
pub const EVICTION_SAMPLES_MAX: u32 = 64;
/// Best candidates kept between eviction choices (Redis's `EVPOOL_SIZE`).
pub const EVICTION_POOL_KEYS: usize = 16;
/// Most keys evicted in one logged commit (each batch releases the commit lock).
pub const EVICTION_BATCH_KEYS: usize = 64;
/// Hash buckets looked at per sampled key before a sample gives up (Redis's `dictGetSomeKeys`
/// uses 10); keeps a volatile sample bounded when few keys have a TTL.
pub const EVICTION_SAMPLE_STEPS_PER_KEY: usize = 16;

/// Values compaction re-points per hold of the commit lock (bounds the pause writers see: a
/// re-point is a hash probe and a chain walk per database holding keys).
pub const COMPACT_VALUES_PER_LOCK: usize = 64;
/// Most bytes of old value copies waiting for a grace period (`compact.rs`); compaction moves
/// nothing more while the list is this full (an old snapshot holds the watermark).
pub const COMPACT_RETIRED_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Pages fuller than this (percent of the page, live bytes) are not evacuated by the paced
/// compaction: moving 80% of a page to win 20% costs four bytes copied per byte reclaimed.
pub const COMPACT_PAGE_FILL_MAX_PCT: u32 = 80;
/// Bounds of the bytes one compaction tick may move (see `compact.rs`, policy); at the
/// server's 10 ms tick the upper bound is 800 MB/s, far above any churn's garbage rate.
pub const COMPACT_TICK_BYTES_MIN: u64 = 256 * 1024;
/// See [`COMPACT_TICK_BYTES_MIN`].
pub const COMPACT_TICK_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// Compaction of the spill file (`compact::tick_spilled`) starts once the pages on SSD hold
/// this percentage more bytes than their live values: the file stays within 1.25 times the
/// data it holds (plus `active-defrag-ignore-bytes`), and SSD space, cheaper than RAM, buys
/// fewer rewrites than RAM compaction's 10 %.
pub const SPILL_COMPACT_THRESHOLD_PCT: u32 = 25;
/// Most bytes one compaction of the spill file moves out of sparse pages on SSD: each page
/// moved is a 64 KiB read, and the bytes moved are written again once their page seals. It
/// runs every 4 ticks of 10 ms (`tier.rs`) when the ticks keep time; under uniform overwrites
/// at 50 K/s of 1 KiB, a bound of 8 MiB let the file reach 2.2 times the live data.
pub const SPILL_COMPACT_TICK_BYTES_MAX: u64 = 24 * 1024 * 1024;
/// Longest one compaction of the spill file runs (it stops between pages), and while writes
/// wait for the tier (`tier::write_pressure`): the tier's tick that runs it also writes pages
/// out, which those writers wait for. Measured under uniform
/// overwrites at 10 x the budget: 20 ms always gave 37 K SETs/s but a file 4-6 x its live
/// data; no bound, 23 K SETs/s and 1.4-1.5 x.
pub const SPILL_COMPACT_RUN_MAX: std::time::Duration = std::time::Duration::from_millis(250);
/// See [`SPILL_COMPACT_RUN_MAX`].
pub const SPILL_COMPACT_RUN_MAX_PRESSED: std::time::Duration = std::time::Duration::from_millis(5);

const _: () = assert!(DATABASES <= u8::MAX as usize);
const _: () = assert!(COMPACT_VALUES_PER_LOCK >= 1);
const _: () = assert!(COMPACT_PAGE_FILL_MAX_PCT <= 100);
const _: () = assert!(COMPACT_TICK_BYTES_MIN <= COMPACT_TICK_BYTES_MAX);
const _: () = assert!(VALUE_MAX_BYTES < TXN_WRITE_BYTES_MAX);
const _: () = assert!(KEY_MAX_BYTES < TXN_WRITE_BYTES_MAX);
const _: () = assert!(GC_KEYS_PER_BATCH <= GC_KEYS_PER_CALL);
const _: () = assert!(EVICTION_SAMPLES_MAX >= 1 && EVICTION_POOL_KEYS >= 1);
const _: () = assert!(EVICTION_BATCH_KEYS >= 1 && EVICTION_SAMPLE_STEPS_PER_KEY >= 1);
