//! MSETNX key value [key value ...]: MSET that writes nothing if any key exists (see `mset.rs`).
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec};

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "msetnx",
    -3,
    WRITE | DENYOOM,
    "string",
    "Atomically creates or modifies the string values of one or more keys.",
)
.keys(1, -1, 2);

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    super::mset::parse_with(args, true)
}
