//! LATENCY LATEST | HISTORY event | RESET [event ...] | HELP (see `crate::latency`).
use bytes::Bytes;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "latency",
    -2,
    ADMIN | NOSCRIPT | LOADING | STALE,
    "server",
    "A container for latency diagnostics commands.",
);

/// LATENCY.
pub enum Latency {
    /// Every event's latest and worst.
    Latest,
    /// One event's samples.
    History(String),
    /// Forget these events (all if none).
    Reset(Vec<String>),
    /// Help text.
    Help,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let raw = args.next_bytes()?;
    let sub = String::from_utf8_lossy(&raw).to_ascii_uppercase();
    let cmd = match sub.as_str() {
        "LATEST" => Latency::Latest,
        "HISTORY" => Latency::History(String::from_utf8_lossy(&args.next_bytes()?).into_owned()),
        "RESET" => Latency::Reset(
            args.rest()
                .iter()
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect(),
        ),
        "HELP" => Latency::Help,
        _ => {
            return Err(CmdError::UnknownSubcommand {
                cmd: "LATENCY",
                sub: String::from_utf8_lossy(&raw).into_owned(),
            })
        }
    };
    args.finish()?;
    Ok(Command::session(cmd))
}

impl SessionCommand for Latency {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        let monitor = &cx.shared.latency;
        Ok(match self {
            Latency::Latest => Frame::Array(
                monitor
                    .latest()
                    .into_iter()
                    .map(|(event, at, latest, max)| {
                        Frame::Array(vec![
                            Frame::Bulk(Bytes::from_static(event.as_bytes())),
                            Frame::Integer(at as i64),
                            Frame::Integer(latest as i64),
                            Frame::Integer(max as i64),
                        ])
                    })
                    .collect(),
            ),
            Latency::History(event) => Frame::Array(
                monitor
                    .history(event)
                    .into_iter()
                    .map(|(at, ms)| {
                        Frame::Array(vec![Frame::Integer(at as i64), Frame::Integer(ms as i64)])
                    })
                    .collect(),
            ),
            Latency::Reset(events) => Frame::Integer(monitor.reset(events) as i64),
            Latency::Help => Frame::help(&[
                "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HELP",
                "    Print this help.",
            ]),
        })
    }
}
