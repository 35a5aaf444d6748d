//! Feeds arbitrary bytes to the WAL reader as the only segment of a log, with and without a
//! valid segment header in front. It must never panic; whatever it returns must carry a
//! matching CRC and consecutive LSNs (checked again here).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::Arc;
use storage::io::{Disk, SimDisk};
use storage::wal::record::{encode_segment_header, frame_crc, segment_file_name};
use storage::wal::WalReader;
use storage::Lsn;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let sim = SimDisk::new(0);
    let dir = Path::new("/fuzz");
    let path = dir.join(segment_file_name(Lsn(1)));
    let mut img = if mode & 1 == 1 {
        encode_segment_header(Lsn(1)).to_vec()
    } else {
        Vec::new()
    };
    img.extend_from_slice(body);
    if (&sim as &dyn Disk).create(&path).is_err() || !sim.set_contents(&path, img) {
        return;
    }
    let disk: Arc<dyn Disk> = Arc::new(sim);
    let Ok(mut reader) = WalReader::open(disk, dir, Lsn(0)) else {
        return;
    };
    let mut expected = 1u64;
    while let Ok(Some(rec)) = reader.next_record() {
        assert_eq!(rec.lsn.0, expected);
        let len = u32::try_from(rec.payload.len()).unwrap_or(u32::MAX);
        assert_eq!(frame_crc(len, rec.lsn.0, &rec.payload), rec.crc);
        expected += 1;
    }
});
