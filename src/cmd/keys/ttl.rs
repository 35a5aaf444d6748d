//! TTL key
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "ttl",
    2,
    READONLY | FAST,
    "generic",
    "Returns the expiration time of a key in seconds.",
)
.keys(1, 1, 1);

/// TTL.
pub struct Cmd {
    key: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd {
        key: args.next_bytes()?,
    }))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        super::ttl_reply(tx, cx, &self.key, false, false)
    }
}
