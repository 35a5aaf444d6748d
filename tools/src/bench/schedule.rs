//! The open-loop scheduler: operation `i` of a connection is due at `start + (i + phase) / rate`,
//! whatever happened to earlier operations.
//!
//! Invariant: intended send times depend only on the operation's index, never on when replies
//! came back, so latency measured from them includes time spent queued behind a slow server
//! (no coordinated omission).

use std::time::{Duration, Instant};

/// Intended send times of one connection's operations at a fixed rate.
#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    interval_ns: f64,
    phase: f64,
    next: u64,
}

impl Schedule {
    /// A schedule of `rate_per_sec` operations per second (clamped to at least 1e-3), with
    /// the first operation `phase` (in `[0, 1)`) of an interval after `start`, so several
    /// connections at the same rate interleave instead of firing together.
    pub fn new(start: Instant, rate_per_sec: f64, phase: f64) -> Schedule {
        let rate = rate_per_sec.max(1e-3);
        Schedule {
            start,
            interval_ns: 1e9 / rate,
            phase: phase.clamp(0.0, 1.0),
            next: 0,
        }
    }

    /// When operation `index` is meant to be sent.
    pub fn intended(&self, index: u64) -> Instant {
        let offset_ns = (index as f64 + self.phase) * self.interval_ns;
        self.start + Duration::from_nanos(offset_ns as u64)
    }

    /// When the next not-yet-taken operation is due.
    pub fn next_due(&self) -> Instant {
        self.intended(self.next)
    }

    /// Index of the next operation to take.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Takes up to `max` operations that are due at `now`, returning their intended times.
    pub fn take_due(&mut self, now: Instant, max: usize) -> Vec<Instant> {
        let mut due = Vec::new();
        while due.len() < max {
            let at = self.intended(self.next);
            if at > now {
                break;
            }
            due.push(at);
            self.next += 1;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::Stats;
    use crate::bench::workload::OpKind;

    #[test]
    fn operations_fall_due_at_the_rate() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(t0, 1000.0, 0.0);
        assert_eq!(schedule.next_due(), t0);
        let due = schedule.take_due(t0 + Duration::from_micros(10_500), 100);
        assert_eq!(due.len(), 11, "ops 0..=10 are due at 10.5 ms");
        for (i, at) in due.iter().enumerate() {
            assert_eq!(*at, t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(schedule.next_index(), 11);
        assert_eq!(schedule.next_due(), t0 + Duration::from_millis(11));
        assert!(schedule
            .take_due(t0 + Duration::from_micros(10_900), 100)
            .is_empty());
    }

    #[test]
    fn batches_are_capped_and_the_backlog_is_kept() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(t0, 1000.0, 0.5);
        let late = t0 + Duration::from_millis(100);
        let first = schedule.take_due(late, 16);
        assert_eq!(first.len(), 16);
        assert_eq!(first[0], t0 + Duration::from_micros(500));
        // The backlog is still owed, at its original times.
        let rest = schedule.take_due(late, 1000);
        assert_eq!(rest.len(), 100 - 16);
        assert_eq!(rest[0], t0 + Duration::from_micros(16_500));
    }

    #[test]
    fn a_stall_shows_up_in_latency() {
        // A server that stalls 100 ms and then answers everything at once: measured from the
        // intended times, the queued operations see up to 100 ms, not the ~0 a closed loop
        // timing from the actual send would report.
        let t0 = Instant::now();
        let mut schedule = Schedule::new(t0, 1000.0, 0.0);
        let answered = t0 + Duration::from_millis(100);
        let mut stats = Stats::default();
        for at in schedule.take_due(answered, usize::MAX) {
            stats.record(OpKind::Get, answered - at);
        }
        let row = &stats.summaries(Duration::from_millis(100))[0];
        assert_eq!(row.count, 101);
        assert!((row.max_us - 100_000.0).abs() < 100.0, "{}", row.max_us);
        assert!((row.p50_us - 50_000.0).abs() < 1_000.0, "{}", row.p50_us);
    }
}
