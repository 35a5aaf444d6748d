//! MSET key value [key value ...]
use bytes::Bytes;
use txn::{Expiry, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "mset",
    -3,
    WRITE | DENYOOM,
    "string",
    "Atomically creates or modifies the string values of one or more keys.",
)
.keys(1, -1, 2);

/// MSET, or MSETNX when `nx` (all or nothing: no write if any key exists; replies 1/0).
pub struct Cmd {
    pairs: Vec<(Bytes, Bytes)>,
    nx: bool,
}

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    parse_with(args, false)
}

/// Parses the key/value pairs; `nx` makes it MSETNX.
pub fn parse_with(mut args: ArgCursor, nx: bool) -> Result<Command, CmdError> {
    if !args.remaining().is_multiple_of(2) {
        let name = if nx { "msetnx" } else { "mset" };
        return Err(CmdError::WrongArity(name.to_owned()));
    }
    let mut pairs = Vec::with_capacity(args.remaining() / 2);
    while let Some(k) = args.next_opt() {
        pairs.push((k, args.next_bytes()?));
    }
    Ok(Command::data(Cmd { pairs, nx }))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        if self.nx {
            for (k, _) in &self.pairs {
                if crate::cmd::live(tx, cx, k)?.is_some() {
                    return Ok(Frame::Integer(0));
                }
            }
        }
        for (k, v) in &self.pairs {
            tx.put(cx.db, k, v, Expiry::Persist)?;
        }
        Ok(if self.nx {
            Frame::Integer(1)
        } else {
            Frame::ok()
        })
    }
}
