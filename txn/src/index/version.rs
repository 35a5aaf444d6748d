//! [`Version`]: one committed state of a key, and the per-key chain of them.
//!
//! Invariants:
//! - a key's chain is ordered newest first by `commit_ts`, strictly decreasing;
//! - only the commit path (holding the commit lock) stores a key's `head`; only GC (holding the
//!   GC lock) stores a version's `next`, and only to cut the chain below the low watermark;
//! - a version is fully initialised before it is published with a Release store, and readers
//!   load with Acquire, so a reader never sees a partial version;
//! - unlinked versions are destroyed through the epoch collector, after every reader that might
//!   still hold a pointer to them has unpinned.

use crossbeam_epoch::{Atomic, Guard, Shared};
use std::sync::atomic::Ordering;

use storage::page::ValueRef;

/// Deadline value meaning "no expiry" (no real deadline is ms 0 of 1970).
pub(crate) const NO_EXPIRY: u64 = 0;

/// One committed state of a key.
pub(crate) struct Version {
    pub(crate) commit_ts: u64,
    /// Absolute deadline in ms since the Unix epoch, or [`NO_EXPIRY`].
    pub(crate) expire_at_ms: u64,
    /// The value's bytes ([`ValueRef::EMPTY`] for tombstones).
    pub(crate) value: ValueRef,
    pub(crate) tombstone: bool,
    /// True when `value` is shared with the next (older) version (a TTL-only change): whoever
    /// frees values during GC must free a shared value exactly once.
    pub(crate) inherits_value: bool,
    pub(crate) next: Atomic<Version>,
}

impl Version {
    /// True if this version holds a value that is not expired at `now_ms`.
    pub(crate) fn is_live(&self, now_ms: u64) -> bool {
        !self.tombstone && (self.expire_at_ms == NO_EXPIRY || now_ms < self.expire_at_ms)
    }

    pub(crate) fn expiry(&self) -> Option<u64> {
        (self.expire_at_ms != NO_EXPIRY).then_some(self.expire_at_ms)
    }
}

/// A key's version chain.
#[derive(Default)]
pub(crate) struct KeyNode {
    pub(crate) head: Atomic<Version>,
}

impl KeyNode {
    /// The newest committed version.
    pub(crate) fn newest<'g>(&self, guard: &'g Guard) -> Option<&'g Version> {
        // SAFETY: versions reachable from `head` are destroyed only through the epoch
        // collector after being unlinked, and `guard` pins the current epoch.
        unsafe { self.head.load(Ordering::Acquire, guard).as_ref() }
    }

    /// The newest version with `commit_ts <= snapshot`.
    pub(crate) fn visible<'g>(&self, snapshot: u64, guard: &'g Guard) -> Option<&'g Version> {
        let mut current = self.head.load(Ordering::Acquire, guard);
        // SAFETY: as in `newest`. A reader whose snapshot is at or above the low watermark
        // stops at or before the version GC keeps, so it never follows a cut `next`.
        while let Some(version) = unsafe { current.as_ref() } {
            if version.commit_ts <= snapshot {
                return Some(version);
            }
            current = version.next.load(Ordering::Acquire, guard);
        }
        None
    }

    /// The newest committed version's timestamp, 0 if none.
    pub(crate) fn newest_ts(&self, guard: &Guard) -> u64 {
        self.newest(guard).map_or(0, |v| v.commit_ts)
    }

    /// Publishes `version` as the newest. Caller holds the commit lock.
    pub(crate) fn push(&self, mut version: Version, guard: &Guard) {
        let head = self.head.load(Ordering::Acquire, guard);
        version.next = Atomic::from(head);
        self.head
            .store(crossbeam_epoch::Owned::new(version), Ordering::Release);
    }

    /// Number of versions in the chain (diagnostics and tests).
    pub(crate) fn chain_len(&self, guard: &Guard) -> usize {
        let mut count = 0;
        let mut current: Shared<'_, Version> = self.head.load(Ordering::Acquire, guard);
        // SAFETY: as in `newest`.
        while let Some(version) = unsafe { current.as_ref() } {
            count += 1;
            current = version.next.load(Ordering::Acquire, guard);
        }
        count
    }
}

impl Drop for KeyNode {
    fn drop(&mut self) {
        // SAFETY: we have `&mut self`, so no reader can reach this chain through this node any
        // more; nodes are dropped only once the index no longer hands them out (their last
        // `Arc` is gone), so the chain is ours alone.
        unsafe {
            let guard = crossbeam_epoch::unprotected();
            let mut current = self.head.load(Ordering::Relaxed, guard);
            while !current.is_null() {
                let next = current.deref().next.load(Ordering::Relaxed, guard);
                drop(current.into_owned());
                current = next;
            }
        }
    }
}
