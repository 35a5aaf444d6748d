//! [`FreeRuns`]: page ids without a buffer, kept as maximal runs of consecutive ids so that a
//! freed extent's ids serve a later extent (or single pages) instead of fresh ids.
//!
//! Invariants:
//! - runs never overlap and never touch: two adjacent runs are merged on insert, so every run is
//!   maximal and the structure holds at most one entry per gap between allocated ids;
//! - `by_start` and `by_len` always describe the same set of runs;
//! - [`FreeRuns::take`] is best fit (the shortest run long enough, lowest start among equals),
//!   which keeps long runs whole for long extents and the id space dense.
//!
//! Why best fit with merging: with it, a workload that keeps replacing an `n`-page value reuses
//! the same ids forever (the freed run is exactly `n` long), and mixed sizes fragment the id
//! space only by a bounded factor of the live pages (Robson's bound for best fit), never
//! without bound as when freed extents' ids could only be reused one page at a time.

use std::collections::{BTreeMap, BTreeSet};

/// Free page-id runs, indexed by start (for merging) and by length (for best fit).
#[derive(Debug, Default)]
pub(super) struct FreeRuns {
    /// Run start -> run length.
    by_start: BTreeMap<u32, u32>,
    /// (run length, run start), ordered for best fit.
    by_len: BTreeSet<(u32, u32)>,
    /// Ids in all runs together.
    ids: u64,
}

impl FreeRuns {
    /// Adds the `len` ids starting at `start`, merging with adjacent runs. The caller owns those
    /// ids (none of them is free already).
    pub(super) fn insert(&mut self, start: u32, len: u32) {
        if len == 0 {
            return;
        }
        debug_assert!(
            self.is_disjoint(start, len),
            "run {start}+{len} freed twice"
        );
        self.ids += u64::from(len);
        let (mut start, mut len) = (start, len);
        if let Some((&before, &before_len)) = self.by_start.range(..start).next_back() {
            if u64::from(before) + u64::from(before_len) == u64::from(start) {
                self.remove_run(before, before_len);
                start = before;
                len += before_len;
            }
        }
        let end = u64::from(start) + u64::from(len);
        if let Ok(end) = u32::try_from(end) {
            if let Some(&after_len) = self.by_start.get(&end) {
                self.remove_run(end, after_len);
                len += after_len;
            }
        }
        self.by_start.insert(start, len);
        self.by_len.insert((len, start));
    }

    /// Takes `len` consecutive ids from the shortest run that has them; `None` if no run does.
    pub(super) fn take(&mut self, len: u32) -> Option<u32> {
        if len == 0 {
            return None;
        }
        let &(run_len, start) = self.by_len.range((len, 0)..).next()?;
        self.remove_run(start, run_len);
        self.ids -= u64::from(len);
        if run_len > len {
            // The remainder's neighbours are the ids just taken and whatever bounded the run
            // (allocated, or it would have been merged), so it is maximal as it stands.
            let rest = start + len;
            self.by_start.insert(rest, run_len - len);
            self.by_len.insert((run_len - len, rest));
        }
        Some(start)
    }

    /// Ids in all runs together.
    pub(super) fn ids(&self) -> u64 {
        self.ids
    }

    /// Number of runs.
    pub(super) fn runs(&self) -> usize {
        self.by_start.len()
    }

    fn remove_run(&mut self, start: u32, len: u32) {
        self.by_start.remove(&start);
        self.by_len.remove(&(len, start));
    }

    fn is_disjoint(&self, start: u32, len: u32) -> bool {
        let end = u64::from(start) + u64::from(len);
        let before_ok = self
            .by_start
            .range(..=start)
            .next_back()
            .is_none_or(|(&s, &l)| u64::from(s) + u64::from(l) <= u64::from(start));
        let after_ok = self
            .by_start
            .range(start..)
            .next()
            .is_none_or(|(&s, _)| u64::from(s) >= end);
        before_ok && after_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_runs_merge_and_best_fit_splits_the_shortest() {
        let mut runs = FreeRuns::default();
        runs.insert(10, 4);
        runs.insert(20, 2);
        runs.insert(14, 2); // touches 10..14 on the left: 10..16
        assert_eq!(runs.runs(), 2);
        runs.insert(16, 4); // touches 10..16 and 20..22: one run 10..22
        assert_eq!(runs.runs(), 1);
        assert_eq!(runs.ids(), 12);
        runs.insert(0, 3);
        // Best fit: a 2-id request splits the 3-run, not the 12-run.
        assert_eq!(runs.take(2), Some(0));
        assert_eq!(runs.take(1), Some(2));
        assert_eq!(runs.take(13), None);
        assert_eq!(runs.take(12), Some(10));
        assert_eq!(runs.ids(), 0);
        assert_eq!(runs.runs(), 0);
    }

    #[test]
    fn a_run_ending_at_the_id_limit_does_not_overflow() {
        let mut runs = FreeRuns::default();
        runs.insert(u32::MAX - 2, 2);
        runs.insert(u32::MAX - 4, 2);
        assert_eq!(runs.runs(), 1);
        assert_eq!(runs.take(4), Some(u32::MAX - 4));
    }
}
