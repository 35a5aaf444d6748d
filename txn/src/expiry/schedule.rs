//! [`ExpirySchedule`]: the timing wheel of keys, plus for each key the earliest deadline it has
//! a wheel entry for.
//!
//! Invariant (the wheel's, see `commit::install`): a key with deadline D has a wheel entry at
//! some deadline <= D. `earliest` lets `schedule` skip an insert that invariant does not need,
//! whatever happened to the key in between: `SET k v` (no TTL) then `EXPIRE k T` in a loop
//! would otherwise add one entry per EXPIRE, each living until T.

use std::collections::HashMap;

use bytes::Bytes;

use super::TimingWheel;
use crate::DbIndex;

/// A wheel entry's item: which key of which database.
pub(crate) type Scheduled = (DbIndex, Bytes);

/// The wheel and its per-key index.
pub(crate) struct ExpirySchedule {
    wheel: TimingWheel<Scheduled>,
    /// Deadline of the earliest pending wheel entry of each key that has one (possibly older
    /// entries of the same key fired already; later duplicates may still be pending).
    earliest: HashMap<Scheduled, u64>,
}

impl ExpirySchedule {
    /// An empty schedule whose wheel starts at `now_ms`.
    pub(crate) fn new(now_ms: u64) -> Self {
        ExpirySchedule {
            wheel: TimingWheel::new(now_ms),
            earliest: HashMap::new(),
        }
    }

    /// Makes sure `key` has a wheel entry at or before `deadline_ms`.
    pub(crate) fn schedule(&mut self, deadline_ms: u64, db: DbIndex, key: Bytes) {
        let item = (db, key);
        if self
            .earliest
            .get(&item)
            .is_some_and(|&pending| pending <= deadline_ms)
        {
            return;
        }
        self.earliest.insert(item.clone(), deadline_ms);
        self.wheel.insert(deadline_ms, item);
    }

    /// Up to about `max` entries due at `now_ms` (see [`TimingWheel::poll`]).
    pub(crate) fn poll(&mut self, now_ms: u64, max: usize) -> Vec<(u64, Scheduled)> {
        let due = self.wheel.poll(now_ms, max);
        for (deadline, item) in &due {
            if self.earliest.get(item) == Some(deadline) {
                self.earliest.remove(item);
            }
        }
        due
    }

    /// Whether the wheel has processed every slot up to `now_ms`.
    pub(crate) fn is_caught_up(&self, now_ms: u64) -> bool {
        self.wheel.is_caught_up(now_ms)
    }

    /// Entries in the wheel (stale ones included).
    pub(crate) fn len(&self) -> usize {
        self.wheel.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_deadline_for_a_scheduled_key_adds_no_entry() {
        let mut s = ExpirySchedule::new(0);
        let key = Bytes::from_static(b"k");
        s.schedule(1_000, 0, key.clone());
        for t in 1_001..2_000 {
            s.schedule(t, 0, key.clone());
        }
        assert_eq!(s.len(), 1);
        // An earlier deadline does need its own entry.
        s.schedule(500, 0, key.clone());
        assert_eq!(s.len(), 2);
        // Other keys and databases are independent.
        s.schedule(1_500, 1, key.clone());
        assert_eq!(s.len(), 3);
        let due = s.poll(600, 100);
        assert_eq!(due, vec![(500, (0, key.clone()))]);
        // The fired entry no longer covers the key: a new deadline is scheduled again.
        s.schedule(900, 0, key.clone());
        assert_eq!(s.len(), 3);
    }
}
