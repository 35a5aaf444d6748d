//! DECRBY key delta
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx, Fast, FastCx};
use crate::resp::parse_i64;
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new("decrby", 3, WRITE | DENYOOM | FAST | READS_VALUE, "string", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.").keys(1, 1, 1);

/// DECRBY.
pub struct Cmd {
    key: Bytes,
    delta: i64,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd {
        key: args.next_bytes()?,
        delta: args.next_i64()?,
    }))
}

/// The fast path (see `incr_by_fast`); a malformed or unnegatable decrement takes the general
/// path.
pub fn fast(args: &[Bytes], cx: &FastCx<'_>) -> Option<Result<Fast, CmdError>> {
    let [key, delta] = args else { return None };
    let delta = parse_i64(delta)?.checked_neg()?;
    Some(super::incr_by_fast(key, delta, cx))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let delta = self
            .delta
            .checked_neg()
            .ok_or(CmdError::DecrementOverflow)?;
        super::incr_by(tx, cx, &self.key, delta)
    }
}
