//! SET key value [NX|XX|IFEQ old] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
//!
//! `IFEQ old` (Valkey 8.1): write only if the current value equals `old`.
use bytes::Bytes;
use txn::{Expiry, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{
    get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx, Fast, FastCx,
};
use crate::resp::parse_i64;
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "set",
    -3,
    WRITE | DENYOOM,
    "string",
    "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
)
.keys(1, 1, 1);

/// When the write may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Only if the key is absent.
    Nx,
    /// Only if the key exists.
    Xx,
    /// Only if the current value equals this.
    IfEq(Bytes),
}

/// A TTL option as given (relative ones are resolved at execution time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlArg {
    /// EX seconds.
    Ex(i64),
    /// PX milliseconds.
    Px(i64),
    /// EXAT unix seconds.
    ExAt(i64),
    /// PXAT unix milliseconds.
    PxAt(i64),
    /// KEEPTTL.
    Keep,
}

/// An expire option of SET or GETEX with its number still unread: Redis reads the number only
/// after every option (SET) or after finding the key (GETEX), so its errors come last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingExpire {
    /// The option, upper case: `EX`, `PX`, `EXAT` or `PXAT`.
    kind: &'static str,
    number: Bytes,
}

impl PendingExpire {
    /// If `opt` (upper case) is an expire option, takes its number argument: missing, it is
    /// a syntax error, as in Redis.
    pub fn take(opt: &str, args: &mut ArgCursor) -> Option<Result<PendingExpire, CmdError>> {
        let kind = ["EX", "PX", "EXAT", "PXAT"]
            .into_iter()
            .find(|k| *k == opt)?;
        Some(
            args.next_bytes()
                .map(|number| PendingExpire { kind, number })
                .map_err(|_| CmdError::Syntax),
        )
    }

    /// Whether this and `opt` are the same option (which may repeat; different ones conflict).
    pub fn is(&self, opt: &str) -> bool {
        self.kind == opt
    }

    /// Reads the number.
    pub fn ttl(&self) -> Result<TtlArg, CmdError> {
        let n = crate::cmd::args::parse_int(&self.number)?;
        Ok(match self.kind {
            "EX" => TtlArg::Ex(n),
            "PX" => TtlArg::Px(n),
            "EXAT" => TtlArg::ExAt(n),
            _ => TtlArg::PxAt(n),
        })
    }
}

impl TtlArg {
    /// The absolute expiry time in ms, or the error Redis gives for a non-positive or
    /// overflowing time.
    pub fn resolve(self, now_ms: u64, cmd: &'static str) -> Result<Expiry, CmdError> {
        let bad = CmdError::InvalidExpire(cmd);
        let now = i64::try_from(now_ms).map_err(|_| CmdError::InvalidExpire(cmd))?;
        let at = match self {
            TtlArg::Keep => return Ok(Expiry::Keep),
            TtlArg::Ex(s) | TtlArg::ExAt(s) if s <= 0 => return Err(bad),
            TtlArg::Px(ms) | TtlArg::PxAt(ms) if ms <= 0 => return Err(bad),
            TtlArg::Ex(s) => s.checked_mul(1000).and_then(|ms| ms.checked_add(now)),
            TtlArg::Px(ms) => ms.checked_add(now),
            TtlArg::ExAt(s) => s.checked_mul(1000),
            TtlArg::PxAt(ms) => Some(ms),
        };
        let at = at.ok_or(bad)?;
        Ok(Expiry::At(
            u64::try_from(at).map_err(|_| CmdError::InvalidExpire(cmd))?,
        ))
    }
}

/// SET.
pub struct Set {
    /// Key.
    pub key: Bytes,
    /// New value.
    pub value: Bytes,
    /// NX / XX / IFEQ.
    pub condition: Option<Condition>,
    /// EX / PX / EXAT / PXAT / KEEPTTL; `None` clears the TTL.
    pub ttl: Option<TtlArg>,
    /// GET: reply with the old value.
    pub get: bool,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    let mut set = Set {
        key,
        value,
        condition: None,
        ttl: None,
        get: false,
    };
    // As Redis's `parseExtendedStringArgumentsOrReply`: an option may repeat (the last
    // expire wins) but not meet a conflicting one, and the expire's number is read only after
    // every option, so a syntax error anywhere comes before "not an integer".
    let mut expire: Option<PendingExpire> = None;
    while let Some(opt) = args.next_upper() {
        match opt.as_str() {
            "NX" if !matches!(set.condition, Some(Condition::Xx | Condition::IfEq(_))) => {
                set.condition = Some(Condition::Nx)
            }
            "XX" if !matches!(set.condition, Some(Condition::Nx | Condition::IfEq(_))) => {
                set.condition = Some(Condition::Xx)
            }
            "IFEQ" if set.condition.is_none() => {
                set.condition = Some(Condition::IfEq(args.next_bytes()?))
            }
            "GET" => set.get = true,
            "KEEPTTL" if expire.is_none() => set.ttl = Some(TtlArg::Keep),
            other if set.ttl.is_none() && expire.as_ref().is_none_or(|e| e.is(other)) => {
                match PendingExpire::take(other, &mut args) {
                    Some(taken) => expire = Some(taken?),
                    None => return Err(CmdError::Syntax),
                }
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    if let Some(expire) = expire {
        set.ttl = Some(expire.ttl()?);
    }
    Ok(Command::data(set))
}

/// The fast path for a blind write, `SET key value [EX s|PX ms|EXAT s|PXAT ms]`: one
/// `Engine::put`. Any other option (which reads the key) or any malformed argument takes the
/// general path.
pub fn fast(args: &[Bytes], cx: &FastCx<'_>) -> Option<Result<Fast, CmdError>> {
    let (key, value, ttl) = match args {
        [key, value] => (key, value, None),
        [key, value, option, n] => {
            let n = parse_i64(n)?;
            let ttl = if option.eq_ignore_ascii_case(b"EX") {
                TtlArg::Ex(n)
            } else if option.eq_ignore_ascii_case(b"PX") {
                TtlArg::Px(n)
            } else if option.eq_ignore_ascii_case(b"EXAT") {
                TtlArg::ExAt(n)
            } else if option.eq_ignore_ascii_case(b"PXAT") {
                TtlArg::PxAt(n)
            } else {
                return None;
            };
            (key, value, Some(ttl))
        }
        _ => return None,
    };
    let expire_at_ms = match ttl {
        None => None,
        Some(ttl) => match ttl.resolve(cx.shared.engine.now_ms(), "set") {
            Ok(Expiry::At(at)) => Some(at),
            _ => return None,
        },
    };
    let committed = cx.shared.engine.put(cx.db, key, value, expire_at_ms);
    Some(
        committed
            .map(|info| Fast::new(Frame::ok(), info))
            .map_err(CmdError::from),
    )
}

impl DataCommand for Set {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let expiry = match self.ttl {
            Some(t) => t.resolve(cx.now_ms, "set")?,
            None => Expiry::Persist,
        };
        if self.condition.is_none() && !self.get {
            // A blind write: no read, so nothing to validate at commit but the write itself.
            tx.put(cx.db, &self.key, &self.value, expiry)?;
            return Ok(Frame::ok());
        }
        let old = get_string(tx, cx, &self.key)?;
        let allowed = match &self.condition {
            None => true,
            Some(Condition::Nx) => old.is_none(),
            Some(Condition::Xx) => old.is_some(),
            Some(Condition::IfEq(expected)) => old.as_ref() == Some(expected),
        };
        if allowed {
            tx.put(cx.db, &self.key, &self.value, expiry)?;
        }
        Ok(match (self.get, allowed) {
            (true, _) => Frame::bulk_or_null(old),
            (false, true) => Frame::ok(),
            (false, false) => Frame::Null,
        })
    }
}
