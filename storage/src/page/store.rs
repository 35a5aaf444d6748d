//! [`PageStore`]: a thread-safe heap of values in 64 KiB pages, held in RAM.
//!
//! Invariants:
//! - A page's directory slot (`base`, `pages`) is published (Release) before any [`ValueRef`]
//!   into it is returned, and a value's bytes are copied before its `ValueRef` is returned, so
//!   a reader that got the `ValueRef` through any synchronising channel sees the bytes.
//! - Concurrent writers reserve disjoint byte ranges (under the short lock of their shard's open
//!   page) and copy outside the lock; nobody ever writes a range that a live `ValueRef` names.
//! - A page's `state` counts its live bytes, plus [`OPEN_BIAS`] while it is some shard's open
//!   page; whoever moves it to exactly zero (the last `free` or the sealing) recycles the page,
//!   so exactly one thread does.
//! - Readers take no lock: a directory lookup is two atomic loads.
//! - Every id below `next_id` is exactly one of: part of a live page or extent, an empty page
//!   on `free_pages` (with its buffer), or in `bare_ids` (no buffer). Freed extents return their
//!   ids to `bare_ids` as one run, and extents and single pages take ids from there (best fit)
//!   before taking fresh ones, so the id space (and the directory) stays proportional to the
//!   peak of live pages instead of growing with every large value ever written.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::free_runs::FreeRuns;
use super::{PageId, ValueRef, PAGE_SIZE, SMALL_VALUE_MAX_BYTES, VALUE_MAX_BYTES};
use crate::StorageError;

/// Page slots per directory chunk; the directory has as many chunks, covering all `u32` ids.
const CHUNK_PAGES_BITS: u32 = 16;
const CHUNK_PAGES: usize = 1 << CHUNK_PAGES_BITS;
const DIR_CHUNKS: usize = 1 << (32 - CHUNK_PAGES_BITS);
/// Added to a page's live-byte count while it is open for bump allocation, so it cannot be
/// recycled while writers may still reserve space in it. Above any page's byte count.
const OPEN_BIAS: u64 = 1 << 40;
const LIVE_MASK: u64 = OPEN_BIAS - 1;
/// Page alignment: lets a later SSD tier use O_DIRECT on the same buffers.
const PAGE_ALIGN: usize = 4096;

const _: () = assert!((VALUE_MAX_BYTES as u64) < OPEN_BIAS);

/// Configuration of a [`PageStore`].
#[derive(Debug, Clone)]
pub struct PageStoreConfig {
    /// Number of independently locked open pages; writers on different threads use different
    /// ones so they don't contend.
    pub open_page_shards: usize,
    /// Upper bound on page ids handed out (bounds the memory the store may take).
    pub max_pages: u32,
    /// Empty pages kept (with their buffers) for reuse; more are returned to the allocator.
    pub free_pages_retained_max: usize,
    /// Longest value accepted.
    pub max_value_bytes: usize,
}

impl Default for PageStoreConfig {
    fn default() -> Self {
        PageStoreConfig {
            open_page_shards: 16,
            max_pages: u32::MAX - 1,
            free_pages_retained_max: 1024,
            max_value_bytes: VALUE_MAX_BYTES,
        }
    }
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
    /// Pages that currently own a buffer (open, full, free-listed, or part of an extent).
    pub pages: u64,
    /// Bytes of page buffers allocated (`pages * PAGE_SIZE`).
    pub bytes_allocated: u64,
    /// Bytes of values written and not yet freed.
    pub bytes_live: u64,
    /// Values written and not yet freed.
    pub values_live: u64,
    /// Empty pages kept for reuse.
    pub free_pages: u64,
    /// Multi-page extents currently allocated.
    pub extents: u64,
    /// Page ids handed out at least once (the id space in use, free ids included).
    pub page_ids: u64,
    /// Of those, ids with no buffer, waiting for reuse.
    pub bare_ids: u64,
    /// Runs of consecutive bare ids (fragmentation of the id space).
    pub bare_id_runs: u64,
    /// Bytes of the store's own bookkeeping: the page directory and the directory chunks
    /// allocated so far (one 24-byte slot per page id handed out, in chunks of 64 Ki slots).
    pub directory_bytes: u64,
}

#[derive(Default)]
struct Slot {
    /// Start of this page's bytes; null when the id has no buffer.
    base: AtomicPtr<u8>,
    /// Live bytes (+ `OPEN_BIAS` while open). Meaningful on a page or an extent's head.
    state: AtomicU64,
    /// 0: no buffer or an extent's tail page; 1: a single page; n > 1: head of an n-page extent.
    pages: AtomicU32,
}

struct Chunk {
    slots: Box<[Slot]>,
}

#[derive(Default)]
struct OpenPage {
    page: Option<PageId>,
    used: u32,
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
    /// Empty single pages that keep their buffer.
    free_pages: Mutex<Vec<PageId>>,
    /// Ids without a buffer (from freed extents or trimmed free pages), as runs.
    bare_ids: Mutex<FreeRuns>,
    open: Box<[Padded<Mutex<OpenPage>>]>,
    pages: AtomicU64,
    bytes_live: AtomicU64,
    values_live: AtomicU64,
    extents: AtomicU64,
    /// Directory chunks allocated (each `CHUNK_PAGES` slots).
    chunks: AtomicU64,
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

fn page_layout(pages: u32) -> Result<Layout, StorageError> {
    let size = (pages as usize)
        .checked_mul(PAGE_SIZE)
        .ok_or(StorageError::OutOfPages {
            pages: u64::from(pages),
        })?;
    Layout::from_size_align(size, PAGE_ALIGN).map_err(|_| StorageError::OutOfPages {
        pages: u64::from(pages),
    })
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
            bare_ids: Mutex::new(FreeRuns::default()),
            open: (0..shards).map(|_| Padded::default()).collect(),
            pages: AtomicU64::new(0),
            bytes_live: AtomicU64::new(0),
            values_live: AtomicU64::new(0),
            extents: AtomicU64::new(0),
            chunks: AtomicU64::new(0),
            config,
        }
    }

    /// Copies `value` into the store and returns where it lives.
    pub fn write(&self, value: &[u8]) -> Result<ValueRef, StorageError> {
        let mut tally = WriteTally::default();
        let vref = self.write_tallied(value, &mut tally)?;
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
        tally: &mut WriteTally,
    ) -> Result<ValueRef, StorageError> {
        let len = value.len();
        if len > self.config.max_value_bytes.min(VALUE_MAX_BYTES) {
            return Err(StorageError::ValueTooLarge {
                len,
                max: self.config.max_value_bytes,
            });
        }
        if len == 0 {
            return Ok(ValueRef::EMPTY);
        }
        // Fits in u32: len <= VALUE_MAX_BYTES <= u32::MAX (asserted in mod.rs).
        let len32 = len as u32;
        let vref = if len <= SMALL_VALUE_MAX_BYTES {
            self.reserve_small(len32)?
        } else {
            self.reserve_extent(len32)?
        };
        let (base, _) = self.locate(vref)?;
        // SAFETY: `locate` checked that `offset + len` lies inside the page/extent buffer that
        // `base` points at; the range was reserved for this call alone and no `ValueRef` to it
        // has been handed out, so nobody else reads or writes it; `value` is a separate
        // allocation (it cannot alias a reserved range nobody knows about).
        unsafe {
            std::ptr::copy_nonoverlapping(value.as_ptr(), base.add(vref.offset as usize), len);
        }
        tally.bytes += len as u64;
        tally.values += 1;
        Ok(vref)
    }

    /// Adds values written with [`Self::write_tallied`] to the store's totals.
    pub fn add_tally(&self, tally: WriteTally) {
        if tally.values > 0 {
            self.bytes_live.fetch_add(tally.bytes, Ordering::Relaxed);
            self.values_live.fetch_add(tally.values, Ordering::Relaxed);
        }
    }

    /// Returns a copy of the value's bytes.
    pub fn read(&self, vref: ValueRef) -> Result<Bytes, StorageError> {
        self.with_value(vref, Bytes::copy_from_slice)
    }

    /// Calls `f` with the value's bytes in place (no copy).
    pub fn with_value<R>(
        &self,
        vref: ValueRef,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, StorageError> {
        if vref.len == 0 {
            return Ok(f(&[]));
        }
        let (base, _) = self.locate(vref)?;
        // SAFETY: `locate` bounds-checked the range inside a live buffer. The range was fully
        // written before the `ValueRef` was returned, and it is not written again until it is
        // freed, which the caller of `free` promised happens only after the last read.
        let bytes = unsafe {
            std::slice::from_raw_parts(base.add(vref.offset as usize), vref.len as usize)
        };
        Ok(f(bytes))
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
        let bad = StorageError::BadValueRef {
            page: vref.page.0,
            offset: vref.offset,
            len: vref.len,
        };
        let (_, _) = self.locate(vref)?;
        let slot = self.slot(vref.page).ok_or(StorageError::BadValueRef {
            page: vref.page.0,
            offset: vref.offset,
            len: vref.len,
        })?;
        let len = u64::from(vref.len);
        let previous = slot
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                if state & LIVE_MASK >= len {
                    Some(state - len)
                } else {
                    None
                }
            })
            .map_err(|_| bad)?;
        self.bytes_live.fetch_sub(len, Ordering::Relaxed);
        self.values_live.fetch_sub(1, Ordering::Relaxed);
        if previous == len {
            self.release(vref.page, slot);
        }
        Ok(())
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
            extents: self.extents.load(Ordering::Relaxed),
            page_ids: u64::from(self.next_id.load(Ordering::Relaxed)),
            bare_ids,
            bare_id_runs,
            directory_bytes: self.directory_bytes(),
        }
    }

    /// [`PageStats::bytes_live`] alone (one atomic load, no lock).
    pub fn bytes_live(&self) -> u64 {
        self.bytes_live.load(Ordering::Relaxed)
    }

    /// [`PageStats::bytes_allocated`] alone (one atomic load, no lock).
    pub fn bytes_allocated(&self) -> u64 {
        self.pages.load(Ordering::Relaxed) * PAGE_SIZE as u64
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

    /// Bounds-checks `vref` and returns its buffer's base and capacity.
    fn locate(&self, vref: ValueRef) -> Result<(*mut u8, u64), StorageError> {
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
        Ok((base, capacity))
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
            let fresh = Box::into_raw(Box::new(Chunk {
                slots: (0..CHUNK_PAGES).map(|_| Slot::default()).collect(),
            }));
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

    fn allocate_buffer(&self, pages: u32) -> Result<*mut u8, StorageError> {
        let layout = page_layout(pages)?;
        // SAFETY: the layout has non-zero size (pages >= 1). Zeroed so that a bad-but-in-range
        // ValueRef reads zeros, never uninitialised memory.
        let base = unsafe { alloc_zeroed(layout) };
        if base.is_null() {
            return Err(StorageError::OutOfPages {
                pages: self.pages.load(Ordering::Relaxed),
            });
        }
        self.pages.fetch_add(u64::from(pages), Ordering::Relaxed);
        Ok(base)
    }

    /// Returns an empty single page with a buffer and `state == 0`.
    fn take_page(&self) -> Result<PageId, StorageError> {
        if let Some(id) = self.free_pages.lock().pop() {
            return Ok(id);
        }
        let id = self.take_ids(1)?;
        let prepared = self
            .ensure_chunk(id)
            .and_then(|slot| self.allocate_buffer(1).map(|base| (slot, base)));
        let (slot, base) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                self.bare_ids.lock().insert(id, 1);
                return Err(error);
            }
        };
        slot.base.store(base, Ordering::Release);
        slot.pages.store(1, Ordering::Release);
        Ok(PageId(id))
    }

    fn reserve_small(&self, len: u32) -> Result<ValueRef, StorageError> {
        let shard = self
            .open
            .get(shard_hint() % self.open.len())
            .ok_or(StorageError::OutOfPages { pages: 0 })?;
        let mut open = shard.0.lock();
        if let Some(page) = open.page {
            if open.used as usize + len as usize <= PAGE_SIZE {
                let offset = open.used;
                open.used += len;
                if let Some(slot) = self.slot(page) {
                    slot.state.fetch_add(u64::from(len), Ordering::AcqRel);
                }
                return Ok(ValueRef { page, offset, len });
            }
            open.page = None;
            self.seal(page);
        }
        let page = self.take_page()?;
        if let Some(slot) = self.slot(page) {
            slot.state
                .fetch_add(OPEN_BIAS + u64::from(len), Ordering::AcqRel);
        }
        open.page = Some(page);
        open.used = len;
        Ok(ValueRef {
            page,
            offset: 0,
            len,
        })
    }

    fn reserve_extent(&self, len: u32) -> Result<ValueRef, StorageError> {
        let pages = len.div_ceil(PAGE_SIZE as u32);
        if pages == 1 {
            let page = self.take_page()?;
            if let Some(slot) = self.slot(page) {
                slot.state.fetch_add(u64::from(len), Ordering::AcqRel);
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
            .and_then(|()| self.allocate_buffer(pages));
        let base = match prepared {
            Ok(base) => base,
            Err(error) => {
                // The ids own no buffer yet: give them back rather than leak them.
                self.bare_ids.lock().insert(first, pages);
                return Err(error);
            }
        };
        for index in (0..pages).rev() {
            let slot = self.ensure_chunk(first + index)?;
            // SAFETY: index < pages, so the offset stays inside the extent's buffer.
            slot.base.store(
                unsafe { base.add(index as usize * PAGE_SIZE) },
                Ordering::Release,
            );
            if index == 0 {
                slot.state.store(u64::from(len), Ordering::Release);
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

    /// Ends bump allocation in `page`; recycles it if all its values are already freed.
    fn seal(&self, page: PageId) {
        if let Some(slot) = self.slot(page) {
            let previous = slot.state.fetch_sub(OPEN_BIAS, Ordering::AcqRel);
            if previous == OPEN_BIAS {
                self.release(page, slot);
            }
        }
    }

    /// Recycles a page or extent whose live count just reached zero (called exactly once).
    fn release(&self, page: PageId, slot: &Slot) {
        let pages = slot.pages.load(Ordering::Acquire);
        if pages == 1 {
            let mut free = self.free_pages.lock();
            if free.len() < self.config.free_pages_retained_max {
                free.push(page);
                return;
            }
        }
        let base = slot.base.load(Ordering::Acquire);
        for index in 0..pages {
            if let Some(part) = self.slot(PageId(page.0 + index)) {
                part.base.store(std::ptr::null_mut(), Ordering::Release);
                part.pages.store(0, Ordering::Release);
            }
        }
        if let Ok(layout) = page_layout(pages) {
            // SAFETY: `base` was allocated by `allocate_buffer(pages)` with this layout, the
            // directory no longer points at it, and no live ValueRef names it (live count 0).
            unsafe { dealloc(base, layout) };
        }
        self.pages.fetch_sub(u64::from(pages), Ordering::Relaxed);
        if pages > 1 {
            self.extents.fetch_sub(1, Ordering::Relaxed);
        }
        self.bare_ids.lock().insert(page.0, pages);
    }
}

impl Drop for PageStore {
    fn drop(&mut self) {
        let next = *self.next_id.get_mut();
        for id in 0..next {
            if let Some(slot) = self.slot(PageId(id)) {
                let pages = slot.pages.load(Ordering::Acquire);
                let base = slot.base.load(Ordering::Acquire);
                if pages >= 1 && !base.is_null() {
                    if let Ok(layout) = page_layout(pages) {
                        // SAFETY: a head slot owns its buffer, allocated with this layout; we
                        // have `&mut self`, so nobody reads it any more.
                        unsafe { dealloc(base, layout) };
                    }
                }
            }
        }
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
        let a = store.write(b"hello").unwrap();
        let b = store.write(b"world!").unwrap();
        assert_eq!(a.page, b.page);
        assert_eq!(&store.read(a).unwrap()[..], b"hello");
        assert_eq!(&store.read(b).unwrap()[..], b"world!");
        assert_eq!(store.stats().bytes_live, 11);
        assert_eq!(store.with_value(b, |v| v.len()).unwrap(), 6);
    }

    #[test]
    fn directory_bytes_count_the_directory_and_each_chunk() {
        let store = PageStore::new(PageStoreConfig::default());
        let directory = (DIR_CHUNKS * std::mem::size_of::<AtomicPtr<Chunk>>()) as u64;
        assert_eq!(store.stats().directory_bytes, directory);
        store.write(b"x").unwrap();
        let chunk = (CHUNK_PAGES * std::mem::size_of::<Slot>()) as u64;
        assert_eq!(store.stats().directory_bytes, directory + chunk);
    }

    #[test]
    fn empty_value_takes_no_page() {
        let store = PageStore::new(PageStoreConfig::default());
        let v = store.write(b"").unwrap();
        assert_eq!(v, ValueRef::EMPTY);
        assert!(store.read(v).unwrap().is_empty());
        assert_eq!(store.stats().pages, 0);
        // SAFETY: nobody reads `v` again.
        unsafe { store.free(v).unwrap() };
    }

    #[test]
    fn bad_refs_are_typed_errors() {
        let store = PageStore::new(PageStoreConfig::default());
        let v = store.write(b"abc").unwrap();
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
        let v = store.write(&big).unwrap();
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
            store.write(&[0; 1001]),
            Err(StorageError::ValueTooLarge { .. })
        ));
    }

    #[test]
    fn empty_sealed_pages_are_recycled() {
        let store = PageStore::new(PageStoreConfig {
            open_page_shards: 1,
            ..PageStoreConfig::default()
        });
        let value = vec![7u8; SMALL_VALUE_MAX_BYTES];
        let refs: Vec<ValueRef> = (0..8).map(|_| store.write(&value).unwrap()).collect();
        let pages_before = store.stats().pages;
        assert_eq!(pages_before, 2);
        for v in &refs {
            // SAFETY: each ref is freed once and not read afterwards.
            unsafe { store.free(*v).unwrap() };
        }
        // The first page is sealed and empty: on the free list. The second is still open.
        assert_eq!(store.stats().free_pages, 1);
        let again: Vec<ValueRef> = (0..8).map(|_| store.write(&value).unwrap()).collect();
        assert!(store.stats().pages <= pages_before + 1);
        for v in again {
            assert_eq!(store.read(v).unwrap(), value);
        }
    }
}
