//! Recovery end to end inside one process: an engine bound to a (simulated or real) data
//! directory survives restarts and power cuts with every acknowledged commit, checkpoints cut
//! the log, TTLs survive as absolute deadlines, and WAL failures refuse writes until the disk
//! recovers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tierkv_txn as txn;

use storage::io::{CrashMode, Disk, FaultKind, FaultOp, FileDisk, SimDisk};
use storage::wal::FsyncPolicy;
use txn::{Durability, DurabilityConfig, EngineConfig, Expiry, Isolation, ManualClock, TxnError};

fn config(disk: Arc<dyn Disk>, dir: &Path, clock: Arc<ManualClock>) -> DurabilityConfig {
    DurabilityConfig {
        dir: dir.to_path_buf(),
        disk,
        wal: true,
        fsync: FsyncPolicy::Always,
        wal_segment_bytes: 4096,
        wal_load_truncated: false,
        engine: EngineConfig {
            clock,
            ..EngineConfig::default()
        },
    }
}

fn put(d: &Durability, key: &str, value: &str, expiry: Expiry) -> storage::Lsn {
    let (_, info) = d
        .engine()
        .run(Isolation::Serializable, |tx| {
            tx.put(0, key.as_bytes(), value.as_bytes(), expiry)
        })
        .unwrap();
    let lsn = info.lsn.expect("logged");
    d.wal().unwrap().wait_durable(lsn).unwrap();
    lsn
}

fn get(d: &Durability, key: &str) -> Option<String> {
    let mut tx = d.engine().begin(Isolation::Snapshot);
    tx.get(0, key.as_bytes())
        .unwrap()
        .map(|e| String::from_utf8(e.value.to_vec()).unwrap())
}

fn dir() -> PathBuf {
    PathBuf::from("/data")
}

#[test]
fn acknowledged_commits_survive_a_power_cut() {
    let disk = SimDisk::new(7);
    let clock = Arc::new(ManualClock::new(1_000));
    let (d, report) =
        Durability::open(config(Arc::new(disk.clone()), &dir(), clock.clone())).unwrap();
    assert_eq!(report.wal_records, 0);
    for i in 0..200 {
        put(&d, &format!("k{i}"), &format!("v{i}"), Expiry::Persist);
    }
    // A multi-key transaction: all or nothing after recovery.
    d.engine()
        .run(Isolation::Serializable, |tx| {
            tx.put(1, b"a", b"1", Expiry::Persist)?;
            tx.put(1, b"b", b"2", Expiry::Persist)?;
            tx.delete(0, b"k0").map(|_| ())
        })
        .map(|(_, info)| d.wal().unwrap().wait_durable(info.lsn.unwrap()).unwrap())
        .unwrap();
    drop(d);
    disk.crash(CrashMode::TearUnsynced);

    let (d, report) = Durability::open(config(Arc::new(disk.clone()), &dir(), clock)).unwrap();
    assert_eq!(report.wal_records, 201);
    assert_eq!(get(&d, "k0"), None);
    for i in 1..200 {
        assert_eq!(get(&d, &format!("k{i}")), Some(format!("v{i}")));
    }
    let mut tx = d.engine().begin(Isolation::Snapshot);
    assert_eq!(&tx.get(1, b"a").unwrap().unwrap().value[..], b"1");
    assert_eq!(&tx.get(1, b"b").unwrap().unwrap().value[..], b"2");
    assert_eq!(d.engine().dbsize(0), 199);
}

#[test]
fn checkpoint_then_wal_tail_recovers_everything_and_cuts_the_log() {
    let disk = SimDisk::new(11);
    let clock = Arc::new(ManualClock::new(1_000));
    let (d, _) = Durability::open(config(Arc::new(disk.clone()), &dir(), clock.clone())).unwrap();
    for i in 0..500 {
        put(
            &d,
            &format!("before{i:04}"),
            &"x".repeat(40),
            Expiry::Persist,
        );
    }
    let segments_before = d.wal().unwrap().stats().segments;
    assert!(
        segments_before > 2,
        "small segments rotate: {segments_before}"
    );
    let ck = d.checkpoint().unwrap();
    assert_eq!(ck.keys, 500);
    assert!(ck.wal_segments_removed > 0);
    // Overwrites and deletes after the checkpoint come from the WAL tail.
    put(&d, "before0000", "changed", Expiry::Persist);
    put(&d, "after", "tail", Expiry::Persist);
    d.engine()
        .run(Isolation::Serializable, |tx| tx.delete(0, b"before0001"))
        .map(|(_, info)| d.wal().unwrap().wait_durable(info.lsn.unwrap()).unwrap())
        .unwrap();
    drop(d);
    disk.crash(CrashMode::DropUnsynced);

    let (d, report) = Durability::open(config(Arc::new(disk), &dir(), clock)).unwrap();
    assert_eq!(report.checkpoint_keys, 500);
    assert_eq!(report.checkpoint_ts, ck.snapshot_ts);
    assert_eq!(report.wal_records, 3);
    assert_eq!(get(&d, "before0000").as_deref(), Some("changed"));
    assert_eq!(get(&d, "before0001"), None);
    assert_eq!(get(&d, "before0499"), Some("x".repeat(40)));
    assert_eq!(get(&d, "after").as_deref(), Some("tail"));
    assert_eq!(d.engine().dbsize(0), 500);
    // Commits after recovery get timestamps above everything recovered.
    put(&d, "later", "ok", Expiry::Persist);
    assert_eq!(get(&d, "later").as_deref(), Some("ok"));
}

#[test]
fn deadlines_survive_restarts_and_passed_ones_are_gone() {
    let disk = SimDisk::new(3);
    let clock = Arc::new(ManualClock::new(10_000));
    let (d, _) = Durability::open(config(Arc::new(disk.clone()), &dir(), clock.clone())).unwrap();
    put(&d, "short", "s", Expiry::At(10_500));
    put(&d, "long", "l", Expiry::At(99_000));
    d.checkpoint().unwrap();
    put(&d, "tail-short", "s", Expiry::At(10_400));
    drop(d);
    disk.crash(CrashMode::DropUnsynced);

    // Down for a while: the short deadlines pass.
    clock.set(20_000);
    let (d, _) = Durability::open(config(Arc::new(disk), &dir(), clock)).unwrap();
    assert_eq!(get(&d, "short"), None);
    assert_eq!(get(&d, "tail-short"), None);
    assert_eq!(get(&d, "long").as_deref(), Some("l"));
    let mut tx = d.engine().begin(Isolation::Snapshot);
    assert_eq!(
        tx.get(0, b"long").unwrap().unwrap().expire_at_ms,
        Some(99_000)
    );
}

#[test]
fn a_failed_fsync_refuses_writes_until_the_disk_recovers() {
    let disk = SimDisk::new(5);
    let clock = Arc::new(ManualClock::new(1_000));
    let (d, _) = Durability::open(config(Arc::new(disk.clone()), &dir(), clock.clone())).unwrap();
    put(&d, "ok", "1", Expiry::Persist);
    disk.fail_after(FaultOp::Sync, 0, FaultKind::NoSpace);
    // The commit is appended, but never acknowledged as durable.
    let (_, info) = d
        .engine()
        .run(Isolation::Serializable, |tx| {
            tx.put(0, b"unacked", b"2", Expiry::Persist)
        })
        .unwrap();
    assert!(d.wal().unwrap().wait_durable(info.lsn.unwrap()).is_err());
    // While the log is failed, commits are refused; reads go on.
    let refused = d.engine().run(Isolation::Serializable, |tx| {
        tx.put(0, b"x", b"3", Expiry::Persist)
    });
    assert!(matches!(refused, Err(TxnError::Sink(_))), "{refused:?}");
    assert_eq!(get(&d, "ok").as_deref(), Some("1"));
    assert!(d.stats().wal_error.is_some());

    disk.clear_faults();
    d.try_recover_log().unwrap();
    assert!(d.stats().wal_error.is_none());
    let lsn = put(&d, "after", "4", Expiry::Persist);
    assert!(d.wal().unwrap().durable_lsn() >= lsn);
    drop(d);
    disk.crash(CrashMode::DropUnsynced);
    let (d, _) = Durability::open(config(Arc::new(disk), &dir(), clock)).unwrap();
    assert_eq!(get(&d, "ok").as_deref(), Some("1"));
    assert_eq!(get(&d, "after").as_deref(), Some("4"));
    assert_eq!(get(&d, "x"), None);
}

#[test]
fn without_a_wal_only_checkpoints_persist() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let mut cfg = config(Arc::new(FileDisk), tmp.path(), clock);
    cfg.wal = false;
    let (d, _) = Durability::open(cfg.clone()).unwrap();
    assert!(d.wal().is_none());
    d.engine()
        .run(Isolation::Serializable, |tx| {
            tx.put(3, b"saved", b"yes", Expiry::Persist)
        })
        .unwrap();
    d.checkpoint().unwrap();
    d.engine()
        .run(Isolation::Serializable, |tx| {
            tx.put(3, b"unsaved", b"no", Expiry::Persist)
        })
        .unwrap();
    drop(d);
    let (d, report) = Durability::open(cfg).unwrap();
    assert_eq!(report.checkpoint_keys, 1);
    let mut tx = d.engine().begin(Isolation::Snapshot);
    assert!(tx.get(3, b"saved").unwrap().is_some());
    assert!(tx.get(3, b"unsaved").unwrap().is_none());
}

#[test]
fn a_checkpoint_runs_while_writers_continue() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let mut cfg = config(Arc::new(FileDisk), tmp.path(), clock);
    cfg.fsync = FsyncPolicy::No;
    cfg.wal_segment_bytes = 1 << 20;
    let (d, _) = Durability::open(cfg.clone()).unwrap();
    let d = Arc::new(d);
    for i in 0..5_000u32 {
        d.engine()
            .run(Isolation::Serializable, |tx| {
                tx.put(
                    0,
                    format!("k{i:05}").as_bytes(),
                    &i.to_le_bytes(),
                    Expiry::Persist,
                )
            })
            .unwrap();
    }
    let writer = {
        let d = Arc::clone(&d);
        std::thread::spawn(move || {
            for i in 0..2_000u32 {
                d.engine()
                    .run(Isolation::Serializable, |tx| {
                        tx.put(0, format!("w{i:05}").as_bytes(), b"w", Expiry::Persist)?;
                        tx.put(
                            0,
                            b"k00000",
                            &(i + 1_000_000).to_le_bytes(),
                            Expiry::Persist,
                        )
                    })
                    .unwrap();
            }
        })
    };
    let ck = d.checkpoint().unwrap();
    writer.join().unwrap();
    assert!(ck.keys >= 5_000);
    d.close().unwrap();
    drop(d);
    let (d, report) = Durability::open(cfg).unwrap();
    assert_eq!(report.checkpoint_keys, ck.keys);
    assert_eq!(d.engine().dbsize(0), 7_000);
    let mut tx = d.engine().begin(Isolation::Snapshot);
    let last = tx.get(0, b"k00000").unwrap().unwrap();
    assert_eq!(&last.value[..], &(1_999u32 + 1_000_000).to_le_bytes());
}

#[test]
fn a_record_that_is_not_a_log_record_refuses_recovery_with_its_place() {
    let disk = SimDisk::new(9);
    let clock = Arc::new(ManualClock::new(1_000));
    let (d, _) = Durability::open(config(Arc::new(disk.clone()), &dir(), clock.clone())).unwrap();
    for i in 0..3000 {
        put(&d, &format!("k{i}"), "v", Expiry::Persist);
    }
    d.close().unwrap();
    drop(d);
    // A frame with a valid checksum whose payload is not an engine record: a foreign writer, or
    // a bug. Recovery must stop and say where, not skip it.
    let (wal, _) = storage::wal::WalWriter::open(
        Arc::new(disk.clone()),
        &dir().join(txn::durability::WAL_DIR),
        storage::wal::WalConfig::default(),
    )
    .unwrap();
    let lsn = wal.append(b"not a log record").unwrap();
    wal.wait_durable(lsn).unwrap();
    wal.close().unwrap();
    drop(wal);
    let err = Durability::open(config(Arc::new(disk), &dir(), clock)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("wal-"), "{text}");
    assert!(text.contains("kvtool wal verify"), "{text}");
}

#[test]
fn a_checkpoint_with_nothing_new_does_not_rewrite_the_installed_one() {
    let disk = SimDisk::new(21);
    let clock = Arc::new(ManualClock::new(1_000));
    let (d, _) = Durability::open(config(Arc::new(disk.clone()), &dir(), clock.clone())).unwrap();
    put(&d, "k", "v", Expiry::Persist);
    let first = d.checkpoint().unwrap();
    assert!(!first.unchanged);
    let again = d.checkpoint().unwrap();
    assert!(
        again.unchanged,
        "same snapshot: the installed file stays as it is"
    );
    assert_eq!(again.snapshot_ts, first.snapshot_ts);
    drop(d);
    // Also across a restart: the recovered checkpoint counts as installed.
    let (d, _) = Durability::open(config(Arc::new(disk), &dir(), clock)).unwrap();
    assert!(d.checkpoint().unwrap().unchanged);
    put(&d, "k2", "v", Expiry::Persist);
    let next = d.checkpoint().unwrap();
    assert!(!next.unchanged);
    assert_eq!(next.keys, 2);
}

#[test]
fn keys_due_while_the_log_is_failed_are_expired_once_it_recovers() {
    let disk = SimDisk::new(33);
    let clock = Arc::new(ManualClock::new(1_000));
    let (d, _) = Durability::open(config(Arc::new(disk.clone()), &dir(), clock.clone())).unwrap();
    put(&d, "short", "s", Expiry::At(1_500));
    disk.fail_after(FaultOp::Sync, 0, FaultKind::Io);
    let (_, info) = d
        .engine()
        .run(Isolation::Serializable, |tx| {
            tx.put(0, b"x", b"1", Expiry::Persist)
        })
        .unwrap();
    assert!(d.wal().unwrap().wait_durable(info.lsn.unwrap()).is_err());

    clock.set(2_000);
    assert_eq!(
        d.engine().expire_tick(100),
        0,
        "the delete cannot be logged"
    );
    assert_eq!(
        get(&d, "short"),
        None,
        "invisible at its deadline all the same"
    );

    disk.clear_faults();
    d.try_recover_log().unwrap();
    assert_eq!(
        d.engine().expire_tick(100),
        1,
        "the due key was kept in the wheel"
    );
    assert_eq!(d.engine().stats().expired_keys, 1);
}

/// The checkpoint loader splits keys among threads by hash: every key, value, deadline and
/// per-database counter comes back, in several databases, and the engine works on afterwards.
#[test]
fn a_checkpoint_of_several_databases_loads_back_whole() {
    let disk = SimDisk::new(11);
    let clock = Arc::new(ManualClock::new(1_000));
    let (d, _) = Durability::open(config(Arc::new(disk.clone()), &dir(), clock.clone())).unwrap();
    let dbs = [0u8, 3, 15];
    let value = |db: u8, i: u32| format!("v{db}-{i}-{}", "x".repeat((i % 7) as usize));
    for &db in &dbs {
        for chunk in (0..3000u32).collect::<Vec<_>>().chunks(500) {
            d.engine()
                .run(Isolation::Snapshot, |tx| {
                    for &i in chunk {
                        let expiry = if i % 5 == 0 {
                            Expiry::At(50_000 + u64::from(i))
                        } else {
                            Expiry::Persist
                        };
                        tx.put(
                            db,
                            format!("k{i}").as_bytes(),
                            value(db, i).as_bytes(),
                            expiry,
                        )?;
                    }
                    Ok(())
                })
                .unwrap();
        }
    }
    let before = d.engine().stats().dbs;
    let memory_before = d.engine().memory_stats();
    d.checkpoint().unwrap();
    drop(d);
    let (d, report) = Durability::open(config(Arc::new(disk), &dir(), clock.clone())).unwrap();
    assert_eq!(report.checkpoint_keys, 9000);
    assert_eq!(report.wal_records, 0);
    // The loaders count in batches; the totals come out as if each key had been written.
    let memory_after = d.engine().memory_stats();
    assert_eq!(memory_after.index_bytes, memory_before.index_bytes);
    assert_eq!(memory_after.value_bytes, memory_before.value_bytes);
    let after = d.engine().stats().dbs;
    for &db in &dbs {
        let (b, a) = (before[db as usize], after[db as usize]);
        assert_eq!(
            (a.keys, a.expires, a.key_nodes),
            (3000, 600, 3000),
            "db {db}"
        );
        assert_eq!((a.keys, a.expires), (b.keys, b.expires), "db {db}");
    }
    let mut tx = d.engine().begin(Isolation::Snapshot);
    for &db in &dbs {
        for i in 0..3000u32 {
            let e = tx.get(db, format!("k{i}").as_bytes()).unwrap().unwrap();
            assert_eq!(e.value, value(db, i).as_bytes());
            let deadline = (i % 5 == 0).then(|| 50_000 + u64::from(i));
            assert_eq!(e.expire_at_ms, deadline, "db {db} k{i}");
        }
    }
    drop(tx);
    // Loaded keys behave like any other: overwritten, collected, expired by the wheel.
    put(&d, "k1", "new", Expiry::Persist);
    while !d.engine().gc().caught_up {}
    assert_eq!(d.engine().stats().dbs[0].versions, 3000);
    clock.set(60_000);
    let mut expired = 0;
    for _ in 0..100 {
        expired += d.engine().expire_tick(10_000);
    }
    assert_eq!(expired, 1800);
    assert_eq!(d.engine().stats().dbs[3].keys, 2400);
}

/// A checkpoint lists keys in ascending (database, key) order, which is what lets loaders split
/// it into runs; one whose entries are out of order (a bug, or a foreign file with valid
/// checksums) refuses recovery instead of loading a key twice on two threads.
#[test]
fn a_checkpoint_out_of_key_order_refuses_recovery() {
    let disk = SimDisk::new(12);
    let clock = Arc::new(ManualClock::new(1_000));
    let shared: Arc<dyn Disk> = Arc::new(disk.clone());
    shared.create_dir_all(&dir()).unwrap();
    let mut writer =
        storage::checkpoint::CheckpointWriter::create(shared, &dir(), 5, storage::Lsn(1)).unwrap();
    for key in [b"b".as_slice(), b"c", b"a"] {
        let mut buf = Vec::new();
        txn::durability::CheckpointEntry {
            db: 0,
            key,
            value: b"v",
            expire_at_ms: None,
            access: None,
        }
        .encode_into(&mut buf);
        writer.add(&buf).unwrap();
    }
    writer.finish().unwrap();
    let Err(err) = Durability::open(config(Arc::new(disk), &dir(), clock)) else {
        panic!("a checkpoint out of order was loaded");
    };
    let text = err.to_string();
    assert!(
        text.contains("record 2: entries out of (database, key) order"),
        "{text}"
    );
}

/// Everything visible in every database: (db, key) → (value, deadline).
type Dump = std::collections::BTreeMap<(u8, Vec<u8>), (Vec<u8>, Option<u64>)>;

fn dump(d: &Durability) -> Dump {
    let mut tx = d.engine().begin(Isolation::Snapshot);
    let mut out = std::collections::BTreeMap::new();
    for db in 0..16u8 {
        for (key, e) in tx.scan(db, None, None, usize::MAX).unwrap() {
            out.insert((db, key.to_vec()), (e.value.to_vec(), e.expire_at_ms));
        }
    }
    out
}

/// WAL replay spreads keys over loader threads: overwrites, deletes and TTL changes of one key
/// keep their order, and FLUSHDB / SWAPDB (barriers) see everything logged before them.
#[test]
fn a_wal_replay_over_loader_threads_keeps_every_order() {
    let disk = SimDisk::new(12);
    let clock = Arc::new(ManualClock::new(1_000));
    let (d, _) = Durability::open(config(Arc::new(disk.clone()), &dir(), clock.clone())).unwrap();
    let e = d.engine();
    for round in 0..4u32 {
        for i in 0..400u32 {
            let key = format!("k{}", i % 150);
            let db = (i % 3) as u8;
            e.run(Isolation::Snapshot, |tx| match (i + round) % 5 {
                0 => tx.delete(db, key.as_bytes()).map(drop),
                1 => tx
                    .set_expiry(db, key.as_bytes(), Some(90_000 + u64::from(i)))
                    .map(drop),
                2 => tx.set_expiry(db, key.as_bytes(), None).map(drop),
                _ => tx.put(
                    db,
                    key.as_bytes(),
                    format!("r{round}-{i}").as_bytes(),
                    Expiry::Persist,
                ),
            })
            .unwrap();
        }
        match round {
            1 => drop(e.flush_db(1).unwrap()),
            2 => drop(e.swap_db(0, 2).unwrap()),
            _ => {}
        }
    }
    let before = dump(&d);
    assert!(before.len() >= 100, "{} keys", before.len());
    let last = e.last_logged_lsn();
    d.wal().unwrap().wait_durable(storage::Lsn(last)).unwrap();
    drop(d);
    let (d, report) = Durability::open(config(Arc::new(disk), &dir(), clock)).unwrap();
    assert_eq!(report.checkpoint_keys, 0);
    assert_eq!(report.wal_records, last);
    assert_eq!(dump(&d), before);
}

/// A checkpoint starts a fresh WAL segment before its snapshot, so every record it covers
/// goes, including those of the segment that was being written.
#[test]
fn a_checkpoint_leaves_no_covered_wal_segment_behind() {
    let disk = SimDisk::new(13);
    let clock = Arc::new(ManualClock::new(1_000));
    let (d, _) = Durability::open(config(Arc::new(disk.clone()), &dir(), clock.clone())).unwrap();
    for i in 0..5 {
        put(&d, &format!("k{i}"), "v", Expiry::Persist);
    }
    let wal_dir = dir().join("wal");
    let segments = |disk: &SimDisk| storage::wal::list_segments(disk, &wal_dir).unwrap();
    assert_eq!(
        segments(&disk).len(),
        1,
        "five small records fit one segment"
    );
    let report = d.checkpoint().unwrap();
    assert_eq!(report.wal_segments_removed, 1);
    let left = segments(&disk);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].first_lsn, report.redo_lsn);
    put(&d, "after", "v", Expiry::Persist);
    drop(d);
    disk.crash(CrashMode::DropUnsynced);
    let (d, report) = Durability::open(config(Arc::new(disk), &dir(), clock)).unwrap();
    assert_eq!((report.checkpoint_keys, report.wal_records), (5, 1));
    assert_eq!(get(&d, "after").as_deref(), Some("v"));
}

/// Under an LRU or LFU policy a checkpoint keeps how recently or often each key was used, as
/// Redis's RDB keeps idle time or frequency: relative to the save, so time spent down neither
/// ages nor decays a key, and a kind the loading policy does not read is ignored. Under any
/// other policy loaded keys start fresh.
#[test]
fn a_checkpoint_keeps_idle_time_and_frequency_under_lru_and_lfu_policies() {
    use txn::memory::{EvictionPolicy, KeyAccess, MemoryConfig};
    let access = |d: &Durability, key: &str| {
        let tx = d.engine().begin(Isolation::Snapshot);
        tx.key_access(0, key.as_bytes()).unwrap()
    };
    let memory = |policy: EvictionPolicy| MemoryConfig {
        policy,
        ..MemoryConfig::default()
    };
    // The policy is in force from the start, so the load already reads words its way.
    let open = |disk: &SimDisk, clock: &Arc<ManualClock>, policy: EvictionPolicy| {
        let mut c = config(Arc::new(disk.clone()), &dir(), clock.clone());
        c.engine.memory = memory(policy);
        let (d, _) = Durability::open(c).unwrap();
        d
    };
    let tick = |d: &Durability| {
        d.engine().expire_tick(0); // refreshes the cached access clock
    };
    let t0 = 1_700_000_000_000;
    let hour = 3_600_000;
    for (saved_under, loaded_under, old_idle) in [
        (
            EvictionPolicy::AllKeysLru,
            EvictionPolicy::AllKeysLru,
            Some(100_000),
        ),
        (EvictionPolicy::NoEviction, EvictionPolicy::AllKeysLru, None),
        (EvictionPolicy::AllKeysLfu, EvictionPolicy::AllKeysLru, None),
    ] {
        let disk = SimDisk::new(13);
        let clock = Arc::new(ManualClock::new(t0));
        let d = open(&disk, &clock, EvictionPolicy::AllKeysLru);
        put(&d, "old", "v", Expiry::Persist);
        put(&d, "recent", "v", Expiry::Persist);
        clock.set(t0 + 100_000);
        tick(&d);
        assert!(d.engine().get(0, b"recent").unwrap().is_some());
        assert_eq!(access(&d, "old"), KeyAccess::Idle { ms: 100_000 });
        d.engine().set_memory_config(memory(saved_under));
        tick(&d);
        d.checkpoint().unwrap();
        drop(d);
        // An hour down: not counted as idle time.
        clock.set(t0 + 100_000 + hour);
        let d = open(&disk, &clock, loaded_under);
        tick(&d);
        let expected = KeyAccess::Idle {
            ms: old_idle.unwrap_or(0),
        };
        assert_eq!(access(&d, "old"), expected, "saved under {saved_under:?}");
        assert_eq!(access(&d, "recent"), KeyAccess::Idle { ms: 0 });
    }

    // LFU: a key read many times keeps its counter across an hour down (with the default
    // lfu-decay-time of 1 it would otherwise lose 60).
    let disk = SimDisk::new(14);
    let clock = Arc::new(ManualClock::new(t0));
    let d = open(&disk, &clock, EvictionPolicy::AllKeysLfu);
    tick(&d);
    put(&d, "hot", "v", Expiry::Persist);
    put(&d, "cold", "v", Expiry::Persist);
    for _ in 0..2_000 {
        d.engine().get(0, b"hot").unwrap();
    }
    let hot = access(&d, "hot");
    assert!(
        matches!(hot, KeyAccess::Frequency { counter } if counter > 5),
        "{hot:?}"
    );
    d.checkpoint().unwrap();
    drop(d);
    clock.set(t0 + hour);
    let d = open(&disk, &clock, EvictionPolicy::AllKeysLfu);
    tick(&d);
    assert_eq!(access(&d, "hot"), hot);
    assert_eq!(access(&d, "cold"), KeyAccess::Frequency { counter: 5 });
}

/// A `ScanPriority` that runs `hook(n)` after the scan's `n`-th batch (from 0), on the scan
/// thread, so commits interleave with a checkpoint's scan deterministically.
struct BetweenBatches<F: Fn(usize) + Sync> {
    calls: std::sync::atomic::AtomicUsize,
    hook: F,
}

impl<F: Fn(usize) + Sync> BetweenBatches<F> {
    fn new(hook: F) -> Self {
        BetweenBatches {
            calls: std::sync::atomic::AtomicUsize::new(0),
            hook,
        }
    }
}

impl<F: Fn(usize) + Sync> txn::durability::ScanPriority for BetweenBatches<F> {
    fn lower(&self) {}
    fn restore(&self) {}
    fn between_batches(&self) {
        let n = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (self.hook)(n);
    }
}

/// 3 000 keys of database 0 (three scan batches), 100 of database 1, 50 of database 3.
fn preload(d: &Durability) {
    d.engine()
        .run(Isolation::Snapshot, |tx| {
            for i in 0..3_000u32 {
                let key = format!("k{i:04}");
                tx.put(
                    0,
                    key.as_bytes(),
                    format!("v0-{i}").as_bytes(),
                    Expiry::Persist,
                )?;
            }
            for i in 0..100u32 {
                tx.put(1, format!("d1-{i:03}").as_bytes(), b"one", Expiry::Persist)?;
            }
            for i in 0..50u32 {
                tx.put(
                    3,
                    format!("d3-{i:03}").as_bytes(),
                    b"three",
                    Expiry::Persist,
                )?;
            }
            Ok(())
        })
        .unwrap();
}

/// A fresh data directory on `SimDisk` (seed `seed`, 1 MiB segments, `fsync`) loaded by
/// [`preload`]: the disk, its config, and the open engine.
fn preloaded(seed: u64, fsync: FsyncPolicy) -> (SimDisk, DurabilityConfig, Durability) {
    let disk = SimDisk::new(seed);
    let clock = Arc::new(ManualClock::new(1_000));
    let mut cfg = config(Arc::new(disk.clone()), &dir(), clock);
    cfg.fsync = fsync;
    cfg.wal_segment_bytes = 1 << 20;
    let (d, _) = Durability::open(cfg.clone()).unwrap();
    preload(&d);
    (disk, cfg, d)
}

/// Commits made while the scan is between batches, on keys behind and ahead of its cursor.
fn churn_during_scan(d: &Durability, n: usize) {
    let e = d.engine();
    match n {
        0 => {
            // One transaction over a key already read and one not yet read: all or nothing.
            e.run(Isolation::Snapshot, |tx| {
                tx.put(0, b"k0010", b"moved-behind", Expiry::Persist)?;
                tx.put(0, b"k2500", b"moved-ahead", Expiry::Persist)
            })
            .unwrap();
            e.run(Isolation::Snapshot, |tx| {
                tx.delete(0, b"k0020")?;
                tx.delete(0, b"k2600")?;
                tx.put(0, b"k0010x", b"new-behind", Expiry::Persist)?;
                tx.put(0, b"k2999z", b"new-ahead", Expiry::Persist)?;
                tx.set_expiry(0, b"k2700", Some(9_000_000))?;
                tx.set_expiry(0, b"k0030", Some(8_000_000))?;
                tx.put(1, b"d1-005", b"changed", Expiry::Persist)
            })
            .unwrap();
            e.flush_db(3).unwrap();
            e.run(Isolation::Snapshot, |tx| {
                tx.put(3, b"after-flush", b"x", Expiry::Persist)
            })
            .unwrap();
        }
        1 => {
            e.run(Isolation::Snapshot, |tx| {
                tx.put(0, b"k2500", b"moved-again", Expiry::Persist)?;
                tx.delete(0, b"k0010x").map(drop)
            })
            .unwrap();
            // Deleted, then written again ahead of the cursor.
            e.run(Isolation::Snapshot, |tx| tx.delete(0, b"k2800").map(drop))
                .unwrap();
            e.run(Isolation::Snapshot, |tx| {
                tx.put(0, b"k2800", b"back", Expiry::Persist)
            })
            .unwrap();
        }
        _ => {}
    }
}

/// A fuzzy checkpoint reads each batch at the newest commit while writers go on; with the WAL
/// from its start replayed over it, recovery gives exactly the state at the end, even under
/// `appendfsync no` and a power cut right after it (the checkpoint syncs the records it
/// depends on before it is installed).
#[test]
fn a_fuzzy_checkpoint_with_commits_during_its_scan_recovers_the_exact_state() {
    let (disk, cfg, d) = preloaded(21, FsyncPolicy::No);
    let scan = BetweenBatches::new(|n| churn_during_scan(&d, n));
    let ck = d.checkpoint_with_scan_thread(&scan).unwrap();
    assert!(ck.fuzzy, "with a WAL and no SWAPDB the checkpoint is fuzzy");
    assert!(scan.calls.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    let before = dump(&d);
    assert_eq!(
        before.get(&(0, b"k2500".to_vec())).map(|v| &v.0[..]),
        Some(&b"moved-again"[..])
    );
    assert!(!before.contains_key(&(0, b"k0020".to_vec())));
    assert_eq!(
        before.get(&(0, b"k2700".to_vec())).and_then(|v| v.1),
        Some(9_000_000)
    );
    assert_eq!(before.keys().filter(|(db, _)| *db == 3).count(), 1);
    // A power cut now: only what was synced survives.
    disk.crash(CrashMode::DropUnsynced);
    drop(d);
    let (d, report) = Durability::open(cfg.clone()).unwrap();
    assert_eq!(report.checkpoint_ts, ck.snapshot_ts);
    assert!(
        report.wal_records > 0,
        "the scan's window comes from the WAL"
    );
    assert_eq!(dump(&d), before);
    drop(d);
    // A point-in-time replay cannot stop inside the window: the file holds newer values.
    let stop = txn::durability::ReplayUntil::CommitTs(ck.snapshot_ts + 1);
    let refused = txn::durability::replay_offline(
        Arc::new(disk),
        &dir(),
        Some(stop),
        EngineConfig::default(),
    );
    assert!(
        matches!(refused, Err(TxnError::ReplayBeforeCheckpoint { .. })),
        "{refused:?}"
    );
}

/// A SWAPDB during the fuzzy scan would replay over databases read on both sides of it, so
/// the checkpoint is written again from one exact snapshot.
#[test]
fn a_swapdb_during_a_fuzzy_scan_falls_back_to_an_exact_checkpoint() {
    let (_disk, cfg, d) = preloaded(22, FsyncPolicy::Always);
    let scan = BetweenBatches::new(|n| {
        if n == 0 {
            // Database 0 is partly read; databases 1 and 3 are not.
            d.engine().swap_db(0, 1).unwrap();
            d.engine().swap_db(1, 3).unwrap();
        }
        churn_during_scan(&d, n);
    });
    let ck = d.checkpoint_with_scan_thread(&scan).unwrap();
    assert!(!ck.fuzzy, "a SWAPDB during the scan makes it exact");
    let before = dump(&d);
    // Database 1 now holds database 3's 50 keys, and churn added one.
    assert_eq!(before.keys().filter(|(db, _)| *db == 1).count(), 51);
    drop(d);
    let (d, report) = Durability::open(cfg).unwrap();
    assert_eq!(report.checkpoint_ts, ck.snapshot_ts);
    assert_eq!(dump(&d), before);
}

/// Recovery refuses a WAL that ends before the point a fuzzy checkpoint needs replayed, rather
/// than starting from values of different moments.
#[test]
fn a_fuzzy_checkpoint_without_its_wal_records_refuses_recovery() {
    let (disk, mut cfg, d) = preloaded(23, FsyncPolicy::Always);
    let scan = BetweenBatches::new(|n| churn_during_scan(&d, n));
    let ck = d.checkpoint_with_scan_thread(&scan).unwrap();
    assert!(ck.fuzzy);
    drop(d);
    // Lose every WAL segment (an operator's `rm`, a bad copy).
    let wal_dir = dir().join(txn::durability::WAL_DIR);
    for name in disk.list(&wal_dir).unwrap() {
        disk.remove(&wal_dir.join(name)).unwrap();
    }
    let refused = Durability::open(cfg.clone());
    assert!(
        matches!(refused, Err(TxnError::CheckpointUnreplayed { .. })),
        "{:?}",
        refused.map(|_| ())
    );
    // Without a WAL configured, the records are still read from the directory (not here).
    cfg.wal = false;
    assert!(Durability::open(cfg).is_err());
}

/// Started without a WAL over a fuzzy checkpoint, the server reads the records the
/// checkpoint needs from the WAL directory (never changing it) and stops at its consistent
/// point: the state the checkpoint stands for.
#[test]
fn without_a_wal_a_fuzzy_checkpoint_loads_through_its_consistent_point() {
    let (_disk, mut cfg, d) = preloaded(24, FsyncPolicy::Always);
    let scan = BetweenBatches::new(|n| churn_during_scan(&d, n));
    let ck = d.checkpoint_with_scan_thread(&scan).unwrap();
    assert!(ck.fuzzy);
    let at_checkpoint = dump(&d);
    // A commit after the checkpoint: in the WAL, past the consistent point.
    put(&d, "k0000", "after", Expiry::Persist);
    drop(d);
    cfg.wal = false;
    let (d, _) = Durability::open(cfg).unwrap();
    assert_eq!(dump(&d), at_checkpoint);
}

/// Issue #13 item 7: a WAL whose last segment lost records that had been fsynced (cut in the
/// middle, not torn by a crash) refuses recovery, naming what is missing, unless
/// `wal_load_truncated` allows going on without them; then the log is accepted as it is and
/// the next start does not complain again. A crash's torn tail (unsynced records only) is cut
/// as before.
#[test]
fn a_wal_missing_fsynced_records_refuses_recovery_unless_allowed() {
    let disk = SimDisk::new(31);
    let clock = Arc::new(ManualClock::new(1_000));
    let mut cfg = config(Arc::new(disk.clone()), &dir(), clock);
    cfg.wal_segment_bytes = 1 << 20;
    let (d, _) = Durability::open(cfg.clone()).unwrap();
    for i in 0..200 {
        put(&d, &format!("k{i:03}"), "acknowledged", Expiry::Persist);
    }
    d.close().unwrap();
    drop(d);
    // Cut the (only) segment in half: about 100 fsynced records gone.
    let wal_dir = dir().join(txn::durability::WAL_DIR);
    let segment = disk
        .list(&wal_dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("wal-"))
        .max()
        .unwrap();
    let file = disk.open(&wal_dir.join(&segment)).unwrap();
    // Half of the records, not of the file (zeros are written ahead of the log).
    let image = disk.contents(&wal_dir.join(&segment)).unwrap();
    let records_end = image.iter().rposition(|&b| b != 0).unwrap() + 1;
    file.truncate(records_end as u64 / 2).unwrap();
    file.sync_data().unwrap();
    drop(file);
    match Durability::open(cfg.clone()) {
        Err(TxnError::Storage(e @ storage::StorageError::WalSyncedRecordsMissing { .. })) => {
            let text = e.to_string();
            assert!(
                text.contains("records up to LSN 200 were fsynced")
                    && text.contains("wal-load-truncated yes"),
                "{text}"
            );
        }
        other => panic!(
            "expected WalSyncedRecordsMissing, got {:?}",
            other.map(|_| ())
        ),
    }
    // Allowed: the records left load, and the log goes on from there.
    cfg.wal_load_truncated = true;
    let (d, report) = Durability::open(cfg.clone()).unwrap();
    let kept = report.wal_records;
    assert!(kept > 50 && kept < 200, "{kept} records kept");
    assert_eq!(d.engine().dbsize(0), kept);
    drop(d);
    cfg.wal_load_truncated = false;
    let (d, report) = Durability::open(cfg).unwrap();
    assert_eq!(
        report.wal_records, kept,
        "accepted once, not reported again"
    );
    put(&d, "after", "ok", Expiry::Persist);
    assert_eq!(get(&d, "after").as_deref(), Some("ok"));
}
