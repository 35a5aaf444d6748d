//! Shuttle tests of the commit/visibility protocol and of GC's version unlinking.
//!
//! Shuttle schedules the test's threads at random at every engine call boundary (thousands of
//! schedules per test), so these check the protocol's guarantees across interleavings of
//! begin / read / commit / gc: atomic visibility of multi-key commits, snapshot stability while
//! GC unlinks versions, and first-committer-wins.

use std::sync::Arc;

use shuttle::thread;
use tierkv_txn as txn;
use txn::{Engine, EngineConfig, Expiry, Isolation, TxnError};

fn value(tx: &mut txn::Transaction, key: &[u8]) -> Option<Vec<u8>> {
    tx.get(0, key).unwrap().map(|e| e.value.to_vec())
}

#[test]
fn multi_key_commits_are_visible_atomically() {
    shuttle::check_random(
        || {
            let engine = Engine::new(EngineConfig::default());
            let writers: Vec<_> = (0..2u8)
                .map(|w| {
                    let engine = engine.clone();
                    thread::spawn(move || {
                        for round in 0..3u8 {
                            let v = [w, round];
                            let _ = engine.run(Isolation::Snapshot, |tx| {
                                tx.put(0, b"x", &v, Expiry::Persist)?;
                                thread::yield_now();
                                tx.put(0, b"y", &v, Expiry::Persist)
                            });
                            thread::yield_now();
                        }
                    })
                })
                .collect();
            let reader = {
                let engine = engine.clone();
                thread::spawn(move || {
                    for _ in 0..4 {
                        let mut tx = engine.begin(Isolation::Snapshot);
                        let x = value(&mut tx, b"x");
                        thread::yield_now();
                        let y = value(&mut tx, b"y");
                        assert_eq!(x, y, "a reader saw part of a transaction");
                        engine.gc();
                    }
                })
            };
            for w in writers {
                w.join().unwrap();
            }
            reader.join().unwrap();
        },
        2_000,
    );
}

#[test]
fn gc_never_takes_what_an_open_snapshot_reads() {
    shuttle::check_random(
        || {
            let engine = Engine::new(EngineConfig::default());
            engine
                .run(Isolation::Snapshot, |tx| {
                    tx.put(0, b"k", b"v0", Expiry::Persist)
                })
                .unwrap();
            let writer = {
                let engine = engine.clone();
                thread::spawn(move || {
                    for i in 1..4u8 {
                        engine
                            .run(Isolation::Snapshot, |tx| {
                                tx.put(0, b"k", &[b'v', b'0' + i], Expiry::Persist)
                            })
                            .unwrap();
                        thread::yield_now();
                        if i == 2 {
                            engine
                                .run(Isolation::Snapshot, |tx| tx.delete(0, b"k").map(|_| ()))
                                .unwrap();
                        }
                    }
                })
            };
            let collector = {
                let engine = engine.clone();
                thread::spawn(move || {
                    for _ in 0..4 {
                        engine.gc();
                        thread::yield_now();
                    }
                })
            };
            let reader = {
                let engine = engine.clone();
                thread::spawn(move || {
                    let mut tx = engine.begin(Isolation::Snapshot);
                    let first = value(&mut tx, b"k");
                    for _ in 0..4 {
                        thread::yield_now();
                        assert_eq!(value(&mut tx, b"k"), first, "snapshot changed under GC");
                    }
                })
            };
            writer.join().unwrap();
            collector.join().unwrap();
            reader.join().unwrap();
            while !engine.gc().caught_up {}
            let stats = engine.stats();
            assert_eq!(stats.dbs[0].versions, stats.dbs[0].keys);
            assert_eq!(stats.pages.values_live, stats.dbs[0].keys);
        },
        2_000,
    );
}

#[test]
fn exactly_one_of_two_conflicting_writers_commits() {
    shuttle::check_random(
        || {
            let engine = Engine::new(EngineConfig::default());
            let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
            let handles: Vec<_> = (0..2u8)
                .map(|w| {
                    let engine = engine.clone();
                    let outcomes = Arc::clone(&outcomes);
                    thread::spawn(move || {
                        let mut tx = engine.begin(Isolation::Snapshot);
                        let seen = tx.get(0, b"c").unwrap().is_some();
                        thread::yield_now();
                        tx.put(0, b"c", &[w], Expiry::Persist).unwrap();
                        thread::yield_now();
                        let result = tx.commit();
                        outcomes.lock().unwrap().push((
                            seen,
                            result.is_ok(),
                            matches!(result, Err(TxnError::Conflict { .. })),
                        ));
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let outcomes = outcomes.lock().unwrap();
            let committed = outcomes.iter().filter(|o| o.1).count();
            // Both may commit only if the second began after the first committed (and saw it).
            if committed == 2 {
                assert!(outcomes.iter().any(|o| o.0));
            } else {
                assert_eq!(committed, 1);
                assert!(outcomes.iter().any(|o| o.2));
            }
        },
        2_000,
    );
}
