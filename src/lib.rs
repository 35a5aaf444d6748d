//! tierkv server: RESP over TCP, turned into engine calls.
//!
//! Architecture invariant: this crate knows the engine only through `txn`'s public API
//! (`Engine`, `Transaction`); it never sees pages, WAL framing or the buffer pool.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

pub mod cmd;
pub mod config;
pub mod connection;
pub mod dirlock;
pub mod fdlimit;
pub mod glob;
pub mod latency;
pub mod metrics;
pub mod persistence;
pub mod resp;
pub mod server;
pub mod session;
pub mod slowlog;
