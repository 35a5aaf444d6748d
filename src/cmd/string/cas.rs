//! CAS key version value [...]: alias of SETVER.
use crate::cmd::spec::flags::*;
use crate::cmd::CommandSpec;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "cas",
    -4,
    WRITE | DENYOOM | FAST | READS_VALUE,
    "string",
    "Alias of SETVER: sets a key only if its version is unchanged.",
)
.keys(1, 1, 1);

pub use super::setver::parse;
