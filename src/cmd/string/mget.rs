//! MGET key [key ...]: one snapshot across all keys
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "mget",
    -2,
    READONLY | FAST,
    "string",
    "Atomically returns the string values of one or more keys.",
)
.keys(1, -1, 1);

/// MGET.
pub struct MGet {
    keys: Vec<Bytes>,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(MGet { keys: args.rest() }))
}

impl DataCommand for MGet {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let mut out = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            out.push(Frame::bulk_or_null(get_string(tx, cx, key)?));
        }
        Ok(Frame::Array(out))
    }
}
