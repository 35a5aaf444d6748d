//! `kvtool replay` (point-in-time recovery into a new data directory) and `kvtool get`
//! (an offline read). Both recover into memory with `txn::durability::replay_offline` and never
//! change the source directory.

use super::{ascii, Outcome};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use storage::io::{Disk, FileDisk};
use storage::Lsn;
use txn::durability::{replay_offline, write_checkpoint_dir, OfflineReplay, ReplayUntil};
use txn::{EngineConfig, Isolation};

/// Parses `--until`: `ts:N` or a bare `N` is a commit timestamp, `lsn:N` a WAL position.
pub fn parse_until(text: &str) -> Result<ReplayUntil> {
    let (kind, number) = match text.split_once(':') {
        Some((kind, number)) => (kind, number),
        None => ("ts", text),
    };
    let n: u64 = number
        .parse()
        .with_context(|| format!("--until {text}: expected ts:N, lsn:N or N"))?;
    match kind {
        "ts" => Ok(ReplayUntil::CommitTs(n)),
        "lsn" => Ok(ReplayUntil::Lsn(Lsn(n))),
        other => bail!("--until {text}: unknown kind '{other}' (use ts:N or lsn:N)"),
    }
}

fn recover(dir: &Path, until: Option<ReplayUntil>) -> Result<OfflineReplay> {
    if !dir.is_dir() {
        bail!("{} is not a data directory", dir.display());
    }
    let disk: Arc<dyn Disk> = Arc::new(FileDisk);
    let replay = replay_offline(disk, dir, until, EngineConfig::default())
        .with_context(|| format!("recovering {}", dir.display()))?;
    if let Some(tail) = &replay.tail {
        if tail.state.action() != storage::wal::TailAction::Accept {
            eprintln!(
                "kvtool: WAL ends in a damaged tail ({}) in {} at offset {}; replayed up to it",
                tail.state,
                tail.file
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                tail.offset
            );
        }
    }
    Ok(replay)
}

/// `kvtool replay DIR [--until ..] --out DIR2`.
pub fn replay(dir: &Path, until: Option<&str>, out: &Path) -> Result<Outcome> {
    let until = until.map(parse_until).transpose()?;
    if out
        .join(storage::checkpoint::manifest::MANIFEST_FILE)
        .exists()
    {
        bail!(
            "{} already holds a data directory (MANIFEST); choose an empty one",
            out.display()
        );
    }
    let r = recover(dir, until)?;
    let next_lsn = Lsn(r.last_lsn.0 + 1);
    let keys = write_checkpoint_dir(&r.engine, Arc::new(FileDisk), out, next_lsn)
        .with_context(|| format!("writing the checkpoint into {}", out.display()))?;
    println!(
        "replayed checkpoint ts {} ({} keys) + {} WAL records up to commit ts {} (lsn {}); \
         wrote {} keys to {}",
        r.checkpoint_ts,
        r.checkpoint_keys,
        r.wal_records,
        r.last_commit_ts,
        r.last_lsn.0,
        keys,
        out.display()
    );
    Ok(Outcome::Intact)
}

/// `kvtool get DIR KEY [--db N]`: prints the value (escaped like redis-cli) and its deadline.
pub fn get(dir: &Path, key: &str, db: u8) -> Result<Outcome> {
    let r = recover(dir, None)?;
    let mut tx = r.engine.begin(Isolation::Snapshot);
    let entry = tx
        .get(db, key.as_bytes())
        .with_context(|| format!("reading {key:?} from db {db}"))?;
    match entry {
        Some(e) => {
            println!("\"{}\"", ascii(&e.value));
            if let Some(at) = e.expire_at_ms {
                println!("expires at {at} ms since the Unix epoch");
            }
        }
        None => println!("(nil)"),
    }
    Ok(Outcome::Intact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_parses_timestamps_and_lsns() {
        assert_eq!(parse_until("42").unwrap(), ReplayUntil::CommitTs(42));
        assert_eq!(parse_until("ts:7").unwrap(), ReplayUntil::CommitTs(7));
        assert_eq!(parse_until("lsn:9").unwrap(), ReplayUntil::Lsn(Lsn(9)));
        assert!(parse_until("x:1").is_err());
        assert!(parse_until("lsn:").is_err());
    }
}
