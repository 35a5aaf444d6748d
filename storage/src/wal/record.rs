//! WAL framing: the segment header and the record frame, byte by byte.
//! Keep in sync with docs/FORMATS.md § "WAL".
//!
//! Invariant: a frame is valid only if its CRC matches over (length ‖ lsn ‖ payload) and its LSN
//! is exactly one more than the previous record's; the writer encodes and the reader checks the
//! same fields through the functions in this file.
//!
//! ```text
//! Segment header (24 bytes, once per file)
//!   0..8    magic        b"TKVWAL\r\n"
//!   8..10   version      u16 LE = 1
//!   10..12  reserved     u16 LE = 0
//!   12..20  first_lsn    u64 LE  (same as the file name wal-<first_lsn:020>.log)
//!   20..24  header_crc   u32 LE  crc32(bytes 0..20)
//!
//! Record frame (16 + length bytes, repeated)
//!   0..4    length       u32 LE  payload length in bytes
//!   4..8    crc          u32 LE  crc32(bytes 0..4 ‖ bytes 8..16 ‖ payload)
//!   8..16   lsn          u64 LE
//!   16..    payload      `length` opaque bytes (one committed transaction)
//! ```
//! crc32 is CRC-32/ISO-HDLC (the zlib polynomial) as computed by `crc32fast`.

use crate::Lsn;

/// First eight bytes of every segment. The CR LF catches text-mode transfer damage.
pub const SEGMENT_MAGIC: [u8; 8] = *b"TKVWAL\r\n";
/// Format version written by this build.
pub const SEGMENT_VERSION: u16 = 1;

const SEGMENT_MAGIC_OFFSET: usize = 0;
const SEGMENT_VERSION_OFFSET: usize = SEGMENT_MAGIC_OFFSET + 8;
const SEGMENT_RESERVED_OFFSET: usize = SEGMENT_VERSION_OFFSET + 2;
const SEGMENT_FIRST_LSN_OFFSET: usize = SEGMENT_RESERVED_OFFSET + 2;
const SEGMENT_CRC_OFFSET: usize = SEGMENT_FIRST_LSN_OFFSET + 8;
/// Length of the segment header.
pub const SEGMENT_HEADER_LEN: usize = SEGMENT_CRC_OFFSET + 4;

const RECORD_LENGTH_OFFSET: usize = 0;
const RECORD_CRC_OFFSET: usize = RECORD_LENGTH_OFFSET + 4;
const RECORD_LSN_OFFSET: usize = RECORD_CRC_OFFSET + 4;
/// Length of a record frame's header; the payload starts here.
pub const RECORD_HEADER_LEN: usize = RECORD_LSN_OFFSET + 8;

const _: () = assert!(SEGMENT_HEADER_LEN == 24);
const _: () = assert!(RECORD_HEADER_LEN == 16);

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// Encodes a segment header for a segment whose first record will carry `first_lsn`.
pub fn encode_segment_header(first_lsn: Lsn) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    let mut body = Vec::with_capacity(SEGMENT_CRC_OFFSET);
    body.extend_from_slice(&SEGMENT_MAGIC);
    body.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&first_lsn.0.to_le_bytes());
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    h.copy_from_slice(&body);
    h
}

/// Why a segment header is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentHeaderError {
    /// Wrong magic: not a WAL segment.
    BadMagic,
    /// Header checksum mismatch.
    BadChecksum {
        /// Stored value.
        stored: u32,
        /// Computed value.
        computed: u32,
    },
    /// Unknown version.
    UnsupportedVersion(u16),
}

/// Decodes a segment header and returns its first LSN.
pub fn decode_segment_header(h: &[u8; SEGMENT_HEADER_LEN]) -> Result<Lsn, SegmentHeaderError> {
    if h.get(..8) != Some(&SEGMENT_MAGIC[..]) {
        return Err(SegmentHeaderError::BadMagic);
    }
    let stored = u32_at(h, SEGMENT_CRC_OFFSET);
    let computed = crc32fast::hash(h.get(..SEGMENT_CRC_OFFSET).unwrap_or_default());
    if stored != computed {
        return Err(SegmentHeaderError::BadChecksum { stored, computed });
    }
    let version = u16_at(h, SEGMENT_VERSION_OFFSET);
    if version != SEGMENT_VERSION {
        return Err(SegmentHeaderError::UnsupportedVersion(version));
    }
    Ok(Lsn(u64_at(h, SEGMENT_FIRST_LSN_OFFSET)))
}

/// The checksum of a frame: crc32 over length, lsn and payload.
pub fn frame_crc(length: u32, lsn: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&length.to_le_bytes());
    h.update(&lsn.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one record frame to `out`. The caller has checked the payload against
/// `WAL_RECORD_PAYLOAD_BYTES_MAX`, so its length fits a `u32`.
pub fn encode_frame(out: &mut Vec<u8>, lsn: Lsn, payload: &[u8]) {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = frame_crc(length, lsn.0, payload);
    out.reserve(RECORD_HEADER_LEN + payload.len());
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&lsn.0.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The fixed fields of a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub length: u32,
    /// Stored checksum.
    pub crc: u32,
    /// Stored LSN.
    pub lsn: u64,
}

/// Decodes a frame header.
pub fn decode_frame_header(h: &[u8; RECORD_HEADER_LEN]) -> FrameHeader {
    FrameHeader {
        length: u32_at(h, RECORD_LENGTH_OFFSET),
        crc: u32_at(h, RECORD_CRC_OFFSET),
        lsn: u64_at(h, RECORD_LSN_OFFSET),
    }
}

/// The segment file name for a segment starting at `first_lsn`.
pub fn segment_file_name(first_lsn: Lsn) -> String {
    format!("wal-{:020}.log", first_lsn.0)
}

/// Parses a segment file name back into its first LSN.
pub fn parse_segment_file_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Lsn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = encode_segment_header(Lsn(42));
        assert_eq!(decode_segment_header(&h), Ok(Lsn(42)));
        let mut bad = h;
        bad[0] ^= 1;
        assert_eq!(
            decode_segment_header(&bad),
            Err(SegmentHeaderError::BadMagic)
        );
        let mut bad = h;
        bad[13] ^= 1;
        assert!(matches!(
            decode_segment_header(&bad),
            Err(SegmentHeaderError::BadChecksum { .. })
        ));
    }

    #[test]
    fn frame_layout_matches_the_table() {
        let mut out = Vec::new();
        encode_frame(&mut out, Lsn(7), b"abc");
        assert_eq!(out.len(), RECORD_HEADER_LEN + 3);
        assert_eq!(&out[0..4], &3u32.to_le_bytes());
        assert_eq!(&out[8..16], &7u64.to_le_bytes());
        assert_eq!(&out[16..], b"abc");
        let h = decode_frame_header(out[..16].try_into().unwrap());
        assert_eq!(h.crc, frame_crc(3, 7, b"abc"));
    }

    #[test]
    fn names_round_trip() {
        let n = segment_file_name(Lsn(123));
        assert_eq!(n, "wal-00000000000000000123.log");
        assert_eq!(parse_segment_file_name(&n), Some(Lsn(123)));
        assert_eq!(parse_segment_file_name("wal-123.log"), None);
        assert_eq!(parse_segment_file_name("MANIFEST"), None);
    }
}
