//! The recovery protocol the server follows, end to end on SimDisk: WAL appends, checkpoints
//! with a redo LSN, `truncate_before`, power cuts, then "load checkpoint + replay WAL from its
//! redo LSN + resume the writer". The recovered map must equal the model of acknowledged
//! writes, and LSNs must keep rising across restarts.

extern crate tierkv_storage as storage;

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use storage::checkpoint::{CheckpointReader, CheckpointWriter};
use storage::io::{CrashMode, Disk};
use storage::wal::{WalConfig, WalReader, WalWriter};
use storage::Lsn;

type Map = BTreeMap<u8, u64>;

fn encode(k: u8, v: u64) -> Vec<u8> {
    let mut b = vec![k];
    b.extend_from_slice(&v.to_le_bytes());
    b
}

fn apply(map: &mut Map, rec: &[u8]) {
    let (k, v) = rec.split_first().unwrap();
    map.insert(*k, u64::from_le_bytes(v.try_into().unwrap()));
}

/// Recovery: returns the map and a writer that continues the log.
fn recover(disk: &Arc<dyn Disk>, dir: &Path, cfg: &WalConfig) -> (Map, WalWriter, Lsn) {
    let mut map = Map::new();
    let mut redo = Lsn(1);
    if let Some((m, r)) = CheckpointReader::open_current(disk.as_ref(), dir).unwrap() {
        for rec in r {
            apply(&mut map, &rec.unwrap());
        }
        redo = m.redo_lsn;
    }
    let mut reader = WalReader::open(disk.clone(), dir, redo).unwrap();
    while let Some(rec) = reader.next_record().unwrap() {
        assert!(rec.lsn >= redo);
        apply(&mut map, &rec.payload);
    }
    let end = reader.end().unwrap().clone();
    let cfg = WalConfig {
        min_next_lsn: redo,
        ..cfg.clone()
    };
    let w = WalWriter::resume(disk.clone(), dir, &end, cfg).unwrap();
    let next = end.next_lsn.max(redo);
    (map, w, next)
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u64),
    Checkpoint,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0u8..16, any::<u64>()).prop_map(|(k, v)| Op::Set(k, v)),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn checkpoint_plus_replay_equals_acknowledged_state(ops in prop::collection::vec(op(), 1..80), seed in any::<u64>()) {
        let (sim, disk) = sim(seed);
        let dir = Path::new("/data");
        let cfg = small_segments();
        let (mut map, mut w, _) = recover(&disk, dir, &cfg);
        let mut model = map.clone();
        let mut last_lsn = Lsn(0);
        let mut ts = 0;
        for op in ops {
            match op {
                Op::Set(k, v) => {
                    let lsn = w.append(&encode(k, v)).unwrap();
                    prop_assert!(lsn > last_lsn, "LSNs must keep rising");
                    last_lsn = lsn;
                    w.wait_durable(lsn).unwrap();
                    model.insert(k, v);
                    map.insert(k, v);
                }
                Op::Checkpoint => {
                    // Every appended record is durable here, so the snapshot holds all
                    // LSNs < next.
                    let redo = Lsn(w.stats().next_lsn.0);
                    ts += 1;
                    let mut c = CheckpointWriter::create(disk.clone(), dir, ts, redo).unwrap();
                    for (k, v) in &map {
                        c.add(&encode(*k, *v)).unwrap();
                    }
                    c.finish().unwrap();
                    w.truncate_before(redo).unwrap();
                }
                Op::Crash => {
                    sim.crash(CrashMode::TearUnsynced);
                    drop(w);
                    let (m, w2, next) = recover(&disk, dir, &cfg);
                    prop_assert_eq!(&m, &model, "recovered state differs from acknowledged writes");
                    prop_assert!(next > last_lsn);
                    map = m;
                    w = w2;
                }
            }
        }
        drop(w);
        sim.crash(CrashMode::DropUnsynced);
        let (m, _, _) = recover(&disk, dir, &cfg);
        prop_assert_eq!(m, model);
    }
}
