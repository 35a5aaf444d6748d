//! Concurrency stress: bank transfers keep the total constant at every snapshot, and INCR by
//! read-modify-write loses no update.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tierkv_txn as txn;
use txn::{Engine, EngineConfig, Expiry, Isolation, TxnError};

const ACCOUNTS: usize = 16;
const INITIAL: i64 = 1_000;

fn account(i: usize) -> Vec<u8> {
    format!("acct:{i:02}").into_bytes()
}

fn read_i64(tx: &mut txn::Transaction, key: &[u8]) -> Result<i64, TxnError> {
    Ok(tx
        .get(0, key)?
        .map(|e| {
            std::str::from_utf8(&e.value)
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .unwrap_or(0))
}

fn total_at_snapshot(engine: &Engine) -> i64 {
    let mut tx = engine.begin(Isolation::Snapshot);
    let rows = tx.scan(0, None, Some(b"acct:"), ACCOUNTS + 1).unwrap();
    assert_eq!(rows.len(), ACCOUNTS);
    rows.iter()
        .map(|(_, e)| {
            std::str::from_utf8(&e.value)
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .sum()
}

#[test]
fn bank_transfers_preserve_the_total_at_every_snapshot() {
    let engine = Engine::new(EngineConfig::default());
    engine
        .run(Isolation::Snapshot, |tx| {
            for i in 0..ACCOUNTS {
                tx.put(
                    0,
                    &account(i),
                    INITIAL.to_string().as_bytes(),
                    Expiry::Persist,
                )?;
            }
            Ok(())
        })
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let transfers = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let engine = engine.clone();
            let transfers = Arc::clone(&transfers);
            std::thread::spawn(move || {
                let mut seed = t * 7919 + 1;
                for _ in 0..3_000 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let from = (seed >> 33) as usize % ACCOUNTS;
                    let to = (seed >> 17) as usize % ACCOUNTS;
                    let amount = (seed >> 50) as i64 % 50;
                    if from == to {
                        continue;
                    }
                    engine
                        .run(Isolation::Snapshot, |tx| {
                            let a = read_i64(tx, &account(from))?;
                            let b = read_i64(tx, &account(to))?;
                            tx.put(
                                0,
                                &account(from),
                                (a - amount).to_string().as_bytes(),
                                Expiry::Persist,
                            )?;
                            tx.put(
                                0,
                                &account(to),
                                (b + amount).to_string().as_bytes(),
                                Expiry::Persist,
                            )?;
                            Ok(())
                        })
                        .unwrap();
                    transfers.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let auditor = {
        let engine = engine.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut audits = 0u64;
            // At least one audit however the threads are scheduled on a loaded machine (the
            // workers may all finish before this thread first runs).
            loop {
                let stopping = stop.load(Ordering::Relaxed);
                assert_eq!(total_at_snapshot(&engine), INITIAL * ACCOUNTS as i64);
                if audits.is_multiple_of(16) {
                    engine.gc();
                }
                audits += 1;
                if stopping {
                    break;
                }
            }
            audits
        })
    };
    for worker in workers {
        worker.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let audits = auditor.join().unwrap();
    assert!(audits > 0);
    assert_eq!(total_at_snapshot(&engine), INITIAL * ACCOUNTS as i64);
    assert!(transfers.load(Ordering::Relaxed) > 0);
    while !engine.gc().caught_up {}
    let stats = engine.stats();
    assert_eq!(
        stats.dbs[0].versions, ACCOUNTS as u64,
        "GC left only the newest versions"
    );
    assert_eq!(stats.pages.values_live, ACCOUNTS as u64);
}

#[test]
fn concurrent_incr_loses_no_update() {
    let engine = Engine::new(EngineConfig::default());
    let counters = 4usize;
    let successes = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4usize)
        .map(|t| {
            let engine = engine.clone();
            let successes = Arc::clone(&successes);
            std::thread::spawn(move || {
                for i in 0..2_000usize {
                    let key = format!("ctr:{}", (i + t) % counters).into_bytes();
                    // A CAS loop by hand: read, compute, commit; retry on conflict.
                    loop {
                        let mut tx = engine.begin(Isolation::Snapshot);
                        let current = read_i64(&mut tx, &key).unwrap();
                        tx.put(0, &key, (current + 1).to_string().as_bytes(), Expiry::Keep)
                            .unwrap();
                        match tx.commit() {
                            Ok(_) => {
                                successes.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(TxnError::Conflict { .. }) => continue,
                            Err(other) => panic!("{other:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut tx = engine.begin(Isolation::Snapshot);
    let total: i64 = (0..counters)
        .map(|c| read_i64(&mut tx, format!("ctr:{c}").as_bytes()).unwrap())
        .sum();
    assert_eq!(total as u64, successes.load(Ordering::Relaxed));
    assert_eq!(total, 4 * 2_000);
}

#[test]
fn compare_and_set_by_version_and_set_if_absent() {
    let engine = Engine::new(EngineConfig::default());
    // SETNX from many threads: exactly one wins.
    let winners: u32 = (0..4)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let ((won, _), _) = engine
                    .run(Isolation::Snapshot, |tx| {
                        if tx.get(0, b"lock")?.is_some() {
                            return Ok((false, ()));
                        }
                        tx.put(0, b"lock", format!("owner{t}").as_bytes(), Expiry::Persist)?;
                        Ok((true, ()))
                    })
                    .unwrap();
                u32::from(won)
            })
        })
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(winners, 1);
    // CAS by version: succeeds only if nobody wrote since the version was read.
    let seen = engine
        .begin(Isolation::Snapshot)
        .get(0, b"lock")
        .unwrap()
        .unwrap()
        .version;
    let cas = |expected: txn::CommitTs| {
        engine.run(Isolation::Snapshot, |tx| {
            let current = tx.get(0, b"lock")?.map(|e| e.version);
            if current != Some(expected) {
                return Ok(false);
            }
            tx.put(0, b"lock", b"cas", Expiry::Persist)?;
            Ok(true)
        })
    };
    assert!(cas(seen).unwrap().0);
    assert!(!cas(seen).unwrap().0, "stale version must not CAS");
}

#[test]
fn readers_never_see_a_torn_newest_version() {
    // One writer overwrites a key in a loop, alternating TTL and no TTL; readers check that
    // the value, version and deadline they get all belong to the same commit (the inline
    // newest version is rewritten under a seqlock while they read).
    let engine = Engine::new(EngineConfig::default());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let engine = engine.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut commits = 0u64;
            for i in 0..20_000u64 {
                let value = format!("{i:08}-{}", "x".repeat((i % 50) as usize));
                let expiry = if i.is_multiple_of(2) {
                    Expiry::At(4_000_000_000_000 + i)
                } else {
                    Expiry::Persist
                };
                let ((), info) = engine
                    .run(Isolation::Snapshot, |tx| {
                        tx.put(0, b"hot", value.as_bytes(), expiry)
                    })
                    .unwrap();
                assert_eq!(
                    info.commit_ts.unwrap().0,
                    i + 1,
                    "single writer: ts = i + 1"
                );
                commits += 1;
                if i.is_multiple_of(1_000) {
                    engine.gc();
                }
            }
            stop.store(true, Ordering::Relaxed);
            commits
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let engine = engine.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut checked = 0u64;
                // Check at least once after the writer is done, however late this thread runs.
                let mut done = false;
                while !done {
                    done = stop.load(Ordering::Relaxed);
                    let mut tx = engine.begin(Isolation::Snapshot);
                    if let Some(entry) = tx.get(0, b"hot").unwrap() {
                        let i: u64 = std::str::from_utf8(&entry.value[..8])
                            .unwrap()
                            .parse()
                            .unwrap();
                        assert_eq!(
                            entry.version.0,
                            i + 1,
                            "value and version from different commits"
                        );
                        assert_eq!(entry.value.len(), 9 + (i % 50) as usize);
                        let expected = if i.is_multiple_of(2) {
                            Some(4_000_000_000_000 + i)
                        } else {
                            None
                        };
                        assert_eq!(
                            entry.expire_at_ms, expected,
                            "deadline from a different commit"
                        );
                        checked += 1;
                    }
                }
                checked
            })
        })
        .collect();
    assert_eq!(writer.join().unwrap(), 20_000);
    let checked: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(checked > 0);
}

/// A 64-byte value that names its writer's sequence number eight times over, so a read of a
/// freed (and reused) value shows up as a mismatch.
fn stamped(n: u64) -> Vec<u8> {
    n.to_le_bytes().repeat(8)
}

fn stamp_of(value: &[u8]) -> u64 {
    assert_eq!(value.len(), 64, "value length");
    let first: [u8; 8] = value[..8].try_into().unwrap();
    assert!(
        value.chunks(8).all(|chunk| chunk == first),
        "torn or reused value"
    );
    u64::from_le_bytes(first)
}

#[test]
fn single_key_writes_reclaim_only_what_no_snapshot_reads() {
    // Blind puts and INCR-style updates reclaim superseded versions at commit when no snapshot
    // is open; readers registering meanwhile, and snapshots kept open across writes, must still
    // read whole values, and a snapshot must read the same value twice.
    let engine = Engine::new(EngineConfig::default());
    let keys = 4u64;
    for k in 0..keys {
        engine.put(0, &k.to_le_bytes(), &stamped(0), None).unwrap();
    }
    let written = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let engine = engine.clone();
            let written = Arc::clone(&written);
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    let key = ((i + t) % keys).to_le_bytes();
                    let n = written.fetch_add(1, Ordering::SeqCst) + 1;
                    if i % 3 == 0 {
                        engine
                            .update(0, &key, true, |_| {
                                let write = txn::KeyWrite::Put {
                                    value: txn::Bytes::from(stamped(n)),
                                    expiry: Expiry::Keep,
                                };
                                Ok::<_, TxnError>((Some(write), ()))
                            })
                            .unwrap();
                    } else {
                        engine.put(0, &key, &stamped(n), None).unwrap();
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2u64)
        .map(|t| {
            let engine = engine.clone();
            let written = Arc::clone(&written);
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    let key = ((i + t) % keys).to_le_bytes();
                    if i % 2 == 0 {
                        let value = engine.get(0, &key).unwrap().unwrap().value;
                        assert!(stamp_of(&value) <= written.load(Ordering::SeqCst));
                    } else {
                        let mut tx = engine.begin(Isolation::Snapshot);
                        let first = tx.get(0, &key).unwrap().unwrap().value;
                        std::thread::yield_now();
                        let again = tx.get(0, &key).unwrap().unwrap().value;
                        assert_eq!(stamp_of(&first), stamp_of(&again), "repeatable read");
                    }
                    if i % 1_000 == 0 {
                        engine.gc();
                    }
                }
            })
        })
        .collect();
    for thread in writers.into_iter().chain(readers) {
        thread.join().unwrap();
    }
    while !engine.gc().caught_up {}
    let stats = engine.stats();
    assert_eq!(
        stats.dbs[0].versions, keys,
        "only the newest versions remain"
    );
    assert_eq!(
        stats.pages.values_live, keys,
        "every other value freed once"
    );
}

/// Redis's optimistic increment: WATCH, GET, then a transaction that blindly writes GET's value
/// plus one, retried when the watch fails. No increment may be lost: a watch must mark the
/// version the following read sees, not a newer one that is installed but not yet visible
/// (regression: marking the newest installed version let EXEC pass on a stale read).
#[test]
fn watch_get_then_blind_write_loses_no_increment() {
    let engine = Engine::new(EngineConfig::default());
    engine.put(0, b"counter", b"0", None).unwrap();
    let (threads, per_thread) = (4usize, 3_000usize);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                for _ in 0..per_thread {
                    loop {
                        let mark = engine.watch_mark(0, b"counter");
                        let seen = engine.get(0, b"counter").unwrap().unwrap();
                        let n: i64 = std::str::from_utf8(&seen.value).unwrap().parse().unwrap();
                        let mut tx = engine.begin(Isolation::Serializable);
                        tx.watch(0, b"counter", mark);
                        tx.put(0, b"counter", (n + 1).to_string().as_bytes(), Expiry::Keep)
                            .unwrap();
                        match tx.commit() {
                            Ok(_) => break,
                            Err(TxnError::WatchFailed) => continue,
                            Err(other) => panic!("{other:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let last = engine.get(0, b"counter").unwrap().unwrap();
    assert_eq!(
        last.value.as_ref(),
        (threads * per_thread).to_string().as_bytes()
    );
}

#[test]
fn concurrent_read_modify_writes_lose_no_update_while_values_move() {
    // `Engine::update` reads and decides outside the commit lock and commits only if the key's
    // newest version is still the one it read. Three threads increment 1 024 counters while
    // another keeps relocating values (compaction re-points them) and running GC, and a
    // fifth holds snapshots open now and then: every increment must land exactly once, and
    // every read must see a whole number (never the bytes of a freed or moved place).
    let engine = Engine::new(EngineConfig::default());
    // Many counters, so that sealed pages still hold live values for compaction to move.
    let keys = 1_024u64;
    let per_thread = 60_000u64;
    let done = Arc::new(AtomicBool::new(false));
    let incr = |engine: &Engine, key: &[u8]| {
        engine
            .update(0, key, true, |current| {
                let n: u64 = match current {
                    None => 0,
                    Some(e) => std::str::from_utf8(&e.value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("not a number: {:?}", e.value)),
                };
                let value = (n + 1).to_string().into_bytes();
                let write = txn::KeyWrite::Put {
                    value: txn::Bytes::from(value),
                    expiry: Expiry::Keep,
                };
                Ok::<_, TxnError>((Some(write), ()))
            })
            .unwrap();
    };
    // Each writer makes `per_thread` increments, and goes on until compaction has moved
    // values at least once (on a loaded machine the mover may not get a core before that):
    // the test is about increments racing relocation.
    let writers: Vec<_> = (0..3u64)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while i < per_thread
                    || (engine.compaction_stats().values_moved == 0 && i < 20 * per_thread)
                {
                    let key = ((i * 7 + t) % keys).to_le_bytes();
                    incr(&engine, &key);
                    i += 1;
                }
                i
            })
        })
        .collect();
    let mover = {
        let engine = engine.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                engine.compact_now(100);
                engine.gc();
                engine.release_retired();
            }
        })
    };
    let holder = {
        let engine = engine.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let mut tx = engine.begin(Isolation::Snapshot);
                for k in 0..keys {
                    if let Some(e) = tx.get(0, &k.to_le_bytes()).unwrap() {
                        let text = std::str::from_utf8(&e.value).unwrap();
                        assert!(text.parse::<u64>().is_ok(), "{text:?}");
                    }
                }
                std::thread::yield_now();
                drop(tx);
            }
        })
    };
    let increments: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    done.store(true, Ordering::SeqCst);
    mover.join().unwrap();
    holder.join().unwrap();
    let total: u64 = (0..keys)
        .map(|k| {
            let e = engine.get(0, &k.to_le_bytes()).unwrap().unwrap();
            std::str::from_utf8(&e.value)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, increments, "every increment lands exactly once");
    assert!(
        engine.compaction_stats().values_moved > 0,
        "values moved meanwhile: {:?}",
        engine.compaction_stats()
    );
}
