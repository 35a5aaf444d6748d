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
    READONLY | FAST | COUNTS_LOOKUPS,
    "generic",
    "Returns the expiration time of a key in seconds.",
)
.keys(1, 1, 1);

/// TTL, PTTL, EXPIRETIME or PEXPIRETIME: one reply shape, two switches.
pub struct Cmd {
    key: Bytes,
    millis: bool,
    absolute: bool,
}

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    parse_with(args, false, false)
}

/// Parses the one key argument; `millis` answers in ms (PTTL, PEXPIRETIME), `absolute` with
/// the deadline instead of the time left (EXPIRETIME, PEXPIRETIME).
pub fn parse_with(mut args: ArgCursor, millis: bool, absolute: bool) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd {
        key: args.next_bytes()?,
        millis,
        absolute,
    }))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        super::ttl_reply(tx, cx, &self.key, self.millis, self.absolute)
    }
}
