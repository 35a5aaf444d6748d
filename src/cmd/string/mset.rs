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

/// MSET.
pub struct Cmd {
    pairs: Vec<(Bytes, Bytes)>,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    if !args.remaining().is_multiple_of(2) {
        return Err(CmdError::WrongArity("mset".to_owned()));
    }
    let mut pairs = Vec::with_capacity(args.remaining() / 2);
    while let Some(k) = args.next_opt() {
        pairs.push((k, args.next_bytes()?));
    }
    Ok(Command::data(Cmd { pairs }))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        for (k, v) in &self.pairs {
            tx.put(cx.db, k, v, Expiry::Persist)?;
        }
        Ok(Frame::ok())
    }
}
