//! Checkpoints: a streamed, checksummed copy of one snapshot (opaque records, one per key),
//! installed atomically and named by the MANIFEST together with the WAL LSN replay starts from.
//!
//! Invariant: recovery = load the checkpoint the MANIFEST names, then replay WAL records with
//! LSN ≥ its `redo_lsn`. So a checkpoint must be durable and named by the MANIFEST before any WAL
//! segment below `redo_lsn` is removed (`WalWriter::truncate_before` after `finish`).

pub mod format;
pub mod manifest;
pub mod reader;
pub mod writer;

pub use format::{CheckpointFooter, CheckpointHeader};
pub use manifest::Manifest;
pub use reader::{CheckpointReader, CheckpointSummary};
pub use writer::{CheckpointInfo, CheckpointWriter};
