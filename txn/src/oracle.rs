//! [`TimestampOracle`]: hands out commit timestamps and holds the visible watermark.
//!
//! Invariant: `visible` is the newest commit whose versions are all installed; it only moves
//! forward, and only inside the commit lock, after installation (so a snapshot taken at
//! `visible` sees every commit up to it completely, and nothing after it).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::commit_lock::CommitLocked;
use crate::timestamp::CommitTs;

/// Commit timestamps and the visible watermark.
#[derive(Debug, Default)]
pub(crate) struct TimestampOracle {
    visible: AtomicU64,
}

impl TimestampOracle {
    /// The newest fully published commit.
    pub(crate) fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// The timestamp the next commit gets.
    pub(crate) fn next(&self, _locked: &CommitLocked<'_>) -> CommitTs {
        CommitTs(self.visible.load(Ordering::Acquire) + 1)
    }

    /// Makes `ts` (and everything before it) visible. The caller has installed all of `ts`'s
    /// versions.
    pub(crate) fn publish(&self, ts: CommitTs, _locked: &CommitLocked<'_>) {
        debug_assert!(ts.0 > self.visible.load(Ordering::Relaxed));
        self.visible.store(ts.0, Ordering::Release);
    }
}
