//! The SSD tier's driver: which sealed value pages stay in RAM, and when the frames of those
//! that went to SSD are given back.
//!
//! Each [`tick`]:
//! 1. feeds the page store's read buffer into the policy (W-TinyLFU by default, LRU as a
//!    switch: `storage::tier::Policy`, whose budget is the RAM the value pages may hold);
//! 2. applies the page store's queue of residency changes to it: a page sealed in RAM or
//!    loaded back joins, one freed or written to SSD leaves
//!    ([`storage::page::PageStore::drain_residency_changes`]), so a tick costs what changed,
//!    not the page ids (a walk of every page id, about 1 ns each, only when the bounded
//!    queue overflowed or the file was just attached);
//! 3. writes the pages the policy lets go to the spill file ([`storage::page::PageStore::spill`]),
//!    at most [`SPILL_PAGES_PER_TICK`], the rest (and any the disk refused, or busy) kept in
//!    order for the next ticks; from then on their values read as `NotResident` and the
//!    caller loads the page ([`crate::Engine::load_page`]) and tries again;
//! 4. every few ticks, after the policy's victims (which writers may be waiting for),
//!    compacts the spill file (`compact::tick_spilled`, for at most
//!    [`crate::limits::SPILL_COMPACT_RUN_MAX`], less while writes wait for the tier) and
//!    writes out the cold survivor pages that made;
//! 5. publishes a timestamp R under the commit lock and gives a spilled page's frame back
//!    once the low watermark (leaving out a checkpoint's long snapshot, whose scan registers
//!    a snapshot per batch) passes R.
//!
//! Why step 5 is safe: it is relocation's grace period (docs/ARCHITECTURE.md invariant 14).
//! A reader loads a `ValueRef` only under a registered snapshot or the commit lock. A page is
//! marked on SSD before R is taken under the commit lock, so a snapshot registered after R
//! was published, and a commit-lock holder after that section, finds the page marked and
//! never touches the frame; one that may have seen it resident holds the watermark below R
//! (or held the commit lock, which R's section waited for) until it is done.
//!
//! The miss path lives here too: [`plan_miss`] / [`fetch`] decide, per missed value, between
//! a read-through for one command's retry ([`Prefetched`], checked against the page's image)
//! and a promotion into RAM (a second miss lately, [`Doorkeeper`]); [`write_pressure`] is the
//! writers' backpressure; [`info`] the counters INFO shows.

use std::collections::{HashSet, VecDeque};

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use storage::page::{PageId, PageState, Residency, PAGE_SIZE};
use storage::tier::{EvictionPolicy, Policy, SpillError, SpillFile};
use storage::StorageError;

use crate::engine::Inner;

/// Pages spilled per tick at most (bounds the time a tick holds the disk).
pub const SPILL_PAGES_PER_TICK: usize = 256;
/// The spill file is compacted every this many ticks (its survey visits every page on SSD;
/// at the server's 10 ms tick, up to 25 times a second).
const SPILL_COMPACT_EVERY_TICKS: u32 = 4;

/// What one [`tick`] did, and the totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Pages written to SSD by this tick.
    pub spilled: u64,
    /// Frames given back by this tick.
    pub frames_released: u64,
    /// Spills that failed on the disk this tick (the pages stay in RAM).
    pub spill_errors: u64,
    /// True when the spill file was full this tick.
    pub disk_full: bool,
    /// Pages waiting for their grace period.
    pub awaiting_release: u64,
    /// Pages the policy holds as resident.
    pub policy_pages: u64,
    /// Sparse pages on SSD whose live values this tick moved out (`compact::tick_spilled`).
    pub compacted_pages: u64,
    /// 1 if this tick walked every page id (residency changes were lost), else 0.
    pub rescans: u64,
}

/// The tier's counters and rates for INFO (`Engine::tier_info`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TierInfo {
    /// Value reads by clients since the file was attached (a command's retries after a miss
    /// not counted again), and the misses among them (the value's page was on SSD).
    pub value_reads: u64,
    /// See `value_reads`.
    pub value_misses: u64,
    /// Hits over reads (`(value_reads - value_misses) / value_reads`), 1.0 with no read yet.
    pub hit_ratio: f64,
    /// Values later commands of a pipeline read from SSD, fetched with an earlier miss.
    pub fetched_ahead: u64,
    /// Misses, SSD reads and pages written per second, over the last second or so.
    pub misses_per_sec: f64,
    /// See `misses_per_sec`.
    pub ssd_reads_per_sec: f64,
    /// See `misses_per_sec`.
    pub pages_written_per_sec: f64,
    /// Values promoted from SSD into RAM pages alone (a small value's second miss lately).
    pub promotions: u64,
    /// Small values read from SSD for one command only (their first miss lately).
    pub read_throughs: u64,
    /// Pages loaded back whole (large values, commands over many cold keys).
    pub pages_loaded: u64,
    /// Live bytes in the pages on SSD, as of the last survey.
    pub ssd_live_bytes: u64,
    /// Sparse pages on SSD emptied by compaction of the spill file, and the bytes it moved.
    pub ssd_pages_compacted: u64,
    /// See `ssd_pages_compacted`.
    pub ssd_bytes_moved: u64,
    /// Spilled pages whose RAM frame waits for its grace period.
    pub frames_awaiting_release: u64,
}

/// Counters the driver and the miss path bump (relaxed atomics) and the last rates.
#[derive(Default)]
struct Counters {
    promotions: AtomicU64,
    read_throughs: AtomicU64,
    /// Reads served by a read-through's copy in a command's retry (the page store counted
    /// them as misses; the run before failed on them).
    prefetched_reads: AtomicU64,
    /// Reads served by a copy fetched ahead, while an earlier command of the pipeline missed:
    /// in the command's first run, so no failed run came before them (misses all the same:
    /// the value came from SSD).
    prefetched_ahead_reads: AtomicU64,
    /// Values later commands of a pipeline will read from SSD, found by
    /// `Engine::values_on_ssd` (the server fetches them with an earlier command's miss).
    fetched_ahead: AtomicU64,
    pages_loaded: AtomicU64,
    ssd_live_bytes: AtomicU64,
    ssd_pages_compacted: AtomicU64,
    ssd_bytes_moved: AtomicU64,
    frames_awaiting_release: AtomicU64,
    /// f64 bits.
    misses_per_sec: AtomicU64,
    ssd_reads_per_sec: AtomicU64,
    pages_written_per_sec: AtomicU64,
}

/// Where the rates were last sampled.
struct RateSample {
    at: std::time::Instant,
    misses: u64,
    ssd_reads: u64,
    pages_written: u64,
}

/// The driver's state: the policy and the pages waiting for their grace period.
pub(crate) struct Tier {
    state: Mutex<Option<TierState>>,
    counters: Counters,
    /// Which missed values are promoted ([`Doorkeeper`]).
    doorkeeper: Mutex<Doorkeeper>,
    /// A spill file is attached and was not full at the last tick.
    can_spill: std::sync::atomic::AtomicBool,
    /// A spill file is attached (reads may miss).
    attached: std::sync::atomic::AtomicBool,
}

/// Whether a spill file is attached, so reads may fail with `NotResident`.
pub(crate) fn attached(inner: &Inner) -> bool {
    inner
        .tier
        .attached
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether writes over `maxmemory` may go on under the `spill` policy: a spill file is
/// attached and had room at the last tick.
pub(crate) fn can_spill(inner: &Inner) -> bool {
    inner
        .tier
        .can_spill
        .load(std::sync::atomic::Ordering::Relaxed)
}

struct TierState {
    policy: Policy,
    /// The budget `attach` was given (used when no `maxmemory` applies).
    fixed_budget: u64,
    /// (R, page): spilled pages whose frames go once the watermark passes R.
    awaiting: VecDeque<(u64, PageId)>,
    /// Pages the policy let go that are not written yet (the tick's cap, a busy page, a
    /// disk refusing writes), oldest first. At most the pages in RAM.
    unwritten: VecDeque<u64>,
    /// Ticks so far (wrapping).
    ticks: u32,
    /// The last sample of the counters the rates are made of.
    sample: Option<RateSample>,
}

impl Tier {
    pub(crate) fn new() -> Tier {
        Tier {
            state: Mutex::new(None),
            counters: Counters::default(),
            doorkeeper: Mutex::new(Doorkeeper::new()),
            can_spill: std::sync::atomic::AtomicBool::new(false),
            attached: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// Attaches `file` and keeps at most `resident_budget` bytes of sealed value pages in RAM
/// under `policy`. False if a file is attached and pages are on it.
pub(crate) fn attach(
    inner: &Inner,
    file: SpillFile,
    resident_budget: u64,
    policy: EvictionPolicy,
) -> bool {
    let mut state = inner.tier.state.lock();
    if !inner.pages.attach_spill_file(file) {
        return false;
    }
    let expected = (resident_budget / PAGE_SIZE as u64).max(16) as usize;
    *state = Some(TierState {
        policy: Policy::new(policy, resident_budget, expected),
        awaiting: VecDeque::new(),
        unwritten: VecDeque::new(),
        ticks: 0,
        sample: None,
        fixed_budget: resident_budget,
    });
    inner
        .tier
        .can_spill
        .store(true, std::sync::atomic::Ordering::Relaxed);
    inner
        .tier
        .attached
        .store(true, std::sync::atomic::Ordering::Relaxed);
    true
}

/// The RAM the sealed value pages may hold: under `maxmemory` with the `spill` policy, what
/// the limit leaves after everything else `used_memory` counts (index, versions, the store's
/// own bookkeeping), less the room of the open pages; otherwise what `attach` was given.
fn budget(inner: &Inner, fixed: u64) -> u64 {
    let limit = inner.memory.maxmemory();
    if limit == 0 || inner.memory.policy() != crate::memory::EvictionPolicy::Spill {
        return fixed;
    }
    let stats = inner.memory.stats(&inner.pages, &inner.compactor);
    let other = stats.used_bytes.saturating_sub(stats.value_held_bytes);
    let open_pages = (inner.pages.open_page_count() as u64) * PAGE_SIZE as u64;
    limit
        .saturating_sub(other + open_pages)
        .max(PAGE_SIZE as u64)
}

/// Every second or so: the rates INFO reports, from the counters' change since the last
/// sample.
fn sample_rates(inner: &Inner, state: &mut TierState) {
    let now = std::time::Instant::now();
    let spill = inner.pages.spill_stats().unwrap_or_default();
    let current = RateSample {
        at: now,
        misses: inner.pages.read_counts().1,
        ssd_reads: spill.reads,
        pages_written: spill.pages_written,
    };
    let Some(last) = &state.sample else {
        state.sample = Some(current);
        return;
    };
    let secs = now.duration_since(last.at).as_secs_f64();
    if secs < 1.0 {
        return;
    }
    let rate = |now: u64, then: u64| (now.saturating_sub(then) as f64 / secs).to_bits();
    let counters = &inner.tier.counters;
    counters
        .misses_per_sec
        .store(rate(current.misses, last.misses), Ordering::Relaxed);
    counters
        .ssd_reads_per_sec
        .store(rate(current.ssd_reads, last.ssd_reads), Ordering::Relaxed);
    counters.pages_written_per_sec.store(
        rate(current.pages_written, last.pages_written),
        Ordering::Relaxed,
    );
    state.sample = Some(current);
}

/// The tier's counters and rates (INFO's tiering section).
pub(crate) fn info(inner: &Inner) -> TierInfo {
    let c = &inner.tier.counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    // The page store counts attempts and the attempts that found the page on SSD. Every such
    // failure but those a read-through's copy then served sends its command to fetch and run
    // again (one more attempt), so: misses = failures - served, requests = attempts - misses.
    let (attempts, failures) = inner.pages.read_counts();
    // A read served by a copy fetched ahead (while an earlier command of its pipeline missed)
    // is a failure too, but no run is repeated for it; it is a miss all the same, and so is a
    // value fetched ahead that was promoted into RAM before its command ran: every value
    // fetched ahead counts as one miss.
    let repeated = failures
        .saturating_sub(load(&c.prefetched_reads))
        .saturating_sub(load(&c.prefetched_ahead_reads));
    let value_reads = attempts.saturating_sub(repeated);
    let value_misses = (repeated + load(&c.fetched_ahead)).min(value_reads);
    TierInfo {
        value_reads,
        value_misses,
        hit_ratio: if value_reads == 0 {
            1.0
        } else {
            value_reads.saturating_sub(value_misses) as f64 / value_reads as f64
        },
        fetched_ahead: load(&c.fetched_ahead),
        misses_per_sec: f64::from_bits(load(&c.misses_per_sec)),
        ssd_reads_per_sec: f64::from_bits(load(&c.ssd_reads_per_sec)),
        pages_written_per_sec: f64::from_bits(load(&c.pages_written_per_sec)),
        promotions: load(&c.promotions),
        read_throughs: load(&c.read_throughs),
        pages_loaded: load(&c.pages_loaded),
        ssd_live_bytes: load(&c.ssd_live_bytes),
        ssd_pages_compacted: load(&c.ssd_pages_compacted),
        ssd_bytes_moved: load(&c.ssd_bytes_moved),
        frames_awaiting_release: load(&c.frames_awaiting_release),
    }
}

/// Writes `page` to SSD for [`tick`]: pushed to `spilled` if it went; false if the disk
/// refused it (counted in `stats`, the error kept in `failed`: the tick writes no more).
/// A page freed, loaded or busy since it was chosen is skipped (true): the next tick sees it
/// as it is.
fn spill_one(
    inner: &Inner,
    page: PageId,
    stats: &mut TierStats,
    spilled: &mut Vec<PageId>,
    failed: &mut Option<StorageError>,
) -> bool {
    match inner.pages.spill(page) {
        Ok(_) => {
            spilled.push(page);
            true
        }
        Err(StorageError::NotSpillable { .. }) => true,
        Err(error) => {
            stats.spill_errors += 1;
            if matches!(error, StorageError::Spill(SpillError::Full { .. })) {
                stats.disk_full = true;
            }
            *failed = Some(error);
            false
        }
    }
}

/// Whether writes should wait for the driver: under `maxmemory` with the `spill` policy, the
/// value pages held in RAM (sealed ones the policy lets go but not yet written, and spilled
/// ones whose frames wait for their grace period, included) are over their budget by more
/// than the headroom ([`WRITE_PRESSURE_HEADROOM_MIN`] or an eighth of the budget): writes
/// come faster than the disk takes pages. A few atomic loads.
pub(crate) fn write_pressure(inner: &Inner) -> bool {
    if !attached(inner)
        || inner.memory.maxmemory() == 0
        || inner.memory.policy() != crate::memory::EvictionPolicy::Spill
    {
        return false;
    }
    let budget = budget(inner, 0);
    let held = inner.pages.bytes_held();
    held > budget + (budget / 8).max(WRITE_PRESSURE_HEADROOM_MIN)
}

/// See [`write_pressure`].
pub const WRITE_PRESSURE_HEADROOM_MIN: u64 = 8 * 1024 * 1024;

/// One step of the driver (see the module docs).
pub(crate) fn tick(inner: &Inner) -> TierStats {
    let mut stats = TierStats::default();
    let mut guard = inner.tier.state.lock();
    let Some(state) = guard.as_mut() else {
        return stats;
    };
    let budget = budget(inner, state.fixed_budget);
    let mut victims = if budget != state.policy.budget() {
        state.policy.set_budget(budget)
    } else {
        Vec::new()
    };
    let mut spilled = Vec::new();
    // The first write error of this tick (then the tick writes no more: the disk is full or
    // failing, and every page it could not take stays in RAM, offered again next tick).
    let mut failed: Option<StorageError> = None;
    // 1. Reads since the last tick.
    inner.pages.drain_reads(&mut |page| {
        state.policy.access(u64::from(page.0));
    });
    // 2. The sealed resident pages, as the policy should know them: the pages that entered
    //    or left RAM since the last tick, in order; a walk of every page id only when some
    //    of those changes were lost (the store's bounded queue overflowed, or the file was
    //    just attached), so a tick costs what changed, not what is on SSD.
    let mut changes = Vec::new();
    let complete = inner
        .pages
        .drain_residency_changes(&mut |page, entered| changes.push((page, entered)));
    if complete {
        for (page, entered) in changes {
            let id = u64::from(page.0);
            if !entered {
                state.policy.remove(id);
            } else if !state.policy.contains(id) {
                victims.extend(state.policy.insert(id, PAGE_SIZE as u64));
            }
        }
    } else {
        stats.rescans += 1;
        let mut sealed = HashSet::new();
        inner.pages.scan_sealed(&mut |usage| {
            sealed.insert(usage.page.0);
        });
        let stale: Vec<u64> = state
            .policy
            .ids()
            .filter(|id| !u32::try_from(*id).is_ok_and(|page| sealed.contains(&page)))
            .collect();
        for id in stale {
            state.policy.remove(id);
        }
        for page in sealed {
            if !state.policy.contains(u64::from(page)) {
                victims.extend(state.policy.insert(u64::from(page), PAGE_SIZE as u64));
            }
        }
    }
    // 3. Out to SSD: the pages the policy let go, in order, at most
    //    [`SPILL_PAGES_PER_TICK`]; the rest wait their turn in `unwritten` (the policy no
    //    longer holds them, and no change would offer them again).
    state.unwritten.extend(victims);
    let mut tried = 0;
    while tried < SPILL_PAGES_PER_TICK && failed.is_none() {
        let Some(id) = state.unwritten.pop_front() else {
            break;
        };
        tried += 1;
        let Ok(page) = u32::try_from(id).map(PageId) else {
            continue;
        };
        if !spill_one(inner, page, &mut stats, &mut spilled, &mut failed) {
            // The disk refused it: first again once the disk takes pages.
            state.unwritten.push_front(id);
        } else if matches!(
            inner.pages.page_state(page),
            Some(PageState::Busy(Residency::Resident))
        ) {
            // Compaction holds it: later. (Written, freed or on SSD already: done.)
            state.unwritten.push_back(id);
        }
    }
    // 4. Sparse pages on SSD, after the policy's victims went out (writers may be waiting for
    //    those): their live values to cold survivor pages, which go straight back to SSD
    //    (they never join the policy). Every few ticks: the survey visits every page on SSD.
    //    Not while the disk refuses pages.
    state.ticks = state.ticks.wrapping_add(1);
    let counters = &inner.tier.counters;
    if state.ticks % SPILL_COMPACT_EVERY_TICKS == 0 {
        sample_rates(inner, state);
    }
    if state.ticks % SPILL_COMPACT_EVERY_TICKS == 0 && failed.is_none() {
        // Shorter while writes wait for the tier (RAM over budget and headroom).
        let run_max = if write_pressure(inner) {
            crate::limits::SPILL_COMPACT_RUN_MAX_PRESSED
        } else {
            crate::limits::SPILL_COMPACT_RUN_MAX
        };
        let (compacted, ssd_live) = crate::compact::tick_spilled(inner, run_max);
        stats.compacted_pages = compacted.pages_evacuated;
        counters
            .ssd_pages_compacted
            .fetch_add(compacted.pages_evacuated, Ordering::Relaxed);
        counters
            .ssd_bytes_moved
            .fetch_add(compacted.bytes_moved, Ordering::Relaxed);
        if let Some(live) = ssd_live {
            counters.ssd_live_bytes.store(live, Ordering::Relaxed);
        }
    }
    // A cold page left in RAM (the disk refused it) is offered to the policy by the next
    // tick's scan like any other sealed page.
    for page in inner.pages.take_sealed_cold() {
        if failed.is_some() {
            break;
        }
        spill_one(inner, page, &mut stats, &mut spilled, &mut failed);
    }
    stats.spilled = spilled.len() as u64;
    // Writes over `maxmemory` go on only while the disk takes pages (`memory::evict`: under
    // `spill`, RAM over the limit with a failing disk is `-OOM`). Said in the log when it
    // changes, not per page.
    let healthy = failed.is_none() || !spilled.is_empty();
    let was = inner
        .tier
        .can_spill
        .swap(healthy, std::sync::atomic::Ordering::Relaxed);
    match (&failed, was, healthy) {
        (Some(error), true, false) => tracing::warn!(
            %error,
            "the SSD tier cannot write pages: values stay in RAM, and writes get -OOM once it passes maxmemory"
        ),
        (None, false, true) => tracing::info!("the SSD tier writes pages again"),
        _ => {}
    }
    // 5. The grace period's timestamp, then the frames whose readers are gone.
    if !spilled.is_empty() {
        let lock = inner.commit_lock.lock();
        let ts = inner.oracle.next(&lock);
        inner.oracle.publish(ts, &lock);
        state
            .awaiting
            .extend(spilled.into_iter().map(|page| (ts.0, page)));
    }
    let (_, watermark, _) = inner
        .checkpoint_scan
        .low_watermarks(&inner.snapshots, &inner.oracle);
    while let Some(&(ts, page)) = state.awaiting.front() {
        if ts > watermark {
            break;
        }
        state.awaiting.pop_front();
        // SAFETY: marked on SSD before `ts` was published under the commit lock, and every
        // snapshot registered before it is released (the module docs).
        if unsafe { inner.pages.release_frame(page) } {
            stats.frames_released += 1;
        }
    }
    stats.awaiting_release = state.awaiting.len() as u64;
    counters
        .frames_awaiting_release
        .store(stats.awaiting_release, Ordering::Relaxed);
    stats.policy_pages = state.policy.len() as u64;
    stats
}

/// Loads waiting for a page another thread is loading (or spilling, or compaction has
/// pinned) before giving up: 10 ms in all.
const LOAD_BUSY_RETRIES: u32 = 100;

/// Brings `page` back into RAM (blocking on the disk: call it off the async workers). A page
/// already resident, or freed meanwhile, needs nothing: the caller's retry finds it as it is.
/// Concurrent misses on one page share its read: the first loads it, the others wait for it.
pub(crate) fn load_page(inner: &Inner, page: PageId) -> Result<(), StorageError> {
    let _span = tracing::debug_span!("page_read", page = page.0).entered();
    for _ in 0..LOAD_BUSY_RETRIES {
        match inner.pages.load(page) {
            Ok(()) => {
                inner
                    .tier
                    .counters
                    .pages_loaded
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(StorageError::NotSpillable { .. }) => {
                match inner.pages.page_state(page) {
                    // Busy on SSD: someone else is loading it (a busy resident page reads
                    // fine: compaction's pin, or a spill the retry will meet).
                    Some(storage::page::PageState::Busy(storage::page::Residency::OnSsd {
                        ..
                    })) => {
                        std::thread::sleep(std::time::Duration::from_micros(100));
                    }
                    _ => return Ok(()),
                }
            }
            other => return other,
        }
    }
    Ok(())
}

/// A value read from SSD for one command's retry, with the image it came from
/// ([`fetch`]'s read-through): the retry's read of that same place takes these bytes while the
/// page's image on SSD is still that one (same slot, same write generation: the page was
/// neither loaded, freed, reused nor rewritten, and a place in it holds what it held).
#[derive(Debug, Clone)]
pub struct Prefetched {
    value: storage::page::ValueRef,
    image: (storage::tier::SlotId, u64),
    bytes: bytes::Bytes,
}

impl Prefetched {
    /// Which value this is.
    pub fn value(&self) -> storage::page::ValueRef {
        self.value
    }
}

type PrefetchedMap = std::collections::HashMap<
    storage::page::ValueRef,
    ((storage::tier::SlotId, u64), bytes::Bytes),
>;

thread_local! {
    /// The values the command running on this thread fetched before this run
    /// (`Engine::with_prefetched`), at most [`PREFETCHED_MAX`].
    static PREFETCHED: std::cell::RefCell<PrefetchedMap> =
        std::cell::RefCell::new(PrefetchedMap::new());
}

thread_local! {
    /// Whether the values in [`PREFETCHED`] were fetched ahead ([`with_prefetched`]).
    static AHEAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Values one command run may carry from read-throughs (an MGET over that many cold keys).
pub const PREFETCHED_MAX: usize = 4096;

/// Runs `f` with `prefetched` readable by [`read_value`] on this thread (the server runs a
/// command again this way after fetching what it missed); `ahead`: `f` is the command's first
/// run, with values fetched while an earlier command of its pipeline missed (counted apart
/// for the hit ratio).
pub(crate) fn with_prefetched<R>(
    prefetched: &[Prefetched],
    ahead: bool,
    f: impl FnOnce() -> R,
) -> R {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            PREFETCHED.with(|p| p.borrow_mut().clear());
            AHEAD.with(|a| a.set(false));
        }
    }
    AHEAD.with(|a| a.set(ahead));
    PREFETCHED.with(|p| {
        let mut p = p.borrow_mut();
        p.clear();
        p.extend(
            prefetched
                .iter()
                .take(PREFETCHED_MAX)
                .map(|f| (f.value, (f.image, f.bytes.clone()))),
        );
    });
    let _clear = Clear;
    f()
}

/// A committed value's bytes, for every read a command makes: from RAM, or, when its page is
/// on SSD, from a read-through this thread's command was handed ([`with_prefetched`]) if that
/// still describes the page's image; otherwise `NotResident`.
pub(crate) fn read_value(
    inner: &Inner,
    value: storage::page::ValueRef,
) -> Result<bytes::Bytes, StorageError> {
    match inner.pages.read(value) {
        Err(StorageError::NotResident { page, offset, len }) => {
            let kept = PREFETCHED.with(|p| p.borrow().get(&value).cloned());
            match kept {
                Some((image, bytes)) if inner.pages.spilled_image(value.page) == Some(image) => {
                    let counters = &inner.tier.counters;
                    let served = if AHEAD.with(std::cell::Cell::get) {
                        &counters.prefetched_ahead_reads
                    } else {
                        &counters.prefetched_reads
                    };
                    served.fetch_add(1, Ordering::Relaxed);
                    Ok(bytes)
                }
                _ => Err(StorageError::NotResident { page, offset, len }),
            }
        }
        other => other,
    }
}

/// Counts values that later commands of a pipeline will read from SSD ([`Counters`]).
pub(crate) fn count_fetched_ahead(inner: &Inner, values: usize) {
    if values > 0 {
        inner
            .tier
            .counters
            .fetched_ahead
            .fetch_add(values as u64, Ordering::Relaxed);
    }
}

/// Which missed values are promoted: a doorkeeper (a Bloom filter cleared every
/// [`DOORKEEPER_INSERTS`] misses, as in front of TinyLFU) remembers the values that missed
/// lately; a value that misses again while remembered is read often enough to move into RAM,
/// and one that misses once is only read through. Uniform reads over ten times the budget
/// then write nothing (they promoted every value, and compaction of the spill file then
/// rewrote the holes promotion left), while a Zipf head still comes into RAM on its second
/// miss. Bits: 2^20 (128 KiB), two probes: about 5 % false positives when full.
struct Doorkeeper {
    bits: Vec<u64>,
    inserts: u32,
}

const DOORKEEPER_BITS: usize = 1 << 20;
const DOORKEEPER_INSERTS: u32 = 1 << 17;

impl Doorkeeper {
    fn new() -> Doorkeeper {
        Doorkeeper {
            bits: vec![0; DOORKEEPER_BITS / 64],
            inserts: 0,
        }
    }

    /// Remembers `item`; true if it was remembered already.
    fn seen_again(&mut self, item: u64) -> bool {
        let hash = item.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let probes = [hash >> 44, (hash >> 20) & 0xF_FFFF];
        let mut seen = true;
        for probe in probes {
            let bit = (probe as usize) % DOORKEEPER_BITS;
            if let Some(word) = self.bits.get_mut(bit / 64) {
                let mask = 1u64 << (bit % 64);
                seen &= *word & mask != 0;
                *word |= mask;
            }
        }
        if !seen {
            self.inserts += 1;
            if self.inserts >= DOORKEEPER_INSERTS {
                self.bits.iter_mut().for_each(|w| *w = 0);
                self.inserts = 0;
            }
        }
        seen
    }
}

/// Reads several values one command missed in one page on SSD with one read of the page,
/// and hands them all back for the command's retry ([`Prefetched`]); nothing is promoted or
/// loaded (a sweep over neighbouring keys says nothing of what is hot, and under a small
/// budget a loaded page would go back to SSD before the retry). A value whose header no longer
/// matches is left out (stale: the retry reads its key afresh). Blocks on the disk.
pub(crate) fn fetch_from_page(
    inner: &Inner,
    values: &[storage::page::ValueRef],
) -> Result<Vec<Prefetched>, crate::TxnError> {
    let Some(page) = values.first().map(|v| v.page) else {
        return Ok(Vec::new());
    };
    let header = storage::page::VALUE_HEADER_BYTES;
    let small = |v: &storage::page::ValueRef| {
        v.page == page
            && v.len as usize <= storage::page::SMALL_VALUE_MAX_BYTES
            && v.offset as usize >= header
    };
    if !values.iter().all(small) {
        return load_page(inner, page)
            .map(|()| Vec::new())
            .map_err(Into::into);
    }
    let Some((bytes, image)) = inner.pages.read_cold_page(page)? else {
        // In RAM after all (loaded meanwhile), or freed: the retry reads afresh.
        return Ok(Vec::new());
    };
    inner
        .tier
        .counters
        .read_throughs
        .fetch_add(values.len() as u64, Ordering::Relaxed);
    let bytes = bytes::Bytes::from(bytes);
    Ok(values
        .iter()
        .filter_map(|&value| {
            let start = value.offset as usize;
            let word: [u8; 8] = bytes.get(start - header..start)?.try_into().ok()?;
            if u64::from_le_bytes(word) & 0xFFFF != u64::from(value.len) {
                return None;
            }
            let end = start + value.len as usize;
            (end <= bytes.len()).then(|| Prefetched {
                value,
                image,
                bytes: bytes.slice(start..end),
            })
        })
        .collect())
}

/// After a read missed `value` (its page is on SSD): a small value that missed before lately
/// (the doorkeeper) is promoted, i.e. read from SSD alone (the 4 KiB blocks holding it and its
/// header), copied into a survivor page and every version naming it re-pointed, as compaction
/// moves a value (`compact.rs`, invariant 14: the old place is retired until no reader can hold
/// it), and `None` comes back; a small value missed for the first time is read the same way
/// and handed back ([`Prefetched`]) for the command's retry only, its page untouched. A value
/// without a header (larger than a shared page takes) loads its whole page. Blocks on the disk:
/// call it off the async workers.
pub(crate) fn fetch(
    inner: &Inner,
    value: storage::page::ValueRef,
) -> Result<Option<Prefetched>, crate::TxnError> {
    let promote = !is_small(value) || seen_again(inner, value);
    let _span =
        tracing::debug_span!("value_read", page = value.page.0, len = value.len, promote).entered();
    fetch_decided(inner, value, promote)
}

fn is_small(value: storage::page::ValueRef) -> bool {
    value.len as usize <= storage::page::SMALL_VALUE_MAX_BYTES
        && value.offset as usize >= storage::page::VALUE_HEADER_BYTES
}

/// The doorkeeper's verdict on a miss of `value` (recording it): missed before lately.
fn seen_again(inner: &Inner, value: storage::page::ValueRef) -> bool {
    let place = u64::from(value.page.0) << 32 | u64::from(value.offset);
    inner.tier.doorkeeper.lock().seen_again(place)
}

/// How a miss is served ([`plan_miss`]).
#[derive(Debug)]
pub enum Miss {
    /// Read these blocks (asynchronously: io_uring), then
    /// [`crate::Engine::complete_read_through`].
    Read(storage::page::ColdPlan),
    /// Fetch it the blocking way ([`crate::Engine::fetch_missed`]), promoting it or not.
    Fetch {
        /// Whether to promote it (its second miss lately) or read it through.
        promote: bool,
    },
}

/// Decides how a miss of `value` is served: a small value's first miss lately is read
/// through, asynchronously where the spill file has a descriptor; everything else is fetched
/// on a blocking thread. Records the miss with the doorkeeper (once).
pub(crate) fn plan_miss(
    inner: &Inner,
    value: storage::page::ValueRef,
) -> Result<Miss, crate::TxnError> {
    if !is_small(value) || seen_again(inner, value) {
        return Ok(Miss::Fetch { promote: true });
    }
    Ok(match inner.pages.plan_cold_read(value) {
        Ok(Some(plan)) => Miss::Read(plan),
        // In RAM after all, stale, or no descriptor: the blocking way sorts it out.
        Ok(None) | Err(StorageError::BadValueRef { .. }) => Miss::Fetch { promote: false },
        Err(error) => return Err(error.into()),
    })
}

/// Checks the blocks an asynchronous read of `plan` brought back and hands the value to the
/// command's retry; `None` if the page's image changed meanwhile (the retry reads afresh).
pub(crate) fn complete_read_through(
    inner: &Inner,
    plan: &storage::page::ColdPlan,
    blocks: &[u8],
    took: std::time::Duration,
) -> Result<Option<Prefetched>, crate::TxnError> {
    match inner.pages.finish_cold_read(plan, blocks, took) {
        Ok(Some(read)) => {
            inner
                .tier
                .counters
                .read_throughs
                .fetch_add(1, Ordering::Relaxed);
            Ok(Some(Prefetched {
                value: plan.value(),
                image: read.image,
                bytes: read.value,
            }))
        }
        Ok(None) | Err(StorageError::BadValueRef { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// [`fetch`] with the doorkeeper's verdict already taken (`promote`).
pub(crate) fn fetch_decided(
    inner: &Inner,
    value: storage::page::ValueRef,
    promote: bool,
) -> Result<Option<Prefetched>, crate::TxnError> {
    if !is_small(value) {
        return load_page(inner, value.page)
            .map(|()| None)
            .map_err(Into::into);
    }
    if !promote {
        inner
            .tier
            .counters
            .read_throughs
            .fetch_add(1, Ordering::Relaxed);
        return match inner.pages.read_cold_owned(value) {
            // Stale (see below) or in RAM after all: the retry reads afresh.
            Err(StorageError::BadValueRef { .. }) | Ok(None) => Ok(None),
            Err(error) => Err(error.into()),
            Ok(Some(read)) => Ok(Some(Prefetched {
                value,
                image: read.image,
                bytes: read.value,
            })),
        };
    }
    // Held busy while we read and re-point: the place cannot be freed and reused meanwhile.
    let mut hold = None;
    for _ in 0..LOAD_BUSY_RETRIES {
        match inner.pages.hold(value.page) {
            Ok(h) => {
                hold = Some(h);
                break;
            }
            Err(StorageError::NotSpillable { .. }) => match inner.pages.page_state(value.page) {
                Some(storage::page::PageState::Busy(storage::page::Residency::OnSsd {
                    ..
                })) => std::thread::sleep(std::time::Duration::from_micros(100)),
                // Resident (loaded meanwhile) or freed: the retry finds it as it is.
                _ => return Ok(None),
            },
            Err(error) => return Err(error.into()),
        }
    }
    let Some(hold) = hold else { return Ok(None) };
    let read = match inner.pages.read_cold_owned(value) {
        // The place holds no value of that length any more: the reader's version was
        // superseded and freed, and the page emptied, reused and spilled again since it
        // looked. Nothing to fetch: its retry reads the key afresh.
        Err(StorageError::BadValueRef { .. }) => return Ok(None),
        other => other?,
    };
    let Some(storage::page::ColdRead {
        value: bytes,
        owner,
        ..
    }) = read
    else {
        // In RAM after all.
        return Ok(None);
    };
    let copy = inner
        .pages
        .relocate_bytes(&bytes, owner, storage::page::Survivors::Hot)?;
    let guard = crossbeam_epoch::pin();
    let published = {
        let lock = inner.commit_lock.lock();
        let mut naming = 0;
        for d in crate::compact::populated(inner) {
            d.index.for_each_with_tag(owner, &guard, &mut |node| {
                naming += node.repoint(value, copy, &guard);
            });
        }
        (naming > 0).then(|| {
            let ts = inner.oracle.next(&lock);
            inner.oracle.publish(ts, &lock);
            ts
        })
    };
    match published {
        Some(ts) => {
            crate::compact::retire(inner, ts.0, value);
            inner
                .tier
                .counters
                .promotions
                .fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: no version names the copy: it was never published.
        None => drop(unsafe { inner.pages.free(copy) }),
    }
    drop(hold);
    Ok(None)
}
