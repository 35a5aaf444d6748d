//! WATCH key [key ...]
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec};

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "watch",
    -2,
    TXN_CONTROL | FAST | NOSCRIPT | LOADING | STALE,
    "transactions",
    "Monitors changes to keys to determine the execution of a transaction.",
)
.keys(1, -1, 1);

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::Watch(args.rest()))
}
