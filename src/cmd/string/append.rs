//! APPEND key value
use bytes::Bytes;
use txn::{Expiry, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "append",
    3,
    WRITE | DENYOOM | FAST | READS_VALUE,
    "string",
    "Appends a string to the value of a key. Creates the key if it doesn't exist.",
)
.keys(1, 1, 1);

/// APPEND.
pub struct Append {
    key: Bytes,
    value: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Append {
        key: args.next_bytes()?,
        value: args.next_bytes()?,
    }))
}

impl DataCommand for Append {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let Some(old) = get_string(tx, cx, &self.key)? else {
            tx.put(cx.db, &self.key, &self.value, Expiry::Persist)?;
            return Ok(Frame::Integer(self.value.len() as i64));
        };
        super::check_len(cx, (old.len() + self.value.len()) as u64)?;
        let mut joined = Vec::with_capacity(old.len() + self.value.len());
        joined.extend_from_slice(&old);
        joined.extend_from_slice(&self.value);
        tx.put(cx.db, &self.key, &joined, Expiry::Keep)?;
        Ok(Frame::Integer(joined.len() as i64))
    }
}
