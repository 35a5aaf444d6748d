//! Transaction commands: MULTI/EXEC/DISCARD/WATCH/UNWATCH and the interactive `TXN`.
//!
//! Invariant: these only produce [`Command`](crate::cmd::Command) markers; the session owns the
//! queue, the watch set and the open transaction, so their lifecycle lives in one place.

pub mod discard;
pub mod exec;
pub mod multi;
pub mod txn_;
pub mod unwatch;
pub mod watch;
