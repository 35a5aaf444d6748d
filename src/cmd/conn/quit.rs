//! QUIT
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;
use crate::session::Action;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "quit",
    -1,
    NO_AUTH | TXN_CONTROL | FAST | NOSCRIPT | LOADING | STALE,
    "connection",
    "Closes the connection.",
);

/// QUIT.
pub struct Quit;

/// Parses the arguments after the name.
pub fn parse(_args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::session(Quit))
}

impl SessionCommand for Quit {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        cx.session.action = Some(Action::Close);
        Ok(Frame::ok())
    }
}
