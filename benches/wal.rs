//! WAL append + group-commit throughput: T threads each append a 100-byte record and wait until
//! it is durable, under `FsyncPolicy::Always` and `FsyncPolicy::No`, on the real file system
//! (a temp dir on the disk `TMPDIR` points at).
//!
//! Run: `cargo bench --bench wal` (figures in docs/BENCHMARKS.md § WAL).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::io::{Disk, FileDisk};
use storage::wal::{FsyncPolicy, WalConfig, WalWriter};

const PAYLOAD_BYTES: usize = 100;

fn run(w: &Arc<WalWriter>, threads: u64, iters: u64) -> Duration {
    let per_thread = iters.div_ceil(threads);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let w = Arc::clone(w);
            std::thread::spawn(move || {
                let payload = [7u8; PAYLOAD_BYTES];
                for _ in 0..per_thread {
                    let lsn = w.append(&payload).unwrap();
                    w.wait_durable(lsn).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append_durable");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for policy in [FsyncPolicy::Always, FsyncPolicy::No] {
        for threads in [1u64, 8, 64] {
            let tmp = tempfile::tempdir_in(
                std::env::var("TIERKV_BENCH_DIR").unwrap_or_else(|_| ".".into()),
            )
            .unwrap();
            let disk: Arc<dyn Disk> = Arc::new(FileDisk);
            let cfg = WalConfig {
                fsync: policy,
                ..WalConfig::default()
            };
            let w = Arc::new(WalWriter::open(disk, tmp.path(), cfg).unwrap().0);
            let id = BenchmarkId::new(format!("{policy:?}"), format!("{threads}_threads"));
            group.bench_function(id, |b| b.iter_custom(|iters| run(&w, threads, iters)));
            let s = w.stats();
            eprintln!(
                "{policy:?} {threads} threads: {} records in {} batches ({:.1} records/batch), {} fsyncs, last fsync {} µs",
                s.durable_lsn.0,
                s.batches,
                s.durable_lsn.0 as f64 / s.batches.max(1) as f64,
                s.fsyncs,
                s.last_fsync_micros
            );
        }
    }
    group.finish();
}

/// Recovery read rate: `WalReader` over 200 000 records of 100 bytes (21.6 MB of segments),
/// verifying every CRC, from the page cache.
fn bench_read(c: &mut Criterion) {
    const RECORDS: u64 = 200_000;
    let tmp =
        tempfile::tempdir_in(std::env::var("TIERKV_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .unwrap();
    let disk: Arc<dyn Disk> = Arc::new(FileDisk);
    {
        let cfg = WalConfig {
            fsync: FsyncPolicy::No,
            ..WalConfig::default()
        };
        let (w, _) = WalWriter::open(disk.clone(), tmp.path(), cfg).unwrap();
        let payload = [7u8; PAYLOAD_BYTES];
        for _ in 0..RECORDS {
            w.append(&payload).unwrap();
        }
        w.close().unwrap();
    }
    let mut group = c.benchmark_group("wal_read");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.bench_function("200k_records_100B", |b| {
        b.iter(|| {
            let mut r =
                storage::wal::WalReader::open(disk.clone(), tmp.path(), storage::Lsn(0)).unwrap();
            let mut n = 0u64;
            while let Some(rec) = r.next_record().unwrap() {
                n += rec.payload.len() as u64;
            }
            assert_eq!(n, RECORDS * PAYLOAD_BYTES as u64);
        })
    });
    group.finish();
}

criterion_group!(benches, bench, bench_read);
criterion_main!(benches);
