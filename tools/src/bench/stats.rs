//! Per-connection results and their aggregation: HDR latency histograms per operation kind,
//! errors by kind, value mismatches.
//!
//! Invariant: a latency sample exists for exactly one completed operation; failed operations
//! are counted under `errors` and never recorded as latencies.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::keyspace::Mismatch;
use super::workload::OpKind;

/// Lowest latency the histograms tell apart, in nanoseconds.
pub const LATENCY_LOW_NS: u64 = 1_000;
/// Highest latency recorded exactly; longer ones are clamped to it.
pub const LATENCY_HIGH_NS: u64 = 120_000_000_000;
/// Significant decimal digits kept by the histograms.
pub const LATENCY_SIGFIGS: u8 = 3;
/// How many mismatch descriptions are kept for the report.
pub const MISMATCH_SAMPLES_MAX: usize = 10;

/// Results of one connection, or several merged.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    histograms: BTreeMap<OpKind, Histogram<u64>>,
    /// Failed operations by error kind (`ERR`, `WRONGTYPE`, `io`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Reads whose value was not one this run could have written, by kind.
    pub mismatches: BTreeMap<String, u64>,
    /// The first few mismatches, described.
    pub mismatch_samples: Vec<String>,
    /// MULTI/EXEC blocks the server aborted (WATCH fired): not errors.
    pub txn_aborts: u64,
    /// `(key, is_get)` of the run's GETs and SETs, when `--simulate-lru` asks for them.
    pub trace: Vec<(u64, bool)>,
}

/// Percentiles of one operation kind, in microseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    /// Operation kind.
    pub op: OpKind,
    /// Completed operations.
    pub count: u64,
    /// Completed operations per second of the phase.
    pub ops_per_sec: f64,
    /// Mean latency.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest latency seen.
    pub max_us: f64,
}

fn new_histogram() -> Histogram<u64> {
    // The bounds are constants and `histogram_bounds_are_valid` checks them, so this cannot
    // fail at run time.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(LATENCY_LOW_NS, LATENCY_HIGH_NS, LATENCY_SIGFIGS)
        .expect("constant histogram bounds are valid")
}

impl Stats {
    /// Records one completed operation.
    pub fn record(&mut self, kind: OpKind, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.histograms
            .entry(kind)
            .or_insert_with(new_histogram)
            .saturating_record(ns);
    }

    /// Records one failed operation.
    pub fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
    }

    /// Records a read that returned a value this run could not have written.
    pub fn mismatch(&mut self, mismatch: &Mismatch) {
        *self
            .mismatches
            .entry(mismatch.kind().to_string())
            .or_default() += 1;
        if self.mismatch_samples.len() < MISMATCH_SAMPLES_MAX {
            self.mismatch_samples.push(mismatch.to_string());
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        for (kind, histogram) in &other.histograms {
            let mine = self.histograms.entry(*kind).or_insert_with(new_histogram);
            // Both histograms share bounds; an add can only fail on mismatched bounds, and
            // then the auto-resizing fallback absorbs it value by value.
            if mine.add(histogram).is_err() {
                for value in histogram.iter_recorded() {
                    mine.saturating_record_n(value.value_iterated_to(), value.count_at_value());
                }
            }
        }
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += count;
        }
        for (kind, count) in &other.mismatches {
            *self.mismatches.entry(kind.clone()).or_default() += count;
        }
        for sample in &other.mismatch_samples {
            if self.mismatch_samples.len() < MISMATCH_SAMPLES_MAX {
                self.mismatch_samples.push(sample.clone());
            }
        }
        self.txn_aborts += other.txn_aborts;
        self.trace.extend_from_slice(&other.trace);
    }

    /// Completed operations of all kinds.
    pub fn completed(&self) -> u64 {
        self.histograms.values().map(Histogram::len).sum()
    }

    /// Failed operations of all kinds.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Mismatched reads of all kinds.
    pub fn mismatched(&self) -> u64 {
        self.mismatches.values().sum()
    }

    /// The histogram of one kind, if any operation of it completed.
    pub fn histogram(&self, kind: OpKind) -> Option<&Histogram<u64>> {
        self.histograms.get(&kind)
    }

    /// Per-kind percentiles over a phase that lasted `elapsed`.
    pub fn summaries(&self, elapsed: Duration) -> Vec<LatencySummary> {
        let secs = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        self.histograms
            .iter()
            .map(|(kind, h)| summarize(*kind, h, secs))
            .collect()
    }
}

fn summarize(op: OpKind, h: &Histogram<u64>, secs: f64) -> LatencySummary {
    let us = |ns: u64| ns as f64 / 1_000.0;
    LatencySummary {
        op,
        count: h.len(),
        ops_per_sec: h.len() as f64 / secs,
        mean_us: h.mean() / 1_000.0,
        p50_us: us(h.value_at_quantile(0.50)),
        p90_us: us(h.value_at_quantile(0.90)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        max_us: us(h.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bounds_are_valid() {
        assert!(Histogram::<u64>::new_with_bounds(
            LATENCY_LOW_NS,
            LATENCY_HIGH_NS,
            LATENCY_SIGFIGS
        )
        .is_ok());
    }

    #[test]
    fn merging_connections_adds_counts_and_keeps_percentiles() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for us in 1..=500u64 {
            a.record(OpKind::Get, Duration::from_micros(us));
        }
        for us in 501..=1000u64 {
            b.record(OpKind::Get, Duration::from_micros(us));
        }
        b.record(OpKind::Set, Duration::from_millis(3));
        a.error("ERR");
        b.error("ERR");
        b.error("io");
        b.txn_aborts = 2;
        let mut total = Stats::default();
        total.merge(&a);
        total.merge(&b);
        assert_eq!(total.completed(), 1001);
        assert_eq!(total.failed(), 3);
        assert_eq!(total.errors.get("ERR"), Some(&2));
        assert_eq!(total.txn_aborts, 2);

        let rows = total.summaries(Duration::from_secs(2));
        assert_eq!(rows.len(), 2);
        let get = &rows[0];
        assert_eq!(get.op, OpKind::Get);
        assert_eq!(get.count, 1000);
        assert!((get.ops_per_sec - 500.0).abs() < 1e-9);
        // 3 significant digits: within 0.1% of the exact order statistic.
        assert!((get.p50_us - 500.0).abs() <= 1.0, "{}", get.p50_us);
        assert!((get.p90_us - 900.0).abs() <= 1.0, "{}", get.p90_us);
        assert!((get.p99_us - 990.0).abs() <= 1.0, "{}", get.p99_us);
        assert!((get.max_us - 1000.0).abs() <= 1.0, "{}", get.max_us);
        assert!(get.p50_us <= get.p90_us && get.p90_us <= get.p99_us && get.p99_us <= get.p999_us);
        assert!(get.p999_us <= get.max_us);
        assert_eq!(rows[1].op, OpKind::Set);
        assert!((rows[1].p50_us - 3000.0).abs() <= 3.0);
    }

    #[test]
    fn mismatch_samples_are_bounded() {
        let mut stats = Stats::default();
        for key_id in 0..50 {
            stats.mismatch(&Mismatch::Missing { key_id, floor: 1 });
        }
        assert_eq!(stats.mismatched(), 50);
        assert_eq!(stats.mismatch_samples.len(), MISMATCH_SAMPLES_MAX);
    }
}
