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
