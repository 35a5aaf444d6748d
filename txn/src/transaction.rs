//! [`Transaction`]: reads at a snapshot, buffers writes, and hands them to `commit.rs`.
//!
//! Invariants:
//! - reads see exactly the versions with `commit_ts <= snapshot_ts`, overlaid with this
//!   transaction's own buffered writes; an expired key reads as absent (lazy expiry);
//! - nothing becomes visible to others before `commit` (writes stay in `writes`);
//! - the snapshot stays registered (holding GC's low watermark) until the transaction ends,
//!   or, for an interactive transaction ([`crate::Engine::begin_interactive`]), until the
//!   engine aborts it for a limit: its registration then belongs to a lease that every
//!   operation holds while it runs, and an aborted one fails every operation with
//!   [`TxnError::SnapshotTooOld`] before reading (`snapshot_limits.rs`);
//! - keyspace-wide ops (FLUSHDB, FLUSHALL, SWAPDB) are buffered too, in order, in `db_ops`;
//!   `view` says which database's snapshot each database then shows (its own, the other one
//!   after a SWAPDB, none after a flush), and `writes` always holds the writes relative to the
//!   state `db_ops` leave (a flush drops a database's buffered writes, a swap exchanges two
//!   databases' writes). So the commit installs `db_ops` first, then `writes`, and reads and
//!   the read set name the database actually read (`source`).
//! - [`Transaction::get`] counts as an access of the key (its LRU/LFU word, see
//!   `memory::access`); [`Transaction::peek`], scans and the engine's own reads do not.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::engine::{Db, Inner};
use crate::error::TxnError;
use crate::index::{KeyIndex, KeyNode, VersionView, EXPIRE_MAX_MS};
use crate::limits::{DATABASES, KEY_MAX_BYTES, TXN_WRITE_BYTES_MAX, VALUE_MAX_BYTES};
use crate::log_record::LogOp;
use crate::memory::KeyAccess;
use crate::snapshot::Registration;
use crate::snapshot_limits::{LeaseHold, SnapshotHolder, SnapshotLease};
use crate::timestamp::{CommitTs, SnapshotTs, TxnId};
use crate::{commit, CommitInfo, DbIndex, Entry, EntryMeta, Expiry, Isolation, ValueKind};

/// A buffered write.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    Put {
        value: Bytes,
        expire_at_ms: Option<u64>,
    },
    Delete,
    /// Change only the deadline of the key visible at the snapshot.
    SetExpiry {
        expire_at_ms: Option<u64>,
    },
}

/// The bytes a buffered write counts against [`TXN_WRITE_BYTES_MAX`].
fn write_bytes(key: &[u8], write: &Write) -> usize {
    key.len()
        + match write {
            Write::Put { value, .. } => value.len(),
            _ => 0,
        }
}

/// A keyspace-wide operation buffered in a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbOp {
    /// FLUSHDB: delete every key of the database.
    Flush(DbIndex),
    /// FLUSHALL: delete every key of every database.
    FlushAll,
    /// SWAPDB: exchange the contents of two databases.
    Swap(DbIndex, DbIndex),
}

impl DbOp {
    pub(crate) fn log_op(self) -> LogOp {
        match self {
            DbOp::Flush(db) => LogOp::FlushDb { db },
            DbOp::FlushAll => LogOp::FlushAll,
            DbOp::Swap(a, b) => LogOp::SwapDb { a, b },
        }
    }
}

/// For each database, the database whose snapshot it shows, or `None` once flushed.
type View = [Option<DbIndex>; DATABASES];

/// When [`Transaction::put_if`] writes. Checked against what the transaction sees (its
/// snapshot plus its own writes); first-committer-wins at commit makes the check and the write
/// atomic (a concurrent change of the key aborts the commit with a conflict).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition<'a> {
    /// Unconditionally (plain SET).
    Always,
    /// Only if the key is absent or expired (SET NX, SETNX, MSETNX per key).
    IfAbsent,
    /// Only if the key is present (SET XX).
    IfPresent,
    /// Only if the key's visible version is this one (compare-and-set by version).
    IfVersion(CommitTs),
    /// Only if the key's value equals this (compare-and-set by value, SET IFEQ).
    IfValue(&'a [u8]),
}

/// What a WATCH remembers about a key ([`crate::Engine::watch_mark`]); `EXEC` fails unless the
/// key is unchanged since (see [`Transaction::watch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchMark {
    /// The key's version visible at `taken_at` ([`CommitTs::NONE`] if it had none).
    pub version: CommitTs,
    /// The snapshot the watch read `version` at: every change after the watch commits above
    /// it.
    pub taken_at: CommitTs,
    /// The deadline of the key, live when watched: EXEC fails once it has passed, even before
    /// active expiry deleted the key (Redis's `isWatchedKeyExpired`).
    pub deadline: Option<u64>,
    /// The key was logically expired when watched (not yet deleted): its deletion afterwards,
    /// with nothing else in between, is no change (Redis's `touchWatchedKey`).
    pub expired: bool,
}

/// A key range a `Serializable` transaction scanned: `(db, start, end)`.
pub(crate) type ScannedRange = (DbIndex, Bound<Bytes>, Bound<Bytes>);

/// One transaction: owned, `'static` and `Send`, so a session can hold it across awaits.
pub struct Transaction {
    pub(crate) inner: Arc<Inner>,
    pub(crate) id: TxnId,
    pub(crate) isolation: Isolation,
    /// The timestamp reads see.
    snapshot: u64,
    /// The snapshot's registration, held by the transaction itself (`None` once finished, and
    /// always for a leased one).
    registration: Option<Registration>,
    /// A tracked transaction's lease, which owns its registration (see `snapshot_limits.rs`).
    lease: Option<Arc<SnapshotLease>>,
    pub(crate) writes: BTreeMap<DbIndex, BTreeMap<Bytes, Write>>,
    write_bytes: usize,
    pub(crate) reads: Vec<(DbIndex, Bytes)>,
    pub(crate) ranges: Vec<ScannedRange>,
    pub(crate) watches: Vec<(DbIndex, Bytes, WatchMark)>,
    /// Keyspace-wide ops, in the order they ran (see the module docs).
    pub(crate) db_ops: Vec<DbOp>,
    /// Scans read values on SSD in place ([`Transaction::allow_cold_reads`]).
    cold_reads: bool,
    /// `None` while `db_ops` is empty: every database shows itself.
    view: Option<Box<View>>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.id)
            .field("snapshot_ts", &self.snapshot_ts())
            .field("isolation", &self.isolation)
            .finish()
    }
}

pub(crate) fn check_key(key: &[u8]) -> Result<(), TxnError> {
    if key.len() > KEY_MAX_BYTES {
        return Err(TxnError::KeyTooLarge {
            len: key.len(),
            max: KEY_MAX_BYTES,
        });
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), TxnError> {
    if value.len() > VALUE_MAX_BYTES {
        return Err(TxnError::ValueTooLarge {
            len: value.len(),
            max: VALUE_MAX_BYTES,
        });
    }
    Ok(())
}

fn check_write_bytes(total: usize) -> Result<(), TxnError> {
    if total > TXN_WRITE_BYTES_MAX {
        return Err(TxnError::TransactionTooLarge {
            bytes: total,
            max: TXN_WRITE_BYTES_MAX,
        });
    }
    Ok(())
}

/// The checks [`Transaction::put`] makes on a transaction's only write (key, value, write
/// budget), in the same order with the same errors: the single-key commit path uses them.
pub(crate) fn check_single_put(key: &[u8], value: &[u8]) -> Result<(), TxnError> {
    check_key(key)?;
    check_value(value)?;
    check_write_bytes(key.len().saturating_add(value.len()))
}

fn to_owned_bound(bound: Bound<&[u8]>) -> Bound<Bytes> {
    match bound {
        Bound::Included(key) => Bound::Included(Bytes::copy_from_slice(key)),
        Bound::Excluded(key) => Bound::Excluded(Bytes::copy_from_slice(key)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn as_ref_bound(bound: &Bound<Bytes>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_ref()),
        Bound::Excluded(key) => Bound::Excluded(key.as_ref()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// True when no key lies between `start` and `end`.
pub(crate) fn range_is_empty(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e))
        | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
        _ => false,
    }
}

/// The smallest key greater than every key starting with `prefix`, if any.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Where a value a transaction sees is: its own buffered write, or a committed value's place
/// in the page store (read only when the caller needs the bytes).
enum Place {
    Own(Bytes),
    Page(storage::page::ValueRef),
}

pub(crate) fn entry_of(inner: &Inner, version: &VersionView) -> Result<Entry, TxnError> {
    Ok(Entry {
        value: crate::tier::read_value(inner, version.value)?,
        kind: ValueKind::String,
        version: CommitTs(version.commit_ts),
        expire_at_ms: version.expiry(),
    })
}

/// [`entry_of`], reading a value on SSD in place (blocking on the disk).
pub(crate) fn entry_of_cold(inner: &Inner, version: &VersionView) -> Result<Entry, TxnError> {
    Ok(Entry {
        value: inner.pages.read_cold(version.value)?,
        kind: ValueKind::String,
        version: CommitTs(version.commit_ts),
        expire_at_ms: version.expiry(),
    })
}

pub(crate) fn is_due(expire_at_ms: Option<u64>, now_ms: u64) -> bool {
    expire_at_ms.is_some_and(|deadline| deadline <= now_ms)
}

/// [`is_due`] against the engine's clock, read only for a key that has a deadline: most keys
/// have none, and the clock reads of a pipelined GET (three of them) took ~5% of its CPU.
pub(crate) fn is_due_now(inner: &Inner, expire_at_ms: Option<u64>) -> bool {
    expire_at_ms.is_some_and(|deadline| deadline <= inner.clock.now_ms())
}

impl Transaction {
    pub(crate) fn new(inner: Arc<Inner>, id: TxnId, isolation: Isolation) -> Transaction {
        let registration = inner.snapshots.register(&inner.oracle);
        let snapshot = registration.ts;
        Transaction::with_pin(inner, id, isolation, snapshot, Some(registration), None)
    }

    /// A transaction whose snapshot is tracked under a lease (interactive ones, checkpoints).
    pub(crate) fn new_leased(
        inner: Arc<Inner>,
        id: TxnId,
        isolation: Isolation,
        holder: SnapshotHolder,
    ) -> Transaction {
        let lease = inner.long_snapshots.lease(&inner, id, holder);
        let snapshot = lease.snapshot_ts();
        Transaction::with_pin(inner, id, isolation, snapshot, None, Some(lease))
    }

    fn with_pin(
        inner: Arc<Inner>,
        id: TxnId,
        isolation: Isolation,
        snapshot: u64,
        registration: Option<Registration>,
        lease: Option<Arc<SnapshotLease>>,
    ) -> Transaction {
        Transaction {
            inner,
            id,
            isolation,
            snapshot,
            registration,
            lease,
            writes: BTreeMap::new(),
            write_bytes: 0,
            reads: Vec::new(),
            ranges: Vec::new(),
            watches: Vec::new(),
            db_ops: Vec::new(),
            view: None,
            cold_reads: false,
        }
    }

    /// Lets this transaction's scans read values on SSD in place, blocking on the disk (a
    /// checkpoint's, on its own thread); others get `NotResident` and never block.
    pub(crate) fn allow_cold_reads(&mut self) {
        self.cold_reads = true;
    }

    /// The snapshot this transaction reads at.
    pub fn snapshot_ts(&self) -> SnapshotTs {
        SnapshotTs(self.snapshot)
    }

    /// Fails with [`TxnError::SnapshotTooOld`] if the engine aborted this (interactive)
    /// transaction for a limit; always `Ok` for others.
    pub fn check_open(&self) -> Result<(), TxnError> {
        self.hold().map(drop)
    }

    /// Takes the lease, if this transaction has one, for an operation on `&self`.
    fn hold(&self) -> Result<Option<LeaseHold<'_>>, TxnError> {
        match &self.lease {
            None => Ok(None),
            Some(lease) => lease.hold(&self.inner).map(Some),
        }
    }

    /// Runs `op` holding the lease, if this transaction has one: every public operation that
    /// reads or buffers goes through here (or [`Self::hold`]), and calls only unleased
    /// helpers inside (the lease is not reentrant). Without a lease this is one branch.
    fn leased<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<T, TxnError>,
    ) -> Result<T, TxnError> {
        let Some(lease) = self.lease.clone() else {
            return op(self);
        };
        let _held = lease.hold(&self.inner)?;
        op(self)
    }

    /// This transaction's id (diagnostics).
    pub fn id(&self) -> TxnId {
        self.id
    }

    /// True if the transaction has buffered writes (keyspace-wide ops included).
    pub fn has_writes(&self) -> bool {
        !self.db_ops.is_empty() || self.writes.values().any(|w| !w.is_empty())
    }

    /// The database whose committed contents `db` shows to this transaction: `db` itself, the
    /// other one after a SWAPDB here, `None` after a FLUSHDB/FLUSHALL here (only own writes).
    pub(crate) fn source(&self, db: DbIndex) -> Option<DbIndex> {
        match &self.view {
            None => Some(db),
            Some(view) => view.get(usize::from(db)).copied().flatten(),
        }
    }

    fn view_mut(&mut self) -> &mut View {
        self.view.get_or_insert_with(|| {
            // DATABASES <= u8::MAX (asserted in limits.rs), so every index fits a DbIndex.
            Box::new(std::array::from_fn(|db| Some(db as DbIndex)))
        })
    }

    /// Drops the buffered writes of `db`, returning their bytes to the budget.
    fn drop_writes(&mut self, db: DbIndex) {
        if let Some(writes) = self.writes.remove(&db) {
            let freed: usize = writes.iter().map(|(k, w)| write_bytes(k, w)).sum();
            self.write_bytes = self.write_bytes.saturating_sub(freed);
        }
    }

    /// FLUSHDB: from here on `db` reads as empty but for later writes; at commit every key
    /// it holds then is deleted, atomically with the rest of the transaction.
    pub fn flush_db(&mut self, db: DbIndex) -> Result<(), TxnError> {
        self.leased(|tx| tx.flush_db_unleased(db))
    }

    fn flush_db_unleased(&mut self, db: DbIndex) -> Result<(), TxnError> {
        self.inner.db(db)?;
        self.drop_writes(db);
        if let Some(slot) = self.view_mut().get_mut(usize::from(db)) {
            *slot = None;
        }
        self.db_ops.push(DbOp::Flush(db));
        Ok(())
    }

    /// FLUSHALL: [`Self::flush_db`] for every database.
    pub fn flush_all(&mut self) -> Result<(), TxnError> {
        self.leased(Self::flush_all_unleased)
    }

    fn flush_all_unleased(&mut self) -> Result<(), TxnError> {
        self.writes.clear();
        self.write_bytes = 0;
        *self.view_mut() = [None; DATABASES];
        self.db_ops.push(DbOp::FlushAll);
        Ok(())
    }

    /// SWAPDB: from here on `a` reads as `b` did and vice versa (own writes included); at
    /// commit the two databases' contents are exchanged, atomically with the rest of the
    /// transaction.
    pub fn swap_db(&mut self, a: DbIndex, b: DbIndex) -> Result<(), TxnError> {
        self.leased(|tx| tx.swap_db_unleased(a, b))
    }

    fn swap_db_unleased(&mut self, a: DbIndex, b: DbIndex) -> Result<(), TxnError> {
        self.inner.db(a)?;
        self.inner.db(b)?;
        if a == b {
            return Ok(());
        }
        let writes_a = self.writes.remove(&a);
        let writes_b = self.writes.remove(&b);
        if let Some(writes) = writes_a {
            self.writes.insert(b, writes);
        }
        if let Some(writes) = writes_b {
            self.writes.insert(a, writes);
        }
        // Both indexes were checked against DATABASES above, so the swap cannot panic.
        self.view_mut().swap(usize::from(a), usize::from(b));
        self.db_ops.push(DbOp::Swap(a, b));
        Ok(())
    }

    fn own_write(&self, db: DbIndex, key: &[u8]) -> Option<&Write> {
        self.writes.get(&db).and_then(|w| w.get(key))
    }

    /// The committed version `db` shows at the snapshot (ignores own writes and expiry), as
    /// its metadata and its value's place (not read: a place on SSD is not fetched); `touch`
    /// records the access in the key's access word.
    fn committed(
        &self,
        db: DbIndex,
        key: &[u8],
        touch: bool,
    ) -> Result<Option<(EntryMeta, Place)>, TxnError> {
        let Some(source) = self.source(db) else {
            return Ok(None);
        };
        let d = self.inner.db_at(source, self.snapshot_ts().0)?;
        let guard = crossbeam_epoch::pin();
        let Some(node) = d.index.get(key, &guard) else {
            return Ok(None);
        };
        Ok(match node.visible(self.snapshot_ts().0, &guard) {
            Some(version) if !version.tombstone => {
                if touch {
                    self.inner.memory.touch(node);
                }
                let meta = EntryMeta {
                    kind: ValueKind::String,
                    len: version.value.len as usize,
                    version: CommitTs(version.commit_ts),
                    expire_at_ms: version.expiry(),
                };
                Some((meta, Place::Page(version.value)))
            }
            _ => None,
        })
    }

    /// Reads `key` at the snapshot, seeing this transaction's own writes; an expired key is
    /// `None`. Own uncommitted writes report version [`CommitTs::UNCOMMITTED`]. Counts as an
    /// access of the key (LRU clock / LFU counter), as Redis's lookups do.
    pub fn get(&mut self, db: DbIndex, key: &[u8]) -> Result<Option<Entry>, TxnError> {
        self.leased(|tx| tx.read(db, key, true))
    }

    /// [`Transaction::get`] without recording an access (Redis's `LOOKUP_NOTOUCH`: EXISTS,
    /// TYPE, TTL, OBJECT).
    pub fn peek(&mut self, db: DbIndex, key: &[u8]) -> Result<Option<Entry>, TxnError> {
        self.leased(|tx| tx.read(db, key, false))
    }

    /// [`Transaction::peek`] without the value's bytes: never touches the SSD tier (a value
    /// whose page is on SSD is described from its index entry), never fails `NotResident`.
    pub fn peek_meta(&mut self, db: DbIndex, key: &[u8]) -> Result<Option<EntryMeta>, TxnError> {
        self.leased(|tx| tx.read_meta(db, key, false))
    }

    /// [`Transaction::peek_meta`] counting an access of the key, as [`Transaction::get`]
    /// does (STRLEN).
    pub fn get_meta(&mut self, db: DbIndex, key: &[u8]) -> Result<Option<EntryMeta>, TxnError> {
        self.leased(|tx| tx.read_meta(db, key, true))
    }

    fn read_meta(
        &mut self,
        db: DbIndex,
        key: &[u8],
        touch: bool,
    ) -> Result<Option<EntryMeta>, TxnError> {
        Ok(self.lookup(db, key, touch)?.map(|(meta, _)| meta))
    }

    /// What `key` shows at the snapshot, this transaction's own writes included, not expired:
    /// its metadata and where its bytes are. Records the read for validation under
    /// `Serializable`. The one resolution [`Transaction::read`] and
    /// [`Transaction::read_meta`] share; neither reads a committed value here.
    fn lookup(
        &mut self,
        db: DbIndex,
        key: &[u8],
        touch: bool,
    ) -> Result<Option<(EntryMeta, Place)>, TxnError> {
        self.inner.db(db)?;
        check_key(key)?;
        let found = match self.own_write(db, key) {
            Some(Write::Put {
                value,
                expire_at_ms,
            }) => Some((
                EntryMeta {
                    kind: ValueKind::String,
                    len: value.len(),
                    version: CommitTs::UNCOMMITTED,
                    expire_at_ms: *expire_at_ms,
                },
                Place::Own(value.clone()),
            )),
            Some(Write::Delete) => None,
            Some(Write::SetExpiry { expire_at_ms }) => {
                let expire_at_ms = *expire_at_ms;
                self.committed(db, key, touch)?.map(|(meta, place)| {
                    let meta = EntryMeta {
                        expire_at_ms,
                        version: CommitTs::UNCOMMITTED,
                        ..meta
                    };
                    (meta, place)
                })
            }
            None => {
                if self.isolation == Isolation::Serializable {
                    if let Some(source) = self.source(db) {
                        self.reads.push((source, Bytes::copy_from_slice(key)));
                    }
                }
                self.committed(db, key, touch)?
            }
        };
        // The clock is read only for keys with a deadline (most have none).
        Ok(found.filter(|(m, _)| !is_due_now(&self.inner, m.expire_at_ms)))
    }

    /// What OBJECT FREQ / IDLETIME report for `key`'s committed node, under the current
    /// eviction policy (frequency under an LFU policy, idle time otherwise); a key with no
    /// committed node (absent, or only this transaction's write) reports a new key's values.
    /// Records no access.
    pub fn key_access(&self, db: DbIndex, key: &[u8]) -> Result<KeyAccess, TxnError> {
        let _held = self.hold()?;
        self.inner.db(db)?;
        let tracking = self.inner.memory.tracking();
        // The database `db` shows in this transaction (another one after its own SWAPDB).
        let Some(source) = self.source(db) else {
            return Ok(tracking.report(tracking.fresh()));
        };
        let d = self.inner.db_at(source, self.snapshot_ts().0)?;
        let guard = crossbeam_epoch::pin();
        let word = d
            .index
            .get(key, &guard)
            .filter(|node| node.newest(&guard).is_some_and(|v| !v.tombstone))
            .map_or_else(|| tracking.fresh(), |node| node.access());
        Ok(tracking.report(word))
    }

    fn read(&mut self, db: DbIndex, key: &[u8], touch: bool) -> Result<Option<Entry>, TxnError> {
        let Some((meta, place)) = self.lookup(db, key, touch)? else {
            return Ok(None);
        };
        let value = match place {
            Place::Own(value) => value,
            Place::Page(value) => crate::tier::read_value(&self.inner, value)?,
        };
        Ok(Some(Entry {
            value,
            kind: meta.kind,
            version: meta.version,
            expire_at_ms: meta.expire_at_ms,
        }))
    }

    fn add_write(&mut self, db: DbIndex, key: &[u8], write: Write) -> Result<(), TxnError> {
        let added = write_bytes(key, &write);
        let total = self.write_bytes.saturating_add(added);
        check_write_bytes(total)?;
        self.write_bytes = total;
        self.writes
            .entry(db)
            .or_default()
            .insert(Bytes::copy_from_slice(key), write);
        Ok(())
    }

    /// Sets `key` to `value`; `expiry` decides the deadline (`Keep` keeps the deadline of the
    /// value this transaction currently sees).
    pub fn put(
        &mut self,
        db: DbIndex,
        key: &[u8],
        value: &[u8],
        expiry: Expiry,
    ) -> Result<(), TxnError> {
        self.leased(|tx| tx.put_unleased(db, key, value, expiry))
    }

    fn put_unleased(
        &mut self,
        db: DbIndex,
        key: &[u8],
        value: &[u8],
        expiry: Expiry,
    ) -> Result<(), TxnError> {
        self.inner.db(db)?;
        check_key(key)?;
        check_value(value)?;
        let expire_at_ms = match expiry {
            Expiry::Persist => None,
            Expiry::At(deadline) => Some(deadline.min(EXPIRE_MAX_MS)),
            Expiry::Keep => self.read(db, key, false)?.and_then(|e| e.expire_at_ms),
        };
        self.add_write(
            db,
            key,
            Write::Put {
                value: Bytes::copy_from_slice(value),
                expire_at_ms,
            },
        )
    }

    /// Writes `key` if `condition` holds for what this transaction sees; returns whether it
    /// wrote. See [`Condition`].
    pub fn put_if(
        &mut self,
        db: DbIndex,
        key: &[u8],
        value: &[u8],
        expiry: Expiry,
        condition: Condition<'_>,
    ) -> Result<bool, TxnError> {
        self.leased(|tx| tx.put_if_unleased(db, key, value, expiry, condition))
    }

    fn put_if_unleased(
        &mut self,
        db: DbIndex,
        key: &[u8],
        value: &[u8],
        expiry: Expiry,
        condition: Condition<'_>,
    ) -> Result<bool, TxnError> {
        let holds = match condition {
            Condition::Always => true,
            condition => {
                let current = self.read(db, key, false)?;
                match condition {
                    Condition::IfAbsent => current.is_none(),
                    Condition::IfPresent => current.is_some(),
                    Condition::IfVersion(version) => current.is_some_and(|e| e.version == version),
                    Condition::IfValue(expected) => current.is_some_and(|e| e.value == expected),
                    Condition::Always => true,
                }
            }
        };
        if holds {
            self.put_unleased(db, key, value, expiry)?;
        }
        Ok(holds)
    }

    /// Deletes `key`; true if a live key was visible.
    pub fn delete(&mut self, db: DbIndex, key: &[u8]) -> Result<bool, TxnError> {
        self.leased(|tx| tx.delete_unleased(db, key))
    }

    fn delete_unleased(&mut self, db: DbIndex, key: &[u8]) -> Result<bool, TxnError> {
        // Existence only: a value on SSD is not read to delete it.
        let existed = self.read_meta(db, key, false)?.is_some();
        if existed || self.own_write(db, key).is_some() {
            self.add_write(db, key, Write::Delete)?;
        }
        Ok(existed)
    }

    /// Changes only the deadline of `key` (`None` = persist); false if no live key is visible.
    /// A deadline already passed deletes the key, as Redis does.
    pub fn set_expiry(
        &mut self,
        db: DbIndex,
        key: &[u8],
        expire_at_ms: Option<u64>,
    ) -> Result<bool, TxnError> {
        self.leased(|tx| tx.set_expiry_unleased(db, key, expire_at_ms))
    }

    fn set_expiry_unleased(
        &mut self,
        db: DbIndex,
        key: &[u8],
        expire_at_ms: Option<u64>,
    ) -> Result<bool, TxnError> {
        let expire_at_ms = expire_at_ms.map(|deadline| deadline.min(EXPIRE_MAX_MS));
        // Existence only: a value on SSD is not read to change its deadline.
        if self.read_meta(db, key, false)?.is_none() {
            return Ok(false);
        }
        if is_due(expire_at_ms, self.inner.clock.now_ms()) {
            self.add_write(db, key, Write::Delete)?;
            return Ok(true);
        }
        let write = match self.own_write(db, key) {
            Some(Write::Put { value, .. }) => Write::Put {
                value: value.clone(),
                expire_at_ms,
            },
            _ => Write::SetExpiry { expire_at_ms },
        };
        self.add_write(db, key, write)?;
        Ok(true)
    }

    /// DBSIZE as this transaction sees `db`: the key count of the database it shows (the live
    /// counter, not the snapshot's, as [`crate::Engine::dbsize`]; 0 after a flush here),
    /// corrected by this transaction's own writes to `db` against what it sees at its snapshot.
    /// O(own writes to `db`).
    pub fn dbsize(&mut self, db: DbIndex) -> Result<u64, TxnError> {
        let _held = self.hold()?;
        self.inner.db(db)?;
        let base = match self.source(db) {
            Some(source) => self
                .inner
                .db(source)?
                .live_keys
                .load(std::sync::atomic::Ordering::Relaxed),
            None => 0,
        };
        let mut count = base;
        if let Some(writes) = self.writes.get(&db) {
            for (key, write) in writes {
                // Counted like the live counter: expired-but-not-deleted keys still count.
                let before = self.committed(db, key, false)?.is_some();
                let after = match write {
                    Write::Put { .. } => true,
                    Write::Delete => false,
                    Write::SetExpiry { .. } => before,
                };
                count += i64::from(after) - i64::from(before);
            }
        }
        Ok(count.max(0) as u64)
    }

    /// RANDOMKEY as this transaction sees `db`. Without keyspace-wide ops or own writes to `db`
    /// this is [`crate::Engine::random_key`]; otherwise a random committed key of the database
    /// `db` shows is only the starting point, and the first live key at or after it in this
    /// transaction's view (wrapping around) is the answer.
    pub fn random_key(&mut self, db: DbIndex) -> Result<Option<Bytes>, TxnError> {
        self.leased(|tx| tx.random_key_unleased(db))
    }

    fn random_key_unleased(&mut self, db: DbIndex) -> Result<Option<Bytes>, TxnError> {
        self.inner.db(db)?;
        let probe = self
            .source(db)
            .and_then(|source| crate::engine::random_key_in(&self.inner, source));
        let own_writes = self.writes.get(&db).is_some_and(|w| !w.is_empty());
        if self.view.is_none() && !own_writes {
            return Ok(probe);
        }
        let start = probe
            .as_ref()
            .map_or(Bound::Unbounded, |probe| Bound::Included(probe.as_ref()));
        let from_probe = self.scan_range_unleased(db, start, Bound::Unbounded, 1)?;
        if let Some((key, _)) = from_probe.into_iter().next() {
            return Ok(Some(key));
        }
        let from_start = self.scan_range_unleased(db, Bound::Unbounded, Bound::Unbounded, 1)?;
        Ok(from_start.into_iter().next().map(|(key, _)| key))
    }

    /// Makes `commit` fail with [`TxnError::WatchFailed`] if `key` changed after `mark` was
    /// taken: its newest committed version differs, or it is absent now and GC removed a node
    /// of it (or of a key sharing its removal bucket) that was deleted after the mark (see
    /// `gc.rs`, "removal marks"). Reads nothing, so it takes no lease: an aborted interactive
    /// transaction fails at commit anyway.
    pub fn watch(&mut self, db: DbIndex, key: &[u8], mark: WatchMark) {
        self.watches.push((db, Bytes::copy_from_slice(key), mark));
    }

    /// Up to `limit` live keys after `after` (exclusive) starting with `prefix`, in key order,
    /// at the snapshot (with own writes). Pass the last key returned as `after` to continue:
    /// the cursor is a key, so it survives concurrent writes.
    pub fn scan(
        &mut self,
        db: DbIndex,
        after: Option<&[u8]>,
        prefix: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Entry)>, TxnError> {
        let prefix = prefix.unwrap_or(b"");
        let successor = prefix_successor(prefix);
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let end = match &successor {
            Some(end) => Bound::Excluded(end.as_slice()),
            None => Bound::Unbounded,
        };
        self.leased(|tx| tx.scan_range_unleased(db, start, end, limit))
    }

    /// Up to `limit` live keys in `(start, end)`, in key order, at the snapshot (with own
    /// writes).
    pub fn scan_range(
        &mut self,
        db: DbIndex,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Entry)>, TxnError> {
        self.leased(|tx| tx.scan_range_unleased(db, start, end, limit))
    }

    fn scan_range_unleased(
        &mut self,
        db: DbIndex,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Entry)>, TxnError> {
        self.inner.db(db)?;
        // The committed database this one shows (none after a flush here: own writes only).
        let source = self.source(db);
        let d = source
            .map(|source| self.inner.db_at(source, self.snapshot_ts().0))
            .transpose()?;
        let mut out: Vec<(Bytes, Entry)> = Vec::new();
        if limit == 0 || range_is_empty(start, end) {
            return Ok(out);
        }
        let now = self.inner.clock.now_ms();
        let snapshot = self.snapshot_ts().0;
        let cold_reads = self.cold_reads;
        let empty = BTreeMap::new();
        let own = self.writes.get(&db).unwrap_or(&empty);
        let mut own_iter = own.range::<[u8], _>((start, end)).peekable();
        let mut error = None;
        let inner = &self.inner;
        let guard = crossbeam_epoch::pin();
        let own_entry = |key: &Bytes,
                         write: &Write,
                         node: Option<&KeyNode>|
         -> Result<Option<Entry>, TxnError> {
            Ok(match write {
                Write::Put {
                    value,
                    expire_at_ms,
                } => Some(Entry {
                    value: value.clone(),
                    kind: ValueKind::String,
                    version: CommitTs::UNCOMMITTED,
                    expire_at_ms: *expire_at_ms,
                }),
                Write::Delete => None,
                Write::SetExpiry { expire_at_ms } => {
                    let node = node.or_else(|| d.and_then(|d| d.index.get(key, &guard)));
                    let base = node
                        .and_then(|node| node.visible(snapshot, &guard))
                        .filter(|v| !v.tombstone)
                        .map(|v| entry_of(inner, &v));
                    base.transpose()?.map(|e| Entry {
                        expire_at_ms: *expire_at_ms,
                        version: CommitTs::UNCOMMITTED,
                        ..e
                    })
                }
            })
        };
        let push = |out: &mut Vec<(Bytes, Entry)>, key: &Bytes, entry: Option<Entry>| {
            if let Some(entry) = entry.filter(|e| !is_due(e.expire_at_ms, now)) {
                out.push((key.clone(), entry));
            }
        };
        let mut visit = |node: &KeyNode| {
            let key = node.key();
            // Own writes on keys before this one come first.
            while let Some((own_key, write)) =
                own_iter.next_if(|(own_key, _)| own_key.as_ref() < key)
            {
                match own_entry(own_key, write, None) {
                    Ok(entry) => push(&mut out, own_key, entry),
                    Err(e) => {
                        error = Some(e);
                        return false;
                    }
                }
                if out.len() >= limit {
                    return false;
                }
            }
            let key = Bytes::copy_from_slice(key);
            let entry = match own_iter.next_if(|(own_key, _)| **own_key == key) {
                Some((_, write)) => own_entry(&key, write, Some(node)),
                None => match node.visible(snapshot, &guard) {
                    // A checkpoint reads cold values from SSD where they are (its own thread
                    // may block, and loading whole pages would flush the hot set).
                    Some(version) if version.is_live(now) && cold_reads => {
                        entry_of_cold(inner, &version).map(Some)
                    }
                    Some(version) if version.is_live(now) => entry_of(inner, &version).map(Some),
                    _ => Ok(None),
                },
            };
            match entry {
                Ok(entry) => push(&mut out, &key, entry),
                Err(e) => {
                    error = Some(e);
                    return false;
                }
            }
            out.len() < limit
        };
        if let Some(d) = d {
            d.index.for_each_in(start, end, &mut visit);
        }
        if let Some(e) = error {
            return Err(e);
        }
        while out.len() < limit {
            let Some((own_key, write)) = own_iter.next() else {
                break;
            };
            let entry = own_entry(own_key, write, None)?;
            push(&mut out, own_key, entry);
        }
        drop(guard);
        if self.isolation == Isolation::Serializable {
            // A full page only read up to its last key; a short one read the whole range.
            let scanned_end = match out.last() {
                Some((last, _)) if out.len() >= limit => Bound::Included(last.clone()),
                _ => to_owned_bound(end),
            };
            if let Some(source) = source {
                self.ranges
                    .push((source, to_owned_bound(start), scanned_end));
            }
        }
        Ok(out)
    }

    /// Validates and commits: [`TxnError::Conflict`], [`TxnError::WatchFailed`] or a sink
    /// error abort it. A transaction without writes never conflicts (watches still apply).
    /// An interactive transaction the engine aborted fails with [`TxnError::SnapshotTooOld`]
    /// and writes nothing.
    pub fn commit(mut self) -> Result<CommitInfo, TxnError> {
        let result = self.leased(commit::commit);
        self.finish();
        result
    }

    /// Discards the transaction's writes.
    pub fn abort(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(registration) = self.registration.take() {
            self.inner.snapshots.release(&registration);
        }
        if let Some(lease) = self.lease.take() {
            lease.end(&self.inner);
        }
    }

    pub(crate) fn scanned_ranges(
        &self,
    ) -> impl Iterator<Item = (DbIndex, Bound<&[u8]>, Bound<&[u8]>)> {
        self.ranges
            .iter()
            .map(|(db, start, end)| (*db, as_ref_bound(start), as_ref_bound(end)))
    }
}

const _: () = {
    const fn assert_send_static<T: Send + 'static>() {}
    assert_send_static::<Transaction>();
};

impl Drop for Transaction {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A random live key: seek to a random point between the first and last key, walk forward.
pub(crate) fn random_live_key(inner: &Inner, d: &Db, random: u64, now_ms: u64) -> Option<Bytes> {
    let guard = crossbeam_epoch::pin();
    let mut first: Option<Vec<u8>> = None;
    d.index
        .for_each_in(Bound::Unbounded, Bound::Unbounded, &mut |node| {
            first = Some(node.key().to_vec());
            false
        });
    let first = first?;
    let last = d.index.last_key().unwrap_or_else(|| first.clone());
    // Probe: the common prefix, then a random byte between the two keys' next bytes, then
    // random bytes.
    let common = first
        .iter()
        .zip(last.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let mut probe: Vec<u8> = first.get(..common).unwrap_or_default().to_vec();
    let low = first.get(common).copied().unwrap_or(0);
    let high = last.get(common).copied().unwrap_or(u8::MAX);
    let span = u64::from(high.saturating_sub(low)) + 1;
    probe.push(low.saturating_add((random % span) as u8));
    probe.extend_from_slice(&random.rotate_left(17).to_be_bytes());
    let first_live = |start: Bound<&[u8]>, end: Bound<&[u8]>| {
        let mut found = None;
        d.index.for_each_in(start, end, &mut |node| {
            if node.newest(&guard).is_some_and(|v| v.is_live(now_ms)) {
                found = Some(Bytes::copy_from_slice(node.key()));
                return false;
            }
            true
        });
        found
    };
    let _ = inner;
    first_live(Bound::Included(probe.as_slice()), Bound::Unbounded)
        .or_else(|| first_live(Bound::Unbounded, Bound::Included(probe.as_slice())))
}
