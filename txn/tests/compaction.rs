//! Compaction and relocation through the engine API: values move out of sparse pages while
//! readers, snapshots, chains of old versions, SWAPDB and GC go on, every reader sees the bytes
//! it should, and every value is freed exactly once (the page store's live count returns to
//! what the keyspace holds).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tierkv_txn as txn;
use txn::{CompactionConfig, Engine, EngineConfig, Expiry, Isolation, PageStoreConfig};

/// The value of `key` at `generation`: its bytes name both, so a reader can check what it got.
fn value_of(key: &str, generation: u64, len: usize) -> Vec<u8> {
    let stamp = format!("{key}#{generation}#");
    stamp.bytes().cycle().take(len.max(stamp.len())).collect()
}

/// Mixed sizes, 16..2000 bytes, as the churn workload.
fn len_of(i: usize) -> usize {
    16 + (i * 7919) % 1985
}

fn key(i: usize) -> String {
    format!("key:{i:06}")
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        page_store: PageStoreConfig {
            open_page_shards: 1,
            ..PageStoreConfig::default()
        },
        ..EngineConfig::default()
    })
}

fn put(engine: &Engine, db: u8, key: &str, value: &[u8]) {
    engine.put(db, key.as_bytes(), value, None).unwrap();
}

fn read(engine: &Engine, db: u8, key: &str) -> Option<Vec<u8>> {
    engine
        .get(db, key.as_bytes())
        .unwrap()
        .map(|e| e.value.to_vec())
}

fn gc_all(engine: &Engine) {
    for _ in 0..1000 {
        let done = engine.gc();
        if done.caught_up && done.versions_unlinked == 0 && done.keys_removed == 0 {
            break;
        }
    }
}

fn page_ratio(engine: &Engine) -> f64 {
    let pages = engine.stats().pages;
    pages.bytes_allocated as f64 / pages.bytes_live as f64
}

/// Loads `n` keys, then overwrites every key but each tenth many times: the survivors (never
/// overwritten) pin sparse pages.
fn fragment(engine: &Engine, n: usize) -> HashMap<String, Vec<u8>> {
    let mut expected = HashMap::new();
    for i in 0..n {
        let v = value_of(&key(i), 0, len_of(i));
        put(engine, 0, &key(i), &v);
        expected.insert(key(i), v);
    }
    for generation in 1..=8u64 {
        for i in (0..n).filter(|i| i % 10 != 0) {
            let v = value_of(&key(i), generation, len_of(i + generation as usize));
            put(engine, 0, &key(i), &v);
            expected.insert(key(i), v);
        }
    }
    // Then delete most of the overwritten ones, leaving the survivors scattered.
    for i in (0..n).filter(|i| i % 10 != 0 && i % 3 != 0) {
        engine
            .run(Isolation::Serializable, |tx| {
                tx.delete(0, key(i).as_bytes())
            })
            .unwrap();
        expected.remove(&key(i));
    }
    gc_all(engine);
    expected
}

fn check(engine: &Engine, expected: &HashMap<String, Vec<u8>>) {
    for (k, v) in expected {
        assert_eq!(read(engine, 0, k).as_deref(), Some(&v[..]), "{k}");
    }
    assert_eq!(engine.dbsize(0), expected.len() as u64);
}

#[test]
fn compaction_brings_pages_back_to_the_live_data_and_keeps_every_value() {
    let engine = engine();
    let expected = fragment(&engine, 20_000);
    let before = page_ratio(&engine);
    assert!(before > 2.0, "the workload fragments: ratio {before:.2}");
    let done = engine.compact_now(100);
    assert!(
        done.pages_evacuated > 0 && done.values_moved > 0,
        "{done:?}"
    );
    assert_eq!(
        done.retired_bytes, 0,
        "no snapshot open: old copies freed at once"
    );
    let after = page_ratio(&engine);
    assert!(
        after < 1.3,
        "page bytes / live bytes {after:.3} after compaction (was {before:.2})"
    );
    check(&engine, &expected);
    let stats = engine.compaction_stats();
    assert_eq!(stats.values_moved, done.values_moved);
    assert!(stats.bytes_reclaimed > 0);
    // Everything freed exactly once: deleting all keys leaves no live bytes.
    engine.flush_all().unwrap();
    gc_all(&engine);
    assert_eq!(
        engine.stats().pages.bytes_live,
        0,
        "{:?}",
        engine.stats().pages
    );
}

#[test]
fn an_open_snapshot_keeps_old_copies_and_reads_its_versions_after_relocation() {
    let engine = engine();
    let expected = fragment(&engine, 5_000);
    // A snapshot that reads the current values, and then old versions of the survivors.
    let mut snapshot = engine.begin(Isolation::Snapshot);
    let first = snapshot.get(0, b"key:000000").unwrap().unwrap();
    // Overwrite some survivors: their old versions stay (the snapshot reads them).
    for i in (0..5_000).filter(|i| i % 10 == 0).take(100) {
        put(&engine, 0, &key(i), b"new");
    }
    gc_all(&engine);
    let done = engine.compact_now(100);
    assert!(done.values_moved > 0, "{done:?}");
    assert!(done.retired_bytes > 0, "the snapshot holds the old copies");
    // The snapshot still reads what it saw, from the moved versions.
    for (k, v) in &expected {
        let got = snapshot
            .get(0, k.as_bytes())
            .unwrap()
            .map(|e| e.value.to_vec());
        assert_eq!(got.as_deref(), Some(&v[..]), "{k}");
    }
    assert_eq!(
        first.value,
        snapshot.get(0, b"key:000000").unwrap().unwrap().value
    );
    // Fresh readers see the new values.
    assert_eq!(read(&engine, 0, &key(0)).as_deref(), Some(&b"new"[..]));
    snapshot.abort();
    engine.release_retired();
    assert_eq!(engine.compaction_stats().retired_bytes, 0);
    gc_all(&engine);
    engine.flush_all().unwrap();
    gc_all(&engine);
    assert_eq!(engine.stats().pages.bytes_live, 0);
}

#[test]
fn swapdb_and_ttl_only_changes_share_values_that_move_once() {
    let engine = engine();
    let expected = fragment(&engine, 5_000);
    // A snapshot keeps SWAPDB's moved versions and the TTL-only versions alive as chains.
    let snapshot = engine.begin(Isolation::Snapshot);
    for i in (0..5_000).filter(|i| i % 10 == 0).take(200) {
        engine
            .run(Isolation::Serializable, |tx| {
                tx.set_expiry(0, key(i).as_bytes(), Some(4_000_000_000_000))
            })
            .unwrap();
    }
    engine.swap_db(0, 3).unwrap();
    let done = engine.compact_now(100);
    assert!(done.values_moved > 0);
    for (k, v) in &expected {
        assert_eq!(
            read(&engine, 3, k).as_deref(),
            Some(&v[..]),
            "{k} after SWAPDB"
        );
        assert_eq!(read(&engine, 0, k), None);
    }
    drop(snapshot);
    engine.release_retired();
    gc_all(&engine);
    // Swap back and compact again: values named from both databases' chains move once.
    engine.swap_db(0, 3).unwrap();
    engine.compact_now(100);
    check(&engine, &expected);
    engine.flush_all().unwrap();
    gc_all(&engine);
    engine.release_retired();
    assert_eq!(
        engine.stats().pages.bytes_live,
        0,
        "each value freed exactly once"
    );
}

#[test]
fn paced_ticks_respect_the_thresholds() {
    let engine = engine();
    let expected = fragment(&engine, 20_000);
    engine.set_compaction_config(CompactionConfig {
        enabled: false,
        ..CompactionConfig::default()
    });
    assert_eq!(engine.compact_tick().values_moved, 0, "activedefrag no");
    engine.set_compaction_config(CompactionConfig {
        enabled: true,
        threshold_lower_pct: 10,
        ignore_bytes: 0,
    });
    let mut ticks = 0;
    while page_ratio(&engine) > 1.25 {
        let step = engine.compact_tick();
        assert!(step.bytes_moved <= txn::limits::COMPACT_TICK_BYTES_MAX + 64 * 1024);
        ticks += 1;
        assert!(
            ticks < 1000,
            "ticks do not converge: ratio {}",
            page_ratio(&engine)
        );
    }
    check(&engine, &expected);
    // Below the threshold a tick moves nothing.
    engine.compact_now(100);
    assert_eq!(engine.compact_tick().values_moved, 0);
}

/// Readers, writers, transactions, GC and a compactor on real threads: every read returns a
/// whole value of the key it asked for (a reader that loaded an old place finds the same
/// bytes there until it is done), and nothing is freed twice.
#[test]
fn concurrent_readers_writers_gc_and_compaction_never_see_torn_values() {
    const KEYS: usize = 4_000;
    let engine = engine();
    for i in 0..KEYS {
        put(&engine, 0, &key(i), &value_of(&key(i), 0, len_of(i)));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let generation = Arc::new(AtomicU64::new(1));
    let mut threads = Vec::new();
    for t in 0..2usize {
        let engine = engine.clone();
        let stop = Arc::clone(&stop);
        let generation = Arc::clone(&generation);
        threads.push(std::thread::spawn(move || {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                i = (i * 31 + 7) % KEYS;
                // Overwrite 9 keys in 10 (key % 10 == 0 survive), sometimes in a transaction.
                if i % 10 != 0 {
                    let g = generation.fetch_add(1, Ordering::Relaxed);
                    let v = value_of(&key(i), g, len_of(i + g as usize));
                    if g.is_multiple_of(5) {
                        engine
                            .run(Isolation::Snapshot, |tx| {
                                tx.put(0, key(i).as_bytes(), &v, Expiry::Persist)
                            })
                            .unwrap();
                    } else {
                        put(&engine, 0, &key(i), &v);
                    }
                }
            }
            0u64
        }));
    }
    for t in 0..2usize {
        let engine = engine.clone();
        let stop = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            let mut i = t * 17;
            let mut checked = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i = (i * 13 + 5) % KEYS;
                let k = key(i);
                let check_one = |v: &[u8]| {
                    let text = String::from_utf8_lossy(v);
                    let prefix = format!("{k}#");
                    assert!(text.starts_with(&prefix), "{k}: read {text:.40}");
                    let generation: u64 = text[prefix.len()..]
                        .split('#')
                        .next()
                        .and_then(|g| g.parse().ok())
                        .unwrap_or_else(|| panic!("{k}: torn {text:.60}"));
                    assert_eq!(v, &value_of(&k, generation, v.len())[..], "{k}: torn value");
                };
                if t == 0 {
                    let v = read(&engine, 0, &k).expect("keys are never deleted");
                    check_one(&v);
                } else {
                    // A longer snapshot reading several keys.
                    let mut tx = engine.begin(Isolation::Snapshot);
                    for j in 0..8 {
                        let k2 = key((i + j * 101) % KEYS);
                        let v = tx.get(0, k2.as_bytes()).unwrap().expect("present");
                        let text = String::from_utf8_lossy(&v.value).into_owned();
                        assert!(text.starts_with(&format!("{k2}#")), "{k2}: read {text:.40}");
                    }
                    tx.abort();
                }
                checked += 1;
            }
            checked
        }));
    }
    {
        let engine = engine.clone();
        let stop = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            let mut moved = 0;
            while !stop.load(Ordering::Relaxed) {
                engine.gc();
                moved += engine.compact_now(90).values_moved;
            }
            moved
        }));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let results: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let moved = results.last().copied().unwrap_or(0);
    assert!(moved > 0, "the compactor moved values while the others ran");
    gc_all(&engine);
    engine.release_retired();
    for i in 0..KEYS {
        let v = read(&engine, 0, &key(i)).unwrap();
        assert!(v.starts_with(format!("{}#", key(i)).as_bytes()));
    }
    engine.flush_all().unwrap();
    gc_all(&engine);
    engine.release_retired();
    assert_eq!(
        engine.stats().pages.bytes_live,
        0,
        "each value freed exactly once"
    );
}
