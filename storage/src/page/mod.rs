//! Values in fixed-size pages: where a value's bytes live, addressed by [`ValueRef`].
//!
//! Invariant: a published [`ValueRef`] names bytes that never move and never change until the
//! owner frees it; the transaction layer holds only `ValueRef`s (never pointers), so a page can
//! later be written to SSD and read back without the transaction layer noticing.
//!
//! # Page size: 64 KiB ([`PAGE_SIZE`])
//!
//! - SSD I/O: NVMe drives reach their bandwidth at 32–128 KiB requests; a 64 KiB page read costs
//!   about the same latency as a 4 KiB one, so cold pages come back in one I/O.
//! - Fragmentation: only values up to [`SMALL_VALUE_MAX_BYTES`] (16 KiB) are bump-allocated into
//!   shared pages, so the unusable tail of a sealed page is below 16 KiB (25 %), and for the
//!   typical small Redis value it is a few bytes. Larger values get their own run of pages.
//! - Metadata: one 32-byte directory slot per page (0.05 % of the page), and a `u32` page id
//!   covers 256 TiB.
//! - Recycling: a page is recycled only when every value in it is freed. Values that outlive
//!   their neighbours would pin sparse pages for good, so the transaction layer moves them out
//!   ([`PageStore::pin`] walks a sealed page's values through their headers,
//!   [`PageStore::relocate`] copies one to a survivor page) and frees the old copies once no
//!   reader can hold them; an empty page's memory goes back to the OS beyond a small resident
//!   reserve (`os.rs`).
//! - Headers: each small value is preceded by 8 bytes ([`VALUE_HEADER_BYTES`]: its length and
//!   a 48-bit owner tag the caller chooses), so a page can be walked without any index; values
//!   larger than [`SMALL_VALUE_MAX_BYTES`] own their pages and need none.
//! - Page ids: a freed page's or extent's ids are reused (best fit over merged runs of free ids,
//!   `free_runs.rs`), so the id space and the directory track the peak of live pages, not the
//!   total ever written.

mod free_runs;
mod os;
mod store;

pub use store::{
    ColdPlan, ColdRead, Frame, PageHold, PageState, PageStats, PageStore, PageStoreConfig,
    PageUsage, PinnedPage, Residency, SpilledImage, SpilledPage, Survivors, WriteTally,
};

/// The size of one page in bytes. See the module documentation for why 64 KiB.
pub const PAGE_SIZE: usize = 64 * 1024;

/// Values up to this length are bump-allocated into a shared open page; longer ones get a
/// dedicated run of pages (an extent).
pub const SMALL_VALUE_MAX_BYTES: usize = PAGE_SIZE / 4;

/// Bytes before each small value in its page: its length (16 bits) and its owner tag.
pub const VALUE_HEADER_BYTES: usize = 8;

/// The largest owner tag a value header keeps (48 bits); [`PageStore::write`] drops higher bits.
pub const OWNER_TAG_MAX: u64 = (1 << 48) - 1;

/// The largest value the store accepts by default (Redis's `proto-max-bulk-len`).
pub const VALUE_MAX_BYTES: usize = 512 * 1024 * 1024;

const _: () = assert!(SMALL_VALUE_MAX_BYTES <= PAGE_SIZE);
const _: () = assert!(VALUE_MAX_BYTES <= u32::MAX as usize);

/// Identifies one page of a [`PageStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageId(pub u32);

impl PageId {
    /// The page id of the empty value, which occupies no page.
    pub const NONE: PageId = PageId(u32::MAX);
}

/// Where a value lives: `len` bytes at `offset` in page `page` (or in the extent starting at
/// `page`, for values longer than a page). Copy, 12 bytes.
///
/// Invariant (relied on by the transaction layer, which packs `offset` and `len` into 32 bits
/// of its index node): only values of at most [`SMALL_VALUE_MAX_BYTES`] share a page, so
/// `offset != 0` implies `len <= SMALL_VALUE_MAX_BYTES`; a longer value starts at offset 0 of
/// its own page or extent. Checked by [`ValueRef::is_well_placed`] in the page store's tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueRef {
    /// The page (or the first page of the extent) holding the value.
    pub page: PageId,
    /// Byte offset of the value inside the page or extent.
    pub offset: u32,
    /// Length of the value in bytes.
    pub len: u32,
}

impl ValueRef {
    /// The empty value: no page, no bytes.
    pub const EMPTY: ValueRef = ValueRef {
        page: PageId::NONE,
        offset: 0,
        len: 0,
    };

    /// True for the empty value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the value takes in its page or extent: a small value's header included.
    pub fn footprint(&self) -> u64 {
        if self.len == 0 {
            0
        } else if self.len as usize <= SMALL_VALUE_MAX_BYTES {
            u64::from(self.len) + VALUE_HEADER_BYTES as u64
        } else {
            u64::from(self.len)
        }
    }

    /// Whether the placement invariant above holds: a value longer than
    /// [`SMALL_VALUE_MAX_BYTES`] starts at offset 0, and a small one inside one page.
    pub fn is_well_placed(&self) -> bool {
        if self.len as usize > SMALL_VALUE_MAX_BYTES {
            self.offset == 0
        } else {
            self.offset as usize + self.len as usize <= PAGE_SIZE
        }
    }
}

const _: () = assert!(std::mem::size_of::<ValueRef>() == 12);

#[cfg(test)]
mod tests;
