//! SETNX key value
use bytes::Bytes;
use txn::{Expiry, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "setnx",
    3,
    WRITE | DENYOOM | FAST,
    "string",
    "Set the string value of a key only when the key doesn't exist.",
)
.keys(1, 1, 1);

/// SETNX.
pub struct SetNx {
    key: Bytes,
    value: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(SetNx {
        key: args.next_bytes()?,
        value: args.next_bytes()?,
    }))
}

impl DataCommand for SetNx {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        if get_string(tx, cx, &self.key)?.is_some() {
            return Ok(Frame::Integer(0));
        }
        tx.put(cx.db, &self.key, &self.value, Expiry::Persist)?;
        Ok(Frame::Integer(1))
    }
}
