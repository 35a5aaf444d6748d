//! Planned operations: what each sends per round trip and how each checks its replies.
//!
//! Invariant: an operation's reads capture their version floor when they are encoded, before
//! the bytes go out, and its writes are settled in [`Versions`] only once the server replied
//! (acknowledged on OK, not applied on an error or an aborted EXEC); so a floor never counts
//! a write whose fate is unknown.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::Rng;

use super::dist::KeyChooser;
use super::keyspace::{KeyShape, Versions, WriteTicket};
use super::resp::{encode_array_header, encode_bulk, encode_command, Reply};
use super::stats::Stats;
use super::workload::{Mix, OpKind};

/// Shared, read-mostly context for encoding and checking.
#[derive(Debug)]
pub struct OpContext {
    /// Key and value shapes.
    pub shape: KeyShape,
    /// Version bounds of the target server.
    pub versions: std::sync::Arc<Versions>,
}

/// Per-connection scratch buffers, reused so the hot path does not allocate per key.
#[derive(Debug, Default)]
pub struct Scratch {
    key: Vec<u8>,
    value: Vec<u8>,
}

/// What an operation needs after its replies of one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send the next round.
    More,
    /// Finished; record its latency.
    Done,
    /// The server answered with an error (kind, e.g. `ERR`, `WRONGTYPE`, `UNEXPECTED`).
    Failed(String),
}

#[derive(Debug, Clone)]
enum Body {
    Get { id: u64, floor: u64 },
    Set { id: u64 },
    Del { id: u64, counter: bool },
    Keys { ids: Vec<u64>, floors: Vec<u64> },
    Mset { ids: Vec<u64> },
    Rmw { id: u64, floor: u64 },
    Incr { id: u64, floor: u64 },
    Multi { ids: Vec<u64> },
    Txn { id: u64, floor: u64 },
}

/// One operation in flight on a connection.
#[derive(Debug, Clone)]
pub struct Op {
    /// Its kind (the histogram it lands in).
    pub kind: OpKind,
    /// When it was meant to start: the send time (closed loop) or the scheduled time (open
    /// loop), so queueing in the client counts against latency.
    pub start: Instant,
    round: u8,
    body: Body,
    /// Writes sent and not yet settled; dropped unsettled if the connection fails, because
    /// then nobody knows whether they applied.
    tickets: Vec<WriteTicket>,
}

impl Op {
    fn new(kind: OpKind, start: Instant, body: Body) -> Op {
        Op {
            kind,
            start,
            round: 0,
            body,
            tickets: Vec::new(),
        }
    }

    /// A load-phase write of key `id`.
    pub fn load(id: u64, start: Instant) -> Op {
        Op::new(OpKind::Insert, start, Body::Set { id })
    }

    /// A load-phase delete of data key `id` (clearing the insert range of an earlier run), or
    /// of INCR counter `id` when `counter`.
    pub fn clear(id: u64, counter: bool, start: Instant) -> Op {
        Op::new(OpKind::Del, start, Body::Del { id, counter })
    }

    /// True for operations that use connection state (WATCH) and so may not share a batch
    /// with another such operation.
    pub fn needs_exclusive_watch(&self) -> bool {
        self.kind == OpKind::Txn
    }

    /// Appends this operation's commands for its current round; returns how many replies they
    /// produce.
    pub fn encode(&mut self, ctx: &OpContext, scratch: &mut Scratch, out: &mut Vec<u8>) -> usize {
        let versions = &ctx.versions;
        let shape = &ctx.shape;
        let tickets = &mut self.tickets;
        match &mut self.body {
            Body::Get { id, floor } => {
                *floor = versions.read_floor(*id);
                shape.key(*id, &mut scratch.key);
                encode_command(out, &[b"GET", &scratch.key]);
                1
            }
            Body::Set { id } => {
                encode_set(ctx, scratch, out, versions.issue(*id), tickets);
                1
            }
            Body::Del { id, counter } => {
                if *counter {
                    shape.counter_key(*id, &mut scratch.key);
                } else {
                    shape.key(*id, &mut scratch.key);
                }
                encode_command(out, &[b"DEL", &scratch.key]);
                1
            }
            Body::Keys { ids, floors } => {
                encode_array_header(out, ids.len() + 1);
                encode_bulk(out, b"MGET");
                floors.clear();
                for id in ids.iter() {
                    floors.push(versions.read_floor(*id));
                    shape.key(*id, &mut scratch.key);
                    encode_bulk(out, &scratch.key);
                }
                1
            }
            Body::Mset { ids } => {
                encode_array_header(out, ids.len() * 2 + 1);
                encode_bulk(out, b"MSET");
                for id in ids.iter() {
                    let ticket = versions.issue(*id);
                    tickets.push(ticket);
                    shape.key(*id, &mut scratch.key);
                    shape.value(*id, ticket.version, &mut scratch.value);
                    encode_bulk(out, &scratch.key);
                    encode_bulk(out, &scratch.value);
                }
                1
            }
            Body::Rmw { id, floor } => {
                if self.round == 0 {
                    *floor = versions.read_floor(*id);
                    shape.key(*id, &mut scratch.key);
                    encode_command(out, &[b"GET", &scratch.key]);
                } else {
                    encode_set(ctx, scratch, out, versions.issue(*id), tickets);
                }
                1
            }
            Body::Incr { id, floor } => {
                *floor = versions.counter_floor(*id);
                shape.counter_key(*id, &mut scratch.key);
                encode_command(out, &[b"INCR", &scratch.key]);
                1
            }
            Body::Multi { ids } => {
                encode_command(out, &[b"MULTI"]);
                for id in ids.iter() {
                    encode_set(ctx, scratch, out, versions.issue(*id), tickets);
                }
                encode_command(out, &[b"EXEC"]);
                ids.len() + 2
            }
            Body::Txn { id, floor } => {
                if self.round == 0 {
                    *floor = versions.read_floor(*id);
                    shape.key(*id, &mut scratch.key);
                    encode_command(out, &[b"WATCH", &scratch.key]);
                    encode_command(out, &[b"GET", &scratch.key]);
                    2
                } else {
                    encode_command(out, &[b"MULTI"]);
                    encode_set(ctx, scratch, out, versions.issue(*id), tickets);
                    encode_command(out, &[b"EXEC"]);
                    3
                }
            }
        }
    }

    /// Settles every outstanding write: acknowledged, or certainly not applied.
    fn settle(&mut self, versions: &Versions, acked: bool) {
        for ticket in self.tickets.drain(..) {
            versions.complete(ticket, acked);
        }
    }

    /// Checks the replies to the round just encoded, updates version bounds and says what next.
    pub fn on_replies(
        &mut self,
        replies: &[Reply<'_>],
        ctx: &OpContext,
        stats: &mut Stats,
    ) -> Step {
        let versions = &ctx.versions;
        let step = self.judge(replies, ctx, stats);
        match &step {
            Step::More => {}
            Step::Done => {
                let aborted = matches!(replies.last(), Some(Reply::Array(None)));
                self.settle(versions, !aborted);
            }
            // An error reply means the command did not run: its writes did not apply.
            Step::Failed(_) => self.settle(versions, false),
        }
        step
    }

    fn judge(&mut self, replies: &[Reply<'_>], ctx: &OpContext, stats: &mut Stats) -> Step {
        if let Some(kind) = replies.iter().find_map(Reply::error_kind) {
            return Step::Failed(kind);
        }
        let versions = &ctx.versions;
        let shape = &ctx.shape;
        let round = self.round;
        self.round = self.round.saturating_add(1);
        match (&self.body, replies) {
            (Body::Get { id, floor }, [Reply::Bulk(value)]) => {
                record_check(stats, versions.check_read(shape, *id, *floor, *value));
                Step::Done
            }
            (Body::Set { .. } | Body::Mset { .. }, [Reply::Simple(_)]) => Step::Done,
            (Body::Del { .. }, [Reply::Integer(_)]) => Step::Done,
            (Body::Keys { ids, floors }, [Reply::Array(Some(values))])
                if values.len() == ids.len() =>
            {
                for ((id, floor), value) in ids.iter().zip(floors).zip(values) {
                    match value {
                        Reply::Bulk(value) => {
                            record_check(stats, versions.check_read(shape, *id, *floor, *value));
                        }
                        _ => return Step::Failed(UNEXPECTED.into()),
                    }
                }
                Step::Done
            }
            (Body::Rmw { id, floor }, [Reply::Bulk(value)]) if round == 0 => {
                record_check(stats, versions.check_read(shape, *id, *floor, *value));
                Step::More
            }
            (Body::Rmw { .. }, [Reply::Simple(_)]) => Step::Done,
            (Body::Incr { id, floor }, [Reply::Integer(value)]) => {
                record_check(stats, versions.check_incr(*id, *floor, *value));
                Step::Done
            }
            (Body::Multi { ids }, [Reply::Simple(_), .., exec]) => match exec {
                Reply::Array(Some(results)) if results.len() == ids.len() => Step::Done,
                Reply::Array(None) => {
                    stats.txn_aborts += 1;
                    Step::Done
                }
                _ => Step::Failed(UNEXPECTED.into()),
            },
            (Body::Txn { id, floor }, [Reply::Simple(_), Reply::Bulk(value)]) if round == 0 => {
                record_check(stats, versions.check_read(shape, *id, *floor, *value));
                Step::More
            }
            (Body::Txn { .. }, [Reply::Simple(_), Reply::Simple(_), exec]) => match exec {
                Reply::Array(Some(_)) => Step::Done,
                Reply::Array(None) => {
                    stats.txn_aborts += 1;
                    Step::Done
                }
                _ => Step::Failed(UNEXPECTED.into()),
            },
            _ => Step::Failed(UNEXPECTED.into()),
        }
    }
}

/// Error kind for a reply of the wrong shape (e.g. a bulk where OK was due).
pub const UNEXPECTED: &str = "UNEXPECTED_REPLY";

fn encode_set(
    ctx: &OpContext,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
    ticket: WriteTicket,
    tickets: &mut Vec<WriteTicket>,
) {
    ctx.shape.key(ticket.id, &mut scratch.key);
    ctx.shape
        .value(ticket.id, ticket.version, &mut scratch.value);
    encode_command(out, &[b"SET", &scratch.key, &scratch.value]);
    tickets.push(ticket);
}

fn record_check(stats: &mut Stats, result: Result<(), super::keyspace::Mismatch>) {
    if let Err(mismatch) = result {
        stats.mismatch(&mismatch);
    }
}

/// Draws run-phase operations for one connection.
#[derive(Debug)]
pub struct Planner {
    mix: Mix,
    chooser: KeyChooser,
    rng: StdRng,
    batch_keys: usize,
    scan_max: usize,
    /// The GET and SET keys drawn, when recording (`--simulate-lru`).
    trace: Option<Vec<(u64, bool)>>,
}

impl Planner {
    /// Records the key of every GET and SET drawn from now on ([`Self::take_trace`]).
    pub fn record_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    /// The keys recorded so far (see [`Self::record_trace`]).
    pub fn take_trace(&mut self) -> Vec<(u64, bool)> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// A planner; `batch_keys` keys per MGET/MSET/MULTI, scans of 1..=`scan_max` keys.
    pub fn new(
        mix: Mix,
        chooser: KeyChooser,
        rng: StdRng,
        batch_keys: usize,
        scan_max: usize,
    ) -> Planner {
        Planner {
            mix,
            chooser,
            rng,
            batch_keys: batch_keys.max(1),
            scan_max: scan_max.max(1),
            trace: None,
        }
    }

    fn key(&mut self, versions: &Versions) -> u64 {
        self.chooser.sample(&mut self.rng, versions.existing())
    }

    fn keys(&mut self, versions: &Versions) -> Vec<u64> {
        let mut ids: Vec<u64> = (0..self.batch_keys).map(|_| self.key(versions)).collect();
        // One key twice in an MSET or MULTI would give it two versions in one command.
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The load phase's item `index`: items `[0, loaded)` write the dataset, the next
    /// `capacity - loaded` delete the insert range, the rest delete the INCR counters, so a
    /// run never reads what an earlier run left behind.
    pub fn load_item(versions: &Versions, index: u64, start: Instant) -> Op {
        if index < versions.loaded() {
            Op::load(index, start)
        } else if index < versions.capacity() {
            Op::clear(index, false, start)
        } else {
            Op::clear(index - versions.capacity(), true, start)
        }
    }

    /// Number of load-phase items (see [`Planner::load_item`]).
    pub fn load_items(versions: &Versions) -> u64 {
        versions.capacity() + versions.counter_count()
    }

    /// Plans the next operation, meant to start at `start`.
    pub fn next(&mut self, versions: &Versions, start: Instant) -> Op {
        let kind = self.mix.draw(&mut self.rng);
        let body = match kind {
            OpKind::Get => Body::Get {
                id: self.key(versions),
                floor: 0,
            },
            OpKind::Set => Body::Set {
                id: self.key(versions),
            },
            OpKind::Insert => {
                // Past the insert capacity an insert rewrites one of the newest keys.
                let id = versions.claim_insert().unwrap_or_else(|| {
                    versions
                        .existing()
                        .saturating_sub(1 + self.rng.gen_range(0..1000))
                });
                Body::Set { id }
            }
            OpKind::Scan => {
                let len = self.rng.gen_range(1..=self.scan_max) as u64;
                let first = self.key(versions);
                let end = (first + len).min(versions.existing().max(first + 1));
                Body::Keys {
                    ids: (first..end).collect(),
                    floors: Vec::new(),
                }
            }
            OpKind::Mget => Body::Keys {
                ids: self.keys(versions),
                floors: Vec::new(),
            },
            OpKind::Mset => Body::Mset {
                ids: self.keys(versions),
            },
            OpKind::Rmw => Body::Rmw {
                id: self.key(versions),
                floor: 0,
            },
            OpKind::Incr => Body::Incr {
                id: self.rng.gen_range(0..versions.counter_count()),
                floor: 0,
            },
            OpKind::Multi => Body::Multi {
                ids: self.keys(versions),
            },
            OpKind::Txn => Body::Txn {
                id: self.key(versions),
                floor: 0,
            },
            // A mix cannot hold `del` (see `Mix::from_str`); read instead of failing.
            OpKind::Del => Body::Get {
                id: self.key(versions),
                floor: 0,
            },
        };
        if let Some(trace) = self.trace.as_mut() {
            match (&kind, &body) {
                (OpKind::Get, Body::Get { id, .. }) => trace.push((*id, true)),
                (OpKind::Set, Body::Set { id }) => trace.push((*id, false)),
                _ => {}
            }
        }
        Op::new(kind, start, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::dist::KeyDistKind;
    use crate::bench::resp::parse_reply;
    use rand::SeedableRng;
    use std::sync::Arc;

    fn ctx() -> OpContext {
        OpContext {
            shape: KeyShape {
                prefix: "k".into(),
                key_size: "8".parse().unwrap(),
                value_size: "32".parse().unwrap(),
            },
            versions: Arc::new(Versions::new(100, 10, 4, true)),
        }
    }

    fn parse_all(bytes: &[u8]) -> Vec<Reply<'_>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some((reply, used)) = parse_reply(&bytes[pos..]).unwrap() {
            out.push(reply);
            pos += used;
        }
        out
    }

    #[test]
    fn set_then_get_checks_the_value() {
        let ctx = ctx();
        let mut stats = Stats::default();
        let mut scratch = Scratch::default();
        let now = Instant::now();
        let mut set = Op::new(OpKind::Set, now, Body::Set { id: 7 });
        let mut out = Vec::new();
        assert_eq!(set.encode(&ctx, &mut scratch, &mut out), 1);
        assert!(out.starts_with(b"*3\r\n$3\r\nSET\r\n$8\r\nk7......\r\n$32\r\n"));
        assert_eq!(
            set.on_replies(&parse_all(b"+OK\r\n"), &ctx, &mut stats),
            Step::Done
        );
        assert_eq!(ctx.versions.read_floor(7), 1);

        // The stored value, as a server would return it.
        let mut value = Vec::new();
        ctx.shape.value(7, 1, &mut value);
        let mut reply = format!("${}\r\n", value.len()).into_bytes();
        reply.extend_from_slice(&value);
        reply.extend_from_slice(b"\r\n");

        let mut get = Op::new(OpKind::Get, now, Body::Get { id: 7, floor: 0 });
        out.clear();
        get.encode(&ctx, &mut scratch, &mut out);
        assert_eq!(
            get.on_replies(&parse_all(&reply), &ctx, &mut stats),
            Step::Done
        );
        assert!(stats.mismatches.is_empty());

        let mut lost = Op::new(OpKind::Get, now, Body::Get { id: 7, floor: 0 });
        lost.encode(&ctx, &mut scratch, &mut out);
        assert_eq!(
            lost.on_replies(&parse_all(b"$-1\r\n"), &ctx, &mut stats),
            Step::Done
        );
        assert_eq!(stats.mismatches.get("missing"), Some(&1));
    }

    #[test]
    fn interactive_txn_takes_two_rounds_and_counts_aborts() {
        let ctx = ctx();
        let mut stats = Stats::default();
        let mut scratch = Scratch::default();
        let mut op = Op::new(OpKind::Txn, Instant::now(), Body::Txn { id: 3, floor: 0 });
        let mut out = Vec::new();
        assert_eq!(op.encode(&ctx, &mut scratch, &mut out), 2);
        assert_eq!(
            op.on_replies(&parse_all(b"+OK\r\n$-1\r\n"), &ctx, &mut stats),
            Step::More
        );
        assert_eq!(op.encode(&ctx, &mut scratch, &mut out), 3);
        assert_eq!(
            op.on_replies(&parse_all(b"+OK\r\n+QUEUED\r\n*-1\r\n"), &ctx, &mut stats),
            Step::Done
        );
        assert_eq!(stats.txn_aborts, 1);
        assert_eq!(
            ctx.versions.read_floor(3),
            0,
            "an aborted write is not acknowledged"
        );
        assert!(op.tickets.is_empty(), "the aborted write is settled");
    }

    #[test]
    fn error_replies_fail_the_op_by_kind() {
        let ctx = ctx();
        let mut stats = Stats::default();
        let mut op = Op::new(OpKind::Incr, Instant::now(), Body::Incr { id: 0, floor: 0 });
        let step = op.on_replies(&parse_all(b"-WRONGTYPE no\r\n"), &ctx, &mut stats);
        assert_eq!(step, Step::Failed("WRONGTYPE".into()));
    }

    #[test]
    fn planner_draws_keys_in_range_and_unique_batches() {
        let ctx = ctx();
        let mix: Mix = "get=1,set=1,insert=1,scan=1,mget=1,mset=1,rmw=1,incr=1,multi=1,txn=1"
            .parse()
            .unwrap();
        let chooser = KeyChooser::new(KeyDistKind::Zipf { theta: 0.99 }, 100);
        let mut planner = Planner::new(mix, chooser, StdRng::seed_from_u64(1), 5, 10);
        let mut scratch = Scratch::default();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let mut op = planner.next(&ctx.versions, Instant::now());
            seen.insert(op.kind);
            let mut out = Vec::new();
            let replies = op.encode(&ctx, &mut scratch, &mut out);
            assert!(replies >= 1);
            match &op.body {
                Body::Keys { ids, .. } | Body::Mset { ids, .. } | Body::Multi { ids, .. } => {
                    assert!(!ids.is_empty());
                    assert!(ids.iter().all(|id| *id < 110));
                    let mut sorted = ids.clone();
                    sorted.dedup();
                    assert_eq!(&sorted, ids);
                }
                Body::Get { id, .. }
                | Body::Set { id, .. }
                | Body::Rmw { id, .. }
                | Body::Txn { id, .. } => {
                    assert!(*id < 110)
                }
                Body::Incr { id, .. } => assert!(*id < 4),
                Body::Del { .. } => panic!("the planner never deletes"),
            }
        }
        assert_eq!(seen.len(), OpKind::ALL.len() - 1, "every kind but del");
    }
}
