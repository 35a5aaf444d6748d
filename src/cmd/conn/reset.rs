//! RESET
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "reset",
    1,
    NO_AUTH | TXN_CONTROL | FAST | NOSCRIPT | LOADING | STALE,
    "connection",
    "Resets the connection.",
);

/// RESET.
pub struct Reset;

/// Parses the arguments after the name.
pub fn parse(_args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::session(Reset))
}

impl SessionCommand for Reset {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        cx.session.reset(cx.shared);
        Ok(Frame::simple("RESET"))
    }
}
