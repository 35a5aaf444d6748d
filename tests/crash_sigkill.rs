//! Crash test against the real server process: concurrent writers (SET, INCR, MULTI/EXEC pairs)
//! under `appendfsync always`, background checkpoints (BGSAVE) started at random moments, SIGKILL
//! at a random moment (so also during a checkpoint, or between its install and the WAL cut),
//! restart on the same data directory, and check that every acknowledged write is there (of this
//! round and, sampled, of every earlier one: those come back from a checkpoint), counters are
//! exact (the one command in flight at the kill may or may not have landed, never more) and no
//! transaction is half-applied.
//!
//! Compaction runs at its most eager (no threshold, no ignored bytes) while a churn writer
//! overwrites a few keys with 1–4 KB values, so values are relocated while checkpoints scan
//! and when the kill lands; the test checks that compaction did move values.
//!
//! `TIERKV_CRASH_ROUNDS` (default 3) sets the number of kill/restart rounds; docs/TESTING.md
//! describes the longer run. The kill moment comes from `TIERKV_SEED` when set.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::TestServer;
use rand::{Rng, SeedableRng};

const WRITERS: usize = 4;

/// What one writer had acknowledged when the server died.
#[derive(Debug, Default, Clone)]
struct Acked {
    /// Highest `i` whose `SET w:<t>:<i> <i>` got +OK (all lower ones did too).
    sets: Option<u64>,
    /// Last value INCR returned.
    counter: i64,
    /// Highest `i` whose MULTI/EXEC pair committed.
    pair: Option<u64>,
}

fn writer(port: u16, t: usize, round: u64, stop: Arc<AtomicBool>, mut acked: Acked) -> Acked {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return acked;
    };
    let Ok(mut con) = client.get_connection() else {
        return acked;
    };
    let base = round * 1_000_000;
    let mut i = base;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("w:{t}:{i}");
        let set: redis::RedisResult<String> = redis::cmd("SET").arg(&key).arg(i).query(&mut con);
        match set {
            Ok(ok) if ok == "OK" => acked.sets = Some(i),
            _ => break,
        }
        let incr: redis::RedisResult<i64> = redis::cmd("INCR")
            .arg(format!("counter:{t}"))
            .query(&mut con);
        match incr {
            Ok(n) => acked.counter = n,
            Err(_) => break,
        }
        let pair: redis::RedisResult<(String, String)> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(format!("pair:{t}:a"))
            .arg(i)
            .cmd("SET")
            .arg(format!("pair:{t}:b"))
            .arg(i)
            .query(&mut con);
        match pair {
            Ok(_) => acked.pair = Some(i),
            Err(_) => break,
        }
        i += 1;
    }
    acked
}

/// Starts a background checkpoint every 50–250 ms until `stop`; returns how many started.
fn checkpointer(port: u16, seed: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return 0;
    };
    let Ok(mut con) = client.get_connection() else {
        return 0;
    };
    let mut started = 0;
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(rng.gen_range(50..250)));
        // "already in progress" is fine; a dead server ends the loop.
        match redis::cmd("BGSAVE").query::<redis::Value>(&mut con) {
            Ok(_) => started += 1,
            Err(e) if e.kind() == redis::ErrorKind::ResponseError => {}
            Err(_) => break,
        }
    }
    started
}

/// Overwrites 50 keys with 1–4 KB values until `stop`, so pages fill with garbage and
/// compaction has live values to move out of them.
fn churner(port: u16, seed: u64, stop: Arc<AtomicBool>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return;
    };
    let Ok(mut con) = client.get_connection() else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        let value = "c".repeat(rng.gen_range(1_000..4_000));
        let key = format!("churn:{}", rng.gen_range(0..50));
        if redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query::<String>(&mut con)
            .is_err()
        {
            break;
        }
    }
}

/// A numeric field of `INFO persistence`.
fn info_field(server: &TestServer, name: &str) -> u64 {
    section_field(server, "persistence", name)
}

/// A numeric field of an INFO section.
fn section_field(server: &TestServer, section: &str, name: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut server.conn())
        .unwrap();
    info.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(':')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {name} in INFO {section}:\n{info}"))
}

/// Checks the last `count` acknowledged SETs of every earlier round: `history` holds each
/// writer's (first, last) acknowledged index per round.
fn check_earlier_rounds(server: &TestServer, history: &[Vec<(u64, u64)>], count: u64) {
    let mut con = server.conn();
    for (t, rounds) in history.iter().enumerate() {
        for &(first, last) in rounds {
            for i in first.max(last.saturating_sub(count))..=last {
                let v: Option<u64> = redis::cmd("GET")
                    .arg(format!("w:{t}:{i}"))
                    .query(&mut con)
                    .unwrap();
                assert_eq!(
                    v,
                    Some(i),
                    "writer {t}: SET w:{t}:{i} of an earlier round lost"
                );
            }
        }
    }
}

fn check(server: &TestServer, all: &[Acked], first_set: &[Option<u64>]) {
    let mut con = server.conn();
    for (t, acked) in all.iter().enumerate() {
        let counter: i64 = redis::cmd("GET")
            .arg(format!("counter:{t}"))
            .query::<Option<i64>>(&mut con)
            .unwrap()
            .unwrap_or(0);
        assert!(
            counter == acked.counter || counter == acked.counter + 1,
            "writer {t}: counter {counter}, acknowledged {}",
            acked.counter
        );
        let a: Option<u64> = redis::cmd("GET")
            .arg(format!("pair:{t}:a"))
            .query(&mut con)
            .unwrap();
        let b: Option<u64> = redis::cmd("GET")
            .arg(format!("pair:{t}:b"))
            .query(&mut con)
            .unwrap();
        assert_eq!(a, b, "writer {t}: MULTI/EXEC pair half-applied");
        if let Some(p) = acked.pair {
            assert!(
                a.is_some_and(|a| a >= p),
                "writer {t}: pair {a:?} older than acknowledged {p}"
            );
        }
        if let (Some(last), Some(first)) = (acked.sets, first_set.get(t).copied().flatten()) {
            // Check every acknowledged SET of this round (bounded to keep the test quick).
            let from = first.max(last.saturating_sub(2_000));
            for i in from..=last {
                let v: Option<u64> = redis::cmd("GET")
                    .arg(format!("w:{t}:{i}"))
                    .query(&mut con)
                    .unwrap();
                assert_eq!(v, Some(i), "writer {t}: acknowledged SET w:{t}:{i} lost");
            }
        }
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let moved = crash_rounds(&[], "memory", "compaction_values_moved");
    assert!(
        moved > 0,
        "compaction never ran: the test did not exercise it"
    );
}

/// The same under `maxmemory-policy spill` with a budget far below the data: value pages go
/// to the SSD tier and come back on misses while the writers run, checkpoints read spilled
/// values in place, and the kill lands in the middle of all that.
#[test]
fn acknowledged_writes_survive_sigkill_with_the_ssd_tier() {
    let spilled = crash_rounds(
        &["--maxmemory", "2mb", "--maxmemory-policy", "spill"],
        "tiering",
        "tiering_pages_written",
    );
    assert!(
        spilled > 0,
        "no page went to SSD: the test did not exercise the tier"
    );
}

/// Runs the kill/restart rounds with `extra` server arguments; returns the sum over rounds of
/// INFO `section`'s `counter` read just before each kill (what the variant must exercise).
fn crash_rounds(extra: &[&str], section: &str, counter: &str) -> u64 {
    let rounds: u64 = std::env::var("TIERKV_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("TIERKV_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("TIERKV_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut args = vec![
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--active-defrag-threshold-lower",
        "0",
        "--active-defrag-ignore-bytes",
        "0",
    ];
    args.extend_from_slice(extra);
    let mut server = TestServer::with_args(&args);
    let mut moved = 0;
    let mut acked = vec![Acked::default(); WRITERS];
    let mut history: Vec<Vec<(u64, u64)>> = vec![Vec::new(); WRITERS];
    let mut checkpoints = 0;
    for round in 1..=rounds {
        if round > 1 {
            let _: String = redis::cmd("SAVE").query(&mut server.conn()).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let saver = {
            let (stop, port, seed) = (Arc::clone(&stop), server.port, rng.gen());
            thread::spawn(move || checkpointer(port, seed, stop))
        };
        let churn = {
            let (stop, port, seed) = (Arc::clone(&stop), server.port, rng.gen());
            thread::spawn(move || churner(port, seed, stop))
        };
        let handles: Vec<_> = (0..WRITERS)
            .map(|t| {
                let stop = Arc::clone(&stop);
                let port = server.port;
                let prev = acked[t].clone();
                thread::spawn(move || writer(port, t, round, stop, prev))
            })
            .collect();
        thread::sleep(Duration::from_millis(rng.gen_range(200..900)));
        // The variant's work this round (the counter starts again at each restart).
        moved += section_field(&server, section, counter);
        server.kill();
        stop.store(true, Ordering::Relaxed);
        let first_set: Vec<Option<u64>> = (0..WRITERS).map(|_| Some(round * 1_000_000)).collect();
        for (t, h) in handles.into_iter().enumerate() {
            acked[t] = h.join().unwrap();
        }
        checkpoints += saver.join().unwrap();
        churn.join().unwrap();
        assert!(
            acked
                .iter()
                .any(|a| a.sets.is_some_and(|s| s >= round * 1_000_000)),
            "round {round}: no write was acknowledged before the kill"
        );
        server.restart();
        let loaded = info_field(&server, "rdb_last_load_keys_loaded");
        if round > 1 {
            // The round began with a SAVE (below), so this recovery was a checkpoint plus the
            // WAL after it, whatever the background checkpoints had reached.
            assert!(loaded > 0, "round {round}: recovery loaded no checkpoint");
        }
        check(&server, &acked, &first_set);
        // A few keys per earlier round: enough to catch a lost checkpoint or segment, and
        // linear in the rounds so a 200-round run stays quick.
        check_earlier_rounds(&server, &history, 10);
        for (t, a) in acked.iter().enumerate() {
            if let Some(last) = a.sets.filter(|&s| s >= round * 1_000_000) {
                history[t].push((round * 1_000_000, last));
            }
        }
        // The counters may have one more increment than acknowledged: adopt the real value so
        // the next round's bound stays exact.
        let mut con = server.conn();
        for (t, a) in acked.iter_mut().enumerate() {
            a.counter = redis::cmd("GET")
                .arg(format!("counter:{t}"))
                .query::<Option<i64>>(&mut con)
                .unwrap()
                .unwrap_or(0);
        }
    }
    println!(
        "{checkpoints} background checkpoints started, {section}.{counter} {moved}, over \
         {rounds} rounds"
    );
    moved
}
