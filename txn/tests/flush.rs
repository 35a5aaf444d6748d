//! O(1) FLUSHDB / FLUSHALL (`keyspace.rs`): a flush points the database at an empty keyspace
//! under the commit lock; older snapshots keep reading the old one; GC reclaims it once the
//! watermark passes the flush; conflicts and WATCH behave as if every live key had been
//! deleted by the flush.

use std::sync::Arc;

use tierkv_txn as txn;
use txn::{Clock, Engine, EngineConfig, Expiry, Isolation, ManualClock, TxnError};

fn engine() -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000));
    let engine = Engine::new(EngineConfig {
        clock: clock.clone(),
        ..EngineConfig::default()
    });
    (engine, clock)
}

fn settle(engine: &Engine) {
    for _ in 0..10_000 {
        if engine.gc().caught_up {
            return;
        }
    }
    panic!("GC never caught up");
}

fn fill(engine: &Engine, db: u8, keys: usize) {
    for i in 0..keys {
        engine
            .put(
                db,
                format!("k{i}").as_bytes(),
                format!("v{i}").as_bytes(),
                None,
            )
            .unwrap();
    }
}

#[test]
fn a_flush_frees_every_value_once_gc_reclaims_it() {
    let (engine, _) = engine();
    fill(&engine, 0, 2_000);
    fill(&engine, 3, 500);
    settle(&engine);
    let before = engine.stats();
    assert_eq!(before.pages.values_live, 2_500);
    engine.flush_all().unwrap();
    assert_eq!(engine.dbsize(0), 0);
    assert_eq!(engine.dbsize(3), 0);
    let flushed = engine.stats();
    assert_eq!(flushed.lazyfree_pending_objects, 2_500);
    // The flushed keys stop counting for eviction at once, as tombstoned keys would: their
    // nodes and values are counted apart, what is left is the fixed part and hash arrays.
    let m = flushed.memory;
    assert!(m.index_bytes >= 2_500 * txn::memory::node_bytes(5));
    assert!(
        m.counted_for_evict_bytes <= m.overhead_bytes + m.hash_index_bytes + 65_536,
        "{m:?}"
    );
    assert!(m.not_counted_for_evict_bytes >= m.index_bytes + m.value_bytes);
    settle(&engine);
    let after = engine.stats();
    assert_eq!(after.lazyfree_pending_objects, 0);
    assert_eq!(after.lazyfreed_objects, 2_500);
    assert_eq!(after.pages.values_live, 0);
    assert_eq!(after.memory.version_bytes, 0);
    assert_eq!(after.memory.index_bytes, 0);
    // Nothing is left as garbage: the flush's hand-over and reclaim's frees cancel out, and
    // the counters read as after deleting the same keys one by one.
    let (control, _) = self::engine();
    fill(&control, 0, 2_000);
    fill(&control, 3, 500);
    for (db, keys) in [(0, 2_000), (3, 500)] {
        for i in 0..keys {
            control.delete_one(db, format!("k{i}").as_bytes()).unwrap();
        }
    }
    settle(&control);
    let expected = control.stats().memory;
    assert_eq!(
        after.memory.not_counted_for_evict_bytes,
        expected.not_counted_for_evict_bytes
    );
    assert_eq!(after.memory.value_held_bytes, expected.value_held_bytes);
    // Reclaim gave back the flushed keyspace's hash tables (none of db 0's new one exist).
    assert_eq!(engine.stats().memory.hash_index_bytes, 0);
    // The keyspaces are reusable: flush after flush, each reclaimed.
    for round in 0..40 {
        fill(&engine, 0, 50);
        engine.flush_db(0).unwrap();
        if round % 3 == 0 {
            settle(&engine);
        }
    }
    settle(&engine);
    let after = engine.stats();
    assert_eq!(after.pages.values_live, 0);
    assert_eq!(after.memory.index_bytes, 0);
}

#[test]
fn a_snapshot_older_than_the_flush_reads_the_old_keys_until_it_ends() {
    let (engine, _) = engine();
    fill(&engine, 0, 100);
    let old = engine.begin(Isolation::Snapshot);
    engine.flush_db(0).unwrap();
    engine.put(0, b"k1", b"new", None).unwrap();
    settle(&engine);
    let mut old = old;
    assert_eq!(&old.get(0, b"k7").unwrap().unwrap().value[..], b"v7");
    assert_eq!(&old.get(0, b"k1").unwrap().unwrap().value[..], b"v1");
    assert_eq!(old.scan(0, None, None, 1_000).unwrap().len(), 100);
    assert_eq!(engine.stats().lazyfree_pending_objects, 100);
    let mut fresh = engine.begin(Isolation::Snapshot);
    assert!(fresh.get(0, b"k7").unwrap().is_none());
    assert_eq!(&fresh.get(0, b"k1").unwrap().unwrap().value[..], b"new");
    assert_eq!(&engine.get(0, b"k1").unwrap().unwrap().value[..], b"new");
    drop(fresh);
    drop(old);
    settle(&engine);
    assert_eq!(engine.stats().lazyfree_pending_objects, 0);
    assert_eq!(engine.stats().pages.values_live, 1);
}

#[test]
fn a_flush_conflicts_with_readers_and_writers_of_keys_it_deleted_only() {
    let (engine, _) = engine();
    fill(&engine, 0, 10);
    // Read a live key, then the flush deletes it: conflict.
    let mut reader = engine.begin(Isolation::Serializable);
    reader.get(0, b"k1").unwrap();
    reader.put(0, b"out", b"x", Expiry::Persist).unwrap();
    // Read an absent key: the flush did not write it.
    let mut absent = engine.begin(Isolation::Serializable);
    assert!(absent.get(0, b"nope").unwrap().is_none());
    absent.put(0, b"out2", b"x", Expiry::Persist).unwrap();
    // Write a live key under snapshot isolation: the flush wrote it first.
    let mut writer = engine.begin(Isolation::Snapshot);
    writer.put(0, b"k2", b"mine", Expiry::Persist).unwrap();
    // Scan a range holding live keys.
    let mut scanner = engine.begin(Isolation::Serializable);
    assert_eq!(scanner.scan(0, None, None, 3).unwrap().len(), 3);
    scanner.put(0, b"out3", b"x", Expiry::Persist).unwrap();
    // A key written after the flush, read before: conflict too.
    let mut later = engine.begin(Isolation::Serializable);
    assert!(later.get(0, b"fresh").unwrap().is_none());
    later.put(0, b"out4", b"x", Expiry::Persist).unwrap();

    engine.flush_db(0).unwrap();
    engine.put(0, b"fresh", b"1", None).unwrap();

    assert!(matches!(reader.commit(), Err(TxnError::Conflict { .. })));
    absent.commit().unwrap();
    assert!(matches!(writer.commit(), Err(TxnError::Conflict { .. })));
    assert!(matches!(scanner.commit(), Err(TxnError::Conflict { .. })));
    assert!(matches!(later.commit(), Err(TxnError::Conflict { .. })));
}

#[test]
fn watch_follows_redis_across_a_flush_before_and_after_reclaim() {
    let (engine, clock) = engine();
    engine.put(0, b"live", b"1", None).unwrap();
    engine.put(0, b"stale", b"1", Some(1_500)).unwrap();
    clock.advance(1_000);
    for reclaim in [false, true] {
        let live = engine.watch_mark(0, b"live");
        let absent = engine.watch_mark(0, b"absent");
        let stale = engine.watch_mark(0, b"stale");
        assert!(stale.expired);
        engine.flush_all().unwrap();
        if reclaim {
            settle(&engine);
        }
        let exec = |key: &[u8], mark| {
            let mut tx = engine.begin(Isolation::Snapshot);
            tx.watch(0, key, mark);
            tx.put(0, b"side", b"x", Expiry::Persist).unwrap();
            tx.commit()
        };
        assert!(
            matches!(exec(b"live", live), Err(TxnError::WatchFailed)),
            "reclaimed: {reclaim}"
        );
        exec(b"absent", absent).unwrap();
        exec(b"stale", stale).unwrap();
        engine.put(0, b"live", b"1", None).unwrap();
        engine
            .put(0, b"stale", b"1", Some(clock.now_ms() + 500))
            .unwrap();
        clock.advance(1_000);
    }
}

#[test]
fn compaction_moves_values_of_a_flushed_keyspace_and_reclaim_frees_them_once() {
    let (engine, _) = engine();
    let big = vec![7u8; 900];
    for i in 0..400 {
        engine
            .put(0, format!("k{i}").as_bytes(), &big, None)
            .unwrap();
    }
    // Sparse pages: most keys deleted, every tenth kept.
    for i in 0..400 {
        if i % 10 != 0 {
            engine.delete_one(0, format!("k{i}").as_bytes()).unwrap();
        }
    }
    settle(&engine);
    let old = engine.begin(Isolation::Snapshot);
    engine.flush_db(0).unwrap();
    engine.compact_now(100);
    assert!(engine.compaction_stats().values_moved > 0);
    let mut old = old;
    assert_eq!(old.scan(0, None, None, 1_000).unwrap().len(), 40);
    drop(old);
    settle(&engine);
    engine.compact_now(100);
    assert_eq!(engine.compaction_stats().retired_bytes, 0);
    assert_eq!(engine.stats().pages.values_live, 0);
}

#[test]
fn with_no_spare_keyspace_left_a_flush_tombstones_every_key_and_stays_correct() {
    let (engine, _) = engine();
    // An open snapshot holds every retired keyspace: after 16 flushes no spare is left.
    let old = engine.begin(Isolation::Snapshot);
    for round in 0..24u32 {
        fill(&engine, 0, 20);
        engine
            .put(0, b"round", round.to_string().as_bytes(), None)
            .unwrap();
        engine.flush_db(0).unwrap();
        assert_eq!(engine.dbsize(0), 0, "round {round}");
        assert!(engine.get(0, b"k3").unwrap().is_none());
    }
    drop(old);
    settle(&engine);
    let stats = engine.stats();
    assert_eq!(stats.lazyfree_pending_objects, 0);
    assert_eq!(stats.pages.values_live, 0);
    assert_eq!(stats.memory.index_bytes, 0);
    // And the spares are back: a flush is O(1) again.
    fill(&engine, 0, 20);
    engine.flush_db(0).unwrap();
    assert_eq!(engine.stats().lazyfree_pending_objects, 20);
}

#[test]
fn writers_racing_flushes_lose_nothing_written_after_the_last_flush() {
    let (engine, _) = engine();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3u32)
        .map(|t| {
            let engine = engine.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("w{t}-{}", i % 500);
                    engine.put(0, key.as_bytes(), b"v", None).unwrap();
                    engine
                        .update(0, format!("n{t}").as_bytes(), true, |_| {
                            Ok::<_, TxnError>((
                                Some(txn::KeyWrite::Put {
                                    value: txn::Bytes::from_static(b"1"),
                                    expiry: Expiry::Keep,
                                }),
                                (),
                            ))
                        })
                        .unwrap();
                    i += 1;
                }
            })
        })
        .collect();
    let flusher = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                engine.flush_all().unwrap();
                engine.gc();
            }
        })
    };
    flusher.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    // The count of live keys agrees with a scan, and everything GC can free is freed.
    let mut tx = engine.begin(Isolation::Snapshot);
    let scanned = tx.scan(0, None, None, 1_000_000).unwrap().len() as u64;
    drop(tx);
    assert_eq!(engine.dbsize(0), scanned);
    settle(&engine);
    let stats = engine.stats();
    assert_eq!(stats.lazyfree_pending_objects, 0);
    assert_eq!(stats.pages.values_live, scanned);
    assert_eq!(stats.dbs[0].key_nodes, scanned);
}

#[test]
fn compaction_copies_nothing_a_flush_is_about_to_free() {
    let (engine, _) = engine();
    engine.set_compaction_config(txn::CompactionConfig {
        enabled: true,
        threshold_lower_pct: 10,
        ignore_bytes: 0,
    });
    let big = vec![3u8; 700];
    for i in 0..600 {
        engine
            .put(0, format!("k{i}").as_bytes(), &big, None)
            .unwrap();
    }
    // Fragmented pages: compaction has work.
    for i in (0..600).filter(|i| i % 4 != 0) {
        engine.delete_one(0, format!("k{i}").as_bytes()).unwrap();
    }
    settle(&engine);
    engine.flush_db(0).unwrap();
    // The flushed keys are about to be freed (GC has not run yet): compaction moves none of
    // them meanwhile.
    for _ in 0..10 {
        assert_eq!(engine.compact_tick().values_moved, 0);
    }
    settle(&engine);
    assert_eq!(engine.compaction_stats().values_moved, 0);
    assert_eq!(engine.stats().pages.values_live, 0);
}

/// Over `maxmemory` right after a FLUSHALL, before GC has reclaimed anything, a write goes
/// ahead: the flushed keys stopped counting for eviction at the flush (as tombstoned keys
/// would), even while a snapshot still holds them.
#[test]
fn a_write_over_maxmemory_goes_ahead_right_after_a_flush() {
    let (engine, _) = engine();
    let big = vec![1u8; 1000];
    engine.put(0, b"first", &big, None).unwrap();
    let empty = engine.memory_stats().used_bytes;
    for i in 0..3000 {
        engine
            .put(0, format!("k{i}").as_bytes(), &big, None)
            .unwrap();
    }
    let used = engine.memory_stats().used_bytes;
    let limit = empty + (used - empty) / 2;
    engine.set_memory_config(txn::MemoryConfig {
        maxmemory_bytes: limit,
        policy: txn::EvictionPolicy::NoEviction,
        ..engine.memory_config()
    });
    assert!(matches!(
        engine.make_room(),
        Err(TxnError::OutOfMemory { .. })
    ));
    let snapshot = engine.begin(Isolation::Snapshot);
    engine.flush_all().unwrap();
    engine.make_room().unwrap();
    drop(snapshot);
    engine.make_room().unwrap();
    settle(&engine);
    assert!(engine.memory_stats().used_bytes < limit);
}
