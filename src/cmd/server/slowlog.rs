//! SLOWLOG GET [count] | LEN | RESET | HELP (see `crate::slowlog`).
use bytes::Bytes;

use crate::cmd::args::parse_int;
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "slowlog",
    -2,
    ADMIN | LOADING | STALE,
    "server",
    "A container for slow log commands.",
);

/// Entries GET returns without a count (Redis's default).
const SLOWLOG_GET_DEFAULT: usize = 10;

/// SLOWLOG.
pub enum SlowLogCmd {
    /// The newest entries (`None`: all).
    Get(Option<usize>),
    /// How many entries.
    Len,
    /// Forget them.
    Reset,
    /// Help text.
    Help,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let raw = args.next_bytes()?;
    let sub = String::from_utf8_lossy(&raw).to_ascii_uppercase();
    let cmd = match sub.as_str() {
        "GET" => match args.next_opt() {
            None => SlowLogCmd::Get(Some(SLOWLOG_GET_DEFAULT)),
            Some(n) => {
                // Redis 7: -1 means all; other negatives are an error.
                let n = parse_int(&n)?;
                if n < -1 {
                    return Err(CmdError::Static(
                        "ERR count should be greater than or equal to -1",
                    ));
                }
                SlowLogCmd::Get(usize::try_from(n).ok())
            }
        },
        "LEN" => SlowLogCmd::Len,
        "RESET" => SlowLogCmd::Reset,
        "HELP" => SlowLogCmd::Help,
        _ => {
            return Err(CmdError::UnknownSubcommand {
                cmd: "SLOWLOG",
                sub: String::from_utf8_lossy(&raw).into_owned(),
            })
        }
    };
    args.finish()?;
    Ok(Command::session(cmd))
}

impl SessionCommand for SlowLogCmd {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        let log = &cx.shared.slowlog;
        Ok(match self {
            SlowLogCmd::Get(count) => Frame::Array(
                log.get(*count)
                    .into_iter()
                    .map(|e| {
                        Frame::Array(vec![
                            Frame::Integer(e.id as i64),
                            Frame::Integer(e.unix_s as i64),
                            Frame::Integer(e.micros as i64),
                            Frame::Array(e.args.into_iter().map(Frame::Bulk).collect()),
                            Frame::Bulk(Bytes::from(e.addr)),
                            Frame::Bulk(Bytes::from(e.name)),
                        ])
                    })
                    .collect(),
            ),
            SlowLogCmd::Len => Frame::Integer(log.len() as i64),
            SlowLogCmd::Reset => {
                log.reset();
                Frame::ok()
            }
            SlowLogCmd::Help => Frame::help(&[
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
                "HELP",
                "    Print this help.",
            ]),
        })
    }
}
