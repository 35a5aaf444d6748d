//! INFO [section ...]: server, clients, memory, persistence, stats, cpu, keyspace,
//! commandstats, latencystats.
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::cmd::conn::hello::REDIS_COMPAT_VERSION;
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;
use crate::server::Shared;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "info",
    -1,
    LOADING | STALE,
    "server",
    "Returns information and statistics about the server.",
);

/// Sections printed by plain `INFO` (commandstats only on request, like Redis).
const DEFAULT_SECTIONS: [&str; 7] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "cpu",
    "keyspace",
];

/// INFO.
pub struct Info {
    sections: Vec<String>,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let sections = args
        .rest()
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    Ok(Command::session(Info { sections }))
}

fn wanted(sections: &[String], name: &str) -> bool {
    if sections.is_empty() || sections.iter().any(|s| s == "default") {
        return DEFAULT_SECTIONS.contains(&name);
    }
    sections
        .iter()
        .any(|s| s == name || s == "all" || s == "everything")
}

/// Renders the INFO text for `sections`.
pub fn render(shared: &Shared, sections: &[String]) -> String {
    let mut s = String::new();
    let config = shared.config.read().clone();
    let uptime = shared.started.elapsed().as_secs();
    if wanted(sections, "server") {
        let _ = write!(
            s,
            "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\ntierkv_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nexecutable:tierkv-server\r\nio_threads_active:1\r\nserver_threads:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            shared.port,
            uptime,
            uptime / 86400,
            config.worker_threads(),
        );
    }
    if wanted(sections, "clients") {
        let _ = write!(
            s,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n\r\n",
            shared.connected_clients(),
            config.maxclients
        );
    }
    if wanted(sections, "memory") {
        memory(&mut s, shared);
    }
    if wanted(sections, "persistence") {
        persistence(&mut s, shared, &config);
    }
    if wanted(sections, "tiering") {
        tiering(&mut s, shared);
    }
    if wanted(sections, "stats") {
        let st = &shared.stats;
        let engine = shared.engine.stats();
        let rates = st.rates();
        let (hits, misses) = st.keyspace_lookups();
        let _ = write!(
            s,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\nsnapshots_aborted:{}\r\ngc_keys_removed:{}\r\ngc_versions_unlinked:{}\r\ngc_queue_entries:{}\r\ngc_queue_dropped:{}\r\ngc_low_watermark:{}\r\nkeyspace_op_in_progress:{}\r\nkeyspace_op_waits:{}\r\nkeyspace_op_waiting:{}\r\nwal_backlog_waits:{}\r\nacl_access_denied_auth:{}\r\ntxn_commit_ts:{}\r\ntxn_conflicts:{}\r\ntxn_watch_failures:{}\r\nlazyfreed_objects:{}\r\n\r\n",
            st.connections_received.load(Ordering::Relaxed),
            st.commands_processed(),
            rates.ops_per_sec.round() as u64,
            st.net_input_bytes(),
            st.net_output_bytes(),
            rates.input_kbps,
            rates.output_kbps,
            st.rejected_connections.load(Ordering::Relaxed),
            st.expired_keys.load(Ordering::Relaxed),
            engine.memory.evicted_keys,
            hits,
            misses,
            engine.snapshots_aborted,
            engine.gc_keys_removed,
            engine.gc_versions_unlinked,
            engine.gc_queued,
            engine.gc_queue_dropped,
            engine.low_watermark.0,
            u8::from(shared.engine.keyspace_op_running()),
            st.keyspace_op_waits.load(Ordering::Relaxed),
            st.keyspace_op_waiting.load(Ordering::Relaxed),
            st.wal_backlog_waits.load(Ordering::Relaxed),
            st.auth_failures.load(Ordering::Relaxed),
            engine.visible_ts.0,
            engine.conflicts,
            engine.watch_failures,
            engine.lazyfreed_objects,
        );
    }
    if wanted(sections, "cpu") {
        let (sys, user) = cpu_seconds(Who::Process);
        let (sys_children, user_children) = cpu_seconds(Who::Children);
        let _ = write!(
            s,
            "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:{sys_children:.6}\r\nused_cpu_user_children:{user_children:.6}\r\n\r\n",
        );
    }
    if wanted(sections, "latencystats") {
        // Redis 7's lines; its histogram is HDR, ours log-linear buckets (a value is its
        // bucket's floor, within 12.5 %), recorded without a lock.
        s.push_str("# Latencystats\r\n");
        for (name, p50, p99, p999) in shared.stats.latency_percentiles() {
            let _ = write!(
                s,
                "latency_percentiles_usec_{name}:p50={p50}.000,p99={p99}.000,p99.9={p999}.000\r\n"
            );
        }
        s.push_str("\r\n");
    }
    if wanted(sections, "commandstats") {
        s.push_str("# Commandstats\r\n");
        for (name, calls, usec, failed) in shared.stats.per_command() {
            let per_call = if calls > 0 {
                usec as f64 / calls as f64
            } else {
                0.0
            };
            let _ = write!(s, "cmdstat_{name}:calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls=0,failed_calls={failed}\r\n");
        }
        s.push_str("\r\n");
    }
    if wanted(sections, "keyspace") {
        s.push_str("# Keyspace\r\n");
        for (db, stats) in shared
            .engine
            .stats()
            .dbs
            .iter()
            .enumerate()
            .take(usize::from(config.databases))
        {
            if stats.keys > 0 {
                let _ = write!(
                    s,
                    "db{db}:keys={},expires={},avg_ttl=0\r\n",
                    stats.keys, stats.expires
                );
            }
        }
        s.push_str("\r\n");
    }
    while s.ends_with("\r\n\r\n") {
        s.truncate(s.len() - 2);
    }
    s
}

impl SessionCommand for Info {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        Ok(Frame::Verbatim {
            format: *b"txt",
            text: Bytes::from(render(cx.shared, &self.sections)),
        })
    }
}

/// Redis's `bytesToHuman`: `1023B`, `1.00K`, `1.50M`, ... (binary units, two decimals).
pub fn bytes_to_human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (1 << 50, "P"),
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    if bytes >= 1 << 60 {
        return format!("{bytes}B");
    }
    UNITS.iter().find(|(unit, _)| bytes >= *unit).map_or_else(
        || format!("{bytes}B"),
        |(unit, name)| format!("{:.2}{name}", bytes as f64 / *unit as f64),
    )
}

/// The process's resident set size (Linux `/proc/self/statm`; 0 where unavailable). Also used
/// by `benches/engine.rs` for bytes per key.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The memory section: Redis's fields (`used_memory` is the engine's accounting, see
/// `txn::memory`; the `allocator_*` fields describe the value page store, tierkv's allocator
/// for values), then the oldest snapshot (what keeps `mem_not_counted_for_evict` from being
/// freed, and who holds it: a `TXN`'s CLIENT ID, or `none` for a checkpoint), then tierkv's
/// breakdown of `used_memory` and compaction's progress.
/// The SSD tier (`maxmemory-policy spill`): where the value pages are and what the spill
/// file has done.
fn tiering(s: &mut String, shared: &Shared) {
    let engine = &shared.engine;
    let pages = engine.stats().pages;
    let spill = engine.spill_stats();
    let tier = engine.tier_info();
    let (file, direct) = spill.unwrap_or_default();
    let _ = write!(
        s,
        "# Tiering\r\ntiering_enabled:{}\r\ntiering_io_engine:{}\r\n\
         tiering_hit_ratio:{:.4}\r\ntiering_value_reads:{}\r\ntiering_value_misses:{}\r\n\
         tiering_misses_per_sec:{:.1}\r\ntiering_ssd_reads_per_sec:{:.1}\r\n\
         tiering_pages_written_per_sec:{:.1}\r\n\
         tiering_ssd_read_p50_usec:{}\r\ntiering_ssd_read_p99_usec:{}\r\n\
         tiering_ssd_write_p50_usec:{}\r\ntiering_ssd_write_p99_usec:{}\r\n\
         tiering_cmd_hit_p50_usec:{}\r\ntiering_cmd_hit_p99_usec:{}\r\n\
         tiering_cmd_miss_p50_usec:{}\r\ntiering_cmd_miss_p99_usec:{}\r\n\
         tiering_value_pages_in_ram:{}\r\ntiering_value_bytes_in_ram:{}\r\n\
         tiering_value_pages_on_ssd:{}\r\ntiering_ssd_bytes:{}\r\ntiering_ssd_live_bytes:{}\r\n\
         tiering_free_frames:{}\r\ntiering_frames_released:{}\r\n\
         tiering_frames_awaiting_release:{}\r\n\
         tiering_pages_written:{}\r\ntiering_ssd_reads:{}\r\ntiering_ssd_blocks_read:{}\r\n\
         tiering_corrupt_blocks:{}\r\ntiering_promotions:{}\r\ntiering_read_throughs:{}\r\ntiering_pages_loaded:{}\r\n\
         tiering_ssd_pages_compacted:{}\r\ntiering_ssd_bytes_moved:{}\r\n\
         tiering_fetched_ahead:{}\r\n\
         tiering_write_stalls:{}\r\ntiering_write_stall_usec:{}\r\n\r\n",
        u8::from(spill.is_some()),
        match spill {
            None => "none",
            Some(_) if direct && shared.uring_running() => "io_uring-reads-pwrite-odirect",
            Some(_) if direct => "pread-pwrite-odirect",
            Some(_) if shared.uring_running() => "io_uring-reads-pwrite-pagecache",
            Some(_) => "pread-pwrite-pagecache",
        },
        tier.hit_ratio,
        tier.value_reads,
        tier.value_misses,
        tier.misses_per_sec,
        tier.ssd_reads_per_sec,
        tier.pages_written_per_sec,
        file.read_p50_us,
        file.read_p99_us,
        file.write_p50_us,
        file.write_p99_us,
        shared.stats.tier_hit_latency.percentile_us(50.0),
        shared.stats.tier_hit_latency.percentile_us(99.0),
        shared.stats.tier_miss_latency.percentile_us(50.0),
        shared.stats.tier_miss_latency.percentile_us(99.0),
        pages.pages,
        pages.bytes_allocated,
        pages.spilled_pages,
        u64::from(file.slots_used) * txn::SPILL_SLOT_BYTES as u64,
        tier.ssd_live_bytes,
        pages.free_pages,
        pages.spilled_frames_released,
        tier.frames_awaiting_release,
        file.pages_written,
        file.reads,
        file.blocks_read,
        file.corrupt_blocks,
        tier.promotions,
        tier.read_throughs,
        tier.pages_loaded,
        tier.ssd_pages_compacted,
        tier.ssd_bytes_moved,
        tier.fetched_ahead,
        shared.stats.tier_write_stalls.load(Ordering::Relaxed),
        shared.stats.tier_write_stall_us.load(Ordering::Relaxed),
    );
}

fn memory(s: &mut String, shared: &Shared) {
    let m = shared.engine.memory_stats();
    let oldest = shared.engine.oldest_snapshot();
    let (holder, client_id) = match oldest.map(|o| o.holder) {
        Some(txn::SnapshotHolder::Client(id)) => ("txn", id.to_string()),
        Some(txn::SnapshotHolder::Checkpoint) => ("checkpoint", "none".to_owned()),
        None => ("none", "none".to_owned()),
    };
    let stats = shared.engine.stats();
    let pages = stats.pages;
    let compaction = shared.engine.compaction_stats();
    let defrag = shared.engine.compaction_config();
    let rss = rss_bytes();
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    // Redis's split: the dataset (key nodes, value pages held) and the rest of used_memory.
    let peak = shared
        .stats
        .used_memory_peak
        .load(Ordering::Relaxed)
        .max(m.used_bytes);
    let startup = shared.stats.used_memory_startup.load(Ordering::Relaxed);
    let dataset = m.index_bytes + m.value_held_bytes;
    let _ = write!(
        s,
        "# Memory\r\nused_memory:{}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\n\
         used_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\n\
         used_memory_peak_perc:{:.2}%\r\nused_memory_overhead:{}\r\nused_memory_startup:{startup}\r\n\
         used_memory_dataset:{dataset}\r\nused_memory_dataset_perc:{:.2}%\r\n\
         maxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\n\
         allocator_allocated:{}\r\nallocator_active:{}\r\nallocator_resident:{}\r\n\
         allocator_frag_ratio:{:.2}\r\nallocator_frag_bytes:{}\r\nallocator_rss_ratio:{:.2}\r\n\
         mem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\n\
         mem_not_counted_for_evict:{}\r\nmem_counted_for_evict:{}\r\n\
         active_defrag_running:{}\r\nlazyfree_pending_objects:{}\r\n\
         oldest_snapshot_holder:{holder}\r\noldest_snapshot_client_id:{client_id}\r\n\
         oldest_snapshot_age_sec:{}\r\noldest_snapshot_pinned_bytes:{}\r\n\
         used_memory_index:{}\r\nused_memory_hash_index:{}\r\nused_memory_values:{}\r\n\
         used_memory_versions:{}\r\nused_memory_expiry:{}\r\nused_memory_fixed:{}\r\n\
         value_pages_bytes:{}\r\nvalue_bytes_live:{}\r\nvalues_live:{}\r\n\
         value_pages_free:{}\r\nvalue_pages_released:{}\r\n\
         compaction_pages_evacuated:{}\r\ncompaction_values_moved:{}\r\n\
         compaction_bytes_moved:{}\r\ncompaction_bytes_reclaimed:{}\r\n\
         compaction_backlog_bytes:{}\r\ncompaction_retired_bytes:{}\r\n\r\n",
        m.used_bytes,
        bytes_to_human(m.used_bytes),
        bytes_to_human(rss),
        bytes_to_human(peak),
        100.0 * ratio(m.used_bytes, peak),
        m.used_bytes.saturating_sub(dataset),
        100.0 * ratio(dataset, m.used_bytes.saturating_sub(startup)),
        m.maxmemory_bytes,
        bytes_to_human(m.maxmemory_bytes),
        m.policy.name(),
        m.value_bytes,
        m.value_held_bytes,
        m.value_pages_bytes,
        ratio(m.value_held_bytes, m.value_bytes),
        m.value_held_bytes.saturating_sub(m.value_bytes),
        ratio(m.value_pages_bytes, m.value_held_bytes),
        ratio(rss, m.used_bytes),
        rss.saturating_sub(m.used_bytes),
        m.not_counted_for_evict_bytes,
        m.counted_for_evict_bytes,
        u8::from(defrag.enabled && m.compaction_backlog_bytes > 0),
        stats.lazyfree_pending_objects,
        oldest.map_or(0, |o| o.age_ms / 1000),
        oldest.map_or(0, |o| o.pinned_bytes),
        m.index_bytes,
        m.hash_index_bytes,
        m.value_held_bytes,
        m.version_bytes,
        m.expiry_bytes,
        m.overhead_bytes,
        m.value_pages_bytes,
        m.value_bytes,
        pages.values_live,
        pages.free_pages,
        pages.released_pages,
        compaction.pages_evacuated,
        compaction.values_moved,
        compaction.bytes_moved,
        compaction.bytes_reclaimed,
        m.compaction_backlog_bytes,
        compaction.retired_bytes,
    );
}

/// The persistence section: Redis's field names where the meaning carries over (a checkpoint
/// plays the RDB's part, the WAL the AOF's), then tierkv's own `wal_*`/`checkpoint_*` fields.
fn persistence(s: &mut String, shared: &Shared, config: &crate::config::Config) {
    let p = shared
        .persistence
        .durability
        .as_ref()
        .map(|d| d.stats())
        .unwrap_or_default();
    let status = |ok: bool| if ok { "ok" } else { "err" };
    let _ = write!(
        s,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:{}\r\n\
         rdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\n\
         rdb_last_bgsave_time_sec:{}\r\nrdb_saves:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:0\r\n\
         aof_last_write_status:{}\r\nappendfsync:{}\r\n",
        p.changes_since_checkpoint,
        u8::from(p.checkpoint_in_progress),
        shared.lastsave_unix.load(Ordering::Relaxed).max(p.last_checkpoint_unix_s),
        status(p.last_checkpoint_ok),
        p.last_checkpoint_ms.map_or(-1, |ms| (ms / 1000) as i64),
        p.checkpoints,
        u8::from(config.appendonly),
        status(p.wal_error.is_none()),
        config.get("appendfsync").unwrap_or_default(),
    );
    if let Some(w) = &p.wal {
        let _ = write!(
            s,
            "aof_current_size:{}\r\nwal_segments:{}\r\nwal_next_lsn:{}\r\nwal_durable_lsn:{}\r\n\
             wal_fsyncs:{}\r\nwal_last_fsync_latency_us:{}\r\nwal_write_errors:{}\r\nwal_fsync_errors:{}\r\n",
            w.log_bytes,
            w.segments,
            w.next_lsn.0,
            w.durable_lsn.0,
            w.fsyncs,
            w.last_fsync_micros,
            w.write_errors,
            w.fsync_errors,
        );
    }
    let _ = write!(
        s,
        "checkpoint_last_duration_ms:{}\r\n",
        p.last_checkpoint_ms.map_or(-1, |ms| ms as i64)
    );
    if let Some(r) = shared
        .persistence
        .durability
        .as_ref()
        .map(|d| d.recovery_report())
    {
        // Redis's field for keys loaded at startup (from the RDB; here the checkpoint), then
        // the rest of tierkv's recovery.
        let _ = write!(
            s,
            "rdb_last_load_keys_loaded:{}\r\nrecovery_wal_records:{}\r\nrecovery_duration_ms:{}\r\n",
            r.checkpoint_keys,
            r.wal_records,
            r.elapsed.as_millis(),
        );
    }
    if let Some(e) = &p.wal_error {
        let _ = write!(s, "wal_error:{}\r\n", e.replace(['\r', '\n'], " "));
    }
    s.push_str("\r\n");
}

/// Whose CPU time `cpu_seconds` reads.
enum Who {
    Process,
    Children,
}

/// `(system, user)` CPU seconds used (`getrusage`), as Redis's `used_cpu_*` fields.
fn cpu_seconds(who: Who) -> (f64, f64) {
    #[cfg(unix)]
    {
        // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let which = match who {
            Who::Process => libc::RUSAGE_SELF,
            Who::Children => libc::RUSAGE_CHILDREN,
        };
        // SAFETY: getrusage writes into `usage`, a valid local.
        if unsafe { libc::getrusage(which, &mut usage) } == 0 {
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            return (secs(usage.ru_stime), secs(usage.ru_utime));
        }
    }
    let _ = who;
    (0.0, 0.0)
}

#[cfg(test)]
mod tests {
    use super::bytes_to_human;

    #[test]
    fn human_sizes_match_redis() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(1024), "1.00K");
        assert_eq!(bytes_to_human(1_087_712), "1.04M");
        assert_eq!(bytes_to_human(3 << 30), "3.00G");
    }
}
