//! Server configuration in the Redis style: `name value` lines in a config file, the same names
//! as `--name value` flags, memory units (`1k`, `1kb`, `2gb`, ...).
//!
//! Invariant: [`OPTIONS`] is the single list of option names and their defaults; parsing,
//! `--help`, `CONFIG GET` and `CONFIG SET` are all driven by it, so they can't disagree.

use std::path::PathBuf;

use crate::resp::split_args;

/// What an `appendfsync` setting guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFsync {
    /// fsync before every acknowledgement: survives a power cut.
    Always,
    /// fsync once a second: a power cut may lose the last second; a process crash loses nothing.
    EverySec,
    /// leave it to the OS: a process crash loses nothing written, a power cut may lose more.
    No,
}

/// Log verbosity, Redis's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Much.
    Verbose,
    /// Normal operation.
    Notice,
    /// Only warnings and errors.
    Warning,
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub fn filter(self) -> &'static str {
        match self {
            LogLevel::Debug => "trace",
            LogLevel::Verbose => "debug",
            LogLevel::Notice => "info",
            LogLevel::Warning => "warn",
        }
    }
}

/// `client-output-buffer-limit` for the normal class: disconnect a client whose pending replies
/// exceed `hard_bytes`, or stay above `soft_bytes` for `soft_secs` (0 = no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputBufferLimit {
    /// Immediate disconnect above this many pending bytes; 0 = unlimited.
    pub hard_bytes: u64,
    /// Soft limit in bytes; 0 = unlimited.
    pub soft_bytes: u64,
    /// How long the soft limit may be exceeded.
    pub soft_secs: u64,
}

impl OutputBufferLimit {
    /// tierkv's default for normal clients: Redis's replica class (256 MB hard, 64 MB for
    /// 60 s), not Redis's unlimited normal class, so a few clients that never read cannot take
    /// a small machine's memory (issue #13 item 8: three held 2.25 GB of RSS).
    pub const NORMAL_DEFAULT: OutputBufferLimit = OutputBufferLimit {
        hard_bytes: 256 << 20,
        soft_bytes: 64 << 20,
        soft_secs: 60,
    };
}

/// The whole server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on.
    pub bind: Vec<String>,
    /// TCP port; 0 picks a free one.
    pub port: u16,
    /// Port of the Prometheus endpoint (`GET /metrics` over HTTP on the `bind` addresses);
    /// 0: off.
    pub metrics_port: u16,
    /// Data directory.
    pub dir: PathBuf,
    /// Password of the default user; `None` = no AUTH needed.
    pub requirepass: Option<String>,
    /// Most simultaneous clients.
    pub maxclients: u64,
    /// Close clients idle this many seconds; 0 = never.
    pub timeout_secs: u64,
    /// Longest bulk string a client may send.
    pub proto_max_bulk_len_bytes: u64,
    /// Largest unparsed query buffer per client before it is disconnected.
    pub client_query_buffer_limit_bytes: u64,
    /// Output buffer limit of normal clients.
    pub client_output_buffer_limit: OutputBufferLimit,
    /// Number of logical databases (`SELECT 0..databases-1`).
    pub databases: u16,
    /// Memory budget in bytes; 0 = unlimited.
    pub maxmemory_bytes: u64,
    /// What happens when a write needs memory over `maxmemory` (Redis's eight policies).
    pub maxmemory_policy: txn::EvictionPolicy,
    /// Keys sampled per database for each eviction choice.
    pub maxmemory_samples: u32,
    /// How slowly LFU counters grow.
    pub lfu_log_factor: u32,
    /// Idle minutes per LFU counter decrement (0 = no decay).
    pub lfu_decay_time_min: u32,
    /// Whether compaction moves live values out of sparse value pages (Redis's `activedefrag`).
    pub activedefrag: bool,
    /// Fragmentation (percent of freed space in value pages over their live bytes) above
    /// which compaction works.
    pub active_defrag_threshold_lower: u32,
    /// Freed space in value pages below which compaction does not work, in bytes.
    pub active_defrag_ignore_bytes: u64,
    /// Whether compaction moves values to pages of their own (survivor pages) rather than
    /// among new values.
    pub active_defrag_survivor_pages: bool,
    /// `tiered-max-file-size`: the most the SSD tier's spill file may hold, in bytes (0 = as
    /// much as the disk takes). Used under `maxmemory-policy spill`.
    pub tiered_max_file_size_bytes: u64,
    /// `tiered-policy`: which value pages the SSD tier keeps in RAM: `w-tinylfu` (frequency
    /// and recency, scan resistant) or `lru` (recency alone, for comparison).
    pub tiered_policy: txn::PagePolicy,
    /// `snapshot-max-age`: abort a `TXN` open longer than this many seconds (0 = never).
    pub snapshot_max_age_secs: u64,
    /// `slowlog-log-slower-than`: log commands that execute this many microseconds or more
    /// (negative: none; 0: every command).
    pub slowlog_log_slower_than: i64,
    /// `slowlog-max-len`: entries the slow log keeps.
    pub slowlog_max_len: u64,
    /// `latency-tracking`: record each command's execution time for INFO latencystats.
    pub latency_tracking: bool,
    /// `latency-monitor-threshold`: LATENCY records events of at least this many ms (0: off).
    pub latency_monitor_threshold_ms: u64,
    /// `snapshot-max-pinned-memory`: abort the oldest `TXN` when the old versions its snapshot
    /// keeps from GC exceed this many bytes (0 = never).
    pub snapshot_max_pinned_memory_bytes: u64,
    /// Whether the write-ahead log is on.
    pub appendonly: bool,
    /// Start over a WAL that lost fsynced records in the middle, dropping them (Redis's
    /// `aof-load-truncated`, but off by default: see `storage::wal::synced`).
    pub wal_load_truncated: bool,
    /// When the write-ahead log is fsynced.
    pub appendfsync: AppendFsync,
    /// Snapshot schedule (kept for `CONFIG GET`; checkpoints are the engine's business).
    pub save: String,
    /// Refuse non-loopback clients when bound beyond loopback without a password.
    pub protected_mode: bool,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// Log verbosity.
    pub loglevel: LogLevel,
    /// `log-format`: one JSON object per line instead of text.
    pub log_json: bool,
}

/// One configuration option: name, default text, whether `CONFIG SET` may change it, help.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The option's name, as in the config file, `--name` and `CONFIG GET`.
    pub name: &'static str,
    /// The default value as it would be written in a config file.
    pub default: &'static str,
    /// Whether `CONFIG SET` may change it at runtime.
    pub settable: bool,
    /// One line of help.
    pub help: &'static str,
}

const fn opt(
    name: &'static str,
    default: &'static str,
    settable: bool,
    help: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        default,
        settable,
        help,
    }
}

/// Every option, in `--help` order.
pub const OPTIONS: &[OptionSpec] = &[
    opt(
        "bind",
        "127.0.0.1",
        false,
        "addresses to listen on (space separated)",
    ),
    opt("port", "6379", false, "TCP port (0 = pick a free one)"),
    opt(
        "metrics-port",
        "0",
        false,
        "serve Prometheus metrics (GET /metrics, HTTP) on this port of the bind addresses (0 = off)",
    ),
    opt("dir", "./tierkv-data", false, "data directory"),
    opt(
        "requirepass",
        "",
        true,
        "password for the default user (empty = none)",
    ),
    opt("maxclients", "10000", true, "most simultaneous clients"),
    opt(
        "timeout",
        "0",
        true,
        "close clients idle for this many seconds (0 = never)",
    ),
    opt(
        "proto-max-bulk-len",
        "512mb",
        true,
        "longest bulk string a client may send",
    ),
    opt(
        "client-query-buffer-limit",
        "1gb",
        true,
        "largest pending query per client",
    ),
    opt(
        "client-output-buffer-limit",
        "normal 256mb 64mb 60",
        true,
        "normal <hard> <soft> <soft-seconds>: pending reply limit",
    ),
    opt("databases", "16", false, "number of databases"),
    opt("maxmemory", "0", true, "memory budget (0 = unlimited)"),
    opt(
        "maxmemory-policy",
        "spill",
        true,
        "spill (cold values to SSD under maxmemory, the SSD tier) | noeviction | allkeys-lru | allkeys-lfu | allkeys-random | volatile-lru | volatile-lfu | volatile-random | volatile-ttl",
    ),
    opt(
        "maxmemory-samples",
        "5",
        true,
        "keys sampled per database for each eviction",
    ),
    opt(
        "lfu-log-factor",
        "10",
        true,
        "how slowly LFU access counters grow",
    ),
    opt(
        "lfu-decay-time",
        "1",
        true,
        "idle minutes per LFU counter decrement (0 = never)",
    ),
    // The defaults are the engine's (`txn::snapshot_limits`, where they are justified: a
    // minute, and 256 MiB of old versions); `snapshot_limits_default_to_the_engines_and_take_units`
    // checks they agree.
    opt(
        "slowlog-log-slower-than",
        "10000",
        true,
        "log commands that execute this many microseconds or more (negative: none)",
    ),
    opt("slowlog-max-len", "128", true, "entries the slow log keeps"),
    opt(
        "latency-monitor-threshold",
        "0",
        true,
        "LATENCY records events that take at least this many ms (0: off)",
    ),
    opt(
        "latency-tracking",
        "yes",
        true,
        "record each command's execution time for INFO latencystats",
    ),
    opt(
        "snapshot-max-age",
        "60",
        true,
        "abort a TXN open longer than this many seconds (0 = never)",
    ),
    opt(
        "snapshot-max-pinned-memory",
        "256mb",
        true,
        "abort the oldest TXN when old versions its snapshot keeps exceed this (0 = never)",
    ),
    opt(
        "activedefrag",
        "yes",
        true,
        "move live values out of sparse value pages so memory follows live data",
    ),
    opt(
        "active-defrag-threshold-lower",
        "10",
        true,
        "percent of freed space in value pages (over live bytes) before compaction works",
    ),
    opt(
        "active-defrag-ignore-bytes",
        "8mb",
        true,
        "freed space in value pages below which compaction does not work",
    ),
    opt(
        "active-defrag-survivor-pages",
        "yes",
        false,
        "compaction moves values to pages of their own, apart from new values (fixed at start)",
    ),
    opt(
        "tiered-max-file-size",
        "0",
        false,
        "most bytes the SSD tier's spill file (<dir>/tier.spill) may hold under maxmemory-policy spill; 0 = as much as the disk takes (fixed at start)",
    ),
    opt(
        "tiered-policy",
        "w-tinylfu",
        false,
        "which value pages the SSD tier keeps in RAM: w-tinylfu or lru (fixed at start)",
    ),
    opt(
        "appendonly",
        "yes",
        false,
        "write-ahead log on/off (fixed at start: the log is opened during recovery)",
    ),
    opt(
        "wal-load-truncated",
        "no",
        false,
        "start even if the WAL lost records it had fsynced, dropping them (fixed at start)",
    ),
    opt(
        "appendfsync",
        "everysec",
        false,
        "always | everysec | no (fixed at start)",
    ),
    opt(
        "save",
        "3600 1 300 100 60 10000",
        true,
        "checkpoint schedule (seconds changes ...)",
    ),
    opt(
        "protected-mode",
        "yes",
        true,
        "refuse remote clients when bound beyond loopback without a password",
    ),
    opt("threads", "0", false, "worker threads (0 = one per core)"),
    opt(
        "loglevel",
        "notice",
        true,
        "debug | verbose | notice | warning",
    ),
    opt(
        "log-format",
        "text",
        false,
        "text | json (one object per line: timestamp, level, fields, span, target)",
    ),
];

/// A bad option or value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The option name is not in [`OPTIONS`].
    #[error("unknown option '{0}'")]
    UnknownOption(String),
    /// The value doesn't parse for this option.
    #[error("invalid value '{value}' for option '{name}': {reason}")]
    InvalidValue {
        /// Option name.
        name: String,
        /// The rejected value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// `CONFIG SET` on an option fixed at startup.
    #[error("option '{0}' can't be set at runtime")]
    Immutable(String),
    /// A flag or file line without a value.
    #[error("option '{0}' needs a value")]
    MissingValue(String),
    /// The config file could not be read.
    #[error("can't read config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the config file has unbalanced quotes.
    #[error("config file line {0}: unbalanced quotes")]
    BadLine(usize),
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Invocation {
    /// Run the server with this config.
    Run(Box<Config>),
    /// Print this help text and exit.
    Help(String),
    /// Print the version and exit.
    Version,
}

/// Parses a memory amount like Redis's `memtoll`: `1k` = 1000, `1kb` = 1024, `m`/`mb`, `g`/`gb`,
/// case-insensitive; a plain number is bytes.
pub fn parse_memory(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let units: [(&str, u64); 6] = [
        ("kb", 1024),
        ("mb", 1 << 20),
        ("gb", 1 << 30),
        ("k", 1000),
        ("m", 1_000_000),
        ("g", 1_000_000_000),
    ];
    for (suffix, mul) in units {
        if let Some(num) = lower.strip_suffix(suffix) {
            return num.parse::<u64>().ok()?.checked_mul(mul);
        }
    }
    lower.parse().ok()
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut config = Config {
            bind: vec![],
            port: 0,
            metrics_port: 0,
            dir: PathBuf::new(),
            requirepass: None,
            maxclients: 0,
            timeout_secs: 0,
            proto_max_bulk_len_bytes: 0,
            client_query_buffer_limit_bytes: 0,
            client_output_buffer_limit: OutputBufferLimit::NORMAL_DEFAULT,
            databases: 0,
            maxmemory_bytes: 0,
            // tierkv's default (issue #10): over `maxmemory`, cold values go to SSD and no
            // key is dropped; Redis's eight cache policies are a setting away.
            maxmemory_policy: txn::EvictionPolicy::Spill,
            maxmemory_samples: 0,
            lfu_log_factor: 0,
            lfu_decay_time_min: 0,
            activedefrag: true,
            active_defrag_threshold_lower: 0,
            active_defrag_ignore_bytes: 0,
            active_defrag_survivor_pages: true,
            tiered_max_file_size_bytes: 0,
            tiered_policy: txn::PagePolicy::WTinyLfu,
            snapshot_max_age_secs: 0,
            slowlog_log_slower_than: 0,
            slowlog_max_len: 0,
            latency_tracking: true,
            latency_monitor_threshold_ms: 0,
            snapshot_max_pinned_memory_bytes: 0,
            appendonly: true,
            wal_load_truncated: false,
            appendfsync: AppendFsync::EverySec,
            save: String::new(),
            protected_mode: true,
            threads: 0,
            loglevel: LogLevel::Notice,
            log_json: false,
        };
        for spec in OPTIONS {
            // Defaults are written to parse; a failure here is a bug in OPTIONS, caught by tests.
            let _ = config.apply(spec.name, spec.default);
        }
        config
    }
}

impl Config {
    /// Sets option `name` (case-insensitive) from its config-file text.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let name = name.to_ascii_lowercase();
        let bad = |reason: &'static str| ConfigError::InvalidValue {
            name: name.clone(),
            value: value.to_owned(),
            reason,
        };
        let num = || {
            value
                .parse::<u64>()
                .map_err(|_| bad("argument must be a number"))
        };
        let mem = || parse_memory(value).ok_or_else(|| bad("argument must be a memory value"));
        // Redis's int configs: `min..=INT_MAX`.
        let int_from = |min: u32, reason: &'static str| {
            value
                .parse::<u32>()
                .ok()
                .filter(|n| (min..=i32::MAX as u32).contains(n))
                .ok_or_else(|| bad(reason))
        };
        let boolean = || parse_bool(value).ok_or_else(|| bad("argument must be 'yes' or 'no'"));
        match name.as_str() {
            "bind" => self.bind = value.split_whitespace().map(str::to_owned).collect(),
            "port" => {
                self.port = value
                    .parse()
                    .map_err(|_| bad("argument must be a port number"))?
            }
            "metrics-port" => {
                self.metrics_port = value
                    .parse()
                    .map_err(|_| bad("argument must be a port number"))?
            }
            "dir" => self.dir = PathBuf::from(value),
            "requirepass" => self.requirepass = (!value.is_empty()).then(|| value.to_owned()),
            "maxclients" => {
                let n = num()?;
                if n == 0 {
                    return Err(bad("argument must be at least 1"));
                }
                self.maxclients = n;
            }
            "timeout" => self.timeout_secs = num()?,
            "proto-max-bulk-len" => {
                let n = mem()?;
                if n < 1024 * 1024 {
                    return Err(bad("argument must be at least 1mb"));
                }
                self.proto_max_bulk_len_bytes = n;
            }
            "client-query-buffer-limit" => {
                let n = mem()?;
                if n < 1024 * 1024 {
                    return Err(bad("argument must be at least 1mb"));
                }
                self.client_query_buffer_limit_bytes = n;
            }
            "client-output-buffer-limit" => {
                let words: Vec<&str> = value.split_whitespace().collect();
                if !words.len().is_multiple_of(4) || words.is_empty() {
                    return Err(bad("wrong number of arguments"));
                }
                for class in words.chunks(4) {
                    let [class_name, hard, soft, secs] = class else {
                        continue;
                    };
                    let hard =
                        parse_memory(hard).ok_or_else(|| bad("argument must be a memory value"))?;
                    let soft =
                        parse_memory(soft).ok_or_else(|| bad("argument must be a memory value"))?;
                    let secs = secs.parse().map_err(|_| bad("argument must be a number"))?;
                    match class_name.to_ascii_lowercase().as_str() {
                        "normal" => {
                            self.client_output_buffer_limit = OutputBufferLimit {
                                hard_bytes: hard,
                                soft_bytes: soft,
                                soft_secs: secs,
                            }
                        }
                        // Accepted for compatibility; tierkv has no replicas or pub/sub clients yet.
                        "replica" | "slave" | "pubsub" => {}
                        _ => return Err(bad("invalid client class")),
                    }
                }
            }
            "databases" => {
                let n: u16 = value
                    .parse()
                    .map_err(|_| bad("argument must be a number"))?;
                if !(1..=txn::limits::DATABASES as u16).contains(&n) {
                    return Err(bad(
                        "argument must be between 1 and 16 (the engine's database count)",
                    ));
                }
                self.databases = n;
            }
            "maxmemory" => self.maxmemory_bytes = mem()?,
            "maxmemory-policy" => {
                self.maxmemory_policy = txn::EvictionPolicy::from_name(value).ok_or_else(|| {
                    bad("argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction, spill")
                })?
            }
            "maxmemory-samples" => {
                self.maxmemory_samples =
                    int_from(1, "argument must be between 1 and 2147483647 inclusive")?
            }
            "lfu-log-factor" => {
                self.lfu_log_factor =
                    int_from(0, "argument must be between 0 and 2147483647 inclusive")?
            }
            "lfu-decay-time" => {
                self.lfu_decay_time_min =
                    int_from(0, "argument must be between 0 and 2147483647 inclusive")?
            }
            "activedefrag" => self.activedefrag = boolean()?,
            "active-defrag-threshold-lower" => {
                self.active_defrag_threshold_lower = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 1000)
                    .ok_or_else(|| bad("argument must be between 0 and 1000 inclusive"))?
            }
            "active-defrag-ignore-bytes" => self.active_defrag_ignore_bytes = mem()?,
            "active-defrag-survivor-pages" => self.active_defrag_survivor_pages = boolean()?,
            "tiered-max-file-size" => self.tiered_max_file_size_bytes = mem()?,
            "tiered-policy" => {
                self.tiered_policy = match value.to_ascii_lowercase().as_str() {
                    "w-tinylfu" => txn::PagePolicy::WTinyLfu,
                    "lru" => txn::PagePolicy::Lru,
                    _ => return Err(bad("argument must be one of: w-tinylfu, lru")),
                }
            }
            "snapshot-max-age" => {
                let n = num()?;
                if n > u64::MAX / 1000 {
                    return Err(bad("argument is out of range"));
                }
                self.snapshot_max_age_secs = n;
            }
            "snapshot-max-pinned-memory" => self.snapshot_max_pinned_memory_bytes = mem()?,
            "slowlog-log-slower-than" => {
                self.slowlog_log_slower_than = value
                    .parse()
                    .map_err(|_| bad("argument couldn't be parsed into an integer"))?
            }
            "latency-tracking" => self.latency_tracking = boolean()?,
            "latency-monitor-threshold" => self.latency_monitor_threshold_ms = num()?,
            "slowlog-max-len" => {
                self.slowlog_max_len = value
                    .parse::<u32>()
                    .map(u64::from)
                    .map_err(|_| bad("argument couldn't be parsed into an integer"))?
            }
            "appendonly" => self.appendonly = boolean()?,
            "wal-load-truncated" => self.wal_load_truncated = boolean()?,
            "appendfsync" => {
                self.appendfsync = match value.to_ascii_lowercase().as_str() {
                    "always" => AppendFsync::Always,
                    "everysec" => AppendFsync::EverySec,
                    "no" => AppendFsync::No,
                    _ => return Err(bad("argument must be one of always, everysec, no")),
                }
            }
            "save" => self.save = value.to_owned(),
            "protected-mode" => self.protected_mode = boolean()?,
            "threads" => {
                self.threads = value
                    .parse()
                    .map_err(|_| bad("argument must be a number"))?
            }
            "loglevel" => {
                self.loglevel = match value.to_ascii_lowercase().as_str() {
                    "debug" => LogLevel::Debug,
                    "verbose" => LogLevel::Verbose,
                    "notice" => LogLevel::Notice,
                    "warning" => LogLevel::Warning,
                    _ => {
                        return Err(bad(
                            "argument must be one of debug, verbose, notice, warning",
                        ))
                    }
                }
            }
            "log-format" => {
                self.log_json = match value.to_ascii_lowercase().as_str() {
                    "text" => false,
                    "json" => true,
                    _ => return Err(bad("argument must be one of text, json")),
                }
            }
            _ => return Err(ConfigError::UnknownOption(name)),
        }
        Ok(())
    }

    /// `CONFIG SET`: like [`Config::apply`] but refuses options fixed at startup.
    pub fn set_runtime(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let spec = find(name).ok_or_else(|| ConfigError::UnknownOption(name.to_owned()))?;
        if !spec.settable {
            return Err(ConfigError::Immutable(spec.name.to_owned()));
        }
        self.apply(name, value)
    }

    /// The current value of option `name` as `CONFIG GET` renders it (memory in bytes).
    pub fn get(&self, name: &str) -> Option<String> {
        let spec = find(name)?;
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
        Some(match spec.name {
            "bind" => self.bind.join(" "),
            "port" => self.port.to_string(),
            "metrics-port" => self.metrics_port.to_string(),
            "dir" => self.dir.display().to_string(),
            "requirepass" => self.requirepass.clone().unwrap_or_default(),
            "maxclients" => self.maxclients.to_string(),
            "timeout" => self.timeout_secs.to_string(),
            "proto-max-bulk-len" => self.proto_max_bulk_len_bytes.to_string(),
            "client-query-buffer-limit" => self.client_query_buffer_limit_bytes.to_string(),
            "client-output-buffer-limit" => {
                let l = self.client_output_buffer_limit;
                format!(
                    "normal {} {} {} slave 268435456 67108864 60 pubsub 33554432 8388608 60",
                    l.hard_bytes, l.soft_bytes, l.soft_secs
                )
            }
            "databases" => self.databases.to_string(),
            "maxmemory" => self.maxmemory_bytes.to_string(),
            "maxmemory-policy" => self.maxmemory_policy.name().to_owned(),
            "maxmemory-samples" => self.maxmemory_samples.to_string(),
            "lfu-log-factor" => self.lfu_log_factor.to_string(),
            "lfu-decay-time" => self.lfu_decay_time_min.to_string(),
            "activedefrag" => yes_no(self.activedefrag),
            "active-defrag-threshold-lower" => self.active_defrag_threshold_lower.to_string(),
            "active-defrag-ignore-bytes" => self.active_defrag_ignore_bytes.to_string(),
            "active-defrag-survivor-pages" => yes_no(self.active_defrag_survivor_pages),
            "tiered-max-file-size" => self.tiered_max_file_size_bytes.to_string(),
            "tiered-policy" => match self.tiered_policy {
                txn::PagePolicy::WTinyLfu => "w-tinylfu",
                txn::PagePolicy::Lru => "lru",
            }
            .to_string(),
            "snapshot-max-age" => self.snapshot_max_age_secs.to_string(),
            "slowlog-log-slower-than" => self.slowlog_log_slower_than.to_string(),
            "slowlog-max-len" => self.slowlog_max_len.to_string(),
            "latency-tracking" => yes_no(self.latency_tracking),
            "latency-monitor-threshold" => self.latency_monitor_threshold_ms.to_string(),
            "snapshot-max-pinned-memory" => self.snapshot_max_pinned_memory_bytes.to_string(),
            "appendonly" => yes_no(self.appendonly),
            "wal-load-truncated" => yes_no(self.wal_load_truncated),
            "appendfsync" => match self.appendfsync {
                AppendFsync::Always => "always",
                AppendFsync::EverySec => "everysec",
                AppendFsync::No => "no",
            }
            .to_owned(),
            "save" => self.save.clone(),
            "protected-mode" => yes_no(self.protected_mode),
            "threads" => self.worker_threads().to_string(),
            "log-format" => if self.log_json { "json" } else { "text" }.to_owned(),
            "loglevel" => match self.loglevel {
                LogLevel::Debug => "debug",
                LogLevel::Verbose => "verbose",
                LogLevel::Notice => "notice",
                LogLevel::Warning => "warning",
            }
            .to_owned(),
            _ => return None,
        })
    }

    /// The engine's memory settings (`maxmemory`, its policy and tuning).
    pub fn memory_config(&self) -> txn::MemoryConfig {
        txn::MemoryConfig {
            maxmemory_bytes: self.maxmemory_bytes,
            policy: self.maxmemory_policy,
            samples: self.maxmemory_samples,
            lfu_log_factor: self.lfu_log_factor,
            lfu_decay_time_min: self.lfu_decay_time_min,
        }
    }

    /// The engine's compaction settings (the `activedefrag` family).
    pub fn compaction_config(&self) -> txn::CompactionConfig {
        txn::CompactionConfig {
            enabled: self.activedefrag,
            threshold_lower_pct: self.active_defrag_threshold_lower,
            ignore_bytes: self.active_defrag_ignore_bytes,
        }
    }

    /// The engine's limits on interactive transactions' snapshots.
    pub fn snapshot_limits(&self) -> txn::SnapshotLimits {
        txn::SnapshotLimits {
            max_age_ms: self.snapshot_max_age_secs.saturating_mul(1000),
            max_pinned_bytes: self.snapshot_max_pinned_memory_bytes,
        }
    }

    /// Worker threads to start: `threads`, or the number of cores when it is 0.
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    /// Applies a config file's `name value` lines (`#` comments, quoting as in Redis).
    pub fn apply_file_text(&mut self, text: &str) -> Result<(), ConfigError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words = split_args(line.as_bytes()).ok_or(ConfigError::BadLine(i + 1))?;
            let mut words = words
                .iter()
                .map(|w| String::from_utf8_lossy(w).into_owned());
            let Some(name) = words.next() else { continue };
            let value: Vec<String> = words.collect();
            if value.is_empty() && name != "requirepass" && name != "save" {
                return Err(ConfigError::MissingValue(name));
            }
            self.apply(&name, &value.join(" "))?;
        }
        Ok(())
    }

    /// Parses a command line (without the program name): an optional config file first, then
    /// `--name value...` flags that override it.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Invocation, ConfigError> {
        let args: Vec<String> = args.into_iter().collect();
        let mut config = Config::default();
        let mut rest = args.as_slice();
        if let Some((first, tail)) = rest.split_first() {
            match first.as_str() {
                "-h" | "--help" => return Ok(Invocation::Help(help_text())),
                "-v" | "--version" => return Ok(Invocation::Version),
                path if !path.starts_with("--") => {
                    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                        path: PathBuf::from(path),
                        source,
                    })?;
                    config.apply_file_text(&text)?;
                    rest = tail;
                }
                _ => {}
            }
        }
        while let Some((flag, tail)) = rest.split_first() {
            if flag == "--help" || flag == "-h" {
                return Ok(Invocation::Help(help_text()));
            }
            let Some(name) = flag.strip_prefix("--") else {
                return Err(ConfigError::UnknownOption(flag.clone()));
            };
            let n = tail.iter().take_while(|a| !a.starts_with("--")).count();
            let (values, after) = tail.split_at(n);
            if find(name).is_none() {
                return Err(ConfigError::UnknownOption(name.to_owned()));
            }
            if values.is_empty() && name != "requirepass" && name != "save" {
                return Err(ConfigError::MissingValue(name.to_owned()));
            }
            config.apply(name, &values.join(" "))?;
            rest = after;
        }
        Ok(Invocation::Run(Box::new(config)))
    }
}

/// The option named `name`, case-insensitively.
pub fn find(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.name.eq_ignore_ascii_case(name))
}

/// `--help` text: usage and every option with its default.
pub fn help_text() -> String {
    let mut s = String::from(
        "Usage: tierkv-server [/path/to/tierkv.conf] [--option value ...]\n\n\
         Options (config file lines are `name value`; flags are `--name value`):\n",
    );
    for o in OPTIONS {
        let default = if o.name == "threads" {
            "0 (one per core)"
        } else {
            o.default
        };
        s.push_str(&format!(
            "  --{:<28} {} [default: \"{}\"]\n",
            o.name, o.help, default
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, ConfigError> {
        match Config::from_args(args.iter().map(|s| s.to_string()))? {
            Invocation::Run(c) => Ok(*c),
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_redis() {
        let c = Config::default();
        assert_eq!(c.bind, vec!["127.0.0.1"]);
        assert_eq!(c.port, 6379);
        assert_eq!(c.maxclients, 10000);
        assert_eq!(c.proto_max_bulk_len_bytes, 512 * 1024 * 1024);
        assert_eq!(c.client_query_buffer_limit_bytes, 1 << 30);
        assert_eq!(c.databases, 16);
        assert_eq!(c.appendfsync, AppendFsync::EverySec);
        for o in OPTIONS {
            let mut fresh = Config::default();
            fresh
                .apply(o.name, o.default)
                .unwrap_or_else(|e| panic!("default of {}: {e}", o.name));
            assert!(c.get(o.name).is_some());
        }
    }

    #[test]
    fn flags_override_the_file_and_take_units() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.conf");
        std::fs::write(
            &path,
            "# comment\nport 7001\nmaxmemory 1kb\nsave \"\"\nrequirepass \"s e\"\n",
        )
        .unwrap();
        let c = run(&[
            path.to_str().unwrap(),
            "--port",
            "7000",
            "--dir",
            "/data",
            "--appendfsync",
            "always",
        ])
        .unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.dir, PathBuf::from("/data"));
        assert_eq!(c.maxmemory_bytes, 1024);
        assert_eq!(c.appendfsync, AppendFsync::Always);
        assert_eq!(c.requirepass.as_deref(), Some("s e"));
        assert_eq!(c.save, "");
        let c = run(&[
            "--maxmemory",
            "2gb",
            "--save",
            "",
            "--bind",
            "0.0.0.0",
            "::1",
        ])
        .unwrap();
        assert_eq!(c.maxmemory_bytes, 2 << 30);
        assert_eq!(c.bind, vec!["0.0.0.0", "::1"]);
    }

    #[test]
    fn unknown_options_are_named() {
        let err = run(&["--no-such-thing", "1"]).unwrap_err();
        assert_eq!(err.to_string(), "unknown option 'no-such-thing'");
        let err = run(&["--port", "x"]).unwrap_err();
        assert!(err.to_string().contains("'port'"), "{err}");
    }

    #[test]
    fn memory_units_follow_memtoll() {
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1KB"), Some(1024));
        assert_eq!(parse_memory("3mb"), Some(3 << 20));
        assert_eq!(parse_memory("1g"), Some(1_000_000_000));
        assert_eq!(parse_memory("12"), Some(12));
        assert_eq!(parse_memory("x"), None);
    }

    #[test]
    fn help_lists_every_option_with_default() {
        let Invocation::Help(text) = Config::from_args(["--help".to_string()]).unwrap() else {
            panic!()
        };
        for o in OPTIONS {
            assert!(text.contains(&format!("--{}", o.name)), "{}", o.name);
        }
        assert!(text.contains("[default: \"6379\"]"));
    }

    #[test]
    fn runtime_set_refuses_fixed_options() {
        let mut c = Config::default();
        assert!(matches!(
            c.set_runtime("port", "1"),
            Err(ConfigError::Immutable(_))
        ));
        c.set_runtime("maxmemory", "10mb").unwrap();
        assert_eq!(c.get("maxmemory").unwrap(), (10 << 20).to_string());
    }

    #[test]
    fn the_tier_policy_is_chosen_at_start_by_name() {
        assert_eq!(Config::default().get("tiered-policy").unwrap(), "w-tinylfu");
        let c = run(&["--tiered-policy", "LRU"]).unwrap();
        assert_eq!(c.tiered_policy, txn::PagePolicy::Lru);
        assert_eq!(c.get("tiered-policy").unwrap(), "lru");
        let err = run(&["--tiered-policy", "lfu"]).unwrap_err();
        assert!(err.to_string().contains("w-tinylfu, lru"), "{err}");
        assert!(matches!(
            Config::default().set_runtime("tiered-policy", "lru"),
            Err(ConfigError::Immutable(_))
        ));
    }

    #[test]
    fn snapshot_limits_default_to_the_engines_and_take_units() {
        let mut c = Config::default();
        assert_eq!(c.snapshot_limits(), txn::SnapshotLimits::default());
        assert_eq!(c.get("snapshot-max-age").unwrap(), "60");
        assert_eq!(
            c.get("snapshot-max-pinned-memory").unwrap(),
            (256u64 << 20).to_string()
        );
        c.set_runtime("snapshot-max-age", "0").unwrap();
        c.set_runtime("snapshot-max-pinned-memory", "1mb").unwrap();
        assert_eq!(
            c.snapshot_limits(),
            txn::SnapshotLimits {
                max_age_ms: 0,
                max_pinned_bytes: 1 << 20,
            }
        );
        assert!(c.set_runtime("snapshot-max-age", "-1").is_err());
        assert!(c
            .set_runtime("snapshot-max-age", "18446744073709552")
            .is_err());
        assert!(c.set_runtime("snapshot-max-pinned-memory", "lots").is_err());
        let c = run(&[
            "--snapshot-max-age",
            "5",
            "--snapshot-max-pinned-memory",
            "2gb",
        ])
        .unwrap();
        assert_eq!(c.snapshot_limits().max_age_ms, 5000);
        assert_eq!(c.snapshot_limits().max_pinned_bytes, 2 << 30);
    }

    #[test]
    fn memory_policy_options_match_redis() {
        let mut c = Config::default();
        assert_eq!(c.get("maxmemory-policy").unwrap(), "spill");
        assert_eq!(c.get("maxmemory-samples").unwrap(), "5");
        assert_eq!(
            c.memory_config(),
            txn::MemoryConfig {
                policy: txn::EvictionPolicy::Spill,
                ..txn::MemoryConfig::default()
            }
        );
        for policy in txn::EvictionPolicy::ALL {
            c.set_runtime("maxmemory-policy", &policy.name().to_ascii_uppercase())
                .unwrap();
            assert_eq!(c.get("maxmemory-policy").unwrap(), policy.name());
        }
        let err = c.set_runtime("maxmemory-policy", "lru").unwrap_err();
        assert!(
            err.to_string().contains("must be one of the following"),
            "{err}"
        );
        assert!(c.set_runtime("maxmemory-samples", "0").is_err());
        assert!(c.set_runtime("maxmemory-samples", "2147483648").is_err());
        c.set_runtime("maxmemory-samples", "10").unwrap();
        c.set_runtime("lfu-decay-time", "0").unwrap();
        let c = run(&["--maxmemory-policy", "allkeys-lfu", "--lfu-log-factor", "3"]).unwrap();
        assert_eq!(c.memory_config().policy, txn::EvictionPolicy::AllKeysLfu);
        assert_eq!(c.memory_config().lfu_log_factor, 3);
    }
}
