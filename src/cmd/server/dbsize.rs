//! DBSIZE
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "dbsize",
    1,
    READONLY | FAST,
    "server",
    "Returns the number of keys in the database.",
);

/// DBSIZE.
pub struct DbSize;

/// Parses the arguments after the name.
pub fn parse(_args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::session(DbSize))
}

impl SessionCommand for DbSize {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        Ok(Frame::Integer(cx.shared.engine.dbsize(cx.session.db) as i64))
    }
}
