//! ECHO message
use bytes::Bytes;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec =
    CommandSpec::new("echo", 2, FAST, "connection", "Returns the given string.");

/// ECHO.
pub struct Echo {
    message: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::session(Echo {
        message: args.next_bytes()?,
    }))
}

impl SessionCommand for Echo {
    fn execute(&self, _cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        Ok(Frame::Bulk(self.message.clone()))
    }
}
