//! [`CheckpointReader`]: streams a checkpoint's records back, verifying every block's checksum,
//! the footer's counts and the whole-body checksum.
//!
//! Invariant: at most one block is in memory; every length is checked against the bytes
//! present and the limits before allocation; no input makes it panic.

use super::format::{
    BlockHeader, CheckpointFooter, CheckpointHeader, BLOCK_HEADER_LEN, BLOCK_KIND_RECORDS,
    COMPRESSION_LZ4, COMPRESSION_NONE, FOOTER_LEN, HEADER_LEN, RECORD_HEADER_LEN,
    RECORD_KIND_INLINE,
};
use super::manifest::Manifest;
use crate::error::{Corruption, StorageError};
use crate::io::{read_exact_at, Disk, FileHandle};
use crate::limits::CHECKPOINT_BLOCK_RAW_BYTES_MAX;
use std::path::{Path, PathBuf};

/// What a full pass over a checkpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSummary {
    /// The header.
    pub header: CheckpointHeader,
    /// The (verified) footer.
    pub footer: CheckpointFooter,
    /// File size.
    pub file_len: u64,
}

/// Reads one checkpoint file.
pub struct CheckpointReader {
    file: FileHandle,
    path: PathBuf,
    header: CheckpointHeader,
    footer: CheckpointFooter,
    file_len: u64,
    offset: u64,
    /// Offset of the block `block` was read from.
    block_at: u64,
    block: Vec<u8>,
    block_pos: usize,
    block_records_left: u32,
    blocks_seen: u64,
    records_seen: u64,
    record_bytes_seen: u64,
    body_crc: crc32fast::Hasher,
    done: bool,
    failed: bool,
}

impl CheckpointReader {
    /// Opens `path` and checks its header and footer.
    pub fn open(disk: &dyn Disk, path: &Path) -> Result<Self, StorageError> {
        let file = disk
            .open_read(path)
            .map_err(|e| StorageError::io_at(path, e))?;
        let corrupt = |offset, reason| StorageError::CheckpointCorrupt {
            file: path.to_path_buf(),
            offset,
            reason,
        };
        let file_len = file.len().map_err(|e| StorageError::io_at(path, e))?;
        if file_len < (HEADER_LEN + FOOTER_LEN) as u64 {
            let mut magic = [0u8; 8];
            let is_ours = read_exact_at(file.as_ref(), &mut magic, 0).is_ok()
                && magic == super::format::CHECKPOINT_MAGIC;
            let reason = if is_ours || file_len < 8 {
                Corruption::Truncated
            } else {
                Corruption::BadMagic {
                    expected: "checkpoint",
                }
            };
            return Err(corrupt(0, reason));
        }
        let mut h = [0u8; HEADER_LEN];
        read_exact_at(file.as_ref(), &mut h, 0).map_err(|e| StorageError::io_at(path, e))?;
        let header = CheckpointHeader::decode(&h).map_err(|r| corrupt(0, r))?;
        let footer_at = file_len - FOOTER_LEN as u64;
        let mut f = [0u8; FOOTER_LEN];
        read_exact_at(file.as_ref(), &mut f, footer_at)
            .map_err(|e| StorageError::io_at(path, e))?;
        let footer = CheckpointFooter::decode(&f).map_err(|r| corrupt(footer_at, r))?;
        if footer.body_len != footer_at {
            return Err(corrupt(
                footer_at,
                Corruption::FooterMismatch("body length differs from the file size"),
            ));
        }
        let mut body_crc = crc32fast::Hasher::new();
        body_crc.update(&h);
        Ok(CheckpointReader {
            file,
            path: path.to_path_buf(),
            header,
            footer,
            file_len,
            offset: HEADER_LEN as u64,
            block_at: HEADER_LEN as u64,
            block: Vec::new(),
            block_pos: 0,
            block_records_left: 0,
            blocks_seen: 0,
            records_seen: 0,
            record_bytes_seen: 0,
            body_crc,
            done: false,
            failed: false,
        })
    }

    /// Opens the checkpoint the MANIFEST of `dir` names; `Ok(None)` when there is no MANIFEST.
    /// Cross-checks the manifest against the file's footer.
    pub fn open_current(
        disk: &dyn Disk,
        dir: &Path,
    ) -> Result<Option<(Manifest, CheckpointReader)>, StorageError> {
        let Some(m) = Manifest::load(disk, dir)? else {
            return Ok(None);
        };
        let path = m.checkpoint_path(dir);
        let r = CheckpointReader::open(disk, &path)?;
        if r.file_len != m.checkpoint_len
            || r.footer.body_crc != m.body_crc
            || r.header.snapshot_ts != m.snapshot_ts
            || r.header.redo_lsn != m.redo_lsn
        {
            return Err(StorageError::ManifestCorrupt {
                file: dir.join(super::manifest::MANIFEST_FILE),
                reason: Corruption::FooterMismatch("MANIFEST does not match the checkpoint file"),
            });
        }
        Ok(Some((m, r)))
    }

    /// The checkpoint file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file header.
    pub fn header(&self) -> CheckpointHeader {
        self.header
    }

    /// The footer (counts as written; verified against the content by the end of the pass).
    pub fn footer(&self) -> CheckpointFooter {
        self.footer
    }

    /// File size in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    fn corrupt(&mut self, offset: u64, reason: Corruption) -> StorageError {
        self.failed = true;
        StorageError::CheckpointCorrupt {
            file: self.path.clone(),
            offset,
            reason,
        }
    }

    fn load_block(&mut self) -> Result<bool, StorageError> {
        let footer_at = self.file_len - FOOTER_LEN as u64;
        if self.offset == footer_at {
            let computed = self.body_crc.clone().finalize();
            if computed != self.footer.body_crc {
                let stored = self.footer.body_crc;
                return Err(self.corrupt(footer_at, Corruption::BadChecksum { stored, computed }));
            }
            if self.blocks_seen != self.footer.block_count
                || self.records_seen != self.footer.record_count
                || self.record_bytes_seen != self.footer.record_bytes
            {
                return Err(self.corrupt(
                    footer_at,
                    Corruption::FooterMismatch("block or record counts differ from the content"),
                ));
            }
            self.done = true;
            return Ok(false);
        }
        let at = self.offset;
        if footer_at - at < BLOCK_HEADER_LEN as u64 {
            return Err(self.corrupt(at, Corruption::Truncated));
        }
        let mut hb = [0u8; BLOCK_HEADER_LEN];
        read_exact_at(self.file.as_ref(), &mut hb, at)
            .map_err(|e| StorageError::io_at(&self.path, e))?;
        let h = BlockHeader::decode(&hb);
        let stored_len = u64::from(h.stored_len);
        if stored_len > footer_at - at - BLOCK_HEADER_LEN as u64 {
            return Err(self.corrupt(at, Corruption::BadLength(stored_len)));
        }
        // Bounded by the file's own size, checked above.
        let mut stored = vec![0u8; h.stored_len as usize];
        read_exact_at(
            self.file.as_ref(),
            &mut stored,
            at + BLOCK_HEADER_LEN as u64,
        )
        .map_err(|e| StorageError::io_at(&self.path, e))?;
        let computed = h.checksum(&stored);
        if computed != h.crc {
            return Err(self.corrupt(
                at,
                Corruption::BadChecksum {
                    stored: h.crc,
                    computed,
                },
            ));
        }
        self.body_crc.update(&hb);
        self.body_crc.update(&stored);
        if h.kind != BLOCK_KIND_RECORDS {
            return Err(self.corrupt(at, Corruption::UnknownKind(h.kind)));
        }
        if h.raw_len as usize > CHECKPOINT_BLOCK_RAW_BYTES_MAX {
            return Err(self.corrupt(at, Corruption::BadLength(u64::from(h.raw_len))));
        }
        let raw = match h.compression {
            COMPRESSION_NONE if h.raw_len == h.stored_len => stored,
            COMPRESSION_NONE => {
                return Err(self.corrupt(at, Corruption::BadLength(u64::from(h.raw_len))))
            }
            COMPRESSION_LZ4 => {
                // lz4 expands at most ~255x; a raw_len beyond that is a lie the CRC missed.
                if u64::from(h.raw_len) > stored_len.saturating_mul(255) + 16 {
                    return Err(self.corrupt(at, Corruption::BadLength(u64::from(h.raw_len))));
                }
                let mut raw = vec![0u8; h.raw_len as usize];
                match lz4_flex::block::decompress_into(&stored, &mut raw) {
                    Ok(n) if n == raw.len() => raw,
                    _ => return Err(self.corrupt(at, Corruption::Decompress)),
                }
            }
            other => return Err(self.corrupt(at, Corruption::UnknownKind(other))),
        };
        self.offset = at + BLOCK_HEADER_LEN as u64 + stored_len;
        self.block_at = at;
        self.blocks_seen += 1;
        self.block = raw;
        self.block_pos = 0;
        self.block_records_left = h.record_count;
        Ok(true)
    }

    /// The error for a record the caller cannot take, for the last record returned: names the
    /// file, the offset of the block holding it and the record's number.
    pub fn record_error(&mut self, reason: &'static str) -> StorageError {
        let index = self.records_seen.saturating_sub(1);
        self.corrupt(self.block_at, Corruption::BadRecord { index, reason })
    }

    /// The next record, `Ok(None)` after the last one (once counts and checksums matched).
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.next_record_ref()?.map(<[u8]>::to_vec))
    }

    /// [`Self::next_record`] without the copy: the record's bytes, valid until the next call.
    pub fn next_record_ref(&mut self) -> Result<Option<&[u8]>, StorageError> {
        loop {
            if self.done || self.failed {
                return Ok(None);
            }
            if self.block_records_left == 0 {
                if self.block_pos != self.block.len() {
                    let at = self.offset;
                    return Err(self.corrupt(
                        at,
                        Corruption::FooterMismatch("block holds more bytes than its records"),
                    ));
                }
                if !self.load_block()? {
                    return Ok(None);
                }
                continue;
            }
            let pos = self.block_pos;
            let Some(rh) = self.block.get(pos..pos + RECORD_HEADER_LEN) else {
                let at = self.offset;
                return Err(self.corrupt(at, Corruption::Truncated));
            };
            let kind = rh.first().copied().unwrap_or(u8::MAX);
            let len = super::format::u32_at(rh, 1) as usize;
            if kind != RECORD_KIND_INLINE {
                let at = self.offset;
                return Err(self.corrupt(at, Corruption::UnknownKind(kind)));
            }
            let start = pos + RECORD_HEADER_LEN;
            if self.block.get(start..start + len).is_none() {
                let at = self.offset;
                return Err(self.corrupt(at, Corruption::BadLength(len as u64)));
            }
            self.block_pos = start + len;
            self.block_records_left -= 1;
            self.records_seen += 1;
            self.record_bytes_seen += len as u64;
            return Ok(self.block.get(start..start + len));
        }
    }

    /// Reads every record, checking everything, and returns the summary.
    pub fn verify(mut self) -> Result<CheckpointSummary, StorageError> {
        while self.next_record()?.is_some() {}
        Ok(CheckpointSummary {
            header: self.header,
            footer: self.footer,
            file_len: self.file_len,
        })
    }
}

impl Iterator for CheckpointReader {
    type Item = Result<Vec<u8>, StorageError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}
