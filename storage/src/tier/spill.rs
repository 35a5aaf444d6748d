//! The SSD tier's file: page images in fixed slots, every block checked on every read.
//!
//! A slot is [`SLOT_BYTES`]: the 64 KiB page image, then a 4 KiB trailer naming the page, its
//! generation and the checksum of each of the image's 16 blocks (layout in docs/FORMATS.md,
//! "Spill file"). Each block's checksum is seeded with the page id and the generation, so a
//! read that returns another slot's block, a stale image of the same page or a torn write
//! fails the check and is never returned as data. The checksums are also kept in RAM (80
//! bytes per slot on SSD), so a miss for a small value reads only the 4 KiB blocks that hold
//! it (`read`), not the page nor the trailer; the trailer makes the file self-describing for
//! offline checks and for part 2 (checkpoints that reference spilled pages).
//!
//! Invariants:
//! - A slot is readable only after `write` returned `Ok` for it, and only until `free`; a
//!   slot id is reused only after `free`, with a new generation.
//! - Bytes returned by `read` passed their block's checksum for the page and generation the
//!   caller named: a mismatch is [`SpillError::Corrupt`] with the file offset, never data.
//! - I/O is positioned and aligned to [`BLOCK_BYTES`] (buffers too), so the file works under
//!   `O_DIRECT`, which keeps the OS page cache from hiding a miss's cost or escaping the
//!   memory budget ([`crate::io::Disk::create_direct`]).
//! - The file holds no durable state in part 1: it is recreated empty at start-up, and the
//!   WAL and checkpoints stay the source of truth (no `fsync` needed for correctness).

use std::io;
use std::path::PathBuf;

use crate::io::{read_exact_at, FileHandle};
use crate::page::{PageId, PAGE_SIZE};

/// The I/O unit: reads and writes are aligned to it (O_DIRECT's logical block size on NVMe
/// and most SSDs; 512-byte sectors divide it).
pub const BLOCK_BYTES: usize = 4096;
/// Blocks in a page image.
pub const BLOCKS_PER_PAGE: usize = PAGE_SIZE / BLOCK_BYTES;
/// One trailer block after the image.
pub const TRAILER_BYTES: usize = BLOCK_BYTES;
/// Bytes per slot in the file: image and trailer.
pub const SLOT_BYTES: usize = PAGE_SIZE + TRAILER_BYTES;
/// The trailer's first 8 bytes.
pub const TRAILER_MAGIC: [u8; 8] = *b"TKVSPILL";
/// The slot format's version.
pub const FORMAT_VERSION: u32 = 1;

const _: () = assert!(PAGE_SIZE.is_multiple_of(BLOCK_BYTES));
const _: () = assert!(
    BLOCKS_PER_PAGE <= 16,
    "the trailer has room for 16 checksums"
);

/// A slot of the spill file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotId(pub u32);

/// What can go wrong with the spill file.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// The disk failed (EIO, ENOSPC, a short read).
    #[error("spill file {}: {op} of slot {} (page {}) at offset {offset}: {source}", file.display(), slot.0, page.0)]
    Io {
        /// The file.
        file: PathBuf,
        /// "read" or "write".
        op: &'static str,
        /// The slot.
        slot: SlotId,
        /// The page it holds (or was to hold).
        page: PageId,
        /// Byte offset in the file.
        offset: u64,
        /// The error.
        source: io::Error,
    },
    /// A block read back does not match its checksum: corrupt, misdirected or stale.
    #[error("spill file {}: block at offset {offset} of slot {} (page {}, generation {generation}) fails its checksum", file.display(), slot.0, page.0)]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// The slot.
        slot: SlotId,
        /// The page it should hold.
        page: PageId,
        /// The generation it should hold.
        generation: u64,
        /// Byte offset of the bad block in the file.
        offset: u64,
    },
    /// A slot that holds nothing, or a range outside the page.
    #[error("spill file: slot {} range {offset}+{len} is not readable", slot.0)]
    BadRange {
        /// The slot.
        slot: SlotId,
        /// Offset in the page.
        offset: usize,
        /// Length.
        len: usize,
    },
    /// The file is at its configured size.
    #[error("spill file full: {slots} slots of {SLOT_BYTES} bytes")]
    Full {
        /// Slots the file may hold.
        slots: u32,
    },
}

/// What RAM keeps of a written slot.
#[derive(Debug, Clone, Copy)]
struct SlotMeta {
    page: PageId,
    generation: u64,
    checksums: [u32; BLOCKS_PER_PAGE],
}

/// A buffer whose usable part starts at a [`BLOCK_BYTES`] boundary (O_DIRECT needs aligned
/// memory); safe code: over-allocate and start at the first aligned byte.
pub(crate) struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn zeroed(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len + BLOCK_BYTES];
        let start = raw.as_ptr().align_offset(BLOCK_BYTES).min(BLOCK_BYTES);
        AlignedBuf { raw, start, len }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.raw
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        self.raw
            .get_mut(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

/// The seed of a block checksum: the page and generation it must belong to.
fn seed(page: PageId, generation: u64) -> u32 {
    let mixed = (u64::from(page.0) << 32 ^ generation).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 32) as u32 ^ mixed as u32
}

fn block_checksum(page: PageId, generation: u64, block: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(seed(page, generation));
    hasher.update(block);
    hasher.finalize()
}

/// The trailer of a slot (docs/FORMATS.md, "Spill file").
fn encode_trailer(out: &mut [u8], meta: &SlotMeta, used: u32) {
    let mut fields = Vec::with_capacity(100);
    fields.extend_from_slice(&TRAILER_MAGIC);
    fields.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    fields.extend_from_slice(&meta.page.0.to_le_bytes());
    fields.extend_from_slice(&meta.generation.to_le_bytes());
    fields.extend_from_slice(&used.to_le_bytes());
    fields.extend_from_slice(&(BLOCKS_PER_PAGE as u32).to_le_bytes());
    for checksum in meta.checksums {
        fields.extend_from_slice(&checksum.to_le_bytes());
    }
    let crc = crc32fast::hash(&fields);
    fields.extend_from_slice(&crc.to_le_bytes());
    if let Some(dst) = out.get_mut(..fields.len()) {
        dst.copy_from_slice(&fields);
    }
}

/// A trailer read back: (page, generation, used bytes, block checksums), or why not.
pub fn decode_trailer(trailer: &[u8]) -> Result<(PageId, u64, u32, Vec<u32>), &'static str> {
    let u32_at = |at: usize| {
        trailer
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let body_len = 32 + 4 * BLOCKS_PER_PAGE;
    let body = trailer.get(..body_len).ok_or("short trailer")?;
    if body.get(..8) != Some(&TRAILER_MAGIC[..]) {
        return Err("bad magic");
    }
    if u32_at(body_len) != Some(crc32fast::hash(body)) {
        return Err("trailer checksum mismatch");
    }
    if u32_at(8) != Some(FORMAT_VERSION) {
        return Err("unsupported version");
    }
    let page = PageId(u32_at(12).ok_or("short trailer")?);
    let generation = trailer
        .get(16..24)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or("short trailer")?;
    let used = u32_at(24).ok_or("short trailer")?;
    let checksums = (0..BLOCKS_PER_PAGE)
        .map(|i| u32_at(32 + 4 * i).ok_or("short trailer"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((page, generation, used, checksums))
}

/// Counters of the spill file, for INFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// Slots holding a page.
    pub slots_used: u32,
    /// Slots the file has grown to.
    pub slots_allocated: u32,
    /// Pages written, ever.
    pub pages_written: u64,
    /// Reads, ever, and the blocks they read.
    pub reads: u64,
    /// Blocks read, ever.
    pub blocks_read: u64,
    /// Blocks that failed their checksum, ever.
    pub corrupt_blocks: u64,
    /// Read latency (one positioned read of the blocks wanted), p50 and p99, microseconds.
    pub read_p50_us: u64,
    /// See `read_p50_us`.
    pub read_p99_us: u64,
    /// Write latency (one page image), p50 and p99, microseconds.
    pub write_p50_us: u64,
    /// See `write_p50_us`.
    pub write_p99_us: u64,
}

/// A slot taken for a page image not yet written ([`SpillFile::reserve`]); give it to
/// [`SpillFile::complete`] whatever the write's outcome.
#[derive(Debug)]
#[must_use]
pub struct Reserved {
    slot: u32,
    generation: u64,
}

/// A page image written into its reserved slot ([`SpillFile::write_reserved`]).
#[derive(Debug)]
pub struct Written(SlotMeta);

/// An asynchronous read of part of a page image ([`SpillFile::plan_read`]).
#[derive(Debug, Clone)]
pub struct ReadPlan {
    fd: i32,
    slot: SlotId,
    page: PageId,
    generation: u64,
    first: usize,
    blocks: usize,
    skip: usize,
    len: usize,
}

impl ReadPlan {
    /// The file's descriptor.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Where the blocks start in the file (4 KiB-aligned).
    pub fn file_offset(&self) -> u64 {
        SpillFile::offset(self.slot) + (self.first * BLOCK_BYTES) as u64
    }

    /// How many bytes to read (whole blocks).
    pub fn read_len(&self) -> usize {
        self.blocks * BLOCK_BYTES
    }

    /// The image it reads: (slot, write generation).
    pub fn image(&self) -> (SlotId, u64) {
        (self.slot, self.generation)
    }
}

/// The spill file (see the module docs). Not internally synchronised: the pool serialises
/// writes and frees; reads take `&self` and may run on any thread.
pub struct SpillFile {
    file: FileHandle,
    path: PathBuf,
    direct: bool,
    max_slots: u32,
    slots: Vec<Option<SlotMeta>>,
    free: Vec<u32>,
    next_generation: u64,
    stats: SpillStats,
    reads: std::sync::atomic::AtomicU64,
    blocks_read: std::sync::atomic::AtomicU64,
    corrupt_blocks: std::sync::atomic::AtomicU64,
    read_latency: super::LatencyHistogram,
    write_latency: super::LatencyHistogram,
}

impl std::fmt::Debug for SpillFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillFile")
            .field("path", &self.path)
            .field("direct", &self.direct)
            .field("stats", &self.stats())
            .finish()
    }
}

impl SpillFile {
    /// A spill file over `file` (empty; see the module invariants) at `path`, holding at most
    /// `max_bytes` (rounded down to whole slots). `direct`: whether it was opened with
    /// O_DIRECT (INFO reports it).
    pub fn new(file: FileHandle, path: PathBuf, direct: bool, max_bytes: u64) -> SpillFile {
        SpillFile {
            file,
            path,
            direct,
            max_slots: (max_bytes / SLOT_BYTES as u64).min(u64::from(u32::MAX)) as u32,
            slots: Vec::new(),
            free: Vec::new(),
            next_generation: 1,
            stats: SpillStats::default(),
            reads: Default::default(),
            blocks_read: Default::default(),
            corrupt_blocks: Default::default(),
            read_latency: Default::default(),
            write_latency: Default::default(),
        }
    }

    /// Whether reads and writes bypass the OS page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Bytes of pages held (whole slots).
    pub fn bytes_used(&self) -> u64 {
        u64::from(self.stats.slots_used) * SLOT_BYTES as u64
    }

    /// The counters.
    pub fn stats(&self) -> SpillStats {
        use std::sync::atomic::Ordering::Relaxed;
        SpillStats {
            reads: self.reads.load(Relaxed),
            blocks_read: self.blocks_read.load(Relaxed),
            corrupt_blocks: self.corrupt_blocks.load(Relaxed),
            read_p50_us: self.read_latency.percentile_us(50.0),
            read_p99_us: self.read_latency.percentile_us(99.0),
            write_p50_us: self.write_latency.percentile_us(50.0),
            write_p99_us: self.write_latency.percentile_us(99.0),
            ..self.stats
        }
    }

    fn offset(slot: SlotId) -> u64 {
        u64::from(slot.0) * SLOT_BYTES as u64
    }

    /// Writes `image` (at most a page; its first `image.len()` bytes are the page's used
    /// part) as page `page` into a free slot. On error nothing is recorded and the slot stays
    /// free: the caller keeps the page in RAM.
    pub fn write(&mut self, page: PageId, image: &[u8]) -> Result<SlotId, SpillError> {
        let reserved = self.reserve()?;
        let written = self.write_reserved(&reserved, page, image);
        self.complete(reserved, written)
    }

    /// The first of [`Self::write`]'s three steps, which let a caller hold the file's lock
    /// exclusively only around the bookkeeping, not across the disk write: takes a free slot
    /// (or grows the file by one) and a write generation. [`SpillError::Full`] at the cap.
    pub fn reserve(&mut self) -> Result<Reserved, SpillError> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if (self.slots.len() as u64) < u64::from(self.max_slots) => {
                self.slots.push(None);
                self.stats.slots_allocated += 1;
                (self.slots.len() - 1) as u32
            }
            None => {
                return Err(SpillError::Full {
                    slots: self.max_slots,
                })
            }
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        Ok(Reserved { slot, generation })
    }

    /// The second step: writes `image` (at most a page; its first `image.len()` bytes are the
    /// page's used part) as page `page` into the reserved slot, with its trailer. Shared
    /// access: readers of other slots go on meanwhile, and nobody reads this slot (it holds
    /// no page until [`Self::complete`]).
    pub fn write_reserved(
        &self,
        reserved: &Reserved,
        page: PageId,
        image: &[u8],
    ) -> Result<Written, SpillError> {
        let used = image.len().min(PAGE_SIZE);
        let generation = reserved.generation;
        let mut buf = AlignedBuf::zeroed(SLOT_BYTES);
        let bytes = buf.as_mut_slice();
        if let (Some(dst), Some(src)) = (bytes.get_mut(..used), image.get(..used)) {
            dst.copy_from_slice(src);
        }
        let mut meta = SlotMeta {
            page,
            generation,
            checksums: [0; BLOCKS_PER_PAGE],
        };
        for (i, block) in bytes.chunks(BLOCK_BYTES).take(BLOCKS_PER_PAGE).enumerate() {
            if let Some(c) = meta.checksums.get_mut(i) {
                *c = block_checksum(page, generation, block);
            }
        }
        if let Some(trailer) = bytes.get_mut(PAGE_SIZE..) {
            encode_trailer(trailer, &meta, used as u32);
        }
        let offset = Self::offset(SlotId(reserved.slot));
        let started = std::time::Instant::now();
        let written = self.file.write_at(buf.as_slice(), offset);
        self.write_latency.record(started.elapsed());
        written.map_err(|source| SpillError::Io {
            file: self.path.clone(),
            op: "write",
            slot: SlotId(reserved.slot),
            page,
            offset,
            source,
        })?;
        Ok(Written(meta))
    }

    /// The last step: records the written page in its slot, or, if the write failed, gives
    /// the slot back (nothing recorded: the caller keeps the page in RAM).
    pub fn complete(
        &mut self,
        reserved: Reserved,
        written: Result<Written, SpillError>,
    ) -> Result<SlotId, SpillError> {
        match written {
            Ok(Written(meta)) => {
                if let Some(entry) = self.slots.get_mut(reserved.slot as usize) {
                    *entry = Some(meta);
                }
                self.stats.slots_used += 1;
                self.stats.pages_written += 1;
                Ok(SlotId(reserved.slot))
            }
            Err(error) => {
                self.free.push(reserved.slot);
                Err(error)
            }
        }
    }

    /// Reads `len` bytes at `offset` of the page in `slot`: only the blocks holding them,
    /// each checked against its checksum.
    pub fn read(&self, slot: SlotId, offset: usize, len: usize) -> Result<Vec<u8>, SpillError> {
        self.read_checked(slot, None, offset, len)
    }

    /// [`Self::read`], refusing ([`SpillError::BadRange`]) unless `slot` holds `page`: a caller
    /// that found the slot through the page it wants never reads another page's bytes.
    pub fn read_page(
        &self,
        slot: SlotId,
        page: PageId,
        offset: usize,
        len: usize,
    ) -> Result<Vec<u8>, SpillError> {
        self.read_checked(slot, Some(page), offset, len)
    }

    /// What an asynchronous read of `len` bytes at `offset` of `page` in `slot` must fetch
    /// (whole 4 KiB blocks, [`ReadPlan::file_offset`], [`ReadPlan::read_len`]) and check
    /// afterwards ([`Self::finish_read`]); the same refusals as [`Self::read_page`]. `None`
    /// where the file has no descriptor (a simulated disk): read it the blocking way.
    pub fn plan_read(
        &self,
        slot: SlotId,
        page: PageId,
        offset: usize,
        len: usize,
    ) -> Result<Option<ReadPlan>, SpillError> {
        let Some(fd) = self.file.raw_fd() else {
            return Ok(None);
        };
        let (meta, first, last) = self
            .locate(slot, Some(page), offset, len)?
            .ok_or(SpillError::BadRange { slot, offset, len })?;
        Ok(Some(ReadPlan {
            fd,
            slot,
            page,
            generation: meta.generation,
            first,
            blocks: last - first + 1,
            skip: offset - first * BLOCK_BYTES,
            len,
        }))
    }

    /// Checks the blocks an asynchronous read of `plan` brought back (each against its
    /// checksum, seeded with the page and the generation planned) and returns the bytes
    /// asked for; counts the read and its time `took`. The caller makes sure `slot` still
    /// holds that image (a reused slot fails its checksums, which is corruption only if the
    /// image did not change).
    pub fn finish_read(
        &self,
        plan: &ReadPlan,
        blocks: &[u8],
        took: std::time::Duration,
    ) -> Result<Vec<u8>, SpillError> {
        use std::sync::atomic::Ordering::Relaxed;
        self.read_latency.record(took);
        self.reads.fetch_add(1, Relaxed);
        self.blocks_read.fetch_add(plan.blocks as u64, Relaxed);
        let meta = self
            .slots
            .get(plan.slot.0 as usize)
            .copied()
            .flatten()
            .filter(|meta| meta.page == plan.page && meta.generation == plan.generation)
            .ok_or(SpillError::BadRange {
                slot: plan.slot,
                offset: plan.first * BLOCK_BYTES + plan.skip,
                len: plan.len,
            })?;
        let at = plan.file_offset();
        for (i, block) in blocks.chunks(BLOCK_BYTES).take(plan.blocks).enumerate() {
            let expected = meta.checksums.get(plan.first + i).copied();
            if expected != Some(block_checksum(meta.page, meta.generation, block)) {
                self.corrupt_blocks.fetch_add(1, Relaxed);
                return Err(SpillError::Corrupt {
                    file: self.path.clone(),
                    slot: plan.slot,
                    page: meta.page,
                    generation: meta.generation,
                    offset: at + (i * BLOCK_BYTES) as u64,
                });
            }
        }
        blocks
            .get(plan.skip..plan.skip + plan.len)
            .map(<[u8]>::to_vec)
            .ok_or(SpillError::BadRange {
                slot: plan.slot,
                offset: plan.first * BLOCK_BYTES + plan.skip,
                len: plan.len,
            })
    }

    /// `slot`'s record (which must hold `page`, when named) and the first and last blocks
    /// holding `len` bytes at `offset`; `None` for `len == 0`; [`SpillError::BadRange`] for a
    /// slot that holds no such page or a range past the page.
    fn locate(
        &self,
        slot: SlotId,
        page: Option<PageId>,
        offset: usize,
        len: usize,
    ) -> Result<Option<(SlotMeta, usize, usize)>, SpillError> {
        let bad = || SpillError::BadRange { slot, offset, len };
        let meta = self
            .slots
            .get(slot.0 as usize)
            .copied()
            .flatten()
            .filter(|meta| page.is_none_or(|page| meta.page == page))
            .ok_or_else(bad)?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= PAGE_SIZE)
            .ok_or_else(bad)?;
        if len == 0 {
            return Ok(None);
        }
        Ok(Some((meta, offset / BLOCK_BYTES, (end - 1) / BLOCK_BYTES)))
    }

    fn read_checked(
        &self,
        slot: SlotId,
        page: Option<PageId>,
        offset: usize,
        len: usize,
    ) -> Result<Vec<u8>, SpillError> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some((meta, first, last)) = self.locate(slot, page, offset, len)? else {
            return Ok(Vec::new());
        };
        let blocks = last - first + 1;
        let mut buf = AlignedBuf::zeroed(blocks * BLOCK_BYTES);
        let at = Self::offset(slot) + (first * BLOCK_BYTES) as u64;
        self.reads.fetch_add(1, Relaxed);
        self.blocks_read.fetch_add(blocks as u64, Relaxed);
        let started = std::time::Instant::now();
        let read = read_exact_at(self.file.as_ref(), buf.as_mut_slice(), at);
        self.read_latency.record(started.elapsed());
        read.map_err(|source| SpillError::Io {
            file: self.path.clone(),
            op: "read",
            slot,
            page: meta.page,
            offset: at,
            source,
        })?;
        for (i, block) in buf.as_slice().chunks(BLOCK_BYTES).enumerate() {
            let expected = meta.checksums.get(first + i).copied();
            if expected != Some(block_checksum(meta.page, meta.generation, block)) {
                self.corrupt_blocks.fetch_add(1, Relaxed);
                return Err(SpillError::Corrupt {
                    file: self.path.clone(),
                    slot,
                    page: meta.page,
                    generation: meta.generation,
                    offset: at + (i * BLOCK_BYTES) as u64,
                });
            }
        }
        let skip = offset - first * BLOCK_BYTES;
        Ok(buf
            .as_slice()
            .get(skip..skip + len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default())
    }

    /// The write generation of the image of `page` in `slot`, if `slot` holds it: what a copy
    /// of bytes read from it is checked against later (an image is never rewritten in place,
    /// so the same generation means the same bytes).
    pub fn generation_of(&self, slot: SlotId, page: PageId) -> Option<u64> {
        self.slots
            .get(slot.0 as usize)
            .copied()
            .flatten()
            .filter(|meta| meta.page == page)
            .map(|meta| meta.generation)
    }

    /// Frees `slot` (its page came back to RAM or was freed). Returns whether it held one.
    pub fn free(&mut self, slot: SlotId) -> bool {
        match self.slots.get_mut(slot.0 as usize) {
            Some(entry @ Some(_)) => {
                *entry = None;
                self.free.push(slot.0);
                self.stats.slots_used -= 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Disk, FaultKind, FaultOp, FileDisk, SimDisk};
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::path::Path;

    fn image(page: u32, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u32 * 31 + page * 7) as u8).collect()
    }

    fn sim_file(max_slots: u64) -> (SimDisk, SpillFile) {
        let disk = SimDisk::new(7);
        let path = Path::new("/spill/tier.spill");
        disk.create_dir_all(Path::new("/spill")).unwrap();
        let (file, direct) = disk.create_direct(path).unwrap();
        let spill = SpillFile::new(file, path.into(), direct, max_slots * SLOT_BYTES as u64);
        (disk, spill)
    }

    #[test]
    fn reads_only_the_blocks_holding_the_range_and_returns_exact_bytes() {
        let (_disk, mut spill) = sim_file(4);
        let page = image(3, PAGE_SIZE - 100);
        let slot = spill.write(PageId(3), &page).unwrap();
        let got = spill.read(slot, 5000, 300).unwrap();
        assert_eq!(got, page[5000..5300]);
        assert_eq!(spill.stats().blocks_read, 1);
        // Straddling a block boundary: two blocks.
        let got = spill.read(slot, 4000, 200).unwrap();
        assert_eq!(got, page[4000..4200]);
        assert_eq!(spill.stats().blocks_read, 3);
        // The unused tail reads as zeros.
        assert_eq!(spill.read(slot, PAGE_SIZE - 10, 10).unwrap(), vec![0; 10]);
        assert!(matches!(
            spill.read(slot, PAGE_SIZE - 10, 11),
            Err(SpillError::BadRange { .. })
        ));
    }

    #[test]
    fn a_corrupt_misdirected_or_stale_block_is_an_error_never_data() {
        let (disk, mut spill) = sim_file(4);
        let path = Path::new("/spill/tier.spill");
        let a = spill.write(PageId(1), &image(1, PAGE_SIZE)).unwrap();
        let b = spill.write(PageId(2), &image(2, PAGE_SIZE)).unwrap();
        // Corrupt: one bit flipped in page 1's block 3.
        let mut bytes = disk.contents(path).unwrap();
        let at = SpillFile::offset(a) as usize + 3 * BLOCK_BYTES + 17;
        bytes[at] ^= 1;
        // Misdirected: page 2's block 0 holds page 1's block 0.
        let (a0, b0) = (SpillFile::offset(a) as usize, SpillFile::offset(b) as usize);
        let block: Vec<u8> = bytes[a0..a0 + BLOCK_BYTES].to_vec();
        bytes[b0..b0 + BLOCK_BYTES].copy_from_slice(&block);
        assert!(disk.set_contents(path, bytes));
        match spill.read(a, 3 * BLOCK_BYTES, 100) {
            Err(SpillError::Corrupt { offset, page, .. }) => {
                assert_eq!(offset, (a0 + 3 * BLOCK_BYTES) as u64);
                assert_eq!(page, PageId(1));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            spill.read(b, 0, 10),
            Err(SpillError::Corrupt { .. })
        ));
        // Other blocks still read.
        assert_eq!(spill.read(a, 0, 10).unwrap(), image(1, 10));
        // Stale: page 1 is freed and page 9 takes the slot; the old image read back under the
        // new generation fails.
        let old = disk.contents(path).unwrap();
        assert!(spill.free(a));
        let c = spill.write(PageId(1), &image(9, PAGE_SIZE)).unwrap();
        assert_eq!(c, a, "the slot is reused");
        assert!(disk.set_contents(path, old));
        assert!(matches!(
            spill.read(c, 0, 10),
            Err(SpillError::Corrupt { .. })
        ));
        assert_eq!(spill.stats().corrupt_blocks, 3);
    }

    #[test]
    fn write_errors_leave_the_slot_free_and_full_is_an_error() {
        let (disk, mut spill) = sim_file(2);
        disk.fail_after(FaultOp::Write, 0, FaultKind::NoSpace);
        assert!(matches!(
            spill.write(PageId(1), &image(1, 100)),
            Err(SpillError::Io { op: "write", .. })
        ));
        assert_eq!(spill.stats().slots_used, 0);
        disk.clear_faults();
        let a = spill.write(PageId(1), &image(1, 100)).unwrap();
        spill.write(PageId(2), &image(2, 100)).unwrap();
        assert!(matches!(
            spill.write(PageId(3), &image(3, 100)),
            Err(SpillError::Full { slots: 2 })
        ));
        assert!(spill.free(a));
        assert!(!spill.free(a), "freed once");
        assert!(spill.read(a, 0, 1).is_err(), "a freed slot reads nothing");
        spill.write(PageId(3), &image(3, 100)).unwrap();
    }

    #[test]
    fn the_trailer_names_the_page_and_its_checksums() {
        let (disk, mut spill) = sim_file(2);
        let slot = spill.write(PageId(42), &image(42, 1000)).unwrap();
        let bytes = disk.contents(Path::new("/spill/tier.spill")).unwrap();
        let start = SpillFile::offset(slot) as usize + PAGE_SIZE;
        let (page, generation, used, checksums) =
            decode_trailer(&bytes[start..start + TRAILER_BYTES]).unwrap();
        assert_eq!((page, generation, used), (PageId(42), 1, 1000));
        assert_eq!(checksums.len(), BLOCKS_PER_PAGE);
        let mut damaged = bytes[start..start + TRAILER_BYTES].to_vec();
        damaged[13] ^= 1;
        assert_eq!(decode_trailer(&damaged), Err("trailer checksum mismatch"));
    }

    /// The real file system, with O_DIRECT where it is supported (not on tmpfs).
    #[test]
    fn round_trips_through_the_real_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tier.spill");
        let (file, direct) = FileDisk.create_direct(&path).unwrap();
        let mut spill = SpillFile::new(file, path, direct, 8 * SLOT_BYTES as u64);
        let page = image(5, PAGE_SIZE);
        let slot = spill.write(PageId(5), &page).unwrap();
        assert_eq!(
            spill.read(slot, 12_345, 9_000).unwrap(),
            page[12_345..21_345]
        );
    }

    proptest! {
        /// Against a model (page id -> image): whatever is written, freed and read in any
        /// order, a read returns exactly the bytes written to that slot.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((0u8..3, 0u32..6, 0usize..PAGE_SIZE, 0usize..20_000), 1..60)) {
            let (_disk, mut spill) = sim_file(4);
            let mut model: HashMap<SlotId, Vec<u8>> = HashMap::new();
            for (op, page, offset, len) in ops {
                match op {
                    0 => match spill.write(PageId(page), &image(page, offset)) {
                        Ok(slot) => {
                            let mut full = image(page, offset);
                            full.resize(PAGE_SIZE, 0);
                            prop_assert!(model.insert(slot, full).is_none());
                        }
                        Err(SpillError::Full { .. }) => prop_assert_eq!(model.len(), 4),
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    },
                    1 => {
                        let slot = SlotId(page % 4);
                        prop_assert_eq!(spill.free(slot), model.remove(&slot).is_some());
                    }
                    _ => {
                        let slot = SlotId(page % 4);
                        let len = len.min(PAGE_SIZE - offset);
                        match (spill.read(slot, offset, len), model.get(&slot)) {
                            (Ok(got), Some(want)) => prop_assert_eq!(&got[..], &want[offset..offset + len]),
                            (Err(SpillError::BadRange { .. }), None) => {}
                            (got, want) => return Err(TestCaseError::fail(format!("{got:?} vs {}", want.is_some()))),
                        }
                    }
                }
            }
        }
    }
}
