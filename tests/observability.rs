//! Observability end to end. The Prometheus endpoint (`--metrics-port`, `src/metrics.rs`):
//! off by default; on, `GET /metrics` answers the text exposition format with INFO's fields,
//! per-command calls, failures and latency histograms, and keys per database; anything else
//! gets an HTTP error. JSON logs (`--log-format json`): one object per line.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::TestServer;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One HTTP exchange: (status line, head, body).
fn http(port: u16, request: &[u8]) -> (String, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    // A server that answers before reading all of an oversized request may reset the
    // connection after its reply: keep what arrived.
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (status, head.to_owned(), body.to_owned())
}

/// Every sample line of `body`: (name with labels, value).
fn samples(body: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("not a number: {l}")),
            };
            let bare = name.split('{').next().unwrap();
            assert!(
                !bare.is_empty()
                    && bare
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
                "metric name: {l}"
            );
            (name.to_owned(), value)
        })
        .collect()
}

#[test]
fn metrics_describe_the_server_in_prometheus_text_format() {
    let port = free_port();
    let server = TestServer::with_args(&["--metrics-port", &port.to_string()]);
    let mut c = server.conn();
    for i in 0..20 {
        let () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .query(&mut c)
            .unwrap();
    }
    let _: Option<String> = redis::cmd("GET").arg("k1").query(&mut c).unwrap();
    let _: redis::RedisResult<i64> = redis::cmd("INCR").arg("k1").query(&mut c);
    let () = redis::cmd("SELECT").arg(3).query(&mut c).unwrap();
    let () = redis::cmd("SET")
        .arg("other")
        .arg("v")
        .query(&mut c)
        .unwrap();

    let (status, head, body) = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let samples = samples(&body);
    let value = |name: &str| {
        samples
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
    };
    assert_eq!(value("tierkv_commands_total{cmd=\"set\"}"), 21.0);
    assert_eq!(value("tierkv_commands_failed_total{cmd=\"incr\"}"), 1.0);
    assert_eq!(value("tierkv_db_keys{db=\"0\"}"), 20.0);
    assert_eq!(value("tierkv_db_keys{db=\"3\"}"), 1.0);
    assert!(value("tierkv_used_memory") > 0.0);
    assert!(value("tierkv_total_commands_processed") >= 24.0);
    assert_eq!(value("tierkv_connected_clients"), 1.0);
    // The log's status reads 1 (ok), as `aof_last_write_status:ok` in INFO.
    assert_eq!(value("tierkv_aof_last_write_status"), 1.0);
    // A histogram per command: cumulative buckets, +Inf equal to the count.
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|(n, _)| n.starts_with("tierkv_command_duration_seconds_bucket{cmd=\"set\""))
        .map(|(_, v)| *v)
        .collect();
    assert!(buckets.len() > 5);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.last().copied(), Some(21.0));
    assert_eq!(
        value("tierkv_command_duration_seconds_count{cmd=\"set\"}"),
        21.0
    );
    // Each family is described once.
    let mut types: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let all = types.len();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), all, "a family described twice");

    let (status, _, _) = http(port, b"GET /other HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _, _) = http(port, b"POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 20_000));
    let (status, _, _) = http(port, &huge);
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
    // The server is fine after all that.
    let _: Option<String> = redis::cmd("GET").arg("k1").query(&mut c).unwrap();
}

#[test]
fn no_metrics_port_unless_asked() {
    let server = TestServer::start();
    let mut c = server.conn();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("metrics-port")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, vec!["metrics-port".to_owned(), "0".to_owned()]);
}

/// `--log-format json`: every log line is one JSON object with a timestamp, a level and the
/// event's fields (the message among them), for log shippers.
#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tierkv-server"))
        .args(["--port", "0", "--log-format", "json", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let ready = line.contains("ready to accept connections");
        lines.push(line);
        if ready {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(object["timestamp"].is_string(), "{line}");
        assert!(object["level"].is_string(), "{line}");
        assert!(object["fields"]["message"].is_string(), "{line}");
    }
    assert!(lines.iter().any(|l| l.contains("\"wal_records\":0")));
}

/// MEMORY STATS / DOCTOR / PURGE / MALLOC-STATS and INFO's used_memory_peak family, as Redis
/// names them.
#[test]
fn memory_stats_doctor_and_purge() {
    let server = TestServer::start();
    let mut c = server.conn();
    let doctor: String = redis::cmd("MEMORY").arg("DOCTOR").query(&mut c).unwrap();
    assert!(
        doctor.starts_with("Hi Sam, this instance is empty or is using very little memory"),
        "{doctor}"
    );
    let value = vec![b'x'; 1000];
    for chunk in 0..10 {
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.cmd("SET")
                .arg(format!("k:{chunk}:{i}"))
                .arg(&value)
                .ignore();
        }
        pipe.query::<()>(&mut c).unwrap();
    }
    let stats: std::collections::HashMap<String, redis::Value> =
        redis::cmd("MEMORY").arg("STATS").query(&mut c).unwrap();
    let int = |name: &str| match stats.get(name) {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(int("keys.count"), 10_000);
    assert!(int("dataset.bytes") >= 10_000 * 1000);
    assert!(int("total.allocated") >= int("dataset.bytes"));
    assert_eq!(
        int("overhead.total"),
        int("total.allocated") - int("dataset.bytes")
    );
    assert!(int("peak.allocated") >= int("total.allocated"));
    assert!(int("keys.bytes-per-key") >= 1000);
    assert!(
        !fields_empty(stats.get("db.0")),
        "db.0's hash table overheads: {:?}",
        stats.get("db.0")
    );
    let doctor: String = redis::cmd("MEMORY").arg("DOCTOR").query(&mut c).unwrap();
    assert!(
        doctor.starts_with("Hi Sam, I can't find any memory issue")
            || doctor.starts_with("Sam, I detected a few issues"),
        "{doctor}"
    );
    let () = redis::cmd("MEMORY").arg("PURGE").query(&mut c).unwrap();
    let malloc: String = redis::cmd("MEMORY")
        .arg("MALLOC-STATS")
        .query(&mut c)
        .unwrap();
    assert_eq!(malloc, "Stats not supported for the current allocator");
    let info: String = redis::cmd("INFO").arg("memory").query(&mut c).unwrap();
    for field in [
        "used_memory_peak:",
        "used_memory_peak_human:",
        "used_memory_peak_perc:",
        "used_memory_overhead:",
        "used_memory_startup:",
        "used_memory_dataset:",
        "used_memory_dataset_perc:",
    ] {
        assert!(info.contains(field), "INFO memory has no {field}");
    }
    let error = redis::cmd("MEMORY")
        .arg("STATS")
        .arg("extra")
        .query::<redis::Value>(&mut c)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("wrong number of arguments for 'memory|stats' command"),
        "{error}"
    );
}

fn fields_empty(value: Option<&redis::Value>) -> bool {
    match value {
        Some(redis::Value::Array(fields)) => fields.is_empty(),
        Some(redis::Value::Map(fields)) => fields.is_empty(),
        _ => true,
    }
}

/// INFO stats counts the commits validation refused: a TXN that lost first-committer-wins
/// (`txn_conflicts`) and an EXEC whose WATCHed key changed (`txn_watch_failures`).
#[test]
fn refused_commits_are_counted() {
    let server = TestServer::start();
    let mut a = server.raw();
    let mut b = server.raw();
    let stat = |c: &mut common::RawClient, field: &str| -> u64 {
        let tierkv::resp::Frame::Bulk(text) = c.cmd(&["INFO", "stats"]) else {
            panic!("INFO is a bulk string")
        };
        let text = String::from_utf8(text.to_vec()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {field}"))
            .trim()
            .parse()
            .unwrap()
    };
    let conflicts = stat(&mut a, "txn_conflicts");
    let watch_failures = stat(&mut a, "txn_watch_failures");
    a.cmd(&["TXN", "BEGIN"]);
    a.cmd(&["SET", "k", "from a"]);
    b.cmd(&["SET", "k", "from b"]);
    let reply = a.cmd(&["TXN", "COMMIT"]);
    assert!(format!("{reply:?}").contains("CONFLICT"), "{reply:?}");
    assert_eq!(stat(&mut a, "txn_conflicts"), conflicts + 1);

    a.cmd(&["WATCH", "k"]);
    b.cmd(&["SET", "k", "changed"]);
    a.cmd(&["MULTI"]);
    a.cmd(&["SET", "k", "mine"]);
    let reply = a.cmd(&["EXEC"]);
    assert!(
        matches!(
            reply,
            tierkv::resp::Frame::Null | tierkv::resp::Frame::NullArray
        ),
        "{reply:?}"
    );
    assert_eq!(stat(&mut a, "txn_watch_failures"), watch_failures + 1);
    assert!(stat(&mut a, "txn_commit_ts") >= 2);
}
