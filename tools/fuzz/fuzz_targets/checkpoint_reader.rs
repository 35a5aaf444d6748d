//! Feeds arbitrary bytes to the checkpoint reader. It must never panic or allocate beyond the
//! input's size (lengths are checked before allocation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use storage::checkpoint::CheckpointReader;
use storage::io::{Disk, SimDisk};

fuzz_target!(|data: &[u8]| {
    let sim = SimDisk::new(0);
    let path = Path::new("/fuzz/ckpt-00000000000000000001.tkc");
    if (&sim as &dyn Disk).create(path).is_err() || !sim.set_contents(path, data.to_vec()) {
        return;
    }
    let Ok(reader) = CheckpointReader::open(&sim, path) else {
        return;
    };
    for record in reader {
        if record.is_err() {
            break;
        }
    }
});
