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

/// SETEX, or PSETEX when the TTL is in milliseconds.
pub struct Cmd {
    key: Bytes,
    ttl: i64,
    value: Bytes,
    millis: bool,
}

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    parse_with(args, false)
}

/// Parses SETEX's arguments; `millis` makes it PSETEX.
pub fn parse_with(mut args: ArgCursor, millis: bool) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd {
        key: args.next_bytes()?,
        ttl: args.next_i64()?,
        value: args.next_bytes()?,
        millis,
    }))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let expiry = if self.millis {
            TtlArg::Px(self.ttl).resolve(cx.now_ms, "psetex")?
        } else {
            TtlArg::Ex(self.ttl).resolve(cx.now_ms, "setex")?
        };
        tx.put(cx.db, &self.key, &self.value, expiry)?;
        Ok(Frame::ok())
    }
}
