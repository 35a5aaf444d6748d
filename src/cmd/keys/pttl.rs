//! PTTL key (see `ttl.rs`, which serves all four TTL queries)
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec};

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "pttl",
    2,
    READONLY | FAST | COUNTS_LOOKUPS,
    "generic",
    "Returns the expiration time of a key in milliseconds.",
)
.keys(1, 1, 1);

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    super::ttl::parse_with(args, true, false)
}
