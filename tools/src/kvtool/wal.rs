//! `kvtool wal dump` and `kvtool wal verify`.

use super::{ascii, hex, json_str, Outcome};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use storage::io::{Disk, FileDisk};
use storage::wal::{TailAction, TailState, WalReader};
use storage::Lsn;

/// A server data directory keeps its segments in `wal/`; accept either directory.
fn wal_dir(path: &Path) -> std::path::PathBuf {
    let nested = path.join(txn::durability::WAL_DIR);
    if nested.is_dir() {
        nested
    } else {
        path.to_path_buf()
    }
}

fn open(path: &Path) -> Result<WalReader> {
    let disk: Arc<dyn Disk> = Arc::new(FileDisk);
    let path = &wal_dir(path);
    if path.is_dir() {
        let r = WalReader::open(disk, path, Lsn(0))?;
        if r.segments().is_empty() {
            bail!("no WAL segments (wal-<lsn>.log) in {}", path.display());
        }
        Ok(r)
    } else if path.is_file() {
        Ok(WalReader::open_file(disk, path)?)
    } else {
        bail!("{} is neither a file nor a directory", path.display());
    }
}

/// Prints every record.
pub fn dump(
    path: &Path,
    json: bool,
    payload_bytes: usize,
    limit: Option<u64>,
    raw: bool,
) -> Result<Outcome> {
    let mut reader = open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut n = 0u64;
    while let Some(rec) = reader.next_record()? {
        if limit.is_some_and(|l| n >= l) {
            return Ok(Outcome::Intact);
        }
        n += 1;
        let shown = rec.payload.get(..payload_bytes).unwrap_or(&rec.payload);
        let file = rec
            .file
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        let decoded = if raw {
            None
        } else {
            Some(txn::LogRecord::decode(&rec.payload))
        };
        if json {
            let decoded = match &decoded {
                Some(Ok(r)) => format!(",\"record\":{}", super::logrec::json(r, payload_bytes)),
                Some(Err(e)) => format!(",\"decode_error\":{}", json_str(&e.to_string())),
                None => String::new(),
            };
            println!(
                "{{\"lsn\":{},\"file\":{},\"offset\":{},\"length\":{},\"crc\":\"{:#010x}\",\"payload_hex\":\"{}\",\"truncated\":{}{}}}",
                rec.lsn.0,
                json_str(file),
                rec.offset,
                rec.payload.len(),
                rec.crc,
                hex(shown),
                shown.len() < rec.payload.len(),
                decoded
            );
        } else if let Some(Ok(r)) = &decoded {
            println!(
                "lsn={} file={} offset={} len={} crc={:#010x} {}",
                rec.lsn.0,
                file,
                rec.offset,
                rec.payload.len(),
                rec.crc,
                super::logrec::text(r, payload_bytes)
            );
        } else {
            let more = if shown.len() < rec.payload.len() {
                "…"
            } else {
                ""
            };
            println!(
                "lsn={} file={} offset={} len={} crc={:#010x} payload={}{} |{}|{}",
                rec.lsn.0,
                file,
                rec.offset,
                rec.payload.len(),
                rec.crc,
                hex(shown),
                more,
                ascii(shown),
                match &decoded {
                    Some(Err(e)) => format!(" (not a log record: {e})"),
                    _ => String::new(),
                }
            );
        }
    }
    let end = reader.end().context("reader ended without an end state")?;
    if end.tail.state == TailState::Clean {
        Ok(Outcome::Intact)
    } else {
        report_tail(end);
        Ok(Outcome::Damaged)
    }
}

fn report_tail(end: &storage::wal::WalEnd) {
    let file = end
        .tail
        .file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let what = match end.tail.state.action() {
        TailAction::Truncate => "recovery will cut the log here",
        TailAction::RemoveSegment => "recovery will remove this segment",
        TailAction::Accept | TailAction::Refuse => "",
    };
    eprintln!(
        "damaged tail: {} in {} at offset {} ({})",
        end.tail.state, file, end.tail.offset, what
    );
}

/// Checks every record of a directory.
pub fn verify(dir: &Path) -> Result<Outcome> {
    if !dir.is_dir() {
        bail!(
            "{} is not a directory (kvtool wal verify takes the data directory)",
            dir.display()
        );
    }
    let mut reader = open(dir)?;
    let segments = reader.segments().len();
    let (mut records, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None, None);
    let mut progress = super::Progress::new("verifying WAL");
    while let Some(rec) = reader.next_record().inspect_err(|_| progress.finish())? {
        records += 1;
        bytes += rec.payload.len() as u64;
        progress.tick(records, bytes);
        first.get_or_insert(rec.lsn.0);
        last = Some(rec.lsn.0);
    }
    progress.finish();
    let end = reader.end().context("reader ended without an end state")?;
    println!(
        "segments: {segments}\nrecords: {records}\npayload bytes: {bytes}\nfirst lsn: {}\nlast lsn: {}\nnext lsn: {}",
        first.map_or("-".into(), |l: u64| l.to_string()),
        last.map_or("-".into(), |l: u64| l.to_string()),
        end.next_lsn.0
    );
    // The synced mark (storage::wal::synced): a log that ends below it lost fsynced records.
    let mark = storage::wal::synced::read(&FileDisk, &wal_dir(dir));
    if let Some(mark) = mark {
        println!("synced mark: lsn {}", mark.0);
    }
    let ends_at = end.next_lsn.0.saturating_sub(1);
    if let Some(mark) = mark.filter(|m| m.0 > ends_at) {
        eprintln!(
            "kvtool: the log ends at lsn {ends_at} ({} in {} at offset {}) but records up to \
             lsn {} were fsynced: {} durable records are missing; the server refuses to start \
             on it unless wal-load-truncated is yes",
            end.tail.state,
            end.tail
                .file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            end.tail.offset,
            mark.0,
            mark.0 - ends_at
        );
        println!("status: FSYNCED RECORDS MISSING");
        return Ok(Outcome::Damaged);
    }
    if end.tail.state == TailState::Clean {
        println!("status: OK (every CRC matches)");
        Ok(Outcome::Intact)
    } else {
        report_tail(end);
        println!("status: DAMAGED TAIL");
        Ok(Outcome::Damaged)
    }
}
