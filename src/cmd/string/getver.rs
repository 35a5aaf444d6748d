//! GETVER key → [value, version]: the value with the commit version that wrote it
//! (`[nil, 0]` for a missing key). Pass the version to SETVER/CAS for a versioned
//! compare-and-set. (tierkv extension.)
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{live, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "getver",
    2,
    READONLY | FAST | READS_VALUE,
    "string",
    "Returns the value of a key and the version (commit timestamp) that wrote it.",
)
.keys(1, 1, 1);

/// GETVER.
pub struct GetVer {
    key: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(GetVer {
        key: args.next_bytes()?,
    }))
}

impl DataCommand for GetVer {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        Ok(match live(tx, cx, &self.key)? {
            Some(e) => Frame::Array(vec![
                Frame::Bulk(e.value),
                Frame::Integer(e.version.0 as i64),
            ]),
            None => Frame::Array(vec![Frame::Null, Frame::Integer(0)]),
        })
    }
}
