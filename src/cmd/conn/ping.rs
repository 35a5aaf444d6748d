//! PING [message]
use bytes::Bytes;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "ping",
    -1,
    FAST | STALE,
    "connection",
    "Returns the server's liveliness response.",
);

/// PING.
pub struct Ping {
    message: Option<Bytes>,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let message = args.next_opt();
    if args.remaining() > 0 {
        return Err(CmdError::WrongArity("ping".to_owned()));
    }
    Ok(Command::session(Ping { message }))
}

impl SessionCommand for Ping {
    fn execute(&self, _cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        Ok(match &self.message {
            Some(m) => Frame::Bulk(m.clone()),
            None => Frame::simple("PONG"),
        })
    }
}
