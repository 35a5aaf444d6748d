//! TOUCH key [key ...]: counts the keys that exist, as EXISTS does, and records an access of
//! each (its LRU clock / LFU counter, see OBJECT IDLETIME / FREQ).
use crate::cmd::spec::flags::*;
use crate::cmd::CommandSpec;

pub use super::exists::parse_touch as parse;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new("touch", -2, READONLY | FAST, "generic", "Returns the number of existing keys out of those specified after updating the time they were last accessed.").keys(1, -1, 1);
