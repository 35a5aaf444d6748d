//! DISCARD
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec};

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "discard",
    1,
    TXN_CONTROL | FAST | NOSCRIPT | LOADING | STALE,
    "transactions",
    "Discards a transaction.",
);

/// Parses the arguments after the name.
pub fn parse(_args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::Discard)
}
