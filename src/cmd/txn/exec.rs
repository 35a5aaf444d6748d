//! EXEC
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec};

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "exec",
    1,
    TXN_CONTROL | MAY_BLOCK | NOSCRIPT | LOADING | STALE,
    "transactions",
    "Executes all commands in a transaction.",
);

/// Parses the arguments after the name.
pub fn parse(_args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::Exec)
}
