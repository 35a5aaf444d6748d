//! String commands: one file per command.
//!
//! Invariant: a string command validates every argument and the stored value's type before its
//! first write, so an error reply never leaves a partial write behind.

pub mod append;
pub mod cas;
pub mod decr;
pub mod decrby;
pub mod get;
pub mod getdel;
pub mod getex;
pub mod getrange;
pub mod getset;
pub mod getver;
pub mod incr;
pub mod incrby;
pub mod incrbyfloat;
pub mod lcs;
pub mod mget;
pub mod mset;
pub mod msetnx;
pub mod psetex;
pub mod set;
pub mod setex;
pub mod setnx;
pub mod setrange;
pub mod setver;
pub mod strlen;
pub mod substr;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use txn::{Expiry, KeyWrite, Transaction, ValueKind};

use super::args::parse_int;
use super::{get_string, CmdError, DataCx, Fast, FastCx};
use crate::resp::Frame;

/// Adds `delta` to the integer stored at `key` (missing = 0), keeping its TTL: INCR and friends.
pub(crate) fn incr_by(
    tx: &mut Transaction,
    cx: &DataCx<'_>,
    key: &Bytes,
    delta: i64,
) -> Result<Frame, CmdError> {
    let current = match get_string(tx, cx, key)? {
        Some(v) => parse_int(&v)?,
        None => 0,
    };
    let next = current.checked_add(delta).ok_or(CmdError::Overflow)?;
    let mut buf = itoa::Buffer::new();
    tx.put(cx.db, key, buf.format(next).as_bytes(), Expiry::Keep)?;
    Ok(Frame::Integer(next))
}

/// INCRBY's fast path: one `Engine::update` (read, add, write under the commit lock), with the
/// general path's checks in the same order.
pub(crate) fn incr_by_fast(key: &[u8], delta: i64, cx: &FastCx<'_>) -> Result<Fast, CmdError> {
    let (reply, info) = cx.shared.engine.update(cx.db, key, true, |current| {
        let current = match current {
            None => 0,
            Some(e) if e.kind == ValueKind::String => parse_int(&e.value)?,
            Some(_) => return Err(CmdError::WrongType),
        };
        let next = current.checked_add(delta).ok_or(CmdError::Overflow)?;
        let mut buf = itoa::Buffer::new();
        let write = KeyWrite::Put {
            value: Bytes::copy_from_slice(buf.format(next).as_bytes()),
            expiry: Expiry::Keep,
        };
        Ok((Some(write), Frame::Integer(next)))
    })?;
    Ok(Fast::new(reply, info))
}

/// Checks a would-be string length against `proto-max-bulk-len`.
pub(crate) fn check_len(cx: &DataCx<'_>, len: u64) -> Result<(), CmdError> {
    if len > cx.shared.config.read().proto_max_bulk_len_bytes {
        return Err(CmdError::StringTooLong);
    }
    Ok(())
}
