//! Interop with Debian's redis-tools: redis-cli and redis-benchmark run unchanged against
//! tierkv-server. Skipped with a notice if the binaries are absent (CI installs redis-tools).
mod common;

use std::process::Command;

use common::TestServer;

fn have(bin: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("NOTICE: {bin} not installed; skipping (apt-get install redis-tools)");
    }
    found
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

#[test]
fn redis_cli_runs_commands() {
    if !have("redis-cli") {
        return;
    }
    let server = TestServer::start();
    let p = server.port;
    assert_eq!(cli(p, &["PING"]), "PONG");
    assert_eq!(cli(p, &["SET", "k", "hello world"]), "OK");
    assert_eq!(cli(p, &["GET", "k"]), "hello world");
    assert_eq!(cli(p, &["INCR", "n"]), "1");
    assert_eq!(cli(p, &["MGET", "k", "n", "missing"]), "hello world\n1");
    assert_eq!(
        cli(p, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        cli(p, &["-3", "HELLO", "3"]).lines().next(),
        Some("server redis")
    );
    assert!(cli(p, &["INFO", "keyspace"]).contains("db0:keys=2"));
    assert_eq!(cli(p, &["--scan"]).lines().count(), 2);
    // Piped commands (redis-cli batches them like a pipeline).
    let mut child = Command::new("redis-cli")
        .arg("-p")
        .arg(p.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"SET a 1\nINCRBY a 41\nGET a\n",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n42\n42\n");
}

#[test]
fn redis_benchmark_completes_without_errors() {
    if !have("redis-benchmark") {
        return;
    }
    let server = TestServer::start();
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &server.port.to_string(),
            "-t",
            "set,get,incr,mset",
            "-n",
            "100000",
            "-q",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    for test in ["SET", "GET", "INCR", "MSET"] {
        assert!(
            stdout.contains(&format!("{test}:")) || stdout.contains(&format!("{test} (")),
            "{test} missing from:\n{stdout}"
        );
    }
    assert!(
        !stdout.to_lowercase().contains("error") && !stderr.to_lowercase().contains("error"),
        "{stdout}{stderr}"
    );
    let mut c = server.raw();
    assert!(
        matches!(
            c.cmd(&["GET", "counter:__rand_int__"]),
            tierkv::resp::Frame::Bulk(_)
        ),
        "INCR ran"
    );
}
