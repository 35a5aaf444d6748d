//! MEMORY USAGE key [SAMPLES count] | STATS | DOCTOR | HELP
//!
//! STATS gives Redis's fields from the engine's own accounting ([`report`]; INFO memory shows
//! the same figures): `dataset.bytes` is the key nodes and the value pages held,
//! `overhead.total` the rest of `used_memory` (hash index, old versions kept for snapshots,
//! the expiry schedule, fixed structures); `clients.normal` is the connections' buffers, which
//! `used_memory` does not count; a deadline lives in its key's version, so a database has no
//! second table (`overhead.hashtable.expires` is 0). DOCTOR reports, in Redis's words, what
//! tierkv can tell: a peak far above now, fragmentation, an old snapshot pinning memory, a
//! flush still being freed, `maxmemory` nearly reached. PURGE gives the free memory back now
//! (the hash index's empty space, spare value pages, glibc's free heap), as the server does
//! by itself after a large drop; MALLOC-STATS answers as Redis does on glibc.
//!
//! USAGE says what the key costs in `used_memory`, with the engine's own accounting
//! (`txn::memory::key_bytes`): the key's index node (skip-list entry and, past 22 bytes, the
//! key's heap copy), the value's bytes in the page store (with a small value's 8-byte record
//! header) and, with a TTL, its timing-wheel entry. A value on SSD
//! counts as in RAM: it is what the key needs when hot. Old versions kept for open snapshots
//! are not the key's and are not counted. `SAMPLES` is accepted for Redis's clients; a string
//! has nothing to sample.
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::args::parse_int;
use crate::cmd::spec::flags::*;
use crate::cmd::{peek_meta, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "memory",
    -2,
    READONLY,
    "server",
    "A container for memory diagnostics commands.",
)
.keys(2, 2, 1);

/// MEMORY.
pub enum Memory {
    /// MEMORY USAGE key.
    Usage(Bytes),
    /// MEMORY STATS.
    Stats,
    /// MEMORY DOCTOR.
    Doctor,
    /// MEMORY PURGE: give free memory back to the OS now.
    Purge,
    /// MEMORY MALLOC-STATS.
    MallocStats,
    /// MEMORY HELP.
    Help,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let raw = args.next_bytes()?;
    let sub = String::from_utf8_lossy(&raw).to_ascii_uppercase();
    match sub.as_str() {
        "HELP" if args.remaining() == 0 => Ok(Command::data(Memory::Help)),
        "STATS" if args.remaining() == 0 => Ok(Command::data(Memory::Stats)),
        "DOCTOR" if args.remaining() == 0 => Ok(Command::data(Memory::Doctor)),
        "PURGE" if args.remaining() == 0 => Ok(Command::data(Memory::Purge)),
        "MALLOC-STATS" if args.remaining() == 0 => Ok(Command::data(Memory::MallocStats)),
        "USAGE" if args.remaining() == 1 || args.remaining() == 3 => {
            let key = args.next_bytes()?;
            if let Some(option) = args.next_upper() {
                if option != "SAMPLES" {
                    return Err(CmdError::Syntax);
                }
                let n = parse_int(&args.next_bytes()?)?;
                if n < 0 {
                    return Err(CmdError::Syntax);
                }
            }
            Ok(Command::data(Memory::Usage(key)))
        }
        "USAGE" if args.remaining() == 0 => Err(CmdError::WrongArity("memory|usage".into())),
        "STATS" | "DOCTOR" | "PURGE" | "MALLOC-STATS" => Err(CmdError::WrongArity(format!(
            "memory|{}",
            sub.to_ascii_lowercase()
        ))),
        "USAGE" => Err(CmdError::Syntax),
        _ => Err(CmdError::UnknownSubcommand {
            cmd: "MEMORY",
            sub: String::from_utf8_lossy(&raw).into_owned(),
        }),
    }
}

impl DataCommand for Memory {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let key = match self {
            Memory::Usage(key) => key,
            Memory::Stats => return Ok(stats_frame(&report(cx.shared))),
            Memory::Purge => {
                cx.shared.engine.release_memory();
                crate::server::release_free_heap();
                return Ok(Frame::ok());
            }
            // Redis's answer under glibc's malloc.
            Memory::MallocStats => {
                return Ok(Frame::bulk("Stats not supported for the current allocator"))
            }
            Memory::Doctor => {
                return Ok(Frame::Verbatim {
                    format: *b"txt",
                    text: Bytes::from(doctor(&report(cx.shared))),
                })
            }
            Memory::Help => {
                let lines = [
                    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "DOCTOR",
                    "    Return memory problems reports.",
                    "MALLOC-STATS",
                    "    Return internal statistics report from the memory allocator.",
                    "PURGE",
                    "    Attempt to purge dirty pages for reclamation by the allocator.",
                    "STATS",
                    "    Return information about the memory usage of the server.",
                    "USAGE <key> [SAMPLES <count>]",
                    "    Return memory in bytes used by <key> and its value. Nested values are",
                    "    sampled up to <count> times (default: 5, 0 means sample all).",
                    "HELP",
                    "    Print this help.",
                ];
                return Ok(Frame::help(&lines));
            }
        };
        let Some(meta) = peek_meta(tx, cx, key)? else {
            return Ok(Frame::Null);
        };
        let bytes = txn::memory::key_bytes(key.len(), meta.len, meta.expire_at_ms.is_some());
        Ok(Frame::Integer(bytes as i64))
    }
}

/// What MEMORY STATS, MEMORY DOCTOR and INFO memory say of the server's memory, from the
/// engine's accounting (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct MemoryReport {
    /// Highest `used_memory` seen.
    pub peak: u64,
    /// `used_memory`.
    pub total: u64,
    /// `used_memory` when the server started serving.
    pub startup: u64,
    /// Connections' buffers (not in `used_memory`).
    pub clients: u64,
    /// `used_memory` less the dataset.
    pub overhead: u64,
    /// Key nodes and value pages held.
    pub dataset: u64,
    /// Keys in all databases.
    pub keys: u64,
    /// Per database with keys: (index, keys, hash index bytes).
    pub dbs: Vec<(usize, u64, u64)>,
    /// Process RSS.
    pub rss: u64,
    /// Live value bytes, page bytes held for them, page memory mapped (INFO's allocator_*).
    pub allocated: u64,
    /// See `allocated`.
    pub active: u64,
    /// See `allocated`.
    pub resident: u64,
    /// `maxmemory` (0: none).
    pub maxmemory: u64,
    /// Memory the oldest open snapshot pins, and its age in seconds.
    pub pinned: u64,
    /// See `pinned`.
    pub pinned_age_secs: u64,
    /// Keys of flushed databases not freed yet.
    pub lazyfree_pending: u64,
    /// Freed space in value pages beyond compaction's tolerance, plus old copies waiting.
    pub compaction_backlog: u64,
}

/// Gathers a [`MemoryReport`] (walks each populated database's hash shards once).
pub fn report(shared: &crate::server::Shared) -> MemoryReport {
    let engine = &shared.engine;
    let m = engine.memory_stats();
    let stats = engine.stats();
    let oldest = engine.oldest_snapshot();
    let clients: u64 = shared
        .clients
        .lock()
        .values()
        .map(|c| c.buffer_bytes())
        .sum();
    let dbs: Vec<(usize, u64, u64)> = stats
        .dbs
        .iter()
        .enumerate()
        .filter(|(_, d)| d.key_nodes > 0)
        .map(|(db, d)| (db, d.keys, engine.hash_index_bytes(db as u8)))
        .collect();
    let dataset = m.index_bytes + m.value_held_bytes;
    MemoryReport {
        peak: shared
            .stats
            .used_memory_peak
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(m.used_bytes),
        total: m.used_bytes,
        startup: shared
            .stats
            .used_memory_startup
            .load(std::sync::atomic::Ordering::Relaxed),
        clients,
        overhead: m.used_bytes.saturating_sub(dataset),
        dataset,
        keys: stats.dbs.iter().map(|d| d.keys).sum(),
        dbs,
        rss: super::info::rss_bytes(),
        allocated: m.value_bytes,
        active: m.value_held_bytes,
        resident: m.value_pages_bytes,
        maxmemory: m.maxmemory_bytes,
        pinned: oldest.map_or(0, |o| o.pinned_bytes),
        pinned_age_secs: oldest.map_or(0, |o| o.age_ms / 1000),
        lazyfree_pending: stats.lazyfree_pending_objects,
        compaction_backlog: m.compaction_backlog_bytes,
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// MEMORY STATS's reply: Redis 7's fields, in its order, where tierkv has the figure.
fn stats_frame(r: &MemoryReport) -> Frame {
    let int = |v: u64| Frame::Integer(i64::try_from(v).unwrap_or(i64::MAX));
    let name = |n: &str| Frame::bulk(n.to_owned());
    let grown = r.total.saturating_sub(r.startup);
    let mut pairs = vec![
        (name("peak.allocated"), int(r.peak)),
        (name("total.allocated"), int(r.total)),
        (name("startup.allocated"), int(r.startup)),
        (name("replication.backlog"), int(0)),
        (name("clients.slaves"), int(0)),
        (name("clients.normal"), int(r.clients)),
        (name("cluster.links"), int(0)),
        (name("lua.caches"), int(0)),
        (name("functions.caches"), int(0)),
    ];
    for &(db, _, hash) in &r.dbs {
        pairs.push((
            name(&format!("db.{db}")),
            Frame::Map(vec![
                (name("overhead.hashtable.main"), int(hash)),
                (name("overhead.hashtable.expires"), int(0)),
                (name("overhead.hashtable.slot-to-keys"), int(0)),
            ]),
        ));
    }
    pairs.extend([
        (name("overhead.total"), int(r.overhead)),
        (name("keys.count"), int(r.keys)),
        (
            name("keys.bytes-per-key"),
            int(grown.checked_div(r.keys).unwrap_or(0)),
        ),
        (name("dataset.bytes"), int(r.dataset)),
        (
            name("dataset.percentage"),
            Frame::Double(100.0 * ratio(r.dataset, grown.max(1))),
        ),
        (
            name("peak.percentage"),
            Frame::Double(100.0 * ratio(r.total, r.peak.max(1))),
        ),
        (name("allocator.allocated"), int(r.allocated)),
        (name("allocator.active"), int(r.active)),
        (name("allocator.resident"), int(r.resident)),
        (
            name("allocator-fragmentation.ratio"),
            Frame::Double(ratio(r.active, r.allocated)),
        ),
        (
            name("allocator-fragmentation.bytes"),
            int(r.active.saturating_sub(r.allocated)),
        ),
        (
            name("allocator-rss.ratio"),
            Frame::Double(ratio(r.resident, r.active)),
        ),
        (
            name("allocator-rss.bytes"),
            int(r.resident.saturating_sub(r.active)),
        ),
        (
            name("rss-overhead.ratio"),
            Frame::Double(ratio(r.rss, r.total)),
        ),
        (
            name("rss-overhead.bytes"),
            int(r.rss.saturating_sub(r.total)),
        ),
        (name("fragmentation"), Frame::Double(ratio(r.rss, r.total))),
        (
            name("fragmentation.bytes"),
            int(r.rss.saturating_sub(r.total)),
        ),
    ]);
    Frame::Map(pairs)
}

/// Below this `used_memory` DOCTOR has nothing to say (Redis's 5 MB).
const DOCTOR_MEMORY_MIN: u64 = 5 * 1024 * 1024;

/// MEMORY DOCTOR's text: Redis's openings, tierkv's findings.
pub fn doctor(r: &MemoryReport) -> String {
    if r.total < DOCTOR_MEMORY_MIN {
        return "Hi Sam, this instance is empty or is using very little memory, my issues \
                detector can't be used in these conditions. Please, leave for your mission on \
                Earth and fill it with some data. The new Sam and I will be back to our \
                programming as soon as I finished rebooting.\n"
            .to_owned();
    }
    let mut issues = Vec::new();
    if r.peak > r.total + r.total / 2 {
        issues.push(format!(
            " * Peak memory: In the past this instance used more than 150% the memory that is \
             currently using ({} against {} now). The allocator keeps some of it, so RSS can be \
             above used_memory; INFO memory's mem_fragmentation_ratio says how much.",
            super::info::bytes_to_human(r.peak),
            super::info::bytes_to_human(r.total)
        ));
    }
    let fragmentation = ratio(r.rss, r.total);
    if fragmentation > 1.4 && r.rss.saturating_sub(r.total) > 10 * 1024 * 1024 {
        issues.push(format!(
            " * High total RSS: This instance has a memory fragmentation and RSS overhead \
             greater than 1.4 ({fragmentation:.2}). Compaction of value pages (activedefrag) \
             has {} of freed space to reclaim; a shrinking dataset gives memory back over the \
             next seconds.",
            super::info::bytes_to_human(r.compaction_backlog)
        ));
    }
    if r.pinned > r.total / 10 && r.pinned > 1024 * 1024 {
        issues.push(format!(
            " * Old snapshot: The oldest open snapshot (a TXN or a checkpoint, {} s old) keeps \
             {} of old versions from being freed. End long transactions, or lower \
             snapshot-max-age / snapshot-max-pinned-memory.",
            r.pinned_age_secs,
            super::info::bytes_to_human(r.pinned)
        ));
    }
    if r.lazyfree_pending > 0 {
        issues.push(format!(
            " * Lazy free: {} keys of flushed databases are not freed yet (a snapshot older \
             than the flush may hold them).",
            r.lazyfree_pending
        ));
    }
    if r.maxmemory > 0 && r.total > r.maxmemory / 10 * 9 {
        issues.push(format!(
            " * Memory limit: used_memory ({}) is above 90% of maxmemory ({}).",
            super::info::bytes_to_human(r.total),
            super::info::bytes_to_human(r.maxmemory)
        ));
    }
    if r.clients > 200 * 1024 * 1024 {
        issues.push(format!(
            " * Big client buffers: The clients' buffers hold {} (see CLIENT LIST's qbuf and \
             omem).",
            super::info::bytes_to_human(r.clients)
        ));
    }
    if issues.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for \
                what occurs on this base.\n"
            .to_owned();
    }
    format!(
        "Sam, I detected a few issues in this Redis instance memory implants:\n\n{}\n\nI'm here to keep you safe, Sam. I want to help you.\n",
        issues.join("\n\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> MemoryReport {
        MemoryReport {
            peak: 100 << 20,
            total: 100 << 20,
            startup: 3 << 20,
            dataset: 90 << 20,
            rss: 110 << 20,
            ..MemoryReport::default()
        }
    }

    #[test]
    fn the_doctor_finds_nothing_wrong_in_a_healthy_instance() {
        assert_eq!(
            doctor(&busy()),
            "Hi Sam, I can't find any memory issue in your instance. I can only account for \
             what occurs on this base.\n"
        );
    }

    #[test]
    fn the_doctor_names_each_issue() {
        let report = MemoryReport {
            peak: 400 << 20,
            rss: 300 << 20,
            pinned: 50 << 20,
            pinned_age_secs: 42,
            lazyfree_pending: 7,
            maxmemory: 105 << 20,
            ..busy()
        };
        let text = doctor(&report);
        assert!(text.starts_with("Sam, I detected a few issues"), "{text}");
        for issue in [
            "Peak memory",
            "High total RSS",
            "Old snapshot",
            "42 s old",
            "Lazy free: 7 keys",
            "Memory limit",
        ] {
            assert!(text.contains(issue), "{issue} missing: {text}");
        }
        assert!(text.ends_with("I'm here to keep you safe, Sam. I want to help you.\n"));
    }

    #[test]
    fn an_instance_using_little_memory_gets_redis_s_answer() {
        let small = MemoryReport {
            total: 1 << 20,
            ..MemoryReport::default()
        };
        assert!(doctor(&small).starts_with("Hi Sam, this instance is empty"));
    }
}
