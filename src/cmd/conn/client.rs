//! CLIENT ID|SETNAME|GETNAME|LIST|INFO|KILL|SETINFO|NO-EVICT|NO-TOUCH|REPLY|HELP
use bytes::Bytes;

use crate::cmd::args::parse_int;
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;
use crate::session::Action;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "client",
    -2,
    NOSCRIPT | LOADING | STALE,
    "connection",
    "A container for client connection commands.",
);

enum Sub {
    Id,
    SetName(Bytes),
    GetName,
    List(Option<Vec<u64>>),
    Info,
    Kill(Vec<Bytes>),
    Ok,
    Help,
}

/// CLIENT.
pub struct Client(Sub);

fn arity(sub: &str) -> CmdError {
    CmdError::WrongArity(format!("client|{}", sub.to_ascii_lowercase()))
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let raw = args.next_bytes()?;
    let name = String::from_utf8_lossy(&raw).to_ascii_uppercase();
    let n = args.remaining();
    let sub = match name.as_str() {
        "ID" if n == 0 => Sub::Id,
        "GETNAME" if n == 0 => Sub::GetName,
        "INFO" if n == 0 => Sub::Info,
        "HELP" if n == 0 => Sub::Help,
        "SETNAME" if n == 1 => Sub::SetName(args.next_bytes()?),
        "LIST" => {
            let mut ids = None;
            while let Some(opt) = args.next_upper() {
                match opt.as_str() {
                    "TYPE" => {
                        let _ = args.next_bytes()?;
                    }
                    "ID" => {
                        let rest = args.rest();
                        if rest.is_empty() {
                            return Err(CmdError::Syntax);
                        }
                        let parsed: Result<Vec<u64>, _> = rest
                            .iter()
                            .map(|b| {
                                parse_int(b)
                                    .ok()
                                    .and_then(|v| u64::try_from(v).ok())
                                    .ok_or(CmdError::Static("ERR Invalid client ID"))
                            })
                            .collect();
                        ids = Some(parsed?);
                    }
                    _ => return Err(CmdError::Syntax),
                }
            }
            Sub::List(ids)
        }
        "KILL" if n >= 1 => Sub::Kill(args.rest()),
        "SETINFO" if n == 2 => Sub::Ok,
        "NO-EVICT" | "NO-TOUCH" | "REPLY" if n == 1 => Sub::Ok,
        "ID" | "GETNAME" | "INFO" | "SETNAME" | "KILL" | "SETINFO" | "NO-EVICT" | "NO-TOUCH"
        | "REPLY" => return Err(arity(&name)),
        _ => {
            return Err(CmdError::UnknownSubcommand {
                cmd: "CLIENT",
                sub: String::from_utf8_lossy(&raw).into_owned(),
            })
        }
    };
    Ok(Command::session(Client(sub)))
}

/// Validates a client name: printable ASCII without spaces (Redis's rule).
pub fn valid_name(name: &[u8]) -> Result<String, CmdError> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::BadClientName);
    }
    Ok(String::from_utf8_lossy(name).into_owned())
}

fn verbatim(text: String) -> Frame {
    Frame::Verbatim {
        format: *b"txt",
        text: Bytes::from(text),
    }
}

impl SessionCommand for Client {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        let me = &cx.session.client;
        Ok(match &self.0 {
            Sub::Id => Frame::Integer(me.id.0 as i64),
            Sub::SetName(name) => {
                me.set_name((!name.is_empty()).then(|| valid_name(name)).transpose()?);
                Frame::ok()
            }
            Sub::GetName => Frame::bulk_or_null(me.name().map(Bytes::from)),
            Sub::Info => verbatim(format!("{}\n", me.info_line())),
            Sub::List(ids) => {
                let mut clients: Vec<_> = cx.shared.clients.lock().values().cloned().collect();
                clients.sort_by_key(|c| c.id);
                let mut text = String::new();
                for c in clients.iter().filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id.0))) {
                    text.push_str(&c.info_line());
                    text.push('\n');
                }
                verbatim(text)
            }
            Sub::Kill(args) => return kill(cx, args),
            Sub::Ok => Frame::ok(),
            Sub::Help => Frame::help(&[
                    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "ID", "    Return the ID of the current connection.",
                    "GETNAME", "    Return the name of the current connection.",
                    "KILL <ip:port> | KILL <option> <value> [<option> <value> ...]",
                    "    Kill connections. Options: ID <client-id>, ADDR <ip:port>, LADDR <ip:port>, USER <username>, SKIPME (YES|NO).",
                    "LIST [TYPE normal] [ID <id> [<id> ...]]", "    Return information about client connections.",
                    "INFO", "    Return information about the current client connection.",
                    "SETNAME <name>", "    Assign the name <name> to the current connection.",
                    "HELP", "    Print this help.",
                ]),
        })
    }
}

fn kill(cx: &mut SessionCx<'_>, args: &[Bytes]) -> Result<Frame, CmdError> {
    let me = cx.session.client.id;
    // A killed client is gone as far as anyone can tell, even while its task winds down and
    // before it leaves the registry: it can't be killed (or counted) twice.
    let clients: Vec<_> = cx
        .shared
        .clients
        .lock()
        .values()
        .filter(|c| !c.is_killed())
        .cloned()
        .collect();
    if let [addr] = args {
        // Old form: CLIENT KILL ip:port → OK or an error.
        let addr = String::from_utf8_lossy(addr);
        let target = clients
            .iter()
            .find(|c| c.addr.to_string() == addr)
            .ok_or(CmdError::NoSuchClient)?;
        target.kill();
        if target.id == me {
            cx.session.action = Some(Action::Close);
        }
        return Ok(Frame::ok());
    }
    let (mut id, mut addr, mut laddr, mut user, mut skipme) = (None, None, None, None, true);
    let mut it = args.chunks(2);
    for pair in it.by_ref() {
        let [opt, value] = pair else {
            return Err(CmdError::Syntax);
        };
        let value_str = String::from_utf8_lossy(value).into_owned();
        match String::from_utf8_lossy(opt).to_ascii_uppercase().as_str() {
            "ID" => {
                id = Some(
                    parse_int(value)
                        .ok()
                        .and_then(|v| u64::try_from(v).ok())
                        .ok_or(CmdError::Static("ERR client-id should be greater than 0"))?,
                )
            }
            "ADDR" => addr = Some(value_str),
            "LADDR" => laddr = Some(value_str),
            "USER" => user = Some(value_str),
            "SKIPME" => {
                skipme = match value_str.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(CmdError::Syntax),
                }
            }
            "TYPE" | "MAXAGE" => {}
            _ => return Err(CmdError::Syntax),
        }
    }
    let mut killed = 0;
    for c in &clients {
        let matches = id.is_none_or(|i| c.id.0 == i)
            && addr.as_deref().is_none_or(|a| c.addr.to_string() == a)
            && laddr.as_deref().is_none_or(|a| c.laddr.to_string() == a)
            && user.as_deref().is_none_or(|u| u == "default");
        if matches && !(skipme && c.id == me) {
            c.kill();
            killed += 1;
            if c.id == me {
                cx.session.action = Some(Action::Close);
            }
        }
    }
    Ok(Frame::Integer(killed))
}
