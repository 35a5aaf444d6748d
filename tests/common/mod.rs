//! Test harness: the real `tierkv-server` binary on a free loopback port in a temp dir, plus a
//! raw RESP client for byte-exact reply checks.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::BytesMut;
use tierkv::resp::{decode, Frame, Protocol};

/// A running server; killed on drop.
pub struct TestServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::with_args(&[])
    }

    pub fn with_args(extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, port) = spawn(&dir, &extra);
        TestServer {
            child: Some(child),
            port,
            dir,
            extra,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    pub fn conn(&self) -> redis::Connection {
        self.client().get_connection().unwrap()
    }

    pub fn raw(&self) -> RawClient {
        RawClient::connect(self.port)
    }

    /// Kills the process (SIGKILL) and starts it again on the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        let (child, port) = spawn(&self.dir, &self.extra);
        self.child = Some(child);
        self.port = port;
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal and waits for the exit status.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap()
    }

    /// Waits for the process to exit on its own (after SHUTDOWN).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.child.take().unwrap().wait().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(dir: &tempfile::TempDir, extra: &[String]) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tierkv-server"))
        .args(["--port", "0", "--dir"])
        .arg(dir.path().join("data"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("Ready to accept connections tcp ") {
                let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
                let _ = tx.send(port);
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server did not report its port");
    (child, port)
}

/// A minimal RESP client that returns replies as `Frame`s.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    pub fn connect(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        RawClient {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub fn send(&mut self, args: &[&str]) {
        let frame = Frame::Array(
            args.iter()
                .map(|a| Frame::Bulk(bytes::Bytes::copy_from_slice(a.as_bytes())))
                .collect(),
        );
        let mut out = BytesMut::new();
        frame.encode(&mut out, Protocol::Resp2);
        self.stream.write_all(&out).unwrap();
    }

    pub fn send_raw(&mut self, data: &[u8]) {
        self.stream.write_all(data).unwrap();
    }

    /// Reads one reply; `None` if the server closed the connection.
    pub fn read(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = decode(&mut self.buf).unwrap() {
                return Some(f);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub fn cmd(&mut self, args: &[&str]) -> Frame {
        self.send(args);
        self.read().expect("connection closed")
    }

    /// Whether the server has closed the connection (reads EOF).
    pub fn is_closed(&mut self) -> bool {
        self.read().is_none()
    }
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

pub fn err(s: &str) -> Frame {
    Frame::error(s)
}

pub fn int(n: i64) -> Frame {
    Frame::Integer(n)
}

pub fn ok() -> Frame {
    Frame::ok()
}
