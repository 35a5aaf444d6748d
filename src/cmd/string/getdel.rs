//! GETDEL key
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "getdel",
    2,
    WRITE | FAST | READS_VALUE,
    "string",
    "Returns the string value of a key after deleting the key.",
)
.keys(1, 1, 1);

/// GETDEL.
pub struct GetDel {
    key: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(GetDel {
        key: args.next_bytes()?,
    }))
}

impl DataCommand for GetDel {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let old = get_string(tx, cx, &self.key)?;
        if old.is_some() {
            tx.delete(cx.db, &self.key)?;
        }
        Ok(Frame::bulk_or_null(old))
    }
}
