//! `maxmemory` over the wire: the OOM refusal under `noeviction` (Redis 7's exact texts,
//! inside MULTI too), eviction per policy, `evicted_keys`, runtime `CONFIG SET`, OBJECT FREQ /
//! IDLETIME, and evictions surviving a restart (they are logged deletes).
//!
//! Limits are set relative to the memory the server reports as counted for eviction
//! (INFO's `mem_counted_for_evict`), which only data changes move.
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{bulk, err, int, ok, TestServer};
use tierkv::resp::Frame;

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

fn info(c: &mut redis::Connection, section: &str) -> HashMap<String, String> {
    let text: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

fn field(c: &mut redis::Connection, section: &str, name: &str) -> u64 {
    info(c, section)
        .get(name)
        .unwrap_or_else(|| panic!("INFO {section} has no {name}"))
        .parse()
        .unwrap()
}

/// Memory the server counts against `maxmemory`.
/// What eviction compares with `maxmemory` (INFO's `mem_counted_for_evict`: used_memory less
/// what GC frees, with values charged their share of tolerated fragmentation).
fn counted(c: &mut redis::Connection) -> u64 {
    info(c, "memory")["mem_counted_for_evict"].parse().unwrap()
}

fn set_config(c: &mut redis::Connection, name: &str, value: impl ToString) {
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value.to_string())
        .query(c)
        .unwrap();
}

fn fill(c: &mut redis::Connection, keys: std::ops::Range<usize>, value_len: usize) {
    let value = "v".repeat(value_len);
    let mut pipe = redis::pipe();
    for i in keys {
        pipe.set(format!("key:{i:04}"), &value).ignore();
    }
    let () = pipe.query(c).unwrap();
}

fn exists(c: &mut redis::Connection, i: usize) -> bool {
    redis::cmd("EXISTS")
        .arg(format!("key:{i:04}"))
        .query::<i64>(c)
        .unwrap()
        == 1
}

#[test]
fn noeviction_refuses_writes_with_redis_text_while_reads_and_del_work() {
    let server = TestServer::start();
    let mut conn = server.conn();
    fill(&mut conn, 0..20, 100);
    let mut c = server.raw();
    // tierkv's default is `spill` (cold values to SSD); Redis's is one setting away.
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxmemory-policy"]),
        Frame::Array(vec![bulk("maxmemory-policy"), bulk("spill")])
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
        ok()
    );
    let limit = counted(&mut conn) - 1;
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "maxmemory", &limit.to_string()]),
        ok()
    );
    for command in [
        &["SET", "a", "b"][..],
        &["SETNX", "a", "b"],
        &["INCR", "n"],
        &["APPEND", "key:0000", "x"],
        &["MSET", "a", "1", "b", "2"],
        &["SETRANGE", "key:0000", "0", "x"],
        &["GETSET", "key:0000", "x"],
        &["COPY", "key:0000", "copy"],
    ] {
        assert_eq!(c.cmd(command), err(OOM), "{command:?}");
    }
    assert_eq!(c.cmd(&["GET", "key:0001"]), bulk(&"v".repeat(100)));
    assert_eq!(c.cmd(&["EXPIRE", "key:0001", "100"]), int(1));
    assert_eq!(c.cmd(&["GETDEL", "key:0001"]), bulk(&"v".repeat(100)));
    assert_eq!(c.cmd(&["DEL", "key:0002"]), int(1));
    // The deletes brought counted memory under the limit at once (GC need not run first).
    assert_eq!(c.cmd(&["SET", "a", "b"]), ok());
    assert_eq!(field(&mut conn, "stats", "evicted_keys"), 0);
}

#[test]
fn multi_under_oom_rejects_at_queue_time_and_exec_aborts_like_redis() {
    let server = TestServer::with_args(&["--maxmemory-policy", "noeviction"]);
    let mut conn = server.conn();
    fill(&mut conn, 0..20, 100);
    let limit = counted(&mut conn) - 1;
    let mut admin = server.raw();
    let mut c = server.raw();

    // Over the limit: inside MULTI every command but the transaction verbs is refused (the
    // queue itself would grow), and EXEC then fails.
    assert_eq!(
        admin.cmd(&["CONFIG", "SET", "maxmemory", &limit.to_string()]),
        ok()
    );
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["GET", "key:0000"]), err(OOM));
    assert_eq!(c.cmd(&["SET", "a", "b"]), err(OOM));
    assert_eq!(c.cmd(&["DEL", "key:0000"]), err(OOM));
    assert_eq!(
        c.cmd(&["EXEC"]),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["DISCARD"]), ok());

    // Queued under the limit, over it at EXEC: a block with a denyoom command is discarded.
    assert_eq!(admin.cmd(&["CONFIG", "SET", "maxmemory", "0"]), ok());
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["SET", "a", "b"]), Frame::simple("QUEUED"));
    assert_eq!(c.cmd(&["GET", "a"]), Frame::simple("QUEUED"));
    assert_eq!(
        admin.cmd(&["CONFIG", "SET", "maxmemory", &limit.to_string()]),
        ok()
    );
    assert_eq!(
        c.cmd(&["EXEC"]),
        err(&format!(
            "EXECABORT Transaction discarded because of: {OOM}"
        ))
    );
    assert_eq!(c.cmd(&["EXEC"]), err("ERR EXEC without MULTI"));
    assert_eq!(c.cmd(&["GET", "a"]), Frame::Null);

    // A block of reads only still runs at EXEC.
    assert_eq!(admin.cmd(&["CONFIG", "SET", "maxmemory", "0"]), ok());
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["GET", "key:0003"]), Frame::simple("QUEUED"));
    assert_eq!(
        admin.cmd(&["CONFIG", "SET", "maxmemory", &limit.to_string()]),
        ok()
    );
    assert_eq!(c.cmd(&["EXEC"]), Frame::Array(vec![bulk(&"v".repeat(100))]));
}

#[test]
fn allkeys_lru_keeps_recently_used_keys_and_evictions_survive_a_restart() {
    let mut server = TestServer::with_args(&[
        "--maxmemory-policy",
        "allkeys-lru",
        "--maxmemory-samples",
        "20",
    ]);
    let mut c = server.conn();
    fill(&mut c, 0..200, 1000);
    // The LRU clock ticks once a second: let it tick, then use keys 0..50.
    std::thread::sleep(Duration::from_millis(1_200));
    for i in 0..50 {
        assert!(exists(&mut c, i));
        let _: Option<String> = redis::cmd("GET")
            .arg(format!("key:{i:04}"))
            .query(&mut c)
            .unwrap();
    }
    // Room for about 45 fewer of the 1 KB keys (each charged 10% more for eviction: the
    // fragmentation compaction tolerates by default).
    let limit = counted(&mut c) - 45 * 1100;
    set_config(&mut c, "maxmemory", limit);
    let () = redis::cmd("SET").arg("new").arg("x").query(&mut c).unwrap();
    let left: Vec<usize> = (0..200).filter(|i| exists(&mut c, *i)).collect();
    let evicted = field(&mut c, "stats", "evicted_keys");
    assert!(evicted >= 40, "evicted {evicted}");
    assert_eq!(
        200 - left.len() as u64,
        evicted,
        "evicted_keys counts every eviction"
    );
    assert!(
        (0..50).all(|i| left.contains(&i)),
        "recently used keys kept: {left:?}"
    );
    assert!(
        counted(&mut c) <= limit + 1000,
        "back under the limit but for the new key"
    );

    // Evictions are logged deletes: a restart replays them.
    let dbsize: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    server.restart();
    let mut c = server.conn();
    let after: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(after, dbsize);
    let left_after: Vec<usize> = (0..200).filter(|i| exists(&mut c, *i)).collect();
    assert_eq!(left_after, left);
}

#[test]
fn volatile_ttl_evicts_the_key_with_the_nearest_ttl() {
    let server = TestServer::with_args(&["--maxmemory-policy", "volatile-ttl"]);
    let mut c = server.conn();
    let value = "v".repeat(10_000);
    let () = redis::cmd("SET")
        .arg("persistent")
        .arg(&value)
        .query(&mut c)
        .unwrap();
    for (key, ttl) in [("far", 1000), ("near", 100), ("middle", 500)] {
        let () = redis::cmd("SET")
            .arg(key)
            .arg(&value)
            .arg("EX")
            .arg(ttl)
            .query(&mut c)
            .unwrap();
    }
    set_config(&mut c, "maxmemory-samples", 10);
    let limit = counted(&mut c) - 1;
    set_config(&mut c, "maxmemory", limit);
    let () = redis::cmd("SET")
        .arg("small")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let present = |c: &mut redis::Connection, k: &str| -> bool {
        redis::cmd("EXISTS").arg(k).query::<i64>(c).unwrap() == 1
    };
    assert!(!present(&mut c, "near"));
    for key in ["persistent", "far", "middle", "small"] {
        assert!(present(&mut c, key), "{key}");
    }
    assert_eq!(field(&mut c, "stats", "evicted_keys"), 1);
}

#[test]
fn volatile_policies_with_no_volatile_keys_give_oom() {
    let server = TestServer::start();
    let mut conn = server.conn();
    fill(&mut conn, 0..20, 100);
    let mut c = server.raw();
    let limit = counted(&mut conn) - 1;
    for policy in [
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", policy]), ok());
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "maxmemory", &limit.to_string()]),
            ok()
        );
        assert_eq!(c.cmd(&["SET", "a", "b"]), err(OOM), "{policy}");
        assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "0"]), ok());
    }
    assert_eq!(c.cmd(&["DBSIZE"]), int(20));
    assert_eq!(field(&mut conn, "stats", "evicted_keys"), 0);
}

#[test]
fn config_set_maxmemory_at_runtime_evicts_and_info_reports_it() {
    let server = TestServer::start();
    let mut c = server.conn();
    fill(&mut c, 0..100, 500);
    set_config(&mut c, "maxmemory-policy", "allkeys-random");
    let limit = counted(&mut c) - 20 * 500;
    set_config(&mut c, "maxmemory", limit);
    let m = info(&mut c, "memory");
    assert_eq!(m["maxmemory"], limit.to_string());
    assert_eq!(m["maxmemory_policy"], "allkeys-random");
    assert!(m["maxmemory_human"].ends_with('K') || m["maxmemory_human"].ends_with('M'));
    assert!(m["used_memory_human"].ends_with('K') || m["used_memory_human"].ends_with('M'));
    assert!(m.contains_key("used_memory_rss"));
    // Nothing is evicted until a write needs room.
    assert_eq!(field(&mut c, "stats", "evicted_keys"), 0);
    let () = redis::cmd("SET")
        .arg("trigger")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let evicted = field(&mut c, "stats", "evicted_keys");
    let dbsize: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert!(evicted >= 15, "evicted {evicted}");
    assert_eq!(dbsize, 101 - evicted);
    // Lifting the limit stops evictions.
    set_config(&mut c, "maxmemory", 0);
    fill(&mut c, 1000..1100, 500);
    assert_eq!(field(&mut c, "stats", "evicted_keys"), evicted);
    let mut raw = server.raw();
    assert_eq!(
        raw.cmd(&["CONFIG", "SET", "maxmemory-policy", "lru"]),
        err("ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction, spill")
    );
    assert_eq!(
        raw.cmd(&["CONFIG", "SET", "maxmemory-samples", "0"]),
        err("ERR CONFIG SET failed (possibly related to argument 'maxmemory-samples') - argument must be between 1 and 2147483647 inclusive")
    );
    assert_eq!(
        raw.cmd(&["CONFIG", "GET", "maxmemory-samples"]),
        Frame::Array(vec![bulk("maxmemory-samples"), bulk("5")])
    );
}

#[test]
fn object_freq_and_idletime_replies_and_errors_match_redis() {
    let server = TestServer::start();
    let mut c = server.raw();
    let freq_error = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
    let idle_error = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(c.cmd(&["OBJECT", "FREQ", "k"]), err(freq_error));
    assert_eq!(c.cmd(&["OBJECT", "IDLETIME", "k"]), int(0));
    assert_eq!(c.cmd(&["OBJECT", "IDLETIME", "missing"]), Frame::Null);
    std::thread::sleep(Duration::from_millis(2_100));
    // EXISTS, TYPE, TTL and OBJECT itself are not accesses; GET and TOUCH are.
    assert_eq!(c.cmd(&["EXISTS", "k"]), int(1));
    assert_eq!(c.cmd(&["TYPE", "k"]), Frame::simple("string"));
    assert_eq!(c.cmd(&["TTL", "k"]), int(-1));
    let idle = c.cmd(&["OBJECT", "IDLETIME", "k"]);
    assert!(matches!(idle, Frame::Integer(2..=3)), "{idle:?}");
    assert_eq!(c.cmd(&["GET", "k"]), bulk("v"));
    assert_eq!(c.cmd(&["OBJECT", "IDLETIME", "k"]), int(0));
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(c.cmd(&["TOUCH", "k", "missing"]), int(1));
    assert_eq!(c.cmd(&["OBJECT", "IDLETIME", "k"]), int(0));

    assert_eq!(
        c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]),
        ok()
    );
    assert_eq!(c.cmd(&["OBJECT", "IDLETIME", "k"]), err(idle_error));
    assert_eq!(c.cmd(&["SET", "n", "v"]), ok());
    assert_eq!(c.cmd(&["OBJECT", "FREQ", "n"]), int(5));
    assert_eq!(c.cmd(&["GET", "n"]), bulk("v"));
    assert_eq!(c.cmd(&["OBJECT", "FREQ", "n"]), int(6));
    assert_eq!(c.cmd(&["OBJECT", "FREQ", "missing"]), Frame::Null);
    assert_eq!(
        c.cmd(&["OBJECT", "FREQ"]),
        err("ERR wrong number of arguments for 'object|freq' command")
    );
}

#[test]
fn used_memory_tracks_the_dataset() {
    let server = TestServer::start();
    let mut c = server.conn();
    // The first value allocates the page directory's first chunk; measure from there.
    let () = redis::cmd("SET")
        .arg("first")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let empty = field(&mut c, "memory", "used_memory");
    fill(&mut c, 0..1000, 1000);
    let full = field(&mut c, "memory", "used_memory");
    // 1000 values of 1000 bytes, plus about 100 bytes of index per key.
    let grown = full - empty;
    assert!((1_050_000..1_300_000).contains(&grown), "grew {grown}");
    let () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    // Deleted keys are not counted for eviction at once, and GC returns their memory.
    assert!(counted(&mut c) < empty + 100_000);
    // used_memory is page memory held: the open page keeps what was written to it (freed
    // now) until it fills, up to one 64 KiB page.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while field(&mut c, "memory", "used_memory") > empty + 100_000 + 65_536 {
        assert!(
            std::time::Instant::now() < deadline,
            "GC did not return the memory"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Under an LFU policy a checkpoint keeps each key's frequency, as Redis's RDB does: after SAVE
/// and a restart, OBJECT FREQ answers what it answered before.
#[test]
fn object_freq_survives_save_and_restart_under_an_lfu_policy() {
    let mut server = TestServer::with_args(&["--maxmemory-policy", "allkeys-lfu"]);
    let mut c = server.conn();
    fill(&mut c, 0..3, 10);
    for _ in 0..500 {
        let _: Option<String> = redis::cmd("GET").arg("key:0000").query(&mut c).unwrap();
    }
    let freq = |c: &mut redis::Connection, key: &str| -> i64 {
        redis::cmd("OBJECT").arg("FREQ").arg(key).query(c).unwrap()
    };
    let hot = freq(&mut c, "key:0000");
    let cold = freq(&mut c, "key:0001");
    assert!(hot > cold, "hot {hot}, cold {cold}");
    let _: String = redis::cmd("SAVE").query(&mut c).unwrap();
    server.restart();
    let mut c = server.conn();
    assert_eq!(freq(&mut c, "key:0000"), hot);
    assert_eq!(freq(&mut c, "key:0001"), cold);
}
