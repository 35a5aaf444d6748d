//! PSETEX key milliseconds value: SETEX with the TTL in milliseconds (see `setex.rs`).
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec};

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "psetex",
    4,
    WRITE | DENYOOM,
    "string",
    "Sets the string value and expiration time (milliseconds) of a key.",
)
.keys(1, 1, 1);

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    super::setex::parse_with(args, true)
}
