//! The durability seam: with a WAL configured, a write's reply goes out only once its LSN is
//! durable.
mod common;

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{bulk, ok, RawClient, TestServer};
use parking_lot::RwLock;
use tierkv::config::Config;
use tierkv::persistence::{DurableDone, DurableWaiter, Persistence};
use tierkv::resp::Frame;

/// A commit sink that hands out consecutive LSNs and stores nothing.
struct CountingSink(AtomicU64);

impl txn::CommitSink for CountingSink {
    fn append(&self, _record: &[u8]) -> Result<storage::Lsn, txn::TxnError> {
        Ok(storage::Lsn(self.0.fetch_add(1, Ordering::SeqCst) + 1))
    }
}

/// A durable position the test moves by hand.
#[derive(Default)]
struct Gate(parking_lot::Mutex<GateState>);

#[derive(Default)]
struct GateState {
    lsn: u64,
    failed: bool,
    waiting: Vec<(u64, DurableDone)>,
}

impl Gate {
    /// Everything up to `lsn` is durable; with `failed`, nothing more will be.
    fn set(&self, lsn: u64, failed: bool) {
        let mut st = self.0.lock();
        st.lsn = lsn;
        st.failed = failed;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut st.waiting)
            .into_iter()
            .partition(|(l, _)| *l <= lsn || failed);
        st.waiting = waiting;
        drop(st);
        for (l, cb) in done {
            cb(if l <= lsn { Ok(()) } else { Err(lsn) });
        }
    }
}

impl DurableWaiter for Gate {
    fn on_durable(&self, lsn: u64, done: DurableDone) {
        let mut st = self.0.lock();
        if lsn <= st.lsn {
            drop(st);
            done(Ok(()));
        } else if st.failed {
            let at = st.lsn;
            drop(st);
            done(Err(at));
        } else {
            st.waiting.push((lsn, done));
        }
    }
}

/// A server whose engine logs into `CountingSink` and whose durable position the test moves.
struct Gated {
    rt: tokio::runtime::Runtime,
    port: u16,
    sink: Arc<CountingSink>,
    gate: Arc<Gate>,
}

fn gated_server() -> Gated {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sink = Arc::new(CountingSink(AtomicU64::new(0)));
    let engine = txn::Engine::new(txn::EngineConfig {
        sink: Some(sink.clone()),
        ..txn::EngineConfig::default()
    });
    let gate = Arc::new(Gate::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = Arc::new(RwLock::new(Config::default()));
    rt.spawn(tierkv::server::run_with_durability(
        listener,
        engine,
        config,
        Persistence {
            durability: None,
            waiter: Some(gate.clone()),
        },
        std::future::pending::<()>(),
    ));
    Gated {
        rt,
        port,
        sink,
        gate,
    }
}

#[test]
fn replies_wait_for_the_durable_lsn() {
    let Gated {
        rt,
        port,
        sink,
        gate,
    } = gated_server();
    let mut writer = RawClient::connect(port);
    let mut reader = RawClient::connect(port);
    // Reads need no durability.
    assert_eq!(reader.cmd(&["GET", "k"]), Frame::Null);
    writer.send(&["SET", "k", "v"]);
    // Wait (by polling, no timing) until the commit has reached the log...
    while sink.0.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    // ...then a round trip on another connection, so the writer's batch has surely finished
    // executing; its reply must still be held back: the LSN is not durable yet.
    assert_eq!(reader.cmd(&["PING"]), Frame::simple("PONG"));
    let lsn = sink.0.load(Ordering::SeqCst);
    writer.stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        writer.stream.read(&mut byte).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    writer.stream.set_nonblocking(false).unwrap();
    // A read that sees the not-yet-durable write is held back too: a crash now would take the
    // write back, so nobody may learn of it yet.
    reader.send(&["GET", "k"]);
    gate.set(lsn, false);
    assert_eq!(writer.read().unwrap(), ok());
    assert_eq!(reader.read().unwrap(), bulk("v"));
    rt.shutdown_background();
}

#[test]
fn when_the_log_fails_writes_go_unanswered_and_reads_go_on() {
    let Gated {
        rt,
        port,
        sink,
        gate,
    } = gated_server();
    let mut writer = RawClient::connect(port);
    let mut reader = RawClient::connect(port);
    writer.send(&["SET", "k", "v"]);
    while sink.0.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    reader.send(&["GET", "k"]);
    // The fsync covering the SET fails: nothing is durable past LSN 0.
    gate.set(0, true);
    assert_eq!(writer.read(), None, "the write is never acknowledged");
    let reply = reader.read().unwrap();
    assert!(
        reply == bulk("v") || reply == Frame::Null,
        "reads are answered: {reply:?}"
    );
    assert_eq!(reader.cmd(&["PING"]), Frame::simple("PONG"));
    rt.shutdown_background();
}

/// A second server on a data directory in use refuses to start, before it recovers anything,
/// and the first one goes on with every write it acknowledged (issue #13, item 1: both used
/// to accept writes, and an acknowledged write was lost).
#[test]
fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let mut first = TestServer::start();
    let mut c = first.conn();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("first")
        .query(&mut c)
        .unwrap();
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_tierkv-server"))
        .args(["--port", "0", "--dir"])
        .arg(first.dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains("is in use by another tierkv-server (pid ")
            && stderr.contains("Stop the other server"),
        "{stderr}"
    );
    let _: () = redis::cmd("SET")
        .arg("k2")
        .arg("still")
        .query(&mut c)
        .unwrap();
    // A killed server leaves no stale lock: the restart takes it at once.
    first.restart();
    let mut c = first.conn();
    let got: (String, String) = redis::cmd("MGET").arg("k").arg("k2").query(&mut c).unwrap();
    assert_eq!(got, ("first".to_string(), "still".to_string()));
}
