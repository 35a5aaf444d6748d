//! Parallel recovery: a checkpoint load and a WAL replay spread over one loader thread per
//! core, with the calling thread reading and decoding the files.
//!
//! Invariant: every key is installed by exactly one loader thread, and each loader installs
//! its keys in file order. A WAL replay picks the loader by a hash of the key
//! ([`loader_of`]), as a key may appear in many records; a checkpoint holds each key once, in
//! ascending (database, key) order (checked as it is read), so it hands runs of
//! [`BATCH_ITEMS`] neighbouring keys to the loaders in turn, which then insert into distant parts
//! of the skip list instead of contending for the same nodes. Recovery needs nothing
//! more: no reader or writer uses the engine until the result is published, so the only order
//! that matters is each key's own (the final version chain, the counters and the deadlines
//! follow from it), and installs of distinct keys commute. Loaders add to the shared counters
//! once per batch ([`LoadTally`]). Operations that touch many keys
//! (FLUSHDB, FLUSHALL, SWAPDB) are barriers: every loader finishes what it was given, then the
//! reading thread applies the operation alone. The engine's visible timestamp is published
//! once, at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use bytes::Bytes;
use storage::checkpoint::CheckpointReader;
use storage::StorageError;

use crate::commit::LoadTally;
use crate::commit_lock::CommitLocked;
use crate::durability::{CheckpointEntry, EntryError};
use crate::engine::Inner;
use crate::error::TxnError;
use crate::limits::DATABASES;
use crate::log_record::LogOp;
use crate::timestamp::CommitTs;

/// Items handed to a loader at a time.
const BATCH_ITEMS: usize = 1024;
/// Batches queued per loader (bounds how far the reading thread runs ahead).
const BATCHES_QUEUED: usize = 4;
/// Most loader threads (one per core up to this).
const LOADERS_MAX: usize = 16;

/// Which loader installs `key` (FNV-1a): one key always lands on one loader.
fn loader_of(key: &[u8], loaders: usize) -> usize {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in key {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    usize::try_from((h ^ (h >> 29)) % loaders.max(1) as u64).unwrap_or(0)
}

/// Raw checkpoint entries, back to back.
#[derive(Default)]
struct EntryBatch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl EntryBatch {
    fn push(&mut self, entry: &[u8]) {
        self.bytes.extend_from_slice(entry);
        self.ends.push(self.bytes.len());
    }

    fn entries(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .filter_map(|(start, end)| self.bytes.get(start..end))
    }
}

/// Work for one loader.
enum Work {
    /// Checkpoint entries, installed at the snapshot timestamp.
    Entries(CommitTs, EntryBatch),
    /// WAL operations on single keys, each at its record's commit timestamp.
    Ops(Vec<(CommitTs, LogOp)>),
    /// Answer once everything sent before is installed.
    Barrier(SyncSender<()>),
}

impl Work {
    fn len(&self) -> usize {
        match self {
            Work::Entries(_, batch) => batch.ends.len(),
            Work::Ops(ops) => ops.len(),
            Work::Barrier(_) => 0,
        }
    }
}

/// The loader threads of one recovery step, and the batch each is being given.
struct Loaders<'a> {
    senders: Vec<SyncSender<Work>>,
    pending: Vec<Work>,
    failed: &'a AtomicBool,
}

impl Loaders<'_> {
    /// Queues `item` for loader `slot` through `add`; sends the batch once full. `false` once a
    /// loader has failed (stop reading; `finish` reports why).
    fn add(&mut self, slot: usize, add: impl FnOnce(&mut Work)) -> bool {
        let Some(batch) = self.pending.get_mut(slot) else {
            return true;
        };
        add(batch);
        if batch.len() < BATCH_ITEMS {
            return true;
        }
        let full = std::mem::replace(batch, empty_like(batch));
        self.send(slot, full)
    }

    fn send(&self, slot: usize, work: Work) -> bool {
        !self.failed.load(Ordering::Relaxed)
            && self
                .senders
                .get(slot)
                .is_some_and(|tx| tx.send(work).is_ok())
    }

    /// Sends every partial batch; `false` if a loader failed.
    fn flush(&mut self) -> bool {
        let mut ok = true;
        for slot in 0..self.pending.len() {
            let Some(batch) = self.pending.get_mut(slot) else {
                continue;
            };
            if batch.len() > 0 {
                let work = std::mem::replace(batch, empty_like(batch));
                ok &= self.send(slot, work);
            }
        }
        ok
    }

    /// Waits until every loader installed everything sent so far; `false` if one failed.
    fn barrier(&mut self) -> bool {
        if !self.flush() {
            return false;
        }
        let (tx, rx) = sync_channel(self.senders.len());
        for slot in 0..self.senders.len() {
            if !self.send(slot, Work::Barrier(tx.clone())) {
                return false;
            }
        }
        drop(tx);
        (0..self.senders.len()).all(|_| rx.recv().is_ok())
    }
}

fn empty_like(work: &Work) -> Work {
    match work {
        Work::Entries(ts, _) => Work::Entries(*ts, EntryBatch::default()),
        Work::Ops(_) | Work::Barrier(_) => Work::Ops(Vec::with_capacity(BATCH_ITEMS)),
    }
}

/// One loader thread's loop.
fn load(
    inner: &Inner,
    rx: Receiver<Work>,
    failed: &AtomicBool,
    corrupt: &(dyn Fn(EntryError) -> TxnError + Sync),
) -> Result<(), TxnError> {
    let mut guard = crossbeam_epoch::pin();
    let mut tally = LoadTally::default();
    for work in rx {
        let done = match work {
            Work::Entries(ts, batch) => {
                load_entries(inner, ts, &batch, corrupt, &mut tally, &guard)
            }
            Work::Ops(ops) => replay_ops(inner, &ops, &guard),
            Work::Barrier(ack) => {
                let _ = ack.send(());
                Ok(())
            }
        };
        tally.flush(inner);
        if let Err(error) = done {
            failed.store(true, Ordering::Relaxed);
            return Err(error);
        }
        // Unpin between batches, so memory retired meanwhile can be reclaimed.
        guard.repin();
    }
    Ok(())
}

/// How many entries ahead of the one it installs a loader prefetches hash-table lines for:
/// far enough for a memory access (~100 ns) to land while the entries between are installed.
const PREFETCH_AHEAD: usize = 8;

/// Installs one batch of checkpoint entries, prefetching each key's hash-table lines a few
/// entries before its turn (the probe is otherwise a cache miss per key).
fn load_entries(
    inner: &Inner,
    ts: CommitTs,
    batch: &EntryBatch,
    corrupt: &(dyn Fn(EntryError) -> TxnError + Sync),
    tally: &mut LoadTally,
    guard: &crossbeam_epoch::Guard,
) -> Result<(), TxnError> {
    let mut entries = Vec::with_capacity(batch.ends.len());
    for raw in batch.entries() {
        let entry = CheckpointEntry::decode(raw).map_err(corrupt)?;
        let d = inner.db(entry.db)?;
        entries.push((entry, d.index.hash_of(entry.key)));
    }
    let prefetch = |(entry, hash): &(CheckpointEntry<'_>, u64)| {
        if let Ok(d) = inner.db(entry.db) {
            d.index.prefetch(*hash);
        }
    };
    entries.iter().take(PREFETCH_AHEAD).for_each(prefetch);
    for (i, (entry, hash)) in entries.iter().enumerate() {
        if let Some(ahead) = entries.get(i + PREFETCH_AHEAD) {
            prefetch(ahead);
        }
        crate::commit::load_entry(inner, ts, entry, *hash, tally, guard)?;
    }
    Ok(())
}

/// Applies one batch of single-key WAL operations in order, prefetching each key's hash-table
/// lines a few operations before its turn.
fn replay_ops(
    inner: &Inner,
    ops: &[(CommitTs, LogOp)],
    guard: &crossbeam_epoch::Guard,
) -> Result<(), TxnError> {
    let prefetch = |op: &LogOp| {
        if let LogOp::Put { db, key, .. }
        | LogOp::Delete { db, key }
        | LogOp::SetExpiry { db, key, .. } = op
        {
            if let Ok(d) = inner.db(*db) {
                d.index.prefetch(d.index.hash_of(key));
            }
        }
    };
    ops.iter()
        .take(PREFETCH_AHEAD)
        .for_each(|(_, op)| prefetch(op));
    for (i, (ts, op)) in ops.iter().enumerate() {
        if let Some((_, ahead)) = ops.get(i + PREFETCH_AHEAD) {
            prefetch(ahead);
        }
        // SAFETY: recovery owns the engine until it publishes it, and each key is this
        // loader's alone (see the module docs).
        let loading = unsafe { CommitLocked::loading() };
        crate::commit::apply_ops_locked(inner, &loading, *ts, std::slice::from_ref(op), guard)?;
    }
    Ok(())
}

/// Runs `read` on this thread with a pool of loader threads fed through [`Loaders`]; returns
/// `read`'s result, or the first loader's error.
fn with_loaders<T>(
    inner: &Inner,
    first: Work,
    corrupt: &(dyn Fn(EntryError) -> TxnError + Sync),
    read: impl FnOnce(&mut Loaders<'_>) -> Result<T, TxnError>,
) -> Result<T, TxnError> {
    let n = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, LOADERS_MAX);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = sync_channel::<Work>(BATCHES_QUEUED);
            senders.push(tx);
            let failed = &failed;
            handles.push(scope.spawn(move || load(inner, rx, failed, corrupt)));
        }
        let pending = (0..n).map(|_| empty_like(&first)).collect();
        let mut loaders = Loaders {
            senders,
            pending,
            failed: &failed,
        };
        let read = read(&mut loaders);
        if read.is_ok() {
            loaders.flush(); // a loader that failed reports why below
        }
        drop(loaders);
        let mut loader_error = None;
        for handle in handles {
            let result = handle.join().unwrap_or(Err(TxnError::RecoveryThread));
            if let Err(error) = result {
                loader_error.get_or_insert(error);
            }
        }
        // A loader's error explains a read that stopped early; otherwise the read's own.
        match (loader_error, read) {
            (Some(error), _) => Err(error),
            (None, read) => read,
        }
    })
}

fn entry_corrupt(file: &std::path::Path, error: EntryError) -> TxnError {
    TxnError::Storage(StorageError::CheckpointCorrupt {
        file: file.to_path_buf(),
        offset: 0,
        reason: storage::error::Corruption::FooterMismatch(error.reason()),
    })
}

/// The last (database, key) a checkpoint load read, to check that entries ascend.
#[derive(Default)]
struct LastKey {
    db: Option<u8>,
    key: Vec<u8>,
}

impl LastKey {
    /// True if `(db, key)` comes strictly after the last one.
    fn precedes(&self, db: u8, key: &[u8]) -> bool {
        match self.db {
            None => true,
            Some(last) => (last, self.key.as_slice()) < (db, key),
        }
    }

    fn set(&mut self, db: u8, key: &[u8]) {
        self.db = Some(db);
        self.key.clear();
        self.key.extend_from_slice(key);
    }
}

/// Loads a checkpoint into an empty engine at its snapshot timestamp and publishes it;
/// returns the number of keys.
pub(crate) fn load_checkpoint(
    inner: &Inner,
    mut reader: CheckpointReader,
    snapshot_ts: u64,
) -> Result<u64, TxnError> {
    let ts = CommitTs(snapshot_ts);
    let path = reader.path().to_path_buf();
    let corrupt = move |error: EntryError| entry_corrupt(&path, error);
    let total = usize::try_from(reader.footer().record_count).unwrap_or(usize::MAX);
    let mut reserved = [false; DATABASES];
    let first = Work::Entries(ts, EntryBatch::default());
    let keys = with_loaders(inner, first, &corrupt, |loaders| {
        let mut keys = 0usize;
        let mut previous = LastKey::default();
        while let Some(record) = reader.next_record_ref()? {
            let entry = match CheckpointEntry::decode(record) {
                Ok(entry) => entry,
                Err(error) => return Err(reader.record_error(error.reason()).into()),
            };
            if let Some(seen) = reserved.get_mut(usize::from(entry.db)).filter(|s| !**s) {
                // A checkpoint lists one database after another, so the rest of the file bounds
                // this one; sizing the hash table once spares a rehash per doubling (each one
                // touches every node). Trimmed back below if other databases follow.
                *seen = true;
                if let Ok(d) = inner.db(entry.db) {
                    d.index.reserve(total.saturating_sub(keys));
                }
            }
            // Entries come in strictly increasing (database, key) order, so each key appears
            // once and any loader may install it: runs of `BATCH_ITEMS` neighbours go to the
            // loaders in turn, so they insert into distant parts of the skip list instead of
            // racing for the same nodes. A file out of order breaks that, so it is refused.
            if !previous.precedes(entry.db, entry.key) {
                return Err(reader
                    .record_error(EntryError::OUT_OF_ORDER.reason())
                    .into());
            }
            previous.set(entry.db, entry.key);
            let slot = (keys / BATCH_ITEMS) % loaders.senders.len().max(1);
            let pushed = loaders.add(slot, |work| {
                if let Work::Entries(_, batch) = work {
                    batch.push(record);
                }
            });
            if !pushed {
                break;
            }
            keys += 1;
        }
        Ok(keys as u64)
    })?;
    for (db, _) in reserved.iter().enumerate().filter(|(_, r)| **r) {
        if let Ok(d) = inner.db(db as crate::DbIndex) {
            d.index.shrink_oversized();
        }
    }
    crate::commit::publish_loaded_snapshot(inner, ts);
    Ok(keys)
}

/// One decoded WAL record for [`Replay::apply`].
pub(crate) struct Replay<'l, 'f> {
    inner: &'l Inner,
    loaders: &'l mut Loaders<'f>,
    last_ts: u64,
}

impl Replay<'_, '_> {
    /// Applies one record's operations at `ts`, which must be above every earlier record's.
    /// `Ok(false)` if a loader failed (stop; the error comes out of [`replay`]).
    pub(crate) fn apply(&mut self, ts: CommitTs, ops: Vec<LogOp>) -> Result<bool, TxnError> {
        if ts.0 <= self.last_ts {
            return Err(TxnError::ReplayOrder {
                commit_ts: ts,
                last: CommitTs(self.last_ts),
            });
        }
        self.last_ts = ts.0;
        let n = self.loaders.senders.len();
        for op in ops {
            let key: Option<&Bytes> = match &op {
                LogOp::Put { key, .. }
                | LogOp::Delete { key, .. }
                | LogOp::SetExpiry { key, .. } => Some(key),
                LogOp::FlushDb { .. } | LogOp::FlushAll | LogOp::SwapDb { .. } => None,
            };
            let pushed = match key {
                Some(key) => {
                    let slot = loader_of(key, n);
                    self.loaders.add(slot, |work| {
                        if let Work::Ops(batch) = work {
                            batch.push((ts, op));
                        }
                    })
                }
                None => {
                    // Keyspace-wide: everything before it first, then it alone.
                    if !self.loaders.barrier() {
                        return Ok(false);
                    }
                    let guard = crossbeam_epoch::pin();
                    // SAFETY: every loader waits at the barrier: this thread alone uses the
                    // engine, which recovery has not published yet.
                    let loading = unsafe { CommitLocked::loading() };
                    crate::commit::apply_ops_locked(
                        self.inner,
                        &loading,
                        ts,
                        std::slice::from_ref(&op),
                        &guard,
                    )?;
                    true
                }
            };
            if !pushed {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Replays WAL records fed by `feed` (which calls [`Replay::apply`] per record, in log order)
/// over the loader threads, then publishes the newest timestamp; returns `feed`'s result.
pub(crate) fn replay<T>(
    inner: &Inner,
    after_ts: u64,
    feed: impl FnOnce(&mut Replay<'_, '_>) -> Result<T, TxnError>,
) -> Result<T, TxnError> {
    // A replay hands out no checkpoint entries; this only satisfies the signature.
    let no_entries = |e: EntryError| entry_corrupt(std::path::Path::new(""), e);
    let first = Work::Ops(Vec::new());
    let mut last_ts = after_ts;
    let out = with_loaders(inner, first, &no_entries, |loaders| {
        let mut replay = Replay {
            inner,
            loaders,
            last_ts: after_ts,
        };
        let out = feed(&mut replay);
        last_ts = replay.last_ts;
        out
    })?;
    crate::commit::publish_loaded_snapshot(inner, CommitTs(last_ts));
    Ok(out)
}
