//! Server commands: SWAPDB COMMAND INFO CONFIG DBSIZE FLUSHDB FLUSHALL TIME LASTSAVE SAVE BGSAVE DEBUG
//! SHUTDOWN.
//!
//! Invariant: these act on the engine as a whole or on server state, except the keyspace-wide
//! FLUSHDB, FLUSHALL, SWAPDB and DBSIZE, which are data commands: they run inside the
//! transaction they are given (their own, a MULTI block's, an open `TXN`) like any other, so a
//! MULTI block containing them stays atomic.

pub mod bgsave;
pub mod command;
pub mod config;
pub mod dbsize;
pub mod debug;
pub mod flushall;
pub mod flushdb;
pub mod info;
pub mod lastsave;
pub mod latency;
pub mod memory;
pub mod save;
pub mod shutdown;
pub mod slowlog;
pub mod swapdb;
pub mod time;

use crate::cmd::{ArgCursor, CmdError};

/// Parses FLUSHDB/FLUSHALL's optional `ASYNC|SYNC`.
pub fn parse_flush_mode(mut args: ArgCursor) -> Result<(), CmdError> {
    match args.next_upper().as_deref() {
        None | Some("ASYNC") | Some("SYNC") => args.finish(),
        Some(_) => Err(CmdError::Syntax),
    }
}
