//! FLUSHALL [ASYNC|SYNC]
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "flushall",
    -1,
    WRITE | MAY_BLOCK,
    "server",
    "Removes all keys from all databases.",
);

/// FLUSHALL. A data command: it joins the transaction it runs in (see FLUSHDB).
pub struct Cmd;

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    super::parse_flush_mode(args)?;
    Ok(Command::data(Cmd))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, _cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        tx.flush_all()?;
        Ok(Frame::ok())
    }
}
