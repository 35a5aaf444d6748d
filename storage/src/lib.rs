//! tierkv-storage: how bytes reach the disk safely and come back.
//!
//! Architecture invariant: this crate knows nothing of keys' versions, transactions, RESP or
//! tokio. Log payloads are opaque bytes; values are opaque byte strings addressed by
//! [`page::ValueRef`].
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

pub mod error;
pub mod lsn;
pub mod page;
pub mod tier;

pub use error::StorageError;
pub use lsn::Lsn;
pub mod buggify;
pub mod checkpoint;
pub mod io;
pub mod limits;
pub mod wal;
