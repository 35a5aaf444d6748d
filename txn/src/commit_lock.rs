//! The commit lock, and the proof that a caller holds it.
//!
//! Invariant: every function whose correctness needs the commit critical section (it stamps or
//! publishes a timestamp, installs, re-points, cuts or removes versions, or changes which
//! keyspace a database shows) takes a [`CommitLocked`]. Only [`CommitLock::lock`] makes one,
//! and [`CommitLocked::loading`] for recovery's loaders, which own the engine alone until it is
//! published: "caller holds the commit lock" is checked by the compiler, not by a comment.

use parking_lot::{Mutex, MutexGuard};

/// The commit critical section: validate, stamp, log, install, publish.
#[derive(Default)]
pub(crate) struct CommitLock(Mutex<()>);

impl CommitLock {
    /// Waits for the lock.
    pub(crate) fn lock(&self) -> CommitLocked<'_> {
        CommitLocked {
            _guard: Some(self.0.lock()),
        }
    }
}

/// Held while the commit lock is (or while recovery owns the engine alone); released on drop.
#[must_use = "the commit lock is released when this is dropped"]
pub(crate) struct CommitLocked<'a> {
    _guard: Option<MutexGuard<'a, ()>>,
}

impl CommitLocked<'static> {
    /// The proof for recovery's loaders, which install without the lock.
    ///
    /// # Safety
    ///
    /// Only while nothing else can use the engine (before recovery publishes it), and each key
    /// is installed by one thread at a time (`recovery.rs`).
    pub(crate) unsafe fn loading() -> Self {
        CommitLocked { _guard: None }
    }
}
