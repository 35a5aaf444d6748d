//! tierkv-txn: the versioned index, transactions, garbage collection and expiry.
//!
//! Architecture invariant: knows nothing of RESP, sockets or tokio; time comes only through
//! [`Clock`] and durability only through [`CommitSink`], so the whole engine runs in a seeded
//! single-threaded simulation.
//!
//! Guarantees: a transaction reads a consistent snapshot (every commit up to its snapshot
//! timestamp, nothing after); a commit's writes become visible all at once; under
//! [`Isolation::Snapshot`] the first committer wins on written keys, under
//! [`Isolation::Serializable`] also on every key read and range scanned; commit timestamps are
//! assigned in the order records reach the [`CommitSink`].
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod checkpoint_scan;
mod commit;
mod commit_lock;
pub mod compact;
pub mod durability;
pub mod engine;
pub mod error;
pub mod expiry;
mod gc;
mod index;
mod keyspace;
pub mod limits;
pub mod log_record;
pub mod memory;
mod oracle;
mod recovery;
mod snapshot;
pub mod snapshot_limits;
pub mod tier;
pub mod timestamp;
pub mod transaction;

pub use bytes::Bytes;
pub use compact::{CompactionConfig, CompactionStats};
pub use durability::{
    CheckpointReport, Durability, DurabilityConfig, PersistenceStats, RecoveryReport,
};
pub use engine::{CommitSink, DbStats, Engine, EngineConfig, EngineStats, KeyPrefetch, KeyWrite};
pub use error::TxnError;
pub use expiry::{Clock, ManualClock, SystemClock, TimingWheel};
pub use gc::GcStats;
pub use log_record::{DecodeError, LogOp, LogRecord};
pub use memory::{EvictionPolicy, KeyAccess, MemoryConfig, MemoryStats};
pub use snapshot_limits::{
    LimitExceeded, OldestSnapshot, SnapshotHolder, SnapshotLimitReport, SnapshotLimits,
};
pub use storage::page::{PageId, PageStoreConfig, ValueRef};
pub use storage::tier::spill::SLOT_BYTES as SPILL_SLOT_BYTES;
pub use storage::tier::{
    EvictionPolicy as PagePolicy, LatencyHistogram, SpillFile, SpillStats, Uring,
};
pub use storage::Lsn;
pub use storage::StorageError;
pub use timestamp::{CommitTs, SnapshotTs, TxnId};
pub use transaction::{Condition, Transaction, WatchMark};

/// A logical database number, `0..limits::DATABASES`.
pub type DbIndex = u8;

/// How a transaction is validated at commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isolation {
    /// Snapshot isolation: reads at a snapshot; first committer wins on written keys. Allows
    /// write skew.
    Snapshot,
    /// Serializable: additionally, every key read and every range scanned must be unchanged at
    /// commit (backward validation), which rules out write skew and phantoms.
    Serializable,
}

/// The type of a stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueKind {
    /// A Redis string.
    String,
}

/// What a write does to the key's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// Keep the deadline of the value being replaced (Redis `KEEPTTL`).
    Keep,
    /// No deadline.
    Persist,
    /// Absolute deadline in ms since the Unix epoch.
    At(u64),
}

/// A value as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value's bytes.
    pub value: Bytes,
    /// Its type.
    pub kind: ValueKind,
    /// The commit that wrote it ([`CommitTs::UNCOMMITTED`] for the reader's own write).
    pub version: CommitTs,
    /// Its deadline, ms since the Unix epoch.
    pub expire_at_ms: Option<u64>,
}

/// What is known of a value without reading its bytes ([`Transaction::peek_meta`]): enough
/// for EXISTS, TYPE, STRLEN and the TTL family, which must not wait for the SSD tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// Its type.
    pub kind: ValueKind,
    /// Its length in bytes.
    pub len: usize,
    /// The commit that wrote it ([`CommitTs::UNCOMMITTED`] for the reader's own write).
    pub version: CommitTs,
    /// Its deadline, ms since the Unix epoch.
    pub expire_at_ms: Option<u64>,
}

/// What a commit produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit timestamp; `None` for a read-only transaction.
    pub commit_ts: Option<CommitTs>,
    /// Where the commit's record sits in the log; `None` if read-only or not logged.
    pub lsn: Option<storage::Lsn>,
}
