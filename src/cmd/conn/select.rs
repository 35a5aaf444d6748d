//! SELECT index
use bytes::Bytes;

use crate::cmd::spec::flags::*;
use crate::cmd::{parse_db, ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "select",
    2,
    FAST | LOADING | STALE,
    "connection",
    "Changes the selected database.",
);

/// SELECT.
pub struct Select {
    index: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::session(Select {
        index: args.next_bytes()?,
    }))
}

impl SessionCommand for Select {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        let db = parse_db(cx.shared, &self.index)?;
        cx.session.db = db;
        cx.session.client.set_db(db);
        Ok(Frame::ok())
    }
}
