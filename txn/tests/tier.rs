//! The SSD tier's driver through the engine API: sealed value pages over the RAM budget go to
//! the spill file, their values read as `NotResident` until the page is loaded, their frames
//! go back to the OS only once no snapshot that saw them resident is open, a checkpoint's
//! snapshot reads them in place, and a hot set that fits stays in RAM.

use std::path::Path;

use storage::io::{Disk, SimDisk};
use storage::tier::spill::SLOT_BYTES;
use storage::tier::{EvictionPolicy, SpillFile};
use tierkv_txn as txn;
use txn::{Engine, EngineConfig, Isolation, PageStoreConfig};

const PAGE: u64 = 64 * 1024;

fn engine_with_tier(budget_pages: u64, policy: EvictionPolicy) -> Engine {
    engine_with_tier_on(&SimDisk::new(5), budget_pages, policy)
}

/// [`engine_with_tier`] with its spill file on `disk` (a test that injects faults keeps it).
fn engine_with_tier_on(disk: &SimDisk, budget_pages: u64, policy: EvictionPolicy) -> Engine {
    let engine = Engine::new(EngineConfig {
        page_store: PageStoreConfig {
            open_page_shards: 1,
            ..PageStoreConfig::default()
        },
        ..EngineConfig::default()
    });
    disk.create_dir_all(Path::new("/d")).unwrap();
    let path = Path::new("/d/tier.spill");
    let (file, direct) = disk.create_direct(path).unwrap();
    let file = SpillFile::new(file, path.into(), direct, 4096 * SLOT_BYTES as u64);
    assert!(engine.attach_spill_file(file, budget_pages * PAGE, policy));
    engine
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i:06}-")
        .bytes()
        .cycle()
        .take(1000)
        .collect()
}

fn key(i: usize) -> String {
    format!("key:{i:06}")
}

/// The first key (of `0..n`) whose value is on SSD: which pages the policy keeps in RAM
/// depends on the order it met them in.
fn first_cold(engine: &Engine, n: usize) -> usize {
    (0..n)
        .find(|&i| engine.get(0, key(i).as_bytes()).is_err())
        .expect("some value is on SSD")
}

/// A read as the server will do it: on `NotResident`, load the page and run it again.
fn get_loading(engine: &Engine, key: &str) -> (Option<Vec<u8>>, u32) {
    let mut loads = 0;
    loop {
        match engine.get(0, key.as_bytes()) {
            Ok(entry) => return (entry.map(|e| e.value.to_vec()), loads),
            Err(error) => {
                let page = error.page_not_resident().expect("only misses fail");
                engine.load_page(page).unwrap();
                loads += 1;
                assert!(loads < 10, "a loaded page stays long enough to read");
            }
        }
    }
}

#[test]
fn pages_over_the_budget_go_to_ssd_and_every_value_reads_back_exactly() {
    let engine = engine_with_tier(8, EvictionPolicy::WTinyLfu);
    let n = 4000; // about 62 pages of 1 KiB values
    for i in 0..n {
        engine.put(0, key(i).as_bytes(), &value(i), None).unwrap();
    }
    let stats = engine.tier_tick();
    assert!(stats.spilled >= 40, "{stats:?}");
    assert!(
        stats.frames_released >= 40,
        "no snapshot open: frames go at once"
    );
    let pages = engine.stats().pages;
    assert!(pages.spilled_pages >= 40, "{pages:?}");
    assert!(
        pages.pages <= 8 + 2 + 8,
        "resident: the budget, the open pages and the free reserve: {pages:?}"
    );
    let mut loads = 0;
    for i in 0..n {
        let (got, l) = get_loading(&engine, &key(i));
        assert_eq!(got.as_deref(), Some(&value(i)[..]), "{}", key(i));
        loads += l;
    }
    assert!(loads > 0, "some reads missed");
    // Loaded pages are over the budget again: the next tick sends pages back out.
    assert!(engine.tier_tick().spilled > 0);
}

#[test]
fn a_spilled_frame_waits_for_the_snapshots_that_may_have_seen_it_resident() {
    let engine = engine_with_tier(4, EvictionPolicy::WTinyLfu);
    for i in 0..2000 {
        engine.put(0, key(i).as_bytes(), &value(i), None).unwrap();
    }
    let reader = engine.begin(Isolation::Snapshot);
    let stats = engine.tier_tick();
    assert!(stats.spilled > 0);
    assert_eq!(
        stats.frames_released, 0,
        "the open snapshot may hold a frame"
    );
    assert_eq!(engine.tier_tick().frames_released, 0);
    reader.abort();
    let stats = engine.tier_tick();
    assert!(stats.frames_released > 0, "{stats:?}");
    assert_eq!(stats.awaiting_release, 0);
}

#[test]
fn a_snapshot_reads_spilled_values_after_loading_and_deletes_free_ssd_slots() {
    let engine = engine_with_tier(4, EvictionPolicy::WTinyLfu);
    for i in 0..2000 {
        engine.put(0, key(i).as_bytes(), &value(i), None).unwrap();
    }
    engine.tier_tick();
    // Overwrite and delete everything: the values on SSD die, their slots go.
    for i in 0..2000 {
        if i % 2 == 0 {
            engine.put(0, key(i).as_bytes(), b"new", None).unwrap();
        } else {
            // The update reads the value it decides on: a miss loads the page and runs it
            // again, as the server will (DEL needing no value bytes is the miss path's work).
            loop {
                let deleted =
                    engine.update::<_, txn::TxnError>(0, key(i).as_bytes(), false, |_| {
                        Ok((Some(txn::KeyWrite::Delete), ()))
                    });
                match deleted {
                    Ok(_) => break,
                    Err(error) => engine
                        .load_page(error.page_not_resident().unwrap())
                        .unwrap(),
                }
            }
        }
    }
    while !engine.gc().caught_up {}
    let pages = engine.stats().pages;
    assert_eq!(pages.spilled_pages, 0, "{pages:?}");
    for i in (0..2000).step_by(2) {
        assert_eq!(
            get_loading(&engine, &key(i)).0.as_deref(),
            Some(&b"new"[..])
        );
    }
}

/// Keys read over and over keep their pages in RAM while a stream of new values, larger than
/// the budget, passes through between their reads (W-TinyLFU admits a new page only if it is
/// read more often than the coldest resident one); under LRU the stream pushes them out.
fn hot_keys_resident_after_a_stream(policy: EvictionPolicy) -> usize {
    let engine = engine_with_tier(16, policy);
    let hot = 640; // 10 pages
    for i in 0..hot {
        engine.put(0, key(i).as_bytes(), &value(i), None).unwrap();
    }
    let mut next = hot;
    for _round in 0..30 {
        for i in 0..hot {
            get_loading(&engine, &key(i));
        }
        engine.tier_tick();
        for _ in 0..1500 {
            engine
                .put(0, key(next).as_bytes(), &value(next), None)
                .unwrap();
            next += 1;
            if next % 250 == 0 {
                engine.tier_tick();
            }
        }
        engine.tier_tick();
    }
    // Resident now: the reads that need no load.
    (0..hot)
        .filter(|i| engine.get(0, key(*i).as_bytes()).is_ok())
        .count()
}

#[test]
fn a_hot_set_that_fits_stays_in_ram_under_tinylfu_not_under_lru() {
    let tinylfu = hot_keys_resident_after_a_stream(EvictionPolicy::WTinyLfu);
    let lru = hot_keys_resident_after_a_stream(EvictionPolicy::Lru);
    assert!(tinylfu >= 600, "W-TinyLFU kept {tinylfu} of 640 hot keys");
    assert!(lru < tinylfu, "LRU kept {lru}, W-TinyLFU {tinylfu}");
}

/// A checkpoint reads values on SSD in place (its scan may block; loading pages would flush
/// the hot set) and a restart from it gives every value back exactly.
#[test]
fn a_checkpoint_reads_spilled_values_in_place_and_a_restart_has_them_all() {
    use std::sync::Arc;
    use storage::wal::FsyncPolicy;
    use txn::{Durability, DurabilityConfig};
    let disk = SimDisk::new(9);
    let dir = Path::new("/data");
    let config = || DurabilityConfig {
        dir: dir.to_path_buf(),
        disk: Arc::new(disk.clone()),
        wal: true,
        fsync: FsyncPolicy::Always,
        wal_segment_bytes: 1 << 20,
        wal_load_truncated: false,
        engine: EngineConfig::default(),
    };
    let (durable, _) = Durability::open(config()).unwrap();
    disk.create_dir_all(Path::new("/d")).unwrap();
    let path = Path::new("/d/tier.spill");
    let (file, direct) = disk.create_direct(path).unwrap();
    let file = SpillFile::new(file, path.into(), direct, 4096 * SLOT_BYTES as u64);
    let engine = durable.engine().clone();
    assert!(engine.attach_spill_file(file, 4 * PAGE, EvictionPolicy::WTinyLfu));
    for i in 0..3000 {
        engine.put(0, key(i).as_bytes(), &value(i), None).unwrap();
    }
    assert!(engine.tier_tick().spilled > 20);
    let spilled_before = engine.stats().pages.spilled_pages;
    let report = durable.checkpoint().unwrap();
    assert_eq!(report.keys, 3000);
    assert_eq!(
        engine.stats().pages.spilled_pages,
        spilled_before,
        "the checkpoint loaded no page"
    );
    durable.close().unwrap();
    drop(engine);
    drop(durable);
    let (durable, _) = Durability::open(config()).unwrap();
    for i in 0..3000 {
        let got = durable.engine().get(0, key(i).as_bytes()).unwrap().unwrap();
        assert_eq!(&got.value[..], &value(i)[..], "{}", key(i));
    }
}

/// What needs no value bytes never fails `NotResident`: existence, type, length and deadline
/// come from the index; deleting or changing the deadline of a cold key reads no value.
#[test]
fn metadata_reads_deletes_and_deadlines_never_miss() {
    let engine = engine_with_tier(4, EvictionPolicy::WTinyLfu);
    for i in 0..2000 {
        engine.put(0, key(i).as_bytes(), &value(i), None).unwrap();
    }
    assert!(engine.tier_tick().spilled > 0);
    let cold = key(first_cold(&engine, 2000));
    assert!(engine
        .get(0, cold.as_bytes())
        .unwrap_err()
        .page_not_resident()
        .is_some());
    let mut tx = engine.begin(Isolation::Snapshot);
    let meta = tx.peek_meta(0, cold.as_bytes()).unwrap().unwrap();
    assert_eq!(meta.len, 1000);
    assert_eq!(tx.get_meta(0, cold.as_bytes()).unwrap().unwrap().len, 1000);
    tx.abort();
    let spilled = engine.stats().pages.spilled_pages;
    engine
        .run(Isolation::Serializable, |tx| {
            tx.set_expiry(0, key(1).as_bytes(), Some(u64::MAX / 2))
        })
        .unwrap();
    assert!(engine.delete_one(0, key(2).as_bytes()).unwrap().0);
    engine
        .run(Isolation::Serializable, |tx| {
            tx.delete(0, key(3).as_bytes())
        })
        .unwrap();
    assert_eq!(
        engine.stats().pages.spilled_pages,
        spilled,
        "no page was loaded"
    );
    assert_eq!(
        get_loading(&engine, &key(1)).0.as_deref(),
        Some(&value(1)[..]),
        "the value keeps its bytes under its new deadline"
    );
    assert_eq!(get_loading(&engine, &key(2)).0, None);
    assert_eq!(get_loading(&engine, &key(3)).0, None);
}

/// A miss on a small value reads its blocks from SSD and promotes it alone: the value comes
/// back into a RAM page (every version re-pointed, as compaction moves values), its page stays
/// on SSD, and an open snapshot still reads its own version.
#[test]
fn a_missed_small_value_is_read_through_once_then_promoted_alone_and_its_page_stays_on_ssd() {
    let engine = engine_with_tier(4, EvictionPolicy::WTinyLfu);
    for i in 0..2000 {
        engine.put(0, key(i).as_bytes(), &value(i), None).unwrap();
    }
    assert!(engine.tier_tick().spilled > 0);
    let i = first_cold(&engine, 2000);
    let cold = key(i);
    let mut snapshot = engine.begin(Isolation::Snapshot);
    let miss = engine.get(0, cold.as_bytes()).unwrap_err();
    let place = miss.value_not_resident().expect("a miss names the value");
    let spilled = engine.stats().pages.spilled_pages;
    let live = engine.stats().pages.bytes_live;
    // First miss: read through for this command's retry only; nothing moves.
    let through = engine
        .fetch_value(place)
        .unwrap()
        .expect("a first miss is read through");
    assert_eq!(engine.stats().pages.bytes_live, live, "nothing promoted");
    let retried = engine.with_prefetched(std::slice::from_ref(&through), || {
        engine.get(0, cold.as_bytes())
    });
    assert_eq!(&retried.unwrap().unwrap().value[..], &value(i)[..]);
    assert!(
        engine.get(0, cold.as_bytes()).is_err(),
        "outside its retry the value is still on SSD"
    );
    assert_eq!(engine.tier_info().read_throughs, 1);
    // Missed again lately (the doorkeeper remembers the place): promoted.
    let blocks = engine.spill_stats().unwrap().0.blocks_read;
    assert!(engine.fetch_value(place).unwrap().is_none(), "promoted");
    assert_eq!(
        engine.stats().pages.spilled_pages,
        spilled,
        "the page stays on SSD"
    );
    let read = engine.spill_stats().unwrap().0.blocks_read - blocks;
    assert!(
        (1..=2).contains(&read),
        "a 1 000-byte value and its header span one or two 4 KiB blocks, not the page: {read}"
    );
    let got = engine.get(0, cold.as_bytes()).unwrap().unwrap();
    assert_eq!(&got.value[..], &value(i)[..], "read from RAM now");
    // The snapshot opened before the promotion reads the same bytes (re-pointed version).
    let mut loads = 0;
    let seen = loop {
        match snapshot.get(0, cold.as_bytes()) {
            Ok(entry) => break entry.unwrap(),
            Err(e) => {
                let _ = engine.fetch_value(e.value_not_resident().unwrap()).unwrap();
                loads += 1;
                assert!(loads < 4);
            }
        }
    };
    assert_eq!(&seen.value[..], &value(i)[..]);
    snapshot.abort();
    // A second fetch of the old place finds nothing to re-point and leaves no copy behind.
    let live = engine.stats().pages.bytes_live;
    let _ = engine.fetch_value(place).unwrap();
    assert_eq!(engine.stats().pages.bytes_live, live);
    engine.release_retired();
    assert_eq!(engine.compaction_stats().retired_bytes, 0);
}

/// Real threads: writers overwrite, readers read (fetching on a miss), and one thread runs the
/// tier, GC and compaction in a loop. Every value a reader gets names its own key and is
/// whole: no read of a freed, moved or foreign place.
#[test]
fn readers_writers_gc_compaction_and_the_tier_on_threads_never_see_a_wrong_value() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let engine = engine_with_tier(6, EvictionPolicy::WTinyLfu);
    // Both compactions at any excess: RAM pages and pages on SSD are evacuated under the
    // readers and writers.
    engine.set_compaction_config(txn::CompactionConfig {
        ignore_bytes: 0,
        ..engine.compaction_config()
    });
    let keys = 3000;
    let stamped = |i: usize, generation: u64| -> Vec<u8> {
        format!("{}={generation};", key(i))
            .bytes()
            .cycle()
            .take(200 + (i * 37) % 1500)
            .collect()
    };
    for i in 0..keys {
        engine
            .put(0, key(i).as_bytes(), &stamped(i, 0), None)
            .unwrap();
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for w in 0..2u64 {
            let (engine, stop) = (&engine, &stop);
            scope.spawn(move || {
                let mut generation = 1;
                while !stop.load(Ordering::Relaxed) {
                    for i in (w as usize..keys).step_by(7) {
                        engine
                            .put(0, key(i).as_bytes(), &stamped(i, generation), None)
                            .unwrap();
                    }
                    generation += 1;
                }
            });
        }
        for r in 0..2usize {
            let (engine, stop) = (&engine, &stop);
            scope.spawn(move || {
                let mut i = r;
                while !stop.load(Ordering::Relaxed) {
                    let k = key(i % keys);
                    // As the server does: a read-through is handed to the retry.
                    let mut kept = Vec::new();
                    let got = loop {
                        match engine.with_prefetched(&kept, || engine.get(0, k.as_bytes())) {
                            Ok(entry) => break entry.unwrap(),
                            Err(e) => {
                                if let Some(through) =
                                    engine.fetch_value(e.value_not_resident().unwrap()).unwrap()
                                {
                                    kept.push(through);
                                }
                            }
                        }
                    };
                    let prefix = format!("{k}=");
                    assert!(
                        got.value.starts_with(prefix.as_bytes()),
                        "{k}: wrong value {:?}",
                        String::from_utf8_lossy(&got.value[..got.value.len().min(40)])
                    );
                    let len = 200 + ((i % keys) * 37) % 1500;
                    assert_eq!(got.value.len(), len, "{k}: torn value");
                    i += 13;
                }
            });
        }
        let started = std::time::Instant::now();
        let mut compacted_on_ssd = 0;
        while started.elapsed() < std::time::Duration::from_secs(2) {
            compacted_on_ssd += engine.tier_tick().compacted_pages;
            engine.gc();
            engine.compact_tick();
            engine.release_retired();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(
            compacted_on_ssd > 0,
            "pages on SSD were compacted meanwhile"
        );
    });
    assert!(engine.spill_stats().unwrap().0.pages_written > 0);
}

/// A value that names its key and its generation.
fn value_gen(i: usize, generation: usize) -> Vec<u8> {
    format!("value-{i:06}-{generation}-")
        .bytes()
        .cycle()
        .take(1000)
        .collect()
}

/// Overwrites leave pages on SSD holding a few live values each; without compaction of the
/// spill file every such page keeps its 68 KiB slot. With it, the file follows the live data
/// (within `SPILL_COMPACT_THRESHOLD_PCT` and the ignore bytes), the moved values go back to
/// SSD without joining the RAM policy, and every value reads back exactly.
#[test]
fn sparse_pages_on_ssd_are_compacted_and_the_spill_file_follows_live_data() {
    let engine = engine_with_tier(4, EvictionPolicy::WTinyLfu);
    let n = 40_000; // 40 MB of values: about 620 pages
    for i in 0..n {
        engine
            .put(0, key(i).as_bytes(), &value_gen(i, 0), None)
            .unwrap();
    }
    while engine.tier_tick().spilled > 0 {}
    let slots = |engine: &Engine| u64::from(engine.spill_stats().unwrap().0.slots_used);
    let before = slots(&engine);
    assert!(before > 500, "spilled: {before}");
    // Overwrite three keys in four: every page on SSD keeps a quarter of its values.
    for i in (0..n).filter(|i| i % 4 != 0) {
        engine
            .put(0, key(i).as_bytes(), &value_gen(i, 1), None)
            .unwrap();
    }
    while engine.gc().versions_unlinked > 0 {}
    let mut compacted = 0;
    for _ in 0..400 {
        let stats = engine.tier_tick();
        compacted += stats.compacted_pages;
        while engine.gc().versions_unlinked > 0 {}
        engine.release_retired();
    }
    assert!(
        compacted > 100,
        "sparse pages on SSD evacuated: {compacted}"
    );
    let live_pages = (n as u64 * 1008).div_ceil(PAGE);
    let after = slots(&engine);
    // Live data on SSD at most 1.25 times, plus 8 MiB of tolerated excess, plus a few pages
    // (RAM budget, open pages) of rounding.
    let bound = live_pages * 125 / 100 + (8 << 20) / PAGE + 8;
    assert!(
        after <= bound,
        "spill file slots {after} (before compaction {before}), live pages {live_pages}, bound {bound}"
    );
    for i in 0..n {
        let generation = usize::from(i % 4 != 0);
        let (got, _) = get_loading(&engine, &key(i));
        assert_eq!(
            got.as_deref(),
            Some(&value_gen(i, generation)[..]),
            "{}",
            key(i)
        );
    }
}

/// Backpressure: under `maxmemory` with the `spill` policy, writes that fill value pages
/// faster than the tier writes them out put RAM over the budget; past the headroom the engine
/// says so (the server then makes writes wait), and once the tier has caught up it no longer
/// does.
#[test]
fn writes_past_the_budget_and_headroom_raise_pressure_until_the_tier_catches_up() {
    let engine = engine_with_tier(4, EvictionPolicy::WTinyLfu);
    engine.set_memory_config(txn::MemoryConfig {
        maxmemory_bytes: 16 << 20,
        policy: txn::EvictionPolicy::Spill,
        ..engine.memory_config()
    });
    assert!(!engine.tier_write_pressure(), "nothing written yet");
    let mut i = 0;
    while !engine.tier_write_pressure() {
        engine.put(0, key(i).as_bytes(), &value(i), None).unwrap();
        i += 1;
        assert!(i < 100_000, "100 MB written and no pressure");
    }
    let held = engine.memory_stats().value_held_bytes;
    assert!(
        held > txn::tier::WRITE_PRESSURE_HEADROOM_MIN,
        "pressure only past the headroom: {held}"
    );
    for _ in 0..20 {
        engine.tier_tick();
    }
    assert!(!engine.tier_write_pressure(), "the tier caught up");
    assert!(
        engine.memory_stats().used_bytes <= 16 << 20,
        "back within maxmemory"
    );
    let (got, _) = get_loading(&engine, &key(0));
    assert_eq!(got.as_deref(), Some(&value(0)[..]));
}

/// ENOSPC or EIO on write-back: the pages stay in RAM and every value reads back; writes go on
/// until RAM passes `maxmemory`, then get `OutOfMemory`; once the disk takes pages again the
/// tier resumes and so do writes. Nothing is lost.
#[test]
fn a_failing_disk_keeps_values_in_ram_refuses_writes_past_maxmemory_and_recovers() {
    use storage::io::{FaultKind, FaultOp};
    let disk = SimDisk::new(21);
    let engine = engine_with_tier_on(&disk, 4, EvictionPolicy::WTinyLfu);
    let limit = 8u64 << 20;
    engine.set_memory_config(txn::MemoryConfig {
        maxmemory_bytes: limit,
        policy: txn::EvictionPolicy::Spill,
        ..engine.memory_config()
    });
    for kind in [FaultKind::NoSpace, FaultKind::Io] {
        disk.fail_after(FaultOp::Write, 0, kind);
        let mut written = Vec::new();
        let mut refused = false;
        for i in 0..20_000 {
            engine.tier_tick();
            match engine.make_room() {
                Ok(()) => {
                    engine.put(0, key(i).as_bytes(), &value(i), None).unwrap();
                    written.push(i);
                }
                Err(txn::TxnError::OutOfMemory { .. }) => {
                    refused = true;
                    break;
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert!(
            refused,
            "{kind:?}: writes refused once RAM passed maxmemory"
        );
        let stats = engine.tier_tick();
        assert!(stats.spill_errors > 0, "{kind:?}: {stats:?}");
        assert!(
            engine.memory_stats().used_bytes <= limit + 2 * PAGE,
            "{kind:?}: RAM held at maxmemory"
        );
        for &i in &written {
            let (got, _) = get_loading(&engine, &key(i));
            assert_eq!(got.as_deref(), Some(&value(i)[..]), "{kind:?} {}", key(i));
        }
        // The disk recovers: pages go out again and writes are admitted.
        disk.clear_faults();
        for _ in 0..50 {
            engine.tier_tick();
        }
        assert!(engine.make_room().is_ok(), "{kind:?}: the tier resumed");
        for &i in &written {
            let (got, _) = get_loading(&engine, &key(i));
            assert_eq!(got.as_deref(), Some(&value(i)[..]), "{kind:?} {}", key(i));
        }
        // Next round: a fresh set of keys (the same names, new values are the same bytes).
        for &i in &written {
            engine
                .update::<_, txn::TxnError>(0, key(i).as_bytes(), false, |_| {
                    Ok((Some(txn::KeyWrite::Delete), ()))
                })
                .unwrap();
        }
        while engine.gc().versions_unlinked > 0 {}
        for _ in 0..10 {
            engine.tier_tick();
        }
    }
}

/// The asynchronous miss path on a real file: a first miss is planned (blocks, offset, the
/// image), read through io_uring, checked, and handed to the retry; a plan whose page changed
/// before its read completed hands back nothing (the retry reads afresh), never old bytes.
#[test]
fn a_miss_read_through_io_uring_is_checked_against_the_image_it_planned() {
    use storage::io::FileDisk;
    let Ok(uring) = txn::Uring::start() else {
        return; // no io_uring here: misses take the blocking path, tested above
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig {
        page_store: PageStoreConfig {
            open_page_shards: 1,
            ..PageStoreConfig::default()
        },
        ..EngineConfig::default()
    });
    let path = dir.path().join("tier.spill");
    let (file, direct) = FileDisk.create_direct(&path).unwrap();
    let file = SpillFile::new(file, path, direct, 4096 * SLOT_BYTES as u64);
    assert!(engine.attach_spill_file(file, 4 * PAGE, EvictionPolicy::WTinyLfu));
    for i in 0..2000 {
        engine.put(0, key(i).as_bytes(), &value(i), None).unwrap();
    }
    while engine.tier_tick().spilled > 0 {}
    let read = |plan: &storage::page::ColdPlan| {
        let (fd, offset, len) = plan.read();
        let (tx, rx) = std::sync::mpsc::channel();
        uring
            .read(
                fd,
                offset,
                len,
                Box::new(move |r| {
                    let _ = tx.send(r.map(|b| b.as_slice().to_vec()));
                }),
            )
            .map_err(|_| ())
            .unwrap();
        rx.recv().unwrap().unwrap()
    };
    let i = first_cold(&engine, 2000);
    let miss = engine.get(0, key(i).as_bytes()).unwrap_err();
    let place = miss.value_not_resident().unwrap();
    let txn::tier::Miss::Read(plan) = engine.plan_miss(place).unwrap() else {
        panic!("a first miss on a real file is read asynchronously");
    };
    let blocks = read(&plan);
    let through = engine
        .complete_read_through(&plan, &blocks, std::time::Duration::from_micros(100))
        .unwrap()
        .expect("the image did not change");
    let got = engine.with_prefetched(std::slice::from_ref(&through), || {
        engine.get(0, key(i).as_bytes())
    });
    assert_eq!(&got.unwrap().unwrap().value[..], &value(i)[..]);
    // Planned, then the page comes back to RAM before the read completes: nothing handed.
    let j = (i + 1..2000)
        .find(|&j| engine.get(0, key(j).as_bytes()).is_err())
        .unwrap();
    let miss = engine.get(0, key(j).as_bytes()).unwrap_err();
    let place = miss.value_not_resident().unwrap();
    let txn::tier::Miss::Read(plan) = engine.plan_miss(place).unwrap() else {
        panic!("a first miss");
    };
    engine.load_page(place.page).unwrap();
    let blocks = read(&plan);
    assert!(engine
        .complete_read_through(&plan, &blocks, std::time::Duration::from_micros(100))
        .unwrap()
        .is_none());
    assert_eq!(
        &engine.get(0, key(j).as_bytes()).unwrap().unwrap().value[..],
        &value(j)[..],
        "read from RAM"
    );
}

/// The tick follows the pages entering and leaving RAM from the store's queue of changes: it
/// walks every page id only on its first tick (pages sealed before the file was attached),
/// so its cost follows what changed, not what is on SSD, and the policy still ends up with
/// the budget's worth of pages.
#[test]
fn the_tick_walks_the_pages_once_then_follows_their_changes() {
    let engine = engine_with_tier(8, EvictionPolicy::WTinyLfu);
    let n = 6000;
    for i in 0..n {
        engine.put(0, key(i).as_bytes(), &value(i), None).unwrap();
    }
    let mut rescans = 0;
    let mut last = engine.tier_tick();
    rescans += last.rescans;
    for round in 0..30 {
        // Writes, deletes and reads that load pages back, between ticks.
        for i in (round * 97..n).step_by(13).take(100) {
            engine
                .put(0, key(i).as_bytes(), &value(i + round), None)
                .unwrap();
        }
        for i in (round..n).step_by(211) {
            engine.delete_one(0, key(i).as_bytes()).unwrap();
        }
        for i in (round * 7..n).step_by(401) {
            get_loading(&engine, &key(i));
        }
        engine.gc();
        last = engine.tier_tick();
        rescans += last.rescans;
    }
    assert_eq!(rescans, 1, "only the first tick walked the pages");
    while engine.tier_tick().spilled > 0 {}
    assert!(last.policy_pages <= 8 + 1, "{last:?}");
    let pages = engine.stats().pages;
    assert!(
        pages.pages <= 8 + 2 + 8 + 4,
        "resident: the budget, open pages, the free reserve: {pages:?}"
    );
}
