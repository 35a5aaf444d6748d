//! RANDOMKEY
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "randomkey",
    1,
    READONLY,
    "generic",
    "Returns a random key name from the database.",
);

/// RANDOMKEY.
pub struct RandomKey;

/// Parses the arguments after the name.
pub fn parse(_args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::session(RandomKey))
}

impl SessionCommand for RandomKey {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        Ok(Frame::bulk_or_null(
            cx.shared.engine.random_key(cx.session.db),
        ))
    }
}
