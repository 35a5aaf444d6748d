//! One client connection: read into a buffer, run every complete request in it, and write the
//! replies with as few writes as possible, while still reading: a client that pipelines many
//! commands before reading any reply (redis-rs pipelines, redis-benchmark -P) must not deadlock
//! against us, exactly as with Redis, which buffers replies.
//!
//! Invariants: a reply is released for writing only after every WAL position it depends on is
//! durable; pending input never exceeds `client-query-buffer-limit` and pending output never
//! exceeds the normal-class `client-output-buffer-limit` nor [`OUTPUT_BUFFER_BYTES_MAX`] (the
//! client is disconnected instead, as in Redis).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::WriteHalf;
use tokio::net::TcpStream;

use crate::cmd::spec::flags;
use crate::cmd::CommandSpec;
use crate::resp::{decode_request_resuming, DecodeLimits, Frame, ScanState, MAX_MULTIBULK_LEN};
use crate::server::{ClientHandle, Shared};
use crate::session::{Action, Session};

/// Initial read buffer capacity.
pub const READ_BUFFER_INITIAL_BYTES: usize = 16 * 1024;
/// Spare room guaranteed before each read, so big values arrive in big reads.
pub const READ_RESERVE_BYTES: usize = 64 * 1024;
/// An empty input or reply buffer whose capacity a big request or reply grew past this is
/// replaced by a fresh small one (issue #13 item 9).
pub const READ_BUFFER_KEEP_BYTES: usize = 1024 * 1024;
/// Absolute cap on buffered replies even when `client-output-buffer-limit` is 0 (unlimited).
pub const OUTPUT_BUFFER_BYTES_MAX: u64 = 1 << 30;

/// Serves one client until it quits, errs, idles out, is killed or the server shuts down.
pub async fn serve(mut stream: TcpStream, client: Arc<ClientHandle>, shared: &Arc<Shared>) {
    let mut session = Session::new(client.clone(), shared);
    let mut shutdown = shared.shutdown_signal();
    let mut input = BytesMut::with_capacity(READ_BUFFER_INITIAL_BYTES);
    // How much of a request still arriving the decoder has checked already.
    let mut scan = ScanState::default();
    let mut pending = BytesMut::with_capacity(READ_BUFFER_INITIAL_BYTES);
    let mut sendable = BytesMut::new();
    let mut soft_limit_since: Option<Instant> = None;
    let mut closing = false;
    let (mut reader, mut writer) = stream.split();
    // One `Notified` for the whole connection, not one per loop turn: registering and
    // unregistering a waiter each turn took ~2% of the server's CPU in a SET -P 1 profile.
    // `notify_one` leaves a permit if it comes between polls, so no kill is missed.
    let killed = client.kill.notified();
    tokio::pin!(killed);
    loop {
        if *shutdown.borrow_and_update() {
            closing = true;
        }
        if closing && sendable.is_empty() {
            break;
        }
        let timeout_secs = shared.config.read().timeout_secs;
        let idle = async {
            if timeout_secs == 0 {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(Duration::from_secs(timeout_secs)).await
            }
        };
        if input.is_empty() && input.capacity() > READ_BUFFER_KEEP_BYTES {
            // A big request grew it (a 256 MB SET: 256 MB kept for the connection's life).
            input = BytesMut::with_capacity(READ_BUFFER_INITIAL_BYTES);
        }
        if pending.is_empty() && pending.capacity() > READ_BUFFER_KEEP_BYTES {
            pending = BytesMut::with_capacity(READ_BUFFER_INITIAL_BYTES);
        }
        if input.capacity() - input.len() < READ_RESERVE_BYTES / 4 {
            input.reserve(READ_RESERVE_BYTES);
        }
        client.set_buffers(
            input.len(),
            input.capacity() - input.len(),
            pending.len() + sendable.len(),
        );
        tokio::select! {
            biased;
            _ = &mut killed => break,
            _ = shutdown.changed(), if !closing => closing = true,
            written = writer.write_buf(&mut sendable), if !sendable.is_empty() => match written {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    shared.stats.add_output(client.id, n);
                }
            },
            read = reader.read_buf(&mut input), if !closing => {
                match read {
                    Ok(0) | Err(_) => closing = true,
                    Ok(n) => {
                        shared.stats.add_input(client.id, n);
                        if input.len() as u64 > shared.config.read().client_query_buffer_limit_bytes {
                            tracing::warn!(client = client.id.0, "closing client that exceeded client-query-buffer-limit");
                            break;
                        }
                        match run_batch(&mut input, &mut scan, &mut pending, &mut sendable, &mut session, shared, &mut writer).await {
                            Ok(BatchEnd::More) => {}
                            Ok(BatchEnd::Close) => closing = true,
                            Ok(BatchEnd::Shutdown) => break,
                            Err(e) => {
                                if e.kind() == std::io::ErrorKind::OutOfMemory {
                                    log_output_limit(&client, (pending.len() + sendable.len()) as u64);
                                }
                                break;
                            }
                        }
                        if !within_output_limit(&sendable, shared, &mut soft_limit_since) {
                            log_output_limit(&client, sendable.len() as u64);
                            break;
                        }
                    }
                }
            },
            // As Redis's `clientsCronHandleTimeout`: an idle client is closed in MULTI too.
            _ = idle, if sendable.is_empty() => break,
        }
        if client.is_killed() {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

enum BatchEnd {
    More,
    Close,
    Shutdown,
}

/// Runs every complete request in `input`; replies end up in `sendable` once durable.
async fn run_batch(
    input: &mut BytesMut,
    scan: &mut ScanState,
    pending: &mut BytesMut,
    sendable: &mut BytesMut,
    session: &mut Session,
    shared: &Arc<Shared>,
    writer: &mut WriteHalf<'_>,
) -> std::io::Result<BatchEnd> {
    let (limits, output_hard_bytes) = {
        let c = shared.config.read();
        let hard = c.client_output_buffer_limit.hard_bytes;
        (
            DecodeLimits {
                max_bulk_len: c.proto_max_bulk_len_bytes,
                max_multibulk_len: MAX_MULTIBULK_LEN,
                unauthenticated: false,
            },
            if hard > 0 {
                hard.min(OUTPUT_BUFFER_BYTES_MAX)
            } else {
                OUTPUT_BUFFER_BYTES_MAX
            },
        )
    };
    let mut end = BatchEnd::More;
    // The batch's requests are decoded ahead (at most [`PIPELINE_AHEAD_MAX`]), so that the
    // index lines of the next commands' keys are fetched into cache while this one runs
    // ([`prefetch_ahead`]) and, with the SSD tier, one command's miss fetches the cold values
    // of the commands after it too: a pipeline's misses go to the disk together. Not before
    // AUTH: an unauthenticated client's requests are decoded under tighter limits.
    let mut ahead: VecDeque<Queued> = VecDeque::new();
    let mut undecodable: Option<crate::resp::ProtocolError> = None;
    loop {
        let limits = DecodeLimits {
            unauthenticated: !session.authenticated,
            ..limits
        };
        let look_ahead = session.authenticated;
        if look_ahead && ahead.is_empty() && undecodable.is_none() {
            while ahead.len() < PIPELINE_AHEAD_MAX {
                match decode_request_resuming(input, &limits, scan) {
                    Ok(Some(args)) if args.is_empty() => {}
                    Ok(Some(args)) => ahead.push_back(Queued::new(args)),
                    Ok(None) => break,
                    Err(e) => {
                        undecodable = Some(e);
                        break;
                    }
                }
            }
        }
        let next = match ahead.pop_front() {
            Some(queued) => Ok(Some(queued)),
            None => match undecodable.take() {
                Some(e) => Err(e),
                None if look_ahead => Ok(None),
                None => {
                    decode_request_resuming(input, &limits, scan).map(|args| args.map(Queued::new))
                }
            },
        };
        match next {
            Ok(Some(Queued {
                args,
                prefetched,
                spec,
            })) => {
                if args.is_empty() {
                    continue;
                }
                prefetch_ahead(&ahead, session.db, shared);
                let request = (args, spec, prefetched);
                let reply = handle_loading(session, request, &mut ahead, shared).await;
                // One pipelined batch can ask for far more output than memory holds (a hundred
                // GETs of a 512 MB value), and so can one reply (an MGET naming that key a
                // hundred times): stop at the hard limit before encoding, as Redis disconnects.
                let queued = (pending.len() + sendable.len()) as u64;
                if queued.saturating_add(reply.encoded_len_estimate()) > output_hard_bytes {
                    // `OutOfMemory` tells the caller to log it as a limit's disconnect.
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::OutOfMemory,
                        "output buffer over its hard limit within one batch",
                    ));
                }
                match session.action.take() {
                    None => reply.encode(pending, session.proto),
                    Some(Action::Sleep(d)) => {
                        // Only this connection sleeps; other clients keep being served.
                        release(pending, sendable, session, shared).await?;
                        writer.write_all(sendable).await?;
                        sendable.clear();
                        tokio::time::sleep(d).await;
                        reply.encode(pending, session.proto);
                    }
                    Some(Action::Close) => {
                        reply.encode(pending, session.proto);
                        end = BatchEnd::Close;
                        break;
                    }
                    Some(Action::Shutdown) => {
                        release(pending, sendable, session, shared).await?;
                        writer.write_all(sendable).await?;
                        return Ok(BatchEnd::Shutdown);
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                Frame::error(format!("ERR {e}")).encode(pending, session.proto);
                end = BatchEnd::Close;
                break;
            }
        }
    }
    release(pending, sendable, session, shared).await?;
    Ok(end)
}

/// Times one command may miss the values it just fetched before that miss is its reply (their
/// pages spilled again between the fetch and the retry, over and over). Misses on other
/// values are progress: MGET reports every value it misses in one run, a read inside EXEC or
/// a TXN its first.
const MISS_RETRIES_MAX: u32 = 8;
/// Runs of one command that fetch values alone before it loads whole pages instead.
const MISS_ROUNDS_BEFORE_PAGES: u32 = 4;
/// Values one command may fetch in all.
const MISS_LOADS_MAX: usize = 1 << 16;

/// Longest a write waits for the SSD tier to write pages out before it runs anyway (the tier
/// then catches up while RAM is over `maxmemory` by more than its headroom).
const WRITE_STALL_MAX: Duration = Duration::from_millis(250);
/// How often a waiting write looks again.
const WRITE_STALL_STEP: Duration = Duration::from_millis(1);

/// Backpressure: a command that may grow memory waits (this connection only, never the
/// worker) while the SSD tier is behind (`Engine::tier_write_pressure`), at most
/// [`WRITE_STALL_MAX`]; INFO counts the waits, and the log says so at most every 10 s.
async fn wait_for_the_tier(spec: Option<&CommandSpec>, shared: &Arc<Shared>) {
    if !shared.engine.tier_write_pressure() {
        return;
    }
    let grows = spec.is_some_and(|spec| spec.has(flags::DENYOOM) || spec.name == "exec");
    if !grows {
        return;
    }
    let started = Instant::now();
    while shared.engine.tier_write_pressure() && started.elapsed() < WRITE_STALL_MAX {
        tokio::time::sleep(WRITE_STALL_STEP).await;
    }
    let stats = &shared.stats;
    stats.tier_write_stalls.fetch_add(1, Ordering::Relaxed);
    stats
        .tier_write_stall_us
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = stats.tier_stall_logged_at.load(Ordering::Relaxed);
    if now >= last + 10
        && stats
            .tier_stall_logged_at
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            stalls = stats.tier_write_stalls.load(Ordering::Relaxed),
            "writes wait for the SSD tier: value pages fill RAM faster than the disk takes them"
        );
    }
}

/// Asks the CPU for what the next queued commands' key lookups will touch, one step per
/// command still ahead of them: the first line of the next one's value (if it reads values),
/// the key node of the one after, and the probe lines of the third. A hint only: a SELECT or
/// a write in between makes it useless, never wrong.
fn prefetch_ahead(ahead: &VecDeque<Queued>, db: txn::DbIndex, shared: &Shared) {
    let engine = &shared.engine;
    if let Some((key, true)) = ahead.front().and_then(Queued::first_key) {
        engine.prefetch_key(db, key, txn::KeyPrefetch::Value);
    }
    if let Some((key, _)) = ahead.get(1).and_then(Queued::first_key) {
        engine.prefetch_key(db, key, txn::KeyPrefetch::Node);
    }
    if let Some((key, _)) = ahead.get(2).and_then(Queued::first_key) {
        engine.prefetch_key(db, key, txn::KeyPrefetch::Table);
    }
}

/// A request decoded ahead of its turn, with the values fetched for it while an earlier
/// command of its pipeline waited for the disk.
struct Queued {
    args: Vec<bytes::Bytes>,
    prefetched: Prefetches,
    /// The command's table entry, looked up once when decoded (the prefetch and the SSD
    /// tier's probe of later commands read its key positions and flags).
    spec: Option<&'static CommandSpec>,
}

/// Values read from SSD for one command (its retries, or fetched ahead for it).
type Prefetches = Vec<txn::tier::Prefetched>;

impl Queued {
    fn new(args: Vec<bytes::Bytes>) -> Queued {
        let spec = args
            .first()
            .and_then(|name| crate::cmd::lookup(name))
            .map(|(_, entry)| entry.spec);
        Queued {
            args,
            prefetched: Vec::new(),
            spec,
        }
    }

    /// The first key argument and whether the command reads its value.
    fn first_key(&self) -> Option<(&[u8], bool)> {
        let spec = self.spec?;
        let key = spec.key_args(&self.args).next()?;
        Some((&key[..], spec.has(flags::READS_VALUE)))
    }
}

/// Requests of one batch decoded ahead of their turn (an authenticated connection).
const PIPELINE_AHEAD_MAX: usize = 256;
/// Cold values a miss fetches for the commands after it in its pipeline, at most.
const FETCH_AHEAD_MAX: usize = 256;

/// While a FLUSHDB, FLUSHALL or SWAPDB holds the commit lock (O(keys): half a second for
/// 1 M keys), a command that may commit waits here, on its connection, rather than on the lock
/// on its worker thread, where every other connection of that worker would wait with it
/// (reads need no lock). Best effort: a write that checks just before such an op starts still
/// waits on the lock.
async fn wait_for_keyspace_op(spec: Option<&CommandSpec>, shared: &Arc<Shared>) {
    if !shared.engine.keyspace_op_running() {
        return;
    }
    if !commits(spec) {
        return;
    }
    let stats = &shared.stats;
    stats.keyspace_op_waits.fetch_add(1, Ordering::Relaxed);
    stats.keyspace_op_waiting.fetch_add(1, Ordering::Relaxed);
    while shared.engine.keyspace_op_running() {
        tokio::time::sleep(KEYSPACE_OP_POLL).await;
    }
    stats.keyspace_op_waiting.fetch_sub(1, Ordering::Relaxed);
}

/// How often a write waiting for a keyspace-wide op looks again.
const KEYSPACE_OP_POLL: Duration = Duration::from_millis(1);

/// While the WAL's group-commit batch is nearly full (the disk is behind), a command that may
/// commit waits here, on its connection: its append would otherwise wait for room on its
/// worker thread, inside the commit lock, and every connection of that worker, reads
/// included, would wait with it (issue #11 item 2). At most [`WRITE_STALL_MAX`] per command;
/// best effort, as the keyspace-op wait: a write that checks just before the batch fills
/// still waits in `append`. INFO counts the waits (`wal_backlog_waits`).
async fn wait_for_wal_room(spec: Option<&CommandSpec>, shared: &Arc<Shared>) {
    let Some(wal) = shared.persistence.durability.as_ref().and_then(|d| d.wal()) else {
        return;
    };
    if !wal.backlogged() || !commits(spec) {
        return;
    }
    shared
        .stats
        .wal_backlog_waits
        .fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    while wal.backlogged() && started.elapsed() < WRITE_STALL_MAX {
        tokio::time::sleep(WRITE_STALL_STEP).await;
    }
}

/// Whether a command may commit (a write, EXEC or TXN): what waits for keyspace ops and a
/// backlogged WAL.
fn commits(spec: Option<&CommandSpec>) -> bool {
    spec.is_some_and(|spec| {
        (spec.has(flags::WRITE) && !spec.has(flags::MAY_BLOCK))
            || matches!(spec.name, "exec" | "txn")
    })
}

/// Runs one request; if it needed a value on SSD (it then failed with nothing done), fetches
/// it on the blocking pool, never on this worker, and runs it again. Its first miss also
/// fetches the cold values that the pipeline's next commands (`ahead`) will read, in the same
/// round of reads; `prefetched` is what an earlier command fetched for this one.
async fn handle_loading(
    session: &mut Session,
    (args, spec, mut prefetched): (Vec<bytes::Bytes>, Option<&'static CommandSpec>, Prefetches),
    ahead: &mut VecDeque<Queued>,
    shared: &Arc<Shared>,
) -> Frame {
    wait_for_keyspace_op(spec, shared).await;
    wait_for_wal_room(spec, shared).await;
    if !shared.engine.tier_attached() {
        return session.handle(args, shared);
    }
    wait_for_the_tier(spec, shared).await;
    let started = Instant::now();
    let mut reply = if prefetched.is_empty() {
        session.handle(args.clone(), shared)
    } else {
        shared
            .engine
            .with_fetched_ahead(&prefetched, || session.handle(args.clone(), shared))
    };
    let (mut rounds, mut repeats, mut fetched) = (0u32, 0u32, 0usize);
    let mut last: Vec<txn::ValueRef> = Vec::new();
    // `prefetched`: values read through for this command (first misses: not promoted), which
    // its retries read while their pages' images on SSD are unchanged.
    loop {
        let missing = session.take_missing();
        if missing.is_empty() {
            break;
        }
        repeats = if missing == last { repeats + 1 } else { 0 };
        rounds += 1;
        fetched += missing.len();
        if repeats > MISS_RETRIES_MAX || fetched > MISS_LOADS_MAX {
            break;
        }
        // A command that keeps missing one value per run (reads inside EXEC or a TXN stop at
        // their first) would run again per value: after a few rounds, whole pages.
        let whole_pages = rounds > MISS_ROUNDS_BEFORE_PAGES;
        let later = if rounds == 1 {
            cold_values_ahead(ahead, &missing, session.db, shared)
        } else {
            LaterMisses::default()
        };
        match fetch_all(&missing, &later.values, whole_pages, shared).await {
            Ok(read_through) => {
                for value in read_through {
                    if let Some(commands) = later.wanted_by.get(&value.value()) {
                        for &i in commands {
                            if let Some(queued) = ahead.get_mut(i) {
                                queued.prefetched.push(value.clone());
                            }
                        }
                    }
                    prefetched.push(value);
                }
                let excess = prefetched.len().saturating_sub(txn::tier::PREFETCHED_MAX);
                prefetched.drain(..excess);
                reply = shared
                    .engine
                    .with_prefetched(&prefetched, || session.handle(args.clone(), shared));
            }
            Err(Some((value, error))) => {
                let key = missed_key(&args, session.db, value, shared);
                let shown = key.map(|k| String::from_utf8_lossy(k).into_owned());
                tracing::error!(
                    key = shown.as_deref().unwrap_or("?"),
                    page = value.page.0,
                    offset = value.offset,
                    %error,
                    "reading a value from the SSD tier failed"
                );
                reply = Frame::error(match shown {
                    Some(key) => format!(
                        "ERR reading the value of key '{key}' from the SSD tier failed: {error}"
                    ),
                    None => format!(
                        "ERR reading a value (page {}, offset {}) from the SSD tier failed: {error}",
                        value.page.0, value.offset
                    ),
                });
                break;
            }
            Err(None) => break,
        }
        last = missing;
    }
    let histogram = if rounds == 0 {
        &shared.stats.tier_hit_latency
    } else {
        &shared.stats.tier_miss_latency
    };
    histogram.record(started.elapsed());
    reply
}

/// Cold values that the commands after a miss in its pipeline will read, to fetch in the same
/// round: the values, none of them already `missing`, and which queued commands want each.
#[derive(Default)]
struct LaterMisses {
    values: Vec<txn::ValueRef>,
    wanted_by: std::collections::HashMap<txn::ValueRef, Vec<usize>>,
}

/// Probes the keys of the queued commands that read values ([`flags::READS_VALUE`]) in the
/// connection's current database (a SELECT in between only makes a fetch useless). Reads no
/// value and counts no access; at most [`FETCH_AHEAD_MAX`] values.
fn cold_values_ahead(
    ahead: &VecDeque<Queued>,
    missing: &[txn::ValueRef],
    db: txn::DbIndex,
    shared: &Shared,
) -> LaterMisses {
    let mut later = LaterMisses::default();
    for (i, queued) in ahead.iter().enumerate() {
        let room = FETCH_AHEAD_MAX.saturating_sub(later.values.len());
        if room == 0 {
            break;
        }
        let Some(spec) = queued.spec.filter(|spec| spec.has(flags::READS_VALUE)) else {
            continue;
        };
        let keys = spec.key_args(&queued.args).map(|key| &key[..]);
        for value in shared.engine.values_on_ssd(db, keys, room) {
            let wanting = later.wanted_by.entry(value).or_default();
            if wanting.is_empty() && !missing.contains(&value) {
                later.values.push(value);
            }
            if wanting.last() != Some(&i) {
                wanting.push(i);
            }
        }
    }
    later
}

/// Serves one missed value: a first miss through the io_uring reader where there is one
/// (no thread of its own; the blocks are checked on this worker, a few microseconds), else
/// on a blocking thread, promoting or reading through as the engine decided.
fn read_one(
    value: txn::ValueRef,
    shared: &Arc<Shared>,
) -> tokio::task::JoinHandle<Result<Vec<txn::tier::Prefetched>, txn::TxnError>> {
    let engine = shared.engine.clone();
    let planned = engine.plan_miss(value);
    let uring = match &planned {
        Ok(txn::tier::Miss::Read(_)) => shared.uring(),
        _ => None,
    };
    match (planned, uring) {
        (Ok(txn::tier::Miss::Read(plan)), Some(uring)) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (fd, offset, len) = plan.read();
            let started = Instant::now();
            let queued = uring.read(
                fd,
                offset,
                len,
                Box::new(move |read| {
                    let _ = tx.send(read);
                }),
            );
            tokio::spawn(async move {
                let read = match queued {
                    Ok(()) => rx.await.ok(),
                    Err(_) => None,
                };
                match read {
                    Some(Ok(blocks)) => engine
                        .complete_read_through(&plan, blocks.as_slice(), started.elapsed())
                        .map(|v| v.into_iter().collect()),
                    // The ring refused or failed this read: the blocking way.
                    _ => tokio::task::spawn_blocking(move || {
                        engine
                            .fetch_missed(value, false)
                            .map(|v| v.into_iter().collect())
                    })
                    .await
                    .unwrap_or_else(|_| Ok(Vec::new())),
                }
            })
        }
        (Ok(txn::tier::Miss::Read(_)), None) => tokio::task::spawn_blocking(move || {
            engine
                .fetch_missed(value, false)
                .map(|v| v.into_iter().collect())
        }),
        (Ok(txn::tier::Miss::Fetch { promote }), _) => tokio::task::spawn_blocking(move || {
            engine
                .fetch_missed(value, promote)
                .map(|v| v.into_iter().collect())
        }),
        (Err(error), _) => tokio::spawn(async move { Err(error) }),
    }
}

/// Values fetched at once per command, each on its own blocking thread (the disk's queue
/// depth for one command: an MGET over many cold keys).
const MISS_FETCH_PARALLEL: usize = 32;
/// Values one command missed in one page from which the page is read whole for all of them
/// (one 64 KiB read instead of that many 4 KiB ones).
const MISS_VALUES_PER_PAGE_READ: usize = 4;

/// Fetches every value in `missing` together on the blocking pool, [`MISS_FETCH_PARALLEL`] at
/// a time (or loads their pages, once each), and with them the values `later` commands of the
/// pipeline will read: the read-throughs to hand to the retries, or the first failure of the
/// command's own values (`None`: a blocking task died). A failure of a later command's value
/// is that command's to report, when its own run misses.
async fn fetch_all(
    missing: &[txn::ValueRef],
    later: &[txn::ValueRef],
    whole_pages: bool,
    shared: &Arc<Shared>,
) -> Result<Vec<txn::tier::Prefetched>, Option<(txn::ValueRef, txn::TxnError)>> {
    // Several values in one page (a sweep over neighbouring keys): one read of the page for
    // all of them; the others value by value. After a few rounds, whole pages are loaded.
    let mut per_page: std::collections::HashMap<txn::PageId, (bool, Vec<txn::ValueRef>)> =
        std::collections::HashMap::new();
    let tagged = missing.iter().map(|&v| (v, true));
    for (value, own) in tagged.chain(later.iter().map(|&v| (v, false))) {
        let (any_own, values) = per_page.entry(value.page).or_default();
        *any_own |= own;
        values.push(value);
    }
    enum Fetch {
        One(txn::ValueRef),
        Page(Vec<txn::ValueRef>),
        Load(txn::ValueRef),
    }
    // The command's own values go first: later ones only fill the disk's queue.
    let mut groups: Vec<(bool, Vec<txn::ValueRef>)> = per_page.into_values().collect();
    groups.sort_by_key(|(own, _)| !*own);
    let own_values: std::collections::HashSet<txn::ValueRef> = missing.iter().copied().collect();
    let mut wanted = Vec::with_capacity(missing.len() + later.len());
    for (_, values) in groups {
        match values.first() {
            Some(&first) if whole_pages => wanted.push(Fetch::Load(first)),
            Some(_) if values.len() >= MISS_VALUES_PER_PAGE_READ => {
                wanted.push(Fetch::Page(values))
            }
            _ => wanted.extend(values.into_iter().map(Fetch::One)),
        }
    }
    let mut read_through = Vec::new();
    for chunk in wanted.chunks(MISS_FETCH_PARALLEL) {
        let tasks: Vec<_> = chunk
            .iter()
            .filter_map(|fetch| {
                let engine = shared.engine.clone();
                let (value, task) = match fetch {
                    Fetch::One(value) => (*value, read_one(*value, shared)),
                    Fetch::Page(values) => {
                        let values = values.clone();
                        // The failure to report, if any, is the command's own value's.
                        let shown = values
                            .iter()
                            .find(|v| own_values.contains(v))
                            .or_else(|| values.first())
                            .copied()?;
                        (
                            shown,
                            tokio::task::spawn_blocking(move || engine.fetch_from_page(&values)),
                        )
                    }
                    Fetch::Load(value) => {
                        let value = *value;
                        (
                            value,
                            tokio::task::spawn_blocking(move || {
                                engine.load_page(value.page).map(|()| Vec::new())
                            }),
                        )
                    }
                };
                Some((value, task))
            })
            .collect();
        let mut failed = None;
        for (value, task) in tasks {
            match task.await {
                Ok(Ok(through)) => read_through.extend(through),
                Ok(Err(error)) if own_values.contains(&value) => {
                    failed.get_or_insert(Some((value, error)));
                }
                Ok(Err(_)) => {}
                Err(_) => {
                    failed.get_or_insert(None);
                }
            }
        }
        if let Some(failed) = failed {
            return Err(failed);
        }
    }
    Ok(read_through)
}

/// Which of the command's arguments is the key whose value `value` is, for an error that names
/// it: the command's key positions first, then any argument (a TXN or EXEC names its keys in
/// commands run before).
fn missed_key<'a>(
    args: &'a [bytes::Bytes],
    db: txn::DbIndex,
    value: txn::ValueRef,
    shared: &Shared,
) -> Option<&'a [u8]> {
    let names = |key: &&bytes::Bytes| shared.engine.key_names_value(db, key, value);
    let spec = args
        .first()
        .and_then(|name| crate::cmd::lookup(name))
        .map(|(_, entry)| entry.spec);
    let by_position = spec.and_then(|s| s.key_args(args).find(names));
    by_position
        .or_else(|| args.iter().skip(1).take(1024).find(names))
        .map(|key| &key[..])
}

/// Moves `pending` replies to `sendable` once the WAL positions they depend on are durable.
async fn release(
    pending: &mut BytesMut,
    sendable: &mut BytesMut,
    session: &mut Session,
    shared: &Shared,
) -> std::io::Result<()> {
    let own = std::mem::take(&mut session.max_lsn);
    let seen = std::mem::take(&mut session.seen_lsn);
    let needed = own.max(seen);
    if needed > 0 {
        if let Err(durable) = shared.persistence.wait_durable(needed).await {
            // The WAL failed first. Own writes that are not durable can't be acknowledged:
            // close without a word, as a crash would. Reads go on being answered (the issue's
            // "reads keep working"): what they saw stays in memory and is rewritten to the
            // log when it recovers.
            if own > durable {
                return Err(std::io::Error::other(
                    "write-ahead log failed before the reply was durable",
                ));
            }
        }
    }
    if sendable.is_empty() {
        std::mem::swap(pending, sendable);
    } else {
        sendable.extend_from_slice(pending);
        pending.clear();
    }
    Ok(())
}

/// Every disconnect a buffer limit causes is logged, in Redis's words, with the client.
fn log_output_limit(client: &ClientHandle, queued: u64) {
    tracing::warn!(
        queued_bytes = queued,
        "Client id={} addr={} closed for overcoming of output buffer limits.",
        client.id.0,
        client.addr
    );
}

fn within_output_limit(
    output: &BytesMut,
    shared: &Shared,
    soft_since: &mut Option<Instant>,
) -> bool {
    let limit = shared.config.read().client_output_buffer_limit;
    let queued = output.len() as u64;
    if queued > OUTPUT_BUFFER_BYTES_MAX || (limit.hard_bytes > 0 && queued > limit.hard_bytes) {
        return false;
    }
    if limit.soft_bytes > 0 && queued > limit.soft_bytes {
        let since = soft_since.get_or_insert_with(Instant::now);
        if since.elapsed() > Duration::from_secs(limit.soft_secs) {
            return false;
        }
    } else {
        *soft_since = None;
    }
    true
}
