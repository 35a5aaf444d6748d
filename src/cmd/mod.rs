//! Commands: the table, parsing and the two execution shapes.
//!
//! Invariant: a data command touches the keyspace only through the `Transaction` it is handed,
//! so the caller decides the transaction boundary (one command, a MULTI block, or an
//! interactive `TXN`), and the command's effects are atomic within it. Session commands never
//! touch the keyspace through a transaction; they act on the session or the server.

pub mod args;
pub mod conn;
pub mod keys;
pub mod long_double;
pub mod reply_error;
pub mod server;
pub mod spec;
pub mod string;
pub mod txn;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use ::txn::{CommitInfo, DbIndex, Entry, Isolation, Transaction, ValueKind};
use bytes::Bytes;

pub use args::ArgCursor;
pub use reply_error::CmdError;
pub use spec::CommandSpec;

use crate::resp::Frame;
use crate::server::Shared;
use crate::session::Session;

/// Context of a data command: the selected database and the time it runs at.
pub struct DataCx<'a> {
    /// The selected database.
    pub db: DbIndex,
    /// The engine clock when the command started (ms since the epoch).
    pub now_ms: u64,
    /// The server (cursor table, config).
    pub shared: &'a Shared,
}

/// A command that reads or writes keys inside the transaction it is given.
///
/// `execute` takes `&self` because `Engine::run` may call it again after a conflict.
pub trait DataCommand: Send + Sync {
    /// Runs against `tx`; a returned `CmdError::Txn` aborts the transaction.
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError>;

    /// Adjusts the reply once the commit is known (SETVER replies with the new version).
    fn after_commit(&self, reply: Frame, _info: &CommitInfo) -> Frame {
        reply
    }
}

/// Context of a session command.
pub struct SessionCx<'a> {
    /// The client's session.
    pub session: &'a mut Session,
    /// The server.
    pub shared: &'a Arc<Shared>,
}

/// A command that acts on the session or the server, not through a transaction.
pub trait SessionCommand: Send + Sync {
    /// Runs the command.
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError>;
}

/// A parsed command.
pub enum Command {
    /// Runs in an engine transaction.
    Data(Box<dyn DataCommand>),
    /// Runs on the session/server.
    Session(Box<dyn SessionCommand>),
    /// `MULTI`
    Multi,
    /// `EXEC`
    Exec,
    /// `DISCARD`
    Discard,
    /// `WATCH key...`
    Watch(Vec<Bytes>),
    /// `UNWATCH`
    Unwatch,
    /// `TXN BEGIN [SNAPSHOT|SERIALIZABLE]`
    TxnBegin(Isolation),
    /// `TXN COMMIT`
    TxnCommit,
    /// `TXN ABORT`
    TxnAbort,
}

impl Command {
    /// Boxes a data command.
    pub fn data(c: impl DataCommand + 'static) -> Command {
        Command::Data(Box::new(c))
    }

    /// Boxes a session command.
    pub fn session(c: impl SessionCommand + 'static) -> Command {
        Command::Session(Box::new(c))
    }
}

/// Context of a command's fast path: the selected database and the server.
pub struct FastCx<'a> {
    /// The selected database.
    pub db: DbIndex,
    /// The server.
    pub shared: &'a Shared,
}

/// A command's single-key fast path (`fast` beside `parse` in its file): runs the whole command
/// as one single-key engine call (`Engine::get`, `Engine::put`, `Engine::update`) instead of
/// parsing it into a boxed [`DataCommand`] and running that in an `Engine::run` transaction.
/// Its reply, effects, log record and durability wait are the general path's. It returns
/// `None`, having done nothing, for any argument list it does not handle (options, a second
/// key, anything malformed): the general path then runs and gives the usual reply or error.
/// The session uses it only outside MULTI and `TXN`, where the command is its own transaction.
pub type FastPath = fn(args: &[Bytes], cx: &FastCx<'_>) -> Option<Result<Fast, CmdError>>;

/// What a fast path did: its reply, and its commit (to wait for its durability).
pub struct Fast {
    /// The reply.
    pub reply: Frame,
    /// The commit (`commit_ts: None` if it wrote nothing).
    pub info: CommitInfo,
}

impl Fast {
    /// A reply after `info`.
    pub fn new(reply: Frame, info: CommitInfo) -> Fast {
        Fast { reply, info }
    }

    /// A reply of a command that wrote nothing.
    pub fn read(reply: Frame) -> Fast {
        Fast {
            reply,
            info: CommitInfo {
                commit_ts: None,
                lsn: None,
            },
        }
    }
}

/// A table row: the spec and how to parse the arguments after the name.
pub struct TableEntry {
    /// Metadata.
    pub spec: &'static CommandSpec,
    /// Parser for the arguments after the command name.
    pub parse: fn(ArgCursor) -> Result<Command, CmdError>,
    /// The single-key fast path, for the few commands that have one.
    pub fast: Option<FastPath>,
}

macro_rules! table {
    (@fast $m:path) => { None };
    (@fast $m:path, fast) => { Some({ use $m as m; m::fast as FastPath }) };
    ($($m:path $([$fast:ident])?),* $(,)?) => {
        /// Every command tierkv knows.
        pub static TABLE: &[TableEntry] = &[
            $(TableEntry {
                spec: { use $m as m; &m::SPEC },
                parse: { use $m as m; m::parse },
                fast: table!(@fast $m $(, $fast)?),
            }),*
        ];
    };
}

table!(
    string::get[fast],
    string::set[fast],
    string::setnx,
    string::setex,
    string::psetex,
    string::getset,
    string::getdel,
    string::getex,
    string::mget,
    string::mset,
    string::msetnx,
    string::append,
    string::strlen,
    string::getrange,
    string::setrange,
    string::incr[fast],
    string::decr[fast],
    string::incrby[fast],
    string::decrby[fast],
    string::incrbyfloat,
    string::lcs,
    string::getver,
    string::setver,
    string::cas,
    string::substr,
    keys::del[fast],
    keys::unlink,
    keys::exists,
    keys::touch,
    keys::type_,
    keys::rename,
    keys::renamenx,
    keys::copy,
    keys::keys_,
    keys::scan,
    keys::randomkey,
    keys::expire,
    keys::pexpire,
    keys::expireat,
    keys::pexpireat,
    keys::ttl,
    keys::pttl,
    keys::expiretime,
    keys::pexpiretime,
    keys::persist,
    keys::object,
    txn::multi,
    txn::exec,
    txn::discard,
    txn::watch,
    txn::unwatch,
    txn::txn_,
    conn::ping,
    conn::echo,
    conn::hello,
    conn::auth,
    conn::select,
    conn::quit,
    conn::reset,
    conn::client,
    server::swapdb,
    server::command,
    server::info,
    server::config,
    server::dbsize,
    server::flushdb,
    server::flushall,
    server::time,
    server::lastsave,
    server::save,
    server::bgsave,
    server::debug,
    server::shutdown,
    server::slowlog,
    server::latency,
    server::memory,
);

/// Longest command name looked up; longer names are unknown without hashing them.
pub const COMMAND_NAME_MAX: usize = 32;

/// FNV-1a for command names. They are short, and the table is fixed: a client chooses only
/// what it looks up, never what is stored, so it cannot grow a probe beyond the table's size,
/// and SipHash's resistance to flooding buys nothing here (it cost about 2% of a pipelined GET).
struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type NameIndex = HashMap<Vec<u8>, usize, std::hash::BuildHasherDefault<NameHasher>>;

fn index() -> &'static NameIndex {
    static INDEX: OnceLock<NameIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        TABLE
            .iter()
            .enumerate()
            .map(|(i, e)| (e.spec.name.as_bytes().to_vec(), i))
            .collect()
    })
}

/// Finds a command by name, case-insensitively; returns its table index too.
pub fn lookup(name: &[u8]) -> Option<(usize, &'static TableEntry)> {
    // Lowercase into a stack buffer: clients (redis-benchmark, redis-cli) send upper case.
    let mut lower = [0u8; COMMAND_NAME_MAX];
    let dst = lower.get_mut(..name.len())?;
    for (d, s) in dst.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let idx = *index().get(&*dst)?;
    TABLE.get(idx).map(|e| (idx, e))
}

/// The live entry of `key`: `None` when absent or already past its expiry time. Counts as an
/// access of the key (its LRU clock / LFU counter), as Redis's `lookupKey` does.
pub fn live(tx: &mut Transaction, cx: &DataCx<'_>, key: &[u8]) -> Result<Option<Entry>, CmdError> {
    Ok(tx
        .get(cx.db, key)?
        .filter(|e| e.expire_at_ms.is_none_or(|at| at > cx.now_ms)))
}

/// [`live`] without counting an access (Redis's `LOOKUP_NOTOUCH`: OBJECT ENCODING).
pub fn peek(tx: &mut Transaction, cx: &DataCx<'_>, key: &[u8]) -> Result<Option<Entry>, CmdError> {
    Ok(tx
        .peek(cx.db, key)?
        .filter(|e| e.expire_at_ms.is_none_or(|at| at > cx.now_ms)))
}

/// [`live`] without the value's bytes, so it never waits for the SSD tier: the EXPIRE
/// family, PERSIST.
pub fn live_meta(
    tx: &mut Transaction,
    cx: &DataCx<'_>,
    key: &[u8],
) -> Result<Option<::txn::EntryMeta>, CmdError> {
    Ok(tx
        .get_meta(cx.db, key)?
        .filter(|e| e.expire_at_ms.is_none_or(|at| at > cx.now_ms)))
}

/// [`peek`] without the value's bytes, so it never waits for the SSD tier: EXISTS, TYPE,
/// STRLEN, the TTL family, OBJECT FREQ / IDLETIME.
pub fn peek_meta(
    tx: &mut Transaction,
    cx: &DataCx<'_>,
    key: &[u8],
) -> Result<Option<::txn::EntryMeta>, CmdError> {
    Ok(tx
        .peek_meta(cx.db, key)?
        .filter(|e| e.expire_at_ms.is_none_or(|at| at > cx.now_ms)))
}

/// The string value of `key`, if any; `WRONGTYPE` if it holds another type.
pub fn get_string(
    tx: &mut Transaction,
    cx: &DataCx<'_>,
    key: &[u8],
) -> Result<Option<Bytes>, CmdError> {
    match live(tx, cx, key)? {
        None => Ok(None),
        Some(e) if e.kind == ValueKind::String => Ok(Some(e.value)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// The name `TYPE` reports for a value kind.
pub fn type_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::String => "string",
        _ => "unknown",
    }
}

/// Parses `db` as a database index valid for this server.
pub fn parse_db(shared: &Shared, arg: &[u8]) -> Result<DbIndex, CmdError> {
    let n = args::parse_int(arg)?;
    let databases = i64::from(shared.config.read().databases);
    if n < 0 || n >= databases {
        return Err(CmdError::DbIndexOutOfRange);
    }
    DbIndex::try_from(n).map_err(|_| CmdError::DbIndexOutOfRange)
}

#[cfg(test)]
mod fast_tests;
#[cfg(test)]
mod tests;
