//! Every row of the WAL tail decision table (`storage::wal::tail`), built as real bytes on disk:
//! what the reader reports, and what `WalWriter::open` (recovery) does about it.

extern crate tierkv_storage as storage;

mod common;

use common::*;
use std::path::{Path, PathBuf};
use storage::io::SimDisk;
use storage::wal::record::{encode_frame, segment_file_name, SEGMENT_HEADER_LEN};
use storage::wal::{TailAction, TailState, WalConfig, WalWriter};
use storage::{Lsn, StorageError};

const DIR: &str = "/tail";

/// These images end where the last record ends: no zeros written ahead (those have their own
/// tests in wal_preallocate.rs).
fn unzeroed() -> WalConfig {
    WalConfig {
        preallocate_bytes: 0,
        ..WalConfig::default()
    }
}

/// A log of three records (10, 20 and 30 payload bytes) in one segment; returns its path.
fn three_records(sim: &SimDisk) -> PathBuf {
    let disk: std::sync::Arc<dyn storage::io::Disk> = std::sync::Arc::new(sim.clone());
    let (w, _) = WalWriter::open(disk, Path::new(DIR), unzeroed()).unwrap();
    for (i, len) in [10, 20, 30].into_iter().enumerate() {
        let l = w.append(&payload(i as u64, len)).unwrap();
        w.wait_durable(l).unwrap();
    }
    drop(w);
    Path::new(DIR).join(segment_file_name(Lsn(1)))
}

/// Offsets of the three frames.
const R1: usize = SEGMENT_HEADER_LEN;
const R2: usize = R1 + 16 + 10;
const R3: usize = R2 + 16 + 20;
const END: usize = R3 + 16 + 30;

fn mutate(sim: &SimDisk, path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut img = sim.contents(path).unwrap();
    f(&mut img);
    assert!(sim.set_contents(path, img));
}

/// Reader outcome, then recovery outcome, for one damaged image.
fn check_recoverable(sim: &SimDisk, state: TailState, offset: usize, records: usize) {
    let (_, disk) = (
        0,
        std::sync::Arc::new(sim.clone()) as std::sync::Arc<dyn storage::io::Disk>,
    );
    let (recs, end) = read_all(disk.clone(), Path::new(DIR)).unwrap();
    assert_eq!(end.tail.state, state);
    assert_eq!(end.tail.offset, offset as u64);
    assert_eq!(recs.len(), records);
    assert_ne!(state.action(), TailAction::Refuse);
    // A crash tears only records no fsync covered; these images damage records the writer
    // had synced, so the synced mark would (rightly) refuse them: drop it, as if they never
    // were. (`wal_synced_mark` below checks the refusal with the mark.)
    let _ = disk.remove(&Path::new(DIR).join(storage::wal::synced::SYNCED_FILE));
    // Recovery repairs it, and the log continues right after the last valid record.
    let (w, _) = WalWriter::open(disk.clone(), Path::new(DIR), unzeroed()).unwrap();
    let l = w.append(b"after").unwrap();
    assert_eq!(l, Lsn(records as u64 + 1));
    w.wait_durable(l).unwrap();
    drop(w);
    let (recs, end) = read_all(disk, Path::new(DIR)).unwrap();
    assert_eq!(end.tail.state, TailState::Clean);
    assert_eq!(recs.len(), records + 1);
    assert_eq!(recs.last().unwrap().1, b"after");
}

fn check_refused(sim: &SimDisk, offset: usize, reason_part: &str) {
    let disk: std::sync::Arc<dyn storage::io::Disk> = std::sync::Arc::new(sim.clone());
    let err = read_all(disk.clone(), Path::new(DIR)).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, StorageError::WalCorrupt { offset: o, .. } if o == offset as u64),
        "{msg}"
    );
    assert!(msg.contains(reason_part), "{msg}");
    assert!(msg.contains("kvtool wal verify /tail"), "{msg}");
    assert!(msg.contains("wal-00000000000000000001.log"), "{msg}");
    let err = WalWriter::open(disk, Path::new(DIR), unzeroed())
        .err()
        .unwrap();
    assert!(matches!(err, StorageError::WalCorrupt { .. }));
}

#[test]
fn clean() {
    let sim = SimDisk::new(1);
    three_records(&sim);
    check_recoverable(&sim, TailState::Clean, END, 3);
}

#[test]
fn torn_record_payload_cut() {
    let sim = SimDisk::new(1);
    let p = three_records(&sim);
    mutate(&sim, &p, |img| img.truncate(END - 5));
    check_recoverable(&sim, TailState::TornRecord, R3, 2);
}

#[test]
fn torn_record_short_header() {
    let sim = SimDisk::new(1);
    let p = three_records(&sim);
    mutate(&sim, &p, |img| img.truncate(R3 + 9));
    check_recoverable(&sim, TailState::TornRecord, R3, 2);
}

#[test]
fn bad_checksum_at_tail() {
    let sim = SimDisk::new(1);
    let p = three_records(&sim);
    mutate(&sim, &p, |img| img[END - 1] ^= 0x40);
    check_recoverable(&sim, TailState::BadChecksum, R3, 2);
}

#[test]
fn garbage_after_valid_records() {
    let sim = SimDisk::new(1);
    let p = three_records(&sim);
    // An all-zero frame header with bytes other than zeros after it is not written-ahead space.
    mutate(&sim, &p, |img| {
        img.extend_from_slice(&[0u8; 40]);
        img.extend_from_slice(&[7u8; 3]);
    });
    check_recoverable(&sim, TailState::Garbage, END, 3);
}

#[test]
fn zeros_after_valid_records_are_a_clean_end() {
    let sim = SimDisk::new(1);
    let p = three_records(&sim);
    // Also shorter than a frame header: the writer zeroes up to the segment size exactly.
    for zeros in [40, 7] {
        mutate(&sim, &p, |img| {
            img.truncate(END);
            img.extend_from_slice(&vec![0u8; zeros]);
        });
        check_recoverable(&sim, TailState::Clean, END, 3);
    }
}

#[test]
fn garbage_with_impossible_length() {
    let sim = SimDisk::new(1);
    let p = three_records(&sim);
    mutate(&sim, &p, |img| img.extend_from_slice(&[0xFF; 20]));
    check_recoverable(&sim, TailState::Garbage, END, 3);
}

#[test]
fn torn_segment_header() {
    let sim = SimDisk::new(1);
    three_records(&sim);
    let next = Path::new(DIR).join(segment_file_name(Lsn(4)));
    let disk: &dyn storage::io::Disk = &sim;
    let f = disk.create(&next).unwrap();
    f.write_at(b"TKVWAL", 0).unwrap();
    let disk: std::sync::Arc<dyn storage::io::Disk> = std::sync::Arc::new(sim.clone());
    let (recs, end) = read_all(disk.clone(), Path::new(DIR)).unwrap();
    assert_eq!(end.tail.state, TailState::TornSegmentHeader);
    assert_eq!(end.tail.state.action(), TailAction::RemoveSegment);
    assert_eq!(recs.len(), 3);
    let (w, _) = WalWriter::open(disk.clone(), Path::new(DIR), unzeroed()).unwrap();
    assert_eq!(w.append(b"x").unwrap(), Lsn(4));
    drop(w);
    assert_eq!(read_all(disk, Path::new(DIR)).unwrap().0.len(), 4);
}

#[test]
fn gap_in_lsns_is_refused() {
    let sim = SimDisk::new(1);
    let p = three_records(&sim);
    mutate(&sim, &p, |img| {
        img.truncate(R3);
        encode_frame(img, Lsn(9), &payload(2, 30));
    });
    check_refused(&sim, R3, "LSN gap: expected 3, found 9");
}

#[test]
fn corruption_before_the_tail_is_refused() {
    let sim = SimDisk::new(1);
    let p = three_records(&sim);
    mutate(&sim, &p, |img| img[R2 + 16 + 3] ^= 1);
    check_refused(&sim, R2, "followed by a valid record");
}

#[test]
fn corrupted_length_before_valid_records_is_refused() {
    // A flipped high bit in a length makes the frame look torn; the valid record after it
    // shows it is not.
    let sim = SimDisk::new(1);
    let p = three_records(&sim);
    mutate(&sim, &p, |img| img[R2 + 2] ^= 0x01);
    check_refused(&sim, R2, "followed by a valid record");
}

#[test]
fn damaged_end_of_an_older_segment_is_refused() {
    let sim = SimDisk::new(1);
    let disk: std::sync::Arc<dyn storage::io::Disk> = std::sync::Arc::new(sim.clone());
    let (w, _) = WalWriter::open(
        disk.clone(),
        Path::new(DIR),
        WalConfig {
            preallocate_bytes: 0,
            ..small_segments()
        },
    )
    .unwrap();
    for i in 0..60 {
        let l = w.append(&payload(i, 40)).unwrap();
        w.wait_durable(l).unwrap();
    }
    drop(w);
    let first = Path::new(DIR).join(segment_file_name(Lsn(1)));
    let len = sim.contents(&first).unwrap().len();
    mutate(&sim, &first, |img| img.truncate(len - 3));
    let err = read_all(disk, Path::new(DIR)).unwrap_err().to_string();
    assert!(err.contains("followed by a later segment"), "{err}");
    assert!(err.contains("kvtool wal verify"), "{err}");
}

#[test]
fn foreign_file_with_a_segment_name_is_refused() {
    let sim = SimDisk::new(1);
    let p = three_records(&sim);
    mutate(&sim, &p, |img| img[..8].copy_from_slice(b"NOTAWAL!"));
    let disk: std::sync::Arc<dyn storage::io::Disk> = std::sync::Arc::new(sim.clone());
    let err = read_all(disk, Path::new(DIR)).unwrap_err().to_string();
    assert!(err.contains("bad magic"), "{err}");
}

/// The same damage to records an fsync covered, with the synced mark in place: recovery
/// refuses (they were durable, no crash tears them), and `load_truncated` goes on without
/// them, leaving a mark that does not complain again.
#[test]
fn wal_synced_mark_refuses_damage_to_synced_records() {
    let sim = SimDisk::new(9);
    let path = three_records(&sim);
    mutate(&sim, &path, |img| img.truncate(R3 + 5));
    let disk: std::sync::Arc<dyn storage::io::Disk> = std::sync::Arc::new(sim.clone());
    let err = match WalWriter::open(disk.clone(), Path::new(DIR), unzeroed()) {
        Err(e) => e,
        Ok(_) => panic!("a log missing a synced record was accepted"),
    };
    assert!(
        matches!(
            err,
            StorageError::WalSyncedRecordsMissing {
                ends_at: Lsn(2),
                synced: Lsn(3),
                ..
            }
        ),
        "{err}"
    );
    let allowed = WalConfig {
        load_truncated: true,
        ..unzeroed()
    };
    let (w, _) = WalWriter::open(disk.clone(), Path::new(DIR), allowed).unwrap();
    drop(w);
    let (w, _) = WalWriter::open(disk, Path::new(DIR), unzeroed()).unwrap();
    let l = w.append(b"after").unwrap();
    assert_eq!(l, Lsn(3), "the lost record's LSN is given again");
}
