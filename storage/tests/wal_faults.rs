//! ENOSPC and EIO on write and on fsync: the log is poisoned (appends and waiters fail, nothing
//! unsynced is acknowledged), then `try_recover` resumes once the disk works, losing nothing.

extern crate tierkv_storage as storage;

mod common;

use common::*;
use std::path::Path;
use storage::io::{FaultKind, FaultOp};
use storage::wal::{FsyncPolicy, WalConfig, WalWriter};
use storage::{Lsn, StorageError};

fn run(op: FaultOp, kind: FaultKind, short: bool, policy: FsyncPolicy) {
    let (sim, disk) = sim(11);
    let dir = Path::new("/faults");
    let cfg = WalConfig {
        fsync: policy,
        ..WalConfig::default()
    };
    let (w, _) = WalWriter::open(disk.clone(), dir, cfg.clone()).unwrap();
    for i in 0..10 {
        let l = w.append(&payload(i, 20)).unwrap();
        w.wait_durable(l).unwrap();
    }
    sim.set_short_writes(short);
    sim.fail_after(op, 0, kind);
    let l = w.append(&payload(10, 20)).unwrap();
    let fails = policy == FsyncPolicy::Always || op == FaultOp::Write;
    if fails {
        let err = w.wait_durable(l).unwrap_err();
        assert!(matches!(err, StorageError::WalPoisoned { .. }), "{err}");
        assert_eq!(
            w.durable_lsn(),
            Lsn(10),
            "nothing after the failure is acknowledged"
        );
        let err = w.append(b"refused").unwrap_err();
        assert!(err.to_string().contains("writes are refused"), "{err}");
        assert!(w.stats().poisoned);
        // Still broken: recovery fails and the log stays poisoned.
        assert!(w.try_recover().is_err());
        assert!(w.failure().is_some());
    } else {
        w.wait_durable(l).unwrap();
    }
    sim.clear_faults();
    sim.set_short_writes(false);
    w.try_recover().unwrap();
    assert!(w.failure().is_none());
    w.wait_durable(l).unwrap();
    let l2 = w.append(&payload(11, 20)).unwrap();
    assert_eq!(l2, Lsn(12));
    w.wait_durable(l2).unwrap();
    drop(w);
    // Every record, including the one whose batch failed, is there once, in order.
    let recs = every_record_once_after_a_crash(&sim, disk, dir, 12);
    for (i, (_, p)) in recs.iter().enumerate() {
        assert_eq!(p, &payload(i as u64, 20));
    }
}

/// After a power cut, the log in `dir` is clean and holds records 1..=`last` once, in order.
fn every_record_once_after_a_crash(
    sim: &storage::io::SimDisk,
    disk: std::sync::Arc<dyn storage::io::Disk>,
    dir: &Path,
    last: u64,
) -> Vec<(u64, Vec<u8>)> {
    sim.crash(storage::io::CrashMode::DropUnsynced);
    let (recs, end) = read_all(disk, dir).unwrap();
    assert_eq!(end.tail.state, storage::wal::TailState::Clean);
    let lsns: Vec<u64> = recs.iter().map(|r| r.0).collect();
    assert_eq!(lsns, (1..=last).collect::<Vec<_>>());
    recs
}

#[test]
fn enospc_on_write() {
    run(
        FaultOp::Write,
        FaultKind::NoSpace,
        false,
        FsyncPolicy::Always,
    );
}

#[test]
fn eio_on_write_after_a_short_write() {
    run(FaultOp::Write, FaultKind::Io, true, FsyncPolicy::Always);
}

#[test]
fn enospc_on_fsync() {
    run(
        FaultOp::Sync,
        FaultKind::NoSpace,
        false,
        FsyncPolicy::Always,
    );
}

#[test]
fn eio_on_fsync() {
    run(FaultOp::Sync, FaultKind::Io, false, FsyncPolicy::Always);
}

#[test]
fn eio_on_write_under_everysec() {
    run(FaultOp::Write, FaultKind::Io, true, FsyncPolicy::EverySec);
}

#[test]
fn failure_while_creating_a_segment() {
    let (sim, disk) = sim(12);
    let dir = Path::new("/rot");
    let (w, _) = WalWriter::open(disk.clone(), dir, small_segments()).unwrap();
    let mut n = 0;
    // Fill the first segment, then make the next create fail.
    while w.stats().segments == 1 && n < 15 {
        let l = w.append(&payload(n, 40)).unwrap();
        w.wait_durable(l).unwrap();
        n += 1;
    }
    sim.fail_after(FaultOp::Write, 0, FaultKind::NoSpace);
    let mut failed = None;
    for i in n..n + 40 {
        let l = match w.append(&payload(i, 40)) {
            Ok(l) => l,
            Err(_) => break,
        };
        if w.wait_durable(l).is_err() {
            failed = Some(l);
            break;
        }
    }
    let failed = failed.expect("rotation should have hit the fault");
    sim.clear_faults();
    w.try_recover().unwrap();
    w.wait_durable(failed).unwrap();
    drop(w);
    let (recs, _) = read_all(disk, dir).unwrap();
    assert_eq!(recs.last().unwrap().0, failed.0);
    assert!(recs.iter().enumerate().all(|(i, r)| r.0 == i as u64 + 1));
}

#[test]
fn random_faults_never_acknowledge_lost_records() {
    for seed in 0..8 {
        let (sim, disk) = sim(100 + seed);
        let dir = Path::new("/rnd");
        let (w, _) = WalWriter::open(disk.clone(), dir, small_segments()).unwrap();
        sim.set_short_writes(true);
        sim.fail_with_probability(FaultOp::Write, 50_000, FaultKind::Io);
        sim.fail_with_probability(FaultOp::Sync, 50_000, FaultKind::NoSpace);
        let mut acked = Vec::new();
        let mut sent = std::collections::HashMap::new();
        for i in 0..150 {
            match w.append(&payload(i, 30)) {
                Ok(l) => {
                    sent.insert(l.0, i);
                    if w.wait_durable(l).is_ok() {
                        acked.push(l.0);
                    }
                }
                Err(_) => {
                    // Retry recovery a few times, as an operator's disk comes back.
                    for _ in 0..50 {
                        if w.try_recover().is_ok() {
                            break;
                        }
                    }
                }
            }
        }
        sim.clear_faults();
        let _ = w.try_recover();
        drop(w);
        sim.crash(storage::io::CrashMode::TearUnsynced);
        let (recs, _) = read_all(disk, dir).unwrap();
        let lsns: Vec<u64> = recs.iter().map(|r| r.0).collect();
        assert_eq!(lsns, (1..=lsns.len() as u64).collect::<Vec<_>>());
        for a in &acked {
            assert!(lsns.contains(a), "seed {seed}: acknowledged LSN {a} lost");
        }
        for (lsn, p) in &recs {
            assert_eq!(
                p,
                &payload(sent[lsn], 30),
                "seed {seed}: wrong payload at {lsn}"
            );
        }
    }
}

/// Issue #13 item 6: on a disk that is still full, recovery must not declare the log healthy.
/// Cutting the segment back frees exactly the room the rewrite of the unsynced records needs,
/// so a recovery that only rewrote them succeeded, and the next write failed again: the log
/// flipped between recovered and poisoned. The probe write past the end keeps it poisoned
/// until the disk has room; then one recovery brings back every record, once, in order.
#[test]
fn a_full_disk_keeps_the_log_poisoned_until_it_has_room() {
    let (sim, disk) = sim(12);
    let dir = Path::new("/full");
    let cfg = WalConfig {
        fsync: FsyncPolicy::Always,
        preallocate_bytes: 0,
        ..WalConfig::default()
    };
    let (w, _) = WalWriter::open(disk.clone(), dir, cfg).unwrap();
    for i in 0..10 {
        let l = w.append(&payload(i, 100)).unwrap();
        w.wait_durable(l).unwrap();
    }
    // The disk is full from here: every byte in use, a few hundred more allowed.
    sim.set_capacity(Some(sim.used_bytes() + 300));
    let l = w.append(&payload(10, 2_000)).unwrap();
    assert!(w.wait_durable(l).is_err(), "the write did not fit");
    for _ in 0..3 {
        assert!(
            w.try_recover().is_err(),
            "a disk still full must not look recovered"
        );
        assert!(w.failure().is_some());
        assert_eq!(w.durable_lsn(), Lsn(10));
    }
    sim.set_capacity(None);
    w.try_recover().unwrap();
    w.wait_durable(l).unwrap();
    let l2 = w.append(&payload(11, 20)).unwrap();
    w.wait_durable(l2).unwrap();
    drop(w);
    every_record_once_after_a_crash(&sim, disk, dir, 12);
}
