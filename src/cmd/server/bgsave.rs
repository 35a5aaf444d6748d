//! BGSAVE [SCHEDULE]: start a checkpoint in the background.
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::persistence::start_background_checkpoint;
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "bgsave",
    -1,
    ADMIN | NOSCRIPT,
    "server",
    "Asynchronously saves the database(s) to disk.",
);

/// BGSAVE.
pub struct BgSave {
    schedule: bool,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let schedule = match args.next_upper().as_deref() {
        None => false,
        Some("SCHEDULE") => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    args.finish()?;
    Ok(Command::session(BgSave { schedule }))
}

impl SessionCommand for BgSave {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        let Some(durability) = cx.shared.persistence.durability.as_ref() else {
            return Ok(Frame::simple("Background saving started"));
        };
        if start_background_checkpoint(durability) {
            Ok(Frame::simple("Background saving started"))
        } else if self.schedule {
            Ok(Frame::simple("Background saving scheduled"))
        } else {
            Err(CmdError::Static("ERR Background save already in progress"))
        }
    }
}
