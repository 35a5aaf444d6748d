//! SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: graceful stop; the caller's connection closes
//! without a reply, as in Redis.
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;
use crate::session::Action;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "shutdown",
    -1,
    ADMIN | NO_MULTI | NOSCRIPT | LOADING | STALE,
    "server",
    "Synchronously saves the database(s) to disk and shuts down the server.",
);

/// SHUTDOWN.
pub struct Shutdown;

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    while let Some(opt) = args.next_upper() {
        match opt.as_str() {
            "NOSAVE" | "SAVE" | "NOW" | "FORCE" => {}
            "ABORT" => return Err(CmdError::Static("ERR No shutdown in progress.")),
            _ => return Err(CmdError::Syntax),
        }
    }
    Ok(Command::session(Shutdown))
}

impl SessionCommand for Shutdown {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        tracing::info!(
            client = cx.session.client.id.0,
            "SHUTDOWN requested by client"
        );
        cx.shared.request_shutdown();
        cx.session.action = Some(Action::Shutdown);
        Ok(Frame::ok())
    }
}
