//! HELLO [protover [AUTH username password] [SETNAME clientname]]
use bytes::Bytes;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::{parse_i64, Frame, Protocol};

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "hello",
    -1,
    NO_AUTH | FAST | NOSCRIPT | LOADING | STALE,
    "connection",
    "Handshakes with the server.",
);

/// The Redis version tierkv reports, for clients that gate features on it.
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";

/// HELLO.
pub struct Hello {
    proto: Option<Bytes>,
    auth: Option<(Bytes, Bytes)>,
    name: Option<Bytes>,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let mut hello = Hello {
        proto: args.next_opt(),
        auth: None,
        name: None,
    };
    while let Some(opt) = args.next_upper() {
        match opt.as_str() {
            "AUTH" if args.remaining() >= 2 => {
                hello.auth = Some((args.next_bytes()?, args.next_bytes()?))
            }
            "SETNAME" if args.remaining() >= 1 => hello.name = Some(args.next_bytes()?),
            _ => return Err(CmdError::Static("ERR Syntax error in HELLO option")),
        }
    }
    Ok(Command::session(hello))
}

impl SessionCommand for Hello {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        let proto = match &self.proto {
            None => None,
            Some(p) => match parse_i64(p) {
                None => {
                    return Err(CmdError::Static(
                        "ERR Protocol version is not an integer or out of range",
                    ))
                }
                Some(2) => Some(Protocol::Resp2),
                Some(3) => Some(Protocol::Resp3),
                Some(_) => return Err(CmdError::NoProto),
            },
        };
        if let Some((user, pass)) = &self.auth {
            super::authenticate(cx, Some(user), pass)?;
            cx.session.authenticated = true;
        }
        if !cx.session.authenticated {
            return Err(CmdError::Static("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"));
        }
        if let Some(name) = &self.name {
            cx.session
                .client
                .set_name(Some(super::client::valid_name(name)?));
        }
        if let Some(p) = proto {
            cx.session.proto = p;
            cx.session
                .client
                .set_resp(if p == Protocol::Resp3 { 3 } else { 2 });
        }
        let proto_num = if cx.session.proto == Protocol::Resp3 {
            3
        } else {
            2
        };
        Ok(Frame::Map(vec![
            (Frame::bulk_static("server"), Frame::bulk_static("redis")),
            (
                Frame::bulk_static("version"),
                Frame::bulk_static(REDIS_COMPAT_VERSION),
            ),
            (Frame::bulk_static("proto"), Frame::Integer(proto_num)),
            (
                Frame::bulk_static("id"),
                Frame::Integer(cx.session.client.id.0 as i64),
            ),
            (Frame::bulk_static("mode"), Frame::bulk_static("standalone")),
            (Frame::bulk_static("role"), Frame::bulk_static("master")),
            (Frame::bulk_static("modules"), Frame::Array(vec![])),
        ]))
    }
}
