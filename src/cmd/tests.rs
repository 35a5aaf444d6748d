//! In-process command tests: a `Session` on an in-memory engine, no sockets.
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::config::Config;
use crate::resp::Frame;
use crate::server::{ClientHandle, Shared};
use crate::session::Session;

/// A session plus its server, for driving commands in tests.
pub struct Harness {
    pub shared: Arc<Shared>,
    pub session: Session,
}

impl Harness {
    pub fn new() -> Harness {
        let shared = Shared::new(
            txn::Engine::new(txn::EngineConfig::default()),
            Arc::new(RwLock::new(Config::default())),
            crate::persistence::Persistence::default(),
            0,
        );
        let session = Harness::session_on(&shared);
        Harness { shared, session }
    }

    pub fn session_on(shared: &Arc<Shared>) -> Session {
        let addr = "127.0.0.1:1".parse().unwrap();
        let client = Arc::new(ClientHandle::new(shared.next_client_id(), addr, addr));
        shared.clients.lock().insert(client.id, client.clone());
        Session::new(client, shared)
    }

    pub fn run(&mut self, line: &str) -> Frame {
        let args = crate::resp::split_args(line.as_bytes()).unwrap();
        self.session.handle(args, &self.shared)
    }
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

pub fn err(s: &str) -> Frame {
    Frame::error(s)
}

#[test]
fn arity_and_unknown_command_errors_match_redis() {
    let mut h = Harness::new();
    assert_eq!(
        h.run("GET"),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        h.run("foo a b"),
        err("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(h.run("PiNg"), Frame::simple("PONG"));
}

#[test]
fn every_table_entry_is_reachable_by_name() {
    for (i, e) in super::TABLE.iter().enumerate() {
        let (idx, found) = super::lookup(e.spec.name.to_uppercase().as_bytes()).unwrap();
        assert_eq!(idx, i);
        assert_eq!(found.spec.name, e.spec.name);
        assert!(e.spec.arity != 0, "{}", e.spec.name);
    }
}

#[test]
fn multi_queues_and_exec_runs_atomically() {
    let mut h = Harness::new();
    assert_eq!(h.run("MULTI"), Frame::ok());
    assert_eq!(h.run("SET a 1"), Frame::simple("QUEUED"));
    assert_eq!(h.run("INCR a"), Frame::simple("QUEUED"));
    assert_eq!(h.run("SET a 1 XX NX"), Frame::simple("QUEUED"));
    assert_eq!(
        h.run("EXEC"),
        Frame::Array(vec![
            Frame::ok(),
            Frame::Integer(2),
            err("ERR syntax error")
        ])
    );
    assert_eq!(h.run("GET a"), bulk("2"));
}

#[test]
fn queue_time_errors_abort_exec() {
    let mut h = Harness::new();
    h.run("MULTI");
    assert_eq!(
        h.run("GET"),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        h.run("EXEC"),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(h.run("EXEC"), err("ERR EXEC without MULTI"));
}

#[test]
fn watch_fails_exec_after_another_session_writes() {
    let mut a = Harness::new();
    let mut b = Session::new(a.session.client.clone(), &a.shared);
    a.run("SET k 1");
    assert_eq!(a.run("WATCH k"), Frame::ok());
    b.handle(
        vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("2")],
        &a.shared,
    );
    a.run("MULTI");
    a.run("SET k 3");
    assert_eq!(a.run("EXEC"), Frame::NullArray);
    assert_eq!(a.run("GET k"), bulk("2"));
}

#[test]
fn interactive_txn_sees_snapshot_and_conflicts() {
    let mut a = Harness::new();
    let mut b = Harness {
        shared: a.shared.clone(),
        session: Harness::session_on(&a.shared),
    };
    a.run("SET k 1");
    assert_eq!(a.run("TXN BEGIN"), Frame::ok());
    assert_eq!(a.run("GET k"), bulk("1"));
    b.run("SET k 2");
    assert_eq!(a.run("GET k"), bulk("1"), "snapshot read");
    a.run("SET k 10");
    assert_eq!(a.run("GET k"), bulk("10"), "own write");
    assert_eq!(
        a.run("TXN COMMIT"),
        err("CONFLICT transaction aborted: a concurrent transaction committed a conflicting write")
    );
    assert_eq!(a.run("GET k"), bulk("2"));
    assert_eq!(a.run("TXN COMMIT"), err("ERR no TXN in progress"));
}

#[test]
fn noauth_until_auth_when_password_set() {
    let mut h = Harness::new();
    h.shared.config.write().requirepass = Some("secret".into());
    h.session.reset(&h.shared);
    assert_eq!(h.run("GET a"), err("NOAUTH Authentication required."));
    assert_eq!(
        h.run("AUTH wrong"),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(h.run("AUTH default secret"), Frame::ok());
    assert_eq!(h.run("GET a"), Frame::Null);
}

mod model {
    //! Random command sequences against a `BTreeMap` model: every reply must match.
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::{bulk, Harness};
    use crate::resp::Frame;

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, u8),
        SetNx(u8, u8),
        Get(u8),
        Del(u8, u8),
        Append(u8, u8),
        Incr(u8),
        Exists(u8, u8),
        GetDel(u8),
        Rename(u8, u8),
        MSet(u8, u8, u8),
        MGet(u8, u8),
        StrLen(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let k = 0u8..4;
        let v = 0u8..3;
        prop_oneof![
            (k.clone(), v.clone()).prop_map(|(k, v)| Op::Set(k, v)),
            (k.clone(), v.clone()).prop_map(|(k, v)| Op::SetNx(k, v)),
            k.clone().prop_map(Op::Get),
            (k.clone(), k.clone()).prop_map(|(a, b)| Op::Del(a, b)),
            (k.clone(), v.clone()).prop_map(|(k, v)| Op::Append(k, v)),
            k.clone().prop_map(Op::Incr),
            (k.clone(), k.clone()).prop_map(|(a, b)| Op::Exists(a, b)),
            k.clone().prop_map(Op::GetDel),
            (k.clone(), k.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
            (k.clone(), k.clone(), v).prop_map(|(a, b, v)| Op::MSet(a, b, v)),
            (k.clone(), k.clone()).prop_map(|(a, b)| Op::MGet(a, b)),
            k.prop_map(Op::StrLen),
        ]
    }

    fn key(k: u8) -> String {
        format!("k{k}")
    }

    fn val(v: u8) -> String {
        ["1", "x", "10"][usize::from(v) % 3].to_owned()
    }

    fn opt(m: &BTreeMap<String, String>, k: &str) -> Frame {
        m.get(k).map_or(Frame::Null, |v| bulk(v))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn string_commands_match_a_map_model(ops in proptest::collection::vec(op(), 1..40)) {
            let mut h = Harness::new();
            let mut m: BTreeMap<String, String> = BTreeMap::new();
            for op in ops {
                let (line, expected) = match op {
                    Op::Set(k, v) => {
                        m.insert(key(k), val(v));
                        (format!("SET {} {}", key(k), val(v)), Frame::ok())
                    }
                    Op::SetNx(k, v) => {
                        let fresh = !m.contains_key(&key(k));
                        if fresh {
                            m.insert(key(k), val(v));
                        }
                        (format!("SETNX {} {}", key(k), val(v)), Frame::Integer(i64::from(fresh)))
                    }
                    Op::Get(k) => (format!("GET {}", key(k)), opt(&m, &key(k))),
                    Op::Del(a, b) => {
                        let mut n = i64::from(m.remove(&key(a)).is_some());
                        if a != b {
                            n += i64::from(m.remove(&key(b)).is_some());
                        }
                        (format!("DEL {} {}", key(a), key(b)), Frame::Integer(n))
                    }
                    Op::Append(k, v) => {
                        let e = m.entry(key(k)).or_default();
                        e.push_str(&val(v));
                        let len = e.len() as i64;
                        (format!("APPEND {} {}", key(k), val(v)), Frame::Integer(len))
                    }
                    Op::Incr(k) => {
                        let cur = m.get(&key(k)).cloned().unwrap_or_else(|| "0".into());
                        let expected = match crate::resp::parse_i64(cur.as_bytes()) {
                            Some(n) => {
                                m.insert(key(k), (n + 1).to_string());
                                Frame::Integer(n + 1)
                            }
                            None => Frame::error("ERR value is not an integer or out of range"),
                        };
                        (format!("INCR {}", key(k)), expected)
                    }
                    Op::Exists(a, b) => {
                        let n = i64::from(m.contains_key(&key(a))) + i64::from(m.contains_key(&key(b)));
                        (format!("EXISTS {} {}", key(a), key(b)), Frame::Integer(n))
                    }
                    Op::GetDel(k) => {
                        let old = opt(&m, &key(k));
                        m.remove(&key(k));
                        (format!("GETDEL {}", key(k)), old)
                    }
                    Op::Rename(a, b) => {
                        let expected = match m.remove(&key(a)) {
                            None => Frame::error("ERR no such key"),
                            Some(v) => {
                                m.insert(key(b), v);
                                Frame::ok()
                            }
                        };
                        (format!("RENAME {} {}", key(a), key(b)), expected)
                    }
                    Op::MSet(a, b, v) => {
                        m.insert(key(a), val(v));
                        m.insert(key(b), val(v));
                        (format!("MSET {} {} {} {}", key(a), val(v), key(b), val(v)), Frame::ok())
                    }
                    Op::MGet(a, b) => (format!("MGET {} {}", key(a), key(b)), Frame::Array(vec![opt(&m, &key(a)), opt(&m, &key(b))])),
                    Op::StrLen(k) => (format!("STRLEN {}", key(k)), Frame::Integer(m.get(&key(k)).map_or(0, |v| v.len() as i64))),
                };
                prop_assert_eq!(h.run(&line), expected, "{}", line);
            }
            let Frame::Array(keys) = h.run("KEYS *") else { panic!() };
            prop_assert_eq!(keys, m.keys().map(|k| bulk(k)).collect::<Vec<_>>());
        }
    }
}

#[test]
fn a_failed_write_ahead_log_answers_misconf_and_reads_go_on() {
    // A sink that refuses every append, as a poisoned WAL does (nothing appended).
    struct FullDisk;
    impl txn::CommitSink for FullDisk {
        fn append(&self, _record: &[u8]) -> Result<txn::Lsn, txn::TxnError> {
            Err(txn::TxnError::Sink(
                std::io::Error::from(std::io::ErrorKind::StorageFull).into(),
            ))
        }
    }
    let shared = Shared::new(
        txn::Engine::new(txn::EngineConfig {
            sink: Some(Arc::new(FullDisk)),
            ..txn::EngineConfig::default()
        }),
        Arc::new(RwLock::new(Config::default())),
        crate::persistence::Persistence::default(),
        0,
    );
    let mut h = Harness {
        session: Harness::session_on(&shared),
        shared,
    };
    match h.run("SET k v") {
        Frame::Error(text) => assert!(
            text.starts_with(b"MISCONF Errors writing to the AOF file"),
            "{}",
            String::from_utf8_lossy(&text)
        ),
        other => panic!("expected -MISCONF, got {other:?}"),
    }
    match h.run("INCR n") {
        Frame::Error(text) => assert!(text.starts_with(b"MISCONF")),
        other => panic!("expected -MISCONF, got {other:?}"),
    }
    assert_eq!(h.run("GET k"), Frame::Null);
    assert_eq!(h.run("EXISTS k"), Frame::Integer(0));
}

#[test]
fn keyspace_wide_commands_queue_inside_multi_and_later_commands_see_them() {
    let mut h = Harness::new();
    assert_eq!(h.run("SET a 1"), Frame::ok());
    assert_eq!(h.run("SELECT 1"), Frame::ok());
    assert_eq!(h.run("SET x 9"), Frame::ok());
    assert_eq!(h.run("SELECT 0"), Frame::ok());
    assert_eq!(h.run("MULTI"), Frame::ok());
    for cmd in [
        "SET a 2",
        "FLUSHDB",
        "DBSIZE",
        "GET a",
        "SET b 3",
        "SWAPDB 0 1",
        "GET x",
        "RANDOMKEY",
        "SWAPDB 0 99",
    ] {
        assert_eq!(h.run(cmd), Frame::simple("QUEUED"), "{cmd}");
    }
    assert_eq!(
        h.run("EXEC"),
        Frame::Array(vec![
            Frame::ok(),
            Frame::ok(),
            Frame::Integer(0),
            Frame::Null,
            Frame::ok(),
            Frame::ok(),
            bulk("9"),
            bulk("x"),
            err("ERR DB index is out of range"),
        ])
    );
    assert_eq!(h.run("GET x"), bulk("9"));
    assert_eq!(h.run("GET a"), Frame::Null);
    assert_eq!(h.run("SELECT 1"), Frame::ok());
    assert_eq!(h.run("GET b"), bulk("3"));
    assert_eq!(h.run("DBSIZE"), Frame::Integer(1));
    // FLUSHALL inside MULTI, and FLUSHDB inside an aborted TXN, which then never happened.
    assert_eq!(h.run("MULTI"), Frame::ok());
    assert_eq!(h.run("FLUSHALL"), Frame::simple("QUEUED"));
    assert_eq!(h.run("SET c 4"), Frame::simple("QUEUED"));
    assert_eq!(h.run("EXEC"), Frame::Array(vec![Frame::ok(), Frame::ok()]));
    assert_eq!(h.run("DBSIZE"), Frame::Integer(1));
    assert_eq!(h.run("TXN BEGIN"), Frame::ok());
    assert_eq!(h.run("FLUSHDB"), Frame::ok());
    assert_eq!(h.run("DBSIZE"), Frame::Integer(0));
    assert_eq!(h.run("TXN ABORT"), Frame::ok());
    assert_eq!(h.run("GET c"), bulk("4"));
}

#[test]
fn decrby_of_the_smallest_integer_and_fixed_persistence_settings() {
    let mut h = Harness::new();
    assert_eq!(
        h.run("DECRBY k -9223372036854775808"),
        err("ERR decrement would overflow")
    );
    for setting in ["appendonly no", "appendfsync always"] {
        match h.run(&format!("CONFIG SET {setting}")) {
            Frame::Error(_) => {}
            other => panic!("CONFIG SET {setting} must be refused, got {other:?}"),
        }
    }
}
