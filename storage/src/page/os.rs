//! Page memory straight from the OS: single pages are carved out of 2 MiB anonymous mappings
//! (slabs) and handed back with `madvise(MADV_DONTNEED)` when the store no longer needs them
//! resident; multi-page extents come from the global allocator.
//!
//! Why not `alloc` for single pages: glibc serves a 64 KiB request with 4 KiB alignment from
//! its heap (below its mmap threshold), splitting off alignment fragments, and a freed chunk
//! in the middle of the heap is never returned to the OS, so RSS would stay at the peak of
//! pages ever held however many pages the store recycles. A page of a slab keeps its address
//! for good (its id keeps the buffer); releasing it costs one `madvise`, re-using it 16 soft
//! page faults, and the address space it keeps (virtual only) is bounded by the peak.
//!
//! Invariant: a slab is unmapped only when the store is dropped; a page's memory is advised
//! away only while no `ValueRef` names it (its live count is zero and it is on no open page).

use std::alloc::{alloc_zeroed, dealloc, Layout};

use super::PAGE_SIZE;
use crate::StorageError;

/// Pages per slab: 2 MiB, so a slab is one transparent huge page where the kernel backs it so.
pub(super) const SLAB_PAGES: usize = 32;
const SLAB_BYTES: usize = SLAB_PAGES * PAGE_SIZE;
/// Buffer alignment: lets a later SSD tier use O_DIRECT on the same buffers.
const PAGE_ALIGN: usize = 4096;

/// Hands out single-page buffers from slabs.
#[derive(Default)]
pub(super) struct Slabs {
    /// Next unused page of the newest slab, and how many pages it has left.
    next: usize,
    left: usize,
    /// Every slab mapped (start address), unmapped on drop.
    mapped: Vec<usize>,
}

impl Slabs {
    /// A fresh, zeroed single-page buffer.
    pub(super) fn page(&mut self) -> Result<*mut u8, StorageError> {
        if self.left == 0 {
            let start = map_anonymous(SLAB_BYTES).ok_or(StorageError::OutOfPages {
                pages: (self.mapped.len() * SLAB_PAGES) as u64,
            })?;
            self.mapped.push(start as usize);
            self.next = start as usize;
            self.left = SLAB_PAGES;
        }
        let page = self.next;
        self.next += PAGE_SIZE;
        self.left -= 1;
        Ok(page as *mut u8)
    }

    /// Bytes of address space mapped for slabs.
    #[cfg(test)]
    pub(super) fn mapped_bytes(&self) -> u64 {
        (self.mapped.len() * SLAB_BYTES) as u64
    }
}

impl Drop for Slabs {
    fn drop(&mut self) {
        for start in self.mapped.drain(..) {
            // SAFETY: `start` came from `map_anonymous(SLAB_BYTES)` and is unmapped once; the
            // store is being dropped, so no page of it is read any more.
            unsafe {
                libc::munmap(start as *mut libc::c_void, SLAB_BYTES);
            }
        }
    }
}

fn map_anonymous(bytes: usize) -> Option<*mut u8> {
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let start = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (start != libc::MAP_FAILED).then_some(start.cast::<u8>())
}

/// Gives the physical memory behind `bytes` bytes at `start` back to the OS; the range stays
/// mapped and reads as zeros afterwards. Best effort: a failure only leaves it resident.
///
/// # Safety
///
/// `start..start + bytes` must be memory this store owns, page-aligned, that nobody reads or
/// writes concurrently.
pub(super) unsafe fn release_memory(start: *mut u8, bytes: usize) {
    // SAFETY: guaranteed by the caller; MADV_DONTNEED on private anonymous memory zero-fills it.
    unsafe {
        libc::madvise(start.cast::<libc::c_void>(), bytes, libc::MADV_DONTNEED);
    }
}

fn extent_layout(pages: u32) -> Result<Layout, StorageError> {
    let out = || StorageError::OutOfPages {
        pages: u64::from(pages),
    };
    let size = (pages as usize).checked_mul(PAGE_SIZE).ok_or_else(out)?;
    Layout::from_size_align(size, PAGE_ALIGN).map_err(|_| out())
}

/// A zeroed buffer of `pages` consecutive pages (an extent), from the global allocator.
pub(super) fn alloc_extent(pages: u32) -> Result<*mut u8, StorageError> {
    let layout = extent_layout(pages)?;
    // SAFETY: the layout has non-zero size (pages >= 1). Zeroed so that a bad-but-in-range
    // ValueRef reads zeros, never uninitialised memory.
    let base = unsafe { alloc_zeroed(layout) };
    if base.is_null() {
        return Err(StorageError::OutOfPages {
            pages: u64::from(pages),
        });
    }
    Ok(base)
}

/// Frees an extent from [`alloc_extent`], its memory advised away first: glibc raises its
/// mmap threshold after freeing a large mapped chunk, so a later extent of the same size may
/// live in the heap, where `free` alone would keep it resident.
///
/// # Safety
///
/// `base` came from `alloc_extent(pages)`, is freed once, and nobody reads it any more.
pub(super) unsafe fn free_extent(base: *mut u8, pages: u32) {
    if let Ok(layout) = extent_layout(pages) {
        // SAFETY: guaranteed by the caller; the layout is the one it was allocated with.
        unsafe {
            release_memory(base, layout.size());
            dealloc(base, layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident 4 KiB pages of `bytes` bytes at `start`, asked of the kernel (mincore), so the
    /// count is about this range alone whatever other tests allocate meanwhile.
    fn resident_pages(start: *mut u8, bytes: usize) -> usize {
        let mut vec = vec![0u8; bytes / 4096];
        // SAFETY: the range is mapped (a slab page) and `vec` has one byte per 4 KiB page.
        let rc = unsafe { libc::mincore(start.cast(), bytes, vec.as_mut_ptr()) };
        assert_eq!(rc, 0);
        vec.iter().filter(|b| **b & 1 != 0).count()
    }

    #[test]
    fn released_pages_leave_rss_and_read_as_zeros() {
        let mut slabs = Slabs::default();
        let pages: Vec<*mut u8> = (0..SLAB_PAGES * 4).map(|_| slabs.page().unwrap()).collect();
        assert_eq!(slabs.mapped_bytes(), 4 * SLAB_BYTES as u64);
        for page in &pages {
            // SAFETY: a page this test owns.
            unsafe { std::ptr::write_bytes(*page, 0xAB, PAGE_SIZE) };
        }
        for page in &pages {
            assert_eq!(resident_pages(*page, PAGE_SIZE), PAGE_SIZE / 4096);
            // SAFETY: as above; nobody else reads it.
            unsafe { release_memory(*page, PAGE_SIZE) };
            assert_eq!(
                resident_pages(*page, PAGE_SIZE),
                0,
                "released page still resident"
            );
        }
        // SAFETY: as above.
        assert!(unsafe { std::slice::from_raw_parts(pages[3], PAGE_SIZE) }
            .iter()
            .all(|b| *b == 0));
    }
}
