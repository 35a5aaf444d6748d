//! SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
//!
//! Cursors are decimal integers (clients parse them) naming an entry in the server's bounded
//! cursor table, which remembers the last key returned; the next call continues after it in
//! key order. A forgotten cursor restarts the scan, which SCAN's contract allows (keys may be
//! returned more than once).
use bytes::Bytes;
use txn::Transaction;

use super::keys_::literal_prefix;
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::glob;
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "scan",
    -2,
    READONLY,
    "generic",
    "Iterates over the key names in the database.",
);

/// Most keys examined by one SCAN call, whatever COUNT says.
pub const SCAN_COUNT_MAX: usize = 100_000;

/// SCAN.
pub struct Scan {
    cursor: u64,
    pattern: Option<Bytes>,
    count: usize,
    type_filter: Option<String>,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let raw = args.next_bytes()?;
    let cursor = std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(CmdError::InvalidCursor)?;
    let mut scan = Scan {
        cursor,
        pattern: None,
        count: 10,
        type_filter: None,
    };
    while let Some(opt) = args.next_upper() {
        match opt.as_str() {
            "MATCH" => scan.pattern = Some(args.next_bytes()?),
            "COUNT" => {
                let n = args.next_i64()?;
                if n < 1 {
                    return Err(CmdError::Syntax);
                }
                scan.count = (n as u64).min(SCAN_COUNT_MAX as u64) as usize;
            }
            "TYPE" => {
                scan.type_filter =
                    Some(String::from_utf8_lossy(&args.next_bytes()?).to_ascii_lowercase())
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    Ok(Command::data(scan))
}

impl DataCommand for Scan {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let after = if self.cursor == 0 {
            None
        } else {
            cx.shared.cursors.lock().get(cx.db, self.cursor)
        };
        let prefix = self
            .pattern
            .as_deref()
            .map(literal_prefix)
            .filter(|p| !p.is_empty());
        let chunk = tx.scan(cx.db, after.as_deref(), prefix, self.count)?;
        let finished = chunk.len() < self.count;
        let last = chunk.last().map(|(k, _)| k.clone());
        let type_ok = self.type_filter.as_deref().is_none_or(|t| t == "string");
        let keys = chunk
            .into_iter()
            .filter(|(k, e)| {
                type_ok
                    && e.expire_at_ms.is_none_or(|at| at > cx.now_ms)
                    && self
                        .pattern
                        .as_deref()
                        .is_none_or(|p| glob::matches(p, k, false))
            })
            .map(|(k, _)| Frame::Bulk(k))
            .collect();
        let next = match (finished, last) {
            (false, Some(key)) => cx.shared.cursors.lock().insert(cx.db, key),
            _ => 0,
        };
        Ok(Frame::Array(vec![
            Frame::Bulk(Bytes::from(next.to_string())),
            Frame::Array(keys),
        ]))
    }
}
