//! Human-readable and JSON renderings of the engine's WAL payloads (`txn::LogRecord`).

use super::{hex, json_str};
use std::fmt::Write as _;
use txn::{LogOp, LogRecord};

/// Redis-style quoting: printable ASCII as is, everything else as `\xNN`, cut at `max` bytes.
pub fn quote(b: &[u8], max: usize) -> String {
    let shown = b.get(..max).unwrap_or(b);
    let mut s = String::with_capacity(shown.len() + 2);
    s.push('"');
    for &c in shown {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
    if shown.len() < b.len() {
        let _ = write!(s, "…({} bytes)", b.len());
    }
    s
}

fn expiry(e: Option<u64>) -> String {
    e.map_or_else(String::new, |ms| format!(" PXAT {ms}"))
}

/// One line: `commit_ts=… SET db0 "k" "v" PXAT …; DEL db0 "k"`.
pub fn text(r: &LogRecord, max: usize) -> String {
    let ops: Vec<String> = r
        .ops
        .iter()
        .map(|op| match op {
            LogOp::Put {
                db,
                key,
                value,
                expire_at_ms,
            } => format!(
                "SET db{db} {} {}{}",
                quote(key, max),
                quote(value, max),
                expiry(*expire_at_ms)
            ),
            LogOp::Delete { db, key } => format!("DEL db{db} {}", quote(key, max)),
            LogOp::SetExpiry {
                db,
                key,
                expire_at_ms,
            } => match expire_at_ms {
                Some(ms) => format!("PEXPIREAT db{db} {} {ms}", quote(key, max)),
                None => format!("PERSIST db{db} {}", quote(key, max)),
            },
            LogOp::FlushDb { db } => format!("FLUSHDB db{db}"),
            LogOp::FlushAll => "FLUSHALL".to_string(),
            LogOp::SwapDb { a, b } => format!("SWAPDB {a} {b}"),
        })
        .collect();
    format!("commit_ts={} {}", r.commit_ts.0, ops.join("; "))
}

fn bytes_json(b: &[u8], max: usize) -> String {
    let shown = b.get(..max).unwrap_or(b);
    match std::str::from_utf8(shown) {
        Ok(s) => format!(
            "{{\"len\":{},\"utf8\":{},\"truncated\":{}}}",
            b.len(),
            json_str(s),
            shown.len() < b.len()
        ),
        Err(_) => format!(
            "{{\"len\":{},\"hex\":\"{}\",\"truncated\":{}}}",
            b.len(),
            hex(shown),
            shown.len() < b.len()
        ),
    }
}

fn opt(e: Option<u64>) -> String {
    e.map_or_else(|| "null".to_string(), |v| v.to_string())
}

/// A JSON object `{"commit_ts":…,"ops":[…]}`.
pub fn json(r: &LogRecord, max: usize) -> String {
    let ops: Vec<String> = r
        .ops
        .iter()
        .map(|op| match op {
            LogOp::Put {
                db,
                key,
                value,
                expire_at_ms,
            } => format!(
                "{{\"op\":\"put\",\"db\":{db},\"key\":{},\"value\":{},\"expire_at_ms\":{}}}",
                bytes_json(key, max),
                bytes_json(value, max),
                opt(*expire_at_ms)
            ),
            LogOp::Delete { db, key } => format!(
                "{{\"op\":\"delete\",\"db\":{db},\"key\":{}}}",
                bytes_json(key, max)
            ),
            LogOp::SetExpiry {
                db,
                key,
                expire_at_ms,
            } => format!(
                "{{\"op\":\"set_expiry\",\"db\":{db},\"key\":{},\"expire_at_ms\":{}}}",
                bytes_json(key, max),
                opt(*expire_at_ms)
            ),
            LogOp::FlushDb { db } => format!("{{\"op\":\"flushdb\",\"db\":{db}}}"),
            LogOp::FlushAll => "{\"op\":\"flushall\"}".to_string(),
            LogOp::SwapDb { a, b } => format!("{{\"op\":\"swapdb\",\"a\":{a},\"b\":{b}}}"),
        })
        .collect();
    format!(
        "{{\"commit_ts\":{},\"ops\":[{}]}}",
        r.commit_ts.0,
        ops.join(",")
    )
}
