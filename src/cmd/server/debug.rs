//! DEBUG SLEEP seconds | DEBUG HELP
use std::time::Duration;

use crate::cmd::args::parse_float;
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;
use crate::session::Action;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "debug",
    -2,
    ADMIN | NOSCRIPT | LOADING | STALE,
    "server",
    "A container for debugging commands.",
);

/// Longest DEBUG SLEEP accepted, so a typo can't park a connection for days.
pub const DEBUG_SLEEP_MAX: Duration = Duration::from_secs(3600);

/// DEBUG.
pub enum Debug {
    /// Sleep this long (this connection only; others keep running).
    Sleep(Duration),
    /// Help text.
    Help,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let raw = args.next_bytes()?;
    let sub = String::from_utf8_lossy(&raw).to_ascii_uppercase();
    let debug = match sub.as_str() {
        "SLEEP" => {
            let secs = parse_float(&args.next_bytes()?)?;
            let d = Duration::try_from_secs_f64(secs.max(0.0))
                .unwrap_or(DEBUG_SLEEP_MAX)
                .min(DEBUG_SLEEP_MAX);
            Debug::Sleep(d)
        }
        "HELP" => Debug::Help,
        _ => {
            return Err(CmdError::UnknownSubcommand {
                cmd: "DEBUG",
                sub: String::from_utf8_lossy(&raw).into_owned(),
            })
        }
    };
    args.finish()?;
    Ok(Command::session(debug))
}

impl SessionCommand for Debug {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        Ok(match self {
            Debug::Sleep(d) => {
                cx.session.action = Some(Action::Sleep(*d));
                Frame::ok()
            }
            Debug::Help => Frame::help(&[
                "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "SLEEP <seconds>",
                "    Stop the server for <seconds>. Decimals allowed.",
            ]),
        })
    }
}
