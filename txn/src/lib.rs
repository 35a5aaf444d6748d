//! tierkv-txn: the versioned index, transactions, garbage collection and expiry.
//!
//! Architecture invariant: knows nothing of RESP, sockets or tokio.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]
