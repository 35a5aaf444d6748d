//! EXISTS key [key ...] (and TOUCH, which shares it but counts as an access of each key)
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{live, peek_meta, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "exists",
    -2,
    READONLY | FAST | COUNTS_LOOKUPS,
    "generic",
    "Determines whether one or more keys exist.",
)
.keys(1, -1, 1);

/// EXISTS or TOUCH: counts the keys that exist.
pub struct Cmd {
    keys: Vec<Bytes>,
    /// TOUCH: record an access of each key (EXISTS does not, as in Redis).
    touch: bool,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd {
        keys: args.rest(),
        touch: false,
    }))
}

/// Parses TOUCH's arguments.
pub fn parse_touch(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd {
        keys: args.rest(),
        touch: true,
    }))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let mut n = 0;
        for key in &self.keys {
            let entry = if self.touch {
                live(tx, cx, key)?.map(|_| ())
            } else {
                peek_meta(tx, cx, key)?.map(|_| ())
            };
            if entry.is_some() {
                n += 1;
            }
        }
        Ok(Frame::Integer(n))
    }
}
