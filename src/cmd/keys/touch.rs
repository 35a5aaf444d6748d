//! TOUCH key [key ...]
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{live, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new("touch", -2, READONLY | FAST, "generic", "Returns the number of existing keys out of those specified after updating the time they were last accessed.").keys(1, -1, 1);

/// TOUCH.
pub struct Cmd {
    keys: Vec<Bytes>,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd { keys: args.rest() }))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let mut n = 0;
        for key in &self.keys {
            if live(tx, cx, key)?.is_some() {
                n += 1;
            }
        }
        Ok(Frame::Integer(n))
    }
}
