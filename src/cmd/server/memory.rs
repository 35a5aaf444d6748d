//! MEMORY USAGE key [SAMPLES count] | HELP
//!
//! USAGE says what the key costs in `used_memory`, with the engine's own accounting
//! (`txn::memory::key_bytes`): the key's index node (skip-list entry and, past 22 bytes, the
//! key's heap copy), the value's bytes in the page store (with a small value's 8-byte record
//! header) and, with a TTL, its timing-wheel entry. A value on SSD
//! counts as in RAM: it is what the key needs when hot. Old versions kept for open snapshots
//! are not the key's and are not counted. `SAMPLES` is accepted for Redis's clients; a string
//! has nothing to sample.
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::args::parse_int;
use crate::cmd::spec::flags::*;
use crate::cmd::{peek_meta, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "memory",
    -2,
    READONLY,
    "server",
    "A container for memory diagnostics commands.",
)
.keys(2, 2, 1);

/// MEMORY.
pub enum Memory {
    /// MEMORY USAGE key.
    Usage(Bytes),
    /// MEMORY HELP.
    Help,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let raw = args.next_bytes()?;
    let sub = String::from_utf8_lossy(&raw).to_ascii_uppercase();
    match sub.as_str() {
        "HELP" if args.remaining() == 0 => Ok(Command::data(Memory::Help)),
        "USAGE" if args.remaining() == 1 || args.remaining() == 3 => {
            let key = args.next_bytes()?;
            if let Some(option) = args.next_upper() {
                if option != "SAMPLES" {
                    return Err(CmdError::Syntax);
                }
                let n = parse_int(&args.next_bytes()?)?;
                if n < 0 {
                    return Err(CmdError::Syntax);
                }
            }
            Ok(Command::data(Memory::Usage(key)))
        }
        "USAGE" if args.remaining() == 0 => Err(CmdError::WrongArity("memory|usage".into())),
        "USAGE" => Err(CmdError::Syntax),
        _ => Err(CmdError::UnknownSubcommand {
            cmd: "MEMORY",
            sub: String::from_utf8_lossy(&raw).into_owned(),
        }),
    }
}

impl DataCommand for Memory {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let Memory::Usage(key) = self else {
            let lines = [
                "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
                "HELP",
                "    Print this help.",
            ];
            return Ok(Frame::help(&lines));
        };
        let Some(meta) = peek_meta(tx, cx, key)? else {
            return Ok(Frame::Null);
        };
        let bytes = txn::memory::key_bytes(key.len(), meta.len, meta.expire_at_ms.is_some());
        Ok(Frame::Integer(bytes as i64))
    }
}
