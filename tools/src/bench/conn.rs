//! One benchmark connection: plans batches, pipelines each round trip in one write, parses the
//! replies and records results.
//!
//! Invariant: every operation taken from the source ends exactly once, either as a latency
//! sample (completed) or as an error; a broken connection fails the operations in flight
//! with `io` and reconnects, so counts stay exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ops::{Op, OpContext, Planner, Scratch, Step};
use super::resp::{parse_reply, ProtocolError, Reply};
use super::schedule::Schedule;
use super::stats::Stats;

/// Most bytes of unparsed replies held for one connection.
pub const READ_BUFFER_MAX_BYTES: usize = 1 << 30;
/// Bytes requested from the socket per read.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Pause before reconnecting after a connection failed.
pub const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// Why a round trip failed as a whole.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnError {
    /// Socket error, or the server closed the connection.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent bytes that are not RESP2.
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// More unparsed reply bytes than [`READ_BUFFER_MAX_BYTES`].
    #[error("reply buffer over {READ_BUFFER_MAX_BYTES} bytes")]
    ReplyTooLarge,
    /// A round trip took longer than the configured timeout.
    #[error("round trip timed out")]
    Timeout,
}

impl ConnError {
    fn kind(&self) -> &'static str {
        match self {
            ConnError::Io(_) => "io",
            ConnError::Protocol(_) => "protocol",
            ConnError::ReplyTooLarge => "reply_too_large",
            ConnError::Timeout => "timeout",
        }
    }
}

/// Where a connection's operations come from.
#[derive(Debug)]
pub enum Source {
    /// Load phase: items `next..end` (see [`Planner::load_item`]), once each, in order.
    Load {
        /// Next item.
        next: u64,
        /// One past the last item.
        end: u64,
    },
    /// Run phase: draw from the workload.
    Run(Box<Planner>),
}

/// When a connection stops taking new operations.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    /// Stop once this instant has passed.
    pub deadline: Option<Instant>,
    /// Stop after this many operations.
    pub ops_max: Option<u64>,
}

/// Counters the progress display reads while connections run.
#[derive(Debug, Default)]
pub struct Progress {
    /// Operations completed.
    pub completed: AtomicU64,
    /// Operations failed.
    pub failed: AtomicU64,
    /// Reads that did not match.
    pub mismatched: AtomicU64,
}

/// Everything one connection needs.
#[derive(Debug)]
pub struct ConnPlan {
    /// `host:port` of the server.
    pub addr: String,
    /// Operations to run.
    pub source: Source,
    /// Operations per batch (pipeline depth).
    pub pipeline: usize,
    /// When to stop.
    pub stop: Stop,
    /// Open-loop schedule; `None` for closed loop.
    pub schedule: Option<Schedule>,
    /// Longest wait for one batch (connect included) before the connection is dropped.
    pub timeout: Duration,
}

/// Runs one connection to completion and returns its results.
pub async fn drive(mut plan: ConnPlan, ctx: Arc<OpContext>, progress: Arc<Progress>) -> Stats {
    let mut stats = Stats::default();
    let mut conn: Option<Conn> = None;
    let mut taken = 0u64;
    let mut carry: Option<Op> = None;
    let pipeline = plan.pipeline.max(1);
    loop {
        let now = Instant::now();
        if plan.stop.deadline.is_some_and(|d| now >= d) {
            break;
        }
        let quota = plan
            .stop
            .ops_max
            .map_or(u64::MAX, |m| m.saturating_sub(taken));
        if quota == 0 && carry.is_none() {
            break;
        }
        let mut batch = Vec::with_capacity(pipeline);
        if let Some(mut op) = carry.take() {
            if plan.schedule.is_none() {
                // Closed loop: an operation starts when it is sent.
                op.start = now;
            }
            batch.push(op);
        }
        let room = pipeline
            .saturating_sub(batch.len())
            .min(usize::try_from(quota).unwrap_or(usize::MAX));
        let starts: Vec<Instant> = match &mut plan.schedule {
            Some(schedule) => {
                let due = schedule.next_due();
                if due > now && batch.is_empty() {
                    let wake = plan.stop.deadline.map_or(due, |d| due.min(d));
                    tokio::time::sleep_until(wake.into()).await;
                    continue;
                }
                schedule.take_due(now, room)
            }
            None => vec![now; room],
        };
        let mut exhausted = false;
        for start in starts {
            let op = match &mut plan.source {
                Source::Load { next, end } => {
                    if *next >= *end {
                        exhausted = true;
                        break;
                    }
                    *next += 1;
                    Planner::load_item(&ctx.versions, *next - 1, start)
                }
                Source::Run(planner) => planner.next(&ctx.versions, start),
            };
            taken += 1;
            if op.needs_exclusive_watch() && batch.iter().any(Op::needs_exclusive_watch) {
                carry = Some(op);
                break;
            }
            batch.push(op);
        }
        if batch.is_empty() {
            if exhausted {
                break;
            }
            continue;
        }
        let live = match conn.take() {
            Some(c) => Ok(c),
            None => match tokio::time::timeout(plan.timeout, Conn::connect(&plan.addr)).await {
                Ok(connected) => connected.map_err(ConnError::Io),
                Err(_) => Err(ConnError::Timeout),
            },
        };
        let outcome = match live {
            Ok(mut c) => {
                // Cancelling at an await point leaves `batch` holding exactly the unfinished
                // operations: it is only rewritten between awaits.
                let round_trips = c.run_batch(&mut batch, &ctx, &mut stats, &progress);
                let result = match tokio::time::timeout(plan.timeout, round_trips).await {
                    Ok(result) => result,
                    Err(_) => Err(ConnError::Timeout),
                };
                if result.is_ok() {
                    conn = Some(c);
                }
                result
            }
            Err(e) => Err(e),
        };
        if let Err(error) = outcome {
            // The ops left in `batch` never completed: count them, then back off.
            for _ in &batch {
                stats.error(error.kind());
            }
            progress
                .failed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            let pause = plan.stop.deadline.map_or(RECONNECT_DELAY, |d| {
                RECONNECT_DELAY.min(d.saturating_duration_since(Instant::now()))
            });
            tokio::time::sleep(pause).await;
        }
        if exhausted {
            break;
        }
    }
    if let Source::Run(planner) = &mut plan.source {
        stats.trace = planner.take_trace();
    }
    stats
}

struct Conn {
    stream: TcpStream,
    write_buf: Vec<u8>,
    read_buf: Vec<u8>,
    scratch: Scratch,
}

impl Conn {
    async fn connect(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            write_buf: Vec::with_capacity(READ_CHUNK_BYTES),
            read_buf: Vec::with_capacity(READ_CHUNK_BYTES),
            scratch: Scratch::default(),
        })
    }

    /// Runs `batch` to completion, round trip by round trip; on success `batch` is empty, on
    /// failure it holds the operations that did not finish.
    async fn run_batch(
        &mut self,
        batch: &mut Vec<Op>,
        ctx: &OpContext,
        stats: &mut Stats,
        progress: &Progress,
    ) -> Result<(), ConnError> {
        let mut reply_counts = Vec::with_capacity(batch.len());
        while !batch.is_empty() {
            self.write_buf.clear();
            reply_counts.clear();
            for op in batch.iter_mut() {
                reply_counts.push(op.encode(ctx, &mut self.scratch, &mut self.write_buf));
            }
            self.stream.write_all(&self.write_buf).await?;
            let expected: usize = reply_counts.iter().sum();
            self.fill_replies(expected).await?;
            let done_at = Instant::now();

            let mut pos = 0usize;
            let mut replies: Vec<Reply<'_>> = Vec::new();
            let mut still = Vec::with_capacity(batch.len());
            let (mut completed, mut failed) = (0u64, 0u64);
            let mismatched_before = stats.mismatched();
            for (mut op, count) in batch.drain(..).zip(reply_counts.iter().copied()) {
                replies.clear();
                for _ in 0..count {
                    let rest = self.read_buf.get(pos..).unwrap_or_default();
                    let (reply, used) = parse_reply(rest)?.ok_or(ProtocolError::BadInteger)?;
                    replies.push(reply);
                    pos += used;
                }
                match op.on_replies(&replies, ctx, stats) {
                    Step::More => still.push(op),
                    Step::Done => {
                        stats.record(op.kind, done_at.saturating_duration_since(op.start));
                        completed += 1;
                    }
                    Step::Failed(kind) => {
                        stats.error(&kind);
                        failed += 1;
                    }
                }
            }
            drop(replies);
            self.read_buf.drain(..pos);
            *batch = still;
            progress.completed.fetch_add(completed, Ordering::Relaxed);
            progress.failed.fetch_add(failed, Ordering::Relaxed);
            progress
                .mismatched
                .fetch_add(stats.mismatched() - mismatched_before, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reads until `read_buf` holds at least `expected` complete replies.
    async fn fill_replies(&mut self, expected: usize) -> Result<(), ConnError> {
        let mut pos = 0usize;
        let mut parsed = 0usize;
        while parsed < expected {
            let rest = self.read_buf.get(pos..).unwrap_or_default();
            if let Some((_, used)) = parse_reply(rest)? {
                pos += used;
                parsed += 1;
                continue;
            }
            if self.read_buf.len() > READ_BUFFER_MAX_BYTES {
                return Err(ConnError::ReplyTooLarge);
            }
            self.read_buf.reserve(READ_CHUNK_BYTES);
            let n = self.stream.read_buf(&mut self.read_buf).await?;
            if n == 0 {
                return Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        Ok(())
    }
}
