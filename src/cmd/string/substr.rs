//! SUBSTR key start end: Redis's old name for GETRANGE, same arguments and replies.
use crate::cmd::spec::flags::*;
use crate::cmd::CommandSpec;

pub use super::getrange::parse;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "substr",
    4,
    READONLY | READS_VALUE,
    "string",
    "Returns a substring of the string stored at a key.",
)
.keys(1, 1, 1);
