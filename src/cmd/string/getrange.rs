//! GETRANGE key start end
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "getrange",
    4,
    READONLY | READS_VALUE,
    "string",
    "Returns a substring of the string stored at a key.",
)
.keys(1, 1, 1);

/// GETRANGE.
pub struct Cmd {
    key: Bytes,
    start: i64,
    end: i64,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd {
        key: args.next_bytes()?,
        start: args.next_i64()?,
        end: args.next_i64()?,
    }))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let value = get_string(tx, cx, &self.key)?.unwrap_or_default();
        Ok(Frame::Bulk(range(&value, self.start, self.end)))
    }
}

/// Redis's GETRANGE index arithmetic: negative = from the end, clamped, empty when inverted.
pub fn range(value: &Bytes, start: i64, end: i64) -> Bytes {
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Bytes::new();
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    start = start.max(0);
    end = end.max(0);
    end = end.min(len - 1);
    if len == 0 || start > end {
        return Bytes::new();
    }
    value.slice(start as usize..=end as usize)
}
