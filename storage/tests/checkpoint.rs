//! Checkpoint files and the MANIFEST: streaming round trip, atomic install under crashes and
//! I/O failures at every step, replacement of older checkpoints.

extern crate tierkv_storage as storage;

mod common;

use common::*;
use std::path::Path;
use std::sync::Arc;
use storage::checkpoint::{CheckpointReader, CheckpointWriter, Manifest};
use storage::io::{CrashMode, Disk, FaultKind, FaultOp, FileDisk};
use storage::Lsn;

fn records(n: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| match i % 5 {
            // compressible, incompressible, empty and large records
            0 => vec![b'a'; (i % 300) as usize],
            1 => payload(i * 7919, 100),
            2 => Vec::new(),
            3 => payload(i, 70_000),
            _ => format!("key-{i}:value-{}", i * i).into_bytes(),
        })
        .collect()
}

fn write(
    disk: Arc<dyn Disk>,
    dir: &Path,
    ts: u64,
    recs: &[Vec<u8>],
) -> storage::checkpoint::CheckpointInfo {
    let mut w = CheckpointWriter::create(disk, dir, ts, Lsn(ts * 10)).unwrap();
    for r in recs {
        w.add(r).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn streams_back_every_record_on_the_real_file_system() {
    let tmp = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(FileDisk);
    let recs = records(2000);
    let info = write(disk.clone(), tmp.path(), 42, &recs);
    assert_eq!(info.footer.record_count, 2000);
    assert!(info.footer.block_count > 10);
    let m = Manifest::load(disk.as_ref(), tmp.path()).unwrap().unwrap();
    assert_eq!(m.snapshot_ts, 42);
    assert_eq!(m.redo_lsn, Lsn(420));
    let (m2, mut r) = CheckpointReader::open_current(disk.as_ref(), tmp.path())
        .unwrap()
        .unwrap();
    assert_eq!(m, m2);
    assert_eq!(r.header().snapshot_ts, 42);
    let mut i = 0;
    while let Some(rec) = r.next_record().unwrap() {
        assert_eq!(rec, recs[i], "record {i}");
        i += 1;
    }
    assert_eq!(i, recs.len());
    // No temp files left behind.
    let names = disk.list(tmp.path()).unwrap();
    assert_eq!(
        names,
        vec![
            "MANIFEST".to_string(),
            "ckpt-00000000000000000042.tkc".to_string()
        ]
    );
}

#[test]
fn a_newer_checkpoint_replaces_the_older_one() {
    let (_sim, disk) = sim(1);
    let dir = Path::new("/ck");
    write(disk.clone(), dir, 1, &records(10));
    let info = write(disk.clone(), dir, 2, &records(20));
    assert_eq!(
        info.removed,
        vec![dir.join("ckpt-00000000000000000001.tkc")]
    );
    let (m, r) = CheckpointReader::open_current(disk.as_ref(), dir)
        .unwrap()
        .unwrap();
    assert_eq!(m.snapshot_ts, 2);
    assert_eq!(r.verify().unwrap().footer.record_count, 20);
    // An abandoned checkpoint leaves nothing behind.
    let mut w = CheckpointWriter::create(disk.clone(), dir, 3, Lsn(30)).unwrap();
    w.add(b"x").unwrap();
    drop(w);
    assert_eq!(disk.list(dir).unwrap().len(), 2);
}

/// Inject a failure at every write/sync of `finish`, then cut the power: the MANIFEST names
/// either the old or the new checkpoint, and that checkpoint reads back completely.
#[test]
fn install_is_atomic_under_failures_and_power_cuts() {
    for op in [FaultOp::Write, FaultOp::Sync] {
        for n in 0..12 {
            for mode in [CrashMode::DropUnsynced, CrashMode::TearUnsynced] {
                let (sim, disk) = sim(n);
                let dir = Path::new("/atomic");
                let old = records(30);
                write(disk.clone(), dir, 1, &old);
                let new = records(300);
                sim.fail_after(op, n, FaultKind::Io);
                let result = (|| {
                    let mut w = CheckpointWriter::create(disk.clone(), dir, 2, Lsn(20))?;
                    for r in &new {
                        w.add(r)?;
                    }
                    w.finish()
                })();
                sim.clear_faults();
                sim.crash(mode);
                let (m, r) = CheckpointReader::open_current(disk.as_ref(), dir)
                    .unwrap()
                    .expect("a manifest must survive");
                let got: Vec<Vec<u8>> = r.map(|x| x.unwrap()).collect();
                match m.snapshot_ts {
                    1 => assert_eq!(got, old),
                    2 => assert_eq!(got, new),
                    ts => panic!("unexpected snapshot {ts}"),
                }
                if result.is_ok() && mode == CrashMode::DropUnsynced {
                    assert_eq!(
                        m.snapshot_ts, 2,
                        "a finished checkpoint must survive a crash"
                    );
                }
            }
        }
    }
}

#[test]
fn damage_is_reported_with_file_and_offset() {
    let (sim, disk) = sim(3);
    let dir = Path::new("/dmg");
    let info = write(disk.clone(), dir, 5, &records(50));
    let img = sim.contents(&info.path).unwrap();
    // A flipped byte in the middle of the first block.
    let mut bad = img.clone();
    bad[40 + 30] ^= 0x10;
    sim.set_contents(&info.path, bad);
    let r = CheckpointReader::open(disk.as_ref(), &info.path).unwrap();
    let err = r.verify().unwrap_err().to_string();
    assert!(
        err.contains("ckpt-00000000000000000005.tkc") && err.contains("offset 40"),
        "{err}"
    );
    assert!(err.contains("kvtool checkpoint inspect /dmg"), "{err}");
    // A truncated file.
    sim.set_contents(&info.path, img[..img.len() - 10].to_vec());
    let err = CheckpointReader::open(disk.as_ref(), &info.path)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("footer"), "{err}");
    // A foreign file.
    sim.set_contents(
        &info.path,
        b"REDIS0011 this is an RDB file, not ours..............".to_vec(),
    );
    let err = CheckpointReader::open(disk.as_ref(), &info.path)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bad magic"), "{err}");
}
