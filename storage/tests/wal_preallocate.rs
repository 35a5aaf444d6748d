//! Zeros written ahead of the WAL's write position (`WalConfig::preallocate_bytes`): the reader
//! takes them as the end of a segment, the writer resumes inside them, and zeros never hide a
//! damaged record that valid ones follow.

extern crate tierkv_storage as storage;

mod common;

use common::*;
use std::path::Path;
use std::sync::Arc;
use storage::io::{Disk, FileDisk};
use storage::wal::record::{segment_file_name, SEGMENT_HEADER_LEN};
use storage::wal::{list_segments, TailState, WalConfig, WalWriter};
use storage::Lsn;

fn zeroing(segment_bytes: u64, preallocate_bytes: u64) -> WalConfig {
    WalConfig {
        segment_bytes,
        preallocate_bytes,
        ..WalConfig::default()
    }
}

fn file_len(disk: &dyn Disk, p: &Path) -> u64 {
    disk.open_read(p).unwrap().len().unwrap()
}

#[test]
fn segments_hold_zeros_ahead_and_read_back_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(FileDisk);
    let cfg = zeroing(16 * 1024, 4096);
    let (w, _) = WalWriter::open(disk.clone(), tmp.path(), cfg.clone()).unwrap();
    let first = tmp.path().join(segment_file_name(Lsn(1)));
    let l = w.append(&payload(0, 100)).unwrap();
    w.wait_durable(l).unwrap();
    // One 116-byte frame after the header, then 4 KiB of zeros.
    let valid = SEGMENT_HEADER_LEN as u64 + 116;
    assert_eq!(file_len(disk.as_ref(), &first), valid + 4096);
    assert_eq!(w.stats().log_bytes, valid + 4096);
    for i in 1..400 {
        let l = w.append(&payload(i, 100)).unwrap();
        w.wait_durable(l).unwrap();
    }
    let segs = list_segments(disk.as_ref(), tmp.path()).unwrap();
    assert!(segs.len() >= 3, "{} segments", segs.len());
    let on_disk: u64 = segs.iter().map(|s| file_len(disk.as_ref(), &s.path)).sum();
    assert_eq!(w.stats().log_bytes, on_disk);
    // A full segment is zeroed up to the segment size, never past it.
    assert!(segs
        .iter()
        .all(|s| file_len(disk.as_ref(), &s.path) <= cfg.segment_bytes));
    drop(w);
    let (recs, end) = read_all(disk.clone(), tmp.path()).unwrap();
    assert_eq!(end.tail.state, TailState::Clean);
    assert_eq!(recs.len(), 400);
    for (i, (lsn, p)) in recs.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1);
        assert_eq!(p, &payload(i as u64, 100));
    }
    // The log ends where the zeros begin, and a reopened writer appends right there.
    let last = segs.last().unwrap().path.clone();
    assert!(end.valid_len < file_len(disk.as_ref(), &last));
    let (w, end2) = WalWriter::open(disk.clone(), tmp.path(), cfg).unwrap();
    assert_eq!(end2.next_lsn, Lsn(401));
    let l = w.append(b"resumed").unwrap();
    w.wait_durable(l).unwrap();
    drop(w);
    let (recs, end) = read_all(disk, tmp.path()).unwrap();
    assert_eq!(end.tail.state, TailState::Clean);
    assert_eq!(recs.len(), 401);
    assert_eq!(recs[400], (401, b"resumed".to_vec()));
}

#[test]
fn a_zeroed_header_followed_by_valid_records_is_refused() {
    let (sim, disk) = sim(3);
    let dir = Path::new("/z");
    let (w, _) = WalWriter::open(disk.clone(), dir, zeroing(1 << 20, 8192)).unwrap();
    for i in 0..3 {
        let l = w.append(&payload(i, 30)).unwrap();
        w.wait_durable(l).unwrap();
    }
    drop(w);
    let p = dir.join(segment_file_name(Lsn(1)));
    let mut img = sim.contents(&p).unwrap();
    // Zero the second record's header: the third record after it must not be cut off.
    let second = SEGMENT_HEADER_LEN + 16 + 30;
    img[second..second + 16].fill(0);
    assert!(sim.set_contents(&p, img));
    let err = read_all(disk, dir).unwrap_err().to_string();
    assert!(err.contains("followed by a valid record"), "{err}");
}

#[test]
fn a_torn_record_inside_the_zeros_is_cut_and_the_log_goes_on() {
    let (sim, disk) = sim(4);
    let dir = Path::new("/t");
    let cfg = zeroing(1 << 20, 8192);
    let (w, _) = WalWriter::open(disk.clone(), dir, cfg.clone()).unwrap();
    for i in 0..3 {
        let l = w.append(&payload(i, 30)).unwrap();
        w.wait_durable(l).unwrap();
    }
    drop(w);
    let p = dir.join(segment_file_name(Lsn(1)));
    let mut img = sim.contents(&p).unwrap();
    let end = SEGMENT_HEADER_LEN + 3 * (16 + 30);
    // Half of a fourth frame: its header and 10 of 30 payload bytes; zeros follow.
    let mut frame = Vec::new();
    storage::wal::record::encode_frame(&mut frame, Lsn(4), &payload(3, 30));
    img[end..end + 26].copy_from_slice(&frame[..26]);
    assert!(sim.set_contents(&p, img));
    let (recs, tail) = read_all(disk.clone(), dir).unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(tail.tail.state, TailState::BadChecksum);
    assert_eq!(tail.tail.offset, end as u64);
    let (w, _) = WalWriter::open(disk.clone(), dir, cfg).unwrap();
    let l = w.append(b"four").unwrap();
    assert_eq!(l, Lsn(4));
    w.wait_durable(l).unwrap();
    drop(w);
    let (recs, tail) = read_all(disk, dir).unwrap();
    assert_eq!(tail.tail.state, TailState::Clean);
    assert_eq!(recs.len(), 4);
}
