//! Issue 9: an idle interactive transaction must not pin old versions for ever. The engine
//! aborts it past `SnapshotLimits` (age, pinned memory) when `enforce_snapshot_limits` runs,
//! its operations then fail with `TxnError::SnapshotTooOld`, and GC frees what it pinned; a
//! transaction busy in an operation is never released under it; checkpoints are exempt. Time
//! is a `ManualClock` (or a clock that can stop a reader mid-operation).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use tierkv_txn as txn;
use txn::{
    Clock, Durability, DurabilityConfig, Engine, EngineConfig, Expiry, Isolation, LimitExceeded,
    ManualClock, SnapshotHolder, SnapshotLimits, TxnError,
};

const T0: u64 = 1_700_000_000_000;
const VALUE_BYTES: usize = 100;

fn engine_with(clock: Arc<dyn Clock>, limits: SnapshotLimits) -> Engine {
    let engine = Engine::new(EngineConfig {
        clock,
        ..EngineConfig::default()
    });
    engine.set_snapshot_limits(limits);
    engine
}

fn value(i: usize) -> Vec<u8> {
    format!("{i:0width$}", width = VALUE_BYTES).into_bytes()
}

/// Overwrites `key` `n` times through the single-key fast path.
fn overwrite(engine: &Engine, key: &str, n: usize, from: usize) {
    for i in from..from + n {
        engine.put(0, key.as_bytes(), &value(i), None).unwrap();
    }
}

/// Runs GC until it has nothing left it could do.
fn gc_all(engine: &Engine) {
    for _ in 0..10_000 {
        let done = engine.gc();
        if done.caught_up || (done.versions_unlinked == 0 && done.keys_removed == 0) {
            return;
        }
    }
    panic!("GC did not settle");
}

fn versions(engine: &Engine) -> u64 {
    engine.stats().dbs[0].versions
}

fn pinned(engine: &Engine) -> u64 {
    engine.pinned_bytes()
}

fn is_too_old<T: std::fmt::Debug>(result: Result<T, TxnError>) -> LimitExceeded {
    match result {
        Err(TxnError::SnapshotTooOld { exceeded }) => exceeded,
        other => panic!("expected SnapshotTooOld, got {other:?}"),
    }
}

#[test]
fn an_idle_transaction_past_max_age_is_aborted_and_gc_frees_what_it_pinned() {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = engine_with(
        clock.clone(),
        SnapshotLimits {
            max_age_ms: 60_000,
            max_pinned_bytes: 0,
        },
    );
    overwrite(&engine, "k", 1, 0);
    let mut idle = engine.begin_interactive(Isolation::Snapshot, 7);
    assert_eq!(idle.get(0, b"k").unwrap().unwrap().value, value(0));
    let oldest = engine.oldest_snapshot().unwrap();
    assert_eq!(oldest.holder, SnapshotHolder::Client(7));
    assert_eq!(oldest.snapshot_ts, idle.snapshot_ts());
    assert_eq!(oldest.age_ms, 0);

    overwrite(&engine, "k", 2000, 1);
    gc_all(&engine);
    assert_eq!(
        versions(&engine),
        2001,
        "the idle snapshot pins every version"
    );
    let pinned_before = pinned(&engine);
    let used_before = engine.memory_stats().used_bytes;
    assert!(
        pinned_before >= 2000 * VALUE_BYTES as u64,
        "{pinned_before}"
    );
    assert_eq!(
        engine.oldest_snapshot().unwrap().pinned_bytes,
        pinned_before
    );

    // At the limit, not past it: nothing happens, and the transaction still works.
    clock.advance(60_000);
    assert!(engine.enforce_snapshot_limits().aborted.is_empty());
    assert_eq!(engine.oldest_snapshot().unwrap().age_ms, 60_000);
    assert_eq!(idle.get(0, b"k").unwrap().unwrap().value, value(0));

    clock.advance(1);
    let report = engine.enforce_snapshot_limits();
    let expected = LimitExceeded::MaxAge {
        limit_ms: 60_000,
        age_ms: 60_001,
    };
    assert_eq!(report.aborted, vec![(SnapshotHolder::Client(7), expected)]);
    assert_eq!(report.busy, 0);
    assert_eq!(engine.stats().snapshots_aborted, 1);
    assert_eq!(engine.oldest_snapshot(), None);
    assert_eq!(engine.stats().active_snapshots, 0);

    // GC frees the versions while the aborted transaction is still held by its owner.
    gc_all(&engine);
    assert_eq!(versions(&engine), 1);
    assert_eq!(pinned(&engine), 0);
    // Freed values leave their pages once compaction moves the pages' other values out; the
    // open page keeps what was written to it (freed or not) until it fills.
    engine.compact_now(100);
    let used_after = engine.memory_stats().used_bytes;
    assert!(
        used_before - used_after + 65_536 >= pinned_before,
        "{used_before} -> {used_after}, pinned {pinned_before}"
    );

    // Every operation fails now, commit included, and nothing it buffered is written.
    assert_eq!(is_too_old(idle.get(0, b"k")), expected);
    assert_eq!(is_too_old(idle.peek(0, b"k")), expected);
    assert_eq!(
        is_too_old(idle.put(0, b"k", b"lost", Expiry::Persist)),
        expected
    );
    assert_eq!(is_too_old(idle.delete(0, b"k")), expected);
    assert_eq!(is_too_old(idle.scan(0, None, None, 10)), expected);
    assert_eq!(is_too_old(idle.dbsize(0)), expected);
    assert_eq!(is_too_old(idle.flush_db(0)), expected);
    assert_eq!(is_too_old(idle.check_open()), expected);
    assert_eq!(is_too_old(idle.commit()), expected);
    assert_eq!(engine.get(0, b"k").unwrap().unwrap().value, value(2000));

    // The client can begin again at once.
    let mut again = engine.begin_interactive(Isolation::Snapshot, 7);
    assert_eq!(again.get(0, b"k").unwrap().unwrap().value, value(2000));
    again.put(0, b"k", b"new", Expiry::Persist).unwrap();
    assert!(again.commit().unwrap().commit_ts.is_some());
    assert_eq!(engine.stats().snapshots_aborted, 1);
}

#[test]
fn writes_buffered_before_the_abort_are_not_committed() {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = engine_with(
        clock.clone(),
        SnapshotLimits {
            max_age_ms: 1_000,
            max_pinned_bytes: 0,
        },
    );
    let mut tx = engine.begin_interactive(Isolation::Serializable, 3);
    tx.put(0, b"a", b"1", Expiry::Persist).unwrap();
    clock.advance(1_001);
    assert_eq!(engine.enforce_snapshot_limits().aborted.len(), 1);
    assert!(matches!(
        tx.commit(),
        Err(TxnError::SnapshotTooOld {
            exceeded: LimitExceeded::MaxAge { .. }
        })
    ));
    assert_eq!(engine.get(0, b"a").unwrap(), None);
    assert_eq!(engine.stats().dbs[0].keys, 0);
}

#[test]
fn the_pinned_memory_cap_aborts_the_oldest_transaction_holding_the_watermark_only() {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = engine_with(clock.clone(), SnapshotLimits::default());
    overwrite(&engine, "k", 1, 0);
    let mut old = engine.begin_interactive(Isolation::Snapshot, 1);
    assert!(old.get(0, b"k").unwrap().is_some());
    overwrite(&engine, "k", 2000, 1);
    let mut young = engine.begin_interactive(Isolation::Snapshot, 2);
    assert_eq!(young.get(0, b"k").unwrap().unwrap().value, value(2000));
    overwrite(&engine, "k", 100, 2001);
    gc_all(&engine);
    let pinned_by_both = pinned(&engine);
    // The young snapshot alone pins about 100 versions, 20 times less than both.
    let cap = pinned_by_both / 4;
    engine.set_snapshot_limits(SnapshotLimits {
        max_age_ms: 0,
        max_pinned_bytes: cap,
    });
    let used_before = engine.memory_stats().used_bytes;

    let report = engine.enforce_snapshot_limits();
    assert_eq!(
        report.aborted,
        vec![(
            SnapshotHolder::Client(1),
            LimitExceeded::MaxPinnedMemory {
                limit_bytes: cap,
                pinned_bytes: pinned_by_both,
            }
        )]
    );
    // Still over the cap until GC runs, but GC has not settled at the new watermark: the young
    // transaction is not taken down for memory its elder pinned.
    assert!(pinned(&engine) > cap);
    assert!(engine.enforce_snapshot_limits().aborted.is_empty());
    let oldest = engine.oldest_snapshot().unwrap();
    assert_eq!(oldest.holder, SnapshotHolder::Client(2));

    gc_all(&engine);
    assert!(pinned(&engine) < cap, "{} >= {cap}", pinned(&engine));
    assert!(engine.memory_stats().used_bytes < used_before - pinned_by_both / 2);
    assert_eq!(
        versions(&engine),
        101,
        "what the young snapshot still reads"
    );
    assert!(engine.enforce_snapshot_limits().aborted.is_empty());
    assert_eq!(young.get(0, b"k").unwrap().unwrap().value, value(2000));
    assert!(matches!(
        is_too_old(old.get(0, b"k")),
        LimitExceeded::MaxPinnedMemory { .. }
    ));

    // Overwrites pile up behind the young one until it passes the cap in turn.
    let mut next = 2101;
    let mut aborted = Vec::new();
    while aborted.is_empty() {
        overwrite(&engine, "k", 100, next);
        next += 100;
        gc_all(&engine);
        aborted = engine.enforce_snapshot_limits().aborted;
        assert!(next < 100_000, "the cap never tripped");
    }
    assert_eq!(aborted.len(), 1);
    assert_eq!(aborted[0].0, SnapshotHolder::Client(2));
    assert!(matches!(
        is_too_old(young.get(0, b"k")),
        LimitExceeded::MaxPinnedMemory { .. }
    ));
    gc_all(&engine);
    assert_eq!(versions(&engine), 1);
    assert_eq!(engine.stats().snapshots_aborted, 2);
}

#[test]
fn per_command_transactions_are_not_tracked_or_bounded() {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = engine_with(
        clock.clone(),
        SnapshotLimits {
            max_age_ms: 1,
            max_pinned_bytes: 1,
        },
    );
    overwrite(&engine, "k", 10, 0);
    let mut command = engine.begin(Isolation::Snapshot);
    assert!(command.get(0, b"k").unwrap().is_some());
    overwrite(&engine, "k", 10, 10);
    clock.advance(1_000);
    gc_all(&engine);
    assert_eq!(engine.oldest_snapshot(), None);
    assert!(engine.enforce_snapshot_limits().aborted.is_empty());
    assert_eq!(command.get(0, b"k").unwrap().unwrap().value, value(9));
    command.commit().unwrap();
}

/// A clock that, once armed, stops the next caller inside `now_ms` until released: a scan
/// reads the clock with its lease held, so the test can run the enforcer while a reader is
/// mid-operation on another thread.
struct StoppingClock {
    now_ms: AtomicU64,
    armed: AtomicBool,
    entered: Barrier,
    release: Barrier,
}

impl Clock for StoppingClock {
    fn now_ms(&self) -> u64 {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.entered.wait();
            self.release.wait();
        }
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[test]
fn a_transaction_busy_in_a_read_is_not_released_under_it() {
    let clock = Arc::new(StoppingClock {
        now_ms: AtomicU64::new(T0),
        armed: AtomicBool::new(false),
        entered: Barrier::new(2),
        release: Barrier::new(2),
    });
    let engine = engine_with(
        clock.clone(),
        SnapshotLimits {
            max_age_ms: 1_000,
            max_pinned_bytes: 0,
        },
    );
    for i in 0..50 {
        engine
            .put(0, format!("k{i:02}").as_bytes(), &value(i), None)
            .unwrap();
    }
    let mut tx = engine.begin_interactive(Isolation::Snapshot, 9);
    let snapshot = tx.snapshot_ts();
    // Every key overwritten after the snapshot: only the snapshot keeps the old values.
    for i in 0..50 {
        engine
            .put(0, format!("k{i:02}").as_bytes(), &value(1000 + i), None)
            .unwrap();
    }
    clock.now_ms.fetch_add(5_000, Ordering::SeqCst);

    std::thread::scope(|scope| {
        clock.armed.store(true, Ordering::SeqCst);
        let reader = scope.spawn(|| {
            let rows = tx.scan(0, None, None, 100);
            (rows, tx)
        });
        // The reader holds its lease, stopped inside the scan.
        clock.entered.wait();
        let report = engine.enforce_snapshot_limits();
        assert!(report.aborted.is_empty(), "{report:?}");
        assert_eq!(report.busy, 1);
        // Its registration still holds the watermark, so GC keeps what the scan reads.
        assert_eq!(engine.stats().low_watermark.0, snapshot.0);
        gc_all(&engine);
        assert_eq!(versions(&engine), 100);
        clock.release.wait();
        let (rows, mut tx) = reader.join().unwrap();
        let rows = rows.unwrap();
        assert_eq!(rows.len(), 50);
        for (i, (key, entry)) in rows.iter().enumerate() {
            assert_eq!(key.as_ref(), format!("k{i:02}").as_bytes());
            assert_eq!(entry.value, value(i), "the snapshot's value of {key:?}");
        }
        // Doomed while busy: its next operation releases the snapshot and fails.
        assert!(matches!(
            is_too_old(tx.get(0, b"k00")),
            LimitExceeded::MaxAge {
                limit_ms: 1_000,
                ..
            }
        ));
        assert_eq!(engine.stats().snapshots_aborted, 1);
        assert_eq!(engine.oldest_snapshot(), None);
        gc_all(&engine);
        assert_eq!(versions(&engine), 50);
        assert!(matches!(tx.commit(), Err(TxnError::SnapshotTooOld { .. })));
    });
}

#[test]
fn a_busy_transaction_is_released_by_a_later_enforcement_once_idle() {
    let clock = Arc::new(StoppingClock {
        now_ms: AtomicU64::new(T0),
        armed: AtomicBool::new(false),
        entered: Barrier::new(2),
        release: Barrier::new(2),
    });
    let engine = engine_with(
        clock.clone(),
        SnapshotLimits {
            max_age_ms: 1_000,
            max_pinned_bytes: 0,
        },
    );
    engine.put(0, b"k", &value(0), None).unwrap();
    let mut tx = engine.begin_interactive(Isolation::Snapshot, 4);
    engine.put(0, b"k", &value(1), None).unwrap();
    clock.now_ms.fetch_add(2_000, Ordering::SeqCst);
    let tx = std::thread::scope(|scope| {
        clock.armed.store(true, Ordering::SeqCst);
        let reader = scope.spawn(|| {
            tx.scan(0, None, None, 10).unwrap();
            tx
        });
        clock.entered.wait();
        assert_eq!(engine.enforce_snapshot_limits().busy, 1);
        clock.release.wait();
        reader.join().unwrap()
    });
    // Idle now: the next pass releases it without waiting for its owner.
    let report = engine.enforce_snapshot_limits();
    assert_eq!(report.aborted.len(), 1);
    assert_eq!(report.busy, 0);
    gc_all(&engine);
    assert_eq!(versions(&engine), 1);
    assert!(matches!(tx.commit(), Err(TxnError::SnapshotTooOld { .. })));
    assert_eq!(engine.stats().snapshots_aborted, 1);
}

/// A checkpoint scan that stops in `lower` until the test releases it, and records `restore`.
struct StalledScan<'a> {
    entered: &'a Barrier,
    release: &'a Barrier,
    restored: &'a AtomicBool,
}

impl txn::durability::ScanPriority for StalledScan<'_> {
    fn lower(&self) {
        self.entered.wait();
        self.release.wait();
    }

    fn restore(&self) {
        self.restored.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_checkpoint_snapshot_is_shown_but_never_aborted() {
    let clock = Arc::new(ManualClock::new(T0));
    let disk = storage::io::SimDisk::new(11);
    let (durability, _) = Durability::open(DurabilityConfig {
        dir: "/data".into(),
        disk: Arc::new(disk),
        wal: false,
        fsync: storage::wal::FsyncPolicy::Always,
        wal_segment_bytes: 1 << 20,
        wal_load_truncated: false,
        engine: EngineConfig {
            clock: clock.clone(),
            ..EngineConfig::default()
        },
    })
    .unwrap();
    let engine = durability.engine().clone();
    engine.set_snapshot_limits(SnapshotLimits {
        max_age_ms: 1_000,
        max_pinned_bytes: 1,
    });
    for i in 0..20 {
        engine
            .put(0, format!("k{i:02}").as_bytes(), &value(i), None)
            .unwrap();
    }
    let entered = Barrier::new(2);
    let release = Barrier::new(2);
    let restored = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let checkpoint = scope.spawn(|| {
            durability.checkpoint_with_scan_thread(&StalledScan {
                entered: &entered,
                release: &release,
                restored: &restored,
            })
        });
        // The checkpoint holds its snapshot; everything is overwritten behind it, far past
        // both limits.
        entered.wait();
        for i in 0..20 {
            engine
                .put(0, format!("k{i:02}").as_bytes(), &value(100 + i), None)
                .unwrap();
        }
        clock.advance(3_600_000);
        gc_all(&engine);
        assert_eq!(versions(&engine), 40);
        let oldest = engine.oldest_snapshot().unwrap();
        assert_eq!(oldest.holder, SnapshotHolder::Checkpoint);
        assert_eq!(oldest.age_ms, 3_600_000);
        assert!(oldest.pinned_bytes > 1);
        // A transaction younger than the checkpoint is not blamed for the memory the
        // checkpoint pins (it does not hold the watermark), and is under the age limit.
        let mut young = engine.begin_interactive(Isolation::Snapshot, 5);
        assert_eq!(young.get(0, b"k00").unwrap().unwrap().value, value(100));
        let report = engine.enforce_snapshot_limits();
        assert!(report.aborted.is_empty(), "{report:?}");
        assert_eq!(report.busy, 0);
        assert_eq!(engine.stats().snapshots_aborted, 0);
        assert!(young.check_open().is_ok());
        young.abort();
        release.wait();
        let report = checkpoint.join().unwrap().unwrap();
        assert_eq!(report.keys, 20);
    });
    assert!(
        restored.load(Ordering::SeqCst),
        "a checkpoint pinning more than the cap finishes at normal priority"
    );
    assert_eq!(engine.oldest_snapshot(), None);
    gc_all(&engine);
    assert_eq!(versions(&engine), 20);
}

#[test]
fn limits_of_zero_turn_enforcement_off() {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = engine_with(
        clock.clone(),
        SnapshotLimits {
            max_age_ms: 0,
            max_pinned_bytes: 0,
        },
    );
    let mut tx = engine.begin_interactive(Isolation::Snapshot, 1);
    overwrite(&engine, "k", 500, 0);
    clock.advance(u64::MAX / 4);
    gc_all(&engine);
    assert!(engine.enforce_snapshot_limits().aborted.is_empty());
    assert_eq!(tx.get(0, b"k").unwrap(), None);
    assert_eq!(engine.snapshot_limits().max_age_ms, 0);
    assert_eq!(
        SnapshotLimits::default(),
        SnapshotLimits {
            max_age_ms: 60_000,
            max_pinned_bytes: 256 << 20,
        }
    );
}
