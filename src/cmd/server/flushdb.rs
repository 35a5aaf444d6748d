//! FLUSHDB [ASYNC|SYNC]
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "flushdb",
    -1,
    WRITE | MAY_BLOCK,
    "server",
    "Remove all keys from the current database.",
);

/// FLUSHDB. A data command: it joins the transaction it runs in (its own, a MULTI block's, or
/// an open `TXN`), so later commands there see the database empty.
pub struct Cmd;

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    super::parse_flush_mode(args)?;
    Ok(Command::data(Cmd))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        tx.flush_db(cx.db)?;
        Ok(Frame::ok())
    }
}
