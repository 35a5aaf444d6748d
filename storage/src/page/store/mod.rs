//! [`PageStore`]: a thread-safe heap of values in 64 KiB pages, held in RAM.
//!
//! Invariants:
//! - A page's directory slot (`base`, `pages`) is published (Release) before any [`ValueRef`]
//!   into it is returned, and a value's bytes are copied before its `ValueRef` is returned, so
//!   a reader that got the `ValueRef` through any synchronising channel sees the bytes.
//! - Concurrent writers reserve disjoint byte ranges (under the short lock of their pool's open
//!   page) and copy outside the lock; nobody ever writes a range that a live `ValueRef` names.
//! - A small value is preceded in its page by an 8-byte header (its length and its owner tag,
//!   written under the open page's lock, before the page is sealed), so a sealed page can be
//!   walked value by value ([`PinnedPage::values`]) up to its `used` bytes, freed values
//!   included: a page is never written again until it is recycled.
//! - A page's `state` counts its live bytes (headers included), plus [`OPEN_BIAS`] while it is
//!   some pool's open page and [`PIN_BIAS`] while it is pinned for evacuation; whoever moves it
//!   to exactly zero (the last `free`, the sealing, or the unpinning) recycles the page, so
//!   exactly one thread does, and a pinned page is never recycled.
//! - Readers take no lock: a directory lookup is two atomic loads.
//! - Every id below `next_id` is exactly one of: part of a live page or extent, an empty page
//!   with its memory resident (`free_pages`), an empty page whose memory went back to the OS
//!   (`released_pages`, its buffer kept for reuse), or in `bare_ids` (no buffer). Freed
//!   extents return their ids to `bare_ids` as one run, and extents and single pages take ids
//!   from there (best fit) before taking fresh ones, so the id space (and the directory) stays
//!   proportional to the peak of live pages instead of growing with every large value ever
//!   written.

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::free_runs::FreeRuns;
use super::os::{self, Slabs};
use super::{
    PageId, ValueRef, OWNER_TAG_MAX, PAGE_SIZE, SMALL_VALUE_MAX_BYTES, VALUE_HEADER_BYTES,
    VALUE_MAX_BYTES,
};
use crate::tier::SpillFile;
use crate::StorageError;

mod residency;
pub use residency::{
    ColdPlan, ColdRead, Frame, PageHold, PageState, Residency, SpilledImage, SpilledPage,
};

/// Page slots per directory chunk; the directory has as many chunks, covering all `u32` ids.
const CHUNK_PAGES_BITS: u32 = 16;
const CHUNK_PAGES: usize = 1 << CHUNK_PAGES_BITS;
const DIR_CHUNKS: usize = 1 << (32 - CHUNK_PAGES_BITS);
/// Added to a page's live-byte count while it is open for bump allocation, so it cannot be
/// recycled while writers may still reserve space in it. Above any page's byte count.
const OPEN_BIAS: u64 = 1 << 40;
/// Added while a page is pinned for evacuation ([`PageStore::pin`]): its values stay readable
/// and its space is not reused until the pin is dropped.
const PIN_BIAS: u64 = 1 << 41;
const LIVE_MASK: u64 = OPEN_BIAS - 1;
/// Added per writer between reserving a value's bytes in a page and having copied them (the
/// copy runs outside the open page's lock, so a page may be sealed, or a dedicated page
/// exist, with bytes still being written). The SSD tier writes a page out only when none is
/// in flight (`residency.rs`): an image taken earlier would miss those bytes. Bits 48..64.
const WRITE_UNIT: u64 = 1 << 48;
/// The in-flight writers of a page's state word.
const WRITERS_MASK: u64 = !(WRITE_UNIT - 1);
/// `Slot::used` of a page that holds one value alone (a value of more than
/// [`SMALL_VALUE_MAX_BYTES`] that fits one page): it has no headers to walk.
const USED_DEDICATED: u32 = u32::MAX;
const HEADER: u32 = VALUE_HEADER_BYTES as u32;
/// What a freed value's bytes are overwritten with in debug builds (see `free`).
#[cfg(debug_assertions)]
const FREED_JUNK: u8 = 0xDB;
/// Resident empty pages kept at least, whatever the live page count (see `resident_free_max`).
const RESIDENT_FREE_MIN: usize = 8;

const _: () = assert!((VALUE_MAX_BYTES as u64) < OPEN_BIAS);
const _: () = assert!(SMALL_VALUE_MAX_BYTES + VALUE_HEADER_BYTES <= PAGE_SIZE);
const _: () = assert!(
    SMALL_VALUE_MAX_BYTES < 1 << 16,
    "a header keeps the length in 16 bits"
);

/// Configuration of a [`PageStore`].
#[derive(Debug, Clone)]
pub struct PageStoreConfig {
    /// Number of independently locked open pages for new values; writers on different threads
    /// use different ones so they don't contend.
    pub open_page_shards: usize,
    /// Upper bound on page ids handed out (bounds the memory the store may take).
    pub max_pages: u32,
    /// Most empty pages kept resident for reuse (fewer while the store holds few pages: a
    /// 64th of the live pages, at least 8); the memory of more goes back to the OS.
    pub free_pages_retained_max: usize,
    /// Longest value accepted.
    pub max_value_bytes: usize,
    /// Values moved by [`PageStore::relocate`] go to pages of their own (survivor pages),
    /// apart from new values: values that outlived one page tend to outlive the next, so
    /// they gather in pages that stay dense. `false` mixes them with new values (measured
    /// against in docs/BENCHMARKS.md).
    pub survivor_pages: bool,
}

impl Default for PageStoreConfig {
    fn default() -> Self {
        PageStoreConfig {
            open_page_shards: 16,
            max_pages: u32::MAX - 1,
            free_pages_retained_max: 256,
            max_value_bytes: VALUE_MAX_BYTES,
            survivor_pages: true,
        }
    }
}

/// Where [`PageStore::relocate_bytes`] puts a moved value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivors {
    /// With the values compaction moves out of sparse RAM pages (and promoted values): pages
    /// that stay in RAM while they are read.
    Hot,
    /// Pages of their own that go back to SSD as soon as they seal
    /// ([`PageStore::take_sealed_cold`]): values moved out of sparse pages on SSD.
    Cold,
}

/// Values written by [`PageStore::write_tallied`] and not yet in the store's totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[must_use = "add it to the store with PageStore::add_tally"]
pub struct WriteTally {
    bytes: u64,
    values: u64,
}

/// Counters describing a [`PageStore`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageStats {
    /// Pages whose memory is resident (open, sealed, part of an extent, or empty and kept for
    /// reuse): what the store holds of RAM, in pages.
    pub pages: u64,
    /// Bytes of resident page memory (`pages * PAGE_SIZE`).
    pub bytes_allocated: u64,
    /// Bytes of values written and not yet freed, small values' headers included.
    pub bytes_live: u64,
    /// Values written and not yet freed.
    pub values_live: u64,
    /// Empty pages kept resident for reuse.
    pub free_pages: u64,
    /// Empty pages whose memory went back to the OS (address kept for reuse).
    pub released_pages: u64,
    /// Multi-page extents currently allocated.
    pub extents: u64,
    /// Page ids handed out at least once (the id space in use, free ids included).
    pub page_ids: u64,
    /// Of those, ids with no buffer, waiting for reuse.
    pub bare_ids: u64,
    /// Runs of consecutive bare ids (fragmentation of the id space).
    pub bare_id_runs: u64,
    /// Bytes of the store's own bookkeeping: the page directory and the directory chunks
    /// allocated so far (one 32-byte slot per page id handed out, in chunks of 64 Ki slots).
    pub directory_bytes: u64,
    /// Pages whose bytes are on SSD (`PageStore::spill`).
    pub spilled_pages: u64,
    /// Of those, pages whose RAM frame went back to the OS (not in `pages`).
    pub spilled_frames_released: u64,
}

/// How full one sealed shared page is ([`PageStore::scan_sealed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageUsage {
    /// The page.
    pub page: PageId,
    /// Bytes of live values in it, headers included.
    pub live: u32,
    /// Bytes ever reserved in it (live + freed); the rest of the page was never used.
    pub used: u32,
    /// Pages sealed since this one was: how long its values have had to die.
    pub age: u32,
}

#[derive(Default)]
struct Slot {
    /// Start of this page's bytes; null when the id has no buffer.
    base: AtomicPtr<u8>,
    /// Live bytes (+ `OPEN_BIAS` while open, + `PIN_BIAS` while pinned). Meaningful on a page
    /// or an extent's head.
    state: AtomicU64,
    /// 0: no buffer or an extent's tail page; 1: a single page; n > 1: head of an n-page extent.
    pages: AtomicU32,
    /// A sealed shared page: bytes reserved in it (stored before the seal drops `OPEN_BIAS`);
    /// [`USED_DEDICATED`]: a page holding one large value; 0 otherwise (open, free, extent).
    used: AtomicU32,
    /// When the page was sealed, in seals of the whole store (`PageStore::seals`): its age
    /// for compaction's choice.
    sealed_at: AtomicU32,
    /// Where the page's bytes are: 0 in RAM, else on SSD (`residency.rs`, [`Residency`]).
    tier: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 32);

struct Chunk {
    slots: Box<[Slot]>,
}

impl Chunk {
    /// A chunk of empty slots, zeroed by the allocator: every slot field is an atomic whose
    /// all-zero value is its empty state, and untouched zero pages cost no RSS, so a chunk
    /// weighs only the slots in use (2 MiB of directory for 64 Ki pages otherwise).
    fn new() -> Option<Box<Chunk>> {
        let layout = std::alloc::Layout::array::<Slot>(CHUNK_PAGES).ok()?;
        // SAFETY: the layout is non-zero-sized; all-zero bytes are a valid `Slot` (null
        // pointer, zero integers), so the slice is initialised; `Box` frees it with the same
        // layout (an array of `CHUNK_PAGES` slots).
        let slots = unsafe {
            let base = std::alloc::alloc_zeroed(layout).cast::<Slot>();
            if base.is_null() {
                return None;
            }
            Box::from_raw(std::ptr::slice_from_raw_parts_mut(base, CHUNK_PAGES))
        };
        Some(Box::new(Chunk { slots }))
    }
}

#[derive(Default)]
struct OpenPage {
    page: Option<PageId>,
    used: u32,
}

/// One open page and, readable without its lock, how much of it is still free.
#[derive(Default)]
struct Pool {
    open: Mutex<OpenPage>,
    /// Bytes not yet reserved in the open page (0 when none is open); stored under `open`'s
    /// lock, on the same cache line, so keeping it costs writers no extra line.
    slack: AtomicU32,
}

/// Pads a shard to its own cache line(s) so shard locks don't false-share.
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

/// A thread-safe store of immutable values in fixed-size pages. See the module docs.
pub struct PageStore {
    config: PageStoreConfig,
    dir: Box<[AtomicPtr<Chunk>]>,
    /// Ids below this have been handed out at least once.
    next_id: AtomicU32,
    /// Empty single pages whose memory is resident.
    free_pages: Mutex<Vec<PageId>>,
    /// Empty single pages whose memory went back to the OS; they keep their buffer's address.
    released_pages: Mutex<Vec<PageId>>,
    /// Ids without a buffer (from freed extents), as runs.
    bare_ids: Mutex<FreeRuns>,
    /// Open pages for new values, one per writer-thread shard.
    open: Box<[Padded<Pool>]>,
    /// The open page values moved by [`Self::relocate`] go to (see
    /// [`PageStoreConfig::survivor_pages`]).
    survivor: Padded<Pool>,
    /// The open page for values moved out of sparse pages on SSD ([`Survivors::Cold`]): they
    /// stayed cold on SSD, so their page goes back to SSD as soon as it seals.
    cold: Padded<Pool>,
    /// Cold survivor pages sealed and not yet taken by the SSD tier
    /// ([`Self::take_sealed_cold`]); bounded by the pages compaction writes between two ticks.
    sealed_cold: Mutex<Vec<PageId>>,
    /// Pages on `free_pages` (readable without its lock).
    free_resident: AtomicU64,
    /// Pages sealed so far (wrapping): the clock of [`PageUsage::age`].
    seals: AtomicU32,
    slabs: Mutex<Slabs>,
    /// Pages with resident memory.
    pages: AtomicU64,
    released: AtomicU64,
    bytes_live: AtomicU64,
    /// Bytes of values ever written (headers included): with `bytes_live`, the rate at which
    /// values are freed, which paces compaction.
    bytes_written: AtomicU64,
    values_live: AtomicU64,
    extents: AtomicU64,
    /// Directory chunks allocated (each `CHUNK_PAGES` slots).
    chunks: AtomicU64,
    /// The SSD tier's file, once attached (`residency.rs`).
    spill: parking_lot::RwLock<Option<SpillFile>>,
    /// Slots of spilled pages freed since the file's write lock was last taken
    /// (`residency.rs`).
    slot_frees: Mutex<Vec<crate::tier::SlotId>>,
    /// Pages whose bytes are on SSD.
    spilled_pages: AtomicU64,
    /// Of those, pages whose RAM frame went back to the OS.
    frames_released: AtomicU64,
    /// Pages read lately, for the SSD tier's policy (`residency.rs`): recorded only once a
    /// spill file is attached.
    reads: residency::ReadBuffer,
    /// Sealed pages entering and leaving RAM, for the SSD tier's policy (`residency.rs`).
    residency_changes: Mutex<residency::ResidencyChanges>,
}

// SAFETY: all shared state is atomics or mutex-protected; the raw page buffers are only written
// in ranges reserved exclusively by one writer and read in ranges no writer touches (see the
// module invariants), so sharing the store between threads is sound.
unsafe impl Send for PageStore {}
// SAFETY: as above.
unsafe impl Sync for PageStore {}

thread_local! {
    static SHARD_HINT: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_SHARD_HINT: AtomicUsize = AtomicUsize::new(0);

fn shard_hint() -> usize {
    SHARD_HINT.with(|hint| {
        let mut value = hint.get();
        if value == usize::MAX {
            value = NEXT_SHARD_HINT.fetch_add(1, Ordering::Relaxed);
            hint.set(value);
        }
        value
    })
}

/// A small value's header: its length (16 bits) and its owner tag (48 bits), little-endian.
fn encode_header(len: u32, owner: u64) -> [u8; 8] {
    ((owner & OWNER_TAG_MAX) << 16 | u64::from(len)).to_le_bytes()
}

/// Bytes a non-empty value of `len` bytes takes in its page or extent (see
/// [`ValueRef::footprint`]).
fn footprint(len: u32) -> u64 {
    ValueRef {
        page: PageId::NONE,
        offset: 0,
        len,
    }
    .footprint()
}

impl PageStore {
    /// Creates an empty store.
    pub fn new(config: PageStoreConfig) -> PageStore {
        let shards = config.open_page_shards.clamp(1, 1024);
        PageStore {
            dir: (0..DIR_CHUNKS)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            next_id: AtomicU32::new(0),
            free_pages: Mutex::new(Vec::new()),
            released_pages: Mutex::new(Vec::new()),
            bare_ids: Mutex::new(FreeRuns::default()),
            open: (0..shards).map(|_| Padded::default()).collect(),
            survivor: Padded::default(),
            cold: Padded::default(),
            sealed_cold: Mutex::new(Vec::new()),
            free_resident: AtomicU64::new(0),
            seals: AtomicU32::new(0),
            slabs: Mutex::new(Slabs::default()),
            pages: AtomicU64::new(0),
            released: AtomicU64::new(0),
            bytes_live: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            values_live: AtomicU64::new(0),
            extents: AtomicU64::new(0),
            chunks: AtomicU64::new(0),
            spill: parking_lot::RwLock::new(None),
            slot_frees: Mutex::new(Vec::new()),
            spilled_pages: AtomicU64::new(0),
            frames_released: AtomicU64::new(0),
            reads: residency::ReadBuffer::new(shards),
            residency_changes: Mutex::new(residency::ResidencyChanges::default()),
            config,
        }
    }

    /// Copies `value` into the store and returns where it lives. `owner` is an opaque tag of
    /// up to 48 bits (higher bits are dropped) kept beside a small value, so whoever walks a
    /// page ([`Self::pin`]) can find who refers to each value.
    pub fn write(&self, value: &[u8], owner: u64) -> Result<ValueRef, StorageError> {
        let mut tally = WriteTally::default();
        let vref = self.write_tallied(value, owner, &mut tally)?;
        self.add_tally(tally);
        Ok(vref)
    }

    /// [`Self::write`], but counts the value in `tally` instead of the store's totals, which
    /// the caller brings up to date with [`Self::add_tally`] before anyone reads them. For bulk
    /// loads on several threads: adding to one shared counter per value bounces its cache
    /// line between cores.
    pub fn write_tallied(
        &self,
        value: &[u8],
        owner: u64,
        tally: &mut WriteTally,
    ) -> Result<ValueRef, StorageError> {
        let len = value.len();
        if len > self.config.max_value_bytes.min(VALUE_MAX_BYTES) {
            return Err(StorageError::ValueTooLarge {
                len,
                max: self.config.max_value_bytes,
            });
        }
        let pool = self
            .open
            .get(shard_hint() % self.open.len())
            .ok_or(StorageError::OutOfPages { pages: 0 })?;
        self.write_into(value, owner, &pool.0, tally)
    }

    fn write_into(
        &self,
        value: &[u8],
        owner: u64,
        pool: &Pool,
        tally: &mut WriteTally,
    ) -> Result<ValueRef, StorageError> {
        let len = value.len();
        if len == 0 {
            return Ok(ValueRef::EMPTY);
        }
        // Fits in u32: callers checked len <= VALUE_MAX_BYTES <= u32::MAX (asserted in mod.rs).
        let len32 = len as u32;
        let vref = if len <= SMALL_VALUE_MAX_BYTES {
            self.reserve_small(len32, owner, pool)?
        } else {
            self.reserve_extent(len32)?
        };
        let (base, _) = self.locate(vref)?;
        // SAFETY: `locate` checked that `offset + len` lies inside the page/extent buffer that
        // `base` points at; the range was reserved for this call alone and no `ValueRef` to it
        // has been handed out, so nobody else reads or writes it; `value` is either a separate
        // allocation or (relocation) a live value of a page pinned by the caller, which is
        // disjoint from a range reserved just now.
        unsafe {
            std::ptr::copy_nonoverlapping(value.as_ptr(), base.add(vref.offset as usize), len);
        }
        // The bytes are in place (Release: before anyone who sees no writer reads them).
        if let Some(slot) = self.slot(vref.page) {
            slot.state.fetch_sub(WRITE_UNIT, Ordering::Release);
        }
        tally.bytes += footprint(len32);
        tally.values += 1;
        Ok(vref)
    }

    /// Adds values written with [`Self::write_tallied`] to the store's totals.
    pub fn add_tally(&self, tally: WriteTally) {
        if tally.values > 0 {
            self.bytes_live.fetch_add(tally.bytes, Ordering::Relaxed);
            self.bytes_written.fetch_add(tally.bytes, Ordering::Relaxed);
            self.values_live.fetch_add(tally.values, Ordering::Relaxed);
        }
    }

    /// Returns a copy of the value's bytes.
    pub fn read(&self, vref: ValueRef) -> Result<Bytes, StorageError> {
        self.with_value(vref, Bytes::copy_from_slice)
    }

    /// Asks the CPU to fetch the first line of `vref`'s bytes if its page is in RAM (a
    /// server issues it for a pipelined command that will read the value). Reads nothing.
    pub fn prefetch_value(&self, vref: ValueRef) {
        if vref.len == 0 {
            return;
        }
        if let Ok((base, 0)) = self.locate(vref) {
            let at = base.wrapping_add(vref.offset as usize);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch is a hint that never faults, whatever the address.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    at.cast_const().cast(),
                );
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = at;
        }
    }

    /// Calls `f` with the value's bytes in place (no copy).
    pub fn with_value<R>(
        &self,
        vref: ValueRef,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, StorageError> {
        self.with_value_noted(vref, true, f)
    }

    /// [`Self::with_value`]; `noted`: the read counts for the SSD tier's policy and hit ratio
    /// (a client's read), or not (a checkpoint's or compaction's: one pass over everything
    /// says nothing of what is hot).
    fn with_value_noted<R>(
        &self,
        vref: ValueRef,
        noted: bool,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, StorageError> {
        if vref.len == 0 {
            return Ok(f(&[]));
        }
        let (base, tier) = self.locate(vref)?;
        if noted {
            self.reads.note(vref.page, tier != 0);
        }
        if tier != 0 {
            return Err(StorageError::NotResident {
                page: vref.page.0,
                offset: vref.offset,
                len: vref.len,
            });
        }
        // SAFETY: `locate` bounds-checked the range inside a live buffer. The range was fully
        // written before the `ValueRef` was returned, and it is not written again until it is
        // freed, which the caller of `free` promised happens only after the last read.
        let bytes = unsafe {
            std::slice::from_raw_parts(base.add(vref.offset as usize), vref.len as usize)
        };
        Ok(f(bytes))
    }

    /// Copies the live value `from` to a new place (a survivor page, see
    /// [`PageStoreConfig::survivor_pages`]) and returns it. The copy is counted live; `from`
    /// stays live too until its owner frees it, once nobody can read it any more.
    ///
    /// The caller must keep `from` readable during the call: its page pinned ([`Self::pin`]),
    /// or its owner unable to free it meanwhile.
    pub fn relocate(&self, from: ValueRef, owner: u64) -> Result<ValueRef, StorageError> {
        let pool = self.survivor_pool()?;
        let mut tally = WriteTally::default();
        let moved = self.with_value_noted(from, false, |bytes| {
            self.write_into(bytes, owner, pool, &mut tally)
        })??;
        self.add_tally(tally);
        Ok(moved)
    }

    /// [`Self::relocate`] of a value whose bytes the caller read elsewhere, from SSD: the
    /// promotion of a cold value into RAM ([`Self::read_cold_owned`], [`Survivors::Hot`]), or
    /// compaction of a sparse page on SSD ([`Self::hold_spilled`], [`Survivors::Cold`]).
    pub fn relocate_bytes(
        &self,
        bytes: &[u8],
        owner: u64,
        to: Survivors,
    ) -> Result<ValueRef, StorageError> {
        let pool = match to {
            Survivors::Hot => self.survivor_pool()?,
            Survivors::Cold => &self.cold.0,
        };
        let mut tally = WriteTally::default();
        let moved = self.write_into(bytes, owner, pool, &mut tally)?;
        self.add_tally(tally);
        Ok(moved)
    }

    /// Where moved values go (see [`PageStoreConfig::survivor_pages`]).
    fn survivor_pool(&self) -> Result<&Pool, StorageError> {
        Ok(if self.config.survivor_pages {
            &self.survivor.0
        } else {
            let shard = self
                .open
                .get(shard_hint() % self.open.len())
                .ok_or(StorageError::OutOfPages { pages: 0 })?;
            &shard.0
        })
    }

    /// Releases the value's space; a page whose values are all freed is recycled.
    ///
    /// # Safety
    ///
    /// After this call nobody may read `vref` again (its bytes may be reused by a later
    /// `write`), and it must not be freed twice. The store detects a double free only when it
    /// would make a page's live count negative.
    pub unsafe fn free(&self, vref: ValueRef) -> Result<(), StorageError> {
        if vref.len == 0 {
            return Ok(());
        }
        let bad = || StorageError::BadValueRef {
            page: vref.page.0,
            offset: vref.offset,
            len: vref.len,
        };
        let (base, tier) = self.locate(vref)?;
        if vref.len as usize <= SMALL_VALUE_MAX_BYTES && vref.offset < HEADER {
            return Err(bad());
        }
        // Not on a page on SSD: its frame may have gone back to the OS.
        #[cfg(debug_assertions)]
        if tier == 0 {
            // SAFETY: `locate` bounds-checked the range; the caller promises nobody reads it
            // any more. Junk in freed values (as jemalloc's `opt.junk`) makes any read after
            // free show up in tests as a torn value instead of passing by luck. (One reader
            // may still be copying it: a relocation that found the value named just before
            // its owner freed it. That copy is named by no version at re-point time and is
            // freed unread, so what it got does not matter; release builds write nothing.)
            unsafe {
                std::ptr::write_bytes(
                    base.add(vref.offset as usize),
                    FREED_JUNK,
                    vref.len as usize,
                );
            }
        }
        #[cfg(not(debug_assertions))]
        let _ = (base, tier);
        let slot = self.slot(vref.page).ok_or_else(bad)?;
        let bytes = footprint(vref.len);
        let previous = slot
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                if state & LIVE_MASK >= bytes {
                    Some(state - bytes)
                } else {
                    None
                }
            })
            .map_err(|_| bad())?;
        self.bytes_live.fetch_sub(bytes, Ordering::Relaxed);
        self.values_live.fetch_sub(1, Ordering::Relaxed);
        if previous == bytes {
            self.release(vref.page, slot);
        }
        Ok(())
    }

    /// Pins a sealed page of small values for evacuation, or `None` if `page` is not one (open,
    /// empty, an extent, a page of one large value) or is pinned already. While the pin lives
    /// the page is not recycled, so every value in it stays readable (freed ones included) and
    /// its headers can be walked ([`PinnedPage::values`]).
    pub fn pin(&self, page: PageId) -> Option<PinnedPage<'_>> {
        let slot = self.slot(page)?;
        slot.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                let busy = state & (OPEN_BIAS | PIN_BIAS) != 0;
                (!busy && state & LIVE_MASK > 0).then_some(state + PIN_BIAS)
            })
            .ok()?;
        let pinned = PinnedPage {
            store: self,
            page,
            used: slot.used.load(Ordering::Acquire),
            base: slot.base.load(Ordering::Acquire),
        };
        // Now that it cannot be recycled, its kind is stable: only sealed shared pages in RAM
        // walk (a page on SSD would need loading first).
        let shared = slot.tier.load(Ordering::Acquire) == 0
            && slot.pages.load(Ordering::Acquire) == 1
            && pinned.used != USED_DEDICATED
            && pinned.used >= HEADER
            && pinned.used as usize <= PAGE_SIZE
            && !pinned.base.is_null();
        shared.then_some(pinned)
    }

    fn unpin(&self, page: PageId) {
        if let Some(slot) = self.slot(page) {
            if slot.state.fetch_sub(PIN_BIAS, Ordering::AcqRel) == PIN_BIAS {
                self.release(page, slot);
            }
        }
    }

    /// Visits every sealed page of small values with at least one live value: how many bytes
    /// it holds live and how many were ever reserved in it. Lock-free and approximate (pages
    /// change while it runs); the caller decides what to evacuate.
    pub fn scan_sealed(&self, visit: &mut dyn FnMut(PageUsage)) {
        self.scan(false, visit);
    }

    /// [`Self::scan_sealed`] of the pages whose bytes are on SSD (what compaction of the
    /// spill file chooses from).
    pub fn scan_spilled(&self, visit: &mut dyn FnMut(PageUsage)) {
        self.scan(true, visit);
    }

    /// Cold survivor pages ([`Survivors::Cold`]) sealed since the last call, for the SSD tier
    /// to write out first.
    pub fn take_sealed_cold(&self) -> Vec<PageId> {
        std::mem::take(&mut *self.sealed_cold.lock())
    }

    fn scan(&self, on_ssd: bool, visit: &mut dyn FnMut(PageUsage)) {
        let next = self.next_id.load(Ordering::Acquire) as usize;
        let now = self.seals.load(Ordering::Relaxed);
        for (chunk_index, entry) in self.dir.iter().enumerate() {
            let first = chunk_index * CHUNK_PAGES;
            if first >= next {
                break;
            }
            let chunk = entry.load(Ordering::Acquire);
            if chunk.is_null() {
                continue;
            }
            // SAFETY: chunks are published with Release after full initialisation and are
            // freed only in `Drop`.
            let chunk = unsafe { &*chunk };
            for (i, slot) in chunk.slots.iter().enumerate().take(next - first) {
                let used = slot.used.load(Ordering::Relaxed);
                if used == 0 || used == USED_DEDICATED {
                    continue;
                }
                let state = slot.state.load(Ordering::Relaxed);
                let live = state & LIVE_MASK;
                if state & (OPEN_BIAS | PIN_BIAS) != 0
                    || live == 0
                    || (slot.tier.load(Ordering::Relaxed) != 0) != on_ssd
                {
                    continue;
                }
                visit(PageUsage {
                    page: PageId((first + i) as u32),
                    live: live.min(u64::from(u32::MAX)) as u32,
                    used,
                    age: now.wrapping_sub(slot.sealed_at.load(Ordering::Relaxed)),
                });
            }
        }
    }

    /// A snapshot of the store's counters.
    pub fn stats(&self) -> PageStats {
        let pages = self.pages.load(Ordering::Relaxed);
        let (bare_ids, bare_id_runs) = {
            let bare = self.bare_ids.lock();
            (bare.ids(), bare.runs() as u64)
        };
        PageStats {
            pages,
            bytes_allocated: self.bytes_allocated(),
            bytes_live: self.bytes_live(),
            values_live: self.values_live.load(Ordering::Relaxed),
            free_pages: self.free_pages.lock().len() as u64,
            released_pages: self.released.load(Ordering::Relaxed),
            extents: self.extents.load(Ordering::Relaxed),
            page_ids: u64::from(self.next_id.load(Ordering::Relaxed)),
            bare_ids,
            bare_id_runs,
            directory_bytes: self.directory_bytes(),
            spilled_pages: self.spilled_pages.load(Ordering::Relaxed),
            spilled_frames_released: self.frames_released.load(Ordering::Relaxed),
        }
    }

    /// [`PageStats::bytes_live`] alone (one atomic load, no lock).
    pub fn bytes_live(&self) -> u64 {
        self.bytes_live.load(Ordering::Relaxed)
    }

    /// Bytes of values ever written, headers included (monotonic): minus [`Self::bytes_live`],
    /// the bytes ever freed.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// [`PageStats::bytes_allocated`] alone (one atomic load, no lock).
    pub fn bytes_allocated(&self) -> u64 {
        self.pages.load(Ordering::Relaxed) * PAGE_SIZE as u64
    }

    /// Bytes of page memory the store holds for values: resident pages, less the room new
    /// values can still take without any compaction (the unreserved tails of open pages and
    /// the resident free pages). Freed space inside sealed pages counts: it is held until
    /// compaction moves the page's live values out. A few atomic loads, no lock.
    pub fn bytes_held(&self) -> u64 {
        let slack: u64 = self
            .open
            .iter()
            .chain([&self.survivor, &self.cold])
            .map(|pool| u64::from(pool.0.slack.load(Ordering::Relaxed)))
            .sum();
        let free = self.free_resident.load(Ordering::Relaxed) * PAGE_SIZE as u64;
        self.bytes_allocated().saturating_sub(slack + free)
    }

    /// Pages open for new values right now (one per writer shard that has one, and the
    /// survivor page): RAM the SSD tier cannot spill. A few atomic loads, no lock.
    pub fn open_page_count(&self) -> usize {
        self.open
            .iter()
            .chain([&self.survivor, &self.cold])
            .filter(|pool| pool.0.slack.load(Ordering::Relaxed) > 0)
            .count()
    }

    /// [`PageStats::directory_bytes`] alone (one atomic load, no lock).
    pub fn directory_bytes(&self) -> u64 {
        (DIR_CHUNKS * std::mem::size_of::<AtomicPtr<Chunk>>()) as u64
            + self.chunks.load(Ordering::Relaxed)
                * (CHUNK_PAGES * std::mem::size_of::<Slot>()) as u64
    }

    fn slot(&self, id: PageId) -> Option<&Slot> {
        if id.0 >= self.next_id.load(Ordering::Acquire) {
            return None;
        }
        let chunk = self
            .dir
            .get((id.0 >> CHUNK_PAGES_BITS) as usize)?
            .load(Ordering::Acquire);
        if chunk.is_null() {
            return None;
        }
        // SAFETY: chunks are published with Release after full initialisation and are freed
        // only in `Drop`, which has `&mut self`.
        let chunk = unsafe { &*chunk };
        chunk.slots.get((id.0 as usize) & (CHUNK_PAGES - 1))
    }

    /// Bounds-checks `vref` and returns its buffer's base and its page's residency word
    /// (`residency.rs`; 0: in RAM), read after the base (Acquire), from the same slot.
    fn locate(&self, vref: ValueRef) -> Result<(*mut u8, u32), StorageError> {
        let bad = || StorageError::BadValueRef {
            page: vref.page.0,
            offset: vref.offset,
            len: vref.len,
        };
        let slot = self.slot(vref.page).ok_or_else(bad)?;
        let pages = slot.pages.load(Ordering::Acquire);
        let base = slot.base.load(Ordering::Acquire);
        if pages == 0 || base.is_null() {
            return Err(bad());
        }
        let capacity = u64::from(pages) * PAGE_SIZE as u64;
        if u64::from(vref.offset) + u64::from(vref.len) > capacity {
            return Err(bad());
        }
        Ok((base, slot.tier.load(Ordering::Acquire)))
    }

    fn ensure_chunk(&self, id: u32) -> Result<&Slot, StorageError> {
        let out_of_pages = || StorageError::OutOfPages {
            pages: self.pages.load(Ordering::Relaxed),
        };
        let entry = self
            .dir
            .get((id >> CHUNK_PAGES_BITS) as usize)
            .ok_or_else(out_of_pages)?;
        let mut chunk = entry.load(Ordering::Acquire);
        if chunk.is_null() {
            let fresh = Box::into_raw(Chunk::new().ok_or_else(out_of_pages)?);
            match entry.compare_exchange(
                std::ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.chunks.fetch_add(1, Ordering::Relaxed);
                    chunk = fresh
                }
                Err(existing) => {
                    // SAFETY: `fresh` came from Box::into_raw above and was never shared.
                    drop(unsafe { Box::from_raw(fresh) });
                    chunk = existing;
                }
            }
        }
        // SAFETY: non-null chunks stay alive until Drop (see `slot`).
        let chunk = unsafe { &*chunk };
        chunk
            .slots
            .get((id as usize) & (CHUNK_PAGES - 1))
            .ok_or_else(out_of_pages)
    }

    /// Takes `count` consecutive ids without a buffer: a freed run if one is long enough,
    /// else fresh ids.
    fn take_ids(&self, count: u32) -> Result<u32, StorageError> {
        let reused = self.bare_ids.lock().take(count);
        match reused {
            Some(first) => Ok(first),
            None => self.fresh_ids(count),
        }
    }

    /// Takes `count` fresh consecutive ids.
    fn fresh_ids(&self, count: u32) -> Result<u32, StorageError> {
        let max = self.config.max_pages.min(u32::MAX - 1);
        self.next_id
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
                next.checked_add(count).filter(|end| *end <= max)
            })
            .map_err(|_| StorageError::OutOfPages {
                pages: self.pages.load(Ordering::Relaxed),
            })
    }

    /// Returns an empty single page with a buffer and `state == 0`: a resident free one, a
    /// released one (its memory faults back in as zeros), or a fresh one from a slab.
    fn take_page(&self) -> Result<PageId, StorageError> {
        if let Some(id) = self.free_pages.lock().pop() {
            self.free_resident.fetch_sub(1, Ordering::Relaxed);
            return Ok(id);
        }
        if let Some(id) = self.released_pages.lock().pop() {
            self.released.fetch_sub(1, Ordering::Relaxed);
            self.pages.fetch_add(1, Ordering::Relaxed);
            return Ok(id);
        }
        let id = self.take_ids(1)?;
        let prepared = self
            .ensure_chunk(id)
            .and_then(|slot| self.slabs.lock().page().map(|base| (slot, base)));
        let (slot, base) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                self.bare_ids.lock().insert(id, 1);
                return Err(error);
            }
        };
        self.pages.fetch_add(1, Ordering::Relaxed);
        slot.base.store(base, Ordering::Release);
        slot.pages.store(1, Ordering::Release);
        Ok(PageId(id))
    }

    /// Reserves `HEADER + len` bytes in `pool`'s open page (sealing it and opening another
    /// when full) and writes the header, under the pool's lock so it precedes the seal.
    fn reserve_small(&self, len: u32, owner: u64, pool: &Pool) -> Result<ValueRef, StorageError> {
        let need = len + HEADER;
        let mut open = pool.open.lock();
        let (page, offset) = match open.page {
            Some(page) if open.used as usize + need as usize <= PAGE_SIZE => {
                let offset = open.used;
                open.used += need;
                (page, offset)
            }
            current => {
                if let Some(full) = current {
                    open.page = None;
                    pool.slack.store(0, Ordering::Relaxed);
                    self.seal(full, open.used, pool);
                }
                let page = self.take_page()?;
                if let Some(slot) = self.slot(page) {
                    slot.state.fetch_add(OPEN_BIAS, Ordering::AcqRel);
                }
                open.page = Some(page);
                open.used = need;
                (page, 0)
            }
        };
        pool.slack
            .store(PAGE_SIZE as u32 - open.used, Ordering::Relaxed);
        let slot = self
            .slot(page)
            .ok_or(StorageError::OutOfPages { pages: 0 })?;
        slot.state
            .fetch_add(u64::from(need) + WRITE_UNIT, Ordering::AcqRel);
        let base = slot.base.load(Ordering::Acquire);
        let header = encode_header(len, owner);
        // SAFETY: `base` is the open page's buffer (PAGE_SIZE bytes) and `offset + need <=
        // PAGE_SIZE`; the range was reserved just now, under the lock, for this call alone.
        unsafe {
            std::ptr::copy_nonoverlapping(header.as_ptr(), base.add(offset as usize), header.len());
        }
        Ok(ValueRef {
            page,
            offset: offset + HEADER,
            len,
        })
    }

    fn reserve_extent(&self, len: u32) -> Result<ValueRef, StorageError> {
        let pages = len.div_ceil(PAGE_SIZE as u32);
        if pages == 1 {
            let page = self.take_page()?;
            if let Some(slot) = self.slot(page) {
                slot.used.store(USED_DEDICATED, Ordering::Release);
                slot.state
                    .fetch_add(u64::from(len) + WRITE_UNIT, Ordering::AcqRel);
            }
            return Ok(ValueRef {
                page,
                offset: 0,
                len,
            });
        }
        let first = self.take_ids(pages)?;
        let prepared = (first..first + pages)
            .try_for_each(|id| self.ensure_chunk(id).map(|_| ()))
            .and_then(|()| os::alloc_extent(pages));
        let base = match prepared {
            Ok(base) => base,
            Err(error) => {
                // The ids own no buffer yet: give them back rather than leak them.
                self.bare_ids.lock().insert(first, pages);
                return Err(error);
            }
        };
        self.pages.fetch_add(u64::from(pages), Ordering::Relaxed);
        for index in (0..pages).rev() {
            let slot = self.ensure_chunk(first + index)?;
            // SAFETY: index < pages, so the offset stays inside the extent's buffer.
            slot.base.store(
                unsafe { base.add(index as usize * PAGE_SIZE) },
                Ordering::Release,
            );
            if index == 0 {
                slot.state
                    .store(u64::from(len) + WRITE_UNIT, Ordering::Release);
                slot.pages.store(pages, Ordering::Release);
            }
        }
        self.extents.fetch_add(1, Ordering::Relaxed);
        Ok(ValueRef {
            page: PageId(first),
            offset: 0,
            len,
        })
    }

    /// Ends bump allocation in `page` (open in `pool`) after `used` bytes; recycles it if all
    /// its values are already freed.
    fn seal(&self, page: PageId, used: u32, pool: &Pool) {
        if std::ptr::eq(pool, &self.cold.0) {
            self.sealed_cold.lock().push(page);
        }
        if let Some(slot) = self.slot(page) {
            // Before the bias drops: whoever sees the page sealed sees its final `used`.
            let now = self.seals.fetch_add(1, Ordering::Relaxed);
            slot.sealed_at.store(now, Ordering::Relaxed);
            slot.used.store(used, Ordering::Release);
            // Reported while still open, so a `release` of its last value (here or on another
            // thread) is reported after it.
            if used != USED_DEDICATED {
                self.note_residency(page, true);
            }
            let previous = slot.state.fetch_sub(OPEN_BIAS, Ordering::AcqRel);
            if previous == OPEN_BIAS {
                self.release(page, slot);
            }
        }
    }

    /// Gives back the memory of every empty page: open pages holding no live value are
    /// closed, and the resident empty pages kept for reuse go back to the OS (they fault back
    /// in when needed). For when the dataset has shrunk (FLUSHALL, mass deletes) and no burst
    /// of writes is expected to reuse them soon.
    pub fn release_free_pages(&self) {
        for pool in self.open.iter().chain([&self.survivor, &self.cold]) {
            let mut open = pool.0.open.lock();
            let Some(page) = open.page else { continue };
            let idle = self
                .slot(page)
                .is_some_and(|slot| slot.state.load(Ordering::Acquire) == OPEN_BIAS);
            if idle {
                open.page = None;
                pool.0.slack.store(0, Ordering::Relaxed);
                self.seal(page, open.used, &pool.0);
            }
        }
        loop {
            let page = {
                let mut free = self.free_pages.lock();
                let Some(page) = free.pop() else { return };
                self.free_resident.fetch_sub(1, Ordering::Relaxed);
                page
            };
            if let Some(slot) = self.slot(page) {
                // SAFETY: an empty page taken off the free list: no ValueRef names it, nobody
                // writes it until it is taken again, and it stays mapped (a slab page).
                unsafe { os::release_memory(slot.base.load(Ordering::Acquire), PAGE_SIZE) };
            }
            self.pages.fetch_sub(1, Ordering::Relaxed);
            self.released.fetch_add(1, Ordering::Relaxed);
            self.released_pages.lock().push(page);
        }
    }

    /// Resident empty pages to keep: a 64th of the resident pages (room for a burst of new
    /// values without page faults), at least [`RESIDENT_FREE_MIN`], at most the configured
    /// maximum, so the memory of a shrinking dataset goes back to the OS.
    fn resident_free_max(&self) -> usize {
        let resident = self.pages.load(Ordering::Relaxed) as usize;
        (resident / 64)
            .max(RESIDENT_FREE_MIN)
            .min(self.config.free_pages_retained_max)
    }

    /// Recycles a page or extent whose live count just reached zero (called exactly once).
    fn release(&self, page: PageId, slot: &Slot) {
        self.note_residency(page, false);
        if self.release_spilled(page, slot) {
            return;
        }
        let pages = slot.pages.load(Ordering::Acquire);
        let base = slot.base.load(Ordering::Acquire);
        if pages == 1 {
            slot.used.store(0, Ordering::Release);
            {
                let mut free = self.free_pages.lock();
                if free.len() < self.resident_free_max() {
                    free.push(page);
                    self.free_resident.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            // SAFETY: the page's live count is zero and it is on no open page or pin, so no
            // ValueRef names it and nobody writes it; it stays mapped (a slab page).
            unsafe { os::release_memory(base, PAGE_SIZE) };
            self.pages.fetch_sub(1, Ordering::Relaxed);
            self.released.fetch_add(1, Ordering::Relaxed);
            self.released_pages.lock().push(page);
            return;
        }
        for index in 0..pages {
            if let Some(part) = self.slot(PageId(page.0 + index)) {
                part.base.store(std::ptr::null_mut(), Ordering::Release);
                part.pages.store(0, Ordering::Release);
            }
        }
        // SAFETY: `base` came from `alloc_extent(pages)`, the directory no longer points at
        // it, and no live ValueRef names it (live count 0).
        unsafe { os::free_extent(base, pages) };
        self.pages.fetch_sub(u64::from(pages), Ordering::Relaxed);
        self.extents.fetch_sub(1, Ordering::Relaxed);
        self.bare_ids.lock().insert(page.0, pages);
    }
}

/// A sealed page of small values pinned for evacuation ([`PageStore::pin`]); unpinned on drop,
/// when the page is recycled if nothing in it is live any more.
pub struct PinnedPage<'a> {
    store: &'a PageStore,
    page: PageId,
    used: u32,
    base: *const u8,
}

impl PinnedPage<'_> {
    /// The page.
    pub fn page(&self) -> PageId {
        self.page
    }

    /// Every value ever written to the page, live or freed, in page order, with its owner
    /// tag. The caller tells live from freed (the store does not keep per-value liveness).
    pub fn values(&self) -> Vec<(ValueRef, u64)> {
        walk_values(self.page, self.used, |offset| {
            let mut header = [0u8; 8];
            // SAFETY: `offset + HEADER <= used <= PAGE_SIZE` (`walk_values`; `used` checked by
            // `pin`), inside the pinned page's buffer; headers are written before the seal and
            // never again while the page is not recycled, which the pin prevents.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.base.add(offset as usize),
                    header.as_mut_ptr(),
                    header.len(),
                );
            }
            Some(header)
        })
    }
}

/// The values of a sealed shared page whose first `used` bytes are reserved, in page order,
/// with their owner tags: headers read through `header(offset)` (`None`: the bytes are not
/// there, which ends the walk).
pub(super) fn walk_values(
    page: PageId,
    used: u32,
    header: impl Fn(u32) -> Option<[u8; 8]>,
) -> Vec<(ValueRef, u64)> {
    let mut values = Vec::new();
    let mut offset = 0u32;
    while offset + HEADER <= used.min(PAGE_SIZE as u32) {
        let Some(bytes) = header(offset) else { break };
        let word = u64::from_le_bytes(bytes);
        let len = (word & 0xFFFF) as u32;
        if len == 0 || offset + HEADER + len > used {
            debug_assert!(false, "bad header at {offset} of page {page:?}");
            break;
        }
        let vref = ValueRef {
            page,
            offset: offset + HEADER,
            len,
        };
        values.push((vref, word >> 16));
        offset += HEADER + len;
    }
    values
}

impl Drop for PinnedPage<'_> {
    fn drop(&mut self) {
        self.store.unpin(self.page);
    }
}

impl Drop for PageStore {
    fn drop(&mut self) {
        let next = *self.next_id.get_mut();
        for id in 0..next {
            if let Some(slot) = self.slot(PageId(id)) {
                let pages = slot.pages.load(Ordering::Acquire);
                let base = slot.base.load(Ordering::Acquire);
                if pages > 1 && !base.is_null() {
                    // SAFETY: an extent's head owns its buffer, from `alloc_extent(pages)`; we
                    // have `&mut self`, so nobody reads it any more.
                    unsafe { os::free_extent(base, pages) };
                }
            }
        }
        // Single pages live in slabs, unmapped when `slabs` drops.
        for entry in self.dir.iter() {
            let chunk = entry.load(Ordering::Acquire);
            if !chunk.is_null() {
                // SAFETY: chunks come from Box::into_raw and are freed only here.
                drop(unsafe { Box::from_raw(chunk) });
            }
        }
    }
}

impl std::fmt::Debug for PageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageStore")
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_share_a_page_and_round_trip() {
        let store = PageStore::new(PageStoreConfig::default());
        let a = store.write(b"hello", 0).unwrap();
        let b = store.write(b"world!", 0).unwrap();
        assert_eq!(a.page, b.page);
        assert_eq!(&store.read(a).unwrap()[..], b"hello");
        assert_eq!(&store.read(b).unwrap()[..], b"world!");
        assert_eq!(store.stats().bytes_live, 11 + 2 * VALUE_HEADER_BYTES as u64);
        assert_eq!(store.with_value(b, |v| v.len()).unwrap(), 6);
    }

    #[test]
    fn directory_bytes_count_the_directory_and_each_chunk() {
        let store = PageStore::new(PageStoreConfig::default());
        let directory = (DIR_CHUNKS * std::mem::size_of::<AtomicPtr<Chunk>>()) as u64;
        assert_eq!(store.stats().directory_bytes, directory);
        store.write(b"x", 0).unwrap();
        let chunk = (CHUNK_PAGES * std::mem::size_of::<Slot>()) as u64;
        assert_eq!(store.stats().directory_bytes, directory + chunk);
    }

    #[test]
    fn empty_value_takes_no_page() {
        let store = PageStore::new(PageStoreConfig::default());
        let v = store.write(b"", 0).unwrap();
        assert_eq!(v, ValueRef::EMPTY);
        assert!(store.read(v).unwrap().is_empty());
        assert_eq!(store.stats().pages, 0);
        // SAFETY: nobody reads `v` again.
        unsafe { store.free(v).unwrap() };
    }

    #[test]
    fn bad_refs_are_typed_errors() {
        let store = PageStore::new(PageStoreConfig::default());
        let v = store.write(b"abc", 0).unwrap();
        let out_of_page = ValueRef {
            page: v.page,
            offset: PAGE_SIZE as u32 - 1,
            len: 2,
        };
        assert!(matches!(
            store.read(out_of_page),
            Err(StorageError::BadValueRef { .. })
        ));
        let no_page = ValueRef {
            page: PageId(77),
            offset: 0,
            len: 1,
        };
        assert!(matches!(
            store.read(no_page),
            Err(StorageError::BadValueRef { .. })
        ));
        // SAFETY: the refs are bogus; free must reject them without touching memory.
        assert!(unsafe { store.free(no_page) }.is_err());
        let too_much = ValueRef {
            page: v.page,
            offset: 0,
            len: 1 << 20,
        };
        assert!(unsafe { store.free(too_much) }.is_err());
    }

    #[test]
    fn large_values_use_extents_and_are_released() {
        let store = PageStore::new(PageStoreConfig::default());
        let big: Vec<u8> = (0..(3 * PAGE_SIZE + 17)).map(|i| (i % 251) as u8).collect();
        let v = store.write(&big, 0).unwrap();
        assert_eq!(store.read(v).unwrap(), big);
        assert_eq!(store.stats().extents, 1);
        assert_eq!(store.stats().pages, 4);
        // SAFETY: nobody reads `v` again.
        unsafe { store.free(v).unwrap() };
        assert_eq!(store.stats().pages, 0);
        assert_eq!(store.stats().extents, 0);
        assert!(store.read(v).is_err());
    }

    #[test]
    fn too_large_is_rejected() {
        let config = PageStoreConfig {
            max_value_bytes: 1000,
            ..PageStoreConfig::default()
        };
        let store = PageStore::new(config);
        assert!(matches!(
            store.write(&[0; 1001], 0),
            Err(StorageError::ValueTooLarge { .. })
        ));
    }

    #[test]
    fn empty_sealed_pages_are_recycled() {
        let store = PageStore::new(PageStoreConfig {
            open_page_shards: 1,
            ..PageStoreConfig::default()
        });
        // Four values and their headers fill a page exactly.
        let value = vec![7u8; PAGE_SIZE / 4 - VALUE_HEADER_BYTES];
        let refs: Vec<ValueRef> = (0..8).map(|_| store.write(&value, 0).unwrap()).collect();
        let pages_before = store.stats().pages;
        assert_eq!(pages_before, 2);
        for v in &refs {
            // SAFETY: each ref is freed once and not read afterwards.
            unsafe { store.free(*v).unwrap() };
        }
        // The first page is sealed and empty: on the free list. The second is still open.
        assert_eq!(store.stats().free_pages, 1);
        let again: Vec<ValueRef> = (0..8).map(|_| store.write(&value, 0).unwrap()).collect();
        assert!(store.stats().pages <= pages_before + 1);
        for v in again {
            assert_eq!(store.read(v).unwrap(), value);
        }
    }
}
