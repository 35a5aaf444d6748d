//! Timestamp and id newtypes: one meaning per number.
//!
//! Invariant: commit timestamps are dense and strictly increasing in commit (and log) order;
//! `CommitTs(0)` means "no version" (nothing was ever committed for that key).

/// The timestamp a committed transaction's writes carry. Assigned in log order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CommitTs(pub u64);

impl CommitTs {
    /// No version at all.
    pub const NONE: CommitTs = CommitTs(0);
    /// The version of a transaction's own, not yet committed write.
    pub const UNCOMMITTED: CommitTs = CommitTs(u64::MAX);
}

/// The point in commit order a transaction reads at: it sees exactly the commits with
/// `commit_ts <= snapshot_ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SnapshotTs(pub u64);

/// Identifies a transaction for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TxnId(pub u64);
