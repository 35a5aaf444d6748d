//! The benchmark report: per-phase results, per-server totals over all run rounds, the ratio
//! between two servers, and its text, JSON and CSV renderings.
//!
//! Invariant: totals are built by merging the histograms of the run phases (never by
//! averaging percentiles), and ops/s divides completed operations by summed phase time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::config::{BenchConfig, Resolved};
use super::dist::KeyDistKind;
use super::runner::PhaseOutcome;
use super::stats::{LatencySummary, Stats};
use super::workload::OpKind;

/// Which server of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `--target`, the baseline of ratios.
    Target,
    /// `--compare`.
    Compare,
}

impl Role {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Role::Target => "target",
            Role::Compare => "compare",
        }
    }
}

/// Load or run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Fills the dataset.
    Load,
    /// Runs the workload.
    Run,
    /// All run rounds of one server merged.
    Total,
}

impl Phase {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Load => "load",
            Phase::Run => "run",
            Phase::Total => "total",
        }
    }
}

/// Results of one phase (or the merged run phases) on one server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhaseReport {
    /// The server.
    pub server: String,
    /// Baseline or comparison server.
    pub role: Role,
    /// Which phase.
    pub phase: Phase,
    /// Round, from 1 (0 for totals).
    pub round: u32,
    /// Wall time.
    pub elapsed_s: f64,
    /// Completed operations.
    pub completed: u64,
    /// Failed operations.
    pub failed: u64,
    /// Reads with a wrong value.
    pub mismatched: u64,
    /// Completed operations per second.
    pub ops_per_sec: f64,
    /// Latency per operation kind.
    pub ops: Vec<LatencySummary>,
    /// Failures by error kind.
    pub errors: BTreeMap<String, u64>,
    /// Mismatches by kind.
    pub mismatches: BTreeMap<String, u64>,
    /// First few mismatches.
    pub mismatch_samples: Vec<String>,
    /// Aborted MULTI/EXEC blocks.
    pub txn_aborts: u64,
    /// `(bytes, GET hit ratio)` of each ideal LRU cache `--simulate-lru` asked for, on this
    /// phase's trace.
    pub lru_get_hit_ratio: Vec<(u64, f64)>,
    /// `[seconds, ops/s]` samples.
    pub timeline: Vec<[f64; 2]>,
}

impl PhaseReport {
    fn new(
        server: &str,
        role: Role,
        phase: Phase,
        round: u32,
        elapsed: Duration,
        stats: &Stats,
    ) -> PhaseReport {
        let secs = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        PhaseReport {
            server: server.to_string(),
            role,
            phase,
            round,
            elapsed_s: elapsed.as_secs_f64(),
            completed: stats.completed(),
            failed: stats.failed(),
            mismatched: stats.mismatched(),
            ops_per_sec: stats.completed() as f64 / secs,
            ops: stats.summaries(elapsed),
            errors: stats.errors.clone(),
            mismatches: stats.mismatches.clone(),
            mismatch_samples: stats.mismatch_samples.clone(),
            txn_aborts: stats.txn_aborts,
            lru_get_hit_ratio: Vec::new(),
            timeline: Vec::new(),
        }
    }
}

/// The compare server's figures divided by the target's.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    /// Baseline server.
    pub target: String,
    /// The other server.
    pub compare: String,
    /// compare ops/s ÷ target ops/s (above 1: the compare server is faster).
    pub ops_per_sec_ratio: f64,
    /// Per operation kind present on both.
    pub per_op: Vec<OpRatio>,
}

/// Ratios for one operation kind.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpRatio {
    /// Operation kind.
    pub op: OpKind,
    /// compare ÷ target throughput.
    pub ops_per_sec_ratio: f64,
    /// compare ÷ target median latency (below 1: the compare server is faster).
    pub p50_ratio: f64,
    /// compare ÷ target 99th percentile.
    pub p99_ratio: f64,
}

/// Everything a run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// The options as given.
    pub config: BenchConfig,
    /// The options after defaulting.
    pub resolved: Resolved,
    /// Every phase in the order it ran.
    pub phases: Vec<PhaseReport>,
    /// Per server: all run rounds merged.
    pub totals: Vec<PhaseReport>,
    /// Present with `--compare`.
    pub comparison: Option<Comparison>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

impl BenchReport {
    /// Builds the report from phase outcomes.
    pub fn build(
        config: &BenchConfig,
        resolved: &Resolved,
        outcomes: &[PhaseOutcome],
    ) -> BenchReport {
        let phases = outcomes
            .iter()
            .map(|o| {
                let mut report =
                    PhaseReport::new(&o.addr, o.role, o.phase, o.round + 1, o.elapsed, &o.stats);
                report.timeline = o.timeline.clone();
                if o.phase == Phase::Run {
                    let mean = ((resolved.value_size.min + resolved.value_size.max) / 2) as u64;
                    report.lru_get_hit_ratio = config
                        .simulate_lru
                        .iter()
                        .filter_map(|&bytes| {
                            super::lru_sim::get_hit_ratio(
                                bytes,
                                config.keys,
                                &o.stats.trace,
                                |_| mean,
                            )
                            .map(|ratio| (bytes, ratio))
                        })
                        .collect();
                }
                report
            })
            .collect();
        let mut totals = Vec::new();
        for role in [Role::Target, Role::Compare] {
            let runs: Vec<&PhaseOutcome> = outcomes
                .iter()
                .filter(|o| o.role == role && o.phase == Phase::Run)
                .collect();
            let Some(first) = runs.first() else { continue };
            let mut merged = Stats::default();
            let mut elapsed = Duration::ZERO;
            for run in &runs {
                merged.merge(&run.stats);
                elapsed += run.elapsed;
            }
            totals.push(PhaseReport::new(
                &first.addr,
                role,
                Phase::Total,
                0,
                elapsed,
                &merged,
            ));
        }
        let comparison = match (totals.first(), totals.get(1)) {
            (Some(t), Some(c)) => Some(Comparison {
                target: t.server.clone(),
                compare: c.server.clone(),
                ops_per_sec_ratio: ratio(c.ops_per_sec, t.ops_per_sec),
                per_op: t
                    .ops
                    .iter()
                    .filter_map(|to| {
                        let co = c.ops.iter().find(|co| co.op == to.op)?;
                        Some(OpRatio {
                            op: to.op,
                            ops_per_sec_ratio: ratio(co.ops_per_sec, to.ops_per_sec),
                            p50_ratio: ratio(co.p50_us, to.p50_us),
                            p99_ratio: ratio(co.p99_us, to.p99_us),
                        })
                    })
                    .collect(),
            }),
            _ => None,
        };
        BenchReport {
            config: config.clone(),
            resolved: resolved.clone(),
            phases,
            totals,
            comparison,
        }
    }

    /// Failed operations over all phases.
    pub fn failed(&self) -> u64 {
        self.phases.iter().map(|p| p.failed).sum()
    }

    /// Mismatched reads over all phases.
    pub fn mismatched(&self) -> u64 {
        self.phases.iter().map(|p| p.mismatched).sum()
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let r = &self.resolved;
        let mix: Vec<String> = r.mix.kinds().map(|k| k.name().to_string()).collect();
        let workload = match &c.mix {
            Some(_) => "custom".to_string(),
            None => format!("YCSB {:?}", c.workload),
        };
        let dist = match r.dist {
            KeyDistKind::Uniform => "uniform".to_string(),
            KeyDistKind::Zipf { theta } => format!("zipf({theta})"),
            KeyDistKind::Latest { theta } => format!("latest({theta})"),
        };
        let _ = writeln!(
            out,
            "workload {workload} [{}], keys {dist}, {} keys, key {} B, value {} B, \
             {} conns x pipeline {}, {} threads{}",
            mix.join(","),
            c.keys,
            c.key_size,
            c.value_size,
            c.connections,
            c.pipeline,
            r.threads,
            c.rate
                .map(|x| format!(", open loop at {x:.0} ops/s"))
                .unwrap_or_default(),
        );
        for phase in &self.phases {
            render_phase(&mut out, phase);
        }
        if self.totals.len() > 1 || self.config.rounds > 1 {
            for total in &self.totals {
                render_phase(&mut out, total);
            }
        }
        if let Some(cmp) = &self.comparison {
            let _ = writeln!(
                out,
                "\ncompare {} vs target {}: throughput ratio {:.3}",
                cmp.compare, cmp.target, cmp.ops_per_sec_ratio
            );
            for op in &cmp.per_op {
                let _ = writeln!(
                    out,
                    "  {:<7} ops/s x{:.3}  p50 x{:.3}  p99 x{:.3}",
                    op.op.name(),
                    op.ops_per_sec_ratio,
                    op.p50_ratio,
                    op.p99_ratio
                );
            }
        }
        out
    }

    /// One CSV row per phase (and total) and operation kind.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "server,role,phase,round,elapsed_s,op,count,ops_per_sec,mean_us,p50_us,p90_us,p99_us,p999_us,max_us,failed,mismatched\n",
        );
        for phase in self.phases.iter().chain(&self.totals) {
            for op in &phase.ops {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{:.3},{},{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{},{}",
                    csv_field(&phase.server),
                    phase.role.name(),
                    phase.phase.name(),
                    phase.round,
                    phase.elapsed_s,
                    op.op.name(),
                    op.count,
                    op.ops_per_sec,
                    op.mean_us,
                    op.p50_us,
                    op.p90_us,
                    op.p99_us,
                    op.p999_us,
                    op.max_us,
                    phase.failed,
                    phase.mismatched
                );
            }
        }
        out
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn render_phase(out: &mut String, p: &PhaseReport) {
    let round = if p.phase == Phase::Total {
        String::new()
    } else {
        format!(" round {}", p.round)
    };
    let _ = writeln!(
        out,
        "\n[{} {}{}] {}: {:.2} s, {} ops, {:.0} ops/s, {} errors, {} mismatches{}",
        p.role.name(),
        p.phase.name(),
        round,
        p.server,
        p.elapsed_s,
        p.completed,
        p.ops_per_sec,
        p.failed,
        p.mismatched,
        if p.txn_aborts > 0 {
            format!(", {} txn aborts", p.txn_aborts)
        } else {
            String::new()
        },
    );
    for (bytes, ratio) in &p.lru_get_hit_ratio {
        let _ = writeln!(
            out,
            "  ideal value-granular LRU of {bytes} bytes on this trace: GET hit ratio {ratio:.4}"
        );
    }
    let _ = writeln!(
        out,
        "  {:<7} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}   (latency µs)",
        "op", "count", "ops/s", "p50", "p90", "p99", "p99.9", "max"
    );
    for op in &p.ops {
        let _ = writeln!(
            out,
            "  {:<7} {:>10} {:>11.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            op.op.name(),
            op.count,
            op.ops_per_sec,
            op.p50_us,
            op.p90_us,
            op.p99_us,
            op.p999_us,
            op.max_us
        );
    }
    for (kind, count) in &p.errors {
        let _ = writeln!(out, "  error {kind}: {count}");
    }
    for (kind, count) in &p.mismatches {
        let _ = writeln!(out, "  MISMATCH {kind}: {count}");
    }
    for sample in &p.mismatch_samples {
        let _ = writeln!(out, "    {sample}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn outcome(addr: &str, role: Role, phase: Phase, round: u32, us: u64, n: u64) -> PhaseOutcome {
        let mut stats = Stats::default();
        for _ in 0..n {
            stats.record(OpKind::Get, Duration::from_micros(us));
        }
        PhaseOutcome {
            addr: addr.into(),
            role,
            phase,
            round,
            elapsed: Duration::from_secs(1),
            stats,
            timeline: vec![[1.0, n as f64]],
        }
    }

    #[test]
    fn totals_merge_rounds_and_comparison_divides() {
        let config = BenchConfig::parse_from(["tierkv-bench", "--compare", "b:1", "--rounds", "2"]);
        let resolved = config.validate().unwrap();
        let outcomes = vec![
            outcome("a:1", Role::Target, Phase::Load, 0, 50, 10),
            outcome("a:1", Role::Target, Phase::Run, 0, 100, 1000),
            outcome("b:1", Role::Compare, Phase::Run, 0, 200, 500),
            outcome("a:1", Role::Target, Phase::Run, 1, 100, 3000),
            outcome("b:1", Role::Compare, Phase::Run, 1, 200, 500),
        ];
        let report = BenchReport::build(&config, &resolved, &outcomes);
        assert_eq!(report.phases.len(), 5);
        assert_eq!(report.totals.len(), 2);
        let target = &report.totals[0];
        assert_eq!(target.completed, 4000);
        assert!((target.ops_per_sec - 2000.0).abs() < 1e-6);
        let cmp = report.comparison.as_ref().unwrap();
        assert!((cmp.ops_per_sec_ratio - 0.25).abs() < 1e-9);
        assert!((cmp.per_op[0].p50_ratio - 2.0).abs() < 0.01);
        let text = report.to_text();
        assert!(text.contains("throughput ratio 0.250"), "{text}");
        let csv = report.to_csv();
        assert_eq!(csv.lines().count(), 1 + 5 + 2);
        assert!(csv
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("a:1,target,run,1,1.000,get,1000,1000.0"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["totals"][1]["completed"], 1000);
    }
}
