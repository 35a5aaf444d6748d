//! Compaction: moves live values out of sparse value pages so the pages can be recycled, and
//! memory follows live data (a page is recycled only when every value in it is freed, so the
//! values nobody overwrites would otherwise pin their pages for good).
//!
//! # Relocation: the one way a published value changes place
//!
//! 1. Pin the page ([`storage::page::PageStore::pin`]): it is not recycled while pinned, so
//!    every value in it stays readable even if its owner frees it meanwhile.
//! 2. Outside the commit lock, walk the page's values (their headers name each one's owner
//!    tag, the top of its key's hash, see `index::KeyHasher`); a value some version of its
//!    key still names ([`KeyNode::names`]) is copied to a survivor page
//!    ([`storage::page::PageStore::relocate`]).
//! 3. Under the commit lock, a batch at a time: every version, in every database, that names
//!    the old place is re-pointed to the copy ([`KeyNode::repoint`]); a copy no version names
//!    any more (its versions were cut meanwhile) is freed at once, never published. Then a
//!    timestamp R is taken and published (no log record: relocation changes no data, and
//!    recovery tolerates gaps between commit timestamps), and the old places are retired at
//!    R.
//! 4. A retired place is freed once the low watermark reaches R, leaving out a checkpoint's
//!    long snapshot: its scan registers a snapshot for each batch it reads, which counts as
//!    any reader's (`checkpoint_scan.rs`), so a checkpoint no longer holds compaction's
//!    frees back for as long as it runs.
//!
//! Why that is safe: a `ValueRef` is dereferenced only by a thread that registered a snapshot
//! before loading it from a version (every read path: `Engine::get`, `Transaction`,
//! checkpoints) or that holds the commit lock (`update_one`'s decision). A snapshot registered
//! after R was published reads the oracle at R or later, and R was published (Release) after
//! the re-point, so it loads the new place. A snapshot that may have loaded the old place was
//! registered before, at a timestamp below R, and holds the low watermark below R until it is
//! released. Under the commit lock nothing re-points, cuts or installs concurrently, so GC
//! frees each value once: the copy through the versions, the old place through the retire
//! list. This is the mechanism the SSD tier reuses to promote values out of cold pages.
//!
//! # Policy
//!
//! Compaction runs when the sealed pages hold more than `threshold_lower_pct` percent more
//! bytes than their live values and the excess is above `ignore_bytes` (Redis's
//! `active-defrag-threshold-lower` and `active-defrag-ignore-bytes`). It evacuates the pages
//! with the best benefit per cost first (LFS's cost-benefit cleaner: free space times age over
//! the bytes to move, [`benefit_per_cost`]), pages at most [`COMPACT_PAGE_FILL_MAX_PCT`] full, within a budget of bytes moved per tick paced by the
//! garbage rate: twice the bytes freed since the last tick plus an eighth of the excess, so it
//! keeps up with the churn that makes garbage and catches up on a backlog within a few ticks.
//! New values and moved ones go to different pages (`PageStoreConfig::survivor_pages`): the
//! values that outlived one page tend to outlive the next, so survivor pages stay dense.
//!
//! Invariant: the retire list is bounded ([`COMPACT_RETIRED_BYTES_MAX`]); while it is full
//! (an old snapshot holds the watermark) compaction moves nothing more, so relocation never
//! makes memory grow behind a stuck snapshot.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crossbeam_epoch::Guard;
use parking_lot::Mutex;
use storage::page::{PageId, PinnedPage, SpilledPage, Survivors, ValueRef, PAGE_SIZE};
use storage::StorageError;

use crate::engine::{Db, Inner, KeyPrefetch};
use crate::index::{KeyIndex, KeyNode};
use crate::limits::{
    COMPACT_PAGE_FILL_MAX_PCT, COMPACT_RETIRED_BYTES_MAX, COMPACT_TICK_BYTES_MAX,
    COMPACT_TICK_BYTES_MIN, COMPACT_VALUES_PER_LOCK, SPILL_COMPACT_THRESHOLD_PCT,
    SPILL_COMPACT_TICK_BYTES_MAX,
};
use crate::timestamp::CommitTs;

/// Epoch flushes per compaction tick (see `tick`).
const EPOCH_FLUSHES_PER_TICK: usize = 8;

/// When and how hard compaction works (Redis's `activedefrag` settings, by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionConfig {
    /// `activedefrag`: whether [`crate::Engine::compact_tick`] moves anything.
    pub enabled: bool,
    /// `active-defrag-threshold-lower`: work only while sealed pages hold more than this
    /// percentage of bytes above their live values.
    pub threshold_lower_pct: u32,
    /// `active-defrag-ignore-bytes`: work only while that excess is above this many bytes.
    pub ignore_bytes: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            enabled: true,
            threshold_lower_pct: 10,
            ignore_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What compaction did (since the engine started, or in one call) and what waits now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Calls that evacuated at least one page.
    pub runs: u64,
    /// Pages whose live values were all moved out (each recycled once its old copies are
    /// freed).
    pub pages_evacuated: u64,
    /// Values moved to survivor pages.
    pub values_moved: u64,
    /// Bytes moved (values and their headers).
    pub bytes_moved: u64,
    /// Page bytes given up by evacuated pages, minus the bytes moved out of them.
    pub bytes_reclaimed: u64,
    /// Old copies waiting for the snapshots that may read them (now).
    pub retired_values: u64,
    /// Their bytes (now).
    pub retired_bytes: u64,
}

/// Compaction's state: one compactor at a time. The settings are atomics, so the memory
/// accounting reads them without the lock.
pub(crate) struct Compactor {
    state: Mutex<CompactState>,
    enabled: AtomicBool,
    threshold_lower_pct: AtomicU32,
    ignore_bytes: AtomicU64,
    /// Bytes of old copies on the retire list (mirrors `CompactState::retired_bytes`).
    retired: AtomicU64,
}

#[derive(Default)]
struct CompactState {
    /// Old places of moved values, by the timestamp they were retired at (ascending).
    retired: VecDeque<(u64, ValueRef)>,
    retired_bytes: u64,
    /// `bytes_written - bytes_live` of the page store at the last tick: bytes freed ever.
    freed_seen: u64,
    totals: CompactionStats,
}

impl Compactor {
    /// A compactor with the default settings.
    pub(crate) fn new() -> Compactor {
        let defaults = CompactionConfig::default();
        Compactor {
            state: Mutex::default(),
            enabled: AtomicBool::new(defaults.enabled),
            threshold_lower_pct: AtomicU32::new(defaults.threshold_lower_pct),
            ignore_bytes: AtomicU64::new(defaults.ignore_bytes),
            retired: AtomicU64::new(0),
        }
    }

    pub(crate) fn config(&self) -> CompactionConfig {
        CompactionConfig {
            enabled: self.enabled.load(Ordering::Relaxed),
            threshold_lower_pct: self.threshold_lower_pct.load(Ordering::Relaxed),
            ignore_bytes: self.ignore_bytes.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn set_config(&self, config: CompactionConfig) {
        self.enabled.store(config.enabled, Ordering::Relaxed);
        self.threshold_lower_pct
            .store(config.threshold_lower_pct, Ordering::Relaxed);
        self.ignore_bytes
            .store(config.ignore_bytes, Ordering::Relaxed);
    }

    /// Totals, with the retire list as it is now.
    pub(crate) fn stats(&self) -> CompactionStats {
        let state = self.state.lock();
        CompactionStats {
            retired_values: state.retired.len() as u64,
            retired_bytes: state.retired_bytes,
            ..state.totals
        }
    }

    /// What eviction charges for `live` bytes of live values: their share of the
    /// fragmentation compaction tolerates, `live * (1 + threshold_lower_pct / 100)`; only
    /// `live` with compaction off (see `memory`, "What eviction counts"). A load, no lock.
    pub(crate) fn charge(&self, live: u64) -> u64 {
        if !self.enabled.load(Ordering::Relaxed) {
            return live;
        }
        let pct = u64::from(self.threshold_lower_pct.load(Ordering::Relaxed));
        live.saturating_add(live.saturating_mul(pct) / 100)
    }

    /// What compaction has left to give back: freed space held beyond the fragmentation it
    /// tolerates (the larger of `threshold_lower_pct` of `live` and `ignore_bytes`), plus the
    /// old copies of moved values waiting for a grace period. All freed space held, when
    /// compaction is off. A few loads, no lock.
    pub(crate) fn backlog_bytes(&self, held: u64, live: u64) -> u64 {
        let config = self.config();
        let tolerated = if config.enabled {
            (live * u64::from(config.threshold_lower_pct) / 100).max(config.ignore_bytes)
        } else {
            0
        };
        held.saturating_sub(live).saturating_sub(tolerated) + self.retired_bytes()
    }

    /// Bytes of old copies on the retire list (a load, no lock).
    /// Gives back the retire list's buffer beyond twice what it holds (see
    /// `GcQueue::shrink`).
    pub(crate) fn shrink(&self) {
        let mut state = self.state.lock();
        let keep = state.retired.len().saturating_mul(2).max(1024);
        if state.retired.capacity() > keep {
            state.retired.shrink_to(keep);
        }
    }

    pub(crate) fn retired_bytes(&self) -> u64 {
        self.retired.load(Ordering::Relaxed)
    }
}

/// One paced step (see the module docs): frees what the watermark allows, then, if the pages
/// are fragmented enough, evacuates the best candidates within the tick's budget.
pub(crate) fn tick(inner: &Inner) -> CompactionStats {
    // Index nodes and versions are destroyed through the epoch collector, in bags of 64 that
    // are collected a few at a time as threads pin: an idle server would keep a removed
    // keyspace's nodes allocated for good. Each flush hands this thread's bag in and collects
    // up to 8 bags the epoch allows, so 8 a tick free about 50 K objects: the nodes a FLUSHALL
    // of 500 K keys released are back with the allocator within a second or two.
    for _ in 0..EPOCH_FLUSHES_PER_TICK {
        crossbeam_epoch::pin().flush();
    }
    let Some(mut state) = inner.compactor.state.try_lock() else {
        return CompactionStats::default();
    };
    release_retired(inner, &mut state);
    let watermark = || {
        let (all, _, _) = inner
            .checkpoint_scan
            .low_watermarks(&inner.snapshots, &inner.oracle);
        all
    };
    if crate::keyspace::reclaim_due_with(inner, watermark) {
        // A flush's keys are being freed (`keyspace.rs`): their pages empty by themselves,
        // and moving values out of them now would only copy what is about to be freed. (A
        // flush still held by an old snapshot does not stop compaction.)
        return CompactionStats::default();
    }
    let pages = &inner.pages;
    let freed_ever = pages.bytes_written().saturating_sub(pages.bytes_live());
    let freed_now = freed_ever.saturating_sub(state.freed_seen);
    state.freed_seen = freed_ever;
    let config = inner.compactor.config();
    // Cheap test first (a few loads): pages held against live bytes, before any scan. With
    // the SSD tier the live bytes count values on SSD too, which hold no RAM page, so only
    // the survey (of pages in RAM) can tell; it skipped RAM compaction for good once most
    // values were on SSD, and a third of the value pages in RAM were holes.
    let held = pages.bytes_held();
    let live = pages.bytes_live();
    let allowance = |live: u64| live * u64::from(config.threshold_lower_pct) / 100;
    if !config.enabled
        || (!crate::tier::attached(inner)
            && held.saturating_sub(live) <= allowance(live).max(config.ignore_bytes))
    {
        return CompactionStats::default();
    }
    let survey = survey(inner, COMPACT_PAGE_FILL_MAX_PCT);
    let excess = survey
        .bytes
        .saturating_sub(survey.live)
        .saturating_sub(allowance(survey.live));
    if excess <= config.ignore_bytes {
        return CompactionStats::default();
    }
    let budget = (2 * freed_now + excess / 8).clamp(COMPACT_TICK_BYTES_MIN, COMPACT_TICK_BYTES_MAX);
    let _span = tracing::debug_span!("compaction", budget, excess).entered();
    let stats = evacuate_pages(
        inner,
        &mut state,
        &survey.candidates,
        budget,
        excess,
        Where::Ram,
    );
    if stats.values_moved > 0 {
        tracing::debug!(
            pages = stats.pages_evacuated,
            values = stats.values_moved,
            bytes = stats.bytes_moved,
            "compaction step"
        );
    }
    stats
}

/// Compaction of the spill file (run by the SSD tier's tick): while the pages on SSD hold more
/// than [`SPILL_COMPACT_THRESHOLD_PCT`] percent more bytes than their live values (and the
/// excess is above `active-defrag-ignore-bytes`, [`CompactionConfig::ignore_bytes`]; it runs
/// whether or not `activedefrag` is on, since the file has no other bound), evacuates the best candidates as RAM
/// compaction does, reading each page whole from SSD and copying its live values to cold
/// survivor pages ([`Survivors::Cold`]), which go back to SSD as soon as they seal. Without
/// it the file keeps every page that holds one live value: it grew to three times the data
/// under overwrites. Paced by the excess (a quarter of it per run, within bounds), so the
/// disk time it takes follows the rate at which overwrites make garbage on SSD.
///
/// Returns what it did and, when it surveyed, the live bytes on SSD.
pub(crate) fn tick_spilled(
    inner: &Inner,
    run_max: std::time::Duration,
) -> (CompactionStats, Option<u64>) {
    let Some(mut state) = inner.compactor.state.try_lock() else {
        return (CompactionStats::default(), None);
    };
    release_retired(inner, &mut state);
    let survey = survey_where(
        inner,
        COMPACT_PAGE_FILL_MAX_PCT,
        Where::Ssd(std::time::Instant::now()),
    );
    let excess = survey
        .bytes
        .saturating_sub(survey.live)
        .saturating_sub(survey.live * u64::from(SPILL_COMPACT_THRESHOLD_PCT) / 100);
    if excess <= inner.compactor.config().ignore_bytes {
        return (CompactionStats::default(), Some(survey.live));
    }
    let budget = (excess / 4).clamp(COMPACT_TICK_BYTES_MIN, SPILL_COMPACT_TICK_BYTES_MAX);
    let stats = evacuate_pages(
        inner,
        &mut state,
        &survey.candidates,
        budget,
        excess,
        Where::Ssd(std::time::Instant::now() + run_max),
    );
    (stats, Some(survey.live))
}

/// Evacuates every sealed page at most `fill_max_pct` percent full, however much that moves,
/// then frees what the watermark allows (tests, and memory pressure).
pub(crate) fn compact_now(inner: &Inner, fill_max_pct: u32) -> CompactionStats {
    let mut state = inner.compactor.state.lock();
    let survey = survey(inner, fill_max_pct);
    let stats = evacuate_pages(
        inner,
        &mut state,
        &survey.candidates,
        u64::MAX,
        u64::MAX,
        Where::Ram,
    );
    release_retired(inner, &mut state);
    CompactionStats {
        retired_values: state.retired.len() as u64,
        retired_bytes: state.retired_bytes,
        ..stats
    }
}

/// Frees the retired copies no snapshot can read any more.
pub(crate) fn release_retired_now(inner: &Inner) {
    let mut state = inner.compactor.state.lock();
    release_retired(inner, &mut state);
}

fn release_retired(inner: &Inner, state: &mut CompactState) {
    if state.retired.is_empty() {
        return;
    }
    // A checkpoint's long snapshot does not count: its scan registers a snapshot of its own
    // for each batch it reads (`checkpoint_scan.rs`).
    let (_, watermark, _) = inner
        .checkpoint_scan
        .low_watermarks(&inner.snapshots, &inner.oracle);
    while let Some(&(ts, value)) = state.retired.front() {
        if ts > watermark {
            break;
        }
        state.retired.pop_front();
        state.retired_bytes = state.retired_bytes.saturating_sub(value.footprint());
        inner
            .compactor
            .retired
            .store(state.retired_bytes, Ordering::Relaxed);
        // SAFETY: retired at `ts` <= the low watermark: every snapshot that could have loaded
        // this place is released (module docs), and no version names it any more.
        let _ = unsafe { inner.pages.free(value) };
    }
}

/// The sealed pages and the candidates for evacuation among them.
struct Survey {
    /// Page bytes of the sealed pages with live values.
    bytes: u64,
    /// Live bytes in them.
    live: u64,
    /// Pages at most the fill limit full, best first (see [`benefit_per_cost`]), with their
    /// live bytes.
    candidates: Vec<(PageId, u32)>,
}

/// Log-structured file systems' cost-benefit choice (Rosenblum and Ousterhout, LFS): moving a
/// page's live bytes `u` (a fraction of the page) costs reading them and writing them again,
/// `1 + u`, and frees `1 - u`, for as long as that space would otherwise stay dead, which the
/// page's age predicts: a page whose values have survived many seals since holds values that
/// will survive more, while a young page is still emptying by itself (the hot keys it holds
/// get overwritten) and is better left to empty. Picking the emptiest page first moved about
/// three bytes per byte written under Zipf churn, most of them values about to die.
fn benefit_per_cost(live: u32, age: u32) -> u64 {
    let page = PAGE_SIZE as u64;
    let live = u64::from(live).min(page);
    // (1 - u) * age / (1 + u), scaled by the page size (fits: 2^16 * 2^32 * 2^10 < 2^64).
    (page - live) * u64::from(age) * 1024 / (page + live)
}

fn survey(inner: &Inner, fill_max_pct: u32) -> Survey {
    survey_where(inner, fill_max_pct, Where::Ram)
}

/// Which pages a survey looks at and where evacuation reads them from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    /// Sealed pages in RAM: values copied from their frames to hot survivor pages.
    Ram,
    /// Pages on SSD: each read whole (checked), values copied to cold survivor pages, which
    /// the SSD tier writes out as soon as they seal; no new page after the deadline.
    Ssd(std::time::Instant),
}

fn survey_where(inner: &Inner, fill_max_pct: u32, place: Where) -> Survey {
    let mut survey = Survey {
        bytes: 0,
        live: 0,
        candidates: Vec::new(),
    };
    let fill_max = (PAGE_SIZE as u64 * u64::from(fill_max_pct) / 100) as u32;
    let mut scored = Vec::new();
    let mut visit = |usage: storage::page::PageUsage| {
        survey.bytes += PAGE_SIZE as u64;
        survey.live += u64::from(usage.live);
        if usage.live <= fill_max {
            scored.push((
                benefit_per_cost(usage.live, usage.age),
                usage.page,
                usage.live,
            ));
        }
    };
    match place {
        Where::Ram => inner.pages.scan_sealed(&mut visit),
        Where::Ssd(_) => inner.pages.scan_spilled(&mut visit),
    }
    scored.sort_unstable_by_key(|&(score, _, _)| std::cmp::Reverse(score));
    survey.candidates = scored
        .into_iter()
        .map(|(_, page, live)| (page, live))
        .collect();
    survey
}

/// Evacuates `candidates` in order until `budget` bytes are moved or `enough` bytes reclaimed.
/// What step 2 of relocation asks of versions: the low watermark, and the flushed keyspaces
/// no snapshot reads any more.
struct Readers {
    watermark: u64,
    gone: Vec<*const Db>,
}

fn evacuate_pages(
    inner: &Inner,
    state: &mut CompactState,
    candidates: &[(PageId, u32)],
    budget: u64,
    enough: u64,
    place: Where,
) -> CompactionStats {
    let mut stats = CompactionStats::default();
    let guard = crossbeam_epoch::pin();
    // Which versions a reader may still load (step 2). The watermark (a checkpoint's snapshot
    // included) only rises, so what is unreadable at it stays so; a flushed keyspace no
    // snapshot reads any more names only what reclaim will free.
    let (watermark, _, _) = inner
        .checkpoint_scan
        .low_watermarks(&inner.snapshots, &inner.oracle);
    let readers = Readers {
        watermark,
        gone: inner.keyspaces.unreadable(watermark),
    };
    // Pages on SSD cost a disk read each: bounded in time too, so the tier's tick that runs
    // this gets back to writing pages out.
    let deadline = match place {
        Where::Ssd(deadline) => Some(deadline),
        Where::Ram => None,
    };
    for &(page, live) in candidates {
        let spent = stats.bytes_moved;
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        if spent >= budget
            || stats.bytes_reclaimed >= enough
            || state.retired_bytes >= COMPACT_RETIRED_BYTES_MAX
        {
            break;
        }
        if spent > 0 && spent + u64::from(live) > budget {
            continue;
        }
        let source = match place {
            Where::Ram => inner.pages.pin(page).map(Source::Ram),
            Where::Ssd(_) => match inner.pages.hold_spilled(page) {
                Ok(held) => held.map(Source::Ssd),
                Err(error) => {
                    // The page stays where it is; its values fail their own reads the same
                    // way, and name their keys there.
                    tracing::warn!(page = page.0, %error, "compaction could not read a page on SSD");
                    None
                }
            },
        };
        let Some(source) = source else { continue };
        let moved = evacuate(inner, state, source, &readers, &guard, &mut stats);
        if moved.is_none() {
            break;
        }
    }
    if stats.pages_evacuated > 0 {
        stats.runs = 1;
    }
    let totals = &mut state.totals;
    totals.runs += stats.runs;
    totals.pages_evacuated += stats.pages_evacuated;
    totals.values_moved += stats.values_moved;
    totals.bytes_moved += stats.bytes_moved;
    totals.bytes_reclaimed += stats.bytes_reclaimed;
    stats
}

/// A page being evacuated, held so it is not recycled (nor loaded or spilled) meanwhile.
enum Source<'a> {
    /// In RAM, pinned.
    Ram(PinnedPage<'a>),
    /// On SSD, held busy, its bytes read.
    Ssd(SpilledPage<'a>),
}

impl Source<'_> {
    fn values(&self) -> Vec<(ValueRef, u64)> {
        match self {
            Source::Ram(pinned) => pinned.values(),
            Source::Ssd(held) => held.values(),
        }
    }

    /// Copies `old` (one of [`Self::values`]) to a survivor page.
    fn copy(&self, inner: &Inner, old: ValueRef, tag: u64) -> Result<ValueRef, StorageError> {
        match self {
            Source::Ram(_) => inner.pages.relocate(old, tag),
            Source::Ssd(held) => {
                let bytes = held.bytes(old).ok_or(StorageError::BadValueRef {
                    page: old.page.0,
                    offset: old.offset,
                    len: old.len,
                })?;
                inner.pages.relocate_bytes(bytes, tag, Survivors::Cold)
            }
        }
    }
}

/// Moves the live values out of `source`; `None` when the page store is out of pages.
fn evacuate(
    inner: &Inner,
    state: &mut CompactState,
    source: Source<'_>,
    readers: &Readers,
    guard: &Guard,
    stats: &mut CompactionStats,
) -> Option<()> {
    // Step 2: copy what some version a reader may load still names, outside the lock.
    let watermark = readers.watermark;
    let mut moves: Vec<(ValueRef, ValueRef, u64)> = Vec::new();
    let mut out_of_pages = false;
    let values = source.values();
    for (i, &(old, tag)) in values.iter().enumerate() {
        // Each owner lookup is a hash probe and a node, cold in cache: ask for them ahead,
        // as a pipelined batch of commands does (half the tick's time went to these misses).
        if let Some(&(_, later)) = values.get(i + OWNER_PREFETCH_DISTANCE) {
            prefetch_owner(inner, later, KeyPrefetch::Table);
        }
        if let Some(&(_, later)) = values.get(i + OWNER_PREFETCH_DISTANCE / 2) {
            prefetch_owner(inner, later, KeyPrefetch::Node);
        }
        if !named_anywhere(inner, old, tag, watermark, &readers.gone, guard) {
            continue;
        }
        match source.copy(inner, old, tag) {
            Ok(copy) => moves.push((old, copy, tag)),
            Err(_) => {
                out_of_pages = true;
                break;
            }
        }
    }
    // Step 3: re-point under the lock, a batch at a time, and retire the old places.
    let mut moved_bytes = 0;
    for batch in moves.chunks(COMPACT_VALUES_PER_LOCK) {
        let mut retiring = Vec::with_capacity(batch.len());
        let lock = inner.commit_lock.lock();
        let gone = inner.keyspaces.unreadable(watermark);
        for &(old, copy, tag) in batch {
            // Re-point every version naming the old place, counting the readable ones: a
            // copy only garbage names is never published.
            let mut naming = 0;
            for d in populated(inner) {
                let read = !gone.contains(&(d as *const Db));
                d.index
                    .for_each_with_tag(tag, guard, &mut |node: &KeyNode| {
                        let readable = read && node.names_readable(old, watermark, guard);
                        let moved = node.repoint(old, copy, guard);
                        if readable {
                            naming += moved;
                        }
                    });
            }
            if naming == 0 {
                // SAFETY: no version names the copy: it was never published.
                let _ = unsafe { inner.pages.free(copy) };
            } else {
                retiring.push(old);
            }
        }
        if retiring.is_empty() {
            continue;
        }
        // Step 3's timestamp: readers registered from now on load the new places.
        let ts: CommitTs = inner.oracle.next(&lock);
        inner.oracle.publish(ts, &lock);
        for old in retiring {
            state.retired.push_back((ts.0, old));
            state.retired_bytes += old.footprint();
            moved_bytes += old.footprint();
            stats.values_moved += 1;
        }
    }
    stats.bytes_moved += moved_bytes;
    inner
        .compactor
        .retired
        .store(state.retired_bytes, Ordering::Relaxed);
    if !out_of_pages {
        let reclaimed = (PAGE_SIZE as u64).saturating_sub(moved_bytes);
        stats.pages_evacuated += 1;
        stats.bytes_reclaimed += reclaimed;
    }
    drop(source);
    (!out_of_pages).then_some(())
}

/// Retires `old`, which no version names any more since the re-point that published `ts`
/// (the SSD tier's promotion, `tier.rs`): freed once no reader can hold it (step 4).
pub(crate) fn retire(inner: &Inner, ts: u64, old: ValueRef) {
    let mut state = inner.compactor.state.lock();
    state.retired.push_back((ts, old));
    state.retired_bytes += old.footprint();
    inner
        .compactor
        .retired
        .store(state.retired_bytes, Ordering::Relaxed);
}

/// Keyspaces that hold any key node, flushed ones awaiting reclaim included (read under the
/// commit lock by the re-point, so a key SWAPDB or a commit just put into a keyspace is not
/// missed).
pub(crate) fn populated(inner: &Inner) -> impl Iterator<Item = &Db> {
    inner.keyspaces.all().filter(|d| d.index.len() > 0)
}

/// How many values ahead of its owner lookup [`evacuate`] prefetches the hash probe's lines
/// (and half as many ahead, the node): a few lookups' time covers a memory access.
const OWNER_PREFETCH_DISTANCE: usize = 8;

/// Asks the CPU for what looking up the key with owner tag `tag` will touch, in every
/// database that holds keys.
fn prefetch_owner(inner: &Inner, tag: u64, step: KeyPrefetch) {
    for d in populated(inner) {
        d.index.prefetch_tag(tag, step);
    }
}

/// Whether some version a reader may load at `watermark`, of the key with owner tag `tag`,
/// in any keyspace but those in `gone` (flushed, read by no one), names `value`.
fn named_anywhere(
    inner: &Inner,
    value: ValueRef,
    tag: u64,
    watermark: u64,
    gone: &[*const Db],
    guard: &Guard,
) -> bool {
    let mut named = false;
    for d in populated(inner).filter(|d| !gone.contains(&(*d as *const Db))) {
        d.index
            .for_each_with_tag(tag, guard, &mut |node: &KeyNode| {
                named = named || node.names_readable(value, watermark, guard);
            });
        if named {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, EngineConfig};
    use storage::page::PageStoreConfig;

    fn fragmented(n: usize) -> Engine {
        let engine = Engine::new(EngineConfig {
            page_store: PageStoreConfig {
                open_page_shards: 1,
                ..PageStoreConfig::default()
            },
            ..EngineConfig::default()
        });
        for i in 0..n {
            let key = format!("k{i:05}");
            engine
                .put(0, key.as_bytes(), &[i as u8; 300], None)
                .unwrap();
        }
        // Delete all but one key in eight: sparse pages, and nothing else open.
        for i in (0..n).filter(|i| i % 8 != 0) {
            let key = format!("k{i:05}");
            engine
                .update::<_, crate::TxnError>(0, key.as_bytes(), false, |_| {
                    Ok((Some(crate::KeyWrite::Delete), ()))
                })
                .unwrap();
        }
        while engine.gc().versions_unlinked > 0 {}
        engine
    }

    /// The hazard the grace period exists for, stopped at its worst moment: a reader has
    /// registered its snapshot and loaded a value's place, then compaction moves the value
    /// and frees what it may; the reader's place must still hold the value's bytes (debug
    /// builds junk freed bytes, so a read after free shows).
    #[test]
    fn a_reader_holding_an_old_place_reads_it_intact_until_it_releases() {
        let engine = fragmented(4000);
        let inner = &engine.inner;
        let key = b"k00008";
        let registration = inner.snapshots.register(&inner.oracle);
        let guard = crossbeam_epoch::pin();
        let node = inner.db(0).unwrap().index.get(key, &guard).unwrap();
        let old = node.visible(registration.ts, &guard).unwrap().value;
        drop(guard);
        let done = engine.compact_now(100);
        assert!(done.values_moved > 0);
        // The reader goes on with the place it loaded: the bytes are still the value's.
        let bytes = inner.pages.read(old).unwrap();
        assert_eq!(
            &bytes[..],
            &[8u8; 300][..],
            "read an old place after it was freed"
        );
        assert!(done.retired_bytes > 0, "the open reader keeps old places");
        // A reader registered now loads the new place.
        let later = inner.snapshots.register(&inner.oracle);
        assert!(
            later.ts > registration.ts,
            "relocation published a timestamp"
        );
        let guard = crossbeam_epoch::pin();
        let node = inner.db(0).unwrap().index.get(key, &guard).unwrap();
        let new = node.visible(later.ts, &guard).unwrap().value;
        assert_ne!(new, old);
        drop(guard);
        inner.snapshots.release(&later);
        inner.snapshots.release(&registration);
        engine.release_retired();
        assert_eq!(engine.compaction_stats().retired_bytes, 0);
        assert_eq!(
            &engine.get(0, key).unwrap().unwrap().value[..],
            &[8u8; 300][..]
        );
    }

    /// A checkpoint half-way through its scan does not hold compaction's frees back (its long
    /// snapshot names what it reads, not places), but a batch it is reading does, and the
    /// checkpoint still reads its keys intact afterwards.
    #[test]
    fn old_places_wait_for_a_checkpoint_batch_in_flight_not_for_the_checkpoint() {
        let engine = fragmented(4000);
        let inner = &engine.inner;
        let mut checkpoint = engine.begin_checkpoint();
        let scan = inner
            .checkpoint_scan
            .begin(checkpoint.snapshot_ts().0)
            .unwrap();
        // A batch in flight: registered, not released yet.
        let reading = inner.snapshots.register(&inner.oracle);
        let done = engine.compact_now(100);
        assert!(done.values_moved > 0);
        assert!(
            done.retired_bytes > 0,
            "the batch in flight keeps old places"
        );
        inner.snapshots.release(&reading);
        engine.release_retired();
        assert_eq!(
            engine.compaction_stats().retired_bytes,
            0,
            "the checkpoint's own snapshot does not keep them"
        );
        for i in (0..4000).step_by(8) {
            let key = format!("k{i:05}");
            let seen = checkpoint.get(0, key.as_bytes()).unwrap().unwrap();
            assert_eq!(&seen.value[..], &[i as u8; 300][..], "{key}");
        }
        drop(scan);
        checkpoint.abort();
    }

    /// Step 3's other branch: the key was overwritten and its old version cut between the copy
    /// (step 2) and the re-point, so nothing names the old place and the copy must not be
    /// published (the compactor frees it).
    #[test]
    fn a_copy_whose_versions_were_cut_meanwhile_is_named_by_nothing() {
        let engine = fragmented(800);
        let inner = &engine.inner;
        let live_before = inner.pages.bytes_live();
        let mut survey = survey(inner, 100);
        let (page, _) = survey.candidates.remove(0);
        let pinned = inner.pages.pin(page).unwrap();
        let guard = crossbeam_epoch::pin();
        let (old, tag) = pinned
            .values()
            .into_iter()
            .find(|(v, t)| named_anywhere(inner, *v, *t, 0, &[], &guard))
            .unwrap();
        let copy = inner.pages.relocate(old, tag).unwrap();
        let mut key = None;
        inner
            .db(0)
            .unwrap()
            .index
            .for_each_with_tag(tag, &guard, &mut |n| key = Some(n.key().to_vec()));
        let key = key.unwrap();
        engine.put(0, &key, b"replaced", None).unwrap();
        while engine.gc().versions_unlinked > 0 {}
        let mut naming = 0;
        {
            let _lock = inner.commit_lock.lock();
            for d in populated(inner) {
                d.index.for_each_with_tag(tag, &guard, &mut |n: &KeyNode| {
                    naming += n.repoint(old, copy, &guard)
                });
            }
        }
        assert_eq!(naming, 0, "nothing names the old place any more");
        drop(pinned);
        // SAFETY: never published.
        unsafe { inner.pages.free(copy).unwrap() };
        let replaced = storage::page::VALUE_HEADER_BYTES as u64 + 8;
        assert_eq!(inner.pages.bytes_live(), live_before - 308 + replaced);
        assert_eq!(
            &engine.get(0, &key).unwrap().unwrap().value[..],
            b"replaced"
        );
    }
}
