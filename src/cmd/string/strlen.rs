//! STRLEN key
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
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
        // The length is in the index: a value on SSD is not read for it.
        let meta = tx
            .get_meta(cx.db, &self.key)?
            .filter(|m| m.expire_at_ms.is_none_or(|at| at > cx.now_ms));
        match meta {
            None => Ok(Frame::Integer(0)),
            Some(m) if m.kind == txn::ValueKind::String => Ok(Frame::Integer(m.len as i64)),
            Some(_) => Err(CmdError::WrongType),
        }
    }
}
