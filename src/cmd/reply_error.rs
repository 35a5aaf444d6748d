//! Every error reply tierkv sends, with Redis 7's exact text, and the mapping from engine errors.
//!
//! Invariant: command code returns a [`CmdError`]; only [`CmdError::to_frame`] turns it into
//! bytes, so the wire text of an error lives in exactly one place.

use bytes::Bytes;
use txn::TxnError;

use crate::resp::Frame;

/// Redis's `shared.oomerr` text (without the leading `-`).
const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
/// Redis's note after the OBJECT FREQ/IDLETIME policy errors.
const POLICY_SWITCH_NOTE: &str = "Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

/// Why a command failed, as the client will be told.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmdError {
    /// Arity mismatch; holds the lowercase command name (`config|get` for subcommands).
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// Unknown command name.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand {
        /// The name as sent.
        name: String,
        /// `'a' 'b' ` as Redis prints the first arguments.
        args: String,
    },
    /// Unknown subcommand of a container command.
    #[error("ERR unknown subcommand '{sub}'. Try {cmd} HELP.")]
    UnknownSubcommand {
        /// The container command, uppercase.
        cmd: &'static str,
        /// The subcommand as sent.
        sub: String,
    },
    /// The key holds a non-string value.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// An argument or stored value is not a 64-bit integer.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An argument or stored value is not a float.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// Options don't parse.
    #[error("ERR syntax error")]
    Syntax,
    /// Bad or non-positive expire time.
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    /// INCR family overflow.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// DECRBY of i64::MIN (whose negation does not exist).
    #[error("ERR decrement would overflow")]
    DecrementOverflow,
    /// INCRBYFLOAT produced NaN or infinity.
    #[error("ERR increment would produce NaN or Infinity")]
    NanOrInfinity,
    /// EXPIRE with NX together with XX/GT/LT.
    #[error("ERR NX and XX, GT or LT options at the same time are not compatible")]
    ExpireNxConflict,
    /// EXPIRE with GT and LT.
    #[error("ERR GT and LT options at the same time are not compatible")]
    ExpireGtLt,
    /// SELECT/MOVE/COPY to a missing database.
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    /// SWAPDB's first index is bad.
    #[error("ERR invalid first DB index")]
    InvalidFirstDb,
    /// SWAPDB's second index is bad.
    #[error("ERR invalid second DB index")]
    InvalidSecondDb,
    /// RENAME of a missing key.
    #[error("ERR no such key")]
    NoSuchKey,
    /// SETRANGE/GETRANGE offset problems.
    #[error("ERR offset is out of range")]
    OffsetOutOfRange,
    /// A string would exceed `proto-max-bulk-len`.
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
    /// SCAN cursor not a number.
    #[error("ERR invalid cursor")]
    InvalidCursor,
    /// A command other than AUTH/HELLO before authentication.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// AUTH with a wrong password.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// AUTH with no password configured.
    #[error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")]
    AuthNotConfigured,
    /// HELLO with a protocol other than 2 or 3.
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    /// MULTI inside MULTI.
    #[error("ERR MULTI calls can not be nested")]
    NestedMulti,
    /// EXEC outside MULTI.
    #[error("ERR EXEC without MULTI")]
    ExecWithoutMulti,
    /// DISCARD outside MULTI.
    #[error("ERR DISCARD without MULTI")]
    DiscardWithoutMulti,
    /// WATCH inside MULTI.
    #[error("ERR WATCH inside MULTI is not allowed")]
    WatchInMulti,
    /// EXEC after a queued command was rejected.
    #[error("EXECABORT Transaction discarded because of previous errors.")]
    ExecAbort,
    /// A command that may grow memory (Redis's `denyoom`), or any command queued in MULTI,
    /// while memory is over `maxmemory` and the policy frees none.
    #[error("{}", OOM)]
    OutOfMemory,
    /// EXEC with arguments, inside MULTI: the transaction is discarded.
    #[error(
        "EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command"
    )]
    ExecAbortArity,
    /// EXEC of a block holding `denyoom` commands while memory is over `maxmemory`.
    #[error("EXECABORT Transaction discarded because of: {}", OOM)]
    ExecAbortOutOfMemory,
    /// OBJECT FREQ under a policy that is not LFU.
    #[error(
        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. {}",
        POLICY_SWITCH_NOTE
    )]
    FrequencyNotTracked,
    /// OBJECT IDLETIME under an LFU policy.
    #[error(
        "ERR An LFU maxmemory policy is selected, idle time not tracked. {}",
        POLICY_SWITCH_NOTE
    )]
    IdleTimeNotTracked,
    /// A command that can't run inside MULTI.
    #[error("ERR Command not allowed inside a transaction")]
    NotInMulti,
    /// `TXN BEGIN` while one is open, or MULTI/WATCH inside an interactive transaction.
    #[error("ERR TXN already in progress")]
    TxnInProgress,
    /// `TXN COMMIT/ABORT` with none open.
    #[error("ERR no TXN in progress")]
    NoTxn,
    /// First committer wins: another transaction wrote a key this one wrote (or read, when
    /// serializable) after our snapshot.
    #[error(
        "CONFLICT transaction aborted: a concurrent transaction committed a conflicting write"
    )]
    Conflict,
    /// The engine aborted the open `TXN` because its snapshot was open longer than
    /// `snapshot-max-age` (Oracle's "snapshot too old"). Every command of it gets this until
    /// TXN ABORT (or COMMIT, which fails with it) ends it.
    #[error("SNAPSHOTTOOOLD Transaction aborted: open {age_secs} s, longer than 'snapshot-max-age' ({limit_secs} s). End it with TXN ABORT and retry.")]
    SnapshotTooOldAge {
        /// The transaction's age when aborted, whole seconds.
        age_secs: u64,
        /// `snapshot-max-age`.
        limit_secs: u64,
    },
    /// The engine aborted the open `TXN` because the old versions kept for its snapshot
    /// exceeded `snapshot-max-pinned-memory`; as [`CmdError::SnapshotTooOldAge`] otherwise.
    #[error("SNAPSHOTTOOOLD Transaction aborted: its snapshot kept {pinned_bytes} bytes of old versions, over 'snapshot-max-pinned-memory' ({limit_bytes} bytes). End it with TXN ABORT and retry.")]
    SnapshotTooOldMemory {
        /// Bytes pinned when it was aborted.
        pinned_bytes: u64,
        /// `snapshot-max-pinned-memory`.
        limit_bytes: u64,
    },
    /// Another engine failure.
    #[error("ERR {0}")]
    Engine(String),
    /// CONFIG SET of an unknown or immutable option.
    #[error("ERR Unknown option or number of arguments for CONFIG SET - '{0}'")]
    ConfigUnknown(String),
    /// CONFIG SET with a bad value.
    #[error("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")]
    ConfigInvalid {
        /// Option name.
        name: String,
        /// Why.
        reason: String,
    },
    /// CLIENT SETNAME with spaces or newlines.
    #[error("ERR Client names cannot contain spaces, newlines or special characters.")]
    BadClientName,
    /// CLIENT KILL found nobody.
    #[error("ERR No such client")]
    NoSuchClient,
    /// maxclients reached.
    #[error("ERR max number of clients reached")]
    MaxClients,
    /// A timeout argument that isn't a valid number of seconds.
    #[error("ERR timeout is not a float or out of range")]
    BadTimeout,
    /// A negative timeout.
    #[error("ERR timeout is negative")]
    NegativeTimeout,
    /// A numeric argument that must be positive.
    #[error("ERR {0} must be positive")]
    MustBePositive(&'static str),
    /// Protected mode refused a remote client.
    #[error("DENIED Running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to tierkv you may set a password with CONFIG SET requirepass, or disable protected mode with CONFIG SET protected-mode no.")]
    Denied,
    /// The engine's retry budget ran out or a transaction was otherwise aborted.
    #[error("ERR transaction aborted")]
    Aborted,
    /// An option keyword the command doesn't know (EXPIRE family).
    #[error("ERR Unsupported option {0}")]
    UnsupportedOption(String),
    /// Fixed Redis text not covered above (kept `'static` so nothing is assembled ad hoc).
    #[error("{0}")]
    Static(&'static str),
    /// An engine error the server must propagate to `Engine::run` so it can retry.
    #[error("engine: {0}")]
    Txn(TxnError),
}

impl From<TxnError> for CmdError {
    fn from(e: TxnError) -> Self {
        CmdError::Txn(e)
    }
}

impl CmdError {
    /// The unknown-command error with Redis's argument preview (first args, quoted, 128 chars).
    pub fn unknown_command(name: &[u8], args: &[Bytes]) -> CmdError {
        let mut preview = String::new();
        for a in args {
            let s = String::from_utf8_lossy(a);
            let room = 128usize.saturating_sub(preview.len());
            if room == 0 {
                break;
            }
            let s: String = s.chars().take(room).collect();
            preview.push_str(&format!("'{s}' "));
        }
        CmdError::UnknownCommand {
            name: String::from_utf8_lossy(name).chars().take(128).collect(),
            args: preview,
        }
    }

    /// Converts to the error reply (one place for wire texts).
    pub fn to_frame(&self) -> Frame {
        match self {
            CmdError::Txn(e) => txn_error_frame(e),
            other => Frame::error(other.to_string()),
        }
    }
}

/// The reply for an engine error that reached the client.
pub fn txn_error_frame(e: &TxnError) -> Frame {
    match e {
        TxnError::Conflict { .. } => CmdError::Conflict.to_frame(),
        TxnError::WatchFailed => Frame::NullArray,
        TxnError::OutOfMemory { .. } => CmdError::OutOfMemory.to_frame(),
        TxnError::SnapshotTooOld { exceeded } => match *exceeded {
            txn::LimitExceeded::MaxAge { limit_ms, age_ms } => CmdError::SnapshotTooOldAge {
                age_secs: age_ms / 1000,
                limit_secs: limit_ms / 1000,
            },
            txn::LimitExceeded::MaxPinnedMemory {
                limit_bytes,
                pinned_bytes,
            } => CmdError::SnapshotTooOldMemory {
                pinned_bytes,
                limit_bytes,
            },
        }
        .to_frame(),
        // Redis's text when its AOF cannot be written; writes resume once the WAL recovers.
        // A record over the log's size limit is this request's fault, not the disk's.
        TxnError::Sink(e @ txn::StorageError::RecordTooLarge { .. }) => {
            Frame::error(format!("ERR {e}"))
        }
        TxnError::Sink(e) => Frame::error(format!("MISCONF Errors writing to the AOF file: {e}")),
        other => Frame::error(format!("ERR {other}")),
    }
}
