//! PERSIST key
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{live_meta, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "persist",
    2,
    WRITE | FAST,
    "generic",
    "Removes the expiration time of a key.",
)
.keys(1, 1, 1);

/// PERSIST.
pub struct Persist {
    key: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Persist {
        key: args.next_bytes()?,
    }))
}

impl DataCommand for Persist {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        match live_meta(tx, cx, &self.key)? {
            Some(e) if e.expire_at_ms.is_some() => {
                tx.set_expiry(cx.db, &self.key, None)?;
                Ok(Frame::Integer(1))
            }
            _ => Ok(Frame::Integer(0)),
        }
    }
}
