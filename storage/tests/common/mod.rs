//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use storage::io::{Disk, SimDisk};
use storage::wal::{WalConfig, WalReader};
use storage::Lsn;

/// Records as (lsn, payload) pairs.
pub type Records = Vec<(u64, Vec<u8>)>;

/// Reads every record of the log in `dir`; returns (lsn, payload) pairs and the tail state.
pub fn read_all(
    disk: Arc<dyn Disk>,
    dir: &Path,
) -> Result<(Records, storage::wal::WalEnd), storage::StorageError> {
    let mut r = WalReader::open(disk, dir, Lsn(0))?;
    let mut out = Vec::new();
    while let Some(rec) = r.next_record()? {
        out.push((rec.lsn.0, rec.payload));
    }
    Ok((out, r.end().cloned().unwrap()))
}

/// LSNs of every frame in a segment image that is intact (test-side parser of the format).
pub fn lsns_in_image(img: &[u8]) -> Vec<u64> {
    let mut lsns = Vec::new();
    let mut off = 24;
    while off + 16 <= img.len() {
        let len = u32::from_le_bytes(img[off..off + 4].try_into().unwrap()) as usize;
        let lsn = u64::from_le_bytes(img[off + 8..off + 16].try_into().unwrap());
        if off + 16 + len > img.len() {
            break;
        }
        lsns.push(lsn);
        off += 16 + len;
    }
    lsns
}

pub fn sim(seed: u64) -> (SimDisk, Arc<dyn Disk>) {
    let d = SimDisk::new(seed);
    let a: Arc<dyn Disk> = Arc::new(d.clone());
    (d, a)
}

pub fn small_segments() -> WalConfig {
    WalConfig {
        segment_bytes: 1024,
        ..WalConfig::default()
    }
}

pub fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}
