//! STRLEN key
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "strlen",
    2,
    READONLY | FAST,
    "string",
    "Returns the length of a string value.",
)
.keys(1, 1, 1);

/// STRLEN.
pub struct StrLen {
    key: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(StrLen {
        key: args.next_bytes()?,
    }))
}

impl DataCommand for StrLen {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        Ok(Frame::Integer(
            get_string(tx, cx, &self.key)?.map_or(0, |v| v.len() as i64),
        ))
    }
}
