//! UNLINK key [key ...]: DEL under its own name. Values are freed by the background version GC
//! in any case, so the "asynchronous" delete needs nothing DEL does not already do.
use crate::cmd::spec::flags::*;
use crate::cmd::CommandSpec;

pub use super::del::parse;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "unlink",
    -2,
    WRITE,
    "generic",
    "Asynchronously deletes one or more keys.",
)
.keys(1, -1, 1);
