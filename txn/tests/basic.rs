//! Basic behaviour of the engine API: reads, writes, conflicts, watches, scans, expiry, GC.

use std::ops::Bound;
use std::sync::Arc;

use tierkv_txn as txn;
use txn::{CommitTs, Engine, EngineConfig, Expiry, Isolation, ManualClock, TxnError};

/// A commit sink that keeps every record, for replay checks.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<Vec<u8>>>);

impl txn::CommitSink for Recorder {
    fn append(&self, record: &[u8]) -> Result<txn::Lsn, TxnError> {
        let mut log = self.0.lock().unwrap();
        log.push(record.to_vec());
        Ok(txn::Lsn(log.len() as u64))
    }
}

impl Recorder {
    /// A fresh engine on `clock` with every recorded record replayed.
    fn replay(&self, clock: Arc<ManualClock>) -> Engine {
        let replica = Engine::new(EngineConfig {
            clock,
            ..EngineConfig::default()
        });
        for bytes in self.0.lock().unwrap().iter() {
            replica
                .apply_record(&txn::LogRecord::decode(bytes).unwrap())
                .unwrap();
        }
        replica
    }
}

fn engine_with_clock(now: u64) -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(now));
    let engine = Engine::new(EngineConfig {
        clock: clock.clone(),
        ..EngineConfig::default()
    });
    (engine, clock)
}

fn set(engine: &Engine, key: &str, value: &str) -> CommitTs {
    let ((), info) = engine
        .run(Isolation::Snapshot, |tx| {
            tx.put(0, key.as_bytes(), value.as_bytes(), Expiry::Persist)
        })
        .unwrap();
    info.commit_ts.unwrap()
}

fn get(engine: &Engine, key: &str) -> Option<String> {
    let mut tx = engine.begin(Isolation::Snapshot);
    tx.get(0, key.as_bytes())
        .unwrap()
        .map(|e| String::from_utf8(e.value.to_vec()).unwrap())
}

#[test]
fn put_get_delete_round_trip() {
    let (engine, _) = engine_with_clock(1_000);
    assert_eq!(get(&engine, "a"), None);
    let ts = set(&engine, "a", "1");
    assert_eq!(get(&engine, "a").as_deref(), Some("1"));
    assert_eq!(engine.dbsize(0), 1);
    let mut tx = engine.begin(Isolation::Snapshot);
    assert_eq!(tx.get(0, b"a").unwrap().unwrap().version, ts);
    assert!(tx.delete(0, b"a").unwrap());
    assert_eq!(tx.get(0, b"a").unwrap(), None, "own delete visible");
    assert!(!tx.delete(0, b"a").unwrap());
    tx.commit().unwrap();
    assert_eq!(get(&engine, "a"), None);
    assert_eq!(engine.dbsize(0), 0);
}

#[test]
fn snapshot_does_not_see_later_commits_and_own_writes_are_seen() {
    let (engine, _) = engine_with_clock(1_000);
    set(&engine, "k", "old");
    let mut reader = engine.begin(Isolation::Snapshot);
    set(&engine, "k", "new");
    assert_eq!(&reader.get(0, b"k").unwrap().unwrap().value[..], b"old");
    reader.put(0, b"k2", b"mine", Expiry::Persist).unwrap();
    assert_eq!(&reader.get(0, b"k2").unwrap().unwrap().value[..], b"mine");
    assert_eq!(
        reader.get(0, b"k2").unwrap().unwrap().version,
        CommitTs::UNCOMMITTED
    );
    reader.abort();
    assert_eq!(get(&engine, "k2"), None);
    assert_eq!(get(&engine, "k").as_deref(), Some("new"));
}

#[test]
fn first_committer_wins() {
    let (engine, _) = engine_with_clock(1_000);
    set(&engine, "x", "0");
    let mut a = engine.begin(Isolation::Snapshot);
    let mut b = engine.begin(Isolation::Snapshot);
    a.put(0, b"x", b"a", Expiry::Persist).unwrap();
    b.put(0, b"x", b"b", Expiry::Persist).unwrap();
    a.commit().unwrap();
    match b.commit() {
        Err(TxnError::Conflict { key }) => assert_eq!(&key[..], b"x"),
        other => panic!("expected conflict, got {other:?}"),
    }
    assert_eq!(get(&engine, "x").as_deref(), Some("a"));
}

#[test]
fn read_only_transactions_never_conflict() {
    let (engine, _) = engine_with_clock(1_000);
    set(&engine, "x", "0");
    let mut r = engine.begin(Isolation::Serializable);
    r.get(0, b"x").unwrap();
    set(&engine, "x", "1");
    let info = r.commit().unwrap();
    assert_eq!(info.commit_ts, None);
}

#[test]
fn watch_fails_when_the_key_changed() {
    let (engine, _) = engine_with_clock(1_000);
    set(&engine, "w", "0");
    let mark = engine.watch_mark(0, b"w");
    assert_ne!(mark.version, CommitTs::NONE);
    assert_eq!(engine.watch_mark(0, b"absent").version, CommitTs::NONE);
    set(&engine, "w", "1");
    let mut tx = engine.begin(Isolation::Snapshot);
    tx.watch(0, b"w", mark);
    tx.put(0, b"other", b"v", Expiry::Persist).unwrap();
    assert!(matches!(tx.commit(), Err(TxnError::WatchFailed)));
    let mut tx = engine.begin(Isolation::Snapshot);
    tx.watch(0, b"w", engine.watch_mark(0, b"w"));
    tx.put(0, b"other", b"v", Expiry::Persist).unwrap();
    tx.commit().unwrap();
}

/// WATCH and TTLs as in Redis 7: a key live when watched that expires before EXEC fails the
/// EXEC even while active expiry has not deleted it yet (`isWatchedKeyExpired`); a key already
/// expired when watched and deleted by expiry since, with nothing else in between, does not
/// (`touchWatchedKey`); anything written in between still does.
#[test]
fn watch_follows_redis_for_keys_that_expire() {
    let commit_watching = |engine: &Engine, mark: txn::WatchMark| {
        let mut tx = engine.begin(Isolation::Serializable);
        tx.watch(0, b"k", mark);
        tx.put(0, b"other", b"v", Expiry::Persist).unwrap();
        tx.commit()
    };
    let put_with_deadline = |engine: &Engine, at: u64| {
        engine
            .run(Isolation::Snapshot, |tx| {
                tx.put(0, b"k", b"v", Expiry::At(at))
            })
            .unwrap();
    };
    // Live at WATCH, past its deadline at EXEC, not yet deleted: EXEC fails.
    let (engine, clock) = engine_with_clock(1_000);
    put_with_deadline(&engine, 5_000);
    let mark = engine.watch_mark(0, b"k");
    clock.set(6_000);
    assert!(matches!(
        commit_watching(&engine, mark),
        Err(TxnError::WatchFailed)
    ));
    // Still live at EXEC: it goes through.
    let (engine, clock) = engine_with_clock(1_000);
    put_with_deadline(&engine, 5_000);
    let mark = engine.watch_mark(0, b"k");
    clock.set(4_000);
    commit_watching(&engine, mark).unwrap();
    // Expired at WATCH, then deleted by active expiry: no change, EXEC goes through.
    let (engine, clock) = engine_with_clock(1_000);
    put_with_deadline(&engine, 5_000);
    clock.set(6_000);
    let mark = engine.watch_mark(0, b"k");
    assert_eq!(engine.expire_tick(100), 1);
    commit_watching(&engine, mark).unwrap();
    // Expired at WATCH, then written and deleted by someone: EXEC fails.
    let (engine, clock) = engine_with_clock(1_000);
    put_with_deadline(&engine, 5_000);
    clock.set(6_000);
    let mark = engine.watch_mark(0, b"k");
    set(&engine, "k", "new");
    engine
        .run(Isolation::Snapshot, |tx| tx.delete(0, b"k"))
        .unwrap();
    assert!(matches!(
        commit_watching(&engine, mark),
        Err(TxnError::WatchFailed)
    ));
}

/// Runs GC until it has caught up (everything collectable collected)./// Runs GC until it has caught up (everything collectable collected).
fn gc_full_sweep(engine: &Engine) {
    for _ in 0..1_000 {
        if engine.gc().caught_up {
            return;
        }
    }
    panic!("GC never caught up");
}

/// Regression: WATCH on an absent key, then SET and DEL by someone else, then GC removes the
/// key's dead node: at EXEC the key looked exactly as when watched (absent, no node) and EXEC
/// went through, where Redis fails it because the key was touched.
#[test]
fn watch_on_an_absent_key_sees_set_then_del_even_after_gc_removed_the_node() {
    let (engine, _) = engine_with_clock(1_000);
    let mark = engine.watch_mark(0, b"k");
    assert_eq!(mark.version, CommitTs::NONE);
    set(&engine, "k", "1");
    engine
        .run(Isolation::Snapshot, |tx| tx.delete(0, b"k"))
        .unwrap();
    gc_full_sweep(&engine);
    assert_eq!(
        engine.stats().dbs[0].key_nodes,
        0,
        "GC removed the dead node"
    );
    // A block that writes (checked under the commit lock) fails ...
    let mut tx = engine.begin(Isolation::Serializable);
    tx.watch(0, b"k", mark);
    tx.put(0, b"k", b"mine", Expiry::Persist).unwrap();
    assert!(matches!(tx.commit(), Err(TxnError::WatchFailed)));
    // ... and so does a read-only one (checked without the lock).
    let mut tx = engine.begin(Isolation::Serializable);
    tx.watch(0, b"k", mark);
    assert!(tx.get(0, b"k").unwrap().is_none());
    assert!(matches!(tx.commit(), Err(TxnError::WatchFailed)));
    assert_eq!(get(&engine, "k"), None);
}

/// GC removing a dead node is not a change: a watch taken after the delete (it saw the
/// tombstone) or after the removal (it saw nothing) still lets EXEC through.
#[test]
fn gc_removing_a_dead_node_does_not_fail_a_watch_taken_after_the_delete() {
    let (engine, _) = engine_with_clock(1_000);
    set(&engine, "k", "1");
    engine
        .run(Isolation::Snapshot, |tx| tx.delete(0, b"k"))
        .unwrap();
    let saw_tombstone = engine.watch_mark(0, b"k");
    assert_ne!(saw_tombstone.version, CommitTs::NONE);
    gc_full_sweep(&engine);
    assert_eq!(engine.stats().dbs[0].key_nodes, 0);
    let saw_nothing = engine.watch_mark(0, b"k");
    for mark in [saw_tombstone, saw_nothing] {
        let mut tx = engine.begin(Isolation::Serializable);
        tx.watch(0, b"k", mark);
        tx.put(0, b"other", b"v", Expiry::Persist).unwrap();
        tx.commit().unwrap();
    }
}

#[test]
fn write_skew_is_allowed_by_snapshot_and_rejected_by_serializable() {
    for (isolation, expect_both) in [
        (Isolation::Snapshot, true),
        (Isolation::Serializable, false),
    ] {
        let (engine, _) = engine_with_clock(1_000);
        set(&engine, "alice", "on");
        set(&engine, "bob", "on");
        // Invariant: at least one doctor on call. Each goes off call if the other is on.
        let mut t1 = engine.begin(isolation);
        let mut t2 = engine.begin(isolation);
        assert!(t1.get(0, b"bob").unwrap().is_some());
        assert!(t2.get(0, b"alice").unwrap().is_some());
        t1.delete(0, b"alice").unwrap();
        t2.delete(0, b"bob").unwrap();
        let r1 = t1.commit();
        let r2 = t2.commit();
        assert!(r1.is_ok());
        assert_eq!(r2.is_ok(), expect_both, "{isolation:?}: {r2:?}");
    }
}

#[test]
fn serializable_scan_detects_phantoms() {
    let (engine, _) = engine_with_clock(1_000);
    set(&engine, "p:1", "x");
    let mut t1 = engine.begin(Isolation::Serializable);
    let rows = t1.scan(0, None, Some(b"p:"), 10).unwrap();
    assert_eq!(rows.len(), 1);
    set(&engine, "p:2", "y");
    t1.put(0, b"count", b"1", Expiry::Persist).unwrap();
    assert!(matches!(t1.commit(), Err(TxnError::Conflict { .. })));
}

#[test]
fn scan_merges_own_writes_in_order_with_cursor() {
    let (engine, _) = engine_with_clock(1_000);
    for k in ["a", "b", "c", "d", "e"] {
        set(&engine, k, k);
    }
    let mut tx = engine.begin(Isolation::Snapshot);
    tx.delete(0, b"b").unwrap();
    tx.put(0, b"bb", b"new", Expiry::Persist).unwrap();
    tx.put(0, b"z", b"z", Expiry::Persist).unwrap();
    let keys = |rows: Vec<(txn::Bytes, txn::Entry)>| {
        rows.into_iter()
            .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
            .collect::<Vec<_>>()
    };
    let page1 = tx.scan(0, None, None, 3).unwrap();
    let last = page1.last().unwrap().0.clone();
    assert_eq!(keys(page1), ["a", "bb", "c"]);
    let page2 = tx.scan(0, Some(&last), None, 10).unwrap();
    assert_eq!(keys(page2), ["d", "e", "z"]);
    let ranged = tx
        .scan_range(0, Bound::Excluded(b"a"), Bound::Included(b"d"), 10)
        .unwrap();
    assert_eq!(keys(ranged), ["bb", "c", "d"]);
}

#[test]
fn expiry_is_exact_to_the_millisecond_and_active_expiry_deletes() {
    let (engine, clock) = engine_with_clock(10_000);
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.put(0, b"t", b"v", Expiry::At(10_050))
        })
        .unwrap();
    clock.set(10_049);
    assert_eq!(get(&engine, "t").as_deref(), Some("v"));
    clock.set(10_050);
    assert_eq!(get(&engine, "t"), None);
    assert_eq!(engine.dbsize(0), 1, "not yet actively expired");
    assert_eq!(engine.expire_tick(100), 1);
    assert_eq!(engine.dbsize(0), 0);
    assert_eq!(engine.stats().expired_keys, 1);
}

#[test]
fn new_ttl_supersedes_old_deadline() {
    let (engine, clock) = engine_with_clock(0);
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.put(0, b"t", b"v", Expiry::At(100))
        })
        .unwrap();
    engine
        .run(Isolation::Snapshot, |tx| tx.set_expiry(0, b"t", Some(200)))
        .unwrap();
    clock.set(150);
    assert_eq!(engine.expire_tick(100), 0, "stale wheel entry ignored");
    assert_eq!(get(&engine, "t").as_deref(), Some("v"));
    engine
        .run(Isolation::Snapshot, |tx| tx.set_expiry(0, b"t", None))
        .unwrap();
    clock.set(250);
    assert_eq!(engine.expire_tick(100), 0);
    assert_eq!(get(&engine, "t").as_deref(), Some("v"));
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.put(0, b"t", b"w", Expiry::At(300))
        })
        .unwrap();
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.put(0, b"t", b"x", Expiry::Keep)
        })
        .unwrap();
    clock.set(300);
    assert_eq!(get(&engine, "t"), None);
    assert_eq!(engine.expire_tick(100), 1);
}

#[test]
fn gc_frees_old_versions_but_respects_open_snapshots() {
    let (engine, _) = engine_with_clock(0);
    set(&engine, "g", "v1");
    let mut old = engine.begin(Isolation::Snapshot);
    set(&engine, "g", "v2");
    set(&engine, "g", "v3");
    let stats = engine.gc();
    assert_eq!(
        stats.versions_unlinked, 0,
        "v1 is held by the open snapshot"
    );
    assert_eq!(&old.get(0, b"g").unwrap().unwrap().value[..], b"v1");
    drop(old);
    let stats = engine.gc();
    assert_eq!(stats.versions_unlinked, 2);
    assert_eq!(stats.values_freed, 2);
    assert_eq!(engine.stats().pages.values_live, 1);
    assert_eq!(get(&engine, "g").as_deref(), Some("v3"));
}

#[test]
fn gc_visits_only_the_keys_that_changed() {
    let (engine, _) = engine_with_clock(0);
    for i in 0..2000 {
        set(&engine, &format!("k{i}"), "v1");
    }
    let stats = engine.gc();
    assert_eq!(stats.keys_examined, 0, "first versions are no garbage");
    assert!(stats.caught_up);
    for i in 0..10 {
        set(&engine, &format!("k{i}"), "v2");
    }
    let stats = engine.gc();
    assert_eq!(stats.keys_examined, 10);
    assert_eq!(stats.versions_unlinked, 10);
    assert_eq!(stats.values_freed, 10);
    assert!(stats.caught_up);
    assert_eq!(stats.queued, 0);
    assert_eq!(engine.stats().dbs[0].versions, 2000);
}

#[test]
fn gc_sweeps_everything_when_its_queue_overflowed() {
    let engine = Engine::new(EngineConfig {
        gc_queue_entries_max: 4,
        ..EngineConfig::default()
    });
    for i in 0..300 {
        set(&engine, &format!("k{i}"), "v1");
    }
    for i in 0..300 {
        set(&engine, &format!("k{i}"), "v2");
    }
    for i in 0..50 {
        engine
            .run(Isolation::Snapshot, |tx| {
                tx.delete(0, format!("k{i}").as_bytes())
            })
            .unwrap();
    }
    // 350 entries for a queue of 4: the dropped ones are found by the sweep.
    let mut calls = 0;
    while !engine.gc().caught_up {
        calls += 1;
        assert!(calls < 100, "GC never caught up");
    }
    let db = engine.stats().dbs[0];
    assert_eq!(db.versions, 250);
    assert_eq!(db.key_nodes, 250);
    assert_eq!(engine.stats().pages.values_live, 250);
    assert_eq!(get(&engine, "k0"), None);
    assert_eq!(get(&engine, "k299").as_deref(), Some("v2"));
}

/// Regression: the queue overflowed while a snapshot held the watermark below the dropped
/// entries; a sweep then ran at that low watermark, kept their old versions (rightly, the
/// snapshot could read them) but counted the drops as covered, so once the snapshot closed
/// nothing named those keys again and their old versions stayed for good.
#[test]
fn gc_reclaims_what_dropped_entries_name_once_the_snapshot_holding_them_closes() {
    let engine = Engine::new(EngineConfig {
        gc_queue_entries_max: 4,
        ..EngineConfig::default()
    });
    for i in 0..300 {
        set(&engine, &format!("k{i}"), "v1");
    }
    let reader = engine.begin(Isolation::Snapshot);
    for i in 0..300 {
        set(&engine, &format!("k{i}"), "v2");
    }
    // While the snapshot is open nothing superseded after it may go.
    for _ in 0..100 {
        engine.gc();
    }
    assert_eq!(engine.stats().dbs[0].versions, 600);
    reader.abort();
    let mut calls = 0;
    while !engine.gc().caught_up {
        calls += 1;
        assert!(calls < 100, "GC never caught up");
    }
    assert_eq!(engine.stats().dbs[0].versions, 300);
    assert_eq!(engine.stats().pages.values_live, 300);
}

#[test]
fn gc_removes_the_nodes_an_aborted_commit_reserved() {
    let (engine, _) = engine_with_clock(0);
    set(&engine, "c", "0");
    let mut loser = engine.begin(Isolation::Snapshot);
    loser.put(0, b"c", b"loser", Expiry::Persist).unwrap();
    loser.put(0, b"new", b"x", Expiry::Persist).unwrap();
    set(&engine, "c", "winner");
    assert!(matches!(
        loser.commit(),
        Err(tierkv_txn::TxnError::Conflict { .. })
    ));
    // "new" got a node reserved outside the commit lock before the conflict was found.
    assert_eq!(engine.stats().dbs[0].key_nodes, 2);
    while !engine.gc().caught_up {}
    assert_eq!(engine.stats().dbs[0].key_nodes, 1);
    assert_eq!(get(&engine, "new"), None);
    assert_eq!(get(&engine, "c").as_deref(), Some("winner"));
}

#[test]
fn gc_handles_shared_values_of_ttl_changes_and_removes_dead_keys() {
    let (engine, _) = engine_with_clock(0);
    set(&engine, "s", "value");
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.set_expiry(0, b"s", Some(1_000_000))
        })
        .unwrap();
    engine
        .run(Isolation::Snapshot, |tx| tx.set_expiry(0, b"s", None))
        .unwrap();
    engine.gc();
    assert_eq!(
        engine.stats().pages.values_live,
        1,
        "shared value not freed"
    );
    assert_eq!(get(&engine, "s").as_deref(), Some("value"));
    engine
        .run(Isolation::Snapshot, |tx| tx.delete(0, b"s"))
        .unwrap();
    let stats = engine.gc();
    assert_eq!(stats.keys_removed, 1);
    assert_eq!(engine.stats().pages.values_live, 0);
    assert_eq!(engine.stats().dbs[0].key_nodes, 0);
    assert_eq!(engine.stats().dbs[0].versions, 0);
}

#[test]
fn flush_and_swap_are_atomic_and_logged_ops() {
    let (engine, _) = engine_with_clock(0);
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.put(0, b"a", b"1", Expiry::Persist)?;
            tx.put(1, b"b", b"2", Expiry::Persist)
        })
        .unwrap();
    let before = engine.begin(Isolation::Snapshot);
    engine.swap_db(0, 1).unwrap();
    let mut tx = engine.begin(Isolation::Snapshot);
    assert_eq!(&tx.get(0, b"b").unwrap().unwrap().value[..], b"2");
    assert_eq!(&tx.get(1, b"a").unwrap().unwrap().value[..], b"1");
    assert!(tx.get(0, b"a").unwrap().is_none());
    drop(tx);
    drop(before);
    assert_eq!(engine.dbsize(0), 1);
    engine.flush_db(0).unwrap();
    assert_eq!(engine.dbsize(0), 0);
    assert_eq!(engine.dbsize(1), 1);
    engine.flush_all().unwrap();
    assert_eq!(engine.dbsize(1), 0);
    assert!(matches!(
        engine.flush_db(16),
        Err(TxnError::BadDb { db: 16 })
    ));
}

#[test]
fn random_key_finds_live_keys() {
    let (engine, _) = engine_with_clock(0);
    assert_eq!(engine.random_key(0), None);
    for i in 0..50 {
        set(&engine, &format!("key:{i:03}"), "v");
    }
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let key = engine.random_key(0).unwrap();
        assert!(key.starts_with(b"key:"));
        seen.insert(key);
    }
    assert!(
        seen.len() > 5,
        "random_key returned only {} distinct keys",
        seen.len()
    );
}

#[test]
fn many_keys_expiring_together_are_removed_in_bounded_ticks() {
    let (engine, clock) = engine_with_clock(5_000);
    let keys = 50_000u32;
    engine
        .run(Isolation::Snapshot, |tx| {
            for i in 0..keys {
                tx.put(
                    0,
                    format!("exp:{i:06}").as_bytes(),
                    b"v",
                    Expiry::At(6_000 + u64::from(i % 1_000)),
                )?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(engine.stats().dbs[0].expires, u64::from(keys));
    clock.set(7_000);
    let mut ticks = 0;
    let mut deleted = 0;
    while deleted < keys as usize {
        let n = engine.expire_tick(1_000);
        assert!(n <= 1_000, "a tick did more than its budget: {n}");
        deleted += n;
        ticks += 1;
        // Foreground work proceeds between ticks.
        set(&engine, "fg", &ticks.to_string());
        assert!(ticks < 1_000, "expiry made no progress");
    }
    assert_eq!(deleted, keys as usize);
    assert_eq!(engine.dbsize(0), 1);
    assert_eq!(engine.stats().expired_keys, u64::from(keys));
    assert_eq!(engine.expire_tick(1_000), 0);
}

#[test]
fn replaying_the_log_rebuilds_the_same_state() {
    use txn::LogRecord;

    let clock = Arc::new(ManualClock::new(1_000));
    let recorder = Arc::new(Recorder::default());
    let engine = Engine::new(EngineConfig {
        clock: clock.clone(),
        sink: Some(recorder.clone()),
        ..EngineConfig::default()
    });
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.put(0, b"a", b"1", Expiry::Persist)
        })
        .unwrap();
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.put(1, b"b", b"2", Expiry::At(2_000))
        })
        .unwrap();
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.set_expiry(0, b"a", Some(9_000))
        })
        .unwrap();
    let (_, info) = engine
        .run(Isolation::Snapshot, |tx| {
            tx.put(0, b"c", b"3", Expiry::Persist)
        })
        .unwrap();
    assert_eq!(info.lsn, Some(txn::Lsn(4)));
    engine.swap_db(0, 1).unwrap();
    clock.set(2_000);
    assert_eq!(
        engine.expire_tick(10),
        1,
        "b (now in db 0) expired: logged as a delete"
    );
    engine
        .run(Isolation::Snapshot, |tx| tx.delete(1, b"c").map(|_| ()))
        .unwrap();

    let replica = Engine::new(EngineConfig {
        clock: clock.clone(),
        ..EngineConfig::default()
    });
    for bytes in recorder.0.lock().unwrap().iter() {
        replica
            .apply_record(&LogRecord::decode(bytes).unwrap())
            .unwrap();
    }
    let dump = |e: &Engine| {
        let mut tx = e.begin(Isolation::Snapshot);
        (0..2)
            .map(|db| tx.scan(db, None, None, 100).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(dump(&engine), dump(&replica));
    assert_eq!(engine.stats().visible_ts, replica.stats().visible_ts);
    let first = LogRecord::decode(&recorder.0.lock().unwrap()[0]).unwrap();
    assert!(matches!(
        replica.apply_record(&first),
        Err(TxnError::ReplayOrder { .. })
    ));
}

#[test]
fn scan_cursor_survives_concurrent_writes() {
    let (engine, _) = engine_with_clock(0);
    for i in 0..100 {
        set(&engine, &format!("s:{i:03}"), "v");
    }
    // Page through with a fresh transaction per page (as SCAN does) while keys change.
    let mut cursor: Option<txn::Bytes> = None;
    let mut seen = Vec::new();
    let mut page = 0;
    loop {
        let mut tx = engine.begin(Isolation::Snapshot);
        let rows = tx.scan(0, cursor.as_deref(), Some(b"s:"), 7).unwrap();
        drop(tx);
        if rows.is_empty() {
            break;
        }
        cursor = Some(rows.last().unwrap().0.clone());
        seen.extend(rows.into_iter().map(|(k, _)| k));
        // Concurrent changes: delete a key ahead of the cursor, add one behind and one ahead.
        page += 1;
        engine
            .run(Isolation::Snapshot, |tx| {
                tx.delete(0, format!("s:{:03}", 99 - page).as_bytes())
                    .map(|_| ())
            })
            .unwrap();
        set(&engine, &format!("s:{:03}x", page), "new");
    }
    let unique: std::collections::BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no key returned twice");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "keys come in order");
    // Every key present for the whole scan was returned.
    for i in 0..100 {
        let key = format!("s:{i:03}");
        let deleted = (1..=page).any(|p| 99 - p == i);
        if !deleted {
            assert!(unique.contains(key.as_bytes()), "{key} missed");
        }
    }
}

#[test]
fn a_failing_commit_log_fails_that_commit_only() {
    // `CommitSink` contract: an error means the record was not appended, so the commit aborts
    // cleanly and later commits go through once the log works again.
    struct Flaky(std::sync::atomic::AtomicBool);
    impl txn::CommitSink for Flaky {
        fn append(&self, _record: &[u8]) -> Result<txn::Lsn, TxnError> {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                Err(TxnError::Storage(
                    std::io::Error::other("disk on fire").into(),
                ))
            } else {
                Ok(txn::Lsn(1))
            }
        }
    }
    let sink = Arc::new(Flaky(std::sync::atomic::AtomicBool::new(true)));
    let engine = Engine::new(EngineConfig {
        sink: Some(sink.clone()),
        ..EngineConfig::default()
    });
    let result = engine.run(Isolation::Snapshot, |tx| {
        tx.put(0, b"k", b"v", Expiry::Persist)
    });
    assert!(matches!(result, Err(TxnError::Storage(_))));
    assert_eq!(
        engine.stats().pages.values_live,
        0,
        "the aborted commit's value was freed"
    );
    assert!(engine.flush_all().is_err());
    let mut tx = engine.begin(Isolation::Snapshot);
    assert_eq!(tx.get(0, b"k").unwrap(), None, "nothing was installed");
    assert!(tx.commit().is_ok(), "read-only work goes on");

    sink.0.store(false, std::sync::atomic::Ordering::SeqCst);
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.put(0, b"k", b"v2", Expiry::Persist)
        })
        .unwrap();
    let mut tx = engine.begin(Isolation::Snapshot);
    assert_eq!(&tx.get(0, b"k").unwrap().unwrap().value[..], b"v2");
}

#[test]
fn refreshing_a_ttl_does_not_grow_the_wheel() {
    let (engine, clock) = engine_with_clock(0);
    for i in 0..1_000u64 {
        clock.set(i);
        engine
            .run(Isolation::Snapshot, |tx| {
                tx.put(0, b"session", b"s", Expiry::At(i + 60_000))
            })
            .unwrap();
    }
    assert_eq!(
        engine.stats().expiry_wheel_entries,
        1,
        "only the first deadline is scheduled"
    );
    clock.set(60_000);
    assert_eq!(
        engine.expire_tick(100),
        0,
        "the key's deadline moved: rescheduled, not deleted"
    );
    assert_eq!(get(&engine, "session").as_deref(), Some("s"));
    assert_eq!(engine.stats().expiry_wheel_entries, 1);
    clock.set(60_999);
    assert_eq!(engine.expire_tick(100), 1);
    assert_eq!(engine.stats().expiry_wheel_entries, 0);
    // An earlier deadline than the scheduled one gets its own entry.
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.put(0, b"t", b"v", Expiry::At(90_000))
        })
        .unwrap();
    engine
        .run(Isolation::Snapshot, |tx| {
            tx.set_expiry(0, b"t", Some(70_000))
        })
        .unwrap();
    clock.set(70_000);
    assert_eq!(engine.expire_tick(100), 1);
}

#[test]
fn conditional_puts() {
    use txn::Condition;
    let (engine, _) = engine_with_clock(0);
    let mut tx = engine.begin(Isolation::Snapshot);
    assert!(!tx
        .put_if(0, b"c", b"1", Expiry::Persist, Condition::IfPresent)
        .unwrap());
    assert!(tx
        .put_if(0, b"c", b"1", Expiry::Persist, Condition::IfAbsent)
        .unwrap());
    assert!(
        !tx.put_if(0, b"c", b"2", Expiry::Persist, Condition::IfAbsent)
            .unwrap(),
        "own write counts"
    );
    let info = tx.commit().unwrap();
    let version = info.commit_ts.unwrap();
    let mut tx = engine.begin(Isolation::Snapshot);
    assert!(!tx
        .put_if(0, b"c", b"3", Expiry::Persist, Condition::IfValue(b"nope"))
        .unwrap());
    assert!(!tx
        .put_if(
            0,
            b"c",
            b"3",
            Expiry::Persist,
            Condition::IfVersion(CommitTs(version.0 + 5))
        )
        .unwrap());
    assert!(tx
        .put_if(
            0,
            b"c",
            b"3",
            Expiry::Persist,
            Condition::IfVersion(version)
        )
        .unwrap());
    assert!(tx
        .put_if(0, b"c", b"4", Expiry::Persist, Condition::IfValue(b"3"))
        .unwrap());
    // A concurrent change between the check and the commit aborts the commit.
    set(&engine, "c", "racer");
    assert!(matches!(tx.commit(), Err(TxnError::Conflict { .. })));
    assert_eq!(get(&engine, "c").as_deref(), Some("racer"));
}

#[test]
fn an_aborted_write_of_a_new_key_leaves_nothing_visible_and_gc_clears_it() {
    let (engine, _) = engine_with_clock(1_000);
    set(&engine, "x", "0");
    let mut loser = engine.begin(Isolation::Snapshot);
    loser.put(0, b"x", b"late", Expiry::Persist).unwrap();
    // A new key in the same transaction: its node is reserved before validation fails.
    loser.put(0, b"fresh", b"never", Expiry::Persist).unwrap();
    set(&engine, "x", "1");
    assert!(matches!(loser.commit(), Err(TxnError::Conflict { .. })));
    assert_eq!(get(&engine, "fresh"), None);
    assert_eq!(engine.dbsize(0), 1);
    let mut tx = engine.begin(Isolation::Snapshot);
    let rows = tx.scan(0, None, None, 10).unwrap();
    assert_eq!(rows.len(), 1, "a reserved, empty node is not a key");
    drop(tx);
    engine.gc();
    assert_eq!(engine.stats().dbs[0].key_nodes, 1);
    // The key can still be written afterwards.
    set(&engine, "fresh", "now");
    assert_eq!(get(&engine, "fresh").as_deref(), Some("now"));
    assert_eq!(engine.stats().dbs[0].key_nodes, 2);
}

#[test]
fn set_then_expire_in_a_loop_does_not_grow_the_wheel() {
    // `SET k v` (clears the TTL) then `EXPIRE k 86400`, over and over: a common client pattern.
    let (engine, clock) = engine_with_clock(0);
    for i in 0..1_000u64 {
        clock.set(i);
        engine
            .run(Isolation::Snapshot, |tx| {
                tx.put(0, b"k", b"v", Expiry::Persist)
            })
            .unwrap();
        engine
            .run(Isolation::Snapshot, |tx| {
                tx.set_expiry(0, b"k", Some(i + 86_400_000)).map(|_| ())
            })
            .unwrap();
    }
    assert_eq!(engine.stats().expiry_wheel_entries, 1);
    // The key still expires at its last deadline.
    clock.set(999 + 86_400_000);
    let mut removed = 0;
    for _ in 0..10 {
        removed += engine.expire_tick(100);
    }
    assert_eq!(removed, 1);
    assert_eq!(get(&engine, "k"), None);
}

/// Regression: SWAPDB was logged first and then copied every value of both databases into new
/// pages; with the page store full the copy failed after the append, so the log said
/// "swapped" while memory was not (a restart would have swapped). SWAPDB now moves values
/// between the two databases' chains: it allocates nothing and cannot fail once logged, and GC
/// still frees every value exactly once.
#[test]
fn swapdb_with_a_full_page_store_allocates_nothing_and_the_log_matches_memory() {
    use txn::{Bytes, LogRecord, PageStoreConfig};

    let recorder = Arc::new(Recorder::default());
    let clock = Arc::new(ManualClock::new(1_000));
    let engine = Engine::new(EngineConfig {
        clock: clock.clone(),
        sink: Some(recorder.clone()),
        page_store: PageStoreConfig {
            max_pages: 6,
            ..PageStoreConfig::default()
        },
        ..EngineConfig::default()
    });
    // Values above 16 KiB get a page each: six values fill the store.
    let value = |tag: u8| vec![tag; 20 * 1024];
    let put = |db: u8, key: &[u8], tag: u8| {
        engine.run(Isolation::Snapshot, |tx| {
            tx.put(db, key, &value(tag), Expiry::At(50_000))
        })
    };
    for (db, key, tag) in [
        (0, &b"a"[..], 1),
        (0, b"both", 2),
        (0, b"c", 3),
        (1, b"both", 4),
        (1, b"x", 5),
        (1, b"y", 6),
    ] {
        put(db, key, tag).unwrap();
    }
    assert!(put(0, b"full", 7).is_err(), "the page store is full");
    let pages = engine.stats().pages.pages;

    let swapped = engine.swap_db(0, 1);

    let replica = Engine::new(EngineConfig {
        clock,
        ..EngineConfig::default()
    });
    for bytes in recorder.0.lock().unwrap().iter() {
        replica
            .apply_record(&LogRecord::decode(bytes).unwrap())
            .unwrap();
    }
    let dump = |e: &Engine| {
        let mut tx = e.begin(Isolation::Snapshot);
        (0..2)
            .map(|db| {
                tx.scan(db, None, None, 100)
                    .unwrap()
                    .into_iter()
                    .map(|(key, entry)| (key, entry.value[0], entry.expire_at_ms))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(dump(&engine), dump(&replica), "memory and log disagree");
    swapped.unwrap();
    assert_eq!(
        dump(&engine)[0],
        [
            (Bytes::from_static(b"both"), 4, Some(50_000)),
            (Bytes::from_static(b"x"), 5, Some(50_000)),
            (Bytes::from_static(b"y"), 6, Some(50_000)),
        ]
    );
    assert_eq!(engine.stats().pages.pages, pages, "SWAPDB copied no value");

    // Each moved value has exactly one owner: overwriting everything and collecting frees each
    // old value once (a double free would fail, a leak would stay live).
    for db in 0..2 {
        engine.flush_db(db).unwrap();
    }
    gc_full_sweep(&engine);
    assert_eq!(engine.stats().pages.values_live, 0);
    put(0, b"again", 8).unwrap();
}

/// Every live key of databases 0 and 1 as `(db, key, value)`, read at a fresh snapshot.
fn contents(engine: &Engine) -> Vec<(u8, String, String)> {
    let mut tx = engine.begin(Isolation::Snapshot);
    let mut out = Vec::new();
    for db in 0..2 {
        for (key, entry) in tx.scan(db, None, None, 1_000).unwrap() {
            out.push((
                db,
                String::from_utf8(key.to_vec()).unwrap(),
                String::from_utf8(entry.value.to_vec()).unwrap(),
            ));
        }
    }
    out
}

fn owned(items: &[(u8, &str, &str)]) -> Vec<(u8, String, String)> {
    items
        .iter()
        .map(|(db, k, v)| (*db, k.to_string(), v.to_string()))
        .collect()
}

/// FLUSHDB and SWAPDB inside a transaction (what MULTI/EXEC needs): later operations of the
/// same transaction see the flushed or swapped databases, nobody else sees anything before
/// the commit, and the commit applies them atomically with the transaction's writes, at
/// commit time (a key another client added meanwhile is flushed too), as one log record that
/// replays to the same state.
#[test]
fn flush_and_swap_inside_a_transaction_are_atomic_with_its_writes() {
    let clock = Arc::new(ManualClock::new(1_000));
    let recorder = Arc::new(Recorder::default());
    let engine = Engine::new(EngineConfig {
        clock: clock.clone(),
        sink: Some(recorder.clone()),
        ..EngineConfig::default()
    });
    engine
        .run(Isolation::Serializable, |tx| {
            tx.put(0, b"a", b"1", Expiry::Persist)?;
            tx.put(0, b"b", b"2", Expiry::At(60_000))?;
            tx.put(1, b"x", b"9", Expiry::Persist)
        })
        .unwrap();
    let watched = engine.watch_mark(1, b"x");

    let mut tx = engine.begin(Isolation::Serializable);
    tx.put(0, b"a", b"dropped by the flush", Expiry::Persist)
        .unwrap();
    tx.flush_db(0).unwrap();
    assert!(tx.get(0, b"a").unwrap().is_none());
    assert_eq!(tx.dbsize(0).unwrap(), 0);
    assert!(tx.scan(0, None, None, 10).unwrap().is_empty());
    assert_eq!(tx.random_key(0).unwrap(), None);
    tx.put(0, b"new", b"n", Expiry::Persist).unwrap();
    assert_eq!(tx.dbsize(0).unwrap(), 1);
    tx.swap_db(0, 1).unwrap();
    assert_eq!(&tx.get(0, b"x").unwrap().unwrap().value[..], b"9");
    assert_eq!(&tx.get(1, b"new").unwrap().unwrap().value[..], b"n");
    assert!(tx.get(0, b"new").unwrap().is_none());
    assert_eq!((tx.dbsize(0).unwrap(), tx.dbsize(1).unwrap()), (1, 1));
    assert_eq!(tx.random_key(1).unwrap().as_deref(), Some(&b"new"[..]));
    tx.put(1, b"after", b"swap", Expiry::Persist).unwrap();
    // Not visible to anyone before the commit.
    assert_eq!(
        contents(&engine),
        owned(&[(0, "a", "1"), (0, "b", "2"), (1, "x", "9")])
    );
    // Another client adds a key to database 0 before the commit: the flush, which happens at
    // commit time, removes it too (it then moves to database 1 as empty).
    set(&engine, "late", "L");

    tx.commit().unwrap();
    let expected = owned(&[(0, "x", "9"), (1, "after", "swap"), (1, "new", "n")]);
    assert_eq!(contents(&engine), expected);
    assert_eq!((engine.dbsize(0), engine.dbsize(1)), (1, 2));
    // SWAPDB touched the watched key (it moved to database 0).
    let mut watcher = engine.begin(Isolation::Serializable);
    watcher.watch(1, b"x", watched);
    assert!(matches!(watcher.commit(), Err(TxnError::WatchFailed)));
    // One record, replayed in order, gives the same state.
    assert_eq!(contents(&recorder.replay(clock)), expected);
    // Moved and flushed values are freed exactly once.
    engine.flush_all().unwrap();
    gc_full_sweep(&engine);
    assert_eq!(engine.stats().pages.values_live, 0);
}

/// A write after SWAPDB in a transaction replaces the key that moved in from the other
/// database: a concurrent change to that key conflicts (first committer wins), while a write
/// after FLUSHDB replaces nothing and conflicts with nobody.
#[test]
fn writes_after_swap_conflict_on_the_key_they_replace() {
    let (engine, _) = engine_with_clock(1_000);
    engine
        .run(Isolation::Serializable, |tx| {
            tx.put(1, b"k", b"db1", Expiry::Persist)
        })
        .unwrap();
    let mut tx = engine.begin(Isolation::Snapshot);
    tx.swap_db(0, 1).unwrap();
    tx.put(0, b"k", b"mine", Expiry::Persist).unwrap();
    engine
        .run(Isolation::Serializable, |tx| {
            tx.put(1, b"k", b"theirs", Expiry::Persist)
        })
        .unwrap();
    assert!(matches!(tx.commit(), Err(TxnError::Conflict { .. })));

    let mut tx = engine.begin(Isolation::Snapshot);
    tx.flush_db(0).unwrap();
    tx.put(0, b"k", b"mine", Expiry::Persist).unwrap();
    set(&engine, "k", "theirs");
    tx.commit().unwrap();
    assert_eq!(get(&engine, "k").as_deref(), Some("mine"));
}
