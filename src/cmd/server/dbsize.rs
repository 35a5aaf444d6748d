//! DBSIZE
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "dbsize",
    1,
    READONLY | FAST,
    "server",
    "Returns the number of keys in the database.",
);

/// DBSIZE: as the transaction it runs in sees the database (inside MULTI, after the block's
/// own writes, FLUSHDB or SWAPDB).
pub struct DbSize;

/// Parses the arguments after the name.
pub fn parse(_args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(DbSize))
}

impl DataCommand for DbSize {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let keys = tx.dbsize(cx.db)?;
        Ok(Frame::Integer(i64::try_from(keys).unwrap_or(i64::MAX)))
    }
}
