//! kvtool: offline inspection of a tierkv data directory (WAL segments, checkpoints, MANIFEST).
//!
//! Exit codes: 0 = everything checked is intact, 1 = corruption found (details on stderr),
//! 2 = usage or I/O error (wrong path, foreign file, permission).

#[path = "../kvtool/mod.rs"]
mod kvtool;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Inspect and verify tierkv data files offline (the server need not run).
#[derive(Parser, Debug)]
#[command(name = "kvtool", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write-ahead log segments.
    #[command(subcommand)]
    Wal(WalCommand),
    /// Checkpoint files and the MANIFEST.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Point-in-time recovery: replay a data directory (checkpoint + WAL) up to a commit
    /// timestamp or LSN and write the result as a new data directory. DIR is not changed.
    Replay {
        /// The source data directory.
        dir: PathBuf,
        /// Stop after this point (inclusive): `ts:N` or `N` (commit timestamp), or `lsn:N`.
        /// Without it, replay everything.
        #[arg(long)]
        until: Option<String>,
        /// The new data directory (created; must not hold a MANIFEST).
        #[arg(long)]
        out: PathBuf,
    },
    /// Read one key offline from a data directory (checkpoint + WAL), as the server would
    /// recover it. Prints the value, or (nil).
    Get {
        /// The data directory.
        dir: PathBuf,
        /// The key.
        key: String,
        /// The database (SELECT index).
        #[arg(long, default_value_t = 0)]
        db: u8,
    },
}

#[derive(Subcommand, Debug)]
enum WalCommand {
    /// Print every record (LSN, file offset, length, CRC, and the transaction it holds: commit
    /// timestamp, SET/DEL/PEXPIREAT/... per key) of a segment file or of every segment in a data
    /// directory. Payloads that are not engine log records are shown as hex and ASCII.
    Dump {
        /// A `wal-<lsn>.log` segment file or a data directory.
        path: PathBuf,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Payload bytes to show per record.
        #[arg(long, default_value_t = 32)]
        payload_bytes: usize,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<u64>,
        /// Do not decode payloads as engine log records; show hex only.
        #[arg(long)]
        raw: bool,
    },
    /// Check every record's CRC and LSN order in a data directory. Prints the first bad file and
    /// offset and exits with 1 if anything is damaged (a torn tail that recovery would cut off
    /// counts: it is reported as such).
    Verify {
        /// The data directory.
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum CheckpointCommand {
    /// Show the MANIFEST and the checkpoint it names (snapshot timestamp, redo LSN, records,
    /// bytes, blocks, checksums) and verify every block, and every record as the server loads
    /// it (a key record, keys ascending). Exits with 1 on damage.
    Inspect {
        /// A data directory (uses its MANIFEST) or a `ckpt-*.tkc` file.
        path: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Wal(WalCommand::Dump {
            path,
            json,
            payload_bytes,
            limit,
            raw,
        }) => kvtool::wal::dump(&path, json, payload_bytes, limit, raw),
        Command::Wal(WalCommand::Verify { dir }) => kvtool::wal::verify(&dir),
        Command::Checkpoint(CheckpointCommand::Inspect { path, json }) => {
            kvtool::checkpoint::inspect(&path, json)
        }
        Command::Replay { dir, until, out } => kvtool::replay::replay(&dir, until.as_deref(), &out),
        Command::Get { dir, key, db } => kvtool::replay::get(&dir, &key, db),
    };
    match result {
        Ok(kvtool::Outcome::Intact) => ExitCode::SUCCESS,
        Ok(kvtool::Outcome::Damaged) => ExitCode::from(1),
        Err(e) => {
            let corrupt = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<storage::StorageError>(),
                    Some(
                        storage::StorageError::WalCorrupt { .. }
                            | storage::StorageError::CheckpointCorrupt { .. }
                            | storage::StorageError::ManifestCorrupt { .. }
                    )
                )
            });
            eprintln!("kvtool: {e:#}");
            ExitCode::from(if corrupt { 1 } else { 2 })
        }
    }
}
