//! RANDOMKEY
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "randomkey",
    1,
    READONLY,
    "generic",
    "Returns a random key name from the database.",
);

/// RANDOMKEY: as the transaction it runs in sees the database.
pub struct RandomKey;

/// Parses the arguments after the name.
pub fn parse(_args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(RandomKey))
}

impl DataCommand for RandomKey {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        Ok(Frame::bulk_or_null(tx.random_key(cx.db)?))
    }
}
