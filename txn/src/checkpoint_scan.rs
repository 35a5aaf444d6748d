//! How far the checkpoint in progress has read its snapshot, so GC need not keep, for the
//! checkpoint, the old versions of keys it has already written.
//!
//! A checkpoint streams one snapshot at `ts` in (database, key) order for seconds; held as an
//! ordinary snapshot it would keep every version written meanwhile (under churn, hundreds of
//! megabytes, freed all at once when it ends: RSS spikes at every checkpoint). But the scan
//! reads each key once: behind its cursor it needs nothing, ahead of it only the version
//! visible at `ts`. So GC (`gc.rs`) treats the checkpoint's snapshot apart from the others:
//! - a key the cursor has passed is collected at the other snapshots' watermark;
//! - a key ahead of it keeps the version visible at `ts` and what the others need, and loses
//!   the versions in between (`KeyNode::cut_between`); GC visits it again once the cursor has
//!   passed it or the checkpoint has ended.
//!
//! Invariants:
//! - The progress is published ([`CheckpointScan::begin`]) while the checkpoint's snapshot is
//!   registered, and withdrawn ([`ScanGuard`]'s drop) before it is released; GC computes the
//!   watermark that leaves the checkpoint out under this module's lock, so the registration it
//!   leaves out is open (`ActiveSnapshots::low_watermarks`).
//! - The cursor only advances, and only past keys whose values the scan has copied out: a
//!   stale cursor is a conservative one.
//! - Old places of relocated values (`compact.rs`) are freed at the others' watermark too: the
//!   scan registers an ordinary snapshot for each batch it reads (`durability.rs`), so a read
//!   in flight holds that watermark as any reader's does.
//! - Per-key reasoning needs each value to belong to one key of one database. SWAPDB moves
//!   values between databases, so after a SWAPDB above `ts` the checkpoint counts as an
//!   ordinary snapshot again (`swapped_since`, checked under the commit lock).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::oracle::TimestampOracle;
use crate::snapshot::ActiveSnapshots;
use crate::DbIndex;

/// How far the scan of a checkpoint's snapshot has got.
#[derive(Debug, Clone)]
pub(crate) struct ScanProgress {
    /// The checkpoint's snapshot.
    pub(crate) ts: u64,
    /// Every key of databases below `db` is read, and of `db` every key up to `done`.
    db: DbIndex,
    done: Option<Bytes>,
}

impl ScanProgress {
    /// Whether the scan has read `key` of `db` (and needs none of its versions any more).
    pub(crate) fn passed(&self, db: DbIndex, key: &[u8]) -> bool {
        db < self.db || (db == self.db && self.done.as_deref().is_some_and(|done| key <= done))
    }
}

/// The checkpoint scan in progress, if any (one at a time; another runs as a plain snapshot).
#[derive(Debug, Default)]
pub(crate) struct CheckpointScan {
    progress: Mutex<Option<ScanProgress>>,
    /// The newest SWAPDB's timestamp (set under the commit lock).
    last_swap_ts: AtomicU64,
}

impl CheckpointScan {
    /// Publishes a scan of the snapshot at `ts`, registered by the caller and open until the
    /// returned guard drops. `None` if another scan is published (this one is then an
    /// ordinary snapshot).
    pub(crate) fn begin(&self, ts: u64) -> Option<ScanGuard<'_>> {
        let mut progress = self.progress.lock();
        if progress.is_some() {
            return None;
        }
        *progress = Some(ScanProgress {
            ts,
            db: 0,
            done: None,
        });
        Some(ScanGuard { scan: self })
    }

    #[cfg(test)]
    fn with<T>(&self, f: impl FnOnce(Option<&ScanProgress>) -> T) -> T {
        f(self.progress.lock().as_ref())
    }

    /// `(all, others, scan)`: the low watermark, the one the snapshots other than the
    /// checkpoint's hold, and the scan's progress when the checkpoint alone holds the first
    /// below the second. Read together under this module's lock (see the module invariants).
    pub(crate) fn low_watermarks(
        &self,
        snapshots: &ActiveSnapshots,
        oracle: &TimestampOracle,
    ) -> (u64, u64, Option<ScanProgress>) {
        let progress = self.progress.lock();
        let progress = progress.as_ref();
        let (all, others) = snapshots.low_watermarks(oracle, progress.map(|p| p.ts));
        (all, others, progress.filter(|p| p.ts < others).cloned())
    }

    /// Notes a SWAPDB committed at `ts`.
    pub(crate) fn note_swap(&self, _locked: &crate::commit_lock::CommitLocked<'_>, ts: u64) {
        self.last_swap_ts.fetch_max(ts, Ordering::AcqRel);
    }

    /// Whether a SWAPDB committed above `ts`. Meaningful under the commit lock.
    pub(crate) fn swapped_since(&self, ts: u64) -> bool {
        self.last_swap_ts.load(Ordering::Acquire) > ts
    }
}

/// A published scan; dropping it withdraws the progress.
#[derive(Debug)]
pub(crate) struct ScanGuard<'a> {
    scan: &'a CheckpointScan,
}

impl ScanGuard<'_> {
    /// The scan has copied out every key of `db` up to `last`, and of databases below.
    pub(crate) fn advance(&self, db: DbIndex, last: Option<&Bytes>) {
        if let Some(progress) = self.scan.progress.lock().as_mut() {
            let forward = db > progress.db
                || (db == progress.db
                    && last.is_some_and(|last| progress.done.as_ref().is_none_or(|d| last > d)));
            if forward {
                progress.db = db;
                progress.done = last.cloned();
            }
        }
    }
}

impl Drop for ScanGuard<'_> {
    fn drop(&mut self) {
        *self.scan.progress.lock() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_follows_the_cursor_in_database_then_key_order() {
        let scan = CheckpointScan::default();
        let guard = scan.begin(7).expect("first scan");
        assert!(scan.begin(8).is_none(), "one scan at a time");
        let passed = |db, key: &[u8]| scan.with(|p| p.is_some_and(|p| p.passed(db, key)));
        assert!(!passed(0, b"a"));
        guard.advance(0, Some(&Bytes::from_static(b"m")));
        assert!(passed(0, b"a") && passed(0, b"m") && !passed(0, b"n") && !passed(1, b"a"));
        // Never backwards.
        guard.advance(0, Some(&Bytes::from_static(b"c")));
        assert!(passed(0, b"m"));
        // A database done: its keys all passed, the next one's none yet.
        guard.advance(1, None);
        assert!(passed(0, b"zzz") && !passed(1, b""));
        drop(guard);
        assert!(!passed(0, b"a"), "withdrawn with its guard");
        assert!(scan.begin(9).is_some());
    }

    #[test]
    fn swaps_are_seen_above_their_timestamp_only() {
        let scan = CheckpointScan::default();
        assert!(!scan.swapped_since(0));
        let lock = crate::commit_lock::CommitLock::default();
        scan.note_swap(&lock.lock(), 10);
        assert!(scan.swapped_since(9) && !scan.swapped_since(10));
    }
}
