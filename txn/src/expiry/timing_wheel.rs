//! [`TimingWheel`]: a hierarchical timing wheel with millisecond resolution.
//!
//! Eleven levels of 64 slots; a slot at level `l` spans `64^l` ms, so the wheel covers every
//! `u64` deadline. An entry sits at the lowest level whose slot range separates its deadline
//! from `elapsed` (tokio's layout); when `elapsed` reaches a higher-level slot, its entries
//! cascade down. Invariants:
//! - every entry's deadline is `> elapsed`, except those in `due` (deadline `<= elapsed`);
//! - the slot containing `elapsed` is empty at every level (such entries live lower down);
//! - [`TimingWheel::poll`] does at most `max` units of work (entries returned + entries
//!   cascaded), so a million keys due in the same millisecond cannot stall the caller: moving a
//!   whole level-0 slot to `due` is one `Vec` move.

use std::collections::VecDeque;

const LEVELS: usize = 11;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;

const _: () = assert!(LEVELS * SLOT_BITS as usize >= 64);

struct Level<T> {
    occupied: u64,
    slots: Vec<Vec<(u64, T)>>,
}

/// A hierarchical timing wheel of `(deadline_ms, item)` entries.
pub struct TimingWheel<T> {
    elapsed: u64,
    levels: Vec<Level<T>>,
    /// Whole batches of entries already due, oldest first.
    due: VecDeque<Vec<(u64, T)>>,
    /// Entries taken from a higher-level slot and not yet re-inserted.
    draining: Vec<(u64, T)>,
    len: usize,
}

impl<T> std::fmt::Debug for TimingWheel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimingWheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.len)
            .finish()
    }
}

fn level_for(elapsed: u64, deadline: u64) -> usize {
    let masked = (elapsed ^ deadline) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros() as usize;
    (significant / SLOT_BITS as usize).min(LEVELS - 1)
}

fn slot_range(level: usize) -> u64 {
    1u64.checked_shl(SLOT_BITS * level as u32).unwrap_or(0)
}

fn slot_index(deadline: u64, level: usize) -> usize {
    (deadline.checked_shr(SLOT_BITS * level as u32).unwrap_or(0) as usize) & (SLOTS - 1)
}

impl<T> TimingWheel<T> {
    /// An empty wheel whose time starts at `now_ms`.
    pub fn new(now_ms: u64) -> TimingWheel<T> {
        TimingWheel {
            elapsed: now_ms,
            levels: (0..LEVELS)
                .map(|_| Level {
                    occupied: 0,
                    slots: (0..SLOTS).map(|_| Vec::new()).collect(),
                })
                .collect(),
            due: VecDeque::new(),
            draining: Vec::new(),
            len: 0,
        }
    }

    /// Entries held (including stale ones the owner will ignore).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `item` at `deadline_ms`; a deadline already passed is due at the next poll.
    pub fn insert(&mut self, deadline_ms: u64, item: T) {
        self.len += 1;
        self.place(deadline_ms, item);
    }

    fn place(&mut self, deadline: u64, item: T) {
        if deadline <= self.elapsed {
            match self.due.back_mut() {
                Some(batch) if batch.len() < 1024 => batch.push((deadline, item)),
                _ => self.due.push_back(vec![(deadline, item)]),
            }
            return;
        }
        let level = level_for(self.elapsed, deadline);
        let slot = slot_index(deadline, level);
        if let Some(level) = self.levels.get_mut(level) {
            if let Some(entries) = level.slots.get_mut(slot) {
                entries.push((deadline, item));
                level.occupied |= 1 << slot;
            }
        }
    }

    /// The earliest non-empty slot: `(level, slot, slot start ms)`.
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        for (index, level) in self.levels.iter().enumerate() {
            if level.occupied == 0 {
                continue;
            }
            let range = slot_range(index);
            let now_slot = slot_index(self.elapsed, index);
            let rotated = level.occupied.rotate_right(now_slot as u32);
            let slot = (rotated.trailing_zeros() as usize + now_slot) % SLOTS;
            let level_range = range.checked_mul(SLOTS as u64).unwrap_or(0);
            let level_start = if level_range == 0 {
                0
            } else {
                self.elapsed & !(level_range - 1)
            };
            let mut deadline = level_start.saturating_add(slot as u64 * range);
            if deadline <= self.elapsed && level_range != 0 {
                deadline = deadline.saturating_add(level_range);
            }
            return Some((index, slot, deadline));
        }
        None
    }

    /// True when nothing due at `now_ms` is left inside the wheel (a poll would return only
    /// entries that become due later).
    pub fn is_caught_up(&self, now_ms: u64) -> bool {
        self.due.iter().all(Vec::is_empty)
            && self.draining.is_empty()
            && self
                .next_expiration()
                .is_none_or(|(_, _, deadline)| deadline > now_ms)
    }

    /// Returns up to `max` entries whose deadline is `<= now_ms`, doing `O(max)` work (entries
    /// returned plus entries cascaded between levels, at most `4 * max + 4 * LEVELS`). An
    /// empty result with [`TimingWheel::is_caught_up`] false means "call again". Entries are
    /// returned at most once.
    pub fn poll(&mut self, now_ms: u64, max: usize) -> Vec<(u64, T)> {
        let mut out = Vec::new();
        let mut work = 0usize;
        let budget = max.saturating_mul(4).saturating_add(4 * LEVELS);
        while out.len() < max && work < budget {
            if let Some(batch) = self.due.front_mut() {
                match batch.pop() {
                    Some(entry) => {
                        out.push(entry);
                        self.len -= 1;
                    }
                    None => {
                        self.due.pop_front();
                    }
                }
                continue;
            }
            if let Some((deadline, item)) = self.draining.pop() {
                work += 1;
                self.place(deadline, item);
                continue;
            }
            let Some((level, slot, deadline)) = self.next_expiration() else {
                self.elapsed = self.elapsed.max(now_ms);
                break;
            };
            if deadline > now_ms {
                self.elapsed = self.elapsed.max(now_ms);
                break;
            }
            work += 1;
            self.elapsed = deadline;
            let Some(level_entry) = self.levels.get_mut(level) else {
                break;
            };
            level_entry.occupied &= !(1 << slot);
            let entries = level_entry
                .slots
                .get_mut(slot)
                .map(std::mem::take)
                .unwrap_or_default();
            if level == 0 {
                self.due.push_back(entries);
            } else {
                self.draining = entries;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_exactly_at_deadline() {
        let mut wheel = TimingWheel::new(1_000);
        wheel.insert(1_005, "a");
        wheel.insert(1_100, "b");
        wheel.insert(1_000 + 70_000, "c");
        assert!(wheel.poll(1_004, 10).is_empty());
        assert_eq!(wheel.poll(1_005, 10), vec![(1_005, "a")]);
        assert!(wheel.poll(1_099, 10).is_empty());
        assert_eq!(wheel.poll(1_100, 10), vec![(1_100, "b")]);
        assert!(wheel.poll(70_999, 10).is_empty());
        assert_eq!(wheel.poll(71_000, 10), vec![(71_000, "c")]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn past_deadlines_are_due_immediately() {
        let mut wheel = TimingWheel::new(500);
        wheel.insert(10, 1);
        assert_eq!(wheel.poll(500, 10), vec![(10, 1)]);
    }

    #[test]
    fn work_per_poll_is_bounded() {
        let mut wheel = TimingWheel::new(0);
        for i in 0..10_000u32 {
            wheel.insert(5_000_000, i);
        }
        let mut polls = 0;
        let mut seen = 0;
        loop {
            let batch = wheel.poll(5_000_000, 100);
            assert!(batch.len() <= 100);
            if batch.is_empty() && wheel.is_caught_up(5_000_000) {
                break;
            }
            seen += batch.len();
            polls += 1;
            assert!(polls < 1_000);
        }
        assert_eq!(seen, 10_000);
    }

    #[test]
    fn far_future_deadlines_work() {
        let mut wheel = TimingWheel::new(0);
        wheel.insert(u64::MAX - 1, 7);
        wheel.insert(1 << 40, 8);
        assert!(wheel.poll(1 << 39, 10).is_empty());
        assert_eq!(wheel.poll(1 << 40, 10), vec![(1 << 40, 8)]);
        assert_eq!(wheel.poll(u64::MAX, 10), vec![(u64::MAX - 1, 7)]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        #[test]
        fn matches_a_sorted_model(
            start in 0u64..1_000_000,
            deadlines in proptest::collection::vec(0u64..200_000, 1..200),
            steps in proptest::collection::vec(1u64..20_000, 1..40),
        ) {
            let mut wheel = TimingWheel::new(start);
            for (i, d) in deadlines.iter().enumerate() {
                wheel.insert(start + d, i);
            }
            let mut now = start;
            let mut fired = std::collections::BTreeSet::new();
            for step in steps {
                now += step;
                loop {
                    let batch = wheel.poll(now, 7);
                    if batch.is_empty() && wheel.is_caught_up(now) { break; }
                    for (deadline, i) in batch {
                        proptest::prop_assert!(deadline <= now);
                        proptest::prop_assert_eq!(deadline, start + deadlines[i]);
                        proptest::prop_assert!(fired.insert(i));
                    }
                }
                for (i, d) in deadlines.iter().enumerate() {
                    proptest::prop_assert_eq!(start + d <= now, fired.contains(&i));
                }
            }
        }
    }
}
