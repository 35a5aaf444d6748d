//! The SSD tier's reads through io_uring: one thread owns a ring, takes read requests from
//! any thread, keeps up to [`RING_DEPTH`] in flight and hands each completed read to its
//! callback. A miss on a small value then costs the connection no thread of its own: it
//! plans the read (`PageStore::plan_cold_read`, under the spill file's lock), submits it
//! here, awaits the callback, and checks the blocks (`PageStore::finish_cold_read`).
//!
//! Why a thread and not the connection's runtime: the ring's completions must be reaped by
//! someone, and storage/ knows nothing of tokio. The callback is a plain `FnOnce` (the server
//! completes a oneshot channel in it).
//!
//! Invariants: a request's buffer lives in this thread's table from submission until its
//! completion is reaped, so the kernel never writes into freed memory; the descriptor a
//! request names must stay open until its callback ran (the spill file is never closed while
//! the tier runs). If the ring cannot be created (an old kernel, a seccomp filter), [`Uring`]
//! is not built and reads go through positioned reads on a blocking pool instead.

use std::collections::HashMap;
use std::io;
use std::sync::mpsc;

use super::spill::AlignedBuf;

/// Reads in flight at most (the disk's queue depth from this reader).
pub const RING_DEPTH: u32 = 64;
/// Requests waiting for the ring at most; past it [`Uring::read`] refuses (the caller reads
/// the blocking way).
const QUEUE_MAX: usize = 4096;

/// What a completed read hands back: the blocks, 4 KiB-aligned.
pub struct Blocks(AlignedBuf);

impl Blocks {
    /// The bytes read.
    pub fn as_slice(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Called once with the read's outcome, on the ring's thread: keep it short.
pub type Done = Box<dyn FnOnce(io::Result<Blocks>) + Send>;

struct Request {
    fd: i32,
    offset: u64,
    len: usize,
    done: Done,
}

/// The ring's thread and the queue to it (see the module docs).
pub struct Uring {
    queue: mpsc::SyncSender<Request>,
}

impl std::fmt::Debug for Uring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uring").finish_non_exhaustive()
    }
}

impl Uring {
    /// Starts the ring's thread; `Err` if the kernel refuses a ring.
    #[cfg(target_os = "linux")]
    pub fn start() -> io::Result<Uring> {
        let ring = io_uring::IoUring::new(RING_DEPTH)?;
        let (queue, requests) = mpsc::sync_channel(QUEUE_MAX);
        std::thread::Builder::new()
            .name("tierkv-uring".into())
            .spawn(move || run(ring, requests))?;
        Ok(Uring { queue })
    }

    /// Not on this platform.
    #[cfg(not(target_os = "linux"))]
    pub fn start() -> io::Result<Uring> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring is Linux's",
        ))
    }

    /// Queues a read of `len` bytes (a multiple of 4 KiB) at `offset` (4 KiB-aligned) of `fd`;
    /// `done` gets the blocks. `Err(done)` back if the queue is full or the thread is gone.
    pub fn read(&self, fd: i32, offset: u64, len: usize, done: Done) -> Result<(), Done> {
        self.queue
            .try_send(Request {
                fd,
                offset,
                len,
                done,
            })
            .map_err(|e| match e {
                mpsc::TrySendError::Full(r) | mpsc::TrySendError::Disconnected(r) => r.done,
            })
    }
}

#[cfg(target_os = "linux")]
fn run(mut ring: io_uring::IoUring, requests: mpsc::Receiver<Request>) {
    use io_uring::{opcode, types};
    let mut in_flight: HashMap<u64, (AlignedBuf, usize, Done)> = HashMap::new();
    let mut next_id = 0u64;
    loop {
        // Wait for work only when nothing is in flight; otherwise take what has come.
        let mut batch = Vec::new();
        if in_flight.is_empty() {
            match requests.recv() {
                Ok(r) => batch.push(r),
                Err(_) => return, // every sender gone: the tier is gone
            }
        }
        while in_flight.len() + batch.len() < RING_DEPTH as usize {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        for request in batch {
            let mut buf = AlignedBuf::zeroed(request.len);
            let slice = buf.as_mut_slice();
            let len = u32::try_from(slice.len()).unwrap_or(u32::MAX);
            let entry = opcode::Read::new(types::Fd(request.fd), slice.as_mut_ptr(), len)
                .offset(request.offset)
                .build()
                .user_data(next_id);
            // SAFETY: the buffer stays in `in_flight` (its heap allocation does not move)
            // until this request's completion is reaped below; the descriptor stays open
            // (module invariants).
            let pushed = unsafe { ring.submission().push(&entry) }.is_ok();
            if pushed {
                in_flight.insert(next_id, (buf, request.len, request.done));
                next_id = next_id.wrapping_add(1);
            } else {
                (request.done)(Err(io::Error::other("io_uring submission queue full")));
            }
        }
        if in_flight.is_empty() {
            continue;
        }
        if let Err(error) = ring.submit_and_wait(1) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The ring is unusable: fail what is in flight (their callers read the blocking
            // way) and stop; later reads find the queue gone.
            for (_, (_, _, done)) in in_flight.drain() {
                done(Err(io::Error::new(error.kind(), error.to_string())));
            }
            return;
        }
        let completed: Vec<(u64, i32)> = ring
            .completion()
            .map(|cqe| (cqe.user_data(), cqe.result()))
            .collect();
        for (id, result) in completed {
            let Some((buf, len, done)) = in_flight.remove(&id) else {
                continue;
            };
            let outcome = if result < 0 {
                Err(io::Error::from_raw_os_error(-result))
            } else if (result as usize) < len {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "short read from the spill file",
                ))
            } else {
                Ok(Blocks(buf))
            };
            done(outcome);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;

    #[test]
    fn reads_come_back_to_their_callbacks_with_the_bytes_at_their_offsets() {
        let Ok(uring) = Uring::start() else {
            return; // no io_uring here: the blocking path is what runs, and is tested
        };
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let bytes: Vec<u8> = (0..64 * 4096).map(|i| (i / 4096) as u8).collect();
        file.write_all_at(&bytes, 0).unwrap();
        let (tx, rx) = mpsc::channel();
        for block in 0..64u64 {
            let tx = tx.clone();
            uring
                .read(
                    file.as_raw_fd(),
                    block * 4096,
                    4096,
                    Box::new(move |r| {
                        let _ = tx.send((block, r.map(|b| b.as_slice().to_vec())));
                    }),
                )
                .map_err(|_| ())
                .unwrap();
        }
        for _ in 0..64 {
            let (block, read) = rx.recv().unwrap();
            let read = read.unwrap();
            assert_eq!(read.len(), 4096);
            assert!(read.iter().all(|&b| b == block as u8), "block {block}");
        }
        // Past the end: a short read is an error, not zeros taken for data.
        let (tx, rx) = mpsc::channel();
        uring
            .read(
                file.as_raw_fd(),
                64 * 4096,
                4096,
                Box::new(move |r| {
                    let _ = tx.send(r.is_err());
                }),
            )
            .map_err(|_| ())
            .unwrap();
        assert!(rx.recv().unwrap(), "a read past the end fails");
    }
}
