//! [`CheckpointWriter`]: streams a snapshot into a checkpoint file, one opaque record per key,
//! holding at most one block in memory.
//!
//! Invariant: a checkpoint becomes visible to recovery only through the MANIFEST, and the
//! MANIFEST is written only after the checkpoint is durable under its final name; an
//! interrupted checkpoint leaves at most a `.tmp` file that the next one removes.

use super::format::{
    checkpoint_file_name, is_checkpoint_file_name, BlockHeader, CheckpointFooter, CheckpointHeader,
    BLOCK_KIND_RECORDS, CHECKPOINT_VERSION, COMPRESSION_LZ4, COMPRESSION_NONE, RECORD_HEADER_LEN,
    RECORD_KIND_INLINE,
};
use super::manifest::Manifest;
use crate::error::StorageError;
use crate::io::{Disk, FileHandle};
use crate::limits::{CHECKPOINT_BLOCK_BYTES_TARGET, CHECKPOINT_RECORD_BYTES_MAX};
use crate::Lsn;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `finish` installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The installed file.
    pub path: PathBuf,
    /// The manifest now on disk.
    pub manifest: Manifest,
    /// Footer contents (counts and checksums).
    pub footer: CheckpointFooter,
    /// Checkpoint files removed because this one replaced them.
    pub removed: Vec<PathBuf>,
}

/// Writes one checkpoint. Dropping it without `finish` abandons it (the temp file is removed).
pub struct CheckpointWriter {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    tmp_path: PathBuf,
    final_path: PathBuf,
    file: Option<FileHandle>,
    offset: u64,
    block: Vec<u8>,
    block_records: u32,
    body_crc: crc32fast::Hasher,
    footer: CheckpointFooter,
    header: CheckpointHeader,
    /// The MANIFEST's consistent point (see [`Self::consistent_at`]).
    consistent: (u64, Lsn),
}

impl CheckpointWriter {
    /// Starts a checkpoint of the snapshot at `snapshot_ts`; WAL replay after loading it starts
    /// at `redo_lsn`. Writes to `ckpt-<snapshot_ts>.tkc.tmp` in `dir`.
    pub fn create(
        disk: Arc<dyn Disk>,
        dir: &Path,
        snapshot_ts: u64,
        redo_lsn: Lsn,
    ) -> Result<Self, StorageError> {
        disk.create_dir_all(dir)
            .map_err(|e| StorageError::io_at(dir, e))?;
        let name = checkpoint_file_name(snapshot_ts);
        let final_path = dir.join(&name);
        let tmp_path = dir.join(format!("{name}.tmp"));
        let file = disk
            .create(&tmp_path)
            .map_err(|e| StorageError::io_at(&tmp_path, e))?;
        let header = CheckpointHeader {
            version: CHECKPOINT_VERSION,
            snapshot_ts,
            redo_lsn,
            block_target: CHECKPOINT_BLOCK_BYTES_TARGET as u32,
        };
        let mut w = CheckpointWriter {
            disk,
            dir: dir.to_path_buf(),
            tmp_path,
            final_path,
            file: Some(file),
            offset: 0,
            block: Vec::with_capacity(CHECKPOINT_BLOCK_BYTES_TARGET + 1024),
            block_records: 0,
            body_crc: crc32fast::Hasher::new(),
            footer: CheckpointFooter::default(),
            header,
            consistent: (snapshot_ts, redo_lsn),
        };
        w.write(&header.encode())?;
        Ok(w)
    }

    /// Marks the checkpoint fuzzy: its records were read while commits went on, so only the
    /// WAL replayed through commit `ts` (every record below `lsn`) makes them an exact state.
    /// The MANIFEST records the point (for a point-in-time replay); by default it is the
    /// snapshot itself.
    pub fn consistent_at(&mut self, ts: u64, lsn: Lsn) {
        self.consistent = (ts, lsn);
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let Some(file) = &self.file else {
            return Err(StorageError::CheckpointFinished);
        };
        file.write_at(bytes, self.offset)
            .map_err(|e| StorageError::io_at(&self.tmp_path, e))?;
        self.body_crc.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Adds one record (one key's data, opaque here).
    pub fn add(&mut self, record: &[u8]) -> Result<(), StorageError> {
        if record.len() > CHECKPOINT_RECORD_BYTES_MAX {
            return Err(StorageError::RecordTooLarge {
                len: record.len(),
                max: CHECKPOINT_RECORD_BYTES_MAX,
            });
        }
        if !self.block.is_empty()
            && self.block.len() + RECORD_HEADER_LEN + record.len() > CHECKPOINT_BLOCK_BYTES_TARGET
        {
            self.flush_block()?;
        }
        self.block.push(RECORD_KIND_INLINE);
        self.block
            .extend_from_slice(&(record.len() as u32).to_le_bytes());
        self.block.extend_from_slice(record);
        self.block_records += 1;
        self.footer.record_count += 1;
        self.footer.record_bytes += record.len() as u64;
        Ok(())
    }

    fn flush_block(&mut self) -> Result<(), StorageError> {
        if self.block.is_empty() {
            return Ok(());
        }
        let raw_len = self.block.len() as u32;
        let compressed = lz4_flex::block::compress(&self.block);
        let (compression, stored) = if compressed.len() < self.block.len() {
            (COMPRESSION_LZ4, compressed)
        } else {
            (COMPRESSION_NONE, std::mem::take(&mut self.block))
        };
        let mut header = BlockHeader {
            kind: BLOCK_KIND_RECORDS,
            compression,
            record_count: self.block_records,
            raw_len,
            stored_len: stored.len() as u32,
            crc: 0,
        };
        header.crc = header.checksum(&stored);
        self.write(&header.encode())?;
        self.write(&stored)?;
        self.footer.block_count += 1;
        self.block.clear();
        self.block_records = 0;
        Ok(())
    }

    /// Completes and installs the checkpoint:
    /// 1. write the last block and the footer (counts, body checksum);
    /// 2. fdatasync the temp file;
    /// 3. rename it to `ckpt-<snapshot_ts>.tkc`;
    /// 4. fsync the directory (the new name is durable);
    /// 5. install the MANIFEST naming it (temp, fdatasync, rename, fsync dir);
    /// 6. remove older checkpoint files and stale temps, then fsync the directory.
    ///
    /// Only after this returns may WAL segments below `redo_lsn` be removed.
    pub fn finish(mut self) -> Result<CheckpointInfo, StorageError> {
        self.flush_block()?;
        self.footer.body_len = self.offset;
        self.footer.body_crc = self.body_crc.clone().finalize();
        let footer = self.footer;
        self.write(&footer.encode())?;
        let at = |p: &Path| {
            let p = p.to_path_buf();
            move |e| StorageError::io_at(p, e)
        };
        let file = self.file.take();
        if let Some(f) = &file {
            f.sync_data().map_err(at(&self.tmp_path))?;
        }
        drop(file);
        self.disk
            .rename(&self.tmp_path, &self.final_path)
            .map_err(at(&self.final_path))?;
        self.disk.sync_dir(&self.dir).map_err(at(&self.dir))?;
        let name = checkpoint_file_name(self.header.snapshot_ts);
        let manifest = Manifest {
            checkpoint: name.clone(),
            snapshot_ts: self.header.snapshot_ts,
            redo_lsn: self.header.redo_lsn,
            checkpoint_len: self.offset,
            body_crc: footer.body_crc,
            consistent_ts: self.consistent.0.max(self.header.snapshot_ts),
            consistent_lsn: self.consistent.1.max(self.header.redo_lsn),
        };
        manifest.store(self.disk.as_ref(), &self.dir)?;
        let mut removed = Vec::new();
        let names = self.disk.list(&self.dir).map_err(at(&self.dir))?;
        for old in names
            .iter()
            .filter(|n| is_checkpoint_file_name(n) && **n != name)
        {
            let p = self.dir.join(old);
            self.disk.remove(&p).map_err(at(&p))?;
            removed.push(p);
        }
        if !removed.is_empty() {
            self.disk.sync_dir(&self.dir).map_err(at(&self.dir))?;
        }
        Ok(CheckpointInfo {
            path: self.final_path.clone(),
            manifest,
            footer,
            removed,
        })
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Abandoned before `finish`: the temp file is garbage.
            let _ = self.disk.remove(&self.tmp_path);
        }
    }
}
