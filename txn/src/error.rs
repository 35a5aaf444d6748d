//! The transaction crate's one error type.

use bytes::Bytes;
use storage::StorageError;

use crate::log_record::DecodeError;
use crate::snapshot_limits::LimitExceeded;
use crate::timestamp::CommitTs;

/// Everything a transaction or an engine operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// First committer wins: `key` (written, or read under `Serializable`) changed after this
    /// transaction's snapshot. Retrying from a fresh snapshot may succeed.
    #[error("write conflict on key {key:?}")]
    Conflict {
        /// The first conflicting key found.
        key: Bytes,
    },
    /// A watched key's newest version is not the one the watcher saw (Redis WATCH).
    #[error("a watched key changed")]
    WatchFailed,
    /// The page store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A command over many keys (MGET) found several of their values on SSD: every place it
    /// missed in one run, so they are fetched together ([`TxnError::values_not_resident`]).
    #[error("{} values are on SSD", .0.len())]
    ValuesNotResident(Vec<storage::page::ValueRef>),
    /// A log record could not be decoded.
    #[error(transparent)]
    Log(#[from] DecodeError),
    /// A value longer than [`crate::limits::VALUE_MAX_BYTES`].
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// The offered length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A key longer than [`crate::limits::KEY_MAX_BYTES`].
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// The offered length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A transaction buffered more than [`crate::limits::TXN_WRITE_BYTES_MAX`] bytes.
    #[error("transaction writes {bytes} bytes, more than the limit of {max}")]
    TransactionTooLarge {
        /// Bytes the transaction would buffer.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// [`crate::Engine::run`] kept conflicting.
    #[error("transaction conflicted {attempts} times; giving up")]
    TooManyRetries {
        /// Attempts made.
        attempts: u32,
    },
    /// A database index outside `0..DATABASES`.
    #[error("database index {db} out of range")]
    BadDb {
        /// The offered index.
        db: u8,
    },
    /// A replayed record is not newer than the engine's state.
    #[error("replayed record at commit ts {commit_ts:?} is not after {last:?}")]
    ReplayOrder {
        /// The record's timestamp.
        commit_ts: CommitTs,
        /// The newest timestamp already applied.
        last: CommitTs,
    },
    /// The commit sink (write-ahead log) rejected an append.
    #[error("commit log append failed: {0}")]
    Sink(#[source] StorageError),
    /// A checkpoint is already being written.
    #[error("a checkpoint is already in progress")]
    CheckpointInProgress,
    /// A checkpoint's scan thread could not be started, or panicked.
    #[error("the checkpoint's scan thread failed")]
    CheckpointThread,
    /// The WAL ends before the point where the installed (fuzzy) checkpoint becomes exact:
    /// records it was made durable with are missing.
    #[error("the WAL ends at LSN {wal_end}, before LSN {consistent_lsn}, which the checkpoint needs replayed to be exact (records written before the checkpoint was installed are missing)")]
    CheckpointUnreplayed {
        /// The last LSN the WAL holds (0 for none).
        wal_end: u64,
        /// The checkpoint's `consistent_lsn`: every record below it must be replayed.
        consistent_lsn: u64,
    },
    /// A point-in-time replay asked to stop before the installed checkpoint is exact.
    #[error("cannot stop at {until}: the installed checkpoint is exact only from commit ts {consistent_ts} (LSN {last_lsn}) on")]
    ReplayBeforeCheckpoint {
        /// Where the replay was asked to stop.
        until: String,
        /// The first commit timestamp the replay may stop at.
        consistent_ts: u64,
        /// The first LSN it may stop at.
        last_lsn: u64,
    },
    /// A recovery loader thread panicked.
    #[error("a recovery thread failed")]
    RecoveryThread,
    /// The engine aborted this interactive transaction: its snapshot passed a limit of
    /// [`crate::SnapshotLimits`] (see `snapshot_limits.rs`). Every later operation of the
    /// transaction, commit included, fails with this; nothing it buffered is written. A new
    /// transaction may start at once.
    #[error("snapshot too old: transaction aborted ({exceeded})")]
    SnapshotTooOld {
        /// Which limit, and what was measured.
        exceeded: LimitExceeded,
    },
    /// The memory counted for eviction is over `maxmemory` and the policy refuses the write
    /// (`noeviction`), or nothing the policy may evict is left.
    #[error("used memory {used} bytes is over maxmemory {limit} bytes")]
    OutOfMemory {
        /// Memory counted for eviction, bytes.
        used: u64,
        /// `maxmemory`, bytes.
        limit: u64,
    },
}

impl TxnError {
    /// The page a read needs from SSD, if that is why it failed: load it
    /// ([`crate::Engine::load_page`]) and run the operation again.
    pub fn page_not_resident(&self) -> Option<storage::page::PageId> {
        match self {
            TxnError::Storage(StorageError::NotResident { page, .. }) => {
                Some(storage::page::PageId(*page))
            }
            _ => None,
        }
    }

    /// Every value a command missed in its run, when that is why it failed (one for a single
    /// miss, several for [`TxnError::ValuesNotResident`]); empty otherwise.
    pub fn values_not_resident(&self) -> Vec<storage::page::ValueRef> {
        match self {
            TxnError::ValuesNotResident(values) => values.clone(),
            other => other.value_not_resident().into_iter().collect(),
        }
    }

    /// The value a read needs from SSD, if that is why it failed: fetch it
    /// ([`crate::Engine::fetch_value`]) and run the operation again.
    pub fn value_not_resident(&self) -> Option<storage::page::ValueRef> {
        match self {
            TxnError::Storage(StorageError::NotResident { page, offset, len }) => {
                Some(storage::page::ValueRef {
                    page: storage::page::PageId(*page),
                    offset: *offset,
                    len: *len,
                })
            }
            _ => None,
        }
    }
}
