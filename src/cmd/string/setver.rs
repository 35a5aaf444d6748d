//! SETVER key version value [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]: writes `value` only if the
//! key's version is still `version` (0 = the key must not exist). Replies with the new version,
//! or nil if the version changed. (tierkv extension; CAS is an alias.)
use bytes::Bytes;
use txn::{CommitInfo, Expiry, Transaction};

use super::set::TtlArg;
use crate::cmd::spec::flags::*;
use crate::cmd::{live, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "setver",
    -4,
    WRITE | DENYOOM | FAST,
    "string",
    "Sets a key only if its version is unchanged (versioned compare-and-set).",
)
.keys(1, 1, 1);

/// SETVER / CAS.
pub struct SetVer {
    key: Bytes,
    version: u64,
    value: Bytes,
    ttl: Option<TtlArg>,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let key = args.next_bytes()?;
    let version = u64::try_from(args.next_i64()?).map_err(|_| CmdError::NotInteger)?;
    let value = args.next_bytes()?;
    let mut ttl = None;
    while let Some(opt) = args.next_upper() {
        if ttl.is_some() {
            return Err(CmdError::Syntax);
        }
        ttl = Some(match opt.as_str() {
            "KEEPTTL" => TtlArg::Keep,
            "EX" => TtlArg::Ex(args.next_i64()?),
            "PX" => TtlArg::Px(args.next_i64()?),
            "EXAT" => TtlArg::ExAt(args.next_i64()?),
            "PXAT" => TtlArg::PxAt(args.next_i64()?),
            _ => return Err(CmdError::Syntax),
        });
    }
    Ok(Command::data(SetVer {
        key,
        version,
        value,
        ttl,
    }))
}

impl DataCommand for SetVer {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let expiry = match self.ttl {
            Some(t) => t.resolve(cx.now_ms, "setver")?,
            None => Expiry::Persist,
        };
        // Serializable validation of this read at commit turns a concurrent change into a
        // retry, and the retry then sees the new version and answers nil.
        let current = live(tx, cx, &self.key)?.map_or(0, |e| e.version.0);
        if current != self.version {
            return Ok(Frame::Null);
        }
        tx.put(cx.db, &self.key, &self.value, expiry)?;
        Ok(Frame::ok())
    }

    fn after_commit(&self, reply: Frame, info: &CommitInfo) -> Frame {
        match (&reply, info.commit_ts) {
            (Frame::Simple(_), Some(ts)) => Frame::Integer(ts.0 as i64),
            _ => reply,
        }
    }
}
