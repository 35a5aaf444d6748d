//! FLUSHDB [ASYNC|SYNC]
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "flushdb",
    -1,
    WRITE | MAY_BLOCK | NO_MULTI,
    "server",
    "Remove all keys from the current database.",
);

/// FLUSHDB.
pub struct Cmd;

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    super::parse_flush_mode(args)?;
    Ok(Command::session(Cmd))
}

impl SessionCommand for Cmd {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        let info = cx.shared.engine.flush_db(cx.session.db)?;
        cx.session.note_lsn(&info);
        Ok(Frame::ok())
    }
}
