//! MULTI/EXEC/WATCH and interactive TXN over the wire, including races between connections.
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{bulk, err, int, ok, TestServer};
use redis::Commands;
use tierkv::resp::Frame;

/// A numeric field of `INFO stats`.
fn stat(con: &mut redis::Connection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(con).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("INFO stats reports {field}"))
        .trim()
        .parse()
        .unwrap()
}

/// `gc_keys_removed` from `INFO stats`: key nodes the background GC has removed so far.
fn gc_keys_removed(con: &mut redis::Connection) -> u64 {
    stat(con, "gc_keys_removed")
}

/// The background GC finds superseded versions through its queue and reports it in INFO.
#[test]
fn background_gc_collects_overwritten_versions_and_reports_its_queue() {
    let server = TestServer::start();
    let mut con = server.conn();
    let before = stat(&mut con, "gc_versions_unlinked");
    for i in 0..50 {
        let _: () = con.set("k", i).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stat(&mut con, "gc_versions_unlinked") < before + 49
        || stat(&mut con, "gc_queue_entries") > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "GC did not catch up in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(stat(&mut con, "gc_queue_dropped"), 0);
    assert!(stat(&mut con, "gc_low_watermark") >= 50);
    let v: i64 = con.get("k").unwrap();
    assert_eq!(v, 49);
}

/// Waits until the background GC (every 100 ms) has removed more than `before` key nodes.
fn wait_for_gc_removal(con: &mut redis::Connection, before: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while gc_keys_removed(con) <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "GC removed no key node in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn multi_exec_semantics_match_redis() {
    let server = TestServer::start();
    let mut c = server.raw();
    assert_eq!(c.cmd(&["EXEC"]), err("ERR EXEC without MULTI"));
    assert_eq!(c.cmd(&["DISCARD"]), err("ERR DISCARD without MULTI"));
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["MULTI"]), err("ERR MULTI calls can not be nested"));
    assert_eq!(
        c.cmd(&["WATCH", "x"]),
        err("ERR WATCH inside MULTI is not allowed")
    );
    assert_eq!(c.cmd(&["SET", "a", "1"]), Frame::simple("QUEUED"));
    assert_eq!(c.cmd(&["INCR", "a"]), Frame::simple("QUEUED"));
    assert_eq!(
        c.cmd(&["SET", "a", "1", "NX", "XX"]),
        Frame::simple("QUEUED")
    );
    assert_eq!(
        c.cmd(&["EXEC"]),
        Frame::Array(vec![ok(), int(2), err("ERR syntax error")])
    );
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(
        c.cmd(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        c.cmd(&["SHUTDOWN"]),
        err("ERR Command not allowed inside a transaction")
    );
    assert_eq!(
        c.cmd(&["EXEC"]),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["SET", "a", "9"]), Frame::simple("QUEUED"));
    assert_eq!(c.cmd(&["DISCARD"]), ok());
    assert_eq!(c.cmd(&["GET", "a"]), bulk("2"));
}

#[test]
fn watch_detects_a_concurrent_write() {
    let server = TestServer::start();
    let mut a = server.raw();
    let mut b = server.raw();
    a.cmd(&["SET", "k", "1"]);
    assert_eq!(a.cmd(&["WATCH", "k"]), ok());
    assert_eq!(b.cmd(&["SET", "k", "2"]), ok());
    a.cmd(&["MULTI"]);
    a.cmd(&["SET", "k", "3"]);
    assert_eq!(a.cmd(&["EXEC"]), Frame::NullArray);
    assert_eq!(a.cmd(&["GET", "k"]), bulk("2"));
    // Unwatched keys and UNWATCH let EXEC through.
    a.cmd(&["WATCH", "k"]);
    a.cmd(&["UNWATCH"]);
    b.cmd(&["SET", "k", "4"]);
    a.cmd(&["MULTI"]);
    a.cmd(&["SET", "k", "5"]);
    assert_eq!(a.cmd(&["EXEC"]), Frame::Array(vec![ok()]));
}

/// Many connections increment one counter with WATCH/GET/MULTI/SET/EXEC, retrying on nil:
/// no increment may be lost, which is only true if EXEC is atomic and WATCH is exact.
#[test]
fn watch_based_increments_race_without_lost_updates() {
    let server = TestServer::start();
    server.raw().cmd(&["SET", "counter", "0"]);
    let workers = 8;
    let per_worker = 40;
    let retries = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let port = server.port;
            let retries = retries.clone();
            std::thread::spawn(move || {
                let mut c = common::RawClient::connect(port);
                for _ in 0..per_worker {
                    loop {
                        c.cmd(&["WATCH", "counter"]);
                        let Frame::Bulk(v) = c.cmd(&["GET", "counter"]) else {
                            panic!()
                        };
                        let n: i64 = std::str::from_utf8(&v).unwrap().parse().unwrap();
                        c.cmd(&["MULTI"]);
                        c.cmd(&["SET", "counter", &(n + 1).to_string()]);
                        match c.cmd(&["EXEC"]) {
                            Frame::Array(_) => break,
                            Frame::NullArray => {
                                retries.fetch_add(1, Ordering::Relaxed);
                            }
                            other => panic!("unexpected EXEC reply {other:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        server.raw().cmd(&["GET", "counter"]),
        bulk(&(workers * per_worker).to_string())
    );
}

#[test]
fn interactive_transactions_read_a_snapshot_and_first_committer_wins() {
    let server = TestServer::start();
    let mut a = server.raw();
    let mut b = server.raw();
    a.cmd(&["MSET", "x", "1", "y", "1"]);
    assert_eq!(a.cmd(&["TXN", "BEGIN"]), ok());
    assert_eq!(
        a.cmd(&["MGET", "x", "y"]),
        Frame::Array(vec![bulk("1"), bulk("1")])
    );
    assert_eq!(b.cmd(&["MSET", "x", "2", "y", "2"]), ok());
    assert_eq!(
        a.cmd(&["MGET", "x", "y"]),
        Frame::Array(vec![bulk("1"), bulk("1")]),
        "snapshot is stable"
    );
    assert_eq!(a.cmd(&["INCR", "x"]), int(2));
    assert_eq!(a.cmd(&["GET", "x"]), bulk("2"));
    assert_eq!(
        a.cmd(&["TXN", "COMMIT"]),
        err("CONFLICT transaction aborted: a concurrent transaction committed a conflicting write")
    );
    assert_eq!(a.cmd(&["GET", "x"]), bulk("2"));
    // A transaction on keys nobody else wrote commits and reports its version.
    a.cmd(&["TXN", "BEGIN"]);
    a.cmd(&["SET", "z", "1"]);
    assert_eq!(
        b.cmd(&["GET", "z"]),
        Frame::Null,
        "uncommitted writes are invisible"
    );
    let Frame::Integer(ts) = a.cmd(&["TXN", "COMMIT"]) else {
        panic!()
    };
    let Frame::Array(v) = b.cmd(&["GETVER", "z"]) else {
        panic!()
    };
    assert_eq!(v, vec![bulk("1"), int(ts)]);
    a.cmd(&["TXN", "BEGIN"]);
    a.cmd(&["SET", "z", "2"]);
    assert_eq!(a.cmd(&["TXN", "ABORT"]), ok());
    assert_eq!(a.cmd(&["GET", "z"]), bulk("1"));
    assert_eq!(a.cmd(&["TXN", "ABORT"]), err("ERR no TXN in progress"));
}

/// Transfers between accounts in interactive transactions from many connections; conflicts
/// are retried by the client. The total must be conserved and some conflicts must happen.
#[test]
fn interactive_transactions_under_contention_conserve_money() {
    let server = TestServer::start();
    let accounts = 4;
    let mut setup = server.raw();
    for i in 0..accounts {
        setup.cmd(&["SET", &format!("acct{i}"), "100"]);
    }
    let conflicts = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..6)
        .map(|w| {
            let port = server.port;
            let conflicts = conflicts.clone();
            std::thread::spawn(move || {
                let mut c = common::RawClient::connect(port);
                for i in 0..40 {
                    let from = format!("acct{}", (w + i) % accounts);
                    let to = format!("acct{}", (w + i + 1) % accounts);
                    loop {
                        c.cmd(&["TXN", "BEGIN"]);
                        c.cmd(&["DECRBY", &from, "1"]);
                        c.cmd(&["INCRBY", &to, "1"]);
                        match c.cmd(&["TXN", "COMMIT"]) {
                            Frame::Integer(_) => break,
                            Frame::Error(e) if e.starts_with(b"CONFLICT") => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            }
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = server.raw();
    let mut total = 0;
    for i in 0..accounts {
        let Frame::Bulk(v) = c.cmd(&["GET", &format!("acct{i}")]) else {
            panic!()
        };
        total += std::str::from_utf8(&v).unwrap().parse::<i64>().unwrap();
    }
    assert_eq!(total, 100 * accounts as i64);
    println!("conflicts retried: {}", conflicts.load(Ordering::Relaxed));
}

#[test]
fn versioned_cas_over_the_wire() {
    let server = TestServer::start();
    let mut c = server.raw();
    assert_eq!(
        c.cmd(&["GETVER", "k"]),
        Frame::Array(vec![Frame::Null, int(0)])
    );
    let Frame::Integer(v1) = c.cmd(&["SETVER", "k", "0", "a"]) else {
        panic!()
    };
    assert_eq!(c.cmd(&["SETVER", "k", "0", "b"]), Frame::Null);
    let Frame::Integer(v2) = c.cmd(&["CAS", "k", &v1.to_string(), "b", "EX", "100"]) else {
        panic!()
    };
    assert!(v2 > v1);
    assert_eq!(c.cmd(&["SETVER", "k", &v1.to_string(), "c"]), Frame::Null);
    assert_eq!(
        c.cmd(&["SETVER", "k", "x", "c"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.cmd(&["SET", "k", "c", "IFEQ", "b"]), ok());
    assert_eq!(c.cmd(&["SET", "k", "d", "IFEQ", "b"]), Frame::Null);
    assert_eq!(c.cmd(&["GET", "k"]), bulk("c"));
}

/// While a writer keeps replacing two keys together (MSET), MGET from another connection always
/// sees both from the same commit.
#[test]
fn mget_reads_one_snapshot_while_writers_continue() {
    let server = TestServer::start();
    server.raw().cmd(&["MSET", "a", "0", "b", "0"]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let port = server.port;
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = common::RawClient::connect(port);
            let mut i = 0u64;
            // At least one write however late this thread runs.
            let mut done = false;
            while !done {
                done = stop.load(Ordering::Relaxed);
                i += 1;
                let v = i.to_string();
                assert_eq!(c.cmd(&["MSET", "a", &v, "b", &v]), ok());
            }
            i
        })
    };
    let mut reader = server.raw();
    let mut distinct = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        let Frame::Array(v) = reader.cmd(&["MGET", "a", "b"]) else {
            panic!()
        };
        assert_eq!(v[0], v[1], "MGET mixed two commits");
        distinct.insert(format!("{:?}", v[0]));
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 0);
    println!(
        "{} distinct snapshots observed over {writes} writes",
        distinct.len()
    );
}

#[test]
fn client_kill_closes_another_connection() {
    let server = TestServer::start();
    let mut victim = server.raw();
    let Frame::Integer(id) = victim.cmd(&["CLIENT", "ID"]) else {
        panic!()
    };
    let mut admin = server.raw();
    assert_eq!(
        admin.cmd(&["CLIENT", "KILL", "ID", &id.to_string()]),
        int(1)
    );
    assert!(victim.is_closed());
    assert_eq!(
        admin.cmd(&["CLIENT", "KILL", "ID", &id.to_string()]),
        int(0)
    );
    assert_eq!(
        admin.cmd(&["CLIENT", "KILL", "1.2.3.4:5"]),
        err("ERR No such client")
    );
}

#[test]
fn select_inside_multi_applies_to_later_queued_commands() {
    let server = TestServer::start();
    let mut c = server.raw();
    c.cmd(&["MULTI"]);
    c.cmd(&["SET", "k", "db0"]);
    c.cmd(&["SELECT", "3"]);
    c.cmd(&["SET", "k", "db3"]);
    assert_eq!(c.cmd(&["EXEC"]), Frame::Array(vec![ok(), ok(), ok()]));
    assert_eq!(c.cmd(&["GET", "k"]), bulk("db3"));
    c.cmd(&["SELECT", "0"]);
    assert_eq!(c.cmd(&["GET", "k"]), bulk("db0"));
}

/// Regression: an EXEC that fails its WATCH runs nothing, so a SELECT queued in the block does
/// not stay in effect (it did: the next SET went to the other database).
#[test]
fn a_failed_exec_leaves_the_selected_database_alone() {
    let server = TestServer::start();
    let mut a = server.raw();
    let mut b = server.raw();
    a.cmd(&["WATCH", "k"]);
    a.cmd(&["MULTI"]);
    a.cmd(&["SELECT", "3"]);
    b.cmd(&["SET", "k", "changed"]);
    assert_eq!(a.cmd(&["EXEC"]), Frame::NullArray);
    a.cmd(&["SET", "after", "1"]);
    assert_eq!(
        b.cmd(&["GET", "after"]),
        bulk("1"),
        "the SET went to database 0"
    );
}

/// `EXEC` with arguments discards the transaction, as in Redis (the client leaves MULTI).
#[test]
fn exec_with_arguments_discards_the_transaction() {
    let server = TestServer::start();
    let mut c = server.raw();
    c.cmd(&["MULTI"]);
    c.cmd(&["SET", "k", "v"]);
    assert_eq!(
        c.cmd(&["EXEC", "extra"]),
        err("EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command")
    );
    assert_eq!(c.cmd(&["GET", "k"]), Frame::Null);
}

/// Regression: WATCH on an absent key, another client SETs and DELs it, and GC removes the
/// key's index node before EXEC: the key then looked untouched (absent, no node, as when
/// watched) and EXEC went through. Redis fails it: the key was touched.
#[test]
fn watch_on_an_absent_key_fails_exec_after_set_and_del_even_once_gc_removed_it() {
    let server = TestServer::start();
    let mut a = server.conn();
    let mut b = server.conn();
    let removed_before = gc_keys_removed(&mut b);
    let _: () = redis::cmd("WATCH").arg("lock").query(&mut a).unwrap();
    let _: () = b.set("lock", "theirs").unwrap();
    let _: i64 = b.del("lock").unwrap();
    wait_for_gc_removal(&mut b, removed_before);
    let exec: Option<(String,)> = redis::pipe()
        .atomic()
        .set("lock", "mine")
        .query(&mut a)
        .unwrap();
    assert_eq!(exec, None, "EXEC must fail: the watched key was touched");
    let lock: Option<String> = a.get("lock").unwrap();
    assert_eq!(lock, None);
    // A key deleted before the WATCH and removed by GC afterwards (or before: GC runs on its
    // own schedule) was not touched after it.
    let removed_before = gc_keys_removed(&mut b);
    let _: () = b.set("gone", "1").unwrap();
    let _: i64 = b.del("gone").unwrap();
    let _: () = redis::cmd("WATCH").arg("gone").query(&mut a).unwrap();
    wait_for_gc_removal(&mut b, removed_before);
    let exec: Option<(String,)> = redis::pipe()
        .atomic()
        .set("gone", "mine")
        .query(&mut a)
        .unwrap();
    assert_eq!(exec, Some(("OK".to_owned(),)));
}

fn select(con: &mut redis::Connection, db: i64) {
    let _: () = redis::cmd("SELECT").arg(db).query(con).unwrap();
}

/// FLUSHDB, SWAPDB and FLUSHALL queue inside MULTI (they used to be refused) and run as part
/// of the EXEC transaction: later commands in the block see the flushed or swapped database,
/// other clients see the whole block or none of it, and the block survives a restart (its one
/// log record replays in order).
#[test]
fn flushdb_and_swapdb_run_inside_multi_atomically() {
    let mut server = TestServer::start();
    let mut c = server.conn();
    let _: () = redis::cmd("MSET")
        .arg(&["a", "1", "b", "2"])
        .query(&mut c)
        .unwrap();
    select(&mut c, 1);
    let _: () = c.set("x", "9").unwrap();
    select(&mut c, 0);

    // A reader on database 0 never sees a state between "a, b" and "x only".
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let client = server.client();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut con = client.get_connection().unwrap();
            let mut seen = std::collections::BTreeSet::new();
            let mut done = false;
            while !done {
                done = stop.load(Ordering::Relaxed);
                let a_b_x: (bool, bool, bool) = redis::pipe()
                    .atomic()
                    .exists("a")
                    .exists("b")
                    .exists("x")
                    .query(&mut con)
                    .unwrap();
                seen.insert(a_b_x);
            }
            seen
        })
    };

    let (set, flush, size, gone, set_c, swap, x, size_after): (
        String,
        String,
        i64,
        Option<String>,
        String,
        String,
        String,
        i64,
    ) = redis::pipe()
        .atomic()
        .set("a", "10")
        .cmd("FLUSHDB")
        .cmd("DBSIZE")
        .get("a")
        .set("c", "3")
        .cmd("SWAPDB")
        .arg(0)
        .arg(1)
        .get("x")
        .cmd("DBSIZE")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        (set, flush, size, gone, set_c, swap, x, size_after),
        (
            "OK".into(),
            "OK".into(),
            0,
            None,
            "OK".into(),
            "OK".into(),
            "9".into(),
            1
        )
    );
    stop.store(true, Ordering::Relaxed);
    let seen = reader.join().unwrap();
    assert!(
        seen.iter()
            .all(|s| *s == (true, true, false) || *s == (false, false, true)),
        "a reader saw part of the block: {seen:?}"
    );

    let check = |c: &mut redis::Connection| {
        select(c, 0);
        let keys: Vec<String> = c.keys("*").unwrap();
        assert_eq!(keys, ["x"]);
        select(c, 1);
        let keys: Vec<String> = c.keys("*").unwrap();
        assert_eq!(keys, ["c"]);
        select(c, 0);
    };
    check(&mut c);
    server.restart();
    let mut c = server.conn();
    check(&mut c);

    let (flushall, set_d): (String, String) = redis::pipe()
        .atomic()
        .cmd("FLUSHALL")
        .set("d", "4")
        .query(&mut c)
        .unwrap();
    assert_eq!((flushall.as_str(), set_d.as_str()), ("OK", "OK"));
    let keys: Vec<String> = c.keys("*").unwrap();
    assert_eq!(keys, ["d"]);
    select(&mut c, 1);
    let size: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(size, 0);
}

/// WATCH semantics as in Redis 7: a FLUSHDB (inside another client's MULTI or not) touches
/// every watched key that existed, a SWAPDB every watched key that exists in either database;
/// a watched key that existed in neither is not touched; a client's own FLUSHDB in its block
/// does not fail its own watch.
#[test]
fn flushdb_and_swapdb_touch_watched_keys_like_redis() {
    let server = TestServer::start();
    let mut a = server.conn();
    let mut b = server.conn();
    let exec_set = |con: &mut redis::Connection| -> Option<(String,)> {
        redis::pipe().atomic().set("mine", "1").query(con).unwrap()
    };

    let _: () = b.set("k", "1").unwrap();
    let _: () = redis::cmd("WATCH").arg("k").query(&mut a).unwrap();
    let _: ((),) = redis::pipe().atomic().cmd("FLUSHDB").query(&mut b).unwrap();
    assert_eq!(exec_set(&mut a), None, "FLUSHDB touched the watched key");

    let _: () = redis::cmd("WATCH").arg("never").query(&mut a).unwrap();
    let _: () = redis::cmd("FLUSHDB").query(&mut b).unwrap();
    assert_eq!(
        exec_set(&mut a),
        Some(("OK".into(),)),
        "absent keys are untouched"
    );

    select(&mut b, 1);
    let _: () = b.set("y", "from db1").unwrap();
    let _: () = redis::cmd("WATCH").arg("y").query(&mut a).unwrap();
    let _: () = redis::cmd("SWAPDB").arg(0).arg(1).query(&mut b).unwrap();
    assert_eq!(exec_set(&mut a), None, "SWAPDB brought y into database 0");
    let y: String = a.get("y").unwrap();
    assert_eq!(y, "from db1");

    let _: () = redis::cmd("WATCH").arg("y").query(&mut a).unwrap();
    let (flush, set): (String, String) = redis::pipe()
        .atomic()
        .cmd("FLUSHDB")
        .set("y", "again")
        .query(&mut a)
        .unwrap();
    assert_eq!((flush.as_str(), set.as_str()), ("OK", "OK"));
    let keys: Vec<String> = a.keys("*").unwrap();
    assert_eq!(keys, ["y"]);
}

/// A field of `INFO <section>`, as text.
fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(con).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("INFO {section} reports {field}"))
        .trim()
        .to_owned()
}

fn used_memory(con: &mut redis::Connection) -> u64 {
    info_field(con, "memory", "used_memory").parse().unwrap()
}

/// Waits up to 30 s for `snapshots_aborted` to reach `n` (the limits are enforced on the GC
/// tick, every 100 ms).
fn wait_for_snapshots_aborted(con: &mut redis::Connection, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stat(con, "snapshots_aborted") < n {
        assert!(
            std::time::Instant::now() < deadline,
            "no TXN aborted in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn error_text(frame: Frame) -> String {
    match frame {
        Frame::Error(text) => String::from_utf8_lossy(&text).into_owned(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Issue 9: one client that runs `TXN BEGIN`, reads a key and goes idle held GC's watermark
/// while another overwrote the key, and `used_memory` grew for as long as it stayed idle. With
/// `snapshot-max-pinned-memory` the server aborts that transaction once the old versions its
/// snapshot keeps pass the cap; GC then frees them, and the idle client learns it at its next
/// command.
#[test]
fn an_idle_txn_is_aborted_when_its_old_versions_pass_snapshot_max_pinned_memory() {
    let server = TestServer::with_args(&[
        "--snapshot-max-pinned-memory",
        "2mb",
        "--snapshot-max-age",
        "0",
    ]);
    let mut a = server.raw();
    let mut b = server.conn();
    let value = "v".repeat(1024);
    let _: () = b.set("k", &value).unwrap();
    let Frame::Integer(a_id) = a.cmd(&["CLIENT", "ID"]) else {
        panic!("CLIENT ID")
    };
    assert_eq!(
        info_field(&mut b, "memory", "oldest_snapshot_holder"),
        "none"
    );
    assert_eq!(
        info_field(&mut b, "memory", "oldest_snapshot_client_id"),
        "none"
    );
    assert_eq!(a.cmd(&["TXN", "BEGIN"]), ok());
    assert_eq!(a.cmd(&["GET", "k"]), bulk(&value));
    assert_eq!(
        info_field(&mut b, "memory", "oldest_snapshot_holder"),
        "txn"
    );
    assert_eq!(
        info_field(&mut b, "memory", "oldest_snapshot_client_id"),
        a_id.to_string()
    );
    let age: u64 = info_field(&mut b, "memory", "oldest_snapshot_age_sec")
        .parse()
        .unwrap();
    assert!(age <= 5, "{age}");
    let baseline = used_memory(&mut b);

    // 20 MB of overwrites: unbounded, the idle snapshot would keep all of them.
    let mut peak = 0;
    let mut pinned_seen = 0u64;
    for batch in 0..40 {
        let mut pipe = redis::pipe();
        for i in 0..500 {
            pipe.set("k", format!("{batch:02}{i:03}{value}")).ignore();
        }
        let _: () = pipe.query(&mut b).unwrap();
        peak = peak.max(used_memory(&mut b));
        if stat(&mut b, "snapshots_aborted") == 0 {
            let pinned: u64 = info_field(&mut b, "memory", "oldest_snapshot_pinned_bytes")
                .parse()
                .unwrap();
            pinned_seen = pinned_seen.max(pinned);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    wait_for_snapshots_aborted(&mut b, 1);
    assert!(pinned_seen > 0, "INFO showed what the snapshot pinned");
    assert!(
        peak < baseline + 10_000_000,
        "used_memory peaked at {peak} from {baseline}: not bounded by the 2 MB cap"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while used_memory(&mut b) > baseline + 1_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "GC did not free what the aborted snapshot pinned"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        info_field(&mut b, "memory", "oldest_snapshot_holder"),
        "none"
    );

    // A's next command gets the error, and so does every other until it ends the TXN: none
    // runs on its own.
    let error = error_text(a.cmd(&["GET", "k"]));
    assert!(
        error.starts_with("SNAPSHOTTOOOLD Transaction aborted"),
        "{error}"
    );
    assert!(
        error.contains("'snapshot-max-pinned-memory' (2097152 bytes)"),
        "{error}"
    );
    let error = error_text(a.cmd(&["SET", "written", "1"]));
    assert!(error.starts_with("SNAPSHOTTOOOLD"), "{error}");
    let error = error_text(a.cmd(&["TXN", "BEGIN"]));
    assert!(error.starts_with("SNAPSHOTTOOOLD"), "{error}");
    let error = error_text(a.cmd(&["TXN", "COMMIT"]));
    assert!(error.starts_with("SNAPSHOTTOOOLD"), "{error}");
    let written: Option<String> = b.get("written").unwrap();
    assert_eq!(written, None);

    // Then a new TXN works normally.
    assert_eq!(a.cmd(&["TXN", "BEGIN"]), ok());
    assert_eq!(a.cmd(&["GET", "k"]), bulk(&format!("39499{value}")));
    assert_eq!(a.cmd(&["SET", "written", "1"]), ok());
    assert!(matches!(a.cmd(&["TXN", "COMMIT"]), Frame::Integer(ts) if ts > 0));
    assert_eq!(a.cmd(&["GET", "written"]), bulk("1"));
    assert_eq!(stat(&mut b, "snapshots_aborted"), 1);
}

/// `snapshot-max-age` aborts a TXN open longer than that many seconds; the client can end it
/// with TXN ABORT and begin again; `CONFIG SET snapshot-max-age 0` turns the limit off.
#[test]
fn a_txn_open_past_snapshot_max_age_gets_the_error_and_can_begin_again() {
    let server = TestServer::with_args(&["--snapshot-max-age", "1"]);
    let mut a = server.raw();
    let mut b = server.conn();
    let limit: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("snapshot-max-*")
        .query(&mut b)
        .unwrap();
    assert_eq!(
        limit,
        [
            "snapshot-max-age",
            "1",
            "snapshot-max-pinned-memory",
            &(256u64 << 20).to_string()
        ]
    );
    let _: () = b.set("k", "1").unwrap();
    assert_eq!(a.cmd(&["TXN", "BEGIN"]), ok());
    assert_eq!(a.cmd(&["GET", "k"]), bulk("1"));
    wait_for_snapshots_aborted(&mut b, 1);
    let error = error_text(a.cmd(&["GET", "k"]));
    assert!(
        error.starts_with("SNAPSHOTTOOOLD Transaction aborted: open ")
            && error.contains("longer than 'snapshot-max-age' (1 s)"),
        "{error}"
    );
    assert_eq!(a.cmd(&["TXN", "ABORT"]), ok());
    assert_eq!(a.cmd(&["TXN", "BEGIN"]), ok());
    assert_eq!(a.cmd(&["GET", "k"]), bulk("1"));
    assert_eq!(a.cmd(&["TXN", "ABORT"]), ok());

    // Off at runtime: a TXN outlives the old limit.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("snapshot-max-age")
        .arg("0")
        .query(&mut b)
        .unwrap();
    assert_eq!(a.cmd(&["TXN", "BEGIN"]), ok());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(a.cmd(&["GET", "k"]), bulk("1"));
    assert_eq!(a.cmd(&["TXN", "COMMIT"]), int(0));
    assert_eq!(stat(&mut b, "snapshots_aborted"), 1);
}
