//! The Prometheus endpoint (`metrics-port`, off by default): `GET /metrics` over plain HTTP on
//! its own port, answered with the text exposition format.
//!
//! Invariant: the metrics add nothing to the command path. Every figure is read at scrape time
//! from what INFO already keeps (relaxed atomics the commands bump anyway, the per-command
//! latency histograms, the engine's counters), so a scrape costs what an `INFO everything`
//! costs and a command costs the same with the endpoint on or off. Hence no metrics crate: a
//! recorder (`metrics` with its Prometheus exporter) would count every event a second time,
//! on the command path, to export what is already counted.
//!
//! What is exported: every numeric INFO field as a gauge `tierkv_<field>` (Redis's names, so
//! the meaning is INFO's: docs/OPERATIONS.md), `ok`/`err` statuses as 1/0; per command the
//! calls and failures (`tierkv_commands_total{cmd}`, `tierkv_commands_failed_total{cmd}`) and a
//! latency histogram (`tierkv_command_duration_seconds{cmd}`); per database the keys and
//! deadlines (`tierkv_db_keys{db}`, `tierkv_db_expires{db}`).
//!
//! The listener is bounded: one request at a time per connection, [`REQUEST_BYTES_MAX`] of
//! request head, [`METRICS_CONNECTIONS_MAX`] connections at once, [`REQUEST_TIMEOUT`] to send
//! the request.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::server::Shared;

/// Bytes of request head read before answering 431.
pub const REQUEST_BYTES_MAX: usize = 8 * 1024;
/// Scrape connections served at once; more wait in the listen backlog.
pub const METRICS_CONNECTIONS_MAX: usize = 16;
/// Time a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bounds of the latency histograms' buckets, in microseconds (Prometheus's `le`, in
/// seconds on the wire).
const LATENCY_BOUNDS_US: [u64; 16] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    1_000_000, 10_000_000,
];

/// INFO fields that only grow (exported as counters).
const COUNTERS: &[&str] = &[
    "total_connections_received",
    "total_commands_processed",
    "total_net_input_bytes",
    "total_net_output_bytes",
    "rejected_connections",
    "expired_keys",
    "evicted_keys",
    "keyspace_hits",
    "keyspace_misses",
    "snapshots_aborted",
    "gc_keys_removed",
    "gc_versions_unlinked",
    "gc_queue_dropped",
    "keyspace_op_waits",
    "wal_backlog_waits",
    "acl_access_denied_auth",
    "txn_commit_ts",
    "txn_conflicts",
    "txn_watch_failures",
    "lazyfreed_objects",
    "compaction_pages_evacuated",
    "compaction_values_moved",
    "compaction_bytes_moved",
    "compaction_bytes_reclaimed",
];

/// The exposition text of everything above.
pub fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let info = crate::cmd::server::info::render(shared, &["everything".to_owned()]);
    for line in info.lines() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        let value = match value.trim() {
            "ok" => 1.0,
            "err" => 0.0,
            other => match other.parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                _ => continue,
            },
        };
        if field.is_empty()
            || !field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            continue;
        }
        let kind = if COUNTERS.contains(&field) {
            "counter"
        } else {
            "gauge"
        };
        let _ = write!(
            out,
            "# TYPE tierkv_{field} {kind}\ntierkv_{field} {value}\n"
        );
    }
    let stats = &shared.stats;
    let per_command = stats.per_command();
    if !per_command.is_empty() {
        out.push_str("# HELP tierkv_commands_total Calls per command.\n# TYPE tierkv_commands_total counter\n");
        for (name, calls, _, _) in &per_command {
            let _ = writeln!(out, "tierkv_commands_total{{cmd=\"{name}\"}} {calls}");
        }
        out.push_str("# HELP tierkv_commands_failed_total Calls that replied with an error.\n# TYPE tierkv_commands_failed_total counter\n");
        for (name, _, _, failed) in &per_command {
            let _ = writeln!(
                out,
                "tierkv_commands_failed_total{{cmd=\"{name}\"}} {failed}"
            );
        }
    }
    let histograms = stats.latency_buckets(&LATENCY_BOUNDS_US);
    if !histograms.is_empty() {
        out.push_str("# HELP tierkv_command_duration_seconds Execution time per command (latency-tracking).\n# TYPE tierkv_command_duration_seconds histogram\n");
        for (name, cumulative, count) in &histograms {
            for (bound, n) in LATENCY_BOUNDS_US.iter().zip(cumulative) {
                let le = *bound as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "tierkv_command_duration_seconds_bucket{{cmd=\"{name}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "tierkv_command_duration_seconds_bucket{{cmd=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let usec = per_command
                .iter()
                .find(|(n, ..)| n == name)
                .map_or(0, |(_, _, usec, _)| *usec);
            let _ = writeln!(
                out,
                "tierkv_command_duration_seconds_sum{{cmd=\"{name}\"}} {}\ntierkv_command_duration_seconds_count{{cmd=\"{name}\"}} {count}",
                usec as f64 / 1e6
            );
        }
    }
    let dbs = shared.engine.stats().dbs;
    out.push_str("# HELP tierkv_db_keys Keys per database.\n# TYPE tierkv_db_keys gauge\n");
    for (db, d) in dbs.iter().enumerate().filter(|(_, d)| d.keys > 0) {
        let _ = writeln!(out, "tierkv_db_keys{{db=\"{db}\"}} {}", d.keys);
    }
    out.push_str("# HELP tierkv_db_expires Keys with a deadline per database.\n# TYPE tierkv_db_expires gauge\n");
    for (db, d) in dbs.iter().enumerate().filter(|(_, d)| d.keys > 0) {
        let _ = writeln!(out, "tierkv_db_expires{{db=\"{db}\"}} {}", d.expires);
    }
    out
}

/// Serves `listener` until the task is dropped (the server's shutdown aborts it).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(METRICS_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!("metrics endpoint: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &shared)).await;
        });
    }
}

/// Reads one request head and answers it; the connection closes after.
async fn answer(mut stream: tokio::net::TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= REQUEST_BYTES_MAX {
            let status = "431 Request Header Fields Too Large";
            reply(&mut stream, status, "text/plain", "").await?;
            // Read what the client still sends (briefly) so closing does not reset the
            // connection before it has read the reply.
            let drain = async { while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {} };
            let _ = tokio::time::timeout(Duration::from_millis(200), drain).await;
            return Ok(());
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") | ("HEAD", "/metrics") => {
            let body = render(shared);
            let body = if method == "HEAD" {
                String::new()
            } else {
                body
            };
            reply(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        ("GET", _) | ("HEAD", _) => {
            reply(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "not found: try /metrics\n",
            )
            .await
        }
        _ => reply(&mut stream, "405 Method Not Allowed", "text/plain", "").await,
    }
}

async fn reply(
    stream: &mut tokio::net::TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
