//! [`ExpirySchedule`]: the timing wheel of keys, plus for each key the earliest deadline it has
//! a wheel entry for.
//!
//! Invariant (the wheel's, see `commit::install`): a key with deadline D has a wheel entry at
//! some deadline <= D. `earliest` lets `schedule` skip an insert that invariant does not need,
//! whatever happened to the key in between: `SET k v` (no TTL) then `EXPIRE k T` in a loop
//! would otherwise add one entry per EXPIRE, each living until T.
//!
//! Memory: the schedule keeps `memory::Accounting::expiry_bytes` equal to the estimate of its
//! entries ([`entry_bytes`], [`EARLIEST_ENTRY_BYTES`]), changed under the schedule's lock.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::TimingWheel;
use crate::memory::{malloc_bytes, Accounting};
use crate::DbIndex;

/// Estimated bytes of one wheel entry: its slot, the key's copy, and the header the copy gets
/// once it is shared with `earliest`.
pub(crate) fn entry_bytes(key_len: usize) -> u64 {
    std::mem::size_of::<(u64, Scheduled)>() as u64
        + malloc_bytes(key_len)
        + malloc_bytes(3 * std::mem::size_of::<usize>())
}

/// Estimated bytes of one `earliest` entry (slot and control byte).
pub(crate) const EARLIEST_ENTRY_BYTES: u64 = std::mem::size_of::<(Scheduled, u64)>() as u64 + 1;

/// A wheel entry's item: which key of which database.
pub(crate) type Scheduled = (DbIndex, Bytes);

/// The wheel and its per-key index.
pub(crate) struct ExpirySchedule {
    wheel: TimingWheel<Scheduled>,
    /// Deadline of the earliest pending wheel entry of each key that has one (possibly older
    /// entries of the same key fired already; later duplicates may still be pending).
    earliest: HashMap<Scheduled, u64>,
    accounting: Arc<Accounting>,
}

impl ExpirySchedule {
    /// An empty schedule whose wheel starts at `now_ms`, its memory counted in `accounting`.
    pub(crate) fn new(now_ms: u64, accounting: Arc<Accounting>) -> Self {
        ExpirySchedule {
            wheel: TimingWheel::new(now_ms),
            earliest: HashMap::new(),
            accounting,
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
        let bytes = &self.accounting.expiry_bytes;
        Accounting::add(bytes, entry_bytes(item.1.len()));
        if self.earliest.insert(item.clone(), deadline_ms).is_none() {
            Accounting::add(bytes, EARLIEST_ENTRY_BYTES);
        }
        self.wheel.insert(deadline_ms, item);
    }

    /// Up to about `max` entries due at `now_ms` (see [`TimingWheel::poll`]).
    pub(crate) fn poll(&mut self, now_ms: u64, max: usize) -> Vec<(u64, Scheduled)> {
        let due = self.wheel.poll(now_ms, max);
        let bytes = &self.accounting.expiry_bytes;
        for (deadline, item) in &due {
            Accounting::sub(bytes, entry_bytes(item.1.len()));
            if self.earliest.get(item) == Some(deadline) {
                self.earliest.remove(item);
                Accounting::sub(bytes, EARLIEST_ENTRY_BYTES);
            }
        }
        due
    }

    /// Drops the `earliest` entry of a key that no longer holds a value with a deadline (its
    /// wheel entries stay and fire as usual, so the wheel invariant still holds if the key
    /// gets a deadline again meanwhile), so [`Self::sample_keys`] stops drawing it.
    pub(crate) fn forget(&mut self, item: &Scheduled) {
        if self.earliest.remove(item).is_some() {
            Accounting::sub(&self.accounting.expiry_bytes, EARLIEST_ENTRY_BYTES);
        }
    }

    /// Up to `count` keys of `db` that have a pending entry, starting at a position picked by
    /// `random` among the first 1024 (bounded work; for eviction when sampling the hash index
    /// finds no key with a TTL).
    pub(crate) fn sample_keys(&self, db: DbIndex, random: u64, count: usize) -> Vec<Bytes> {
        let skip = (random % self.earliest.len().clamp(1, 1024) as u64) as usize;
        let of_db = |(d, _): &&Scheduled| *d == db;
        let mut keys: Vec<Bytes> = self
            .earliest
            .keys()
            .filter(of_db)
            .skip(skip)
            .take(count)
            .map(|(_, key)| key.clone())
            .collect();
        if keys.len() < count {
            keys.extend(
                self.earliest
                    .keys()
                    .filter(of_db)
                    .take(count - keys.len())
                    .map(|(_, key)| key.clone()),
            );
        }
        keys.dedup();
        keys
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
        let accounting = Arc::new(Accounting::default());
        let mut s = ExpirySchedule::new(0, Arc::clone(&accounting));
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
        // Memory: three wheel entries, two keys in `earliest`; nothing once all have fired.
        let expected = 3 * entry_bytes(1) + 2 * EARLIEST_ENTRY_BYTES;
        assert_eq!(
            accounting
                .expiry_bytes
                .load(std::sync::atomic::Ordering::Relaxed),
            expected
        );
        while !s.is_caught_up(10_000) || s.len() > 0 {
            s.poll(10_000, 100);
        }
        assert_eq!(
            accounting
                .expiry_bytes
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}
