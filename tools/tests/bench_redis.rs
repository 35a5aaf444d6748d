//! End-to-end: `tierkv-bench` against Debian's `redis-server` on a free port.
//!
//! These tests need `redis-server` on PATH; without it they print a notice and return (the
//! tool must work against any Redis-protocol server, and Redis is the reference). The lead's
//! run against tierkv-server lives with the server's tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("NOTICE: redis-server not found on PATH; skipping tierkv-bench end-to-end test");
    }
    found
}

fn start_redis() -> RedisServer {
    let dir = tempfile::tempdir().unwrap();
    // Ask the OS for a free port, then hand it to redis; retry if another process takes it.
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--dir", dir.path().to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = RedisServer {
            child,
            port,
            _dir: tempfile::tempdir().unwrap(),
        };
        // Wait for it to answer PING (startup only; nothing is asserted about time).
        for _ in 0..200 {
            if ping(port) {
                server._dir = dir;
                return server;
            }
            if server.child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    panic!("redis-server did not start");
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn send(port: u16, command: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(command).unwrap();
    let mut buf = vec![0u8; 256];
    let n = stream.read(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn bench(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_tierkv-bench"))
        .args(args)
        .args(["--progress", "never", "--json", "-"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Asserts the invariants every clean phase must meet.
fn assert_clean_phase(phase: &Value) {
    assert!(phase["completed"].as_u64().unwrap() > 0, "no ops: {phase}");
    assert_eq!(phase["failed"], 0, "errors: {}", phase["errors"]);
    assert_eq!(
        phase["mismatched"], 0,
        "mismatches: {}",
        phase["mismatch_samples"]
    );
    for op in phase["ops"].as_array().unwrap() {
        let p = [
            &op["p50_us"],
            &op["p90_us"],
            &op["p99_us"],
            &op["p999_us"],
            &op["max_us"],
        ]
        .map(f);
        assert!(
            p.windows(2).all(|w| w[0] <= w[1]),
            "percentiles out of order: {op}"
        );
        assert!(p[0] > 0.0, "{op}");
        assert!(op["count"].as_u64().unwrap() > 0);
    }
}

#[test]
fn mixed_workload_against_redis_is_clean() {
    if !redis_available() {
        return;
    }
    let redis = start_redis();
    let target = format!("127.0.0.1:{}", redis.port);
    let mix = "get=40,set=20,incr=5,mget=10,mset=5,multi=5,txn=5,rmw=5,scan=3,insert=2";
    let (code, report) = bench(&[
        "-t",
        &target,
        "-n",
        "2000",
        "--key-size",
        "12-40",
        "--value-size",
        "16-3000",
        "--mix",
        mix,
        "-c",
        "4",
        "-P",
        "4",
        "--threads",
        "2",
        "-d",
        "2",
    ]);
    assert_eq!(code, 0, "{report}");
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    assert_eq!(phases[0]["phase"], "load");
    let loaded = phases[0]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["op"] == "insert")
        .unwrap();
    assert_eq!(loaded["count"], 2000, "every key loaded once");
    for phase in phases {
        assert_clean_phase(phase);
    }
    let run = &phases[1];
    let kinds: Vec<&str> = run["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    for kind in [
        "get", "set", "incr", "mget", "mset", "multi", "txn", "rmw", "scan", "insert",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // The data really is on the server: the benchmark's keys exist.
    let dbsize = send(redis.port, b"*1\r\n$6\r\nDBSIZE\r\n");
    let count: u64 = std::str::from_utf8(&dbsize[1..dbsize.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    assert!(count >= 2000, "DBSIZE {count}");
}

#[test]
fn compare_runs_both_servers_open_loop_and_writes_outputs() {
    if !redis_available() {
        return;
    }
    let a = start_redis();
    let b = start_redis();
    let out = tempfile::tempdir().unwrap();
    let csv = out.path().join("result.csv");
    let plots = out.path().join("plots");
    let rate = 2000.0;
    let (code, report) = bench(&[
        "-t",
        &format!("127.0.0.1:{}", a.port),
        "--compare",
        &format!("127.0.0.1:{}", b.port),
        "-w",
        "b",
        "--dist",
        "uniform",
        "-n",
        "1000",
        "-c",
        "4",
        "-d",
        "1",
        "--rate",
        "2000",
        "--rounds",
        "2",
        "--csv",
        csv.to_str().unwrap(),
        "--plot-dir",
        plots.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{report}");
    let phases = report["phases"].as_array().unwrap();
    let order: Vec<(String, String)> = phases
        .iter()
        .map(|p| {
            (
                p["role"].as_str().unwrap().to_string(),
                p["phase"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("target", "load"),
        ("compare", "load"),
        ("target", "run"),
        ("compare", "run"),
        ("target", "run"),
        ("compare", "run"),
    ];
    assert_eq!(
        order,
        expected.map(|(r, p)| (r.to_string(), p.to_string())),
        "phases alternate"
    );
    for phase in phases {
        assert_clean_phase(phase);
        if phase["phase"] == "run" {
            // Open loop never runs ahead of its schedule: at most rate × elapsed (+1 per connection).
            let bound = rate * f(&phase["elapsed_s"]) + 4.0;
            assert!(
                phase["completed"].as_u64().unwrap() as f64 <= bound,
                "{phase}"
            );
        }
    }
    let totals = report["totals"].as_array().unwrap();
    assert_eq!(totals.len(), 2);
    let sum_runs: u64 = phases
        .iter()
        .filter(|p| p["role"] == "target" && p["phase"] == "run")
        .map(|p| p["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(
        totals[0]["completed"].as_u64().unwrap(),
        sum_runs,
        "totals merge the rounds"
    );
    let ratio = f(&report["comparison"]["ops_per_sec_ratio"]);
    assert!(ratio.is_finite() && ratio > 0.0, "{ratio}");

    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert!(csv_text.starts_with("server,role,phase,round"));
    assert!(
        csv_text.lines().filter(|l| l.contains(",run,")).count() >= 8,
        "{csv_text}"
    );
    for chart in ["throughput.svg", "latency.svg"] {
        let svg = std::fs::read_to_string(Path::new(&plots).join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{chart}"
        );
        // Each legend says which server is the target (the ratios' baseline) and which the
        // comparison (issue #13 item 12: the latency chart's did not).
        assert!(
            svg.contains("(target)") && svg.contains("(compare)"),
            "{chart} legend lacks the roles"
        );
    }
}

#[test]
fn lost_writes_are_reported_as_mismatches() {
    if !redis_available() {
        return;
    }
    let redis = start_redis();
    let port = redis.port;
    // Wipe the server while the benchmark runs: reads of keys it had written must be flagged.
    let saboteur = std::thread::spawn(move || {
        let started = Instant::now();
        // Wait until the load phase has written keys, then flush once.
        loop {
            let reply = send(port, b"*1\r\n$6\r\nDBSIZE\r\n");
            if reply != b":0\r\n" || started.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(send(port, b"*1\r\n$8\r\nFLUSHALL\r\n"), b"+OK\r\n");
    });
    let (code, report) = bench(&[
        "-t",
        &format!("127.0.0.1:{port}"),
        "-w",
        "c",
        "-n",
        "2000",
        "-c",
        "4",
        "-d",
        "2",
    ]);
    saboteur.join().unwrap();
    assert_eq!(code, 1, "mismatches make the exit status 1");
    let missing: u64 = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["mismatches"]["missing"].as_u64().unwrap_or(0))
        .sum();
    assert!(missing > 0, "{report}");
}

#[test]
fn a_server_that_stops_answering_is_reported_not_waited_for() {
    // A fake server: answers the preflight PING, then swallows every request unanswered.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut first = true;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            if std::mem::take(&mut first) {
                let mut ping = [0u8; 14];
                stream.read_exact(&mut ping).unwrap();
                assert_eq!(&ping, b"*1\r\n$4\r\nPING\r\n");
                stream.write_all(b"+PONG\r\n").unwrap();
                continue;
            }
            std::thread::spawn(move || {
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    let (code, report) = bench(&[
        "-t",
        &format!("127.0.0.1:{port}"),
        "--no-load",
        "-w",
        "c",
        "-n",
        "100",
        "-c",
        "2",
        "-d",
        "1",
        "--timeout-secs",
        "0.2",
    ]);
    assert_eq!(code, 1, "{report}");
    let run = &report["phases"][0];
    assert_eq!(run["phase"], "run");
    assert_eq!(run["completed"], 0);
    let timeouts = run["errors"]["timeout"].as_u64().unwrap();
    assert_eq!(
        run["failed"].as_u64().unwrap(),
        timeouts,
        "every failure is a timeout"
    );
    assert!(
        timeouts >= 2,
        "each connection timed out at least once: {run}"
    );
}

/// Issue #13 item 12: `--progress always` with stderr not a terminal writes whole lines (one a
/// second), as its help says, not `\r` redraws.
#[test]
fn progress_always_writes_lines_when_stderr_is_not_a_terminal() {
    if !redis_available() {
        return;
    }
    let redis = start_redis();
    let target = format!("127.0.0.1:{}", redis.port);
    let out = Command::new(env!("CARGO_BIN_EXE_tierkv-bench"))
        .args([
            "-t",
            &target,
            "-n",
            "500",
            "-d",
            "3",
            "--progress",
            "always",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains('\r'), "{stderr:?}");
    let lines = stderr.lines().filter(|l| l.contains("ops/s")).count();
    assert!(lines >= 2, "one line per second of the run: {stderr}");
}
