//! The synced mark: `wal/SYNCED`, the highest LSN an fsync of the log has covered, kept outside
//! the segments so recovery can tell a torn tail from durable records lost in the middle.
//!
//! A crash only ever tears what was not yet synced, so a log that ends below the mark lost
//! records that had been fsynced, and acknowledged under `appendfsync always`: a segment
//! truncated or overwritten by something else (a bad copy, a full restore of the wrong file, an
//! operator's `truncate`). Recovery refuses that case unless `wal-load-truncated` allows it
//! (issue #13 item 7: the server started and dropped 9 681 fsynced records with a WARN).
//!
//! Invariants:
//! - The mark is written (`pwrite`, never fsynced) only after the fsync it names returned, so
//!   its value is never above the durable log: after a power cut it may be older than the log
//!   (or unreadable, then ignored), never newer. A stale mark detects less; it never refuses a
//!   good log.
//! - Recovery rewrites the mark to where the log it accepted ends, before any new record, so a
//!   log cut on purpose (`wal-load-truncated yes`) is not reported again.
//!
//! Layout (20 bytes, little-endian):
//! ```text
//!   0..8    magic       b"TKVSYNCD"
//!   8..16   synced_lsn  u64
//!   16..20  crc32 of bytes 0..16
//! ```

use std::path::Path;

use crate::io::{read_exact_at, Disk};
use crate::Lsn;

/// File name of the mark inside the WAL directory.
pub const SYNCED_FILE: &str = "SYNCED";
/// Magic of the mark.
pub const SYNCED_MAGIC: [u8; 8] = *b"TKVSYNCD";
/// Size of the mark.
pub const SYNCED_LEN: usize = 20;

/// The mark's bytes for `lsn`.
pub fn encode(lsn: Lsn) -> [u8; SYNCED_LEN] {
    let mut b = [0u8; SYNCED_LEN];
    let (head, crc) = b.split_at_mut(16);
    let (magic, value) = head.split_at_mut(8);
    magic.copy_from_slice(&SYNCED_MAGIC);
    value.copy_from_slice(&lsn.0.to_le_bytes());
    crc.copy_from_slice(&crc32fast::hash(head).to_le_bytes());
    b
}

/// The LSN in a mark's bytes; `None` if they are not a whole, intact mark.
pub fn decode(b: &[u8]) -> Option<Lsn> {
    let b: &[u8; SYNCED_LEN] = b.get(..SYNCED_LEN)?.try_into().ok()?;
    let (head, crc) = b.split_at(16);
    let (magic, value) = head.split_at(8);
    if magic != SYNCED_MAGIC || crc32fast::hash(head).to_le_bytes() != *crc {
        return None;
    }
    Some(Lsn(u64::from_le_bytes(value.try_into().ok()?)))
}

/// The mark of the WAL in `dir`; `None` if there is none or it is damaged (a stale or lost
/// mark only means less is checked).
pub fn read(disk: &dyn Disk, dir: &Path) -> Option<Lsn> {
    let path = dir.join(SYNCED_FILE);
    if !disk.exists(&path) {
        return None;
    }
    let file = disk.open_read(&path).ok()?;
    let mut b = [0u8; SYNCED_LEN];
    read_exact_at(file.as_ref(), &mut b, 0).ok()?;
    decode(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_single_bit_flip_is_caught() {
        let b = encode(Lsn(0x0123_4567_89ab));
        assert_eq!(decode(&b), Some(Lsn(0x0123_4567_89ab)));
        for bit in 0..SYNCED_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode(&c), None, "flip of bit {bit} went unnoticed");
        }
        for cut in 0..SYNCED_LEN {
            assert_eq!(decode(&b[..cut]), None);
        }
    }
}
