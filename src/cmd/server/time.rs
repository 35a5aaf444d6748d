//! TIME
use bytes::Bytes;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "time",
    1,
    FAST | LOADING | STALE,
    "server",
    "Returns the server time.",
);

/// TIME.
pub struct Time;

/// Parses the arguments after the name.
pub fn parse(_args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::session(Time))
}

impl SessionCommand for Time {
    fn execute(&self, _cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Frame::Array(vec![
            Frame::Bulk(Bytes::from(now.as_secs().to_string())),
            Frame::Bulk(Bytes::from(now.subsec_micros().to_string())),
        ]))
    }
}
