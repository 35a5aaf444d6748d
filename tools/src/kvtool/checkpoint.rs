//! `kvtool checkpoint inspect`: the storage format (header, blocks, checksums, counts, footer)
//! and then what the server's loader checks of each record: that it is a tierkv key record and
//! that keys ascend, as `txn::recovery` refuses a file otherwise.

use super::{json_str, Outcome};
use anyhow::{bail, Context, Result};
use std::path::Path;
use storage::checkpoint::{CheckpointReader, Manifest};
use storage::io::FileDisk;
use txn::durability::CheckpointEntry;

/// Shows the manifest and checkpoint, and verifies every block.
pub fn inspect(path: &Path, json: bool) -> Result<Outcome> {
    let disk = FileDisk;
    let (manifest, file) = if path.is_dir() {
        let m = Manifest::load(&disk, path)?.with_context(|| {
            format!(
                "no MANIFEST in {} (no checkpoint installed)",
                path.display()
            )
        })?;
        let f = m.checkpoint_path(path);
        (Some(m), f)
    } else if path.is_file() {
        (None, path.to_path_buf())
    } else {
        bail!("{} is neither a file nor a directory", path.display());
    };
    let reader = CheckpointReader::open(&disk, &file)?;
    let header = reader.header();
    let footer = reader.footer();
    let file_len = reader.file_len();
    // Streams every block (checksums, decompression, counts, whole-body checksum) and decodes
    // every record as the server's loader does.
    let verified = verify_with_progress(reader);
    let status = match &verified {
        Ok(_) => "OK".to_string(),
        Err(e) => format!("DAMAGED: {e}"),
    };
    let manifest_matches = manifest.as_ref().map(|m| {
        m.checkpoint_len == file_len
            && m.body_crc == footer.body_crc
            && m.snapshot_ts == header.snapshot_ts
            && m.redo_lsn == header.redo_lsn
    });
    if json {
        println!(
            "{{\"file\":{},\"version\":{},\"snapshot_ts\":{},\"redo_lsn\":{},\"consistent_ts\":{},\"consistent_lsn\":{},\"records\":{},\"record_bytes\":{},\"blocks\":{},\"page_refs\":0,\"file_bytes\":{},\"body_crc\":\"{:#010x}\",\"manifest_matches\":{},\"status\":{}}}",
            json_str(&file.display().to_string()),
            header.version,
            header.snapshot_ts,
            header.redo_lsn.0,
            manifest
                .as_ref()
                .map_or("null".to_string(), |m| m.consistent_ts.to_string()),
            manifest
                .as_ref()
                .map_or("null".to_string(), |m| m.consistent_lsn.0.to_string()),
            footer.record_count,
            footer.record_bytes,
            footer.block_count,
            file_len,
            footer.body_crc,
            manifest_matches.map_or("null".to_string(), |b| b.to_string()),
            json_str(&status)
        );
    } else {
        if let Some(m) = &manifest {
            println!(
                "manifest: {} (snapshot ts {}, redo lsn {}, matches file: {})",
                m.checkpoint,
                m.snapshot_ts,
                m.redo_lsn.0,
                if manifest_matches == Some(true) {
                    "yes"
                } else {
                    "NO"
                }
            );
            if m.consistent_lsn > m.redo_lsn {
                println!(
                    "fuzzy: exact once the WAL is replayed through commit ts {} (every record below lsn {})",
                    m.consistent_ts, m.consistent_lsn.0
                );
            } else {
                println!("exact: one snapshot at ts {}", m.snapshot_ts);
            }
        }
        println!("file: {}", file.display());
        println!("format version: {}", header.version);
        println!("snapshot ts: {}", header.snapshot_ts);
        println!("redo lsn: {}", header.redo_lsn.0);
        println!("records (keys): {}", footer.record_count);
        println!("record bytes: {}", footer.record_bytes);
        println!("blocks: {}", footer.block_count);
        println!("page references: 0 (not used by format version 1)");
        println!("file bytes: {file_len}");
        println!("body crc32: {:#010x}", footer.body_crc);
        println!("checksums: {status}");
    }
    match verified {
        Ok(_) if manifest_matches != Some(false) => Ok(Outcome::Intact),
        Ok(_) => {
            eprintln!("MANIFEST does not match {}", file.display());
            Ok(Outcome::Damaged)
        }
        Err(e) => {
            eprintln!("kvtool: {e}");
            Ok(Outcome::Damaged)
        }
    }
}

fn verify_with_progress(mut reader: CheckpointReader) -> Result<(), storage::StorageError> {
    let mut progress = super::Progress::new("verifying checkpoint");
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut last: Option<(u8, Vec<u8>)> = None;
    let result = loop {
        let problem = match reader.next_record_ref() {
            Ok(Some(r)) => {
                n += 1;
                bytes += r.len() as u64;
                progress.tick(n, bytes);
                match CheckpointEntry::decode(r) {
                    Err(e) => Some(e.reason()),
                    Ok(e)
                        if last
                            .as_ref()
                            .is_some_and(|(db, key)| (*db, key.as_slice()) >= (e.db, e.key)) =>
                    {
                        Some("entries out of (database, key) order")
                    }
                    Ok(e) => {
                        let (db, key) = last.get_or_insert_with(|| (e.db, Vec::new()));
                        *db = e.db;
                        key.clear();
                        key.extend_from_slice(e.key);
                        None
                    }
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        if let Some(reason) = problem {
            break Err(reader.record_error(reason));
        }
    };
    progress.finish();
    result
}
