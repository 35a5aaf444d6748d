//! RENAMENX key newkey: RENAME that refuses an existing target (see `rename.rs`).
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec};

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "renamenx",
    3,
    WRITE,
    "generic",
    "Renames a key only when the target key name doesn't exist.",
)
.keys(1, 2, 1);

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    super::rename::parse_with(args, true)
}
