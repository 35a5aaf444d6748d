//! GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
use bytes::Bytes;
use txn::{Expiry, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

use super::set::PendingExpire;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "getex",
    -2,
    WRITE | FAST | READS_VALUE,
    "string",
    "Returns the string value of a key after setting its expiration time.",
)
.keys(1, 1, 1);

/// GETEX.
pub struct GetEx {
    key: Bytes,
    /// `None` = leave the TTL; `Some(None)` = PERSIST; `Some(Some(expire))` = the expire, its
    /// number read only once the key is found (as Redis does).
    ttl: Option<Option<PendingExpire>>,
}

/// Parses the arguments after the name, as Redis's `parseExtendedStringArgumentsOrReply`: an
/// option may repeat (the last expire wins) but not meet a conflicting one.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let key = args.next_bytes()?;
    let mut ttl: Option<Option<PendingExpire>> = None;
    while let Some(opt) = args.next_upper() {
        match opt.as_str() {
            "PERSIST" if !matches!(ttl, Some(Some(_))) => ttl = Some(None),
            other
                if !matches!(ttl, Some(None))
                    && ttl
                        .as_ref()
                        .is_none_or(|t| t.as_ref().is_some_and(|e| e.is(other))) =>
            {
                match PendingExpire::take(other, &mut args) {
                    Some(taken) => ttl = Some(Some(taken?)),
                    None => return Err(CmdError::Syntax),
                }
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    Ok(Command::data(GetEx { key, ttl }))
}

impl DataCommand for GetEx {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        // Redis looks the key up (and checks its type) before it validates the expire: a
        // missing key answers nil whatever the expire says.
        let value = get_string(tx, cx, &self.key)?;
        if value.is_none() {
            return Ok(Frame::Null);
        }
        let expiry = match &self.ttl {
            None => None,
            Some(None) => Some(Expiry::Persist),
            Some(Some(expire)) => Some(expire.ttl()?.resolve(cx.now_ms, "getex")?),
        };
        match expiry {
            Some(Expiry::Persist) => {
                tx.set_expiry(cx.db, &self.key, None)?;
            }
            Some(Expiry::At(at)) => {
                tx.set_expiry(cx.db, &self.key, Some(at))?;
            }
            _ => {}
        }
        Ok(Frame::bulk_or_null(value))
    }
}
