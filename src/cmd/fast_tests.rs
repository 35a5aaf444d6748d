//! The single-key fast paths against the general path: the same command histories, over two
//! sessions with clock moves, MULTI/EXEC, WATCH, `TXN` and database switches, run on one server
//! whose sessions take the fast paths and on one whose sessions never do. Every reply, the
//! logged records (commit timestamps included) and the final keyspace must be the same.
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use proptest::prelude::*;
use txn::{CommitSink, Engine, EngineConfig, LogRecord, Lsn, ManualClock, TxnError};

use crate::cmd::tests::Harness;
use crate::cmd::{FastCx, TABLE};
use crate::config::Config;
use crate::resp::{split_args, Frame};
use crate::server::Shared;
use crate::session::Session;

/// The clock both servers start at (ms): EXAT/PXAT arguments below are around it.
const START_MS: u64 = 1_700_000_000_000;

#[derive(Default)]
struct RecordingSink {
    records: Mutex<Vec<Vec<u8>>>,
}

impl CommitSink for RecordingSink {
    fn append(&self, record: &[u8]) -> Result<Lsn, TxnError> {
        let mut records = self.records.lock();
        records.push(record.to_vec());
        Ok(Lsn(records.len() as u64))
    }
}

struct Server {
    shared: Arc<Shared>,
    sessions: Vec<Session>,
    clock: Arc<ManualClock>,
    sink: Arc<RecordingSink>,
}

impl Server {
    fn new(fast_paths: bool) -> Server {
        let clock = Arc::new(ManualClock::new(START_MS));
        let sink = Arc::new(RecordingSink::default());
        let engine = Engine::new(EngineConfig {
            clock: clock.clone(),
            sink: Some(sink.clone()),
            ..EngineConfig::default()
        });
        let shared = Shared::new(
            engine,
            Arc::new(RwLock::new(Config::default())),
            crate::persistence::Persistence::default(),
            0,
        );
        let sessions = (0..2)
            .map(|_| {
                let mut session = Harness::session_on(&shared);
                session.set_fast_paths(fast_paths);
                session
            })
            .collect();
        Server {
            shared,
            sessions,
            clock,
            sink,
        }
    }

    fn run(&mut self, session: usize, line: &str) -> Frame {
        let args = split_args(line.as_bytes()).unwrap();
        let shared = self.shared.clone();
        self.sessions[session].handle(args, &shared)
    }

    fn records(&self) -> Vec<LogRecord> {
        let records = self.sink.records.lock();
        records
            .iter()
            .map(|r| LogRecord::decode(r).unwrap())
            .collect()
    }

    /// Every key of databases 0 and 1 with its value and PTTL, read through the general path.
    fn keyspace(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        for db in ["0", "1"] {
            self.sessions[0].set_fast_paths(false);
            self.run(0, "DISCARD");
            self.run(0, "TXN ABORT");
            self.run(0, &format!("SELECT {db}"));
            let Frame::Array(mut keys) = self.run(0, "KEYS *") else {
                panic!("KEYS")
            };
            keys.sort_by_key(|k| format!("{k:?}"));
            for key in keys {
                let Frame::Bulk(key) = key else { panic!("key") };
                let key = String::from_utf8(key.to_vec()).unwrap();
                out.push(Frame::Bulk(Bytes::from(key.clone())));
                out.push(self.run(0, &format!("GET {key}")));
                out.push(self.run(0, &format!("PTTL {key}")));
            }
        }
        out
    }
}

fn command() -> impl Strategy<Value = String> {
    let key = prop_oneof![Just("a"), Just("b"), Just("c")];
    let value = prop_oneof![
        Just("1"),
        Just("-5"),
        Just("x"),
        Just("9223372036854775807"),
        Just("-9223372036854775808"),
        Just("\"\""),
    ];
    let ttl = prop_oneof![
        Just("EX 1".to_owned()),
        Just("EX 0".to_owned()),
        Just("EX -1".to_owned()),
        Just("ex 100".to_owned()),
        Just("PX 1".to_owned()),
        Just("PX 1500".to_owned()),
        Just("EX nan".to_owned()),
        Just(format!("EXAT {}", START_MS / 1000 + 1)),
        Just(format!("EXAT {}", START_MS / 1000 - 1)),
        Just(format!("PXAT {}", START_MS + 700)),
        Just("PXAT 1".to_owned()),
        Just("KEEPTTL".to_owned()),
        Just("NX".to_owned()),
        Just("XX".to_owned()),
        Just("GET".to_owned()),
        Just("EX 1 PX 2".to_owned()),
        Just("FOO 1".to_owned()),
    ];
    let delta = prop_oneof![
        Just("1"),
        Just("-1"),
        Just("7"),
        Just("9223372036854775807"),
        Just("-9223372036854775808"),
        Just("y"),
    ];
    prop_oneof![
        4 => (key.clone(), value.clone()).prop_map(|(k, v)| format!("SET {k} {v}")),
        3 => (key.clone(), value.clone(), ttl).prop_map(|(k, v, t)| format!("SET {k} {v} {t}")),
        4 => key.clone().prop_map(|k| format!("GET {k}")),
        1 => key.clone().prop_map(|k| format!("GET {k} {k}")),
        2 => key.clone().prop_map(|k| format!("INCR {k}")),
        1 => key.clone().prop_map(|k| format!("DECR {k}")),
        2 => (key.clone(), delta.clone()).prop_map(|(k, d)| format!("INCRBY {k} {d}")),
        1 => (key.clone(), delta).prop_map(|(k, d)| format!("DECRBY {k} {d}")),
        2 => key.clone().prop_map(|k| format!("DEL {k}")),
        1 => (key.clone(), key.clone()).prop_map(|(k, j)| format!("DEL {k} {j}")),
        1 => (key.clone(), prop_oneof![Just("1"), Just("0"), Just("100")])
            .prop_map(|(k, s)| format!("EXPIRE {k} {s}")),
        1 => key.clone().prop_map(|k| format!("PERSIST {k}")),
        1 => key.clone().prop_map(|k| format!("PTTL {k}")),
        1 => key.clone().prop_map(|k| format!("WATCH {k}")),
        1 => Just("UNWATCH".to_owned()),
        1 => Just("MULTI".to_owned()),
        1 => Just("EXEC".to_owned()),
        1 => Just("DISCARD".to_owned()),
        1 => Just("TXN BEGIN".to_owned()),
        1 => Just("TXN COMMIT".to_owned()),
        1 => Just("TXN ABORT".to_owned()),
        1 => Just("SELECT 1".to_owned()),
        1 => Just("SELECT 0".to_owned()),
        1 => Just("FLUSHDB".to_owned()),
        1 => Just("DBSIZE".to_owned()),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    /// A command line in session 0 or 1.
    Run(usize, String),
    /// Both clocks move forward.
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0usize..2, command()).prop_map(|(s, c)| Op::Run(s, c)),
        1 => prop_oneof![Just(1u64), Just(500), Just(1_000), Just(2_000)].prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn fast_paths_behave_like_the_general_path(ops in proptest::collection::vec(op(), 1..60)) {
        let mut fast = Server::new(true);
        let mut general = Server::new(false);
        for op in &ops {
            match op {
                Op::Run(session, line) => {
                    let got = fast.run(*session, line);
                    let expected = general.run(*session, line);
                    prop_assert_eq!(got, expected, "reply to {:?} in session {}", line, session);
                }
                Op::Advance(ms) => {
                    fast.clock.advance(*ms);
                    general.clock.advance(*ms);
                }
            }
        }
        prop_assert_eq!(fast.records(), general.records(), "logged records");
        prop_assert_eq!(fast.keyspace(), general.keyspace(), "keyspace");
    }
}

/// The fast paths take exactly the argument lists they are meant for and leave every other one
/// to the general path (so the comparison above compares something).
#[test]
fn fast_paths_take_only_their_own_argument_lists() {
    let server = Server::new(true);
    let cx = FastCx {
        db: 0,
        shared: &server.shared,
    };
    let fast = |name: &str| {
        TABLE
            .iter()
            .find(|e| e.spec.name == name)
            .and_then(|e| e.fast)
            .unwrap()
    };
    let args = |line: &str| split_args(line.as_bytes()).unwrap();
    let taken = |name: &str, line: &str| fast(name)(&args(line), &cx).is_some();
    assert!(taken("set", "k v"));
    assert!(taken("set", "k v EX 10"));
    assert!(taken("set", "k v pxat 1"));
    for line in [
        "k v NX",
        "k v XX",
        "k v GET",
        "k v KEEPTTL",
        "k v EX 0",
        "k v EX x",
        "k v EX 1 PX 1",
        "k",
    ] {
        assert!(!taken("set", line), "SET {line}");
    }
    assert!(taken("get", "k"));
    assert!(taken("incr", "k"));
    assert!(taken("decr", "k"));
    assert!(taken("incrby", "k 5"));
    assert!(!taken("incrby", "k x"));
    assert!(!taken("decrby", "k -9223372036854775808"));
    assert!(taken("del", "k"));
    assert!(!taken("del", "k j"));
    let with_fast: Vec<&str> = TABLE
        .iter()
        .filter(|e| e.fast.is_some())
        .map(|e| e.spec.name)
        .collect();
    assert_eq!(
        with_fast,
        ["get", "set", "incr", "decr", "incrby", "decrby", "del"]
    );
}

#[test]
fn fast_writes_break_watches_and_stay_out_of_multi_and_txn() {
    let mut s = Server::new(true);
    // WATCH in session 0; a fast-path write from session 1 fails the EXEC.
    for write in ["SET w 1", "INCR w", "DEL w"] {
        s.run(1, "SET w 0");
        assert_eq!(s.run(0, "WATCH w"), Frame::ok());
        s.run(1, write);
        s.run(0, "MULTI");
        s.run(0, "SET x 1");
        assert_eq!(s.run(0, "EXEC"), Frame::NullArray, "after {write}");
    }
    // A fast DEL of an absent key writes nothing, so the watch holds.
    assert_eq!(s.run(0, "WATCH nothing"), Frame::ok());
    assert_eq!(s.run(1, "DEL nothing"), Frame::Integer(0));
    s.run(0, "MULTI");
    assert_eq!(s.run(0, "INCR nothing"), Frame::simple("QUEUED"));
    assert_eq!(s.run(0, "EXEC"), Frame::Array(vec![Frame::Integer(1)]));
    // Inside TXN a SET is part of the transaction: invisible to others until TXN COMMIT.
    assert_eq!(s.run(0, "TXN BEGIN"), Frame::ok());
    assert_eq!(s.run(0, "SET t 1"), Frame::ok());
    assert_eq!(s.run(1, "GET t"), Frame::Null);
    assert!(matches!(s.run(0, "TXN COMMIT"), Frame::Integer(_)));
    assert_eq!(s.run(1, "GET t"), Frame::Bulk(Bytes::from("1")));
}
