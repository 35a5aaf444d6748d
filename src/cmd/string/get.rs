//! GET key
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "get",
    2,
    READONLY | FAST,
    "string",
    "Returns the string value of a key.",
)
.keys(1, 1, 1);

/// GET.
pub struct Get {
    key: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Get {
        key: args.next_bytes()?,
    }))
}

impl DataCommand for Get {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        Ok(Frame::bulk_or_null(get_string(tx, cx, &self.key)?))
    }
}
