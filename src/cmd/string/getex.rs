//! GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
use bytes::Bytes;
use txn::{Expiry, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

use super::set::TtlArg;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "getex",
    -2,
    WRITE | FAST,
    "string",
    "Returns the string value of a key after setting its expiration time.",
)
.keys(1, 1, 1);

/// GETEX.
pub struct GetEx {
    key: Bytes,
    /// `None` = leave the TTL; `Some(None)` = PERSIST.
    ttl: Option<Option<TtlArg>>,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let key = args.next_bytes()?;
    let mut ttl = None;
    while let Some(opt) = args.next_upper() {
        if ttl.is_some() {
            return Err(CmdError::Syntax);
        }
        ttl = Some(match opt.as_str() {
            "PERSIST" => None,
            "EX" => Some(TtlArg::Ex(args.next_i64()?)),
            "PX" => Some(TtlArg::Px(args.next_i64()?)),
            "EXAT" => Some(TtlArg::ExAt(args.next_i64()?)),
            "PXAT" => Some(TtlArg::PxAt(args.next_i64()?)),
            _ => return Err(CmdError::Syntax),
        });
    }
    Ok(Command::data(GetEx { key, ttl }))
}

impl DataCommand for GetEx {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let expiry = match self.ttl {
            None => None,
            Some(None) => Some(Expiry::Persist),
            Some(Some(t)) => Some(t.resolve(cx.now_ms, "getex")?),
        };
        let value = get_string(tx, cx, &self.key)?;
        if value.is_some() {
            match expiry {
                Some(Expiry::Persist) => {
                    tx.set_expiry(cx.db, &self.key, None)?;
                }
                Some(Expiry::At(at)) => {
                    tx.set_expiry(cx.db, &self.key, Some(at))?;
                }
                _ => {}
            }
        }
        Ok(Frame::bulk_or_null(value))
    }
}
