//! KEYS pattern: every matching key, from one snapshot.
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::glob;
use crate::resp::Frame;

/// Keys fetched from the engine per scan call.
pub const SCAN_CHUNK_KEYS: usize = 1024;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "keys",
    2,
    READONLY | MAY_BLOCK,
    "generic",
    "Returns all key names that match a pattern.",
);

/// KEYS.
pub struct Keys {
    pattern: Bytes,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Keys {
        pattern: args.next_bytes()?,
    }))
}

/// The literal prefix of a glob (everything before its first special character), which lets
/// the engine skip non-matching ranges.
pub fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let end = pattern
        .iter()
        .position(|c| matches!(c, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    pattern.get(..end).unwrap_or_default()
}

impl DataCommand for Keys {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let prefix = literal_prefix(&self.pattern);
        let prefix = (!prefix.is_empty()).then_some(prefix);
        let mut out = Vec::new();
        let mut after: Option<Bytes> = None;
        loop {
            let chunk = tx.scan(cx.db, after.as_deref(), prefix, SCAN_CHUNK_KEYS)?;
            let done = chunk.len() < SCAN_CHUNK_KEYS;
            after = chunk.last().map(|(k, _)| k.clone());
            for (key, entry) in chunk {
                let alive = entry.expire_at_ms.is_none_or(|at| at > cx.now_ms);
                if alive && glob::matches(&self.pattern, &key, false) {
                    out.push(Frame::Bulk(key));
                }
            }
            if done || after.is_none() {
                break;
            }
        }
        Ok(Frame::Array(out))
    }
}
