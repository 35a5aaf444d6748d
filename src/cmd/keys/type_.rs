//! TYPE key
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{peek_meta, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "type",
    2,
    READONLY | FAST | COUNTS_LOOKUPS,
    "generic",
    "Determines the type of value stored at a key.",
)
.keys(1, 1, 1);

/// TYPE.
pub struct Type {
    key: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Type {
        key: args.next_bytes()?,
    }))
}

impl DataCommand for Type {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        Ok(match peek_meta(tx, cx, &self.key)? {
            Some(e) => Frame::simple(crate::cmd::type_name(e.kind)),
            None => Frame::simple("none"),
        })
    }
}
