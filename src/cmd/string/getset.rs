//! GETSET key value
use bytes::Bytes;
use txn::{Expiry, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "getset",
    3,
    WRITE | DENYOOM | FAST | READS_VALUE,
    "string",
    "Returns the previous string value of a key after setting it to a new value.",
)
.keys(1, 1, 1);

/// GETSET.
pub struct GetSet {
    key: Bytes,
    value: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(GetSet {
        key: args.next_bytes()?,
        value: args.next_bytes()?,
    }))
}

impl DataCommand for GetSet {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let old = get_string(tx, cx, &self.key)?;
        tx.put(cx.db, &self.key, &self.value, Expiry::Persist)?;
        Ok(Frame::bulk_or_null(old))
    }
}
