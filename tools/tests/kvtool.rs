//! kvtool end to end on files written by the storage crate's WAL and checkpoint writers.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use storage::checkpoint::CheckpointWriter;
use storage::io::{Disk, FileDisk};
use storage::wal::{WalConfig, WalWriter};
use storage::Lsn;

fn kvtool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvtool"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `zeros`: segments end in zeros written ahead, as the server writes them; without, the last
/// segment ends with its last record (so a test can cut bytes off that record).
fn write_wal(dir: &Path, n: u64, zeros: bool) {
    let disk: Arc<dyn Disk> = Arc::new(FileDisk);
    let cfg = WalConfig {
        segment_bytes: 4096,
        preallocate_bytes: if zeros { 1024 } else { 0 },
        ..WalConfig::default()
    };
    let (w, _) = WalWriter::open(disk, dir, cfg).unwrap();
    for i in 0..n {
        let l = w.append(format!("set key{i} value{i}").as_bytes()).unwrap();
        w.wait_durable(l).unwrap();
    }
    w.close().unwrap();
}

#[test]
fn wal_dump_and_verify_on_an_intact_log() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write_wal(tmp.path(), 300, true);

    let o = kvtool(&["wal", "dump", d, "--json"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let (out, _) = text(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 300);
    assert!(
        lines[0].starts_with("{\"lsn\":1,\"file\":\"wal-00000000000000000001.log\",\"offset\":24,")
    );
    assert!(lines[299].contains("\"lsn\":300"));
    // "set key0 value0" in hex
    assert!(lines[0].contains(
        &"set key0 value0"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));

    let o = kvtool(&["wal", "dump", &format!("{d}/wal-00000000000000000001.log")]);
    assert!(o.status.success());
    let (out, _) = text(&o);
    assert!(
        out.lines().next().unwrap().contains("|set key0 value0|"),
        "{out}"
    );

    let o = kvtool(&["wal", "verify", d]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains("records: 300") && out.contains("status: OK"),
        "{out}"
    );
}

#[test]
fn wal_verify_reports_the_first_bad_offset_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write_wal(tmp.path(), 300, false);
    let seg = tmp.path().join("wal-00000000000000000001.log");
    let mut img = std::fs::read(&seg).unwrap();
    // Damage the payload of the third record (frames are 16 + 17..19 bytes here).
    let third = 24 + 2 * (16 + 15);
    img[third + 16] ^= 0xff;
    std::fs::write(&seg, &img).unwrap();
    let o = kvtool(&["wal", "verify", d]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains(&format!("offset {third}")), "{err}");
    assert!(err.contains("wal-00000000000000000001.log"), "{err}");

    // A torn tail is reported as such, also with exit code 1.
    let tmp2 = tempfile::tempdir().unwrap();
    write_wal(tmp2.path(), 5, false);
    let seg = tmp2.path().join("wal-00000000000000000001.log");
    let img = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &img[..img.len() - 3]).unwrap();
    // The record cut was fsynced (the synced mark says so): not a crash's torn tail.
    let o = kvtool(&["wal", "verify", tmp2.path().to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out.contains("synced mark: lsn 5")
            && err.contains("torn record")
            && err.contains("1 durable records are missing"),
        "{out}{err}"
    );
    // Without the mark (as after a crash that tore an unsynced record), a tail to cut.
    std::fs::remove_file(tmp2.path().join("SYNCED")).unwrap();
    let o = kvtool(&["wal", "verify", tmp2.path().to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("torn record") && err.contains("recovery will cut"),
        "{err}"
    );
    assert!(out.contains("records: 4"), "{out}");
}

#[test]
fn checkpoint_inspect_shows_counts_and_catches_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(FileDisk);
    let info = write_key_records(
        &disk,
        tmp.path(),
        (0..5000u32).map(|i| format!("key{i:05}")),
    );

    let o = kvtool(&["checkpoint", "inspect", d]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("snapshot ts: 77"), "{out}");
    assert!(out.contains("redo lsn: 1234"), "{out}");
    assert!(out.contains("records (keys): 5000"), "{out}");
    assert!(out.contains("checksums: OK"), "{out}");
    assert!(out.contains("matches file: yes"), "{out}");
    assert!(out.contains("exact: one snapshot at ts 77"), "{out}");

    let o = kvtool(&["checkpoint", "inspect", d, "--json"]);
    let (out, _) = text(&o);
    assert!(
        out.contains("\"records\":5000")
            && out.contains("\"status\":\"OK\"")
            && out.contains("\"consistent_ts\":77,\"consistent_lsn\":1234"),
        "{out}"
    );

    let mut img = std::fs::read(&info.path).unwrap();
    img[100] ^= 1;
    std::fs::write(&info.path, &img).unwrap();
    let o = kvtool(&["checkpoint", "inspect", d]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("DAMAGED") && out.contains("offset 40"),
        "{out}"
    );
}

/// A checkpoint of tierkv key records (database 0, value "v") for `keys`, in the given order.
fn write_key_records(
    disk: &Arc<dyn Disk>,
    dir: &std::path::Path,
    keys: impl Iterator<Item = String>,
) -> storage::checkpoint::CheckpointInfo {
    let mut w = CheckpointWriter::create(Arc::clone(disk), dir, 77, Lsn(1234)).unwrap();
    let mut buf = Vec::new();
    for key in keys {
        buf.clear();
        txn::durability::CheckpointEntry {
            db: 0,
            key: key.as_bytes(),
            value: b"v",
            expire_at_ms: None,
            access: None,
        }
        .encode_into(&mut buf);
        w.add(&buf).unwrap();
    }
    w.finish().unwrap()
}

/// What the server's loader refuses, inspect reports as damaged too: records that are not
/// tierkv key records, and keys out of order, each named by its record number.
#[test]
fn checkpoint_inspect_checks_key_records_as_the_loader_does() {
    let disk: Arc<dyn Disk> = Arc::new(FileDisk);
    let tmp = tempfile::tempdir().unwrap();
    write_key_records(
        &disk,
        tmp.path(),
        ["a", "c", "b"].map(String::from).into_iter(),
    );
    let o = kvtool(&["checkpoint", "inspect", tmp.path().to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("DAMAGED") && out.contains("record 2: entries out of (database, key) order"),
        "{out}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut w = CheckpointWriter::create(Arc::clone(&disk), tmp.path(), 5, Lsn(1)).unwrap();
    w.add(b"not a key record").unwrap();
    w.finish().unwrap();
    let o = kvtool(&["checkpoint", "inspect", tmp.path().to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("DAMAGED") && out.contains("record 0:"),
        "{out}"
    );
}

#[test]
fn foreign_files_and_wrong_paths_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let foreign = tmp.path().join("dump.rdb");
    std::fs::write(
        &foreign,
        b"REDIS0011\xfa\x09redis-ver\x057.2.4 and more bytes",
    )
    .unwrap();
    let o = kvtool(&["wal", "dump", foreign.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad magic (not a tierkv WAL segment file)"),
        "{err}"
    );

    let o = kvtool(&["checkpoint", "inspect", foreign.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_ne!(o.status.code(), Some(0));
    assert!(err.contains("not a tierkv checkpoint file"), "{err}");

    let o = kvtool(&["wal", "verify", tmp.path().to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("no WAL segments"), "{err}");

    let o = kvtool(&["checkpoint", "inspect", tmp.path().to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("no MANIFEST"), "{err}");

    let o = kvtool(&["wal", "verify", "/definitely/not/here"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_on_every_command() {
    for args in [
        vec!["--help"],
        vec!["wal", "--help"],
        vec!["wal", "dump", "--help"],
        vec!["wal", "verify", "--help"],
        vec!["checkpoint", "--help"],
        vec!["checkpoint", "inspect", "--help"],
    ] {
        let o = kvtool(&args);
        let (out, _) = text(&o);
        assert!(o.status.success(), "{args:?}");
        assert!(out.contains("Usage: kvtool"), "{args:?}: {out}");
    }
}

#[test]
fn wal_dump_decodes_engine_log_records() {
    use txn::{Bytes, CommitTs, LogOp, LogRecord};
    let tmp = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(FileDisk);
    let (w, _) = WalWriter::open(disk, tmp.path(), WalConfig::default()).unwrap();
    let rec = LogRecord {
        commit_ts: CommitTs(17),
        ops: vec![
            LogOp::Put {
                db: 0,
                key: Bytes::from_static(b"user:1"),
                value: Bytes::from_static(b"alice"),
                expire_at_ms: Some(1_900_000_000_000),
            },
            LogOp::Delete {
                db: 3,
                key: Bytes::from_static(b"bin\x00key"),
            },
        ],
    };
    let l = w.append(&rec.encode()).unwrap();
    w.append(b"not a log record").unwrap();
    w.wait_durable(l).unwrap();
    w.close().unwrap();
    let d = tmp.path().to_str().unwrap();

    let o = kvtool(&["wal", "dump", d]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].ends_with(
            "commit_ts=17 SET db0 \"user:1\" \"alice\" PXAT 1900000000000; DEL db3 \"bin\\x00key\""
        ),
        "{out}"
    );
    assert!(
        lines[1].contains("|not a log record| (not a log record:"),
        "{out}"
    );

    let o = kvtool(&["wal", "dump", d, "--json"]);
    let (out, _) = text(&o);
    let first = out.lines().next().unwrap();
    assert!(
        first.contains("\"record\":{\"commit_ts\":17,\"ops\":[{\"op\":\"put\",\"db\":0,\"key\":{\"len\":6,\"utf8\":\"user:1\""),
        "{first}"
    );
    assert!(first.contains("\"expire_at_ms\":1900000000000"), "{first}");
    assert!(
        out.lines().nth(1).unwrap().contains("\"decode_error\""),
        "{out}"
    );

    let o = kvtool(&["wal", "dump", d, "--raw"]);
    let (out, _) = text(&o);
    assert!(!out.contains("commit_ts="), "{out}");
}
