//! Session: one client's protocol state (database, RESP version, AUTH, MULTI queue, WATCH set,
//! open interactive transaction) and the dispatch of its commands.
//!
//! Invariant: every data command runs in exactly one engine transaction: its own
//! (`Engine::run`: Serializable, or Snapshot for read-only commands), the EXEC block's
//! (Serializable), or the open `TXN`; never outside one. Outside MULTI and `TXN`, a
//! single-key command may instead take its fast path (`cmd::FastPath`): one single-key engine
//! call (`Engine::get`, `put`, `update`) with the outcome and log record its own transaction
//! would have.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use txn::{DbIndex, Isolation, Transaction, TxnError, WatchMark};

use crate::cmd::reply_error::txn_error_frame;
use crate::cmd::spec::flags;
use crate::cmd::{
    lookup, ArgCursor, CmdError, Command, CommandSpec, DataCx, Fast, FastCx, SessionCx,
};
use crate::resp::{Frame, Protocol};
use crate::server::{ClientHandle, Shared};

/// Most commands a MULTI block may queue (a bound on the per-session queue).
pub const MULTI_QUEUE_MAX: usize = 1 << 20;
/// Most keys one session may WATCH.
pub const WATCH_KEYS_MAX: usize = 1 << 16;

/// Something the connection must do after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Flush replies, then close (QUIT, CLIENT KILL of self).
    Close,
    /// Stop the server (SHUTDOWN): close this connection without a reply.
    Shutdown,
    /// Pause this connection (DEBUG SLEEP) before the next command.
    Sleep(Duration),
}

struct Queued {
    table_index: usize,
    args: Vec<Bytes>,
}

/// One client's state.
pub struct Session {
    /// The registry entry other clients see (CLIENT LIST/KILL).
    pub client: Arc<ClientHandle>,
    /// The selected database.
    pub db: DbIndex,
    /// RESP2 or RESP3.
    pub proto: Protocol,
    /// Whether AUTH succeeded (or no password is set).
    pub authenticated: bool,
    /// What the connection must do next.
    pub action: Option<Action>,
    /// Highest WAL position of this session's own writes not yet acknowledged (0 = none).
    pub max_lsn: u64,
    /// Highest WAL position logged when this session's pending replies read data: they wait
    /// for it too, so nobody reads a write a crash could take back (0 = none).
    pub seen_lsn: u64,
    multi: Option<Vec<Queued>>,
    multi_failed: bool,
    watched: Vec<(DbIndex, Bytes, WatchMark)>,
    txn: Option<Transaction>,
    /// Whether single-key commands may take their fast path (tests turn it off to compare).
    fast_paths: bool,
    /// The values the last command needed from the SSD tier: it failed with nothing done, and
    /// runs again once the connection has fetched them (`connection.rs`).
    missing: Vec<txn::ValueRef>,
}

impl Session {
    /// A fresh session for `client`.
    pub fn new(client: Arc<ClientHandle>, shared: &Shared) -> Session {
        let authenticated = shared.config.read().requirepass.is_none();
        Session {
            client,
            db: 0,
            proto: Protocol::Resp2,
            authenticated,
            action: None,
            max_lsn: 0,
            seen_lsn: 0,
            multi: None,
            multi_failed: false,
            watched: Vec::new(),
            txn: None,
            fast_paths: true,
            missing: Vec::new(),
        }
    }

    /// The values the last command missed (see the field), taken.
    pub fn take_missing(&mut self) -> Vec<txn::ValueRef> {
        std::mem::take(&mut self.missing)
    }

    /// Notes the misses if `e` is one.
    fn note_miss(&mut self, e: &TxnError) {
        self.missing = e.values_not_resident();
    }

    fn note_cmd_miss(&mut self, e: &CmdError) {
        if let CmdError::Txn(e) = e {
            self.note_miss(e);
        }
    }

    /// Lets single-key commands take their fast path (the default) or not: the general path
    /// must give the same replies and effects, which tests check by running both.
    pub fn set_fast_paths(&mut self, enabled: bool) {
        self.fast_paths = enabled;
    }

    /// Whether a MULTI block is open.
    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// `RESET`: back to a fresh connection's state (keeps the client id).
    pub fn reset(&mut self, shared: &Shared) {
        self.db = 0;
        self.proto = Protocol::Resp2;
        self.authenticated = shared.config.read().requirepass.is_none();
        self.multi = None;
        self.multi_failed = false;
        self.watched.clear();
        if let Some(tx) = self.txn.take() {
            tx.abort();
        }
        self.client.set_name(None);
        self.client.set_db(0);
    }

    /// Remembers that the next replies must wait for `info`'s WAL position to be durable.
    pub fn note_lsn(&mut self, info: &txn::CommitInfo) {
        if let Some(lsn) = info.lsn {
            self.max_lsn = self.max_lsn.max(lsn.0);
        }
    }

    /// Runs one request and returns its reply.
    pub fn handle(&mut self, args: Vec<Bytes>, shared: &Arc<Shared>) -> Frame {
        self.missing.clear();
        let Some(name) = args.first() else {
            return Frame::Null;
        };
        let Some((table_index, entry)) = lookup(name) else {
            self.multi_failed |= self.multi.is_some();
            return CmdError::unknown_command(name, args.get(1..).unwrap_or_default()).to_frame();
        };
        let spec = entry.spec;
        if !spec.arity_ok(args.len()) {
            if self.multi.is_some() && spec.name == "exec" {
                // Redis's `execCommandAbort`: a rejected EXEC discards the transaction.
                self.multi = None;
                self.multi_failed = false;
                self.watched.clear();
                return CmdError::ExecAbortArity.to_frame();
            }
            self.multi_failed |= self.multi.is_some();
            return CmdError::WrongArity(spec.name.to_owned()).to_frame();
        }
        if !self.authenticated && !spec.has(flags::NO_AUTH) {
            self.multi_failed |= self.multi.is_some();
            return CmdError::NoAuth.to_frame();
        }
        let started = Instant::now();
        self.client.touch(table_index, started);
        // For the slow log, should this one turn out slow: how many arguments, and the first
        // one's leading bytes copied to the stack (a reference-counted clone of the name and
        // the argument, two atomic adds and two subtracts, cost 6-7 % of a pipelined GET).
        let argc = args.len();
        let mut first = crate::slowlog::FirstArg::default();
        if shared.slowlog.enabled() {
            if let Some(arg) = args.get(1) {
                first.keep(arg);
            }
        }
        let reply = if spec.has(flags::MAY_BLOCK) {
            offload(|| self.dispatch(table_index, args, shared))
        } else {
            self.dispatch(table_index, args, shared)
        };
        let took = started.elapsed();
        shared
            .stats
            .record(self.client.id, table_index, took, reply.is_error());
        if spec.has(flags::COUNTS_LOOKUPS) && self.multi.is_none() {
            shared
                .stats
                .count_lookups(self.client.id, spec.name, argc.saturating_sub(1), &reply);
        }
        shared.latency.record("command", took);
        if shared.slowlog.is_slow(took) && shared.slowlog.enabled() {
            shared.slowlog.push(
                spec.name,
                first.get(),
                argc,
                took,
                self.client.addr.to_string(),
                self.client.name().unwrap_or_default(),
            );
        }
        // Whatever this command saw (another client's write, or the absence a failed SET NX
        // observed) may still be in flight to the log: hold the reply until it is durable, as
        // Redis does by answering only after the event loop's fsync.
        if spec.has(flags::READONLY) || spec.has(flags::WRITE) || spec.has(flags::TXN_CONTROL) {
            self.seen_lsn = self.seen_lsn.max(shared.engine.last_logged_lsn());
        }
        reply
    }

    fn dispatch(&mut self, table_index: usize, args: Vec<Bytes>, shared: &Arc<Shared>) -> Frame {
        let Some(entry) = crate::cmd::TABLE.get(table_index) else {
            return Frame::Null;
        };
        if self.multi.is_some() && entry.spec.has(flags::NO_MULTI) {
            self.multi_failed = true;
            return CmdError::NotInMulti.to_frame();
        }
        if let Err(e) = self.admit(entry.spec, shared) {
            return e.to_frame();
        }
        // Outside MULTI and TXN the command is its own transaction: a single-key command may
        // take its fast path, which gives the same reply, effects and log record.
        if let Some(fast) = entry.fast.filter(|_| self.fast_paths) {
            if self.multi.is_none() && self.txn.is_none() {
                let cx = FastCx {
                    db: self.db,
                    shared,
                };
                if let Some(done) = fast(args.get(1..).unwrap_or_default(), &cx) {
                    return match done {
                        Ok(Fast { reply, info }) => {
                            self.note_lsn(&info);
                            reply
                        }
                        Err(e) => {
                            self.note_cmd_miss(&e);
                            e.to_frame()
                        }
                    };
                }
            }
        }
        if self.multi.is_some() && !entry.spec.has(flags::TXN_CONTROL) {
            // Redis resolves a container command's subcommand (OBJECT ENCODING, CONFIG GET,
            // CLIENT KILL ...) and checks its arity when queuing: an unknown subcommand or a
            // wrong count is refused now and fails the EXEC. Any other parse error is an
            // option error, which Redis reports at EXEC as that command's reply.
            let parsed = (entry.parse)(ArgCursor::new(args.iter().skip(1).cloned().collect()));
            if let Err(e @ (CmdError::UnknownSubcommand { .. } | CmdError::WrongArity(_))) = parsed
            {
                if matches!(&e, CmdError::UnknownSubcommand { .. })
                    || matches!(&e, CmdError::WrongArity(name) if name.contains('|'))
                {
                    self.multi_failed = true;
                    return e.to_frame();
                }
            }
        }
        if let Some(queue) = self.multi.as_mut() {
            // Inside MULTI everything but the transaction verbs is queued unparsed: like Redis,
            // option errors surface at EXEC as that command's reply.
            if !entry.spec.has(flags::TXN_CONTROL) {
                if queue.len() >= MULTI_QUEUE_MAX {
                    self.multi_failed = true;
                    return CmdError::Static("ERR MULTI queue is full").to_frame();
                }
                queue.push(Queued { table_index, args });
                return Frame::simple("QUEUED");
            }
        }
        let parsed = (entry.parse)(ArgCursor::new(args.into_iter().skip(1).collect()));
        let command = match parsed {
            Ok(c) => c,
            Err(e) => {
                self.multi_failed |= self.multi.is_some();
                return e.to_frame();
            }
        };
        // A read-only command reads one snapshot and writes nothing, so it is serializable at
        // its snapshot without read-set validation, and never conflicts or retries.
        let isolation = if entry.spec.has(flags::READONLY) {
            Isolation::Snapshot
        } else {
            Isolation::Serializable
        };
        match self.run(command, isolation, shared) {
            Ok(f) => f,
            Err(e) => e.to_frame(),
        }
    }

    /// Redis's `maxmemory` check before a command: one that may grow memory (`denyoom`), any
    /// command queued inside MULTI (the queue itself grows), and EXEC of a block holding a
    /// `denyoom` command first make room (`Engine::make_room`: evict per the policy); if that
    /// fails they are refused with `-OOM` (EXEC with `-EXECABORT ...`, discarding the block; a
    /// refused queued command makes EXEC fail, as any queue-time error does). Reads, DEL and the
    /// other transaction verbs always run. A no-op without `maxmemory`.
    fn admit(&mut self, spec: &CommandSpec, shared: &Shared) -> Result<(), CmdError> {
        let in_multi = self.multi.is_some();
        let exec = spec.name == crate::cmd::txn::exec::SPEC.name;
        let queued_denyoom = || {
            self.multi.iter().flatten().any(|q| {
                crate::cmd::TABLE
                    .get(q.table_index)
                    .is_some_and(|e| e.spec.has(flags::DENYOOM))
            })
        };
        let needs_room = spec.has(flags::DENYOOM)
            || (in_multi && !spec.has(flags::TXN_CONTROL))
            || (exec && queued_denyoom());
        if !needs_room {
            return Ok(());
        }
        match shared.engine.make_room() {
            Ok(()) => Ok(()),
            Err(TxnError::OutOfMemory { .. }) if exec => {
                self.multi = None;
                self.multi_failed = false;
                self.watched.clear();
                Err(CmdError::ExecAbortOutOfMemory)
            }
            Err(e) => {
                self.multi_failed |= in_multi;
                Err(CmdError::from(e))
            }
        }
    }

    fn run(
        &mut self,
        command: Command,
        isolation: Isolation,
        shared: &Arc<Shared>,
    ) -> Result<Frame, CmdError> {
        match command {
            Command::Data(cmd) => {
                let db = self.db;
                if let Some(tx) = self.txn.as_mut() {
                    // A TXN the engine aborted for a limit (`snapshot-max-age`,
                    // `snapshot-max-pinned-memory`) runs no data command until TXN ABORT/COMMIT ends it,
                    // so no command of the client's meant-to-be-atomic block runs on its own.
                    tx.check_open()?;
                    let cx = DataCx {
                        db,
                        now_ms: shared.engine.now_ms(),
                        shared,
                    };
                    // A miss inside a `TXN` fails the command before it wrote (values are
                    // read before a command decides what to write), so it runs again whole.
                    let result = cmd.execute(tx, &cx);
                    if let Err(e) = &result {
                        self.note_cmd_miss(e);
                    }
                    return result;
                }
                let result = shared.engine.run(isolation, |tx| {
                    let cx = DataCx {
                        db,
                        now_ms: shared.engine.now_ms(),
                        shared,
                    };
                    match cmd.execute(tx, &cx) {
                        Ok(f) => Ok(Ok(f)),
                        Err(CmdError::Txn(e)) => Err(e),
                        Err(e) => Ok(Err(e)),
                    }
                });
                match result {
                    Ok((reply, info)) => {
                        self.note_lsn(&info);
                        reply.map(|f| cmd.after_commit(f, &info))
                    }
                    Err(e) => {
                        self.note_miss(&e);
                        Ok(txn_error_frame(&e))
                    }
                }
            }
            Command::Session(cmd) => cmd.execute(&mut SessionCx {
                session: self,
                shared,
            }),
            Command::Multi => {
                if self.multi.is_some() {
                    return Err(CmdError::NestedMulti);
                }
                if self.txn.is_some() {
                    return Err(CmdError::TxnInProgress);
                }
                self.multi = Some(Vec::new());
                self.multi_failed = false;
                Ok(Frame::ok())
            }
            Command::Discard => {
                if self.multi.take().is_none() {
                    return Err(CmdError::DiscardWithoutMulti);
                }
                self.watched.clear();
                Ok(Frame::ok())
            }
            Command::Exec => self.exec(shared),
            Command::Watch(keys) => {
                if self.multi.is_some() {
                    return Err(CmdError::WatchInMulti);
                }
                if self.txn.is_some() {
                    return Err(CmdError::TxnInProgress);
                }
                if self.watched.len() + keys.len() > WATCH_KEYS_MAX {
                    return Err(CmdError::Static("ERR too many watched keys"));
                }
                for key in keys {
                    let mark = shared.engine.watch_mark(self.db, &key);
                    self.watched.push((self.db, key, mark));
                }
                Ok(Frame::ok())
            }
            Command::Unwatch => {
                self.watched.clear();
                Ok(Frame::ok())
            }
            Command::TxnBegin(iso) => {
                if let Some(tx) = &self.txn {
                    // An aborted one says why it is still in the way.
                    tx.check_open()?;
                    return Err(CmdError::TxnInProgress);
                }
                if self.multi.is_some() {
                    return Err(CmdError::TxnInProgress);
                }
                // Tracked and bounded by the snapshot limits (unlike a command's own
                // transaction), in the name of this client for INFO.
                self.txn = Some(shared.engine.begin_interactive(iso, self.client.id.0));
                Ok(Frame::ok())
            }
            Command::TxnCommit => {
                let tx = self.txn.take().ok_or(CmdError::NoTxn)?;
                match tx.commit() {
                    Ok(info) => {
                        self.note_lsn(&info);
                        Ok(Frame::Integer(info.commit_ts.map_or(0, |ts| ts.0 as i64)))
                    }
                    Err(TxnError::Conflict { .. }) => Err(CmdError::Conflict),
                    Err(e) => Ok(txn_error_frame(&e)),
                }
            }
            Command::TxnAbort => {
                let tx = self.txn.take().ok_or(CmdError::NoTxn)?;
                tx.abort();
                Ok(Frame::ok())
            }
        }
    }

    fn exec(&mut self, shared: &Arc<Shared>) -> Result<Frame, CmdError> {
        let queue = self.multi.take().ok_or(CmdError::ExecWithoutMulti)?;
        let watched = std::mem::take(&mut self.watched);
        if std::mem::take(&mut self.multi_failed) {
            return Err(CmdError::ExecAbort);
        }
        // With the SSD tier a command of the block may miss: the whole block is then undone
        // and must run again as queued, after the page is loaded.
        let requeue: Option<Vec<Queued>> = shared.engine.tier_attached().then(|| {
            queue
                .iter()
                .map(|q| Queued {
                    table_index: q.table_index,
                    args: q.args.clone(),
                })
                .collect()
        });
        let mut parsed = Vec::with_capacity(queue.len());
        for q in queue {
            let entry = crate::cmd::TABLE.get(q.table_index);
            let command = entry
                .ok_or(CmdError::Syntax)
                .and_then(|e| (e.parse)(ArgCursor::new(q.args.into_iter().skip(1).collect())));
            parsed.push(command);
        }
        let start_db = self.db;
        let result = shared.engine.run(Isolation::Serializable, |tx| {
            for (db, key, mark) in &watched {
                tx.watch(*db, key, *mark);
            }
            self.db = start_db;
            let mut replies = Vec::with_capacity(parsed.len());
            for command in &parsed {
                let reply = match command {
                    Err(e) => e.to_frame(),
                    Ok(Command::Data(cmd)) => {
                        let cx = DataCx {
                            db: self.db,
                            now_ms: shared.engine.now_ms(),
                            shared,
                        };
                        match cmd.execute(tx, &cx) {
                            Ok(f) => f,
                            Err(CmdError::Txn(e)) => return Err(e),
                            Err(e) => e.to_frame(),
                        }
                    }
                    Ok(Command::Session(cmd)) => cmd
                        .execute(&mut SessionCx {
                            session: self,
                            shared,
                        })
                        .unwrap_or_else(|e| e.to_frame()),
                    Ok(Command::Unwatch) => Frame::ok(),
                    Ok(_) => CmdError::NotInMulti.to_frame(),
                };
                replies.push(reply);
            }
            Ok(replies)
        });
        match result {
            Ok((replies, info)) => {
                self.note_lsn(&info);
                let replies = replies
                    .into_iter()
                    .zip(&parsed)
                    .map(|(f, c)| match c {
                        Ok(Command::Data(cmd)) if !f.is_error() => cmd.after_commit(f, &info),
                        _ => f,
                    })
                    .collect();
                Ok(Frame::Array(replies))
            }
            Err(error) => {
                // Nothing ran, as far as the client can tell: a SELECT queued in the block does
                // not stay in effect (Redis runs no queued command when EXEC fails).
                self.db = start_db;
                let missed = error.values_not_resident();
                if let (false, Some(queue)) = (missed.is_empty(), requeue) {
                    self.multi = Some(queue);
                    self.watched = watched;
                    self.missing = missed;
                }
                match error {
                    TxnError::WatchFailed => Ok(Frame::NullArray),
                    e => Ok(txn_error_frame(&e)),
                }
            }
        }
    }
}

/// Runs `f` with `block_in_place` on a multi-thread runtime, so a long command doesn't hold up
/// the other connections queued on this worker; runs it directly anywhere else (tests).
fn offload<R>(f: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(tx) = self.txn.take() {
            tx.abort();
        }
    }
}
