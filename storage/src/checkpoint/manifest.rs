//! The MANIFEST: names the installed checkpoint and its redo LSN. Replaced atomically.
//!
//! Invariant: the MANIFEST on disk is always either the previous complete one or the new
//! complete one, never a mix (temp file, fsync, rename, fsync of the directory), and it is
//! only ever written after the checkpoint it names is durable under its final name.
//!
//! ```text
//!   0..8    magic            b"TKVMANIF"
//!   8..10   version          u16 LE = 2 (1 is read too: it has no consistent_ts/lsn)
//!   10..12  name_len         u16 LE  (≤ 255)
//!   12..20  snapshot_ts      u64 LE
//!   20..28  redo_lsn         u64 LE
//!   28..36  checkpoint_len   u64 LE  size of the checkpoint file
//!   36..40  body_crc         u32 LE  the checkpoint footer's body_crc (cross-check)
//!   40..48  consistent_ts    u64 LE  (version 2) replay through this commit ts to be exact
//!   48..56  consistent_lsn   u64 LE  (version 2) the LSN after that commit's record
//!   56..56+name_len          checkpoint file name, UTF-8, no directory (at 40 in version 1)
//!   then    manifest_crc     u32 LE  crc32 of every byte before it
//! ```

use super::format::{u16_at, u32_at, u64_at};
use crate::error::{Corruption, StorageError};
use crate::io::{read_exact_at, Disk};
use crate::limits::{MANIFEST_BYTES_MAX, MANIFEST_NAME_BYTES_MAX};
use crate::Lsn;
use std::path::{Path, PathBuf};

/// MANIFEST magic.
pub const MANIFEST_MAGIC: [u8; 8] = *b"TKVMANIF";
/// MANIFEST format version (written; version 1 is read too).
pub const MANIFEST_VERSION: u16 = 2;
/// The first MANIFEST version, without `consistent_ts` / `consistent_lsn`.
const MANIFEST_VERSION_1: u16 = 1;
/// File name of the manifest in the data directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
const MANIFEST_TMP_FILE: &str = "MANIFEST.tmp";
/// Bytes before the name: version 1, version 2.
const FIXED_LEN_V1: usize = 40;
const FIXED_LEN: usize = 56;

/// The installed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Checkpoint file name (inside the data directory).
    pub checkpoint: String,
    /// Its snapshot timestamp.
    pub snapshot_ts: u64,
    /// Replay WAL records with LSN ≥ this.
    pub redo_lsn: Lsn,
    /// Size of the checkpoint file.
    pub checkpoint_len: u64,
    /// The checkpoint footer's body checksum.
    pub body_crc: u32,
    /// The checkpoint plus the WAL records through this commit timestamp is an exact state;
    /// before it, a fuzzy checkpoint's keys may hold newer values than the replay reached
    /// (`snapshot_ts` for an exact checkpoint, and for a version-1 MANIFEST).
    pub consistent_ts: u64,
    /// The LSN after the record of `consistent_ts`: replaying every record below it reaches
    /// an exact state (`redo_lsn` for an exact checkpoint).
    pub consistent_lsn: Lsn,
}

impl Manifest {
    /// Encodes the manifest.
    pub fn encode(&self) -> Vec<u8> {
        let name = self.checkpoint.as_bytes();
        let name = name.get(..MANIFEST_NAME_BYTES_MAX).unwrap_or(name);
        let mut b = Vec::with_capacity(FIXED_LEN + name.len() + 4);
        b.extend_from_slice(&MANIFEST_MAGIC);
        b.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        b.extend_from_slice(&(name.len() as u16).to_le_bytes());
        b.extend_from_slice(&self.snapshot_ts.to_le_bytes());
        b.extend_from_slice(&self.redo_lsn.0.to_le_bytes());
        b.extend_from_slice(&self.checkpoint_len.to_le_bytes());
        b.extend_from_slice(&self.body_crc.to_le_bytes());
        b.extend_from_slice(&self.consistent_ts.to_le_bytes());
        b.extend_from_slice(&self.consistent_lsn.0.to_le_bytes());
        b.extend_from_slice(name);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a manifest.
    pub fn decode(b: &[u8]) -> Result<Self, Corruption> {
        if b.get(..8) != Some(&MANIFEST_MAGIC[..]) {
            return Err(Corruption::BadMagic {
                expected: "MANIFEST",
            });
        }
        if b.len() < FIXED_LEN_V1 + 4 {
            return Err(Corruption::Truncated);
        }
        let version = u16_at(b, 8);
        let fixed = match version {
            MANIFEST_VERSION => FIXED_LEN,
            MANIFEST_VERSION_1 => FIXED_LEN_V1,
            // Checked against the CRC first: a flipped version bit is corruption.
            _ => FIXED_LEN,
        };
        let name_len = usize::from(u16_at(b, 10));
        if name_len > MANIFEST_NAME_BYTES_MAX || b.len() != fixed + name_len + 4 {
            return Err(Corruption::BadLength(name_len as u64));
        }
        let body = b.get(..fixed + name_len).unwrap_or_default();
        let stored = u32_at(b, fixed + name_len);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(Corruption::BadChecksum { stored, computed });
        }
        if version != MANIFEST_VERSION && version != MANIFEST_VERSION_1 {
            return Err(Corruption::UnsupportedVersion(version));
        }
        let name = body.get(fixed..).unwrap_or_default();
        let checkpoint = std::str::from_utf8(name)
            .map_err(|_| Corruption::BadLength(name_len as u64))?
            .to_owned();
        if checkpoint.contains('/') || checkpoint.is_empty() {
            return Err(Corruption::BadLength(name_len as u64));
        }
        let (snapshot_ts, redo_lsn) = (u64_at(b, 12), Lsn(u64_at(b, 20)));
        let (consistent_ts, consistent_lsn) = if version == MANIFEST_VERSION_1 {
            (snapshot_ts, redo_lsn)
        } else {
            (u64_at(b, 40), Lsn(u64_at(b, 48)))
        };
        if consistent_ts < snapshot_ts || consistent_lsn < redo_lsn {
            return Err(Corruption::ConsistentBeforeSnapshot {
                ts: consistent_ts,
                lsn: consistent_lsn.0,
                snapshot_ts,
                redo_lsn: redo_lsn.0,
            });
        }
        Ok(Manifest {
            checkpoint,
            snapshot_ts,
            redo_lsn,
            checkpoint_len: u64_at(b, 28),
            body_crc: u32_at(b, 36),
            consistent_ts,
            consistent_lsn,
        })
    }

    /// Loads the MANIFEST of `dir`; `Ok(None)` if there is none (a fresh directory).
    pub fn load(disk: &dyn Disk, dir: &Path) -> Result<Option<Manifest>, StorageError> {
        let path = dir.join(MANIFEST_FILE);
        if !disk.exists(&path) {
            return Ok(None);
        }
        let file = disk
            .open_read(&path)
            .map_err(|e| StorageError::io_at(&path, e))?;
        let len = file.len().map_err(|e| StorageError::io_at(&path, e))?;
        if len > MANIFEST_BYTES_MAX as u64 {
            return Err(StorageError::ManifestCorrupt {
                file: path,
                reason: Corruption::BadLength(len),
            });
        }
        let mut buf = vec![0u8; len as usize];
        read_exact_at(file.as_ref(), &mut buf, 0).map_err(|e| StorageError::io_at(&path, e))?;
        Manifest::decode(&buf)
            .map(Some)
            .map_err(|reason| StorageError::ManifestCorrupt { file: path, reason })
    }

    /// Path of the named checkpoint in `dir`.
    pub fn checkpoint_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.checkpoint)
    }

    /// Installs this manifest atomically:
    /// 1. write `MANIFEST.tmp`; 2. fdatasync it; 3. rename over `MANIFEST`;
    /// 4. fsync the directory.
    pub fn store(&self, disk: &dyn Disk, dir: &Path) -> Result<(), StorageError> {
        let tmp = dir.join(MANIFEST_TMP_FILE);
        let path = dir.join(MANIFEST_FILE);
        let at = |p: &Path| {
            let p = p.to_path_buf();
            move |e| StorageError::io_at(p, e)
        };
        let f = disk.create(&tmp).map_err(at(&tmp))?;
        f.write_at(&self.encode(), 0).map_err(at(&tmp))?;
        f.sync_data().map_err(at(&tmp))?;
        disk.rename(&tmp, &path).map_err(at(&path))?;
        disk.sync_dir(dir).map_err(at(dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_single_bit_flip_is_caught() {
        let m = Manifest {
            checkpoint: "ckpt-00000000000000000007.tkc".into(),
            snapshot_ts: 7,
            redo_lsn: Lsn(99),
            checkpoint_len: 1234,
            body_crc: 0xdead_beef,
            consistent_ts: 9,
            consistent_lsn: Lsn(120),
        };
        let b = m.encode();
        assert_eq!(Manifest::decode(&b), Ok(m));
        for bit in 0..b.len() * 8 {
            let mut c = b.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(
                Manifest::decode(&c).is_err(),
                "flip of bit {bit} went unnoticed"
            );
        }
        for cut in 0..b.len() {
            assert!(Manifest::decode(&b[..cut]).is_err());
        }
    }

    #[test]
    fn a_version_1_manifest_reads_as_an_exact_checkpoint() {
        // Version 1's layout by hand: no consistent_ts / consistent_lsn, the name at 40.
        let name = b"ckpt-00000000000000000007.tkc";
        let mut b = Vec::new();
        b.extend_from_slice(&MANIFEST_MAGIC);
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&(name.len() as u16).to_le_bytes());
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&99u64.to_le_bytes());
        b.extend_from_slice(&1234u64.to_le_bytes());
        b.extend_from_slice(&0xdead_beefu32.to_le_bytes());
        b.extend_from_slice(name);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        let m = Manifest::decode(&b).expect("version 1 reads");
        assert_eq!((m.snapshot_ts, m.redo_lsn), (7, Lsn(99)));
        assert_eq!((m.consistent_ts, m.consistent_lsn), (7, Lsn(99)));
        assert_eq!(m.checkpoint, "ckpt-00000000000000000007.tkc");
    }

    #[test]
    fn a_consistent_point_before_the_snapshot_is_refused() {
        let m = Manifest {
            checkpoint: "ckpt-00000000000000000007.tkc".into(),
            snapshot_ts: 7,
            redo_lsn: Lsn(99),
            checkpoint_len: 1234,
            body_crc: 1,
            consistent_ts: 6,
            consistent_lsn: Lsn(99),
        };
        assert!(Manifest::decode(&m.encode()).is_err());
    }
}
