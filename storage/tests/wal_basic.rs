//! WAL writer and reader on the real file system and on SimDisk: round trips, rotation,
//! truncation below a checkpoint, group commit under many threads.

extern crate tierkv_storage as storage;

mod common;

use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use storage::io::{Disk, FileDisk};
use storage::wal::{FsyncPolicy, TailState, WalConfig, WalReader, WalWriter};
use storage::Lsn;

#[test]
fn round_trip_on_the_real_file_system_and_lsns_continue() {
    let tmp = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(FileDisk);
    let (w, end) = WalWriter::open(disk.clone(), tmp.path(), WalConfig::default()).unwrap();
    assert_eq!(end.next_lsn, Lsn(1));
    let mut last = Lsn(0);
    for i in 0..100 {
        last = w.append(&payload(i, (i % 17) as usize * 3)).unwrap();
    }
    w.wait_durable(last).unwrap();
    assert_eq!(w.durable_lsn(), Lsn(100));
    drop(w);
    let (recs, end) = read_all(disk.clone(), tmp.path()).unwrap();
    assert_eq!(end.tail.state, TailState::Clean);
    assert_eq!(recs.len(), 100);
    for (i, (lsn, p)) in recs.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1);
        assert_eq!(p, &payload(i as u64, (i % 17) * 3));
    }
    let (w, end) = WalWriter::open(disk.clone(), tmp.path(), WalConfig::default()).unwrap();
    assert_eq!(end.next_lsn, Lsn(101));
    assert_eq!(w.append(b"next").unwrap(), Lsn(101));
    w.close().unwrap();
    assert!(w.append(b"after close").is_err());
}

#[test]
fn rotation_and_truncate_before_keep_a_readable_suffix() {
    let (_sim, disk) = sim(1);
    let dir = std::path::Path::new("/data");
    let (w, _) = WalWriter::open(disk.clone(), dir, small_segments()).unwrap();
    for i in 0..200 {
        let lsn = w.append(&payload(i, 40)).unwrap();
        w.wait_durable(lsn).unwrap(); // one batch each, so segments fill predictably
    }
    let segs = storage::wal::list_segments(disk.as_ref(), dir).unwrap();
    assert!(
        segs.len() > 5,
        "expected rotation, got {} segments",
        segs.len()
    );
    assert_eq!(w.stats().segments, segs.len() as u64);
    let removed = w.truncate_before(Lsn(120)).unwrap();
    assert!(removed > 0);
    let segs_after = storage::wal::list_segments(disk.as_ref(), dir).unwrap();
    assert!(segs_after[0].first_lsn <= Lsn(120));
    // Reading from the checkpoint's redo LSN still finds every record from there on.
    let mut r = WalReader::open(disk.clone(), dir, Lsn(120)).unwrap();
    let mut expect = 120;
    while let Some(rec) = r.next_record().unwrap() {
        assert_eq!(rec.lsn.0, expect);
        assert_eq!(rec.payload, payload(expect - 1, 40));
        expect += 1;
    }
    assert_eq!(expect, 201);
    // Reading from before the oldest kept segment is a gap, not silent data loss.
    let err = WalReader::open(disk.clone(), dir, Lsn(5)).err().unwrap();
    assert!(err.to_string().contains("LSN gap"), "{err}");
    drop(w);
    // After everything below a newer checkpoint is gone, LSNs still continue upward.
    let cfg = WalConfig {
        min_next_lsn: Lsn(500),
        ..small_segments()
    };
    let (w, _) = WalWriter::open(disk.clone(), dir, cfg).unwrap();
    let l = w.append(b"x").unwrap();
    assert_eq!(l, Lsn(500));
    w.wait_durable(l).unwrap();
    let (recs, _) = read_all(disk, dir).unwrap();
    assert_eq!(recs, vec![(500, b"x".to_vec())]);
}

/// Every waiter is released only once the record with its LSN is in the durable image.
#[test]
fn group_commit_releases_waiters_only_after_their_record_is_durable() {
    let (sim_disk, disk) = sim(2);
    let dir = std::path::Path::new("/gc");
    let cfg = WalConfig {
        group_commit_records_max: 16,
        ..WalConfig::default()
    };
    let (w, _) = WalWriter::open(disk.clone(), dir, cfg).unwrap();
    let w = Arc::new(w);
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    w.subscribe(Box::new(move |lsn| {
        s2.fetch_max(lsn.0, Ordering::SeqCst);
    }))
    .unwrap();
    let seg = storage::wal::list_segments(disk.as_ref(), dir).unwrap()[0]
        .path
        .clone();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let w = w.clone();
            let sim_disk = sim_disk.clone();
            let seg = seg.clone();
            std::thread::spawn(move || {
                for i in 0..60u64 {
                    let lsn = w.append(&payload(t * 1000 + i, 24)).unwrap();
                    w.wait_durable(lsn).unwrap();
                    let img = sim_disk.durable_contents(&seg).unwrap();
                    assert!(
                        lsns_in_image(&img).contains(&lsn.0),
                        "LSN {} acknowledged before it was durable",
                        lsn.0
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = w.stats();
    assert_eq!(stats.durable_lsn, Lsn(480));
    // Subscribers run on the writer thread, possibly just after waiters wake: join it first.
    w.close().unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 480);
    assert!(stats.fsyncs >= 1 && stats.batches <= 480);
}

/// Backpressure: with a tiny batch bound appends wait for the writer but all complete.
#[test]
fn full_batch_blocks_appends_until_the_writer_drains_it() {
    let (_s, disk) = sim(3);
    let cfg = WalConfig {
        group_commit_bytes_max: 64,
        group_commit_records_max: 2,
        fsync: FsyncPolicy::No,
        ..WalConfig::default()
    };
    let dir = std::path::Path::new("/bp");
    let (w, _) = WalWriter::open(disk.clone(), dir, cfg).unwrap();
    let mut last = Lsn(0);
    for i in 0..500 {
        last = w.append(&payload(i, 30)).unwrap();
    }
    w.wait_durable(last).unwrap();
    drop(w);
    let (recs, _) = read_all(disk, dir).unwrap();
    assert_eq!(recs.len(), 500);
}

#[test]
fn oversized_records_and_unassigned_lsns_are_rejected() {
    let (_s, disk) = sim(4);
    let (w, _) = WalWriter::open(disk, std::path::Path::new("/x"), WalConfig::default()).unwrap();
    let err = w.wait_durable(Lsn(7)).unwrap_err();
    assert!(
        matches!(err, storage::StorageError::LsnNotAssigned { .. }),
        "{err}"
    );
}

#[test]
fn on_durable_fires_once_per_registration_in_every_case() {
    use std::sync::mpsc;
    let (sim_disk, disk) = sim(5);
    let (w, _) = WalWriter::open(disk, std::path::Path::new("/od"), WalConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel::<(u64, bool)>();
    let cb = |n: u64| {
        let tx = tx.clone();
        Box::new(move |r: Result<(), storage::StorageError>| tx.send((n, r.is_ok())).unwrap())
            as storage::wal::DurableCallback
    };
    // Not yet durable: fires later, from the writer thread.
    let l1 = w.append(b"a").unwrap();
    w.on_durable(l1, cb(1));
    assert_eq!(rx.recv().unwrap(), (1, true));
    assert!(w.durable_lsn() >= l1);
    // Already durable: fires at once.
    w.on_durable(l1, cb(2));
    assert_eq!(rx.try_recv().unwrap(), (2, true));
    // Never assigned: an error at once.
    w.on_durable(Lsn(99), cb(3));
    assert_eq!(rx.try_recv().unwrap(), (3, false));
    // Poisoned: an error, and nothing acknowledged.
    sim_disk.fail_after(storage::io::FaultOp::Sync, 0, storage::io::FaultKind::Io);
    let l2 = w.append(b"b").unwrap();
    w.on_durable(l2, cb(4));
    assert_eq!(rx.recv().unwrap(), (4, false));
    sim_disk.clear_faults();
    w.try_recover().unwrap();
    w.on_durable(l2, cb(5));
    assert_eq!(rx.try_recv().unwrap(), (5, true));
    assert!(rx.try_recv().is_err(), "each callback fires exactly once");
}

/// Under `--features sim`, BUGGIFY on the writer thread splits some batches into two writes;
/// the log must read back the same.
#[cfg(feature = "sim")]
#[test]
fn buggify_fires_on_the_writer_thread_and_the_log_stays_intact() {
    let mut fired = false;
    for seed in 0..32 {
        storage::buggify::enable(seed);
        let (sim_disk, disk) = sim(seed);
        let dir = std::path::Path::new("/bug");
        let (w, _) = WalWriter::open(disk.clone(), dir, WalConfig::default()).unwrap();
        let (writes_before, _) = sim_disk.op_counts();
        for i in 0..100 {
            let l = w.append(&payload(i, 20)).unwrap();
            w.wait_durable(l).unwrap();
        }
        let batches = w.stats().batches;
        let (writes_after, _) = sim_disk.op_counts();
        drop(w);
        storage::buggify::disable();
        fired |= writes_after - writes_before > batches;
        let (recs, _) = read_all(disk, dir).unwrap();
        assert_eq!(recs.len(), 100);
    }
    assert!(fired, "no seed made the writer split a batch");
}

/// A payload that differs for every `i`.
fn unique(i: u64) -> Vec<u8> {
    i.to_le_bytes().repeat(3)
}

/// `write_inline` under `everysec`: the caller's own thread writes the batch, so the records
/// are acknowledged when it returns, without the writer thread; and with many threads appending
/// and writing inline beside the writer thread, the log still holds every record once, in LSN
/// order (whoever swaps a batch out writes it before the next is swapped).
#[test]
fn inline_writes_acknowledge_at_once_and_keep_log_order() {
    for policy in [FsyncPolicy::EverySec, FsyncPolicy::No] {
        let tmp = tempfile::tempdir().unwrap();
        let disk: Arc<dyn Disk> = Arc::new(FileDisk);
        let cfg = WalConfig {
            fsync: policy,
            ..WalConfig::default()
        };
        let (w, _) = WalWriter::open(disk.clone(), tmp.path(), cfg.clone()).unwrap();
        // Let the writer thread write the first batch (the segment's first write) and go
        // idle: then a batch's fate is in the caller's hands.
        let first = w.append(&unique(0)).unwrap();
        w.wait_durable(first).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // 40 batches acknowledged by their inline write. A batch is handed to the writer thread
        // instead while that thread holds the I/O lock (its timer's fsync, or preempted with it
        // on a loaded 2-core CI machine, where 27 of 50 was seen): so count to 40 within 500
        // rounds rather than 40 of exactly 50. Without inline writes none is acknowledged.
        let mut inline = 0;
        let mut rounds = 0u64;
        while inline < 40 && rounds < 500 {
            let mut last = Lsn(0);
            for i in 0..10 {
                last = w.append(&unique(1 + rounds * 10 + i)).unwrap();
            }
            w.write_inline();
            inline += u64::from(w.durable_lsn() >= last);
            rounds += 1;
        }
        assert!(
            inline >= 40,
            "{policy:?}: {inline} of {rounds} batches acknowledged by the inline write"
        );
        let w = Arc::new(w);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let w = Arc::clone(&w);
                std::thread::spawn(move || {
                    for i in 0..2_000u64 {
                        let lsn = w.append(&unique(1_000_000 * (t + 1) + i)).unwrap();
                        if i % 3 == 0 {
                            w.write_inline();
                        }
                        if i % 50 == 0 {
                            w.wait_durable(lsn).unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        w.close().unwrap();
        let (recs, _) = read_all(disk.clone(), tmp.path()).unwrap();
        assert_eq!(recs.len() as u64, 1 + rounds * 10 + 8_000, "{policy:?}");
        for (i, (lsn, _)) in recs.iter().enumerate() {
            assert_eq!(*lsn, i as u64 + 1, "{policy:?}: log order");
        }
        let mut seen: Vec<&Vec<u8>> = recs.iter().map(|(_, p)| p).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), recs.len(), "{policy:?}: every record once");
    }
}

/// `backlogged` tells a server, before it commits, that the batch is nearly full because the
/// disk is behind, so it can wait on the connection instead of in `append` inside the commit
/// lock (issue #11 item 2); it clears once the writer takes the batch.
#[test]
fn backlogged_is_set_while_the_disk_is_behind_and_clears_when_it_catches_up() {
    let (sim, disk) = sim(4);
    let cfg = WalConfig {
        group_commit_bytes_max: 4096,
        fsync: FsyncPolicy::Always,
        ..WalConfig::default()
    };
    let dir = std::path::Path::new("/backlog");
    let (w, _) = WalWriter::open(disk.clone(), dir, cfg).unwrap();
    assert!(!w.backlogged());
    let first = w.append(&payload(0, 100)).unwrap();
    // The writer takes the first record and stalls in its fsync; the rest pile up.
    sim.hold_syncs(true);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut last = first;
    while !w.backlogged() {
        last = w.append(&payload(last.0, 100)).unwrap();
        assert!(
            last.0 < 100,
            "3 KiB of a 4 KiB batch set it long before this"
        );
    }
    sim.hold_syncs(false);
    w.wait_durable(last).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while w.backlogged() {
        assert!(std::time::Instant::now() < deadline, "never cleared");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
