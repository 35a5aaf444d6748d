//! Checkpoint file and MANIFEST layouts, byte by byte. Keep in sync with docs/FORMATS.md
//! § "Checkpoint" and § "MANIFEST".
//!
//! Invariant: every structure carries its own crc32 and every length is checked against a limit
//! and against the bytes actually present before anything is allocated from it.
//!
//! ```text
//! File header (40 bytes)
//!   0..8    magic          b"TKVCKPT\n"
//!   8..10   version        u16 LE = 1
//!   10..12  flags          u16 LE = 0 (reserved)
//!   12..16  reserved       u32 LE = 0
//!   16..24  snapshot_ts    u64 LE  snapshot the records were read at
//!   24..32  redo_lsn       u64 LE  replay WAL records with LSN ≥ this
//!   32..36  block_target   u32 LE  uncompressed block size the writer aimed for
//!   36..40  header_crc     u32 LE  crc32(bytes 0..36)
//!
//! Block (20 + stored_len bytes, repeated)
//!   0       kind           u8  1 = records
//!   1       compression    u8  0 = none, 1 = lz4 block (lz4_flex)
//!   2..4    reserved       u16 LE = 0
//!   4..8    record_count   u32 LE
//!   8..12   raw_len        u32 LE  length after decompression
//!   12..16  stored_len     u32 LE  length of the bytes that follow
//!   16..20  block_crc      u32 LE  crc32(bytes 0..16 ‖ stored bytes)
//!   20..    stored bytes
//!
//! Record, inside a decompressed block (5 + len bytes, repeated record_count times)
//!   0       kind           u8  0 = inline bytes; 1 = reserved for a page reference
//!   1..5    len            u32 LE
//!   5..     bytes          opaque (one key's data, encoded by the engine)
//!
//! Footer (48 bytes, last in the file)
//!   0..8    magic          b"TKVCKEND"
//!   8..16   block_count    u64 LE
//!   16..24  record_count   u64 LE
//!   24..32  record_bytes   u64 LE  sum of record lengths
//!   32..40  body_len       u64 LE  bytes before the footer
//!   40..44  body_crc       u32 LE  crc32 of all bytes before the footer
//!   44..48  footer_crc     u32 LE  crc32(bytes 0..44)
//! ```

use crate::Lsn;

/// Checkpoint file magic.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"TKVCKPT\n";
/// Footer magic.
pub const FOOTER_MAGIC: [u8; 8] = *b"TKVCKEND";
/// Format version written by this build.
pub const CHECKPOINT_VERSION: u16 = 1;

const H_MAGIC: usize = 0;
const H_VERSION: usize = H_MAGIC + 8;
const H_FLAGS: usize = H_VERSION + 2;
const H_RESERVED: usize = H_FLAGS + 2;
const H_SNAPSHOT_TS: usize = H_RESERVED + 4;
const H_REDO_LSN: usize = H_SNAPSHOT_TS + 8;
const H_BLOCK_TARGET: usize = H_REDO_LSN + 8;
const H_CRC: usize = H_BLOCK_TARGET + 4;
/// Length of the file header.
pub const HEADER_LEN: usize = H_CRC + 4;

const B_KIND: usize = 0;
const B_COMPRESSION: usize = B_KIND + 1;
const B_RESERVED: usize = B_COMPRESSION + 1;
const B_RECORD_COUNT: usize = B_RESERVED + 2;
const B_RAW_LEN: usize = B_RECORD_COUNT + 4;
const B_STORED_LEN: usize = B_RAW_LEN + 4;
const B_CRC: usize = B_STORED_LEN + 4;
/// Length of a block header.
pub const BLOCK_HEADER_LEN: usize = B_CRC + 4;

/// Length of a record's header inside a block.
pub const RECORD_HEADER_LEN: usize = 5;

const F_MAGIC: usize = 0;
const F_BLOCKS: usize = F_MAGIC + 8;
const F_RECORDS: usize = F_BLOCKS + 8;
const F_RECORD_BYTES: usize = F_RECORDS + 8;
const F_BODY_LEN: usize = F_RECORD_BYTES + 8;
const F_BODY_CRC: usize = F_BODY_LEN + 8;
const F_CRC: usize = F_BODY_CRC + 4;
/// Length of the footer.
pub const FOOTER_LEN: usize = F_CRC + 4;

const _: () = assert!(HEADER_LEN == 40);
const _: () = assert!(BLOCK_HEADER_LEN == 20);
const _: () = assert!(FOOTER_LEN == 48);

/// Block kind: a block of records.
pub const BLOCK_KIND_RECORDS: u8 = 1;
/// Compression: stored as is.
pub const COMPRESSION_NONE: u8 = 0;
/// Compression: one lz4 block (lz4_flex `block` format, no size prefix).
pub const COMPRESSION_LZ4: u8 = 1;
/// Record kind: the record's bytes follow inline.
pub const RECORD_KIND_INLINE: u8 = 0;
/// Record kind reserved for the buffer pool: a reference to an already-durable page.
pub const RECORD_KIND_PAGE_REF: u8 = 1;

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// The file header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointHeader {
    /// Format version.
    pub version: u16,
    /// The snapshot the records were read at.
    pub snapshot_ts: u64,
    /// Replay the WAL from this LSN on.
    pub redo_lsn: Lsn,
    /// The writer's uncompressed block size target.
    pub block_target: u32,
}

impl CheckpointHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = Vec::with_capacity(HEADER_LEN);
        b.extend_from_slice(&CHECKPOINT_MAGIC);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.snapshot_ts.to_le_bytes());
        b.extend_from_slice(&self.redo_lsn.0.to_le_bytes());
        b.extend_from_slice(&self.block_target.to_le_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        let mut out = [0u8; HEADER_LEN];
        out.copy_from_slice(&b);
        out
    }

    /// Decodes and checks a header.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Self, crate::error::Corruption> {
        use crate::error::Corruption;
        if b.get(..8) != Some(&CHECKPOINT_MAGIC[..]) {
            return Err(Corruption::BadMagic {
                expected: "checkpoint",
            });
        }
        let stored = u32_at(b, H_CRC);
        let computed = crc32fast::hash(b.get(..H_CRC).unwrap_or_default());
        if stored != computed {
            return Err(Corruption::BadChecksum { stored, computed });
        }
        let version = u16_at(b, H_VERSION);
        if version != CHECKPOINT_VERSION {
            return Err(Corruption::UnsupportedVersion(version));
        }
        Ok(CheckpointHeader {
            version,
            snapshot_ts: u64_at(b, H_SNAPSHOT_TS),
            redo_lsn: Lsn(u64_at(b, H_REDO_LSN)),
            block_target: u32_at(b, H_BLOCK_TARGET),
        })
    }
}

/// A block header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Block kind.
    pub kind: u8,
    /// Compression of the stored bytes.
    pub compression: u8,
    /// Records in the block.
    pub record_count: u32,
    /// Length after decompression.
    pub raw_len: u32,
    /// Length of the stored bytes.
    pub stored_len: u32,
    /// crc32 over header bytes 0..16 and the stored bytes.
    pub crc: u32,
}

impl BlockHeader {
    /// The first 16 bytes (everything the CRC covers besides the stored bytes).
    pub fn prefix(&self) -> [u8; B_CRC] {
        let mut b = [0u8; B_CRC];
        b[B_KIND] = self.kind;
        b[B_COMPRESSION] = self.compression;
        b[B_RECORD_COUNT..B_RECORD_COUNT + 4].copy_from_slice(&self.record_count.to_le_bytes());
        b[B_RAW_LEN..B_RAW_LEN + 4].copy_from_slice(&self.raw_len.to_le_bytes());
        b[B_STORED_LEN..B_STORED_LEN + 4].copy_from_slice(&self.stored_len.to_le_bytes());
        b
    }

    /// The checksum of this header's prefix and `stored`.
    pub fn checksum(&self, stored: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.prefix());
        h.update(stored);
        h.finalize()
    }

    /// Encodes the header (with `self.crc`).
    pub fn encode(&self) -> [u8; BLOCK_HEADER_LEN] {
        let mut b = [0u8; BLOCK_HEADER_LEN];
        b[..B_CRC].copy_from_slice(&self.prefix());
        b[B_CRC..].copy_from_slice(&self.crc.to_le_bytes());
        b
    }

    /// Decodes the fields (checks happen in the reader, which has the stored bytes).
    pub fn decode(b: &[u8; BLOCK_HEADER_LEN]) -> Self {
        BlockHeader {
            kind: b[B_KIND],
            compression: b[B_COMPRESSION],
            record_count: u32_at(b, B_RECORD_COUNT),
            raw_len: u32_at(b, B_RAW_LEN),
            stored_len: u32_at(b, B_STORED_LEN),
            crc: u32_at(b, B_CRC),
        }
    }
}

/// The footer's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckpointFooter {
    /// Blocks in the file.
    pub block_count: u64,
    /// Records in the file.
    pub record_count: u64,
    /// Sum of record lengths.
    pub record_bytes: u64,
    /// Bytes before the footer.
    pub body_len: u64,
    /// crc32 of the bytes before the footer.
    pub body_crc: u32,
}

impl CheckpointFooter {
    /// Encodes the footer with its own CRC.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = Vec::with_capacity(FOOTER_LEN);
        b.extend_from_slice(&FOOTER_MAGIC);
        b.extend_from_slice(&self.block_count.to_le_bytes());
        b.extend_from_slice(&self.record_count.to_le_bytes());
        b.extend_from_slice(&self.record_bytes.to_le_bytes());
        b.extend_from_slice(&self.body_len.to_le_bytes());
        b.extend_from_slice(&self.body_crc.to_le_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        let mut out = [0u8; FOOTER_LEN];
        out.copy_from_slice(&b);
        out
    }

    /// Decodes and checks a footer.
    pub fn decode(b: &[u8; FOOTER_LEN]) -> Result<Self, crate::error::Corruption> {
        use crate::error::Corruption;
        if b.get(..8) != Some(&FOOTER_MAGIC[..]) {
            return Err(Corruption::BadMagic {
                expected: "checkpoint footer",
            });
        }
        let stored = u32_at(b, F_CRC);
        let computed = crc32fast::hash(b.get(..F_CRC).unwrap_or_default());
        if stored != computed {
            return Err(Corruption::BadChecksum { stored, computed });
        }
        Ok(CheckpointFooter {
            block_count: u64_at(b, F_BLOCKS),
            record_count: u64_at(b, F_RECORDS),
            record_bytes: u64_at(b, F_RECORD_BYTES),
            body_len: u64_at(b, F_BODY_LEN),
            body_crc: u32_at(b, F_BODY_CRC),
        })
    }
}

/// File name of the checkpoint taken at `snapshot_ts`.
pub fn checkpoint_file_name(snapshot_ts: u64) -> String {
    format!("ckpt-{snapshot_ts:020}.tkc")
}

/// True for names of checkpoint files and their temporaries.
pub fn is_checkpoint_file_name(name: &str) -> bool {
    name.starts_with("ckpt-") && (name.ends_with(".tkc") || name.ends_with(".tkc.tmp"))
}
