//! Keyspace commands: one file per command.
//!
//! Invariant: expiry times are absolute milliseconds on the engine clock; a key whose expiry
//! time has passed is treated as absent even before the expiry task removes it.

pub mod copy;
pub mod del;
pub mod exists;
pub mod expire;
pub mod expireat;
pub mod expiretime;
pub mod keys_;
pub mod object;
pub mod persist;
pub mod pexpire;
pub mod pexpireat;
pub mod pexpiretime;
pub mod pttl;
pub mod randomkey;
pub mod rename;
pub mod renamenx;
pub mod scan;
pub mod touch;
pub mod ttl;
pub mod type_;
pub mod unlink;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use txn::Transaction;

use super::{live_meta, peek_meta, ArgCursor, CmdError, DataCx};
use crate::resp::Frame;

/// The unit and base of an EXPIRE-family time argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// Relative seconds (EXPIRE).
    Seconds,
    /// Relative milliseconds (PEXPIRE).
    Millis,
    /// Absolute unix seconds (EXPIREAT).
    UnixSeconds,
    /// Absolute unix milliseconds (PEXPIREAT).
    UnixMillis,
}

/// A parsed EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT.
pub struct ExpireCmd {
    name: &'static str,
    key: Bytes,
    time: i64,
    unit: TimeArg,
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// Parses `key time [NX|XX|GT|LT]...` for the EXPIRE family.
pub fn parse_expire(
    name: &'static str,
    unit: TimeArg,
    mut args: ArgCursor,
) -> Result<ExpireCmd, CmdError> {
    let key = args.next_bytes()?;
    let time = args.next_i64()?;
    let mut cmd = ExpireCmd {
        name,
        key,
        time,
        unit,
        nx: false,
        xx: false,
        gt: false,
        lt: false,
    };
    while let Some(raw) = args.next_opt() {
        match String::from_utf8_lossy(&raw).to_ascii_uppercase().as_str() {
            "NX" => cmd.nx = true,
            "XX" => cmd.xx = true,
            "GT" => cmd.gt = true,
            "LT" => cmd.lt = true,
            _ => {
                return Err(CmdError::UnsupportedOption(
                    String::from_utf8_lossy(&raw).into_owned(),
                ))
            }
        }
    }
    if cmd.nx && (cmd.xx || cmd.gt || cmd.lt) {
        return Err(CmdError::ExpireNxConflict);
    }
    if cmd.gt && cmd.lt {
        return Err(CmdError::ExpireGtLt);
    }
    Ok(cmd)
}

impl ExpireCmd {
    /// Runs the command: 1 if the timeout was set (or the key deleted because it is already
    /// in the past), 0 if the key is missing or a condition failed.
    pub fn run(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let bad = || CmdError::InvalidExpire(self.name);
        let now = i64::try_from(cx.now_ms).map_err(|_| bad())?;
        let when = match self.unit {
            TimeArg::Seconds => self
                .time
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(now)),
            TimeArg::Millis => self.time.checked_add(now),
            TimeArg::UnixSeconds => self.time.checked_mul(1000),
            TimeArg::UnixMillis => Some(self.time),
        }
        .ok_or_else(bad)?;
        let Some(entry) = live_meta(tx, cx, &self.key)? else {
            return Ok(Frame::Integer(0));
        };
        let current = entry.expire_at_ms.map(|t| t as i64);
        let allowed = match current {
            Some(cur) => !(self.nx || (self.gt && when <= cur) || (self.lt && when >= cur)),
            // No TTL counts as infinite: GT can never beat it, LT always does.
            None => !self.xx && !self.gt,
        };
        if !allowed {
            return Ok(Frame::Integer(0));
        }
        if when <= now {
            tx.delete(cx.db, &self.key)?;
        } else {
            tx.set_expiry(cx.db, &self.key, Some(when as u64))?;
        }
        Ok(Frame::Integer(1))
    }
}

/// TTL-family reply: -2 missing, -1 no expiry, else the (relative or absolute) time.
pub fn ttl_reply(
    tx: &mut Transaction,
    cx: &DataCx<'_>,
    key: &[u8],
    millis: bool,
    absolute: bool,
) -> Result<Frame, CmdError> {
    let Some(entry) = peek_meta(tx, cx, key)? else {
        return Ok(Frame::Integer(-2));
    };
    let Some(at) = entry.expire_at_ms else {
        return Ok(Frame::Integer(-1));
    };
    let at = at as i64;
    let t = if absolute {
        at
    } else {
        (at - cx.now_ms as i64).max(0)
    };
    Ok(Frame::Integer(if millis { t } else { (t + 500) / 1000 }))
}
