//! `kvtool replay` (point-in-time recovery) and `kvtool get` on a data directory written by the
//! engine's own durability layer: checkpoint + WAL tail, exactly as the server leaves it.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use storage::io::FileDisk;
use storage::wal::FsyncPolicy;
use txn::{Durability, DurabilityConfig, EngineConfig, Expiry, Isolation};

fn kvtool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvtool"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "kvtool failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn open(dir: &Path) -> Durability {
    Durability::open(DurabilityConfig {
        dir: dir.to_path_buf(),
        disk: Arc::new(FileDisk),
        wal: true,
        fsync: FsyncPolicy::Always,
        wal_segment_bytes: 1 << 20,
        wal_load_truncated: false,
        engine: EngineConfig::default(),
    })
    .unwrap()
    .0
}

fn set(d: &Durability, db: u8, key: &str, value: &str) -> u64 {
    let (_, info) = d
        .engine()
        .run(Isolation::Serializable, |tx| {
            tx.put(db, key.as_bytes(), value.as_bytes(), Expiry::Persist)
        })
        .unwrap();
    d.wal().unwrap().wait_durable(info.lsn.unwrap()).unwrap();
    info.commit_ts.unwrap().0
}

#[test]
fn replay_to_a_point_in_time_and_read_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let d = open(&src);
    set(&d, 0, "a", "1");
    d.checkpoint().unwrap();
    set(&d, 0, "b", "2");
    let cut = set(&d, 5, "c", "3");
    set(&d, 0, "a", "overwritten");
    set(&d, 0, "late", "x");
    d.close().unwrap();
    drop(d);
    let src_s = src.to_str().unwrap();

    // Offline reads see the whole history.
    assert_eq!(
        stdout(&kvtool(&["get", src_s, "a"])).trim(),
        "\"overwritten\""
    );
    assert_eq!(
        stdout(&kvtool(&["get", src_s, "c", "--db", "5"])).trim(),
        "\"3\""
    );
    assert_eq!(stdout(&kvtool(&["get", src_s, "nope"])).trim(), "(nil)");

    // Point in time: everything up to commit `cut`, nothing after.
    let out = tmp.path().join("pitr");
    let out_s = out.to_str().unwrap();
    let report = stdout(&kvtool(&[
        "replay",
        src_s,
        "--until",
        &format!("ts:{cut}"),
        "--out",
        out_s,
    ]));
    assert!(report.contains("wrote 3 keys"), "{report}");
    assert_eq!(stdout(&kvtool(&["get", out_s, "a"])).trim(), "\"1\"");
    assert_eq!(stdout(&kvtool(&["get", out_s, "b"])).trim(), "\"2\"");
    assert_eq!(stdout(&kvtool(&["get", out_s, "late"])).trim(), "(nil)");

    // The new directory is a working data directory: the engine opens it and goes on.
    let d = open(&out);
    assert_eq!(d.engine().dbsize(0), 2);
    assert_eq!(d.engine().dbsize(5), 1);
    set(&d, 0, "after", "ok");
    d.close().unwrap();
    drop(d);
    assert_eq!(stdout(&kvtool(&["get", out_s, "after"])).trim(), "\"ok\"");

    // The source is untouched and a second replay into the same place is refused.
    assert_eq!(stdout(&kvtool(&["get", src_s, "late"])).trim(), "\"x\"");
    let again = kvtool(&["replay", src_s, "--out", out_s]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a data directory"));
}

#[test]
fn replay_by_lsn_and_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let d = open(&src);
    for i in 0..10 {
        set(&d, 0, &format!("k{i}"), "v");
    }
    d.close().unwrap();
    drop(d);
    let out = tmp.path().join("first4");
    let report = stdout(&kvtool(&[
        "replay",
        src.to_str().unwrap(),
        "--until",
        "lsn:4",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(report.contains("wrote 4 keys"), "{report}");
    let bad = kvtool(&[
        "replay",
        src.to_str().unwrap(),
        "--until",
        "when:3",
        "--out",
        "x",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let missing = kvtool(&["get", tmp.path().join("nowhere").to_str().unwrap(), "k"]);
    assert_eq!(missing.status.code(), Some(2));
}

/// A stop before the installed checkpoint cannot be reached from this directory (the records
/// before it are gone): refused, naming the earliest point that can be, and nothing written
/// (issue #13, item 10: it used to write the checkpoint's state and exit 0).
#[test]
fn replay_to_a_point_before_the_checkpoint_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let d = open(&src);
    let early = set(&d, 0, "a", "1");
    set(&d, 0, "a", "2");
    let ck = d.checkpoint().unwrap();
    set(&d, 0, "b", "3");
    d.close().unwrap();
    drop(d);
    let out = tmp.path().join("pitr");
    let refused = kvtool(&[
        "replay",
        src.to_str().unwrap(),
        "--until",
        &format!("ts:{early}"),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot stop at commit ts {early}"))
            && err.contains(&format!("exact only from commit ts {}", ck.snapshot_ts)),
        "{err}"
    );
    assert!(!out.join("MANIFEST").exists());
    // The checkpoint itself is a reachable point.
    let at = stdout(&kvtool(&[
        "replay",
        src.to_str().unwrap(),
        "--until",
        &format!("ts:{}", ck.snapshot_ts),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(at.contains("wrote 1 keys"), "{at}");
}
