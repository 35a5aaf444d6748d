//! Model test: random appends against a `Vec` model, power cuts at random points through
//! SimDisk (with and without torn writes), reopen. Every record acknowledged as durable must be
//! there, in order, byte for byte; nothing else may appear (no half-written record).

extern crate tierkv_storage as storage;

mod common;

use common::*;
use proptest::prelude::*;
use std::path::Path;
use storage::io::CrashMode;
use storage::wal::{FsyncPolicy, WalConfig, WalWriter};

#[derive(Debug, Clone)]
enum Op {
    /// Append a payload of this length; wait for durability if the flag is set.
    Append(usize, bool),
    /// Power cut, then reopen.
    Crash(bool),
    /// Clean close and reopen.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0usize..300, any::<bool>()).prop_map(|(n, w)| Op::Append(n, w)),
        1 => any::<bool>().prop_map(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

/// Zeros written ahead: none, less than a segment, the default (the whole 2 KiB segment).
fn zeros() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(300),
        Just(WalConfig::default().preallocate_bytes)
    ]
}

fn run(ops: Vec<Op>, seed: u64, policy: FsyncPolicy, preallocate_bytes: u64) {
    // With the `sim` feature, BUGGIFY also splits batches into two writes and slows fsyncs.
    storage::buggify::enable(seed);
    let (sim, disk) = sim(seed);
    let dir = Path::new("/model");
    let cfg = WalConfig {
        fsync: policy,
        segment_bytes: 2048,
        preallocate_bytes,
        ..WalConfig::default()
    };
    // model: every payload in LSN order; `acked`: how many of them are acknowledged durable.
    let mut model: Vec<Vec<u8>> = Vec::new();
    let mut acked = 0usize;
    let (mut w, _) = WalWriter::open(disk.clone(), dir, cfg.clone()).unwrap();
    let mut counter = 0u64;
    for op in ops {
        match op {
            Op::Append(len, wait) => {
                counter += 1;
                let p = payload(counter, len);
                let lsn = w.append(&p).unwrap();
                assert_eq!(lsn.0 as usize, model.len() + 1);
                model.push(p);
                if wait {
                    w.wait_durable(lsn).unwrap();
                    acked = model.len();
                }
            }
            Op::Crash(tear) => {
                sim.crash(if tear {
                    CrashMode::TearUnsynced
                } else {
                    CrashMode::DropUnsynced
                });
                drop(w); // the old writer fails against stale handles: that is expected
                let (recs, _) = read_all(disk.clone(), dir).unwrap();
                let durable_floor = if policy == FsyncPolicy::Always {
                    acked
                } else {
                    0
                };
                assert!(recs.len() >= durable_floor, "lost acknowledged records");
                assert!(recs.len() <= model.len());
                for (i, (lsn, p)) in recs.iter().enumerate() {
                    assert_eq!(*lsn, i as u64 + 1);
                    assert_eq!(p, &model[i], "record {lsn} differs");
                }
                model.truncate(recs.len());
                acked = model.len();
                w = WalWriter::open(disk.clone(), dir, cfg.clone()).unwrap().0;
            }
            Op::Reopen => {
                w.close().unwrap();
                drop(w);
                acked = model.len();
                w = WalWriter::open(disk.clone(), dir, cfg.clone()).unwrap().0;
            }
        }
    }
    w.close().unwrap();
    let (recs, _) = read_all(disk, dir).unwrap();
    assert_eq!(recs.len(), model.len());
    for (i, (_, p)) in recs.iter().enumerate() {
        assert_eq!(p, &model[i]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn always_keeps_every_acknowledged_record(ops in prop::collection::vec(op(), 1..60), seed in any::<u64>(), zeros in zeros()) {
        run(ops, seed, FsyncPolicy::Always, zeros);
    }

    #[test]
    fn everysec_and_no_keep_a_clean_prefix(ops in prop::collection::vec(op(), 1..60), seed in any::<u64>(), no in any::<bool>(), zeros in zeros()) {
        run(ops, seed, if no { FsyncPolicy::No } else { FsyncPolicy::EverySec }, zeros);
    }
}
