//! COMMAND [COUNT | INFO name... | DOCS [name...] | LIST | HELP]: introspection derived from
//! the command table.
use bytes::Bytes;

use crate::cmd::spec::flags::*;
use crate::cmd::{
    lookup, ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx, TABLE,
};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "command",
    -1,
    LOADING | STALE,
    "server",
    "Returns detailed information about all commands.",
);

enum Sub {
    All,
    Count,
    Info(Vec<Bytes>),
    Docs(Vec<Bytes>),
    List,
}

/// COMMAND.
pub struct CommandCmd(Sub);

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let Some(raw) = args.next_opt() else {
        return Ok(Command::session(CommandCmd(Sub::All)));
    };
    let sub = String::from_utf8_lossy(&raw).to_ascii_uppercase();
    let parsed = match sub.as_str() {
        "COUNT" if args.remaining() == 0 => Sub::Count,
        "INFO" => Sub::Info(args.rest()),
        "DOCS" => Sub::Docs(args.rest()),
        "LIST" => Sub::List,
        "COUNT" => return Err(CmdError::WrongArity("command|count".to_owned())),
        _ => {
            return Err(CmdError::UnknownSubcommand {
                cmd: "COMMAND",
                sub: String::from_utf8_lossy(&raw).into_owned(),
            })
        }
    };
    Ok(Command::session(CommandCmd(parsed)))
}

fn category(spec: &CommandSpec) -> Vec<Frame> {
    let mut cats = vec![];
    if spec.has(WRITE) {
        cats.push("@write");
    }
    if spec.has(READONLY) {
        cats.push("@read");
    }
    cats.push(match spec.group {
        "string" => "@string",
        "generic" => "@keyspace",
        "transactions" => "@transaction",
        "connection" => "@connection",
        _ => "@admin",
    });
    if spec.has(FAST) {
        cats.push("@fast");
    } else {
        cats.push("@slow");
    }
    cats.into_iter().map(Frame::simple).collect()
}

/// One `COMMAND INFO` entry.
pub fn info_entry(spec: &CommandSpec) -> Frame {
    Frame::Array(vec![
        Frame::bulk_static(spec.name),
        Frame::Integer(i64::from(spec.arity)),
        Frame::Set(spec.flag_names().into_iter().map(Frame::simple).collect()),
        Frame::Integer(i64::from(spec.first_key)),
        Frame::Integer(i64::from(spec.last_key)),
        Frame::Integer(i64::from(spec.key_step)),
        Frame::Set(category(spec)),
        Frame::Array(vec![]),
        Frame::Array(vec![]),
        Frame::Array(vec![]),
    ])
}

fn docs_entry(spec: &CommandSpec) -> Frame {
    Frame::Map(vec![
        (
            Frame::bulk_static("summary"),
            Frame::bulk_static(spec.summary),
        ),
        (Frame::bulk_static("since"), Frame::bulk_static("1.0.0")),
        (Frame::bulk_static("group"), Frame::bulk_static(spec.group)),
    ])
}

impl SessionCommand for CommandCmd {
    fn execute(&self, _cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        Ok(match &self.0 {
            Sub::All => Frame::Array(TABLE.iter().map(|e| info_entry(e.spec)).collect()),
            Sub::Count => Frame::Integer(TABLE.len() as i64),
            Sub::List => Frame::Array(
                TABLE
                    .iter()
                    .map(|e| Frame::bulk_static(e.spec.name))
                    .collect(),
            ),
            Sub::Info(names) if names.is_empty() => {
                Frame::Array(TABLE.iter().map(|e| info_entry(e.spec)).collect())
            }
            Sub::Info(names) => Frame::Array(
                names
                    .iter()
                    .map(|n| lookup(n).map_or(Frame::NullArray, |(_, e)| info_entry(e.spec)))
                    .collect(),
            ),
            Sub::Docs(names) => {
                let specs: Vec<&CommandSpec> = if names.is_empty() {
                    TABLE.iter().map(|e| e.spec).collect()
                } else {
                    names
                        .iter()
                        .filter_map(|n| lookup(n).map(|(_, e)| e.spec))
                        .collect()
                };
                Frame::Map(
                    specs
                        .into_iter()
                        .map(|s| (Frame::bulk_static(s.name), docs_entry(s)))
                        .collect(),
                )
            }
        })
    }
}
