//! Command-line options of `tierkv-bench`, which are also the library's run configuration.
//!
//! Invariant: `BenchConfig::validate` accepts only configurations the runner can execute
//! (positive connection, pipeline and thread counts; values at least as large as their header).

use clap::Parser;

use super::dist::KeyDistKind;
use super::keyspace::{SizeRange, VALUE_HEADER_BYTES};
use super::workload::{Mix, Workload};

/// Key distribution chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum DistArg {
    /// Every key equally likely.
    Uniform,
    /// Zipf(θ) over scrambled ranks.
    Zipf,
    /// Zipf(θ) over recency of insertion.
    Latest,
}

/// A YCSB-style load generator for any Redis-protocol server.
#[derive(Debug, Clone, Parser, serde::Serialize)]
#[command(name = "tierkv-bench", version)]
pub struct BenchConfig {
    /// Server to benchmark (host:port).
    #[arg(short = 't', long, default_value = "127.0.0.1:6379")]
    pub target: String,
    /// A second server to run the identical workload against, alternating phases.
    #[arg(long, value_name = "HOST:PORT")]
    pub compare: Option<String>,
    /// YCSB core workload.
    #[arg(short, long, value_enum, default_value = "a")]
    pub workload: Workload,
    /// Custom operation mix replacing the workload's, e.g. `get=50,set=30,incr=5,mget=5,mset=5,multi=3,txn=2`.
    #[arg(long)]
    pub mix: Option<String>,
    /// Key distribution (default: the workload's, zipf or latest).
    #[arg(long, value_enum)]
    pub dist: Option<DistArg>,
    /// Zipf skew θ.
    #[arg(long, default_value_t = 0.99)]
    pub theta: f64,
    /// Keys written by the load phase.
    #[arg(short = 'n', long, default_value_t = 100_000)]
    pub keys: u64,
    /// Key length in bytes, fixed (`16`) or ranged (`10-40`).
    #[arg(long, default_value = "16")]
    pub key_size: String,
    /// Value length in bytes, fixed (`1024`) or ranged (`100-4000`); at least 16.
    #[arg(long, default_value = "1024")]
    pub value_size: String,
    /// Prefix of every key this tool writes.
    #[arg(long, default_value = "tkb:")]
    pub key_prefix: String,
    /// Keys per MGET, MSET and MULTI operation.
    #[arg(long, default_value_t = 10)]
    pub batch_keys: usize,
    /// Longest scan (MGET of consecutive keys) in workload E.
    #[arg(long, default_value_t = 10)]
    pub scan_max: usize,
    /// Room for new keys inserted by the run phase (default: a tenth of --keys, at least 1000).
    #[arg(long)]
    pub insert_capacity: Option<u64>,
    /// Number of INCR counters.
    #[arg(long, default_value_t = 1000)]
    pub counters: u64,
    /// Connections per server.
    #[arg(short, long, default_value_t = 50)]
    pub connections: usize,
    /// Operations in flight per connection (pipeline depth).
    #[arg(short = 'P', long, default_value_t = 1)]
    pub pipeline: usize,
    /// Pipeline depth of the load phase.
    #[arg(long, default_value_t = 64)]
    pub load_pipeline: usize,
    /// Client threads (default: the number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run-phase length in seconds.
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
    /// Run-phase operation count (overrides --duration).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Open loop: target operations per second over all connections; latency is measured
    /// from each operation's intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Skip the load phase (reads then only check a value's shape, not its version).
    #[arg(long)]
    pub no_load: bool,
    /// Run only the load phase.
    #[arg(long)]
    pub load_only: bool,
    /// Send FLUSHALL before loading (destroys every key on the server).
    #[arg(long)]
    pub flushall: bool,
    /// Run phases per server; with --compare they alternate A, B, A, B, ...
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Seed for the operation streams; both servers of a comparison get the same streams.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report as JSON to this file (`-` for stdout, replacing the text report).
    #[arg(long, value_name = "PATH")]
    pub json: Option<String>,
    /// Write one CSV row per phase and operation kind to this file.
    #[arg(long, value_name = "PATH")]
    pub csv: Option<String>,
    /// Write throughput.svg and latency.svg (and .png twins when a font is found) into this
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub plot_dir: Option<String>,
    /// Seconds to wait for a batch's replies (or a connect) before dropping the connection
    /// and counting its operations as `timeout` errors.
    #[arg(long, default_value_t = 10.0)]
    pub timeout_secs: f64,
    /// Seconds per throughput sample in the timeline.
    #[arg(long, default_value_t = 1.0)]
    pub sample_secs: f64,
    /// Simulate an ideal value-granular LRU cache of each of these byte budgets
    /// (comma-separated) over each run phase's own request trace (the GET and SET keys of
    /// every connection) and print its GET hit ratio beside the run: the yardstick for a
    /// tiered server's hit ratio at the same budget. Values count at their mean size
    /// (`--value-size`).
    #[arg(long, value_name = "BYTES", value_delimiter = ',')]
    pub simulate_lru: Vec<u64>,
    /// Live progress on stderr: auto (when stderr is a terminal), always or never.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

/// When to draw the progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum ProgressMode {
    /// Only when stderr is a terminal.
    Auto,
    /// Always (one line per update when not a terminal).
    Always,
    /// Never.
    Never,
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl BenchConfig {
    /// Checks the options and resolves sizes, mix and distribution.
    pub fn validate(&self) -> Result<Resolved, ConfigError> {
        let bad = |msg: String| Err(ConfigError(msg));
        if self.connections == 0 || self.pipeline == 0 || self.load_pipeline == 0 {
            return bad("--connections, --pipeline and --load-pipeline must be positive".into());
        }
        if self.threads == Some(0) || self.rounds == 0 {
            return bad("--threads and --rounds must be positive".into());
        }
        if !positive(self.duration) && self.ops.is_none() {
            return bad("--duration must be positive".into());
        }
        if self.rate.is_some_and(|r| !positive(r)) {
            return bad("--rate must be positive".into());
        }
        if !positive(self.sample_secs) || !positive(self.timeout_secs) {
            return bad("--sample-secs and --timeout-secs must be positive".into());
        }
        let key_size: SizeRange = self.key_size.parse().map_err(ConfigError)?;
        let value_size: SizeRange = self.value_size.parse().map_err(ConfigError)?;
        if value_size.min < VALUE_HEADER_BYTES {
            return bad(format!(
                "--value-size must be at least {VALUE_HEADER_BYTES} bytes"
            ));
        }
        let mix = match &self.mix {
            Some(text) => text.parse::<Mix>().map_err(ConfigError)?,
            None => self.workload.mix(),
        };
        let dist = match self.dist {
            None => self.workload.default_dist(self.theta),
            Some(DistArg::Uniform) => KeyDistKind::Uniform,
            Some(DistArg::Zipf) => KeyDistKind::Zipf { theta: self.theta },
            Some(DistArg::Latest) => KeyDistKind::Latest { theta: self.theta },
        };
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Ok(Resolved {
            key_size,
            value_size,
            mix,
            dist,
            threads,
            insert_capacity: self.insert_capacity.unwrap_or((self.keys / 10).max(1000)),
        })
    }
}

/// True for finite numbers above zero (false for NaN).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// Options after parsing and defaulting.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resolved {
    /// Key length.
    pub key_size: SizeRange,
    /// Value length.
    pub value_size: SizeRange,
    /// Operation mix.
    pub mix: Mix,
    /// Key distribution.
    pub dist: KeyDistKind,
    /// Client threads.
    pub threads: usize,
    /// Room for run-phase inserts.
    pub insert_capacity: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_options_do_not() {
        let config = BenchConfig::parse_from(["tierkv-bench"]);
        let resolved = config.validate().unwrap();
        assert_eq!(resolved.dist, KeyDistKind::Zipf { theta: 0.99 });
        assert_eq!(resolved.value_size, SizeRange::fixed(1024));
        for args in [
            &["tierkv-bench", "-c", "0"][..],
            &["tierkv-bench", "--value-size", "8"],
            &["tierkv-bench", "--mix", "get=0"],
            &["tierkv-bench", "--rate", "0"],
            &["tierkv-bench", "--duration", "0"],
        ] {
            assert!(
                BenchConfig::parse_from(args).validate().is_err(),
                "{args:?}"
            );
        }
        let custom = BenchConfig::parse_from(["tierkv-bench", "-w", "d", "--dist", "uniform"]);
        assert_eq!(custom.validate().unwrap().dist, KeyDistKind::Uniform);
    }
}
