//! The listener: accept loop, client registry, background expiry/GC, graceful shutdown.
//!
//! Invariant: the number of live connections never exceeds `maxclients` (checked at accept,
//! over-limit clients get Redis's error and are closed), and `run` returns only after every
//! connection task has finished its in-flight batch.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use txn::Engine;

use crate::cmd::TABLE;
use crate::config::Config;
use crate::persistence::Persistence;
use crate::resp::Frame;

/// Keys the expiry task deletes per commit (a tick runs several while keys keep expiring).
pub const EXPIRE_TICK_KEYS_MAX: usize = 200;
/// How often the expiry task runs.
pub const EXPIRE_TICK_INTERVAL: Duration = Duration::from_millis(10);
/// CPU a tick may spend deleting while keys keep expiring: a quarter of the interval, so
/// active expiry takes at most a quarter of one core, as Redis's slow cycle (25 %).
pub const EXPIRE_TICK_BUDGET: Duration = Duration::from_micros(2_500);
/// How often version garbage collection runs.
pub const GC_INTERVAL: Duration = Duration::from_millis(100);
/// How often compaction takes a paced step (Redis's active defrag runs on its 10 Hz..100 Hz
/// cron); each step's work is bounded by `txn::limits::COMPACT_TICK_BYTES_MAX`.
pub const COMPACT_TICK_INTERVAL: Duration = Duration::from_millis(10);
/// Bounded GC calls per tick while they keep finding garbage (each examines at most
/// `txn::limits::GC_KEYS_PER_CALL` keys), so up to ~650 k keys/s are swept under heavy overwrite
/// and ~40 k keys/s when idle.
pub const GC_CALLS_PER_TICK_MAX: usize = 16;
/// How long shutdown waits for connections to flush their last replies before closing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long shutdown waits, after closing the connections still open at [`SHUTDOWN_GRACE`],
/// for those busy in a command to stop (an abort lands only when a task yields).
pub const SHUTDOWN_ABORT_GRACE: Duration = Duration::from_secs(2);
/// Accepted connections waiting to be registered (a bound on the accept hand-off queue).
pub const ACCEPT_QUEUE_MAX: usize = 1024;
/// Most SCAN cursors remembered server-wide (oldest forgotten first).
pub const SCAN_CURSORS_MAX: usize = 16 * 1024;

/// A client id, as CLIENT ID reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// What other connections may see of a client (CLIENT LIST/KILL).
pub struct ClientHandle {
    /// Unique id.
    pub id: ClientId,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub laddr: SocketAddr,
    created: Instant,
    name: Mutex<Option<String>>,
    db: AtomicU8,
    last_cmd: AtomicUsize,
    last_active_ms: AtomicU64,
    resp: AtomicU8,
    killed: AtomicBool,
    /// Bytes received and not yet run, the input buffer's spare room, and replies queued
    /// (CLIENT LIST's `qbuf`, `qbuf-free`, `omem`), stored by the connection once per loop.
    qbuf: AtomicU64,
    qbuf_free: AtomicU64,
    omem: AtomicU64,
    /// Woken when the client is killed.
    pub kill: Notify,
}

impl ClientHandle {
    /// A registry entry for a new connection.
    pub fn new(id: ClientId, addr: SocketAddr, laddr: SocketAddr) -> Self {
        ClientHandle {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::new(None),
            db: AtomicU8::new(0),
            last_cmd: AtomicUsize::new(usize::MAX),
            last_active_ms: AtomicU64::new(0),
            resp: AtomicU8::new(2),
            killed: AtomicBool::new(false),
            qbuf: AtomicU64::new(0),
            qbuf_free: AtomicU64::new(0),
            omem: AtomicU64::new(0),
            kill: Notify::new(),
        }
    }

    /// The client name (CLIENT SETNAME).
    pub fn name(&self) -> Option<String> {
        self.name.lock().clone()
    }

    /// Sets or clears the client name.
    pub fn set_name(&self, name: Option<String>) {
        *self.name.lock() = name;
    }

    /// Records the selected database for CLIENT LIST.
    pub fn set_db(&self, db: u8) {
        self.db.store(db, Ordering::Relaxed);
    }

    /// Records the protocol for CLIENT LIST.
    pub fn set_resp(&self, resp: u8) {
        self.resp.store(resp, Ordering::Relaxed);
    }

    /// Records a command for CLIENT LIST's `cmd=` and `idle=`, run at `now` (the caller's
    /// clock reading, which it also times the command with).
    pub fn touch(&self, table_index: usize, now: Instant) {
        self.last_cmd.store(table_index, Ordering::Relaxed);
        let active = now.saturating_duration_since(self.created);
        self.last_active_ms
            .store(active.as_millis() as u64, Ordering::Relaxed);
    }

    /// Records the connection's buffers for CLIENT LIST: input not yet run, the input
    /// buffer's spare room, replies queued.
    pub fn set_buffers(&self, qbuf: usize, qbuf_free: usize, omem: usize) {
        self.qbuf.store(qbuf as u64, Ordering::Relaxed);
        self.qbuf_free.store(qbuf_free as u64, Ordering::Relaxed);
        self.omem.store(omem as u64, Ordering::Relaxed);
    }

    /// Bytes of the connection's buffers (input held and spare, replies queued), as CLIENT
    /// LIST's `tot-mem` counts them.
    pub fn buffer_bytes(&self) -> u64 {
        self.qbuf.load(Ordering::Relaxed)
            + self.qbuf_free.load(Ordering::Relaxed)
            + self.omem.load(Ordering::Relaxed)
    }

    /// Asks the connection to close.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }

    /// Whether CLIENT KILL targeted this client.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// One CLIENT LIST line (without the trailing newline).
    pub fn info_line(&self) -> String {
        let age = self.created.elapsed().as_secs();
        let idle_ms = (self.created.elapsed().as_millis() as u64)
            .saturating_sub(self.last_active_ms.load(Ordering::Relaxed));
        let cmd = TABLE
            .get(self.last_cmd.load(Ordering::Relaxed))
            .map_or("NULL", |e| e.spec.name);
        let qbuf = self.qbuf.load(Ordering::Relaxed);
        let qbuf_free = self.qbuf_free.load(Ordering::Relaxed);
        let omem = self.omem.load(Ordering::Relaxed);
        format!(
            "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf={qbuf} qbuf-free={qbuf_free} argv-mem=0 multi-mem=0 rbs={} rbp=0 obl=0 oll=0 omem={omem} tot-mem={} events=r cmd={} user=default redir=-1 resp={}",
            self.id.0,
            self.addr,
            self.laddr,
            self.name().unwrap_or_default(),
            age,
            idle_ms / 1000,
            self.db.load(Ordering::Relaxed),
            qbuf + qbuf_free,
            qbuf + qbuf_free + omem,
            cmd,
            self.resp.load(Ordering::Relaxed),
        )
    }
}

/// Stat shards: connections add to the shard of their client id, so cores serving different
/// clients don't fight over one cache line; INFO sums the shards.
pub const STAT_SHARDS: usize = 32;

/// One shard of the hot counters, on its own cache lines.
#[repr(align(128))]
struct StatShard {
    commands: AtomicU64,
    keyspace_hits: AtomicU64,
    keyspace_misses: AtomicU64,
    net_input_bytes: AtomicU64,
    net_output_bytes: AtomicU64,
    calls: Box<[AtomicU64]>,
    usec: Box<[AtomicU64]>,
    failed: Box<[AtomicU64]>,
}

impl StatShard {
    fn new() -> Self {
        let slots = || (0..TABLE.len()).map(|_| AtomicU64::new(0)).collect();
        StatShard {
            commands: AtomicU64::new(0),
            keyspace_hits: AtomicU64::new(0),
            keyspace_misses: AtomicU64::new(0),
            net_input_bytes: AtomicU64::new(0),
            net_output_bytes: AtomicU64::new(0),
            calls: slots(),
            usec: slots(),
            failed: slots(),
        }
    }
}

/// Server-wide counters for INFO. Recording a command is a few relaxed atomic adds on the
/// caller's shard (per-command slots are indexed like [`TABLE`]), never a lock.
pub struct Stats {
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Connections refused by maxclients.
    pub rejected_connections: AtomicU64,
    /// Keys removed by the expiry task.
    pub expired_keys: AtomicU64,
    /// AUTH / HELLO AUTH with a wrong password (Redis's `acl_access_denied_auth`).
    pub auth_failures: AtomicU64,
    /// When a failed AUTH was last logged (seconds since the epoch).
    pub auth_failure_logged_at: AtomicU64,
    /// Writes that waited for the SSD tier to write pages out (`connection.rs`), and the
    /// microseconds they waited in all.
    pub tier_write_stalls: AtomicU64,
    /// See `tier_write_stalls`.
    pub tier_write_stall_us: AtomicU64,
    /// When a stall was last logged (seconds since the epoch), so the log says it at most
    /// once every ten seconds.
    pub tier_stall_logged_at: AtomicU64,
    /// Writes that waited (on their connection, not a thread) for a FLUSHDB, FLUSHALL or
    /// SWAPDB to release the commit lock, and how many wait now.
    pub keyspace_op_waits: AtomicU64,
    /// See `keyspace_op_waits`.
    pub keyspace_op_waiting: AtomicU64,
    /// Writes that waited on their connection for room in the WAL's group-commit batch.
    pub wal_backlog_waits: AtomicU64,
    /// With the SSD tier: how long commands took in the server, from their first run to their
    /// reply, those that needed no value from SSD (hits) and those that did (misses, fetches
    /// and runs again included). Whether hits stay fast while misses are in flight.
    pub tier_hit_latency: txn::LatencyHistogram,
    /// See `tier_hit_latency`.
    pub tier_miss_latency: txn::LatencyHistogram,
    /// The highest `used_memory` seen by the 100 ms sampler (INFO `used_memory_peak`).
    pub used_memory_peak: AtomicU64,
    /// `used_memory` when the server started serving (INFO `used_memory_startup`).
    pub used_memory_startup: AtomicU64,
    /// Samples for the `instantaneous_*` fields, taken every 100 ms.
    instantaneous: Mutex<Instantaneous>,
    /// Each command's execution times (indexed like [`TABLE`]), for INFO latencystats: one
    /// relaxed atomic add per command, no lock (`txn::LatencyHistogram`, 2 KiB each).
    latency: Box<[txn::LatencyHistogram]>,
    /// `latency-tracking`.
    pub latency_tracking: std::sync::atomic::AtomicBool,
    shards: Box<[StatShard]>,
}

/// Samples of (when, commands, input bytes, output bytes) over the last 1.6 s, as Redis keeps
/// 16 samples taken every 100 ms for `instantaneous_ops_per_sec` and the kbps fields.
#[derive(Debug, Default)]
struct Instantaneous {
    samples: VecDeque<(Instant, u64, u64, u64)>,
}

/// Samples the `instantaneous_*` fields average over (Redis's `STATS_METRIC_SAMPLES`).
const INSTANTANEOUS_SAMPLES: usize = 16;
/// How often they are sampled.
pub const INSTANTANEOUS_INTERVAL: Duration = Duration::from_millis(100);

/// Rates over the sampled window: ops per second, input and output kilobytes per second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Commands per second.
    pub ops_per_sec: f64,
    /// Input, KB/s.
    pub input_kbps: f64,
    /// Output, KB/s.
    pub output_kbps: f64,
}

fn sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0u64, u64::wrapping_add)
}

impl Stats {
    fn new() -> Self {
        Stats {
            connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            expired_keys: AtomicU64::new(0),
            tier_write_stalls: AtomicU64::new(0),
            tier_write_stall_us: AtomicU64::new(0),
            tier_stall_logged_at: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            wal_backlog_waits: AtomicU64::new(0),
            auth_failure_logged_at: AtomicU64::new(0),
            keyspace_op_waits: AtomicU64::new(0),
            keyspace_op_waiting: AtomicU64::new(0),
            tier_hit_latency: txn::LatencyHistogram::default(),
            tier_miss_latency: txn::LatencyHistogram::default(),
            used_memory_peak: AtomicU64::new(0),
            used_memory_startup: AtomicU64::new(0),
            instantaneous: Mutex::new(Instantaneous::default()),
            latency: (0..TABLE.len())
                .map(|_| txn::LatencyHistogram::default())
                .collect(),
            latency_tracking: std::sync::atomic::AtomicBool::new(true),
            shards: (0..STAT_SHARDS).map(|_| StatShard::new()).collect(),
        }
    }

    /// `(name, cumulative counts at each of `bounds_us`, count)` for every command that ran
    /// since the start or the last CONFIG RESETSTAT (the Prometheus endpoint's histograms).
    pub fn latency_buckets(&self, bounds_us: &[u64]) -> Vec<(&'static str, Vec<u64>, u64)> {
        TABLE
            .iter()
            .zip(self.latency.iter())
            .filter(|(_, h)| h.count() > 0)
            .map(|(entry, h)| (entry.spec.name, h.cumulative_counts(bounds_us), h.count()))
            .collect()
    }

    /// `(name, p50, p99, p99.9)` in microseconds for every command that ran since the start
    /// or the last CONFIG RESETSTAT, in table order.
    pub fn latency_percentiles(&self) -> Vec<(&'static str, u64, u64, u64)> {
        TABLE
            .iter()
            .zip(self.latency.iter())
            .filter(|(_, h)| h.count() > 0)
            .map(|(entry, h)| {
                (
                    entry.spec.name,
                    h.percentile_us(50.0),
                    h.percentile_us(99.0),
                    h.percentile_us(99.9),
                )
            })
            .collect()
    }

    /// Takes one sample for the `instantaneous_*` fields (the server does every 100 ms).
    pub fn sample(&self) {
        let sample = (
            Instant::now(),
            self.commands_processed(),
            self.net_input_bytes(),
            self.net_output_bytes(),
        );
        let mut inst = self.instantaneous.lock();
        if inst.samples.len() >= INSTANTANEOUS_SAMPLES {
            inst.samples.pop_front();
        }
        inst.samples.push_back(sample);
    }

    /// The rates over the sampled window (zero until two samples exist).
    pub fn rates(&self) -> Rates {
        let inst = self.instantaneous.lock();
        let (Some(first), Some(last)) = (inst.samples.front(), inst.samples.back()) else {
            return Rates::default();
        };
        let secs = last.0.saturating_duration_since(first.0).as_secs_f64();
        if secs <= 0.0 {
            return Rates::default();
        }
        let per_sec = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
        Rates {
            ops_per_sec: per_sec(first.1, last.1),
            input_kbps: per_sec(first.2, last.2) / 1024.0,
            output_kbps: per_sec(first.3, last.3) / 1024.0,
        }
    }

    fn shard(&self, client: ClientId) -> Option<&StatShard> {
        self.shards.get((client.0 as usize) % STAT_SHARDS)
    }

    /// Counts one command of `client`.
    pub fn record(&self, client: ClientId, table_index: usize, took: Duration, failed: bool) {
        let Some(shard) = self.shard(client) else {
            return;
        };
        shard.commands.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = shard.calls.get(table_index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(u) = shard.usec.get(table_index) {
            u.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        }
        if let Some(h) = self
            .latency
            .get(table_index)
            .filter(|_| self.latency_tracking.load(Ordering::Relaxed))
        {
            h.record(took);
        }
        if failed {
            if let Some(f) = shard.failed.get(table_index) {
                f.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts `keyspace_hits` / `keyspace_misses` from the reply of a `COUNTS_LOOKUPS`
    /// command of `client` (`name` its table name, `keys` how many keys it named), as Redis
    /// counts its read lookups: GET and MGET per value or nil, EXISTS from its count, TYPE
    /// `none`, TTL/PTTL `-2`. Errors (WRONGTYPE) count nothing.
    pub fn count_lookups(&self, client: ClientId, name: &str, keys: usize, reply: &Frame) {
        let (hits, misses) = match (name, reply) {
            ("get", Frame::Bulk(_)) => (1, 0),
            ("get", Frame::Null) => (0, 1),
            ("mget", Frame::Array(values)) => {
                let misses = values.iter().filter(|v| matches!(v, Frame::Null)).count();
                (values.len() - misses, misses)
            }
            ("exists", Frame::Integer(n)) => {
                let n = usize::try_from(*n).unwrap_or(0).min(keys);
                (n, keys - n)
            }
            ("type", Frame::Simple(t)) => {
                if t.as_ref() == b"none" {
                    (0, 1)
                } else {
                    (1, 0)
                }
            }
            ("ttl" | "pttl", Frame::Integer(-2)) => (0, 1),
            ("ttl" | "pttl", Frame::Integer(_)) => (1, 0),
            _ => (0, 0),
        };
        if let Some(shard) = self.shard(client) {
            if hits > 0 {
                shard
                    .keyspace_hits
                    .fetch_add(hits as u64, Ordering::Relaxed);
            }
            if misses > 0 {
                shard
                    .keyspace_misses
                    .fetch_add(misses as u64, Ordering::Relaxed);
            }
        }
    }

    /// `(keyspace_hits, keyspace_misses)` over every shard.
    pub fn keyspace_lookups(&self) -> (u64, u64) {
        (
            sum(self
                .shards
                .iter()
                .map(|s| s.keyspace_hits.load(Ordering::Relaxed))),
            sum(self
                .shards
                .iter()
                .map(|s| s.keyspace_misses.load(Ordering::Relaxed))),
        )
    }

    /// Counts bytes read from `client`.
    pub fn add_input(&self, client: ClientId, bytes: usize) {
        if let Some(s) = self.shard(client) {
            s.net_input_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Counts bytes written to `client`.
    pub fn add_output(&self, client: ClientId, bytes: usize) {
        if let Some(s) = self.shard(client) {
            s.net_output_bytes
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Commands run.
    pub fn commands_processed(&self) -> u64 {
        sum(self
            .shards
            .iter()
            .map(|s| s.commands.load(Ordering::Relaxed)))
    }

    /// Bytes read from clients.
    pub fn net_input_bytes(&self) -> u64 {
        sum(self
            .shards
            .iter()
            .map(|s| s.net_input_bytes.load(Ordering::Relaxed)))
    }

    /// Bytes written to clients.
    pub fn net_output_bytes(&self) -> u64 {
        sum(self
            .shards
            .iter()
            .map(|s| s.net_output_bytes.load(Ordering::Relaxed)))
    }

    /// `(name, calls, usec, failed)` for every command called at least once.
    pub fn per_command(&self) -> Vec<(&'static str, u64, u64, u64)> {
        let slot = |v: fn(&StatShard) -> &[AtomicU64], i: usize| {
            sum(self
                .shards
                .iter()
                .filter_map(|s| v(s).get(i))
                .map(|a| a.load(Ordering::Relaxed)))
        };
        TABLE
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let calls = slot(|s| &s.calls, i);
                (calls > 0).then(|| {
                    (
                        e.spec.name,
                        calls,
                        slot(|s| &s.usec, i),
                        slot(|s| &s.failed, i),
                    )
                })
            })
            .collect()
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for h in self.latency.iter() {
            h.reset();
        }
        for c in [
            &self.connections_received,
            &self.rejected_connections,
            &self.expired_keys,
            &self.auth_failures,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        for shard in self.shards.iter() {
            for c in [
                &shard.commands,
                &shard.keyspace_hits,
                &shard.keyspace_misses,
                &shard.net_input_bytes,
                &shard.net_output_bytes,
            ] {
                c.store(0, Ordering::Relaxed);
            }
            for c in shard
                .calls
                .iter()
                .chain(shard.usec.iter())
                .chain(shard.failed.iter())
            {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// Server-side SCAN cursors: id → last key returned, bounded, oldest evicted first.
#[derive(Default)]
pub struct ScanCursors {
    next_id: u64,
    entries: HashMap<u64, (u8, bytes::Bytes)>,
    order: std::collections::VecDeque<u64>,
}

impl ScanCursors {
    /// Remembers where a scan of `db` stopped; returns the cursor to hand out (never 0).
    pub fn insert(&mut self, db: u8, last_key: bytes::Bytes) -> u64 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        if self.order.len() >= SCAN_CURSORS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
        self.entries.insert(id, (db, last_key));
        self.order.push_back(id);
        id
    }

    /// Where cursor `id` stopped, if it is still remembered and belongs to `db`.
    pub fn get(&self, db: u8, id: u64) -> Option<bytes::Bytes> {
        self.entries
            .get(&id)
            .filter(|(d, _)| *d == db)
            .map(|(_, k)| k.clone())
    }
}

/// Everything connections share.
pub struct Shared {
    /// The engine.
    pub engine: Engine,
    /// Live configuration (CONFIG SET writes it).
    pub config: Arc<RwLock<Config>>,
    /// Recovery, WAL and checkpoints; replies to writes wait on its durable position.
    pub persistence: Persistence,
    /// Connected clients.
    pub clients: Mutex<HashMap<ClientId, Arc<ClientHandle>>>,
    next_client_id: AtomicU64,
    /// Counters.
    pub stats: Stats,
    /// SCAN cursor table.
    pub cursors: Mutex<ScanCursors>,
    shutdown: watch::Sender<bool>,
    /// When the server started.
    pub started: Instant,
    /// Unix time of the last save (LASTSAVE).
    pub lastsave_unix: AtomicU64,
    /// The port actually listened on.
    pub port: u16,
    /// SLOWLOG.
    pub slowlog: crate::slowlog::SlowLog,
    /// LATENCY.
    pub latency: crate::latency::LatencyMonitor,
    /// The SSD tier's io_uring reader, started at the first miss that can use it; `None`
    /// inside where the kernel refused a ring (misses then read on blocking threads).
    uring: std::sync::OnceLock<Option<txn::Uring>>,
}

impl Shared {
    /// Server state around `engine`; `port` is what INFO reports.
    pub fn new(
        engine: Engine,
        config: Arc<RwLock<Config>>,
        persistence: Persistence,
        port: u16,
    ) -> Arc<Shared> {
        let (shutdown, _) = watch::channel(false);
        engine.set_memory_config(config.read().memory_config());
        engine.set_compaction_config(config.read().compaction_config());
        engine.set_snapshot_limits(config.read().snapshot_limits());
        let slowlog = crate::slowlog::SlowLog::new();
        let stats = Stats::new();
        {
            let c = config.read();
            slowlog.configure(c.slowlog_log_slower_than, c.slowlog_max_len as usize);
            stats
                .latency_tracking
                .store(c.latency_tracking, Ordering::Relaxed);
        }
        let latency = crate::latency::LatencyMonitor::default();
        latency.set_threshold_ms(config.read().latency_monitor_threshold_ms);
        let used = engine.memory_stats().used_bytes;
        stats.used_memory_startup.store(used, Ordering::Relaxed);
        stats.used_memory_peak.store(used, Ordering::Relaxed);
        Arc::new(Shared {
            engine,
            config,
            persistence,
            clients: Mutex::new(HashMap::new()),
            next_client_id: AtomicU64::new(1),
            stats,
            cursors: Mutex::new(ScanCursors::default()),
            shutdown,
            started: Instant::now(),
            lastsave_unix: AtomicU64::new(unix_secs()),
            port,
            slowlog,
            latency,
            uring: std::sync::OnceLock::new(),
        })
    }

    /// The SSD tier's io_uring reader (started on first use), or `None` where the kernel has
    /// no ring for us; the log says which at the start.
    pub fn uring(&self) -> Option<&txn::Uring> {
        self.uring
            .get_or_init(|| match txn::Uring::start() {
                Ok(ring) => {
                    tracing::info!("SSD tier reads through io_uring");
                    Some(ring)
                }
                Err(error) => {
                    tracing::warn!(%error, "no io_uring: SSD tier reads on blocking threads");
                    None
                }
            })
            .as_ref()
    }

    /// Whether the io_uring reader runs (INFO), without starting it.
    pub fn uring_running(&self) -> bool {
        matches!(self.uring.get(), Some(Some(_)))
    }

    /// A fresh client id.
    pub fn next_client_id(&self) -> ClientId {
        ClientId(self.next_client_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Requests a graceful shutdown (SHUTDOWN command).
    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that turns `true` when shutdown starts.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Number of connected clients.
    pub fn connected_clients(&self) -> usize {
        self.clients.lock().len()
    }
}

/// Unix time in seconds.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Serves clients on `listener` until `shutdown` resolves or a client sends SHUTDOWN; then
/// stops accepting, lets connections finish their in-flight batch, and returns.
pub async fn run(
    listener: TcpListener,
    engine: Engine,
    config: Arc<RwLock<Config>>,
    shutdown: impl Future,
) -> std::io::Result<()> {
    run_with_durability(listener, engine, config, Persistence::default(), shutdown).await
}

/// [`run`], with replies held back until the WAL position they depend on is durable.
pub async fn run_with_durability(
    listener: TcpListener,
    engine: Engine,
    config: Arc<RwLock<Config>>,
    persistence: Persistence,
    shutdown: impl Future,
) -> std::io::Result<()> {
    run_listeners(vec![listener], engine, config, persistence, shutdown).await
}

/// At most one "accept failed" line per this interval (the others are counted in the next).
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// [`run_with_durability`] on several listeners at once (`bind 127.0.0.1 ::1`), all sharing
/// one client registry, `maxclients` and stats.
pub async fn run_listeners(
    listeners: Vec<TcpListener>,
    engine: Engine,
    config: Arc<RwLock<Config>>,
    persistence: Persistence,
    shutdown: impl Future,
) -> std::io::Result<()> {
    let port = match listeners.first() {
        Some(l) => l.local_addr()?.port(),
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no listener",
            ))
        }
    };
    let metrics_ips: Vec<std::net::IpAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.ip())
        .collect();
    let shared = Shared::new(engine, config, persistence, port);
    // Aborted when dropped, at the end of this function.
    let _metrics = start_metrics(&shared, &metrics_ips).await?;
    let mut shutdown_rx = shared.shutdown_signal();
    let background = tokio::spawn(background_tasks(shared.clone()));
    let compactor_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let compactor = spawn_compactor(shared.engine.clone(), Arc::clone(&compactor_stop));
    let schedule = tokio::spawn(crate::persistence::schedule(shared.clone()));
    let (accepted_tx, mut accepted_rx) = tokio::sync::mpsc::channel(ACCEPT_QUEUE_MAX);
    let mut acceptors = JoinSet::new();
    for listener in listeners {
        let accepted_tx = accepted_tx.clone();
        acceptors.spawn(async move {
            let mut logged: Option<std::time::Instant> = None;
            let mut suppressed = 0u64;
            loop {
                match listener.accept().await {
                    Ok(pair) => {
                        if accepted_tx.send(pair).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning, and log once per
                        // interval with how many were left out (it was 100 lines a second).
                        let now = std::time::Instant::now();
                        if logged.is_none_or(|t| now.duration_since(t) >= ACCEPT_ERROR_LOG_INTERVAL)
                        {
                            tracing::warn!(suppressed, "accept failed: {e}");
                            logged = Some(now);
                            suppressed = 0;
                        } else {
                            suppressed += 1;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    drop(accepted_tx);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = shutdown_rx.changed() => break,
            accepted = accepted_rx.recv() => {
                let Some((stream, addr)) = accepted else { break };
                shared.stats.connections_received.fetch_add(1, Ordering::Relaxed);
                if let Some(rejection) = admission(&shared, &addr) {
                    shared.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(async move {
                        let mut stream = stream;
                        let _ = stream.write_all(rejection.as_bytes()).await;
                    });
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let laddr = stream.local_addr().unwrap_or(addr);
                let id = shared.next_client_id();
                let handle = Arc::new(ClientHandle::new(id, addr, laddr));
                shared.clients.lock().insert(id, handle.clone());
                let shared = shared.clone();
                connections.spawn(async move {
                    crate::connection::serve(stream, handle, &shared).await;
                    shared.clients.lock().remove(&id);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    tracing::info!("shutting down: no longer accepting connections");
    shared.request_shutdown();
    // Stop accepting: the listeners close with their tasks.
    acceptors.abort_all();
    drop(accepted_rx);
    drain_connections(&mut connections, SHUTDOWN_GRACE, SHUTDOWN_ABORT_GRACE).await;
    background.abort();
    schedule.abort();
    compactor_stop.store(true, Ordering::Relaxed);
    if let Some(thread) = compactor {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    tracing::info!("all connections closed");
    Ok(())
}

/// Waits up to `grace` for `connections` to finish, then aborts the rest and waits up to
/// `abort_grace` for them to stop; returns how many were left running. An abort takes effect
/// only when a task next yields, and one stuck in a long command (a KEYS that spun for
/// minutes, issue #13 item 3) never does: shutdown leaves it behind rather than waiting for
/// it, and `main` then makes the WAL durable and exits without joining the runtime's threads.
pub async fn drain_connections(
    connections: &mut JoinSet<()>,
    grace: Duration,
    abort_grace: Duration,
) -> usize {
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_ok() {
        return 0;
    }
    // A client that never reads its replies must not keep the server up forever.
    tracing::warn!(
        "closing {} connections that did not finish within {grace:?}",
        connections.len()
    );
    connections.abort_all();
    let stopped = tokio::time::timeout(abort_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if stopped.is_ok() {
        return 0;
    }
    let stuck = connections.len();
    tracing::warn!(
        "{stuck} connections are still running a command {abort_grace:?} after being closed; \
         shutting down without them (nothing they commit from now on is acknowledged)"
    );
    // Detached: dropping the set must not wait for them either.
    connections.detach_all();
    stuck
}

/// Redis's admission checks: maxclients, then protected mode.
fn admission(shared: &Shared, addr: &SocketAddr) -> Option<String> {
    let config = shared.config.read();
    if shared.connected_clients() as u64 >= config.maxclients {
        return Some(format!("-{}\r\n", crate::cmd::CmdError::MaxClients));
    }
    let bound_beyond_loopback = config
        .bind
        .iter()
        .any(|b| !(b == "127.0.0.1" || b == "::1" || b == "localhost" || b == "-::1"));
    if config.protected_mode
        && config.requirepass.is_none()
        && bound_beyond_loopback
        && !addr.ip().is_loopback()
    {
        return Some(format!("-{}\r\n", crate::cmd::CmdError::Denied));
    }
    None
}

/// Compaction and giving memory back, on a thread of its own (each step is short, but a step
/// that evacuates pages copies values and is better off the async workers): a paced
/// compaction step every [`COMPACT_TICK_INTERVAL`] (`Engine::compact_tick`), and once the
/// dataset (index nodes and live values) has shrunk by a quarter and 16 MiB since the last
/// time, for the next five
/// seconds, once a second, the hash index's oversized shards shrink, the empty value pages
/// kept for reuse go back to the OS but for a few, and glibc hands its free heap pages back, so RSS follows a dataset that shrinks (a FLUSHALL, mass expiry,
/// eviction). `None` if the thread
/// could not be started (compaction then does not run; the server still works).
fn spawn_compactor(
    engine: Engine,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let started = std::thread::Builder::new()
        .name("tierkv-compact".into())
        .spawn(move || {
            // The dataset, not what it costs: index nodes and live values. A checkpoint's end
            // lets GC free what its snapshot pinned, a large drop of `used_memory` that needs
            // no trim (the allocator reuses it), and trimming a large heap stalls every thread
            // that allocates meanwhile (glibc holds each arena's lock while it walks it).
            let dataset = |m: txn::MemoryStats| m.index_bytes + m.value_bytes;
            let mut trimmed_at = dataset(engine.memory_stats());
            let mut last_check = std::time::Instant::now();
            // Trims still to do after a drop: frees reach glibc over the next seconds (GC
            // removes keys in batches, the epoch collector destroys them later).
            let mut follow_ups = 0;
            while !stop.load(Ordering::Relaxed) {
                engine.compact_tick();
                // Under `maxmemory-policy spill`: cold value pages out to SSD (`tier.rs`).
                engine.tier_tick();
                if last_check.elapsed() >= Duration::from_secs(1) {
                    last_check = std::time::Instant::now();
                    let size = dataset(engine.memory_stats());
                    if size < trimmed_at - trimmed_at / 4 && trimmed_at - size > 16 << 20 {
                        follow_ups = 5;
                    }
                    if follow_ups > 0 {
                        follow_ups -= 1;
                        engine.release_memory();
                        release_free_heap();
                        trimmed_at = size;
                    } else {
                        // Follow growth, so the next drop is measured from the peak since.
                        trimmed_at = trimmed_at.max(size);
                    }
                }
                std::thread::sleep(COMPACT_TICK_INTERVAL);
            }
        });
    match started {
        Ok(thread) => Some(thread),
        Err(e) => {
            tracing::warn!("compaction thread not started: {e}");
            None
        }
    }
}

/// Binds the Prometheus endpoint (`metrics-port`, off at 0) on the server's addresses and
/// serves it (`metrics.rs`); the returned tasks end with the server.
async fn start_metrics(
    shared: &Arc<Shared>,
    ips: &[std::net::IpAddr],
) -> std::io::Result<JoinSet<()>> {
    let mut tasks = JoinSet::new();
    let port = shared.config.read().metrics_port;
    if port == 0 {
        return Ok(tasks);
    }
    for ip in ips {
        let listener = TcpListener::bind((*ip, port))
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("metrics-port {ip}:{port}: {e}")))?;
        tracing::info!(
            "Prometheus metrics on http://{}/metrics",
            listener.local_addr()?
        );
        tasks.spawn(crate::metrics::serve(listener, Arc::clone(shared)));
    }
    Ok(tasks)
}

/// Asks glibc to give the free memory in its heaps back to the OS (`malloc_trim`: it advises
/// away free pages anywhere in each arena, not only at the top, which plain `free` does).
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only inspects and releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Deletes expired keys in batches of [`EXPIRE_TICK_KEYS_MAX`] (one commit each) until none is
/// due (`Engine::expiry_pending`), or this thread has used `budget` of CPU, or twice `budget`
/// of wall time has passed; returns how many it deleted. At least one batch runs.
///
/// CPU time, not wall time: on a core the connections keep busy, the scheduler gives this
/// thread about half of the wall time, and a wall-clock budget got a quarter of what it was
/// meant to (140 K keys/s in a 1 M-key burst instead of ~280 K). It yields between batches
/// (each ~0.2 ms) so a connection's request waits for one batch at most, not the tick.
pub fn expire_for(engine: &Engine, budget: Duration) -> usize {
    let started = std::time::Instant::now();
    let cpu_started = thread_cpu_time();
    let mut removed = 0;
    loop {
        let n = engine.expire_tick(EXPIRE_TICK_KEYS_MAX);
        removed += n;
        let cpu = thread_cpu_time().saturating_sub(cpu_started);
        if cpu >= budget || started.elapsed() >= budget * 2 || (n == 0 && !engine.expiry_pending())
        {
            return removed;
        }
        std::thread::yield_now();
    }
}

/// CPU time the calling thread has used (zero where it cannot be read: the wall-time cap
/// then bounds the work).
fn thread_cpu_time() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the two fields of `ts`, a valid local.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return Duration::new(
                u64::try_from(ts.tv_sec).unwrap_or(0),
                u32::try_from(ts.tv_nsec).unwrap_or(0),
            );
        }
    }
    Duration::ZERO
}

async fn background_tasks(shared: Arc<Shared>) {
    let mut expire = tokio::time::interval(EXPIRE_TICK_INTERVAL);
    let mut gc = tokio::time::interval(GC_INTERVAL);
    let mut fsyncs_seen = 0u64;
    let mut sample = tokio::time::interval(INSTANTANEOUS_INTERVAL);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = sample.tick() => {
                shared.stats.sample();
                let used = shared.engine.memory_stats().used_bytes;
                shared.stats.used_memory_peak.fetch_max(used, Ordering::Relaxed);
                // The WAL's fsyncs for LATENCY: the last one's time, once per new fsync seen.
                if let Some(wal) = shared.persistence.durability.as_ref().and_then(|d| d.wal()) {
                    let stats = wal.stats();
                    if stats.fsyncs != fsyncs_seen {
                        fsyncs_seen = stats.fsyncs;
                        shared.latency.record("wal-fsync", Duration::from_micros(stats.last_fsync_micros));
                    }
                }
            }
            _ = expire.tick() => {
                // Off the async workers, as GC: batches of deletes while keys keep expiring,
                // for at most a quarter of the interval (Redis's active expiry takes up to 25 %
                // of the CPU the same way). One batch a tick capped expiry at 20 K keys/s: a
                // million keys due at once took almost a minute to go (issue #13 item 5).
                let engine = shared.engine.clone();
                let started = Instant::now();
                let removed = tokio::task::spawn_blocking(move || expire_for(&engine, EXPIRE_TICK_BUDGET))
                    .await
                    .unwrap_or(0);
                shared.latency.record("expire-cycle", started.elapsed());
                shared.stats.expired_keys.fetch_add(removed as u64, Ordering::Relaxed);
            }
            _ = gc.tick() => {
                // Each call is bounded; keep going while it finds garbage so reclamation keeps
                // up with the write rate, off the async workers. Then the snapshot limits
                // (`snapshot-max-age`, `snapshot-max-pinned-memory`): after GC, so the
                // pinned-memory check sees what GC could not free; what an aborted TXN pinned
                // goes at the next tick.
                let engine = shared.engine.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for _ in 0..GC_CALLS_PER_TICK_MAX {
                        let done = engine.gc();
                        if done.caught_up
                            || (done.versions_unlinked == 0 && done.keys_removed == 0)
                        {
                            break;
                        }
                    }
                    engine.enforce_snapshot_limits();
                })
                .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #13 item 5: a tick keeps deleting while keys keep expiring, within its budget
    /// (one batch of 200 per 10 ms tick capped active expiry at 20 K keys/s); with no time
    /// left it still deletes one batch.
    #[test]
    fn one_expiry_tick_deletes_batch_after_batch_within_its_budget() {
        let clock = Arc::new(txn::ManualClock::new(1_000));
        let engine = Engine::new(txn::EngineConfig {
            clock: clock.clone(),
            ..txn::EngineConfig::default()
        });
        engine
            .run(txn::Isolation::Snapshot, |tx| {
                for i in 0..10_000u32 {
                    tx.put(0, format!("k{i}").as_bytes(), b"v", txn::Expiry::At(1_500))?;
                }
                Ok(())
            })
            .expect("load");
        clock.set(2_000);
        // No time left: one batch at most (here none: the wheel first moves the crowded slot
        // down a level, which an empty tick does not mean is finished).
        let first = expire_for(&engine, Duration::ZERO);
        assert!(first <= EXPIRE_TICK_KEYS_MAX, "{first}");
        assert!(engine.expiry_pending());
        // Time enough: every due key in one call.
        assert_eq!(
            expire_for(&engine, Duration::from_secs(600)),
            10_000 - first
        );
        assert_eq!(engine.dbsize(0), 0);
        assert!(!engine.expiry_pending());
        assert_eq!(expire_for(&engine, Duration::from_secs(600)), 0);
    }

    /// Issue #13 item 3: a connection task stuck in a command that never yields (here a
    /// blocking sleep in the task, as the exponential KEYS was) cannot hold shutdown: the
    /// drain gives up on it after the abort grace instead of waiting for ever.
    #[test]
    fn shutdown_leaves_a_connection_stuck_in_a_command_behind() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let stuck = runtime.block_on(async {
            let mut connections = JoinSet::new();
            connections.spawn(async {
                std::thread::sleep(Duration::from_secs(30));
            });
            // One that finishes when aborted, as an idle connection does.
            connections.spawn(std::future::pending::<()>());
            drain_connections(
                &mut connections,
                Duration::from_millis(50),
                Duration::from_millis(200),
            )
            .await
        });
        assert_eq!(stuck, 1, "only the task that never yields is left behind");
        // As `main` does: the runtime is not joined with the stuck thread.
        runtime.shutdown_timeout(Duration::from_millis(100));
    }

    fn shared_with(bind: &str, requirepass: Option<&str>, maxclients: u64) -> Arc<Shared> {
        let config = Config {
            bind: vec![bind.to_owned()],
            requirepass: requirepass.map(str::to_owned),
            maxclients,
            ..Config::default()
        };
        Shared::new(
            Engine::new(txn::EngineConfig::default()),
            Arc::new(RwLock::new(config)),
            Persistence::default(),
            0,
        )
    }

    #[test]
    fn protected_mode_refuses_remote_clients_only_without_a_password() {
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let open = shared_with("0.0.0.0", None, 10);
        assert!(admission(&open, &remote)
            .unwrap()
            .starts_with("-DENIED Running in protected mode"));
        assert_eq!(admission(&open, &local), None);
        assert_eq!(
            admission(&shared_with("0.0.0.0", Some("pw"), 10), &remote),
            None
        );
        assert_eq!(
            admission(&shared_with("127.0.0.1", None, 10), &remote),
            None
        );
        open.config.write().protected_mode = false;
        assert_eq!(admission(&open, &remote), None);
    }

    #[test]
    fn maxclients_is_checked_at_admission() {
        let shared = shared_with("127.0.0.1", None, 1);
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(admission(&shared, &addr), None);
        let client = Arc::new(ClientHandle::new(shared.next_client_id(), addr, addr));
        shared.clients.lock().insert(client.id, client);
        assert_eq!(
            admission(&shared, &addr).as_deref(),
            Some("-ERR max number of clients reached\r\n")
        );
    }

    #[test]
    fn scan_cursor_table_is_bounded() {
        let mut cursors = ScanCursors::default();
        let first = cursors.insert(0, bytes::Bytes::from_static(b"a"));
        assert_eq!(cursors.get(0, first).as_deref(), Some(&b"a"[..]));
        assert_eq!(cursors.get(1, first), None, "cursors are per database");
        for _ in 0..SCAN_CURSORS_MAX {
            cursors.insert(0, bytes::Bytes::from_static(b"b"));
        }
        assert_eq!(cursors.get(0, first), None, "oldest cursor forgotten");
        assert_eq!(cursors.entries.len(), SCAN_CURSORS_MAX);
    }
}
