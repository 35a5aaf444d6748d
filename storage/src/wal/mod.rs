//! The write-ahead log: one checksummed record per committed transaction, appended by a
//! group-committing [`WalWriter`] into numbered segment files and read back by [`WalReader`].
//!
//! Invariant: records are stored in LSN order with consecutive LSNs; a record is acknowledged
//! only once durable per [`FsyncPolicy`]; recovery cuts only a damaged *tail* (see [`tail`]).
//! Payloads are opaque bytes: this module knows nothing of keys or transactions.

pub mod policy;
pub mod reader;
pub mod record;
pub mod synced;
pub mod tail;
pub mod writer;

pub use policy::FsyncPolicy;
pub use reader::{list_segments, SegmentInfo, WalEnd, WalReader, WalRecord};
pub use tail::{TailAction, TailReport, TailState};
pub use writer::{DurableCallback, WalConfig, WalStats, WalWriter};

use crate::{Lsn, StorageError};
use std::sync::atomic::{AtomicU64, Ordering};

/// The sink the engine hands committed transactions to (see docs/ARCHITECTURE.md).
pub trait CommitLog: Send + Sync {
    /// Queues one record; called in commit order. May block for backpressure; never means
    /// "durable".
    fn append(&self, payload: &[u8]) -> Result<Lsn, StorageError>;
    /// Blocks until `lsn` is durable, or fails.
    fn wait_durable(&self, lsn: Lsn) -> Result<(), StorageError>;
    /// Highest durable LSN.
    fn durable_lsn(&self) -> Lsn;
    /// Calls `done` once `lsn` is durable or has failed (for callers that must not block).
    fn on_durable(&self, lsn: Lsn, done: DurableCallback);
}

/// `appendonly no`: numbers records and drops them; everything is "durable" at once.
#[derive(Debug, Default)]
pub struct NoLog {
    last: AtomicU64,
}

impl CommitLog for NoLog {
    fn append(&self, _payload: &[u8]) -> Result<Lsn, StorageError> {
        Ok(Lsn(self.last.fetch_add(1, Ordering::AcqRel) + 1))
    }
    fn wait_durable(&self, _lsn: Lsn) -> Result<(), StorageError> {
        Ok(())
    }
    fn durable_lsn(&self) -> Lsn {
        Lsn(self.last.load(Ordering::Acquire))
    }
    fn on_durable(&self, _lsn: Lsn, done: DurableCallback) {
        done(Ok(()));
    }
}
