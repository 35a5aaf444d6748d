//! SETEX key seconds value
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

use super::set::TtlArg;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "setex",
    4,
    WRITE | DENYOOM,
    "string",
    "Sets the string value and expiration time (seconds) of a key.",
)
.keys(1, 1, 1);

/// SETEX.
pub struct Cmd {
    key: Bytes,
    ttl: i64,
    value: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd {
        key: args.next_bytes()?,
        ttl: args.next_i64()?,
        value: args.next_bytes()?,
    }))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let expiry = TtlArg::Ex(self.ttl).resolve(cx.now_ms, "setex")?;
        tx.put(cx.db, &self.key, &self.value, expiry)?;
        Ok(Frame::ok())
    }
}
