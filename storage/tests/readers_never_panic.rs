//! Arbitrary bytes and random bit flips fed to the WAL reader (and, below, the checkpoint
//! reader): they report, never panic, and never return a record that was not written. This is
//! the CI stand-in for the cargo-fuzz targets in tools/fuzz.

extern crate tierkv_storage as storage;

mod common;

use common::*;
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;
use storage::io::{Disk, SimDisk};
use storage::wal::record::{encode_segment_header, segment_file_name};
use storage::wal::{WalReader, WalWriter};
use storage::Lsn;

fn read_everything(disk: Arc<dyn Disk>, dir: &Path) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let mut r = WalReader::open(disk, dir, Lsn(0)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => out.push((rec.lsn.0, rec.payload)),
            Ok(None) => return Ok(out),
            Err(e) => return Err(e.to_string()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn wal_reader_survives_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..2048), with_header in any::<bool>()) {
        let sim = SimDisk::new(0);
        let dir = Path::new("/fz");
        let path = dir.join(segment_file_name(Lsn(1)));
        let mut img = if with_header { encode_segment_header(Lsn(1)).to_vec() } else { Vec::new() };
        img.extend_from_slice(&body);
        let d: &dyn Disk = &sim;
        d.create(&path).unwrap();
        sim.set_contents(&path, img);
        let _ = read_everything(Arc::new(sim), dir);
    }

    #[test]
    fn wal_bit_flips_are_reported_never_invented(flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4), cut in any::<prop::sample::Index>(), do_cut in any::<bool>()) {
        let (sim, disk) = sim(5);
        let dir = Path::new("/flip");
        let (w, _) = WalWriter::open(disk.clone(), dir, small_segments()).unwrap();
        let mut written = Vec::new();
        for i in 0..40u64 {
            let p = payload(i, (i % 7) as usize * 9);
            let l = w.append(&p).unwrap();
            w.wait_durable(l).unwrap();
            written.push(p);
        }
        drop(w);
        let segs = storage::wal::list_segments(disk.as_ref(), dir).unwrap();
        let seg = &segs[flips[0].0.index(segs.len())].path;
        let mut img = sim.contents(seg).unwrap();
        for (at, bit) in &flips {
            let i = at.index(img.len());
            img[i] ^= 1 << bit;
        }
        if do_cut {
            img.truncate(cut.index(img.len() + 1));
        }
        sim.set_contents(seg, img);
        match read_everything(disk, dir) {
            Ok(recs) => {
                // Whatever is returned is a prefix of what was written.
                for (i, (lsn, p)) in recs.iter().enumerate() {
                    prop_assert_eq!(*lsn, i as u64 + 1);
                    prop_assert_eq!(p, &written[i]);
                }
            }
            Err(msg) => prop_assert!(msg.contains("kvtool"), "{}", msg),
        }
    }
}

mod checkpoint_reader {
    use super::*;
    use storage::checkpoint::{CheckpointReader, CheckpointWriter};

    fn drain(disk: &dyn Disk, path: &Path) -> Result<Vec<Vec<u8>>, String> {
        let r = CheckpointReader::open(disk, path).map_err(|e| e.to_string())?;
        r.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn survives_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..4096)) {
            let sim = SimDisk::new(0);
            let path = Path::new("/c/ckpt-00000000000000000001.tkc");
            let d: &dyn Disk = &sim;
            d.create(path).unwrap();
            sim.set_contents(path, body);
            let _ = drain(&sim, path);
        }

        #[test]
        fn every_bit_flip_is_detected(flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4), cut in any::<prop::sample::Index>(), do_cut in any::<bool>()) {
            let (sim, disk) = sim(9);
            let dir = Path::new("/c");
            let mut w = CheckpointWriter::create(disk.clone(), dir, 1, Lsn(1)).unwrap();
            for i in 0..300u64 {
                w.add(&payload(i % 13, (i % 50) as usize * 11)).unwrap();
            }
            let info = w.finish().unwrap();
            let img = sim.contents(&info.path).unwrap();
            let mut bad = img.clone();
            for (at, bit) in &flips {
                let i = at.index(bad.len());
                bad[i] ^= 1 << bit;
            }
            if do_cut {
                bad.truncate(cut.index(bad.len()));
            }
            prop_assume!(bad != img);
            sim.set_contents(&info.path, bad);
            let r = drain(disk.as_ref(), &info.path);
            prop_assert!(r.is_err(), "damage went unnoticed");
        }
    }
}
