//! SAVE: write a checkpoint now and reply once it is installed.
//!
//! Unlike Redis's SAVE this blocks only the calling connection: the checkpoint streams an MVCC
//! snapshot while every other client keeps reading and writing.
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "save",
    1,
    ADMIN | NOSCRIPT | NO_MULTI,
    "server",
    "Synchronously saves the database(s) to disk.",
);

/// SAVE.
pub struct Save;

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    args.finish()?;
    Ok(Command::session(Save))
}

impl SessionCommand for Save {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        let Some(durability) = cx.shared.persistence.durability.as_ref() else {
            return Ok(Frame::ok());
        };
        match durability.checkpoint() {
            Ok(_) => {
                cx.shared.lastsave_unix.store(
                    durability.stats().last_checkpoint_unix_s,
                    std::sync::atomic::Ordering::Relaxed,
                );
                Ok(Frame::ok())
            }
            Err(txn::TxnError::CheckpointInProgress) => {
                Err(CmdError::Static("ERR Background save already in progress"))
            }
            Err(e) => {
                tracing::error!(error = %e, "SAVE failed");
                Err(CmdError::Static("ERR"))
            }
        }
    }
}
