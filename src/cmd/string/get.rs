//! GET key
use bytes::Bytes;
use txn::{Transaction, ValueKind};

use crate::cmd::spec::flags::*;
use crate::cmd::{
    get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx, Fast, FastCx,
};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "get",
    2,
    READONLY | FAST | READS_VALUE | COUNTS_LOOKUPS,
    "string",
    "Returns the string value of a key.",
)
.keys(1, 1, 1);

/// GET.
pub struct Get {
    key: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Get {
        key: args.next_bytes()?,
    }))
}

/// The fast path: one read at a fresh snapshot (`Engine::get`).
pub fn fast(args: &[Bytes], cx: &FastCx<'_>) -> Option<Result<Fast, CmdError>> {
    let [key] = args else { return None };
    let entry = match cx.shared.engine.get(cx.db, key) {
        Ok(entry) => entry,
        Err(e) => return Some(Err(e.into())),
    };
    Some(match entry {
        None => Ok(Fast::read(Frame::Null)),
        Some(e) if e.kind == ValueKind::String => Ok(Fast::read(Frame::Bulk(e.value))),
        Some(_) => Err(CmdError::WrongType),
    })
}

impl DataCommand for Get {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        Ok(Frame::bulk_or_null(get_string(tx, cx, &self.key)?))
    }
}
