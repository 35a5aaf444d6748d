//! UNWATCH
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec};

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "unwatch",
    1,
    FAST | NOSCRIPT | LOADING | STALE,
    "transactions",
    "Forgets about watched keys of a transaction.",
);

/// Parses the arguments after the name.
pub fn parse(_args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::Unwatch)
}
