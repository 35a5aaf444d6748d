//! SETRANGE key offset value
use bytes::Bytes;
use txn::{Expiry, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new("setrange", 4, WRITE | DENYOOM | READS_VALUE, "string", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.").keys(1, 1, 1);

/// SETRANGE.
pub struct SetRange {
    key: Bytes,
    offset: i64,
    value: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(SetRange {
        key: args.next_bytes()?,
        offset: args.next_i64()?,
        value: args.next_bytes()?,
    }))
}

impl DataCommand for SetRange {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        if self.offset < 0 {
            return Err(CmdError::OffsetOutOfRange);
        }
        let offset = self.offset as u64;
        let old = get_string(tx, cx, &self.key)?;
        let old_len = old.as_ref().map_or(0, |v| v.len());
        if self.value.is_empty() {
            return Ok(Frame::Integer(old_len as i64));
        }
        super::check_len(cx, offset + self.value.len() as u64)?;
        let offset = offset as usize;
        let mut buf = old.map(|v| v.to_vec()).unwrap_or_default();
        let end = offset + self.value.len();
        if buf.len() < end {
            buf.resize(end, 0);
        }
        if let Some(dst) = buf.get_mut(offset..end) {
            dst.copy_from_slice(&self.value);
        }
        tx.put(cx.db, &self.key, &buf, Expiry::Keep)?;
        Ok(Frame::Integer(buf.len() as i64))
    }
}
