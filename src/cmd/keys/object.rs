//! OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT|HELP key
//!
//! FREQ and IDLETIME read the key's access word without counting an access (Redis's
//! `LOOKUP_NOTOUCH`): FREQ answers only under an LFU `maxmemory-policy`, IDLETIME only under
//! any other, with Redis's errors otherwise.
use bytes::Bytes;
use txn::{KeyAccess, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{peek, peek_meta, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::{parse_i64, Frame};

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "object",
    -2,
    READONLY,
    "generic",
    "A container for object introspection commands.",
)
.keys(2, 2, 1);

/// Longest string Redis stores as `embstr`.
pub const EMBSTR_SIZE_LIMIT: usize = 44;

enum Sub {
    Encoding,
    Freq,
    IdleTime,
    RefCount,
}

/// OBJECT.
pub enum Object {
    /// OBJECT HELP
    Help,
    /// A subcommand on a key.
    Key(SubCmd),
}

/// A key subcommand.
pub struct SubCmd {
    sub: Sub,
    key: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let raw = args.next_bytes()?;
    let name = String::from_utf8_lossy(&raw).to_ascii_uppercase();
    let sub = match name.as_str() {
        "HELP" if args.remaining() == 0 => return Ok(Command::data(Object::Help)),
        "ENCODING" => Sub::Encoding,
        "FREQ" => Sub::Freq,
        "IDLETIME" => Sub::IdleTime,
        "REFCOUNT" => Sub::RefCount,
        _ => {
            return Err(CmdError::UnknownSubcommand {
                cmd: "OBJECT",
                sub: String::from_utf8_lossy(&raw).into_owned(),
            })
        }
    };
    if args.remaining() != 1 {
        return Err(CmdError::WrongArity(format!(
            "object|{}",
            name.to_ascii_lowercase()
        )));
    }
    Ok(Command::data(Object::Key(SubCmd {
        sub,
        key: args.next_bytes()?,
    })))
}

/// Redis's encoding name for a string value.
pub fn encoding(value: &[u8]) -> &'static str {
    if value.len() <= 20 && parse_i64(value).is_some() {
        "int"
    } else if value.len() <= EMBSTR_SIZE_LIMIT {
        "embstr"
    } else {
        "raw"
    }
}

impl DataCommand for Object {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let Object::Key(cmd) = self else {
            let lines = [
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>",
                "    Return the access frequency index of the <key>. The returned integer is",
                "    proportional to the logarithm of the recent access frequency of the key.",
                "IDLETIME <key>",
                "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
                "HELP",
                "    Print this help.",
            ];
            return Ok(Frame::help(&lines));
        };
        // Only ENCODING looks at the bytes (an integer, a short or a long string).
        if peek_meta(tx, cx, &cmd.key)?.is_none() {
            return Ok(Frame::Null);
        }
        let lfu = cx.shared.engine.memory_config().policy.is_lfu();
        Ok(match cmd.sub {
            Sub::Encoding => match peek(tx, cx, &cmd.key)? {
                Some(entry) => Frame::bulk_static(encoding(&entry.value)),
                None => Frame::Null,
            },
            Sub::Freq if !lfu => return Err(CmdError::FrequencyNotTracked),
            Sub::IdleTime if lfu => return Err(CmdError::IdleTimeNotTracked),
            Sub::Freq | Sub::IdleTime => match tx.key_access(cx.db, &cmd.key)? {
                KeyAccess::Frequency { counter } => Frame::Integer(i64::from(counter)),
                KeyAccess::Idle { ms } => Frame::Integer((ms / 1000) as i64),
            },
            Sub::RefCount => Frame::Integer(1),
        })
    }
}
