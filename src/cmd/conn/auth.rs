//! AUTH [username] password
use bytes::Bytes;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "auth",
    -2,
    NO_AUTH | FAST | NOSCRIPT | LOADING | STALE,
    "connection",
    "Authenticates the connection.",
);

/// AUTH.
pub struct Auth {
    user: Option<Bytes>,
    pass: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let auth = match args.remaining() {
        1 => Auth {
            user: None,
            pass: args.next_bytes()?,
        },
        2 => Auth {
            user: Some(args.next_bytes()?),
            pass: args.next_bytes()?,
        },
        _ => return Err(CmdError::Syntax),
    };
    Ok(Command::session(auth))
}

impl SessionCommand for Auth {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        super::authenticate(cx, self.user.as_deref(), &self.pass)?;
        cx.session.authenticated = true;
        Ok(Frame::ok())
    }
}
