//! Engine micro-benchmarks: point get, put, 3-key transaction commit and a 100-key scan through
//! `txn::Engine`, beside a `dashmap` baseline, at 1 M keys (16-byte keys, 32-byte values), on 1
//! and 2 threads; plus a memory report (bytes per key).
//!
//! ```text
//! cargo bench --bench engine                                  # 1 M keys
//! TIERKV_BENCH_KEYS=10000000 cargo bench --bench engine       # the documented longer run
//! TIERKV_BENCH_MEMORY_ONLY=1 TIERKV_BENCH_KEYS=10000000 cargo bench --bench engine        # engine bytes/key
//! TIERKV_BENCH_RATIO_ONLY=1 TIERKV_BENCH_KEYS=10000000 cargo bench --bench engine         # get vs dashmap
//! TIERKV_BENCH_MEMORY_ONLY=dashmap TIERKV_BENCH_KEYS=10000000 cargo bench --bench engine  # baseline
//! TIERKV_BENCH_SCALING=1 cargo bench --bench engine           # 2 threads over 1 (issue #11)
//! TIERKV_BENCH_TIER=1 TIERKV_BENCH_KEYS=2000000 cargo bench --bench engine   # SSD tier tick cost (issue #10)
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use dashmap::DashMap;
use txn::{Engine, EngineConfig, Expiry, Isolation};

const VALUE: [u8; 32] = [b'v'; 32];

fn keys() -> u64 {
    std::env::var("TIERKV_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// `key:` and 12 decimal digits (16 bytes), without allocating.
fn key(mut i: u64) -> [u8; 16] {
    let mut k = *b"key:000000000000";
    for slot in k[4..].iter_mut().rev() {
        *slot = b'0' + (i % 10) as u8;
        i /= 10;
    }
    k
}

use tierkv::cmd::server::info::rss_bytes;

fn load(n: u64) -> Engine {
    let engine = Engine::new(EngineConfig::default());
    let batch = 1_000;
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        engine
            .run(Isolation::Snapshot, |tx| {
                for j in i..end {
                    tx.put(0, &key(j), &VALUE, Expiry::Persist)?;
                }
                Ok(())
            })
            .unwrap();
        i = end;
    }
    while !engine.gc().caught_up {}
    engine
}

/// Prints the RSS growth per key of loading `n` keys into the engine, or (with
/// `TIERKV_BENCH_MEMORY_ONLY=dashmap`) into the dashmap baseline. One structure per process:
/// freed memory stays in the allocator, so a second measurement would be wrong.
fn memory_report(n: u64) {
    if std::env::var("TIERKV_BENCH_MEMORY_ONLY").as_deref() == Ok("dashmap") {
        let before = rss_bytes();
        let map: DashMap<Box<[u8]>, Box<[u8]>> = DashMap::new();
        for i in 0..n {
            map.insert(Box::from(&key(i)[..]), Box::from(&VALUE[..]));
        }
        let after = rss_bytes();
        println!(
            "memory: dashmap<Box<[u8]>, Box<[u8]>> baseline, {n} keys, {:.1} bytes/key",
            (after - before) as f64 / n as f64
        );
        return;
    }
    let before = rss_bytes();
    let engine = load(n);
    let after = rss_bytes();
    let stats = engine.stats();
    println!(
        "memory: {n} keys, rss delta {} bytes = {:.1} bytes/key (values in pages: {} bytes allocated, {} live)",
        after - before,
        (after - before) as f64 / n as f64,
        stats.pages.bytes_allocated,
        stats.pages.bytes_live
    );
    let m = stats.memory;
    println!(
        "memory: used_memory {} bytes = {:.1} bytes/key, {:.3} of the rss delta (index {}, hash index {}, values {}, versions {}, overhead {}, expiry {})",
        m.used_bytes,
        m.used_bytes as f64 / n as f64,
        m.used_bytes as f64 / (after - before) as f64,
        m.index_bytes,
        m.hash_index_bytes,
        m.value_bytes,
        m.version_bytes,
        m.overhead_bytes,
        m.expiry_bytes
    );
}

/// Runs `op` on `threads` threads for `iters` total iterations and returns the wall time.
fn parallel(threads: u64, iters: u64, op: impl Fn(u64) + Sync) -> Duration {
    let counter = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let op = &op;
            let counter = &counter;
            s.spawn(move || {
                let mut i = t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for _ in 0..iters / threads {
                    i = i
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    op(i);
                }
                counter.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    let n = keys();
    let engine = Arc::new(load(n));
    let map: DashMap<Box<[u8]>, Box<[u8]>> = DashMap::new();
    for i in 0..n {
        map.insert(Box::from(&key(i)[..]), Box::from(&VALUE[..]));
    }
    let mut group = c.benchmark_group(format!("engine_{n}_keys"));
    group.throughput(Throughput::Elements(1));
    for threads in [1u64, 2] {
        group.bench_function(format!("dashmap_get/{threads}t"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters * threads, |r| {
                    black_box(map.get(&key(r % n)[..]).map(|v| v.len()));
                }) / threads as u32
            })
        });
        group.bench_function(format!("get_in_open_txn/{threads}t"), |b| {
            b.iter_custom(|iters| {
                let engine = &engine;
                parallel(threads, iters * threads, |r| {
                    thread_local!(static TX: std::cell::RefCell<Option<txn::Transaction>> = const { std::cell::RefCell::new(None) });
                    TX.with(|tx| {
                        let mut tx = tx.borrow_mut();
                        let tx = tx.get_or_insert_with(|| engine.begin(Isolation::Snapshot));
                        black_box(tx.get(0, &key(r % n)).unwrap());
                    });
                }) / threads as u32
            })
        });
        group.bench_function(format!("get_autocommit/{threads}t"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters * threads, |r| {
                    let mut tx = engine.begin(Isolation::Snapshot);
                    black_box(tx.get(0, &key(r % n)).unwrap());
                    tx.commit().unwrap();
                }) / threads as u32
            })
        });
        group.bench_function(format!("put/{threads}t"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters * threads, |r| {
                    let _ = engine.run(Isolation::Snapshot, |tx| {
                        tx.put(0, &key(r % n), &VALUE, Expiry::Persist)
                    });
                }) / threads as u32
            })
        });
        group.bench_function(format!("txn_3_keys/{threads}t"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters * threads, |r| {
                    let _ = engine.run(Isolation::Snapshot, |tx| {
                        for k in 0..3 {
                            let k = key((r + k * 7919) % n);
                            let current = tx.get(0, &k)?;
                            black_box(current);
                            tx.put(0, &k, &VALUE, Expiry::Persist)?;
                        }
                        Ok(())
                    });
                }) / threads as u32
            })
        });
        group.bench_function(format!("scan_100/{threads}t"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters * threads, |r| {
                    let mut tx = engine.begin(Isolation::Snapshot);
                    let start = key(r % n);
                    black_box(tx.scan(0, Some(&start), None, 100).unwrap());
                }) / threads as u32
            })
        });
        // Keep version chains short between rounds, as the server's periodic GC would.
        while !engine.gc().caught_up {}
    }
    group.finish();
}

criterion_group! {
    name = engine_benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = benches
}

/// Point-get ratio engine/dashmap, single thread, measured in alternating rounds so both see
/// the same machine load (this shared build box is noisy); prints the median ns/op of each.
fn ratio_report(n: u64) {
    let engine = load(n);
    let map: DashMap<Box<[u8]>, Box<[u8]>> = DashMap::new();
    for i in 0..n {
        map.insert(Box::from(&key(i)[..]), Box::from(&VALUE[..]));
    }
    let ops = 1_000_000u64;
    let mut tx = engine.begin(Isolation::Snapshot);
    let (mut engine_ns, mut autocommit_ns, mut dashmap_ns) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..7u64 {
        // Advance the engine's access clock (the server does every 10 ms): a round takes about
        // a second, so most gets find a stale LRU clock and store a new one, the worst case.
        engine.expire_tick(0);
        let mut r = round;
        let mut next = || {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            key((r >> 11) % n)
        };
        let start = Instant::now();
        for _ in 0..ops {
            black_box(map.get(&next()[..]).map(|v| v.len()));
        }
        dashmap_ns.push(start.elapsed().as_nanos() as f64 / ops as f64);
        let start = Instant::now();
        for _ in 0..ops {
            black_box(tx.get(0, &next()).unwrap());
        }
        engine_ns.push(start.elapsed().as_nanos() as f64 / ops as f64);
        let start = Instant::now();
        for _ in 0..ops {
            let mut auto = engine.begin(Isolation::Snapshot);
            black_box(auto.get(0, &next()).unwrap());
            auto.commit().unwrap();
        }
        autocommit_ns.push(start.elapsed().as_nanos() as f64 / ops as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (d, e, a) = (
        median(&mut dashmap_ns),
        median(&mut engine_ns),
        median(&mut autocommit_ns),
    );
    println!(
        "ratio: {n} keys, 1 thread: dashmap get {d:.0} ns, engine get in open txn {e:.0} ns ({:.2}x), begin+get+commit {a:.0} ns ({:.2}x)",
        e / d,
        a / d
    );
}

/// Two threads: gets in a long-open transaction vs begin+get+commit (diagnostic).
fn two_thread_probe(n: u64) {
    let engine = load(n);
    for mode in ["open", "autocommit", "open", "autocommit"] {
        let ops = 1_000_000u64;
        let elapsed = parallel(2, 2 * ops, |r| {
            if mode == "open" {
                thread_local!(static TX: std::cell::RefCell<Option<txn::Transaction>> = const { std::cell::RefCell::new(None) });
                TX.with(|tx| {
                    let mut tx = tx.borrow_mut();
                    let tx = tx.get_or_insert_with(|| engine.begin(Isolation::Snapshot));
                    black_box(tx.get(0, &key(r % n)).unwrap());
                });
            } else {
                let mut tx = engine.begin(Isolation::Snapshot);
                black_box(tx.get(0, &key(r % n)).unwrap());
                tx.commit().unwrap();
            }
        });
        println!(
            "probe: {mode}: {:.0} ns/op per thread",
            elapsed.as_nanos() as f64 / ops as f64
        );
    }
}

/// Throughput with 2 threads over 1 thread of `Engine::put` (a blind overwrite of a random key),
/// `Engine::update` (a read-modify-write of one random key: an INCR) and `Engine::get`, at `n`
/// keys: five rounds alternating 1 and 2 threads, medians. Prints one line,
/// `scaling: put 2t/1t=R update 2t/1t=R get 2t/1t=R`, and what it implies by Amdahl's law: the
/// serial part of one op (ns) and the speedup it allows on 16 cores.
fn scaling_report(n: u64) {
    let engine = load(n);
    let ops = 500_000u64;
    let put = |r: u64| {
        engine.put(0, &key(r % n), &VALUE, None).unwrap();
    };
    let update = |r: u64| {
        engine
            .update::<_, txn::TxnError>(0, &key(r % n), true, |current| {
                let next = current.map_or(0, |e| e.value.len() as u64 % 7) + 1;
                let value = bytes::Bytes::from(next.to_string());
                Ok((
                    Some(txn::KeyWrite::Put {
                        value,
                        expiry: Expiry::Persist,
                    }),
                    (),
                ))
            })
            .unwrap();
    };
    let get = |r: u64| {
        black_box(engine.get(0, &key(r % n)).unwrap());
    };
    let ops_list: [(&str, &(dyn Fn(u64) + Sync)); 3] =
        [("put", &put), ("update", &update), ("get", &get)];
    let mut line = String::from("scaling:");
    let mut amdahl = String::new();
    for (name, op) in ops_list {
        let (mut one, mut two) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let t1 = parallel(1, ops, op);
            one.push(ops as f64 / t1.as_secs_f64());
            let t2 = parallel(2, ops, op);
            two.push(ops as f64 / t2.as_secs_f64());
            while !engine.gc().caught_up {}
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let (one, two) = (median(&mut one), median(&mut two));
        let ratio = two / one;
        line.push_str(&format!(" {name} 2t/1t={ratio:.2}"));
        // Amdahl: speedup(2) = 1 / (s + (1 - s) / 2), so s = 2 / speedup - 1.
        let serial = (2.0 / ratio - 1.0).clamp(0.0, 1.0);
        let op_ns = 1e9 / one;
        amdahl.push_str(&format!(
            "\n  {name}: {one:.0} ops/s on 1 thread ({op_ns:.0} ns/op), {two:.0} on 2; serial part {:.0} ns/op ({:.0} %), so at most {:.1}x on 16 cores",
            serial * op_ns,
            serial * 100.0,
            1.0 / (serial + (1.0 - serial) / 16.0)
        ));
    }
    println!("{line}{amdahl}");
}

/// The SSD tier's tick (`Engine::tier_tick`, every 10 ms in the server) at `n` values of
/// 1000 bytes under a 32-page budget, the spill file on an in-memory `SimDisk` (the tick's CPU,
/// not the disk): each of 200 ticks follows 100 overwrites; prints the median and p99 tick.
/// The tick's cost should follow what changed between ticks, not the pages on SSD.
fn tier_tick_report(n: u64) {
    use std::path::Path;
    use storage::io::{Disk, SimDisk};
    use storage::tier::{spill::SLOT_BYTES, EvictionPolicy, SpillFile};
    let engine = Engine::new(EngineConfig::default());
    let disk = SimDisk::new(1);
    disk.create_dir_all(Path::new("/d")).unwrap();
    let path = Path::new("/d/tier.spill");
    let (file, direct) = disk.create_direct(path).unwrap();
    let slots = n / 60 + 1024;
    let file = SpillFile::new(file, path.into(), direct, slots * SLOT_BYTES as u64);
    assert!(engine.attach_spill_file(file, 32 * 65_536, EvictionPolicy::WTinyLfu));
    let value = vec![b'v'; 1000];
    for i in 0..n {
        engine.put(0, &key(i), &value, None).unwrap();
        if i % 50_000 == 0 {
            while engine.tier_tick().spilled > 0 {}
        }
    }
    while engine.tier_tick().spilled > 0 {}
    let mut ticks = Vec::new();
    for round in 0..200u64 {
        for j in 0..100 {
            engine
                .put(0, &key((round * 7919 + j * 104_729) % n), &value, None)
                .unwrap();
        }
        engine.gc();
        let started = Instant::now();
        black_box(engine.tier_tick());
        ticks.push(started.elapsed());
    }
    ticks.sort();
    let pages = engine.stats().pages;
    println!(
        "tier tick: {n} values, {} pages on SSD, {} in RAM: median {:?}, p99 {:?}",
        pages.spilled_pages,
        pages.pages,
        ticks[ticks.len() / 2],
        ticks[ticks.len() * 99 / 100]
    );
}

fn main() {
    if std::env::var("TIERKV_BENCH_TIER").is_ok() {
        tier_tick_report(keys());
        return;
    }
    if std::env::var("TIERKV_BENCH_SCALING").is_ok() {
        scaling_report(keys());
        return;
    }
    if std::env::var("TIERKV_BENCH_PROBE").is_ok() {
        two_thread_probe(keys());
        return;
    }
    if std::env::var("TIERKV_BENCH_RATIO_ONLY").is_ok() {
        ratio_report(keys());
        return;
    }
    memory_report(keys());
    if std::env::var("TIERKV_BENCH_MEMORY_ONLY").is_ok() {
        return;
    }
    engine_benches();
    Criterion::default().configure_from_args().final_summary();
}
