//! A latency histogram that any number of threads record into without a lock: the SSD tier's
//! read and write times for INFO (p50, p99).
//!
//! Buckets are log-linear over microseconds: each power of two is split in
//! [`SUB_BUCKETS`] equal parts, so a percentile is exact to within 1/[`SUB_BUCKETS`] (12.5 %)
//! from 1 µs to over an hour, in 2 KiB of counters. `hdrhistogram` (which the load generator
//! uses) is more precise but needs `&mut` to record: one lock on every SSD read, taken by
//! every thread that misses, for a figure INFO rounds anyway.
//!
//! Invariant: a bucket's count only grows; a percentile reads the counters one by one, so it
//! may miss records made meanwhile, never count one twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Parts each power of two is split into.
pub const SUB_BUCKETS: usize = 8;
const POWERS: usize = 32;
const BUCKETS: usize = POWERS * SUB_BUCKETS;

/// Durations recorded in microseconds (see the module docs).
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("p50_us", &self.percentile_us(50.0))
            .field("p99_us", &self.percentile_us(99.0))
            .finish()
    }
}

/// The bucket of `us` microseconds.
fn bucket_of(us: u64) -> usize {
    if us < SUB_BUCKETS as u64 {
        return us as usize;
    }
    let power = 63 - us.leading_zeros() as usize; // us >= 8, so power >= 3
    let shift = power - SUB_BUCKETS.trailing_zeros() as usize;
    let sub = ((us >> shift) as usize) & (SUB_BUCKETS - 1);
    let index = (power - SUB_BUCKETS.trailing_zeros() as usize + 1) * SUB_BUCKETS + sub;
    index.min(BUCKETS - 1)
}

/// The smallest value bucket `index` holds.
fn bucket_floor(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let group = index / SUB_BUCKETS; // >= 1
    let sub = (index % SUB_BUCKETS) as u64;
    let shift = group - 1;
    (SUB_BUCKETS as u64 + sub) << shift
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if let Some(bucket) = self.buckets.get(bucket_of(us)) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets every duration (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for bucket in self.buckets.iter() {
            bucket.store(0, Ordering::Relaxed);
        }
    }

    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q`-th percentile (0..=100) in microseconds: the floor of the bucket that holds it
    /// (0 with nothing recorded).
    pub fn percentile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 100.0) / 100.0) * total as f64)
            .ceil()
            .max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_floor(index);
            }
        }
        bucket_floor(BUCKETS - 1)
    }
}

impl LatencyHistogram {
    /// For each bound in microseconds (ascending), how many recorded durations lie in buckets
    /// wholly at or below it: Prometheus's cumulative `le` buckets. A bucket straddling a bound
    /// counts under the next one, so each count is exact to a bucket's width (an eighth).
    pub fn cumulative_counts(&self, bounds_us: &[u64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(bounds_us.len());
        let mut seen = 0;
        let mut index = 0;
        for &bound in bounds_us {
            // Bucket `index` lies wholly at or below `bound` when the next one starts above
            // it by at most one.
            while index < BUCKETS
                && (index + 1 == BUCKETS || bucket_floor(index + 1) <= bound.saturating_add(1))
            {
                seen += self
                    .buckets
                    .get(index)
                    .map_or(0, |b| b.load(Ordering::Relaxed));
                index += 1;
            }
            out.push(seen);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_counts_follow_the_bounds() {
        let h = LatencyHistogram::default();
        for us in [3u64, 10, 100, 1_000, 10_000] {
            h.record(Duration::from_micros(us));
        }
        // 100 µs is in the bucket [96, 104): counted once the bound reaches its end.
        assert_eq!(
            h.cumulative_counts(&[5, 10, 99, 100, 103, 5_000, 20_000]),
            vec![1, 2, 2, 2, 3, 4, 5]
        );
    }

    #[test]
    fn buckets_cover_every_value_in_order_within_an_eighth() {
        let mut last = 0;
        for us in (0..100_000u64).chain([1 << 30, u64::MAX / 2]) {
            let index = bucket_of(us);
            assert!(index >= last, "buckets ascend with the value: {us}");
            last = index;
            let floor = bucket_floor(index);
            assert!(floor <= us, "{us} below its bucket's floor {floor}");
            if index < BUCKETS - 1 {
                let next = bucket_floor(index + 1);
                assert!(us < next, "{us} at or above the next bucket's floor {next}");
                assert!(
                    (next - floor) * SUB_BUCKETS as u64 <= floor.max(SUB_BUCKETS as u64),
                    "bucket {index} [{floor}, {next}) wider than an eighth"
                );
            }
        }
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let h = LatencyHistogram::default();
        assert_eq!(h.percentile_us(50.0), 0);
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.percentile_us(50.0);
        let p99 = h.percentile_us(99.0);
        assert!((448..=500).contains(&p50), "p50 {p50}");
        assert!((896..=990).contains(&p99), "p99 {p99}");
        assert_eq!(h.percentile_us(100.0), bucket_floor(bucket_of(1000)));
    }
}
