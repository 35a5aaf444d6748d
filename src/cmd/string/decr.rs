//! DECR key
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx, Fast, FastCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new("decr", 2, WRITE | DENYOOM | FAST | READS_VALUE, "string", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.").keys(1, 1, 1);

/// DECR.
pub struct Cmd {
    key: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd {
        key: args.next_bytes()?,
    }))
}

/// The fast path (see `incr_by_fast`).
pub fn fast(args: &[Bytes], cx: &FastCx<'_>) -> Option<Result<Fast, CmdError>> {
    let [key] = args else { return None };
    Some(super::incr_by_fast(key, -1, cx))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        super::incr_by(tx, cx, &self.key, -1)
    }
}
