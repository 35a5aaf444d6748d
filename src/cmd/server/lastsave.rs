//! LASTSAVE
use std::sync::atomic::Ordering;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "lastsave",
    1,
    FAST | LOADING | STALE,
    "server",
    "Returns the Unix timestamp of the last successful save to disk.",
);

/// LASTSAVE.
pub struct LastSave;

/// Parses the arguments after the name.
pub fn parse(_args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::session(LastSave))
}

impl SessionCommand for LastSave {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        Ok(Frame::Integer(
            cx.shared.lastsave_unix.load(Ordering::Relaxed) as i64,
        ))
    }
}
