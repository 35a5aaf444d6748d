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

/// Debian's redis-server on a free port, stopped on drop.
struct RedisServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts redis-server on a free port. The port is free when chosen but may be taken
    /// before redis-server binds it (another test's server asks the kernel for any port), and
    /// then redis-server exits: so ready means "answers PING while our child still runs", and
    /// a child that exited is started again on another port.
    fn start() -> RedisServer {
        for _ in 0..10 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            // Owned by the guard from here: dropping it kills and waits for the process.
            let mut server = RedisServer {
                child,
                port,
                _dir: dir,
            };
            for _ in 0..500 {
                if server.child.try_wait().ok().flatten().is_some() {
                    break; // exited: the port was taken
                }
                let pid = server.child.id();
                let mut c = RawClientProbe::connect(port);
                if c.as_mut().is_some_and(|c| c.is_process(pid)) {
                    return server;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        panic!("redis-server did not start");
    }
}

/// A bare TCP probe: is the server on this port the process we started?
struct RawClientProbe(std::net::TcpStream);

impl RawClientProbe {
    fn connect(port: u16) -> Option<RawClientProbe> {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .ok()?;
        Some(RawClientProbe(stream))
    }

    /// Whether `INFO server` names process `pid` (another test's server, or tierkv, may
    /// answer on a port our redis-server failed to bind).
    fn is_process(&mut self, pid: u32) -> bool {
        use std::io::{Read, Write};
        if self.0.write_all(b"INFO server\r\n").is_err() {
            return false;
        }
        let wanted = format!("process_id:{pid}\r\n");
        let mut text = Vec::new();
        let mut chunk = [0u8; 4096];
        while text.len() < 64 * 1024 {
            match self.0.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&chunk[..n]),
            }
            if String::from_utf8_lossy(&text).contains(&wanted) {
                return true;
            }
            if text.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A redis-server and a tierkv server side by side, for reply-by-reply comparisons; `None`
/// (the test is skipped) where Debian's redis-server is not installed.
struct ServerPair {
    redis: RedisServer,
    tierkv: TestServer,
}

impl ServerPair {
    fn start() -> Option<ServerPair> {
        have("redis-server").then(|| ServerPair {
            redis: RedisServer::start(),
            tierkv: TestServer::start(),
        })
    }

    /// A client of tierkv and one of redis-server.
    fn clients(&self) -> (common::RawClient, common::RawClient) {
        (
            self.tierkv.raw(),
            common::RawClient::connect(self.redis.port),
        )
    }
}

/// A decimal text of varied shape (seeded xorshift): integers, fractions, exponents, signs.
fn float_text(state: &mut u64) -> String {
    let mut next = |n: u64| {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state % n
    };
    let sign = if next(3) == 0 { "-" } else { "" };
    let int: String = (0..next(12))
        .map(|_| char::from(b'0' + next(10) as u8))
        .collect();
    let frac: String = (0..next(21))
        .map(|_| char::from(b'0' + next(10) as u8))
        .collect();
    let int = if int.is_empty() { "0".to_owned() } else { int };
    let mut text = format!("{sign}{int}");
    if !frac.is_empty() {
        text = format!("{text}.{frac}");
    }
    if next(4) == 0 {
        text = format!("{text}e{}", next(61) as i64 - 30);
    }
    text
}

/// INCRBYFLOAT gives Redis's exact text (its `long double` noise included) and errors, checked
/// against a real redis-server on the same machine.
#[test]
fn incrbyfloat_matches_redis_server() {
    let Some(pair) = ServerPair::start() else {
        return;
    };
    let (mut ours, mut theirs) = pair.clients();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut compared = 0;
    for _ in 0..400 {
        let (a, b) = (float_text(&mut state), float_text(&mut state));
        for client in [&mut ours, &mut theirs] {
            assert_eq!(client.cmd(&["SET", "k", &a]), common::ok());
        }
        let want = theirs.cmd(&["INCRBYFLOAT", "k", &b]);
        assert_eq!(ours.cmd(&["INCRBYFLOAT", "k", &b]), want, "{a} + {b}");
        compared += 1;
    }
    for (a, b) in [("abc", "1"), ("1", "x"), ("inf", "1"), ("1e4932", "1e4932")] {
        for client in [&mut ours, &mut theirs] {
            assert_eq!(client.cmd(&["SET", "k", a]), common::ok());
        }
        let want = theirs.cmd(&["INCRBYFLOAT", "k", b]);
        assert_eq!(ours.cmd(&["INCRBYFLOAT", "k", b]), want, "{a} + {b}");
    }
    assert_eq!(compared, 400);
}

/// SET's options against Debian's redis-server: repeats, conflicts, a missing or bad expire,
/// and which error wins when several apply.
#[test]
fn set_option_parsing_matches_redis_server() {
    let Some(pair) = ServerPair::start() else {
        return;
    };
    let (mut ours, mut theirs) = pair.clients();
    let cases: &[&[&str]] = &[
        &["SET", "k", "v", "NX", "NX"],
        &["SET", "k", "v", "XX", "XX"],
        &["SET", "k", "v", "NX", "XX"],
        &["SET", "k", "v", "XX", "NX"],
        &["SET", "k", "v", "EX", "100", "EX", "200"],
        &["SET", "k", "v", "EX", "100", "PX", "200"],
        &[
            "SET",
            "k",
            "v",
            "PXAT",
            "99999999999999",
            "PXAT",
            "99999999999998",
        ],
        &["SET", "k", "v", "KEEPTTL", "KEEPTTL"],
        &["SET", "k", "v", "KEEPTTL", "EX", "10"],
        &["SET", "k", "v", "EX", "10", "KEEPTTL"],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "EX", "abc"],
        &["SET", "k", "v", "EX", "abc", "XX", "NX"],
        &["SET", "k", "v", "EX", "0"],
        &["SET", "k", "v", "EX", "-5", "GET"],
        &["SET", "k", "v", "GET", "GET"],
        &["SET", "k", "v", "BOGUS"],
        &["SET", "k", "v", "XX", "GET", "EX", "5", "EX", "7"],
    ];
    for case in cases {
        for client in [&mut ours, &mut theirs] {
            client.cmd(&["DEL", "k"]);
            client.cmd(&["SET", "k", "old"]);
        }
        let want = theirs.cmd(case);
        assert_eq!(ours.cmd(case), want, "{case:?}");
        let want = theirs.cmd(&["GET", "k"]);
        assert_eq!(ours.cmd(&["GET", "k"]), want, "{case:?} then GET");
    }
}

/// Inside MULTI, what Redis refuses while queuing (an unknown subcommand, a subcommand's wrong
/// arity, EXEC with arguments) against what it reports only at EXEC (a command's own argument
/// errors), compared with redis-server reply by reply.
#[test]
fn multi_queue_time_errors_match_redis_server() {
    let Some(pair) = ServerPair::start() else {
        return;
    };
    let (mut ours, mut theirs) = pair.clients();
    let blocks: &[&[&[&str]]] = &[
        &[&["OBJECT", "ENCODING"], &["SET", "a", "1"], &["EXEC"]],
        &[&["OBJECT", "FOO", "k"], &["EXEC"]],
        &[&["CONFIG", "GET"], &["EXEC"]],
        &[&["CLIENT", "NOSUCH"], &["EXEC"]],
        &[&["MSET", "a", "1", "b"], &["SET", "c", "2"], &["EXEC"]],
        &[&["SET", "k", "v", "EX", "abc"], &["INCR", "k"], &["EXEC"]],
        &[&["SET", "a", "1"], &["EXEC", "extra"], &["GET", "a"]],
    ];
    for block in blocks {
        for client in [&mut ours, &mut theirs] {
            client.cmd(&["FLUSHALL"]);
            assert_eq!(client.cmd(&["MULTI"]), common::ok());
        }
        for cmd in *block {
            let want = theirs.cmd(cmd);
            assert_eq!(ours.cmd(cmd), want, "{block:?} at {cmd:?}");
        }
        for client in [&mut ours, &mut theirs] {
            client.cmd(&["DISCARD"]);
        }
    }
}

/// GETEX's options against redis-server: a missing key answers nil before its expire is
/// checked, repeats and conflicts as in SET, PERSIST.
#[test]
fn getex_option_parsing_matches_redis_server() {
    let Some(pair) = ServerPair::start() else {
        return;
    };
    let (mut ours, mut theirs) = pair.clients();
    let cases: &[&[&str]] = &[
        &["GETEX", "missing", "EX", "0"],
        &["GETEX", "missing", "PX", "abc"],
        &["GETEX", "k", "EX", "0"],
        &["GETEX", "k", "PX", "abc"],
        &["GETEX", "k", "EX", "100", "EX", "200"],
        &["GETEX", "k", "EX", "100", "PX", "200"],
        &["GETEX", "k", "PERSIST", "PERSIST"],
        &["GETEX", "k", "PERSIST", "EX", "10"],
        &["GETEX", "k", "EX", "10", "PERSIST"],
        &["GETEX", "k", "EX"],
        &["GETEX", "k", "BOGUS"],
        &["GETEX", "k", "EX", "abc", "BOGUS"],
        &["GETEX", "k"],
    ];
    for case in cases {
        for client in [&mut ours, &mut theirs] {
            client.cmd(&["SET", "k", "v", "EX", "1000"]);
        }
        let want = theirs.cmd(case);
        assert_eq!(ours.cmd(case), want, "{case:?}");
        // The two servers answer a few ms apart: a TTL may differ by the second it crossed.
        use tierkv::resp::Frame;
        let (Frame::Integer(want), Frame::Integer(got)) =
            (theirs.cmd(&["TTL", "k"]), ours.cmd(&["TTL", "k"]))
        else {
            panic!("TTL is an integer")
        };
        assert!(
            got == want || (got > 0 && want > 0 && got.abs_diff(want) <= 1),
            "{case:?} then TTL: {got} against {want}"
        );
    }
}

/// MEMORY's subcommands where the reply does not depend on the allocator: DOCTOR on an
/// instance using little memory, PURGE, and the arity and subcommand errors.
#[test]
fn memory_subcommands_match_redis_server() {
    let Some(pair) = ServerPair::start() else {
        return;
    };
    let (mut ours, mut theirs) = pair.clients();
    let cases: &[&[&str]] = &[
        &["MEMORY", "DOCTOR"],
        &["MEMORY", "PURGE"],
        &["MEMORY", "STATS", "x"],
        &["MEMORY", "DOCTOR", "x"],
        &["MEMORY", "PURGE", "x"],
        &["MEMORY", "BOGUS"],
        &["MEMORY", "USAGE"],
        &["MEMORY", "USAGE", "missing"],
    ];
    for case in cases {
        let want = theirs.cmd(case);
        assert_eq!(ours.cmd(case), want, "{case:?}");
    }
}
