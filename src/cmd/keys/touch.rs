//! TOUCH key [key ...]: counts the keys that exist, as EXISTS does. tierkv keeps no per-key
//! access time yet (OBJECT IDLETIME answers 0), so there is nothing else to update.
use crate::cmd::spec::flags::*;
use crate::cmd::CommandSpec;

pub use super::exists::parse;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new("touch", -2, READONLY | FAST, "generic", "Returns the number of existing keys out of those specified after updating the time they were last accessed.").keys(1, -1, 1);
