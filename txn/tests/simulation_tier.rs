//! Seeded single-threaded simulation of the SSD tier with the WAL and restarts: one simulated
//! disk (`SimDisk`) holds the WAL, the checkpoints and the spill file; random puts, deletes and
//! reads run against a model (key -> value), with misses served as the server serves them
//! (a first miss read through and handed to the retry, a second promoted, a large value's page
//! loaded), interleaved with the tier's ticks, GC, compaction, checkpoints and power cuts
//! (`SimDisk::crash`, torn or dropped unsynced bytes) followed by recovery. Every read, and
//! every key after every restart, must match the model: an acknowledged write (`appendfsync
//! always`) is never lost, and no value read from SSD is ever another's.
//!
//! A failure prints `TIERKV_SEED=<n>`; rerun that history with
//! `TIERKV_SEED=<n> cargo test -p tierkv-txn --test simulation_tier`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use storage::io::{CrashMode, Disk, SimDisk};
use storage::tier::spill::SLOT_BYTES;
use storage::tier::{EvictionPolicy, SpillFile};
use storage::wal::FsyncPolicy;
use tierkv_txn as txn;
use txn::{Durability, DurabilityConfig, Engine, EngineConfig, PageStoreConfig};

const KEYS: u32 = 1500;
const PAGE: u64 = 64 * 1024;

fn key(k: u32) -> Vec<u8> {
    format!("key:{k:05}").into_bytes()
}

/// A value naming its key and generation, 200 B to 3 KB long (a few over 16 KiB, which take a
/// page of their own and are loaded whole on a miss).
fn value(k: u32, generation: u64, rng: &mut StdRng) -> Vec<u8> {
    let len = if rng.gen_range(0..50) == 0 {
        rng.gen_range(17_000..20_000)
    } else {
        rng.gen_range(200..3000)
    };
    format!("{k}/{generation};")
        .bytes()
        .cycle()
        .take(len)
        .collect()
}

struct Sim {
    disk: SimDisk,
    durable: Durability,
    model: BTreeMap<u32, Vec<u8>>,
    generation: u64,
    misses: u64,
    restarts: u64,
}

fn config(disk: &SimDisk) -> DurabilityConfig {
    DurabilityConfig {
        dir: Path::new("/data").to_path_buf(),
        disk: Arc::new(disk.clone()),
        wal: true,
        fsync: FsyncPolicy::Always,
        wal_segment_bytes: 1 << 20,
        wal_load_truncated: false,
        engine: EngineConfig {
            page_store: PageStoreConfig {
                open_page_shards: 1,
                ..PageStoreConfig::default()
            },
            ..EngineConfig::default()
        },
    }
}

/// Opens (recovers) the data directory and attaches a fresh spill file (it holds nothing
/// durable) with room for 4 pages in RAM.
fn open(disk: &SimDisk) -> Durability {
    let (durable, _) = Durability::open(config(disk)).expect("recovery");
    disk.create_dir_all(Path::new("/spill")).unwrap();
    let path = Path::new("/spill/tier.spill");
    let (file, direct) = disk.create_direct(path).unwrap();
    let file = SpillFile::new(file, path.into(), direct, 4096 * SLOT_BYTES as u64);
    assert!(durable
        .engine()
        .attach_spill_file(file, 4 * PAGE, EvictionPolicy::WTinyLfu));
    durable
}

/// `k`'s value as a client of the server would read it: on a miss, fetch what was missed (a
/// read-through is kept for the retry) and run the read again.
fn read(engine: &Engine, k: u32, misses: &mut u64) -> Option<Vec<u8>> {
    let mut kept = Vec::new();
    for _ in 0..16 {
        match engine.with_prefetched(&kept, || engine.get(0, &key(k))) {
            Ok(entry) => return entry.map(|e| e.value.to_vec()),
            Err(error) => {
                let missed = error
                    .value_not_resident()
                    .unwrap_or_else(|| panic!("only misses fail a read: {error}"));
                *misses += 1;
                if let Some(through) = engine.fetch_value(missed).expect("fetch") {
                    kept.push(through);
                }
            }
        }
    }
    panic!("key {k} missed 16 times in a row");
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let disk = SimDisk::new(seed);
        let durable = open(&disk);
        Sim {
            disk,
            durable,
            model: BTreeMap::new(),
            generation: 0,
            misses: 0,
            restarts: 0,
        }
    }

    fn wait_durable(&self, lsn: Option<storage::Lsn>) {
        if let (Some(lsn), Some(wal)) = (lsn, self.durable.wal()) {
            wal.wait_durable(lsn).expect("durable");
        }
    }

    fn engine(&self) -> Engine {
        self.durable.engine().clone()
    }

    fn step(&mut self, rng: &mut StdRng) {
        let engine = self.engine();
        let k = rng.gen_range(0..KEYS);
        match rng.gen_range(0..1000) {
            0..=399 => {
                self.generation += 1;
                let v = value(k, self.generation, rng);
                let info = engine.put(0, &key(k), &v, None).expect("put");
                // Acknowledged once durable, as the server replies.
                self.wait_durable(info.lsn);
                self.model.insert(k, v);
            }
            400..=449 => {
                // DEL reads no value: a cold key is deleted without touching the SSD.
                let (_, info) = engine.delete_one(0, &key(k)).expect("delete");
                self.wait_durable(info.lsn);
                self.model.remove(&k);
            }
            450..=799 => {
                let got = read(&engine, k, &mut self.misses);
                assert_eq!(
                    got.as_deref(),
                    self.model.get(&k).map(Vec::as_slice),
                    "read of key {k}"
                );
            }
            800..=899 => {
                engine.tier_tick();
            }
            900..=939 => {
                engine.gc();
            }
            940..=984 => {
                engine.compact_tick();
                engine.release_retired();
            }
            985..=996 => {
                self.durable.checkpoint().expect("checkpoint");
            }
            _ => self.restart(rng),
        }
    }

    /// A power cut (unsynced bytes dropped or torn), then recovery: every key the model has
    /// reads back exactly, and no other key exists.
    fn restart(&mut self, rng: &mut StdRng) {
        self.restarts += 1;
        let mode = if rng.gen_bool(0.5) {
            CrashMode::DropUnsynced
        } else {
            CrashMode::TearUnsynced
        };
        self.disk.crash(mode);
        self.durable = open(&self.disk);
        let engine = self.engine();
        assert_eq!(
            engine.dbsize(0),
            self.model.len() as u64,
            "keys after restart"
        );
        for (&k, v) in &self.model {
            let got = read(&engine, k, &mut self.misses);
            assert_eq!(got.as_deref(), Some(&v[..]), "key {k} after restart");
        }
    }
}

/// Runs one seed; returns (misses, pages written to SSD, restarts).
fn run_seed(seed: u64, steps: usize) -> (u64, u64, u64) {
    let outcome = std::panic::catch_unwind(|| {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sim = Sim::new(seed);
        let mut written = 0;
        for _ in 0..steps {
            sim.step(&mut rng);
            written = written.max(
                sim.engine()
                    .spill_stats()
                    .map_or(0, |(stats, _)| stats.pages_written),
            );
        }
        sim.restart(&mut rng);
        (sim.misses, written, sim.restarts)
    });
    match outcome {
        Ok(counts) => {
            eprintln!(
                "seed {seed}: {} misses, {} pages written, {} restarts",
                counts.0, counts.1, counts.2
            );
            counts
        }
        Err(panic) => {
            eprintln!("simulation failed: TIERKV_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn simulation_of_the_tier_with_the_wal_and_power_cuts() {
    if let Some(seed) = std::env::var("TIERKV_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run_seed(seed, 4_000);
        return;
    }
    let base: u64 = rand::random();
    let (mut misses, mut written, mut restarts) = (0, 0, 0);
    for i in 0..12 {
        let (m, w, r) = run_seed(base.wrapping_add(i), 4_000);
        misses += m;
        written += w;
        restarts += r;
    }
    assert!(
        misses > 1000 && written > 100 && restarts > 20,
        "the runs exercised the tier: {misses} misses, {written} pages written, {restarts} restarts"
    );
}
