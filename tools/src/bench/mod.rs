//! tierkv-bench: a YCSB-style load generator for any Redis-protocol server.
//!
//! Invariant: the tool speaks only RESP2 over TCP (its own minimal client), so the same code
//! measures tierkv and Redis; every value it reads is checked against what it wrote.
//!
//! Flow: [`config::BenchConfig`] → [`runner::run`] (preflight, load, run rounds; one
//! [`conn::drive`] task per connection) → [`report::BenchReport`] (text, JSON, CSV) and
//! [`plot`] (SVG charts).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

pub mod config;
pub mod conn;
pub mod dist;
pub mod keyspace;
pub mod lru_sim;
pub mod ops;
pub mod plot;
pub mod report;
pub mod resp;
pub mod runner;
pub mod schedule;
pub mod stats;
pub mod workload;
