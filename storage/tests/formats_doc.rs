//! Tidy: docs/FORMATS.md names every magic, version and fixed length the code uses, so the
//! byte tables cannot silently drift from `wal/record.rs` and `checkpoint/format.rs`.

extern crate tierkv_storage as storage;

use storage::checkpoint::{format, manifest};
use storage::wal::record;

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/FORMATS.md")).unwrap()
}

fn magic(m: &[u8]) -> String {
    // As written in the doc: b"..." with \r \n escapes.
    let s: String = m
        .iter()
        .map(|&c| match c {
            b'\r' => "\\r".to_string(),
            b'\n' => "\\n".to_string(),
            c => (c as char).to_string(),
        })
        .collect();
    format!("b\"{s}\"")
}

#[test]
fn every_magic_and_size_is_documented() {
    let d = doc();
    for m in [
        &record::SEGMENT_MAGIC[..],
        &format::CHECKPOINT_MAGIC[..],
        &format::FOOTER_MAGIC[..],
        &manifest::MANIFEST_MAGIC[..],
        &storage::wal::synced::SYNCED_MAGIC[..],
    ] {
        assert!(d.contains(&magic(m)), "FORMATS.md lacks {}", magic(m));
    }
    for (what, len) in [
        ("Segment header", record::SEGMENT_HEADER_LEN),
        ("Record frame", record::RECORD_HEADER_LEN),
        ("File header", format::HEADER_LEN),
        ("Block", format::BLOCK_HEADER_LEN),
        ("Record in a block", format::RECORD_HEADER_LEN),
        ("Footer", format::FOOTER_LEN),
    ] {
        let needle = format!("### {what} ({len}");
        assert!(
            d.contains(&needle),
            "FORMATS.md lacks a heading starting {needle:?}"
        );
    }
    assert_eq!(record::SEGMENT_VERSION, 1);
    assert_eq!(format::CHECKPOINT_VERSION, 1);
    assert_eq!(manifest::MANIFEST_VERSION, 2);
    assert!(d.contains("| 8 | 2 | version | `1` |"));
    assert!(d.contains("| 8 | 2 | version | `2` (`1` is read too"));
}

#[test]
fn every_tail_state_is_in_the_documented_table() {
    let d = doc();
    for s in [
        "Clean",
        "TornRecord",
        "BadChecksum",
        "Garbage",
        "TornSegmentHeader",
        "Gap",
        "CorruptBeforeTail",
    ] {
        assert!(
            d.contains(&format!("| {s} |")),
            "FORMATS.md tail table lacks {s}"
        );
    }
}
