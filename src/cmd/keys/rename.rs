//! RENAME key newkey
use bytes::Bytes;
use txn::{Expiry, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{live, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "rename",
    3,
    WRITE,
    "generic",
    "Renames a key (keeping its TTL).",
)
.keys(1, 2, 1);

/// RENAME, or RENAMENX when `nx`.
pub struct Cmd {
    from: Bytes,
    to: Bytes,
    nx: bool,
}

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    parse_with(args, false)
}

/// Parses RENAME's arguments; `nx` makes it RENAMENX (refuse an existing target, reply 0/1).
pub fn parse_with(mut args: ArgCursor, nx: bool) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd {
        from: args.next_bytes()?,
        to: args.next_bytes()?,
        nx,
    }))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let entry = live(tx, cx, &self.from)?.ok_or(CmdError::NoSuchKey)?;
        let nx = self.nx;
        if self.from == self.to {
            return Ok(if nx { Frame::Integer(0) } else { Frame::ok() });
        }
        if nx && live(tx, cx, &self.to)?.is_some() {
            return Ok(Frame::Integer(0));
        }
        let expiry = entry.expire_at_ms.map_or(Expiry::Persist, Expiry::At);
        tx.put(cx.db, &self.to, &entry.value, expiry)?;
        tx.delete(cx.db, &self.from)?;
        Ok(if nx { Frame::Integer(1) } else { Frame::ok() })
    }
}
