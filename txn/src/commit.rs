//! The commit protocol: the one place a version becomes visible.
//!
//! Steps, in order (a reviewer can check them here):
//! 1. outside the lock: copy new values into the page store, reserve index nodes for new keys
//!    (`HybridIndex::reserve_node`), and encode the log record with a placeholder timestamp;
//! 2. take the commit lock;
//! 3. validate: watches (sound across GC's node removals through its removal marks, see
//!    `gc.rs`), then first-committer-wins on written keys (a key whose newest committed
//!    version is newer than the snapshot conflicts), then, under `Serializable`, every key read
//!    and every range scanned;
//! 4. assign the commit timestamp (visible + 1), patch it into the record and append the record
//!    to the sink, so timestamp order is log order;
//! 5. install: first the transaction's keyspace-wide ops (FLUSHDB, FLUSHALL, SWAPDB) in the
//!    order it ran them, then one new version per written key (newest first in each chain);
//! 6. publish: advance the visible watermark to the new timestamp; release the lock.
//!
//! A failure before or in step 4 frees the values written in step 1. A sink failure means the
//! record was not appended (the `CommitSink` contract), so the commit fails cleanly and later
//! commits may succeed once the log recovers.
//!
//! Invariant: **nothing after the append can fail.** Installing is infallible by type: every
//! allocation (page copies of values) happens before the record is appended, and SWAPDB moves
//! values between the two databases' chains instead of copying them (see `swap_locked`), so
//! memory never differs from what the log says. Engine-level commits (`commit_ops`) and replay
//! follow the same split: `prepare_values`, then `install_ops_locked`.
//!
//! Single-key commits (`put_one` for a blind write, `update_one` for a read-modify-write of one
//! key, behind `Engine::put` and `Engine::update`) take the same steps for one key without a
//! `Transaction`: no read set, no snapshot, no write map, the record encoded straight from the
//! caller's bytes. A blind write has nothing to validate; `update_one` reads, decides and
//! prepares its write outside the lock and validates under it that the key's newest version is
//! still the one it read (after two changed attempts it reads and decides under the lock). After publishing they also reclaim at once what they superseded
//! when no snapshot is open (`reclaim_or_queue`; see `gc.rs`).
//!
//! Cost: FLUSHDB, FLUSHALL and SWAPDB walk every key of the databases involved under the
//! commit lock (a tombstone or a moved version per key, no value copies), so they stall other
//! writers for O(keys); see `docs/ARCHITECTURE.md`.

use std::sync::atomic::{fence, Ordering};

use bytes::Bytes;
use crossbeam_epoch::Guard;
use storage::page::ValueRef;
use storage::Lsn;

use crate::commit_lock::CommitLocked;
use crate::engine::{Db, Inner, KeyWrite};
use crate::error::TxnError;
use crate::gc::RemovalMarks;
use crate::index::{KeyHasher, KeyIndex, KeyNode, Reserved, VersionView, EXPIRE_MAX_MS, NO_EXPIRY};
use crate::keyspace;
use crate::limits::DATABASES;
use crate::log_record::{
    encode_single_delete, encode_single_put, LogOp, LogRecord, COMMIT_TS_OFFSET,
};
use crate::memory::{self, Accounting};
use crate::timestamp::CommitTs;
use crate::transaction::{
    check_key, check_single_put, entry_of, is_due_now, DbOp, Transaction, Write,
};
use crate::{CommitInfo, DbIndex, Entry, Expiry, Isolation};

/// A tombstone at `ts`; `older_value_in_use`: the value below it lives on elsewhere.
fn tombstone(ts: CommitTs, older_value_in_use: bool) -> VersionView {
    VersionView {
        commit_ts: ts.0,
        expire_at_ms: NO_EXPIRY,
        value: ValueRef::EMPTY,
        tombstone: true,
        older_value_in_use,
    }
}

/// A change ready to install.
pub(crate) enum Change {
    Put {
        value: ValueRef,
        expire_at_ms: u64,
    },
    Delete,
    SetExpiry {
        expire_at_ms: u64,
    },
    /// SWAPDB: the key's new newest version is `incoming` (value, deadline) moved here from the
    /// other database's chain, or a tombstone if `None`; the value it had moves the other way,
    /// so this chain stops owning it.
    Moved {
        incoming: Option<(ValueRef, u64)>,
    },
}

fn free_values(inner: &Inner, values: &[ValueRef]) {
    for value in values {
        // SAFETY: these values were written by this commit attempt and never published, so no
        // reader can hold their references.
        let _ = unsafe { inner.pages.free(*value) };
    }
}

type Pending<'g> = Vec<(DbIndex, Bytes, Change, Option<Reserved<'g>>)>;

/// Undoes step 1 of a commit that fails: frees its values and hands the index nodes it
/// reserved for new keys (plus `also`, reserved for a key not in `changes` yet) to GC.
fn abandon(
    inner: &Inner,
    written: &[ValueRef],
    changes: &Pending<'_>,
    also: Option<(DbIndex, &[u8])>,
) {
    free_values(inner, written);
    let reserved = changes
        .iter()
        .filter(|(_, _, _, r)| r.is_some())
        .map(|(db, key, _, _)| (*db, key.as_ref()));
    let mut queue = inner.gc_queue.lock();
    for (db, key) in reserved.chain(also) {
        queue.orphaned(db, key);
    }
}

/// Commits a transaction (see the module docs for the steps).
pub(crate) fn commit(tx: &mut Transaction) -> Result<CommitInfo, TxnError> {
    let inner = std::sync::Arc::clone(&tx.inner);
    if !tx.has_writes() {
        // Read-only: never aborts, never blocks writers. Watches are still checked.
        check_watches(&inner, tx).inspect_err(|e| count_failure(&inner, e))?;
        return Ok(CommitInfo {
            commit_ts: None,
            lsn: None,
        });
    }

    // Step 1: values into pages, record encoded, outside the lock.
    let mut changes: Pending<'_> = Vec::new();
    let mut written: Vec<ValueRef> = Vec::new();
    let logging = inner.sink.is_some();
    let mut ops: Vec<LogOp> = if logging {
        // Keyspace-wide ops first: the per-key ops below are relative to the state they leave
        // (replay applies a record's ops in order).
        tx.db_ops.iter().map(|op| op.log_op()).collect()
    } else {
        Vec::new()
    };
    let guard = crossbeam_epoch::pin();
    for (db, writes) in &tx.writes {
        for (key, write) in writes {
            let mut reserved = None;
            let change = match write {
                Write::Put {
                    value,
                    expire_at_ms,
                } => {
                    // A new key's ordered insert is the costliest step of a write (a skip-list
                    // descent, cache misses at every level); do it here, not under the lock.
                    if let Ok(d) = inner.db(*db) {
                        reserved = d.index.reserve_node(key, &guard);
                    }
                    let vref = match inner.pages.write(value, inner.hasher.tag(key)) {
                        Ok(vref) => vref,
                        Err(error) => {
                            let this = reserved.is_some().then_some((*db, key.as_ref()));
                            abandon(&inner, &written, &changes, this);
                            return Err(error.into());
                        }
                    };
                    written.push(vref);
                    if logging {
                        ops.push(LogOp::Put {
                            db: *db,
                            key: key.clone(),
                            value: value.clone(),
                            expire_at_ms: *expire_at_ms,
                        });
                    }
                    Change::Put {
                        value: vref,
                        expire_at_ms: expire_at_ms.unwrap_or(NO_EXPIRY),
                    }
                }
                Write::Delete => {
                    if logging {
                        ops.push(LogOp::Delete {
                            db: *db,
                            key: key.clone(),
                        });
                    }
                    Change::Delete
                }
                Write::SetExpiry { expire_at_ms } => {
                    if logging {
                        ops.push(LogOp::SetExpiry {
                            db: *db,
                            key: key.clone(),
                            expire_at_ms: *expire_at_ms,
                        });
                    }
                    Change::SetExpiry {
                        expire_at_ms: expire_at_ms.unwrap_or(NO_EXPIRY),
                    }
                }
            };
            changes.push((*db, key.clone(), change, reserved));
        }
    }
    let mut record = logging.then(|| {
        LogRecord {
            commit_ts: CommitTs(0),
            ops,
        }
        .encode()
    });

    // Step 2. A keyspace-wide op says so first (`Engine::keyspace_op_running`).
    let _announced = (!tx.db_ops.is_empty()).then(|| KeyspaceOpRunning::new(&inner));
    let lock = inner.commit_lock.lock();
    // Step 3.
    if let Err(error) = validate(&inner, tx) {
        drop(lock);
        count_failure(&inner, &error);
        abandon(&inner, &written, &changes, None);
        return Err(error);
    }
    // Step 4.
    let ts = inner.oracle.next(&lock);
    let lsn = match append_locked(&inner, &lock, record.as_deref_mut(), ts) {
        Ok(lsn) => lsn,
        Err(error) => {
            // The sink did not take the record (see `CommitSink`): nothing is logged, nothing
            // installed; the commit simply fails.
            drop(lock);
            abandon(&inner, &written, &changes, None);
            return Err(error);
        }
    };
    // Step 5.
    for op in &tx.db_ops {
        install_db_op(&inner, &lock, *op, ts, &guard);
    }
    for (db, key, change, reserved) in changes {
        install_reserved(
            &inner,
            &lock,
            db,
            &key,
            change,
            ts,
            &guard,
            reserved.as_ref(),
        );
    }
    // Step 6.
    inner.oracle.publish(ts, &lock);
    drop(lock);
    Ok(CommitInfo {
        commit_ts: Some(ts),
        lsn,
    })
}

/// Counts a commit that validation refused (INFO `txn_conflicts`, `txn_watch_failures`).
fn count_failure(inner: &Inner, error: &TxnError) {
    let counter = match error {
        TxnError::Conflict { .. } => &inner.conflicts,
        TxnError::WatchFailed => &inner.watch_failures,
        _ => return,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Counts a keyspace-wide commit from before it waits for the commit lock until after it
/// released it.
struct KeyspaceOpRunning<'a>(&'a Inner);

impl<'a> KeyspaceOpRunning<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.keyspace_ops.fetch_add(1, Ordering::Relaxed);
        KeyspaceOpRunning(inner)
    }
}

impl Drop for KeyspaceOpRunning<'_> {
    fn drop(&mut self) {
        self.0.keyspace_ops.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Step 4's append: patches `ts` into `record` and hands it to the sink (nothing to do when
/// the engine logs nothing).
fn append_locked(
    inner: &Inner,
    _locked: &CommitLocked<'_>,
    record: Option<&mut [u8]>,
    ts: CommitTs,
) -> Result<Option<Lsn>, TxnError> {
    let (Some(sink), Some(bytes)) = (&inner.sink, record) else {
        return Ok(None);
    };
    if let Some(slot) = bytes.get_mut(COMMIT_TS_OFFSET..COMMIT_TS_OFFSET + 8) {
        slot.copy_from_slice(&ts.0.to_le_bytes());
    }
    let lsn = sink.append(bytes)?;
    inner.last_lsn.store(lsn.0, Ordering::Release);
    Ok(Some(lsn))
}

/// Undoes step 1 of a failed single-key commit: frees its value and hands the node it reserved
/// for a new key (if any) to GC.
fn abandon_one(inner: &Inner, value: Option<ValueRef>, reserved: Option<(DbIndex, &[u8])>) {
    if let Some(value) = value {
        free_values(inner, &[value]);
    }
    if let Some((db, key)) = reserved {
        inner.gc_queue.lock().orphaned(db, key);
    }
}

/// [`crate::Engine::put`]: the steps of [`commit`] for a transaction whose only act is one
/// blind write, without building the `Transaction`.
///
/// Step 3 has nothing to check. Such a transaction reads nothing; run through
/// `Engine::run(Serializable, ..)` its only check is first-committer-wins on the key, and a
/// conflict there is retried from a fresh snapshot until it commits: the same write, later.
/// Committing it at once gives an outcome that loop could have given, in a log record with the
/// same bytes.
pub(crate) fn put_one(
    inner: &Inner,
    db: DbIndex,
    key: &[u8],
    value: &[u8],
    expire_at_ms: Option<u64>,
) -> Result<CommitInfo, TxnError> {
    let d = inner.db(db)?;
    check_single_put(key, value)?;
    let expire_at_ms = expire_at_ms.map(|deadline| deadline.min(EXPIRE_MAX_MS));
    let guard = crossbeam_epoch::pin();
    // Step 1.
    let reserved = d.index.reserve_node(key, &guard);
    let this = reserved.is_some().then_some((db, key));
    let vref = match inner.pages.write(value, inner.hasher.tag(key)) {
        Ok(vref) => vref,
        Err(error) => {
            abandon_one(inner, None, this);
            return Err(error.into());
        }
    };
    let mut record = inner
        .sink
        .is_some()
        .then(|| encode_single_put(db, key, value, expire_at_ms));
    // Step 2.
    let lock = inner.commit_lock.lock();
    // Step 3: nothing to validate (see above).
    // Step 4.
    let ts = inner.oracle.next(&lock);
    let lsn = match append_locked(inner, &lock, record.as_deref_mut(), ts) {
        Ok(lsn) => lsn,
        Err(error) => {
            drop(lock);
            abandon_one(inner, Some(vref), this);
            return Err(error);
        }
    };
    // Step 5.
    let change = Change::Put {
        value: vref,
        expire_at_ms: expire_at_ms.unwrap_or(NO_EXPIRY),
    };
    let installed = install_node(inner, &lock, db, key, change, ts, &guard, reserved.as_ref());
    // Step 6.
    inner.oracle.publish(ts, &lock);
    reclaim_or_queue(inner, &lock, db, key, installed, ts, &guard);
    drop(lock);
    Ok(CommitInfo {
        commit_ts: Some(ts),
        lsn,
    })
}

/// [`crate::Engine::update`]: a one-key read-modify-write, committed only if nothing else
/// committed the key between its read and its write, so the outcome is that of a
/// `Serializable` transaction that never conflicts and step 3 (validation) is one comparison.
///
/// First optimistically ([`OPTIMISTIC_ATTEMPTS`] times): the read, `decide`, the value's page
/// copy and the record's encoding run before the lock, and under it the key's newest version
/// must still be the one read (else the copy is freed and it runs again). The read takes no
/// snapshot; it is valid because a value's bytes are freed or its frame released only after
/// its version is superseded, re-pointed or its page marked on SSD, and the read checks
/// after copying that none of those happened (a seqlock-style re-check). Then, if the key kept
/// changing, the read and `decide` under the lock. `decide` may therefore run more than once;
/// only the last run's outcome counts, and a run that writes nothing or fails is returned at
/// once (it saw the newest committed state when it read). Only a new key's ordered insert
/// (when `may_create`) is made once, before everything.
pub(crate) fn update_one<T, E: From<TxnError>>(
    inner: &Inner,
    db: DbIndex,
    key: &[u8],
    may_create: bool,
    read_value: bool,
    mut decide: impl FnMut(Option<Entry>) -> Result<(Option<KeyWrite>, T), E>,
) -> Result<(T, CommitInfo), E> {
    let d = inner.db(db)?;
    check_key(key)?;
    let guard = crossbeam_epoch::pin();
    // Step 1.
    let reserved = if may_create {
        d.index.reserve_node(key, &guard)
    } else {
        None
    };
    let this = reserved.is_some().then_some((db, key));
    let nothing = CommitInfo {
        commit_ts: None,
        lsn: None,
    };
    for _ in 0..OPTIMISTIC_ATTEMPTS {
        // Step 3's read, outside the lock. The re-check reads the same node again: while its
        // newest version holds a value, GC does not remove it.
        let node = d.index.get(key, &guard);
        let seen = node.and_then(|n| n.newest(&guard));
        let read = entry_of_view(inner, seen, read_value);
        fence(Ordering::Acquire);
        let unchanged = node.and_then(|n| n.newest(&guard)) == seen
            && seen.is_none_or(|v| v.value.len == 0 || !inner.pages.on_ssd(v.value));
        if !unchanged {
            continue;
        }
        let current = match read {
            Ok(current) => current,
            Err(error) => {
                abandon_one(inner, None, this);
                return Err(error.into());
            }
        };
        let deadline = current.as_ref().and_then(|e| e.expire_at_ms);
        let live = current.is_some();
        let write = match decided(decide(current), live) {
            Ok((Some(write), out)) => (write, out),
            Ok((None, out)) => {
                abandon_one(inner, None, this);
                return Ok((out, nothing));
            }
            Err(error) => {
                abandon_one(inner, None, this);
                return Err(error);
            }
        };
        let ((change, vref, record), out) = match prepare_one(inner, db, key, &write.0, deadline) {
            Ok(prepared) => (prepared, write.1),
            Err(error) => {
                abandon_one(inner, None, this);
                return Err(error.into());
            }
        };
        // Step 2, then step 3's check: still the version read.
        let lock = inner.commit_lock.lock();
        let same_keyspace = inner.db(db).is_ok_and(|now| std::ptr::eq(now, d));
        if !same_keyspace || newest_view(d, key, &guard) != seen {
            drop(lock);
            abandon_one(inner, vref, None);
            continue;
        }
        let info = finish_one_locked(
            inner,
            &lock,
            db,
            key,
            (change, vref, record),
            &guard,
            reserved.as_ref(),
        );
        drop(lock);
        return match info {
            Ok(info) => Ok((out, info)),
            Err(error) => {
                abandon_one(inner, None, this);
                Err(error.into())
            }
        };
    }
    // The key kept changing: read, decide and prepare under the lock.
    let lock = inner.commit_lock.lock();
    let decision = (|| {
        let current = newest_live(inner, db, key, &guard, read_value)?;
        let live = current.is_some();
        let deadline = current.as_ref().and_then(|e| e.expire_at_ms);
        let (write, out) = decided(decide(current), live)?;
        // Step 1's allocation, under the lock here (the value is known only now) but still
        // before the append.
        let prepared = write
            .map(|write| prepare_one(inner, db, key, &write, deadline))
            .transpose()?;
        Ok::<_, E>((prepared, out))
    })();
    let (prepared, out) = match decision {
        Ok((Some(prepared), out)) => (prepared, out),
        Ok((None, out)) => {
            drop(lock);
            abandon_one(inner, None, this);
            return Ok((out, nothing));
        }
        Err(error) => {
            drop(lock);
            abandon_one(inner, None, this);
            return Err(error);
        }
    };
    let info = finish_one_locked(inner, &lock, db, key, prepared, &guard, reserved.as_ref());
    drop(lock);
    match info {
        Ok(info) => Ok((out, info)),
        Err(error) => {
            abandon_one(inner, None, this);
            Err(error.into())
        }
    }
}

/// Optimistic runs of [`update_one`] before it reads under the commit lock.
const OPTIMISTIC_ATTEMPTS: usize = 2;

/// A decision to delete a key that is not live writes nothing.
fn decided<T, E>(
    decision: Result<(Option<KeyWrite>, T), E>,
    live: bool,
) -> Result<(Option<KeyWrite>, T), E> {
    match decision {
        Ok((Some(KeyWrite::Delete), out)) if !live => Ok((None, out)),
        other => other,
    }
}

/// Step 1 for one decided write: the value copied into its page and the record encoded.
fn prepare_one(
    inner: &Inner,
    db: DbIndex,
    key: &[u8],
    write: &KeyWrite,
    deadline: Option<u64>,
) -> Result<(Change, Option<ValueRef>, Vec<u8>), TxnError> {
    match write {
        KeyWrite::Delete => Ok((Change::Delete, None, encode_single_delete(db, key))),
        KeyWrite::Put { value, expiry } => {
            let expire_at_ms = match *expiry {
                Expiry::Persist => None,
                Expiry::At(at) => Some(at.min(EXPIRE_MAX_MS)),
                Expiry::Keep => deadline,
            };
            check_single_put(key, value)?;
            let vref = inner.pages.write(value, inner.hasher.tag(key))?;
            let change = Change::Put {
                value: vref,
                expire_at_ms: expire_at_ms.unwrap_or(NO_EXPIRY),
            };
            let record = encode_single_put(db, key, value, expire_at_ms);
            Ok((change, Some(vref), record))
        }
    }
}

/// Steps 4 to 6 of a single-key commit whose value and record are ready. Caller holds the
/// commit lock. On an append failure the value is freed (the caller hands back the node it
/// reserved).
fn finish_one_locked(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    db: DbIndex,
    key: &[u8],
    (change, vref, mut record): (Change, Option<ValueRef>, Vec<u8>),
    guard: &Guard,
    reserved: Option<&Reserved<'_>>,
) -> Result<CommitInfo, TxnError> {
    // Step 4.
    let ts = inner.oracle.next(locked);
    let logged = inner.sink.is_some().then_some(record.as_mut_slice());
    let lsn = match append_locked(inner, locked, logged, ts) {
        Ok(lsn) => lsn,
        Err(error) => {
            abandon_one(inner, vref, None);
            return Err(error);
        }
    };
    // Step 5.
    let installed = install_node(inner, locked, db, key, change, ts, guard, reserved);
    // Step 6.
    inner.oracle.publish(ts, locked);
    reclaim_or_queue(inner, locked, db, key, installed, ts, guard);
    Ok(CommitInfo {
        commit_ts: Some(ts),
        lsn,
    })
}

/// The newest committed version of `key` (`None` if it has none), however old.
fn newest_view(d: &crate::engine::Db, key: &[u8], guard: &Guard) -> Option<VersionView> {
    d.index.get(key, guard).and_then(|node| node.newest(guard))
}

/// What [`newest_live`] returns, for a version already read with [`newest_view`].
fn entry_of_view(
    inner: &Inner,
    version: Option<VersionView>,
    read_value: bool,
) -> Result<Option<Entry>, TxnError> {
    let Some(version) = version.filter(|v| !v.tombstone) else {
        return Ok(None);
    };
    if is_due_now(inner, version.expiry()) {
        return Ok(None);
    }
    if !read_value {
        return Ok(Some(Entry {
            value: Bytes::new(),
            kind: crate::ValueKind::String,
            version: CommitTs(version.commit_ts),
            expire_at_ms: version.expiry(),
        }));
    }
    entry_of(inner, &version).map(Some)
}

/// The newest committed version of `key` if it holds a value not expired now (the clock is
/// read only for a key with a deadline). Without `read_value` the entry's value is empty and
/// its bytes are not read (nothing waits for the SSD tier): for a caller that only needs to
/// know the key is live.
fn newest_live(
    inner: &Inner,
    db: DbIndex,
    key: &[u8],
    guard: &Guard,
    read_value: bool,
) -> Result<Option<Entry>, TxnError> {
    let d = inner.db(db)?;
    entry_of_view(inner, newest_view(d, key, guard), read_value)
}

/// After step 6 of a single-key commit: if the key had older versions and no snapshot is open,
/// nothing can read them any more (every snapshot registered from now on reads at `ts` or
/// above, see `snapshot.rs`), so they are cut now, while the node is in cache, instead of GC
/// finding the key again later. Otherwise, and for a tombstone (whose node only GC removes),
/// the key is queued for GC as any commit does.
fn reclaim_or_queue(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    db: DbIndex,
    key: &[u8],
    installed: Option<Installed<'_>>,
    ts: CommitTs,
    guard: &Guard,
) {
    let Some(installed) = installed.filter(|i| i.superseded) else {
        return;
    };
    if installed.tombstone || !inner.snapshots.none_open() {
        inner.gc_queue.lock().superseded(ts, db, key);
        return;
    }
    let Ok(d) = inner.db(db) else { return };
    // No snapshot is open and none opened from now on reads below `ts`, where this node's
    // newest version (written at `ts`) is the one it sees: `ts` is a valid watermark for it.
    let (unlinked, _) = crate::gc::cut_chain(inner, locked, d, installed.node, ts.0, guard);
    inner
        .gc_versions_unlinked
        .fetch_add(unlinked, Ordering::Relaxed);
}

fn check_watches(inner: &Inner, tx: &Transaction) -> Result<(), TxnError> {
    let guard = crossbeam_epoch::pin();
    for (db, key, mark) in &tx.watches {
        let d = inner.db(*db)?;
        if inner.keyspaces.remapped_since(*db, mark.taken_at.0) {
            if keyspace::watch_changed(inner, *db, key, mark) {
                return Err(TxnError::WatchFailed);
            }
            continue;
        }
        let unchanged = match d.index.get(key, &guard) {
            Some(node) => {
                let newest = node.newest(&guard);
                let newest_ts = newest.map_or(0, |v| v.commit_ts);
                if newest_ts == mark.version.0 {
                    // The same version; but a key live when watched whose deadline has passed
                    // since has changed, for Redis, even if not deleted yet.
                    !is_due_now(inner, mark.deadline)
                } else {
                    // A key already expired when watched, deleted since with nothing in
                    // between, is unchanged for Redis. (If GC cut the version below the
                    // tombstone, this answers changed: a spurious EXEC failure at worst.)
                    mark.expired
                        && newest.is_some_and(|v| v.tombstone)
                        && node
                            .visible(newest_ts.saturating_sub(1), &guard)
                            .is_some_and(|below| below.commit_ts == mark.version.0)
                }
            }
            // Absent now. A change after the watch has a timestamp above both of the mark's;
            // if it is gone, GC removed its node and raised the key's removal mark to at
            // least that timestamp first (see `gc.rs`).
            None => inner
                .keyspaces
                .removed(*db)
                .is_some_and(|marks| marks.newest(key) <= mark.version.0.max(mark.taken_at.0)),
        };
        if !unchanged {
            return Err(TxnError::WatchFailed);
        }
    }
    Ok(())
}

fn validate(inner: &Inner, tx: &Transaction) -> Result<(), TxnError> {
    check_watches(inner, tx)?;
    let snapshot = tx.snapshot_ts().0;
    let changed = |db: DbIndex, key: &[u8]| keyspace::changed_since(inner, db, key, snapshot);
    for (db, writes) in &tx.writes {
        // After a SWAPDB in the transaction a written key replaces the one that moved in from
        // the source database; after a FLUSHDB it replaces nothing (a blind write).
        let Some(source) = tx.source(*db) else {
            continue;
        };
        for key in writes.keys() {
            if changed(source, key) {
                return Err(TxnError::Conflict { key: key.clone() });
            }
        }
    }
    if tx.isolation == Isolation::Serializable {
        for (db, key) in &tx.reads {
            if changed(*db, key) {
                return Err(TxnError::Conflict { key: key.clone() });
            }
        }
        for (db, start, end) in tx.scanned_ranges() {
            inner.db(db)?;
            if let Some(key) = keyspace::range_changed_since(inner, db, start, end, snapshot) {
                return Err(TxnError::Conflict { key });
            }
        }
    }
    Ok(())
}

/// Installs one change at `ts`.
pub(crate) fn install(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    db: DbIndex,
    key: &[u8],
    change: Change,
    ts: CommitTs,
    guard: &Guard,
) {
    install_reserved(inner, locked, db, key, change, ts, guard, None);
}

/// [`install`], adopting `reserved` (this key's node, reserved in step 1) if the key is new.
#[allow(clippy::too_many_arguments)]
fn install_reserved(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    db: DbIndex,
    key: &[u8],
    change: Change,
    ts: CommitTs,
    guard: &Guard,
    reserved: Option<&Reserved<'_>>,
) {
    if install_node(inner, locked, db, key, change, ts, guard, reserved)
        .is_some_and(|i| i.superseded)
    {
        // The version below becomes garbage once the watermark reaches `ts`.
        inner.gc_queue.lock().superseded(ts, db, key);
    }
}

/// What [`install_node`] did.
struct Installed<'g> {
    node: &'g KeyNode,
    /// The key had a version before, which is garbage once the watermark reaches `ts`: the
    /// caller queues it for GC (or reclaims it at once, see [`reclaim_or_queue`]).
    superseded: bool,
    /// The new version is a tombstone.
    tombstone: bool,
}

/// Installs one change at `ts` and leaves the GC queue to the caller; `None` if the change
/// installed nothing (a delete or TTL change of an absent key).
#[allow(clippy::too_many_arguments)]
fn install_node<'g>(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    db: DbIndex,
    key: &[u8],
    change: Change,
    ts: CommitTs,
    guard: &'g Guard,
    reserved: Option<&Reserved<'_>>,
) -> Option<Installed<'g>> {
    let Ok(d) = inner.db(db) else { return None };
    // A node reserved in a keyspace a flush retired since is not this keyspace's to adopt.
    let reserved = match reserved {
        Some(r) if !r.is_in(&d.index) => {
            r.discard(guard);
            None
        }
        other => other,
    };
    install_in(inner, locked, d, db, key, change, ts, guard, reserved)
}

/// [`install_node`] into keyspace `d` (which database `db` shows, or showed until a flush:
/// `db` names the expiry wheel's entry).
#[allow(clippy::too_many_arguments)]
fn install_in<'g>(
    inner: &Inner,
    _locked: &CommitLocked<'_>,
    d: &Db,
    db: DbIndex,
    key: &[u8],
    change: Change,
    ts: CommitTs,
    guard: &'g Guard,
    reserved: Option<&Reserved<'_>>,
) -> Option<Installed<'g>> {
    let existing = d.index.get(key, guard);
    let previous = existing.and_then(|node| node.newest(guard));
    let previous_holds_value = previous.is_some_and(|v| !v.tombstone);
    let change = match change {
        Change::Put {
            value,
            expire_at_ms,
        } => Change::Put {
            value,
            expire_at_ms: expire_at_ms.min(EXPIRE_MAX_MS),
        },
        Change::SetExpiry { expire_at_ms } => Change::SetExpiry {
            expire_at_ms: expire_at_ms.min(EXPIRE_MAX_MS),
        },
        Change::Delete => Change::Delete,
        Change::Moved { incoming } => Change::Moved {
            incoming: incoming.map(|(value, expire)| (value, expire.min(EXPIRE_MAX_MS))),
        },
    };
    let version = match change {
        Change::Put {
            value,
            expire_at_ms,
        } => VersionView {
            commit_ts: ts.0,
            expire_at_ms,
            value,
            tombstone: false,
            older_value_in_use: false,
        },
        Change::Delete if previous_holds_value => tombstone(ts, false),
        Change::Delete => return None,
        Change::SetExpiry { expire_at_ms } => match previous {
            Some(previous) if !previous.tombstone => VersionView {
                commit_ts: ts.0,
                expire_at_ms,
                value: previous.value,
                tombstone: false,
                older_value_in_use: true,
            },
            _ => return None,
        },
        Change::Moved {
            incoming: Some((value, expire_at_ms)),
        } => VersionView {
            commit_ts: ts.0,
            expire_at_ms,
            value,
            tombstone: false,
            // The value this replaces moved to the other database.
            older_value_in_use: previous_holds_value,
        },
        // The value this deletes moved to the other database.
        Change::Moved { incoming: None } if previous_holds_value => tombstone(ts, true),
        Change::Moved { incoming: None } => return None,
    };
    let had_expiry = previous.is_some_and(|v| !v.tombstone && v.expire_at_ms != NO_EXPIRY);
    let has_expiry = !version.tombstone && version.expire_at_ms != NO_EXPIRY;
    let holds_value = !version.tombstone;
    let deadline = version.expire_at_ms;
    let node = match existing {
        Some(node) => node,
        None => match reserved.and_then(|r| d.index.adopt(r, guard)) {
            Some(node) => node,
            // `get` just missed, and no one else installs this key meanwhile.
            None => d.index.insert_absent(key, guard),
        },
    };
    node.install(version, guard);
    // Memory (see `memory`): the previous newest version moved to the older chain; its value
    // is now held only by old versions unless the new one inherits it; a tombstone makes the
    // key's node garbage, a value over a tombstone revives it.
    let a = &inner.memory.accounting;
    if let Some(previous) = previous {
        Accounting::add(&a.older_versions, 1);
        if !previous.tombstone && !version.older_value_in_use {
            Accounting::add(&a.garbage_value_bytes, previous.value.footprint());
        }
    }
    let previous_tombstone = previous.is_some_and(|v| v.tombstone);
    if version.tombstone && !previous_tombstone {
        Accounting::add(&a.garbage_node_bytes, memory::node_bytes(key.len()));
    } else if !version.tombstone && previous_tombstone {
        Accounting::sub(&a.garbage_node_bytes, memory::node_bytes(key.len()));
    }
    // Access word: a write counts as an access of a key that had a value (Redis's
    // `lookupKeyWrite` before an overwrite); a key that had none starts fresh.
    if holds_value {
        if previous_holds_value {
            inner.memory.touch(node);
        } else {
            inner.memory.stamp_new(node);
        }
    }
    d.versions.fetch_add(1, Ordering::Relaxed);
    // Most writes leave these two unchanged (an overwrite): skip the locked add, which is not
    // free even uncontended, and bounces the line between loader threads in a WAL replay.
    let live_delta = i64::from(holds_value) - i64::from(previous_holds_value);
    if live_delta != 0 {
        d.live_keys.fetch_add(live_delta, Ordering::Relaxed);
        d.live_node_bytes.fetch_add(
            live_delta * memory::node_bytes(key.len()) as i64,
            Ordering::Relaxed,
        );
    }
    // The keyspace's live value bytes, which a flush hands to GC at once (`keyspace.rs`).
    let footprint = |holds: bool, v: Option<VersionView>| {
        v.filter(|_| holds)
            .map_or(0, |v| v.value.footprint() as i64)
    };
    let value_delta =
        footprint(holds_value, Some(version)) - footprint(previous_holds_value, previous);
    if value_delta != 0 {
        d.live_value_bytes.fetch_add(value_delta, Ordering::Relaxed);
    }
    let expires_delta = i64::from(has_expiry) - i64::from(had_expiry);
    if expires_delta != 0 {
        d.expires.fetch_add(expires_delta, Ordering::Relaxed);
    }
    // Wheel invariant: a key with deadline D has a wheel entry at some deadline <= D. A later
    // deadline (TTL refresh, KEEPTTL overwrite) needs no new entry: when the earlier entry
    // fires, `expire_tick` re-schedules it. So refreshing a TTL adds nothing to the wheel.
    let previous_deadline = previous
        .filter(|v| !v.tombstone && v.expire_at_ms != NO_EXPIRY)
        .map(|v| v.expire_at_ms);
    if has_expiry && previous_deadline.is_none_or(|previous| deadline < previous) {
        inner
            .wheel
            .lock()
            .schedule(deadline, db, Bytes::copy_from_slice(key));
    }
    Some(Installed {
        node,
        superseded: previous.is_some(),
        tombstone: !holds_value,
    })
}

/// Keys of `db` whose newest version holds a value, with that version's value and deadline.
fn live_heads(inner: &Inner, db: DbIndex, guard: &Guard) -> Vec<(Bytes, ValueRef, u64)> {
    let mut out = Vec::new();
    if let Ok(d) = inner.db(db) {
        d.index.for_each_in(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            &mut |node| {
                if let Some(v) = node.newest(guard).filter(|v| !v.tombstone) {
                    out.push((Bytes::copy_from_slice(node.key()), v.value, v.expire_at_ms));
                }
                true
            },
        );
    }
    out
}

/// Copies the values of `ops`' `Put`s into the page store, in order: the only fallible part of
/// applying logged ops, done before anything is logged or installed. On error, nothing stays
/// allocated.
fn prepare_values(inner: &Inner, ops: &[LogOp]) -> Result<Vec<ValueRef>, TxnError> {
    let mut values = Vec::new();
    for op in ops {
        if let LogOp::Put { key, value, .. } = op {
            match inner.pages.write(value, inner.hasher.tag(key)) {
                Ok(vref) => values.push(vref),
                Err(error) => {
                    free_values(inner, &values);
                    return Err(error.into());
                }
            }
        }
    }
    Ok(values)
}

/// Installs `ops` at `ts`, taking the `Put`s' values from `values` (from [`prepare_values`],
/// same ops). Cannot fail.
fn install_ops_locked(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    ts: CommitTs,
    ops: &[LogOp],
    values: Vec<ValueRef>,
    guard: &Guard,
) {
    let mut values = values.into_iter();
    for op in ops {
        match op {
            LogOp::Put {
                db,
                key,
                expire_at_ms,
                ..
            } => {
                let Some(value) = values.next() else {
                    debug_assert!(false, "prepare_values gave fewer values than Puts");
                    return;
                };
                let change = Change::Put {
                    value,
                    expire_at_ms: expire_at_ms.unwrap_or(NO_EXPIRY),
                };
                install(inner, locked, *db, key, change, ts, guard);
            }
            LogOp::Delete { db, key } => {
                install(inner, locked, *db, key, Change::Delete, ts, guard)
            }
            LogOp::SetExpiry {
                db,
                key,
                expire_at_ms,
            } => {
                let change = Change::SetExpiry {
                    expire_at_ms: expire_at_ms.unwrap_or(NO_EXPIRY),
                };
                install(inner, locked, *db, key, change, ts, guard);
            }
            LogOp::FlushDb { db } => install_db_op(inner, locked, DbOp::Flush(*db), ts, guard),
            LogOp::FlushAll => install_db_op(inner, locked, DbOp::FlushAll, ts, guard),
            LogOp::SwapDb { a, b } => install_db_op(inner, locked, DbOp::Swap(*a, *b), ts, guard),
        }
    }
}

/// Applies logged ops at `ts` (replay, checkpoint load): values first, then the infallible
/// install, so an error leaves the engine as it was.
pub(crate) fn apply_ops_locked(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    ts: CommitTs,
    ops: &[LogOp],
    guard: &Guard,
) -> Result<(), TxnError> {
    let values = prepare_values(inner, ops)?;
    install_ops_locked(inner, locked, ts, ops, values, guard);
    Ok(())
}

/// Installs one keyspace-wide op at `ts`. Cannot fail.
pub(crate) fn install_db_op(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    op: DbOp,
    ts: CommitTs,
    guard: &Guard,
) {
    match op {
        DbOp::Flush(db) => flush_locked(inner, locked, db, ts, guard),
        DbOp::FlushAll => {
            for db in 0..DATABASES as DbIndex {
                flush_locked(inner, locked, db, ts, guard);
            }
        }
        DbOp::Swap(a, b) => swap_locked(inner, locked, a, b, ts, guard),
    }
}

/// FLUSHDB at `ts`: O(1), pointing `db` at an empty keyspace (`keyspace.rs`); with no spare
/// keyspace left, a tombstone for every live key, as the remap stands for.
fn flush_locked(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    db: DbIndex,
    ts: CommitTs,
    guard: &Guard,
) {
    if inner
        .keyspaces
        .remap_empty(locked, db, ts.0, inner.clock.now_ms())
    {
        return;
    }
    for (key, _, _) in live_heads(inner, db, guard) {
        install(inner, locked, db, &key, Change::Delete, ts, guard);
    }
}

/// Reclaim of a keyspace retired by a flush at `ts` (`keyspace::reclaim`), for one node:
/// installs the tombstone the flush stands for if the key held a value, and raises the key's
/// removal mark in `marks` (database `db`'s) to what the node's removal forgets: `ts` if the
/// key held a value not yet expired at the flush (`now_ms`), else its newest version's
/// timestamp (a key already expired was not touched by the flush, for WATCH). GC's `collect`
/// then removes the node. No reader sees `d` at `ts` or later.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tombstone_retired(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    d: &Db,
    marks: &RemovalMarks,
    node: &KeyNode,
    db: DbIndex,
    ts: u64,
    now_ms: u64,
    guard: &Guard,
) {
    let Some(head) = node.newest(guard) else {
        return;
    };
    let forgotten = if head.tombstone {
        head.commit_ts
    } else {
        let key = Bytes::copy_from_slice(node.key());
        install_in(
            inner,
            locked,
            d,
            db,
            &key,
            Change::Delete,
            CommitTs(ts),
            guard,
            None,
        );
        // The flush already counted this key's node and value as garbage (`remap_empty`).
        let a = &inner.memory.accounting;
        Accounting::sub(&a.garbage_value_bytes, head.value.footprint());
        Accounting::sub(&a.garbage_node_bytes, memory::node_bytes(key.len()));
        if head.is_live(now_ms) {
            ts
        } else {
            head.commit_ts
        }
    };
    marks.note(node.key(), forgotten);
}

/// Swaps two databases at `ts` by moving each key's newest value into the other database's
/// chain for the same key (a version marked as not owning the value below it, on both sides),
/// never copying: so it allocates nothing and cannot fail, and each value still has exactly
/// one owning chain for GC to free it through (see `VersionView::older_value_in_use`).
/// Snapshots older than `ts` keep reading the moved values through the old versions; GC frees
/// a value only once the watermark passes the version that replaced it in its new chain, which
/// is after `ts`, so no such snapshot is left by then.
fn swap_locked(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    a: DbIndex,
    b: DbIndex,
    ts: CommitTs,
    guard: &Guard,
) {
    if a == b {
        return;
    }
    inner.checkpoint_scan.note_swap(locked, ts.0);
    let heads_a = live_heads(inner, a, guard);
    let heads_b = live_heads(inner, b, guard);
    move_into(inner, locked, a, &heads_b, &heads_a, ts, guard);
    move_into(inner, locked, b, &heads_a, &heads_b, ts, guard);
}

/// Makes `target` hold exactly `incoming` (key order, as `live_heads` returns them), where
/// `outgoing` are `target`'s own live heads, which move out.
fn move_into(
    inner: &Inner,
    locked: &CommitLocked<'_>,
    target: DbIndex,
    incoming: &[(Bytes, ValueRef, u64)],
    outgoing: &[(Bytes, ValueRef, u64)],
    ts: CommitTs,
    guard: &Guard,
) {
    let mut outgoing = outgoing.iter().peekable();
    for (key, value, expire_at_ms) in incoming {
        // Keys leaving `target` that nothing replaces get a tombstone.
        while let Some((gone, _, _)) = outgoing.next_if(|(out, _, _)| out < key) {
            let change = Change::Moved { incoming: None };
            install(inner, locked, target, gone, change, ts, guard);
        }
        outgoing.next_if(|(out, _, _)| out == key);
        let change = Change::Moved {
            incoming: Some((*value, *expire_at_ms)),
        };
        install(inner, locked, target, key, change, ts, guard);
    }
    for (gone, _, _) in outgoing {
        let change = Change::Moved { incoming: None };
        install(inner, locked, target, gone, change, ts, guard);
    }
}

/// Commits engine-level ops chosen under the lock by `choose` (which sees the next timestamp);
/// an empty choice commits nothing. Values are copied before the record is appended and the
/// install cannot fail, so the log and memory never disagree.
pub(crate) fn commit_ops(
    inner: &Inner,
    choose: impl FnOnce(&Inner, &CommitLocked<'_>) -> Result<Vec<LogOp>, TxnError>,
) -> Result<CommitInfo, TxnError> {
    let lock = inner.commit_lock.lock();
    let ops = choose(inner, &lock)?;
    if ops.is_empty() {
        return Ok(CommitInfo {
            commit_ts: None,
            lsn: None,
        });
    }
    let values = prepare_values(inner, &ops)?;
    let ts = inner.oracle.next(&lock);
    let record = LogRecord { commit_ts: ts, ops };
    let lsn = match &inner.sink {
        Some(sink) => match sink.append(&record.encode()) {
            Ok(lsn) => {
                inner.last_lsn.store(lsn.0, Ordering::Release);
                Some(lsn)
            }
            Err(error) => {
                drop(lock);
                free_values(inner, &values);
                return Err(error);
            }
        },
        None => None,
    };
    let guard = crossbeam_epoch::pin();
    install_ops_locked(inner, &lock, ts, &record.ops, values, &guard);
    inner.oracle.publish(ts, &lock);
    drop(lock);
    Ok(CommitInfo {
        commit_ts: Some(ts),
        lsn,
    })
}

/// Replays one record at its own timestamp.
pub(crate) fn apply_record(inner: &Inner, record: &LogRecord) -> Result<(), TxnError> {
    let lock = inner.commit_lock.lock();
    let last = inner.oracle.visible();
    if record.commit_ts.0 <= last {
        return Err(TxnError::ReplayOrder {
            commit_ts: record.commit_ts,
            last: CommitTs(last),
        });
    }
    let guard = crossbeam_epoch::pin();
    // A failure here (the page store is full) installed nothing; recovery stops on it.
    apply_ops_locked(inner, &lock, record.commit_ts, &record.ops, &guard)?;
    inner.oracle.publish(record.commit_ts, &lock);
    Ok(())
}

/// Active expiry (see [`crate::Engine::expire_tick`]).
pub(crate) fn expire_tick(inner: &Inner, max_keys: usize) -> usize {
    let now = inner.clock.now_ms();
    inner.memory.refresh_clock(now);
    let due = {
        let mut wheel = inner.wheel.lock();
        let mut due = wheel.poll(now, max_keys);
        // Cascading a busy higher-level slot can use a poll's budget without yielding entries;
        // a few more bounded polls keep a tick from coming back empty-handed.
        for _ in 0..8 {
            if !due.is_empty() || wheel.is_caught_up(now) {
                break;
            }
            due = wheel.poll(now, max_keys);
        }
        due
    };
    if due.is_empty() {
        return 0;
    }
    // The lookups below run under the commit lock, one cache miss after another over a large
    // keyspace: ask for every key's table lines, then its node, before any of them (30 % of
    // the server's time under a 1 M-key expiry burst was these lookups).
    for step in [crate::KeyPrefetch::Table, crate::KeyPrefetch::Node] {
        for (_, (db, key)) in &due {
            if let Ok(d) = inner.db(*db) {
                let hash = d.index.hash_of(key);
                match step {
                    crate::KeyPrefetch::Table => d.index.prefetch(hash),
                    _ => d.index.prefetch_node(hash),
                }
            }
        }
    }
    let mut chosen = 0usize;
    // The deletes' wheel entries, to put back if the commit fails (a failed WAL): the keys
    // stay invisible by lazy expiry, and must still be removed once the log works again.
    let mut expiring: Vec<(u64, (DbIndex, Bytes))> = Vec::new();
    let result = commit_ops(inner, |inner, _lock| {
        let guard = crossbeam_epoch::pin();
        let mut ops = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (deadline, (db, key)) in due {
            let Ok(d) = inner.db(db) else { continue };
            let Some(node) = d.index.get(&key, &guard) else {
                continue;
            };
            // Only the current version's deadline counts. An entry for a key whose deadline
            // moved later is re-scheduled at the new deadline; one for a key with no deadline
            // any more (persisted, deleted, rewritten without TTL) is dropped.
            let Some(current) = node
                .newest(&guard)
                .filter(|v| !v.tombstone && v.expire_at_ms != NO_EXPIRY)
            else {
                continue;
            };
            if current.expire_at_ms <= now {
                if seen.insert((db, key.clone())) {
                    expiring.push((current.expire_at_ms, (db, key.clone())));
                    ops.push(LogOp::Delete { db, key });
                }
            } else if current.expire_at_ms > deadline {
                inner.wheel.lock().schedule(current.expire_at_ms, db, key);
            }
        }
        chosen = ops.len();
        Ok(ops)
    });
    match result {
        Ok(info) if info.commit_ts.is_some() => {
            inner
                .expired_keys
                .fetch_add(chosen as u64, Ordering::Relaxed);
            chosen
        }
        Ok(_) => 0,
        Err(_) => {
            let mut wheel = inner.wheel.lock();
            for (deadline, (db, key)) in expiring {
                wheel.schedule(deadline, db, key);
            }
            0
        }
    }
}

/// What a loader thread installed and has not yet added to the shared counters: a bulk load
/// on several threads that bumped them per key would bounce their cache lines between cores
/// (in a 2 M-key checkpoint load, one such counter took 20% of a loader's time). Added once per
/// batch by [`LoadTally::flush`]; nothing reads the counters until recovery has published.
#[derive(Default)]
pub(crate) struct LoadTally {
    pages: storage::page::WriteTally,
    /// Per database: (node bytes, new live keys, new deadlines, value footprints).
    dbs: [(u64, i64, i64, u64); DATABASES],
}

impl LoadTally {
    /// Adds everything tallied to the engine's counters and starts over.
    pub(crate) fn flush(&mut self, inner: &Inner) {
        let tally = std::mem::take(self);
        inner.pages.add_tally(tally.pages);
        for (db, (node_bytes, keys, expires, value_bytes)) in tally.dbs.into_iter().enumerate() {
            if keys == 0 {
                continue;
            }
            let Ok(d) = inner.db(db as DbIndex) else {
                continue;
            };
            d.index.count_loaded(node_bytes);
            d.live_node_bytes
                .fetch_add(node_bytes as i64, Ordering::Relaxed);
            d.live_value_bytes
                .fetch_add(value_bytes as i64, Ordering::Relaxed);
            d.versions.fetch_add(keys, Ordering::Relaxed);
            d.live_keys.fetch_add(keys, Ordering::Relaxed);
            d.expires.fetch_add(expires, Ordering::Relaxed);
        }
    }
}

/// Installs one checkpoint entry at `ts` during recovery, without the commit lock; `hash` is
/// the key's [`HybridIndex::hash_of`](crate::index::HybridIndex::hash_of). The caller is the
/// one loader thread given this key: a checkpoint holds each key once (the loader checks that
/// entries ascend), and nothing else uses the engine until [`publish_loaded_snapshot`]. Counts
/// go to `tally`.
pub(crate) fn load_entry(
    inner: &Inner,
    ts: CommitTs,
    entry: &crate::durability::CheckpointEntry<'_>,
    hash: u64,
    tally: &mut LoadTally,
    guard: &Guard,
) -> Result<(), TxnError> {
    let (db, key) = (entry.db, entry.key);
    let d = inner.db(db)?;
    let tag = KeyHasher::tag_of_hash(hash);
    let value = inner
        .pages
        .write_tallied(entry.value, tag, &mut tally.pages)?;
    let expire_at_ms = entry.expire_at_ms.unwrap_or(NO_EXPIRY).min(EXPIRE_MAX_MS);
    let (node, new) = d.index.load_node(key, hash, guard);
    let change = Change::Put {
        value,
        expire_at_ms,
    };
    if !new {
        // Cannot happen after the order check (each key once); handled the general way all
        // the same.
        // SAFETY: a loader owns the engine alone until recovery publishes it, and this key is
        // its alone (see above).
        let loading = unsafe { CommitLocked::loading() };
        install(inner, &loading, db, key, change, ts, guard);
        return Ok(());
    }
    node.install(
        VersionView {
            commit_ts: ts.0,
            expire_at_ms,
            value,
            tombstone: false,
            older_value_in_use: false,
        },
        guard,
    );
    // The access word the checkpoint saved (under an LRU or LFU policy), else a fresh one as
    // `install` gives a new key; nothing is superseded.
    match entry.access {
        Some(saved) => {
            let word = inner.memory.tracking().restored(saved);
            node.update_access(|_| word);
        }
        None => inner.memory.stamp_new(node),
    }
    if let Some(counts) = tally.dbs.get_mut(usize::from(db)) {
        counts.0 += memory::node_bytes(key.len());
        counts.1 += 1;
        if expire_at_ms != NO_EXPIRY {
            counts.2 += 1;
        }
        counts.3 += value.footprint();
    }
    if expire_at_ms != NO_EXPIRY {
        inner
            .wheel
            .lock()
            .schedule(expire_at_ms, db, Bytes::copy_from_slice(key));
    }
    Ok(())
}

/// Makes a loaded checkpoint visible: the engine continues at `ts`, so replayed WAL records
/// (all newer) apply in order.
pub(crate) fn publish_loaded_snapshot(inner: &Inner, ts: CommitTs) {
    let lock = inner.commit_lock.lock();
    if ts.0 > inner.oracle.visible() {
        inner.oracle.publish(ts, &lock);
    }
}
