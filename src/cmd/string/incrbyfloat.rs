//! INCRBYFLOAT key increment
use bytes::Bytes;
use txn::{Expiry, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

use crate::cmd::long_double::incr_by_float;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new("incrbyfloat", 3, WRITE | DENYOOM | FAST | READS_VALUE, "string", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.").keys(1, 1, 1);

/// INCRBYFLOAT.
pub struct IncrByFloat {
    key: Bytes,
    /// Checked when the command runs, as Redis does (inside MULTI the error comes from EXEC).
    increment: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let key = args.next_bytes()?;
    let increment = args.next_bytes()?;
    Ok(Command::data(IncrByFloat { key, increment }))
}

impl DataCommand for IncrByFloat {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let current = get_string(tx, cx, &self.key)?;
        let text = incr_by_float(current.as_deref(), &self.increment)?;
        tx.put(cx.db, &self.key, text.as_bytes(), Expiry::Keep)?;
        Ok(Frame::Bulk(Bytes::from(text)))
    }
}
