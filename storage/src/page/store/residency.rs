//! Pages on SSD: a sealed page's bytes written to the spill file ([`PageStore::spill`]), its
//! RAM frame given back once no reader can hold it ([`PageStore::release_frame`]), its values
//! read from SSD block by block ([`PageStore::read_cold`]) or the whole page brought back
//! ([`PageStore::load`]).
//!
//! A page's life, as [`PageStore::page_state`] reports it:
//!
//! ```text
//!  Open ──seal──▶ Sealed(Resident) ──spill──▶ Sealed(OnSsd{frame: Held}) ──release_frame──▶ Sealed(OnSsd{frame: Released})
//!                      ▲                                 │                                           │
//!                      └──────────────── load ───────────┴───────────────────────────────────────────┘
//!  any sealed state ──last value freed──▶ Free (its SSD slot freed; a released frame stays released)
//! ```
//!
//! "Writing back" and "loading" are the spans of `spill` and `load`, which hold the page's
//! busy bit (the pin bias): nothing else pins, spills, loads or recycles it meanwhile. Every
//! change of the residency word goes through [`Residency::check_transition`].
//!
//! Invariants:
//! - Once `spill` has marked a page on SSD, reads of its values fail with
//!   [`StorageError::NotResident`] instead of touching the frame; readers that checked
//!   residency before may still be reading the frame, so it is given back only by
//!   `release_frame`, whose caller waits for them first (the engine: the same grace period as
//!   relocation's old places, docs/ARCHITECTURE.md invariant 14).
//! - A page's SSD slot is freed exactly once: by `load` (the page is in RAM again, under the
//!   spill file's write lock) or, once its last value is freed, queued by the page's release
//!   (which runs under GC's commit lock and so never waits for the file) and freed by the next
//!   holder of the write lock. `read_cold` holds the read lock and checks that the slot still
//!   holds the page it names, so a slot freed and reused meanwhile is never read as that page.
//! - A page goes to SSD (and is loaded or held) only when no writer is still copying a value
//!   into it (`WRITE_UNIT` in the state word): a value's bytes are copied after its space is
//!   reserved, outside the open page's lock, so a sealed page may still be written. An image
//!   taken earlier missed those bytes, and the value read back from SSD began with zeros
//!   (caught by `txn/tests/tier.rs`'s threaded test).
//! - `pages` counts resident frames: `release_frame` takes one out, `load` puts it back, and a
//!   freed page whose frame is released goes to the released list as an empty page's would.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{os, PageStore, Slot, OPEN_BIAS, PIN_BIAS, USED_DEDICATED};
use crate::page::{PageId, ValueRef, PAGE_SIZE, VALUE_HEADER_BYTES};
use crate::tier::{SlotId, SpillError, SpillFile};
use crate::StorageError;

/// The residency word: on SSD.
const ON_SSD: u32 = 1 << 31;
/// The residency word: the RAM frame went back to the OS.
const FRAME_RELEASED: u32 = 1 << 30;
/// The residency word: the spill file's slot.
const SLOT_MASK: u32 = FRAME_RELEASED - 1;

/// Whether a page's frame is still in RAM while its bytes are on SSD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Still resident (readers that looked before the spill may be reading it).
    Held,
    /// Given back to the OS.
    Released,
}

/// Where a page's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residency {
    /// In RAM.
    Resident,
    /// In the spill file's `slot`.
    OnSsd {
        /// The slot.
        slot: SlotId,
        /// The RAM frame.
        frame: Frame,
    },
}

impl Residency {
    fn decode(word: u32) -> Residency {
        if word & ON_SSD == 0 {
            return Residency::Resident;
        }
        Residency::OnSsd {
            slot: SlotId(word & SLOT_MASK),
            frame: if word & FRAME_RELEASED != 0 {
                Frame::Released
            } else {
                Frame::Held
            },
        }
    }

    fn encode(self) -> u32 {
        match self {
            Residency::Resident => 0,
            Residency::OnSsd { slot, frame } => {
                let released = if frame == Frame::Released {
                    FRAME_RELEASED
                } else {
                    0
                };
                ON_SSD | released | (slot.0 & SLOT_MASK)
            }
        }
    }

    /// The transitions the module docs draw, and only those: spill (resident to on SSD with
    /// the frame held), release of the frame (same slot), load or the page's release (back to
    /// resident).
    pub fn check_transition(self, to: Residency) -> bool {
        use Residency::*;
        match (self, to) {
            (
                Resident,
                OnSsd {
                    frame: Frame::Held, ..
                },
            ) => true,
            (
                OnSsd {
                    slot: a,
                    frame: Frame::Held,
                },
                OnSsd {
                    slot: b,
                    frame: Frame::Released,
                },
            ) => a == b,
            (OnSsd { .. }, Resident) => true,
            _ => false,
        }
    }
}

/// A page held busy ([`PageStore::hold`]); released on drop.
pub struct PageHold<'a> {
    store: &'a PageStore,
    page: PageId,
}

impl Drop for PageHold<'_> {
    fn drop(&mut self) {
        self.store.unpin(self.page);
    }
}

/// A page's image on SSD: its slot and the write generation of the image in it
/// ([`PageStore::spilled_image`]).
pub type SpilledImage = (SlotId, u64);

/// `vref`'s header and bytes as read from SSD (`bytes` starts at its header) into a
/// [`ColdRead`]; [`StorageError::BadValueRef`] if the header does not describe this value (a
/// stale or wrong `ValueRef`).
fn cold_read(
    vref: ValueRef,
    mut bytes: Vec<u8>,
    image: SpilledImage,
) -> Result<ColdRead, StorageError> {
    let bad = || StorageError::BadValueRef {
        page: vref.page.0,
        offset: vref.offset,
        len: vref.len,
    };
    let header: [u8; 8] = bytes
        .get(..VALUE_HEADER_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(bad)?;
    let word = u64::from_le_bytes(header);
    if word & 0xFFFF != u64::from(vref.len) {
        return Err(bad());
    }
    let value = Bytes::from(bytes.split_off(VALUE_HEADER_BYTES));
    Ok(ColdRead {
        value,
        owner: word >> 16,
        image,
    })
}

/// A planned asynchronous read of a small value on SSD ([`PageStore::plan_cold_read`]).
#[derive(Debug, Clone)]
pub struct ColdPlan {
    vref: ValueRef,
    plan: crate::tier::ReadPlan,
}

impl ColdPlan {
    /// The value.
    pub fn value(&self) -> ValueRef {
        self.vref
    }

    /// The read to make: descriptor, file offset and length (whole 4 KiB blocks).
    pub fn read(&self) -> (i32, u64, usize) {
        (
            self.plan.fd(),
            self.plan.file_offset(),
            self.plan.read_len(),
        )
    }
}

/// A small value read from SSD ([`PageStore::read_cold_owned`]).
#[derive(Debug, Clone)]
pub struct ColdRead {
    /// Its bytes.
    pub value: Bytes,
    /// The owner tag in its header.
    pub owner: u64,
    /// The image it was read from: (slot, write generation), as
    /// [`PageStore::spilled_image`] reports it.
    pub image: (SlotId, u64),
}

/// A spilled page held busy with its bytes read from SSD ([`PageStore::hold_spilled`]).
pub struct SpilledPage<'a> {
    _hold: PageHold<'a>,
    page: PageId,
    image: Vec<u8>,
}

impl SpilledPage<'_> {
    /// The page.
    pub fn page(&self) -> PageId {
        self.page
    }

    /// Every value ever written to the page, live or freed, with its owner tag (as
    /// [`super::PinnedPage::values`]).
    pub fn values(&self) -> Vec<(ValueRef, u64)> {
        let used = self.image.len().min(PAGE_SIZE) as u32;
        super::walk_values(self.page, used, |offset| {
            let at = offset as usize;
            self.image.get(at..at + 8)?.try_into().ok()
        })
    }

    /// The bytes of `value`, one of [`Self::values`]; `None` for a place outside the page.
    pub fn bytes(&self, value: ValueRef) -> Option<&[u8]> {
        if value.page != self.page {
            return None;
        }
        let start = value.offset as usize;
        self.image.get(start..start + value.len as usize)
    }
}

/// A page's place in its life (module docs), for tests, INFO and debugging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageState {
    /// Taking new values.
    Open,
    /// Sealed with live values, in RAM or on SSD.
    Sealed(Residency),
    /// Busy: being written to SSD, loaded, or pinned for compaction.
    Busy(Residency),
    /// No live value; its id is free for reuse.
    Free,
}

/// Entries per stripe of the read buffer.
const READ_STRIPE_ENTRIES: usize = 256;
/// An empty entry.
const NO_PAGE: u32 = u32::MAX;

/// Pages read lately, for the policy that chooses which pages stay in RAM: Caffeine's read
/// buffer, lossy by design. Readers write a page id into a slot of their thread's stripe (one
/// relaxed store and one relaxed increment, no lock; overwriting what the policy has not
/// drained yet when the stripe laps), and the policy drains them on its tick. Off (one
/// relaxed load per read) until a spill file is attached.
pub(super) struct ReadBuffer {
    on: std::sync::atomic::AtomicBool,
    stripes: Box<[super::Padded<ReadStripe>]>,
}

struct ReadStripe {
    /// Value reads recorded through this stripe, and how many of them found the page on SSD
    /// (INFO's hit ratio).
    reads: std::sync::atomic::AtomicU64,
    /// See `reads`.
    misses: std::sync::atomic::AtomicU64,
    next: std::sync::atomic::AtomicU32,
    /// The page recorded last: consecutive reads of one page count once (a scan of a page's
    /// values is one use of the page, and it would fill the stripe).
    last: std::sync::atomic::AtomicU32,
    pages: [std::sync::atomic::AtomicU32; READ_STRIPE_ENTRIES],
}

impl ReadBuffer {
    pub(super) fn new(stripes: usize) -> ReadBuffer {
        ReadBuffer {
            on: std::sync::atomic::AtomicBool::new(false),
            stripes: (0..stripes.clamp(1, 1024))
                .map(|_| {
                    super::Padded(ReadStripe {
                        reads: std::sync::atomic::AtomicU64::new(0),
                        misses: std::sync::atomic::AtomicU64::new(0),
                        next: std::sync::atomic::AtomicU32::new(0),
                        last: std::sync::atomic::AtomicU32::new(NO_PAGE),
                        pages: std::array::from_fn(|_| std::sync::atomic::AtomicU32::new(NO_PAGE)),
                    })
                })
                .collect(),
        }
    }

    /// Records a read of `page` (when on), and whether it missed (the page is on SSD).
    #[inline]
    pub(super) fn note(&self, page: PageId, missed: bool) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let Some(stripe) = self.stripes.get(super::shard_hint() % self.stripes.len()) else {
            return;
        };
        stripe.0.reads.fetch_add(1, Ordering::Relaxed);
        if missed {
            stripe.0.misses.fetch_add(1, Ordering::Relaxed);
        }
        if stripe.0.last.swap(page.0, Ordering::Relaxed) == page.0 {
            return;
        }
        let at = stripe.0.next.fetch_add(1, Ordering::Relaxed) as usize % READ_STRIPE_ENTRIES;
        if let Some(entry) = stripe.0.pages.get(at) {
            entry.store(page.0, Ordering::Relaxed);
        }
    }

    /// (reads, misses) recorded so far.
    fn counts(&self) -> (u64, u64) {
        self.stripes.iter().fold((0, 0), |(r, m), stripe| {
            (
                r + stripe.0.reads.load(Ordering::Relaxed),
                m + stripe.0.misses.load(Ordering::Relaxed),
            )
        })
    }

    fn drain(&self, visit: &mut dyn FnMut(PageId)) {
        for stripe in self.stripes.iter() {
            for entry in &stripe.0.pages {
                let page = entry.swap(NO_PAGE, Ordering::Relaxed);
                if page != NO_PAGE {
                    visit(PageId(page));
                }
            }
        }
    }
}

/// Sealed pages that entered or left RAM residency since the SSD tier last looked
/// ([`PageStore::drain_residency_changes`]), so its policy follows the pages in RAM without
/// walking every page id each tick (at tens of millions of pages on SSD, that walk would be
/// the tier's cost). Bounded: past [`RESIDENCY_CHANGES_MAX`] the queue is dropped and the
/// tier walks the pages once instead.
#[derive(Default)]
pub(super) struct ResidencyChanges {
    /// (page, entered): sealed in RAM or loaded back (true); freed or written to SSD (false).
    changes: Vec<(PageId, bool)>,
    /// Changes were dropped (or the file was just attached): the next drain reports it.
    lost: bool,
}

/// Changes kept between two drains of [`ResidencyChanges`] (8 bytes each).
pub const RESIDENCY_CHANGES_MAX: usize = 64 * 1024;

impl PageStore {
    /// Attaches the SSD tier's file; pages can be spilled from now on, and reads are recorded
    /// for the policy ([`Self::drain_reads`]). Replaces (and drops) a file attached before
    /// only if no page is on SSD; returns whether it was attached.
    pub fn attach_spill_file(&self, file: SpillFile) -> bool {
        let mut spill = self.spill.write();
        if self.spilled_pages.load(Ordering::Acquire) > 0 {
            return false;
        }
        *spill = Some(file);
        // The pages sealed before now were never reported: the first drain says so.
        self.residency_changes.lock().lost = true;
        self.reads.on.store(true, Ordering::Relaxed);
        true
    }

    /// Records that sealed `page` entered (`true`) or left RAM residency, once a spill file is
    /// attached (before that nothing drains them).
    pub(super) fn note_residency(&self, page: PageId, entered: bool) {
        if !self.reads.on.load(Ordering::Relaxed) {
            return;
        }
        let mut queue = self.residency_changes.lock();
        if queue.changes.len() >= RESIDENCY_CHANGES_MAX {
            queue.changes = Vec::new();
            queue.lost = true;
        }
        if !queue.lost {
            queue.changes.push((page, entered));
        }
    }

    /// Visits, in order, the sealed pages that entered (`true`: sealed in RAM, loaded back)
    /// or left (`false`: freed, written to SSD) RAM residency since the last call. Returns
    /// false if some were lost (the queue overflowed, or the file was just attached): then
    /// the caller walks the pages instead ([`Self::scan_sealed`]).
    pub fn drain_residency_changes(&self, visit: &mut dyn FnMut(PageId, bool)) -> bool {
        let (changes, lost) = {
            let mut queue = self.residency_changes.lock();
            let lost = std::mem::take(&mut queue.lost);
            let keep = queue.changes.capacity().min(1024);
            (
                std::mem::replace(&mut queue.changes, Vec::with_capacity(keep)),
                lost,
            )
        };
        for (page, entered) in changes {
            visit(page, entered);
        }
        !lost
    }

    /// Visits the pages read since the last call (lossy: a busy stripe overwrites entries
    /// not drained yet, as Caffeine's read buffer drops them).
    pub fn drain_reads(&self, visit: &mut dyn FnMut(PageId)) {
        self.reads.drain(visit);
    }

    /// Value reads since a spill file was attached, and how many found their page on SSD
    /// (`NotResident`). Each miss is normally read again once fetched, so requests are about
    /// `reads - misses`. Reads of checkpoints and compaction are not counted.
    pub fn read_counts(&self) -> (u64, u64) {
        self.reads.counts()
    }

    /// Whether a spill file is attached, and whether it bypasses the page cache.
    pub fn spill_file_direct(&self) -> Option<bool> {
        self.spill.read().as_ref().map(SpillFile::is_direct)
    }

    /// Bytes the spill file holds (whole slots), 0 without one.
    pub fn spill_bytes(&self) -> u64 {
        self.spill_write().as_ref().map_or(0, SpillFile::bytes_used)
    }

    /// The spill file's counters, if one is attached.
    pub fn spill_stats(&self) -> Option<crate::tier::SpillStats> {
        self.spill_write().as_ref().map(SpillFile::stats)
    }

    /// The spill file for writing, with the slots of pages freed since (`release_spilled`)
    /// freed first.
    fn spill_write(&self) -> parking_lot::RwLockWriteGuard<'_, Option<SpillFile>> {
        let mut spill = self.spill.write();
        let pending = std::mem::take(&mut *self.slot_frees.lock());
        if let Some(file) = spill.as_mut() {
            for slot in pending {
                file.free(slot);
            }
        }
        spill
    }

    /// Where `page`'s bytes are (`None` for an id never handed out).
    pub fn residency(&self, page: PageId) -> Option<Residency> {
        self.slot(page)
            .map(|slot| Residency::decode(slot.tier.load(Ordering::Acquire)))
    }

    /// `page`'s place in its life (module docs); `None` for an id never handed out.
    pub fn page_state(&self, page: PageId) -> Option<PageState> {
        let slot = self.slot(page)?;
        let state = slot.state.load(Ordering::Acquire);
        let residency = Residency::decode(slot.tier.load(Ordering::Acquire));
        Some(if state & OPEN_BIAS != 0 {
            PageState::Open
        } else if state & PIN_BIAS != 0 {
            PageState::Busy(residency)
        } else if state == 0 {
            PageState::Free
        } else {
            PageState::Sealed(residency)
        })
    }

    /// Changes `slot`'s residency word from `from` to `to`, a transition the module docs
    /// allow. Caller holds the page's busy bit or is its last owner (release).
    fn set_residency(&self, slot: &Slot, from: Residency, to: Residency) {
        debug_assert!(from.check_transition(to), "{from:?} -> {to:?}");
        let swapped = slot.tier.compare_exchange(
            from.encode(),
            to.encode(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        debug_assert!(swapped.is_ok(), "residency changed under its owner");
    }

    /// Takes `page`'s busy bit: sealed, live, not busy, a single page. Returns its slot.
    fn make_busy(&self, page: PageId) -> Result<&Slot, StorageError> {
        let refuse = |reason| StorageError::NotSpillable {
            page: page.0,
            reason,
        };
        let slot = self.slot(page).ok_or(refuse("no such page"))?;
        slot.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                // Busy also while a writer is still copying a value into it.
                let busy = state & (OPEN_BIAS | PIN_BIAS | super::WRITERS_MASK) != 0;
                (!busy && state & super::LIVE_MASK > 0).then_some(state + PIN_BIAS)
            })
            .map_err(|_| refuse("open, busy, being written or empty"))?;
        if slot.pages.load(Ordering::Acquire) != 1 || slot.base.load(Ordering::Acquire).is_null() {
            self.unpin(page);
            return Err(refuse("part of an extent"));
        }
        Ok(slot)
    }

    /// Holds `page` busy (nothing spills, loads, pins or recycles it) until the guard drops:
    /// promotion reads a value of it from SSD and re-points its versions meanwhile, so the
    /// place it read cannot be freed and reused by another value under it.
    /// [`StorageError::NotSpillable`] if it is open, empty or busy.
    pub fn hold(&self, page: PageId) -> Result<PageHold<'_>, StorageError> {
        self.make_busy(page)?;
        Ok(PageHold { store: self, page })
    }

    /// Holds spilled page `page` busy and reads its used bytes from SSD (checked), for
    /// compaction of the spill file: its live values are copied out
    /// ([`SpilledPage::values`], [`SpilledPage::bytes`]) while nothing loads, spills or
    /// recycles it; freed values stay readable in the image. `Ok(None)` if it is not a sealed
    /// page of small values on SSD any more, or is busy.
    pub fn hold_spilled(&self, page: PageId) -> Result<Option<SpilledPage<'_>>, StorageError> {
        let Ok(hold) = self.hold(page) else {
            return Ok(None);
        };
        let Some(slot) = self.slot(page) else {
            return Ok(None);
        };
        let used = slot.used.load(Ordering::Acquire);
        if used == super::USED_DEDICATED || (used as usize) > PAGE_SIZE || used == 0 {
            return Ok(None);
        }
        let spill = self.spill.read();
        let Residency::OnSsd { slot: ssd, .. } =
            Residency::decode(slot.tier.load(Ordering::Acquire))
        else {
            return Ok(None);
        };
        let Some(file) = spill.as_ref() else {
            return Ok(None);
        };
        let image = file.read_page(ssd, page, 0, used as usize)?;
        drop(spill);
        Ok(Some(SpilledPage {
            _hold: hold,
            page,
            image,
        }))
    }

    /// Writes sealed page `page` to the spill file. From then on reads of its values fail
    /// with [`StorageError::NotResident`]; its frame stays in RAM until
    /// [`Self::release_frame`]. On error the page stays resident and nothing changes.
    pub fn spill(&self, page: PageId) -> Result<SlotId, StorageError> {
        let slot = self.make_busy(page)?;
        let result = self.spill_busy(page, slot);
        self.unpin(page);
        result
    }

    fn spill_busy(&self, page: PageId, slot: &Slot) -> Result<SlotId, StorageError> {
        let residency = Residency::decode(slot.tier.load(Ordering::Acquire));
        if residency != Residency::Resident {
            return Err(StorageError::NotSpillable {
                page: page.0,
                reason: "already on SSD",
            });
        }
        let used = match slot.used.load(Ordering::Acquire) {
            USED_DEDICATED => PAGE_SIZE,
            used => (used as usize).min(PAGE_SIZE),
        };
        let base = slot.base.load(Ordering::Acquire);
        // SAFETY: a busy single page is neither recycled nor written (it is sealed: no new
        // value goes in; a value freed meanwhile may be junk-filled in debug builds, which
        // only changes dead bytes), and its buffer is PAGE_SIZE bytes.
        let image = unsafe { std::slice::from_raw_parts(base, used) };
        let none = || StorageError::NotSpillable {
            page: page.0,
            reason: "no spill file attached",
        };
        // The file's lock is held exclusively only around the bookkeeping: across the disk
        // write it is shared, so reads of other pages (an async worker planning an io_uring
        // read takes it too) never wait for a page write.
        let reserved = self.spill_write().as_mut().ok_or_else(none)?.reserve()?;
        let written = match self.spill.read().as_ref() {
            Some(file) => file.write_reserved(&reserved, page, image),
            None => return Err(none()),
        };
        let mut spill = self.spill_write();
        let file = spill.as_mut().ok_or_else(none)?;
        let ssd = file.complete(reserved, written)?;
        let to = Residency::OnSsd {
            slot: ssd,
            frame: Frame::Held,
        };
        self.set_residency(slot, Residency::Resident, to);
        self.spilled_pages.fetch_add(1, Ordering::Relaxed);
        self.note_residency(page, false);
        Ok(ssd)
    }

    /// Gives the RAM frame of spilled page `page` back to the OS. Returns whether it did
    /// (false: not on SSD with its frame held, or busy, or freed meanwhile).
    ///
    /// # Safety
    /// No reader may still be reading the frame: every reader that checked the page resident
    /// before [`Self::spill`] marked it has finished (the caller's grace period).
    pub unsafe fn release_frame(&self, page: PageId) -> bool {
        let Ok(slot) = self.make_busy(page) else {
            return false;
        };
        let released = match Residency::decode(slot.tier.load(Ordering::Acquire)) {
            Residency::OnSsd {
                slot: ssd,
                frame: Frame::Held,
            } => {
                // SAFETY: the caller's grace period: nobody reads the frame, and nobody writes
                // it (busy, sealed); it stays mapped (a slab page).
                unsafe { os::release_memory(slot.base.load(Ordering::Acquire), PAGE_SIZE) };
                let from = Residency::OnSsd {
                    slot: ssd,
                    frame: Frame::Held,
                };
                let to = Residency::OnSsd {
                    slot: ssd,
                    frame: Frame::Released,
                };
                self.set_residency(slot, from, to);
                self.pages.fetch_sub(1, Ordering::Relaxed);
                self.frames_released.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        };
        self.unpin(page);
        released
    }

    /// Brings spilled page `page` back into RAM: its frame refilled from SSD (checked) if it
    /// was released, its SSD slot freed. A resident page is left as it is. On error (I/O,
    /// checksum) the page stays on SSD.
    pub fn load(&self, page: PageId) -> Result<(), StorageError> {
        let slot = self.make_busy(page)?;
        let result = self.load_busy(page, slot);
        self.unpin(page);
        result
    }

    fn load_busy(&self, page: PageId, slot: &Slot) -> Result<(), StorageError> {
        let from = Residency::decode(slot.tier.load(Ordering::Acquire));
        let Residency::OnSsd { slot: ssd, frame } = from else {
            return Ok(());
        };
        let missing = || SpillError::BadRange {
            slot: ssd,
            offset: 0,
            len: PAGE_SIZE,
        };
        if frame == Frame::Released {
            // Read under the shared lock (the slot is ours: the page is busy, so neither
            // freed nor spilled again meanwhile); the exclusive one only to free the slot.
            let image = match self.spill.read().as_ref() {
                Some(file) => file.read_page(ssd, page, 0, PAGE_SIZE)?,
                None => return Err(missing().into()),
            };
            let base = slot.base.load(Ordering::Acquire);
            // SAFETY: the frame is ours (busy; nobody reads it while the page is on SSD, and
            // the readers from before the spill were waited for by `release_frame`'s caller);
            // it is PAGE_SIZE bytes, still mapped; the image is PAGE_SIZE bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(image.as_ptr(), base, PAGE_SIZE.min(image.len()))
            };
            self.pages.fetch_add(1, Ordering::Relaxed);
            self.frames_released.fetch_sub(1, Ordering::Relaxed);
        }
        // Resident again (Release: the refilled bytes before the word readers check), then
        // the slot goes.
        let mut spill = self.spill_write();
        let file = spill.as_mut().ok_or_else(missing)?;
        self.set_residency(slot, from, Residency::Resident);
        file.free(ssd);
        drop(spill);
        self.spilled_pages.fetch_sub(1, Ordering::Relaxed);
        self.note_residency(page, true);
        Ok(())
    }

    /// Reads `vref`'s bytes: from RAM if its page is resident, else from SSD (only the blocks
    /// holding it, checked). Blocks the calling thread on the disk: call it off the async
    /// workers and outside any lock readers or writers wait for.
    pub fn read_cold(&self, vref: ValueRef) -> Result<Bytes, StorageError> {
        loop {
            match self.with_value_noted(vref, false, Bytes::copy_from_slice) {
                Err(StorageError::NotResident { .. }) => {}
                other => return other,
            }
            // Loaded between the two looks (`None`): read it from RAM.
            if let Some(bytes) = self.read_spilled(vref, vref.offset as usize, vref.len as usize)? {
                return Ok(Bytes::from(bytes));
            }
        }
    }

    /// `len` bytes at `start` of `vref`'s page, from SSD, or `None` if the page is in RAM.
    /// Under the spill file's read lock: the slot is not freed or reused meanwhile, and
    /// `read_page` checks it holds this page.
    fn read_spilled(
        &self,
        vref: ValueRef,
        start: usize,
        len: usize,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .read_spilled_tagged(vref, start, len)?
            .map(|(bytes, _)| bytes))
    }

    /// [`Self::read_spilled`] with the image the bytes came from (slot, write generation),
    /// both under one hold of the file's read lock.
    fn read_spilled_tagged(
        &self,
        vref: ValueRef,
        start: usize,
        len: usize,
    ) -> Result<Option<(Vec<u8>, SpilledImage)>, StorageError> {
        self.with_spilled(vref, |file, ssd| {
            let bytes = file.read_page(ssd, vref.page, start, len)?;
            let generation = file
                .generation_of(ssd, vref.page)
                .ok_or(SpillError::BadRange {
                    slot: ssd,
                    offset: start,
                    len,
                })?;
            Ok(Some((bytes, (ssd, generation))))
        })
    }

    /// Runs `f` with the spill file and the slot of `vref`'s page, under the file's read lock
    /// (so the slot is neither freed nor reused meanwhile); `Ok(None)` if the page is in RAM;
    /// [`StorageError::BadValueRef`] for a page id never handed out.
    fn with_spilled<R>(
        &self,
        vref: ValueRef,
        f: impl FnOnce(&SpillFile, SlotId) -> Result<Option<R>, StorageError>,
    ) -> Result<Option<R>, StorageError> {
        let Some(slot) = self.slot(vref.page) else {
            return Err(StorageError::BadValueRef {
                page: vref.page.0,
                offset: vref.offset,
                len: vref.len,
            });
        };
        let spill = self.spill.read();
        let Residency::OnSsd { slot: ssd, .. } =
            Residency::decode(slot.tier.load(Ordering::Acquire))
        else {
            return Ok(None);
        };
        match spill.as_ref() {
            Some(file) => f(file, ssd),
            // On SSD with no file: cannot be (a file is never detached while pages are on
            // it); an error rather than "in RAM", which `read_cold` would retry for ever.
            None => Err(SpillError::BadRange {
                slot: ssd,
                offset: vref.offset as usize,
                len: vref.len as usize,
            }
            .into()),
        }
    }

    /// Whether reading `vref` now would miss (its page is not in RAM): a probe that reads
    /// nothing and, unlike a read, is not counted by the tier's policy or hit ratio. A server
    /// asks it for the keys later commands of a pipeline will read, to fetch their values
    /// together with the first miss.
    pub fn on_ssd(&self, vref: ValueRef) -> bool {
        vref.len > 0
            && self.slot(vref.page).is_some_and(|slot| {
                matches!(
                    Residency::decode(slot.tier.load(Ordering::Acquire)),
                    Residency::OnSsd { .. }
                )
            })
    }

    /// Where `page`'s image is on SSD and its write generation: `None` unless it is on SSD.
    /// A value read from SSD while this was `(slot, generation)` still has those bytes while
    /// it still is (the page was neither loaded, freed, reused nor spilled again meanwhile):
    /// how a caller checks a copy it kept ([`ColdRead::image`]).
    pub fn spilled_image(&self, page: PageId) -> Option<(SlotId, u64)> {
        let slot = self.slot(page)?;
        let spill = self.spill.read();
        let Residency::OnSsd { slot: ssd, .. } =
            Residency::decode(slot.tier.load(Ordering::Acquire))
        else {
            return None;
        };
        let generation = spill.as_ref()?.generation_of(ssd, page)?;
        Some((ssd, generation))
    }

    /// [`Self::read_cold_owned`] in two halves, for a read made asynchronously (io_uring,
    /// [`crate::tier::Uring`]): what to read, under the spill file's lock; `Ok(None)` when
    /// the value has no header (a large value: load its page), its page is in RAM, or the
    /// file has no descriptor (a simulated disk: read it the blocking way).
    pub fn plan_cold_read(&self, vref: ValueRef) -> Result<Option<ColdPlan>, StorageError> {
        if vref.len as usize > crate::page::SMALL_VALUE_MAX_BYTES
            || (vref.offset as usize) < VALUE_HEADER_BYTES
        {
            return Ok(None);
        }
        self.with_spilled(vref, |file, ssd| {
            let start = vref.offset as usize - VALUE_HEADER_BYTES;
            let plan = file.plan_read(
                ssd,
                vref.page,
                start,
                VALUE_HEADER_BYTES + vref.len as usize,
            )?;
            Ok(plan.map(|plan| ColdPlan { vref, plan }))
        })
    }

    /// The second half of [`Self::plan_cold_read`]: checks the blocks read and returns the
    /// value with its owner tag, as [`Self::read_cold_owned`] would have. `Ok(None)` if the
    /// page's image changed since the plan (loaded, freed, written again): the caller's retry
    /// reads afresh. A checksum failure on an image that did not change is corruption.
    pub fn finish_cold_read(
        &self,
        cold: &ColdPlan,
        blocks: &[u8],
        took: std::time::Duration,
    ) -> Result<Option<ColdRead>, StorageError> {
        let vref = cold.vref;
        let Some(slot) = self.slot(vref.page) else {
            return Ok(None);
        };
        let spill = self.spill.read();
        let current = match Residency::decode(slot.tier.load(Ordering::Acquire)) {
            Residency::OnSsd { slot: ssd, .. } => spill
                .as_ref()
                .and_then(|file| file.generation_of(ssd, vref.page))
                .map(|generation| (ssd, generation)),
            Residency::Resident => None,
        };
        if current != Some(cold.plan.image()) {
            return Ok(None);
        }
        let Some(file) = spill.as_ref() else {
            return Ok(None);
        };
        let bytes = file.finish_read(&cold.plan, blocks, took)?;
        cold_read(vref, bytes, cold.plan.image()).map(Some)
    }

    /// The used bytes of page `page` read from SSD (checked) with the image they came from, for
    /// several of its values at once (a command that missed many of them); `None` if the page
    /// is not a sealed page of small values on SSD. Its values lie at their offsets in the
    /// bytes, each after its header.
    pub fn read_cold_page(
        &self,
        page: PageId,
    ) -> Result<Option<(Vec<u8>, SpilledImage)>, StorageError> {
        let Some(slot) = self.slot(page) else {
            return Ok(None);
        };
        let used = slot.used.load(Ordering::Acquire);
        if used == super::USED_DEDICATED || used == 0 || used as usize > PAGE_SIZE {
            return Ok(None);
        }
        let whole = ValueRef {
            page,
            offset: 0,
            len: used,
        };
        self.read_spilled_tagged(whole, 0, used as usize)
    }

    /// A small value of a page on SSD and its owner tag, read from SSD with its header (only
    /// the blocks holding them, checked): what promotion copies into RAM
    /// ([`Self::relocate_bytes`]), and what a read-through keeps with the image it came from.
    /// `None` for a value without a header (one larger than [`SMALL_VALUE_MAX_BYTES`], alone
    /// in its page or extent: load its page instead) or whose page is in RAM after all (read
    /// it as usual).
    pub fn read_cold_owned(&self, vref: ValueRef) -> Result<Option<ColdRead>, StorageError> {
        if vref.len as usize > crate::page::SMALL_VALUE_MAX_BYTES
            || (vref.offset as usize) < VALUE_HEADER_BYTES
        {
            return Ok(None);
        }
        let start = vref.offset as usize - VALUE_HEADER_BYTES;
        let Some((bytes, image)) =
            self.read_spilled_tagged(vref, start, VALUE_HEADER_BYTES + vref.len as usize)?
        else {
            return Ok(None);
        };
        cold_read(vref, bytes, image).map(Some)
    }

    /// For `release`: a spilled page whose last value was freed loses its SSD slot; true if
    /// its frame was released too (then it joins the released pages and the caller is done).
    pub(super) fn release_spilled(&self, page: PageId, slot: &Slot) -> bool {
        let from = Residency::decode(slot.tier.load(Ordering::Acquire));
        let Residency::OnSsd { slot: ssd, frame } = from else {
            return false;
        };
        // Not freed here: this runs inside `free`, which GC calls under the commit lock, and
        // the file's lock may be held across a page write. The next holder frees it.
        self.slot_frees.lock().push(ssd);
        self.set_residency(slot, from, Residency::Resident);
        self.spilled_pages.fetch_sub(1, Ordering::Relaxed);
        if frame == Frame::Held {
            return false;
        }
        self.frames_released.fetch_sub(1, Ordering::Relaxed);
        slot.used.store(0, Ordering::Release);
        self.released.fetch_add(1, Ordering::Relaxed);
        self.released_pages.lock().push(page);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Disk, SimDisk};
    use crate::page::PageStoreConfig;
    use crate::tier::spill::SLOT_BYTES;
    use std::path::Path;

    fn store_with_spill(slots: u64) -> (SimDisk, PageStore) {
        let store = PageStore::new(PageStoreConfig {
            open_page_shards: 1,
            ..PageStoreConfig::default()
        });
        let disk = SimDisk::new(3);
        disk.create_dir_all(Path::new("/d")).unwrap();
        let path = Path::new("/d/tier.spill");
        let (file, direct) = disk.create_direct(path).unwrap();
        assert!(store.attach_spill_file(SpillFile::new(
            file,
            path.into(),
            direct,
            slots * SLOT_BYTES as u64
        )));
        (disk, store)
    }

    /// Values filling about `pages` pages, then one more page's worth so they are sealed.
    fn fill(store: &PageStore, n: usize) -> Vec<(ValueRef, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let value: Vec<u8> = (0..1000).map(|j| (i * 7 + j) as u8).collect();
                (store.write(&value, i as u64).unwrap(), value)
            })
            .collect()
    }

    #[test]
    fn a_spilled_page_reads_from_ssd_until_loaded_and_every_transition_is_checked() {
        let (_disk, store) = store_with_spill(8);
        let values = fill(&store, 200);
        let page = values[0].0.page;
        assert_eq!(
            store.page_state(page),
            Some(PageState::Sealed(Residency::Resident))
        );
        let ssd = store.spill(page).unwrap();
        assert_eq!(
            store.residency(page),
            Some(Residency::OnSsd {
                slot: ssd,
                frame: Frame::Held
            })
        );
        assert!(store.spill(page).is_err(), "already on SSD");
        assert!(store.pin(page).is_none(), "compaction leaves it alone");
        let on_page: Vec<_> = values.iter().filter(|(r, _)| r.page == page).collect();
        for (vref, value) in &on_page {
            assert!(matches!(
                store.read(*vref),
                Err(StorageError::NotResident { .. })
            ));
            assert_eq!(&store.read_cold(*vref).unwrap()[..], &value[..]);
        }
        let before = store.stats();
        // SAFETY: no reader holds the page (this test reads through the store only).
        assert!(unsafe { store.release_frame(page) });
        assert!(!unsafe { store.release_frame(page) }, "once");
        let after = store.stats();
        assert_eq!(after.pages, before.pages - 1);
        assert_eq!(after.spilled_frames_released, 1);
        for (vref, value) in &on_page {
            assert_eq!(&store.read_cold(*vref).unwrap()[..], &value[..]);
        }
        store.load(page).unwrap();
        assert_eq!(
            store.page_state(page),
            Some(PageState::Sealed(Residency::Resident))
        );
        assert_eq!(store.stats().pages, before.pages);
        assert_eq!(store.spill_bytes(), 0, "the slot is freed");
        for (vref, value) in &on_page {
            assert_eq!(&store.read(*vref).unwrap()[..], &value[..]);
        }
        // The transitions drawn, and no others.
        let held = Residency::OnSsd {
            slot: SlotId(1),
            frame: Frame::Held,
        };
        let gone = Residency::OnSsd {
            slot: SlotId(1),
            frame: Frame::Released,
        };
        assert!(Residency::Resident.check_transition(held));
        assert!(held.check_transition(gone) && gone.check_transition(Residency::Resident));
        assert!(!Residency::Resident.check_transition(gone));
        assert!(!gone.check_transition(held));
        assert!(!held.check_transition(Residency::OnSsd {
            slot: SlotId(2),
            frame: Frame::Released
        }));
    }

    #[test]
    fn freeing_every_value_of_a_spilled_page_frees_its_slot_and_its_id() {
        let (_disk, store) = store_with_spill(8);
        let values = fill(&store, 200);
        let page = values[0].0.page;
        store.spill(page).unwrap();
        // SAFETY: as above.
        assert!(unsafe { store.release_frame(page) });
        for (vref, _) in values.iter().filter(|(r, _)| r.page == page) {
            // SAFETY: each freed once and never read again.
            unsafe { store.free(*vref).unwrap() };
        }
        let stats = store.stats();
        assert_eq!(stats.spilled_pages, 0);
        assert_eq!(stats.spilled_frames_released, 0);
        assert_eq!(store.spill_bytes(), 0);
        assert_eq!(store.page_state(page), Some(PageState::Free));
        assert_eq!(
            stats.page_ids,
            stats.pages + stats.released_pages + stats.bare_ids
        );
        // The id is reused and its frame faults back in.
        let more = fill(&store, 400);
        for (vref, value) in &more {
            assert_eq!(&store.read(*vref).unwrap()[..], &value[..]);
        }
    }

    /// Readers on other threads while pages go to SSD and back: every read returns the
    /// value's exact bytes, from RAM or from SSD, never a torn or a foreign one.
    #[test]
    fn concurrent_readers_see_exact_bytes_while_pages_spill_and_load() {
        let (_disk, store) = store_with_spill(64);
        let values = fill(&store, 2000);
        let pages: Vec<PageId> = {
            let mut p: Vec<_> = values.iter().map(|(r, _)| r.page).collect();
            p.dedup();
            p
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for t in 0..3 {
                let (store, values, stop) = (&store, &values, &stop);
                scope.spawn(move || {
                    let mut i = t;
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Relaxed) || reads < 1000 {
                        let (vref, value) = &values[i % values.len()];
                        let got = match store.read(*vref) {
                            Err(StorageError::NotResident { .. }) => store.read_cold(*vref),
                            other => other,
                        };
                        assert_eq!(&got.unwrap()[..], &value[..], "{vref:?}");
                        i += 7;
                        reads += 1;
                    }
                });
            }
            for round in 0..200 {
                let page = pages[round % pages.len()];
                if store.spill(page).is_ok() && round % 2 == 0 {
                    store.load(page).unwrap();
                }
            }
            for page in &pages {
                let _ = store.load(*page);
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert_eq!(store.stats().spilled_pages, 0);
    }

    #[test]
    fn spill_errors_leave_the_page_resident() {
        let (disk, store) = store_with_spill(1);
        let values = fill(&store, 200);
        let (a, b) = (values[0].0.page, values[70].0.page);
        assert_ne!(a, b);
        store.spill(a).unwrap();
        // The file holds one slot.
        assert!(matches!(
            store.spill(b),
            Err(StorageError::Spill(SpillError::Full { .. }))
        ));
        assert_eq!(store.residency(b), Some(Residency::Resident));
        // An I/O error on write: resident, readable.
        store.load(a).unwrap();
        disk.fail_after(crate::io::FaultOp::Write, 0, crate::io::FaultKind::Io);
        assert!(store.spill(a).is_err());
        assert_eq!(store.residency(a), Some(Residency::Resident));
        assert_eq!(&store.read(values[0].0).unwrap()[..], &values[0].1[..]);
        // Open pages and pages without a file are refused.
        let open = store.write(&[1u8; 10], 0).unwrap().page;
        assert!(matches!(
            store.spill(open),
            Err(StorageError::NotSpillable { .. })
        ));
        let plain = PageStore::new(PageStoreConfig::default());
        let v = fill(&plain, 200);
        assert!(matches!(
            plain.spill(v[0].0.page),
            Err(StorageError::NotSpillable { .. })
        ));
    }

    /// The residency changes the SSD tier follows instead of walking every page id: applied
    /// in order to the set of sealed pages in RAM, they give what a walk finds, through
    /// writes, frees (whole pages recycled), spills, loads and pins, drained at random times.
    #[test]
    fn residency_changes_replayed_match_a_walk_of_the_pages() {
        use rand::{Rng, SeedableRng};
        use std::collections::BTreeSet;
        let (_disk, store) = store_with_spill(4096);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut live: Vec<ValueRef> = Vec::new();
        let mut known: BTreeSet<u32> = BTreeSet::new();
        let mut first = true;
        let walk = |store: &PageStore| {
            let mut pages = BTreeSet::new();
            store.scan_sealed(&mut |usage| {
                pages.insert(usage.page.0);
            });
            pages
        };
        for round in 0..400 {
            for _ in 0..rng.gen_range(0..80) {
                let value = vec![round as u8; rng.gen_range(100..3000)];
                live.push(store.write(&value, round).unwrap());
            }
            for _ in 0..rng.gen_range(0..60) {
                if live.is_empty() {
                    break;
                }
                let gone = live.swap_remove(rng.gen_range(0..live.len()));
                // SAFETY: each value is freed once, and nothing reads it afterwards.
                unsafe { store.free(gone) }.unwrap();
            }
            let pages = walk(&store);
            if let Some(&page) = pages.iter().nth(rng.gen_range(0..pages.len().max(1))) {
                match rng.gen_range(0..3) {
                    0 => drop(store.spill(PageId(page))),
                    1 => {
                        // Pinned (busy) while the changes are drained: still sealed in RAM.
                        let pinned = store.pin(PageId(page));
                        let complete = store.drain_residency_changes(&mut |page, entered| {
                            if entered {
                                known.insert(page.0);
                            } else {
                                known.remove(&page.0);
                            }
                        });
                        assert!(complete || first);
                        drop(pinned);
                    }
                    _ => {}
                }
            }
            let cold = live
                .iter()
                .find(|v| store.residency(v.page) != Some(Residency::Resident));
            if let Some(spilled) = cold.filter(|_| rng.gen_bool(0.3)) {
                store.load(spilled.page).unwrap();
            }
            let complete = store.drain_residency_changes(&mut |page, entered| {
                if entered {
                    known.insert(page.0);
                } else {
                    known.remove(&page.0);
                }
            });
            if !complete {
                assert!(first, "round {round}: changes lost without an overflow");
                known = walk(&store);
            }
            first = false;
            assert_eq!(known, walk(&store), "round {round}");
        }
    }
}
