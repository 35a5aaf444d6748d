//! Model and concurrency tests of the page store.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;

/// What a value of `len` bytes counts in `bytes_live`: small values carry a header.
fn footprint(len: usize) -> u64 {
    if len <= SMALL_VALUE_MAX_BYTES {
        (len + VALUE_HEADER_BYTES) as u64
    } else {
        len as u64
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write(usize, u8),
    Free(usize),
    Read(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop_oneof![0usize..64, 64usize..20_000, (PAGE_SIZE - 10)..(PAGE_SIZE * 2 + 10)], any::<u8>())
            .prop_map(|(len, byte)| Op::Write(len, byte)),
        3 => any::<usize>().prop_map(Op::Free),
        3 => any::<usize>().prop_map(Op::Read),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn matches_a_hashmap_model(ops in proptest::collection::vec(op(), 1..120)) {
        let store = PageStore::new(PageStoreConfig { open_page_shards: 2, free_pages_retained_max: 2, ..PageStoreConfig::default() });
        let mut model: HashMap<ValueRef, Vec<u8>> = HashMap::new();
        let mut order: Vec<ValueRef> = Vec::new();
        for op in ops {
            match op {
                Op::Write(len, byte) => {
                    let value: Vec<u8> = (0..len).map(|i| byte.wrapping_add(i as u8)).collect();
                    let vref = store.write(&value, 0).unwrap();
                    prop_assert_eq!(vref.len as usize, len);
                    prop_assert!(vref.is_well_placed(), "{:?}", vref);
                    if len > 0 {
                        prop_assert!(!model.contains_key(&vref), "live ref handed out twice: {:?}", vref);
                        model.insert(vref, value);
                        order.push(vref);
                    }
                }
                Op::Free(pick) if !order.is_empty() => {
                    let vref = order.swap_remove(pick % order.len());
                    model.remove(&vref);
                    // SAFETY: removed from the model; never read again.
                    unsafe { store.free(vref).unwrap() };
                }
                Op::Read(pick) if !order.is_empty() => {
                    let vref = order[pick % order.len()];
                    prop_assert_eq!(&store.read(vref).unwrap()[..], &model[&vref][..]);
                }
                _ => {}
            }
            // Every live value is intact after every step (no overlap, no reuse of live space).
            for (vref, value) in &model {
                prop_assert!(store.with_value(*vref, |bytes| bytes == &value[..]).unwrap());
            }
            let stats = store.stats();
            prop_assert_eq!(stats.bytes_live, model.values().map(|v| footprint(v.len())).sum::<u64>());
            prop_assert_eq!(stats.values_live, model.len() as u64);
            prop_assert!(stats.bytes_live <= stats.bytes_allocated);
        }
        for vref in order {
            // SAFETY: freed once, never read again.
            unsafe { store.free(vref).unwrap() };
        }
        let stats = store.stats();
        prop_assert_eq!(stats.bytes_live, 0);
        // Only the open pages (at most one per shard) and the retained free pages stay.
        prop_assert!(stats.pages <= 2 + 2, "{:?}", stats);
        prop_assert_eq!(stats.extents, 0);
    }
}

#[test]
fn concurrent_writers_readers_and_freers_never_see_torn_values() {
    let store = Arc::new(PageStore::new(PageStoreConfig {
        open_page_shards: 4,
        ..PageStoreConfig::default()
    }));
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut live: Vec<(ValueRef, u8, usize)> = Vec::new();
                for i in 0..20_000usize {
                    let len = 1 + (i * 7 + t as usize * 13) % 300;
                    let byte = (i as u8).wrapping_mul(31).wrapping_add(t);
                    let vref = store.write(&vec![byte; len], 0).unwrap();
                    live.push((vref, byte, len));
                    if i % 3 == 0 {
                        let (vref, byte, len) = live.swap_remove(i % live.len());
                        let ok = store
                            .with_value(vref, |bytes| {
                                bytes.len() == len && bytes.iter().all(|b| *b == byte)
                            })
                            .unwrap();
                        assert!(ok, "torn or overwritten value");
                        // SAFETY: this thread owns the ref and drops it here.
                        unsafe { store.free(vref).unwrap() };
                    }
                }
                for (vref, byte, len) in &live {
                    assert_eq!(store.read(*vref).unwrap(), vec![*byte; *len]);
                }
                live.len() as u64
            })
        })
        .collect();
    let live: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(store.stats().values_live, live);
}

#[test]
fn a_512_mib_value_round_trips() {
    let store = PageStore::new(PageStoreConfig::default());
    let len = VALUE_MAX_BYTES;
    let mut value = vec![0u8; len];
    value[0] = 1;
    value[len / 2] = 2;
    value[len - 1] = 3;
    let vref = store.write(&value, 0).unwrap();
    assert_eq!(vref.len as usize, len);
    assert!(store.with_value(vref, |bytes| bytes == &value[..]).unwrap());
    assert_eq!(store.stats().pages, (len / PAGE_SIZE) as u64);
    // SAFETY: not read again.
    unsafe { store.free(vref).unwrap() };
    assert_eq!(store.stats().pages, 0);
}

/// Regression: a freed extent's ids used to go to a list only single pages drew from, so every
/// overwrite of a large value took fresh ids and the id space (and the directory) grew forever.
#[test]
fn overwriting_a_1_mib_value_reuses_its_page_ids() {
    let store = PageStore::new(PageStoreConfig::default());
    let value = vec![5u8; 1024 * 1024];
    let pages_per_value = (value.len() / PAGE_SIZE) as u64;
    let mut current = store.write(&value, 0).unwrap();
    for round in 0..1_000u32 {
        // MVCC order: the new version is written before the old one is freed.
        let next = store.write(&value, 0).unwrap();
        // SAFETY: replaced; never read again.
        unsafe { store.free(current).unwrap() };
        current = next;
        let stats = store.stats();
        assert!(
            stats.page_ids <= 2 * pages_per_value,
            "round {round}: id space grew to {} ids for one live {pages_per_value}-page value",
            stats.page_ids
        );
        assert_eq!(stats.pages, pages_per_value);
    }
    assert!(store
        .with_value(current, |bytes| bytes == &value[..])
        .unwrap());
}

#[derive(Debug, Clone)]
enum ExtentOp {
    /// Write a value spanning this many pages (1 = a single dedicated page).
    Write(u32),
    Free(usize),
}

fn extent_op() -> impl Strategy<Value = ExtentOp> {
    prop_oneof![
        1 => (1u32..=24).prop_map(ExtentOp::Write),
        1 => any::<usize>().prop_map(ExtentOp::Free),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// However extents of mixed sizes come and go: no id is lost (every id is live, on the free
    /// page list, or bare), bare ids stay merged into maximal runs, and the id space stays
    /// within a small factor of the peak of live pages.
    #[test]
    fn extent_ids_are_reused_and_the_id_space_stays_bounded(
        ops in proptest::collection::vec(extent_op(), 1..400)
    ) {
        let store = PageStore::new(PageStoreConfig {
            open_page_shards: 1,
            free_pages_retained_max: 2,
            ..PageStoreConfig::default()
        });
        let mut live: Vec<ValueRef> = Vec::new();
        let mut peak_pages = 0u64;
        for op in ops {
            match op {
                // At most 8 live values, so the peak stays far below what the ops write in all.
                ExtentOp::Write(pages) if live.len() < 8 => {
                    let len = pages as usize * PAGE_SIZE - 3;
                    live.push(store.write(&vec![pages as u8; len], 0).unwrap());
                }
                ExtentOp::Free(pick) if !live.is_empty() => {
                    let vref = live.swap_remove(pick % live.len());
                    // SAFETY: removed from `live`; never read again.
                    unsafe { store.free(vref).unwrap() };
                }
                _ => {}
            }
            let stats = store.stats();
            peak_pages = peak_pages.max(stats.pages);
            prop_assert_eq!(stats.page_ids, stats.pages + stats.released_pages + stats.bare_ids, "{:?}", stats);
            prop_assert!(
                stats.page_ids <= 3 * peak_pages + 24,
                "id space {} for a peak of {} live pages: {:?}", stats.page_ids, peak_pages, stats
            );
        }
        for vref in live {
            // SAFETY: freed once, never read again.
            unsafe { store.free(vref).unwrap() };
        }
        let stats = store.stats();
        // Only retained free pages separate bare ids, so runs are at most one more than them.
        prop_assert!(stats.bare_id_runs <= stats.free_pages + stats.released_pages + 1, "{:?}", stats);
        prop_assert_eq!(stats.page_ids, stats.pages + stats.released_pages + stats.bare_ids);
    }
}

/// Seals the open page of a one-shard store: writes filler values (owner tag
/// [`OWNER_TAG_MAX`]) until one lands in a new page, then frees them all. The fillers stay in
/// the sealed page's walk, after the values written before.
fn seal_open_page(store: &PageStore) {
    let first = store.write(b"f", u64::MAX).unwrap();
    let mut fillers = vec![first];
    loop {
        let filler = store
            .write(&vec![0u8; SMALL_VALUE_MAX_BYTES], u64::MAX)
            .unwrap();
        fillers.push(filler);
        if filler.page != first.page {
            break;
        }
    }
    for f in fillers {
        // SAFETY: never read again.
        unsafe { store.free(f).unwrap() };
    }
}

/// [`one_shard`] with a spill file of 64 slots on a simulated disk seeded with `seed`.
fn one_shard_with_spill_file(seed: u64) -> PageStore {
    use crate::io::{Disk, SimDisk};
    use crate::tier::spill::{SpillFile, SLOT_BYTES};
    let store = one_shard();
    let disk = SimDisk::new(seed);
    disk.create_dir_all(std::path::Path::new("/d")).unwrap();
    let path = std::path::Path::new("/d/tier.spill");
    let (file, direct) = disk.create_direct(path).unwrap();
    assert!(store.attach_spill_file(SpillFile::new(
        file,
        path.into(),
        direct,
        64 * SLOT_BYTES as u64
    )));
    store
}

fn one_shard() -> PageStore {
    PageStore::new(PageStoreConfig {
        open_page_shards: 1,
        ..PageStoreConfig::default()
    })
}

#[test]
fn a_sealed_page_walks_its_values_with_their_owner_tags() {
    let store = one_shard();
    let refs: Vec<ValueRef> = (0..50u64)
        .map(|i| {
            store
                .write(&vec![i as u8; 10 + i as usize], i * 1000 + 7)
                .unwrap()
        })
        .collect();
    let page = refs[0].page;
    assert!(refs.iter().all(|r| r.page == page));
    assert!(store.pin(page).is_none(), "an open page is not walked");
    seal_open_page(&store);
    // Freed values stay in the walk (the caller tells live from dead).
    // SAFETY: never read again.
    unsafe { store.free(refs[3]).unwrap() };
    let pinned = store
        .pin(page)
        .expect("a sealed page with live values pins");
    assert!(store.pin(page).is_none(), "one pin at a time");
    let walked = pinned.values();
    assert!(
        walked[50..]
            .iter()
            .all(|(_, owner)| *owner == OWNER_TAG_MAX),
        "fillers last"
    );
    let expected: Vec<(ValueRef, u64)> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| (*r, i as u64 * 1000 + 7))
        .collect();
    assert_eq!(&walked[..50], &expected[..]);
    // Owner tags keep 48 bits.
    drop(pinned);
    let tagged = store.write(b"tag", u64::MAX).unwrap();
    seal_open_page(&store);
    let pinned = store.pin(tagged.page).unwrap();
    assert!(pinned.values().contains(&(tagged, OWNER_TAG_MAX)));
}

#[test]
fn pins_refuse_pages_that_are_not_sealed_small_value_pages() {
    let store = one_shard();
    let big = store.write(&vec![1u8; 3 * PAGE_SIZE], 1).unwrap();
    let dedicated = store
        .write(&vec![2u8; SMALL_VALUE_MAX_BYTES + 1], 2)
        .unwrap();
    assert!(store.pin(big.page).is_none(), "an extent");
    assert!(
        store.pin(dedicated.page).is_none(),
        "a page of one large value"
    );
    assert!(store.pin(PageId(1_000_000)).is_none(), "no such page");
    let small = store.write(b"x", 3).unwrap();
    seal_open_page(&store);
    // SAFETY: never read again.
    unsafe { store.free(small).unwrap() };
    assert!(store.pin(small.page).is_none(), "an empty (recycled) page");
}

#[test]
fn a_pinned_page_is_recycled_only_when_the_pin_drops() {
    let store = one_shard();
    let refs: Vec<ValueRef> = (0..4)
        .map(|_| store.write(&[9u8; 100], 5).unwrap())
        .collect();
    seal_open_page(&store);
    let page = refs[0].page;
    let free_before = store.stats().free_pages;
    let pinned = store.pin(page).unwrap();
    for r in &refs {
        // SAFETY: never read again (the test reads only through the pin's walk below).
        unsafe { store.free(*r).unwrap() };
    }
    assert_eq!(
        store.stats().free_pages,
        free_before,
        "pinned: not recycled"
    );
    assert_eq!(
        &pinned.values()[..4],
        &refs.iter().map(|r| (*r, 5)).collect::<Vec<_>>()[..],
        "headers still walk"
    );
    drop(pinned);
    assert_eq!(store.stats().free_pages, free_before + 1);
}

#[test]
fn relocated_values_land_in_survivor_pages_apart_from_new_ones() {
    for survivors in [true, false] {
        let store = PageStore::new(PageStoreConfig {
            open_page_shards: 1,
            survivor_pages: survivors,
            ..PageStoreConfig::default()
        });
        let old = store.write(b"cold value", 42).unwrap();
        seal_open_page(&store);
        let fresh = store.write(b"new", 43).unwrap();
        let pinned = store.pin(old.page).unwrap();
        let moved = store.relocate(old, 42).unwrap();
        drop(pinned);
        assert_eq!(store.read(moved).unwrap(), &b"cold value"[..]);
        assert_ne!(moved.page, old.page);
        assert_eq!(
            moved.page != fresh.page,
            survivors,
            "survivor pages: {survivors}"
        );
        let before = store.stats();
        // SAFETY: the old copy is never read again.
        unsafe { store.free(old).unwrap() };
        assert_eq!(
            store.stats().bytes_live,
            before.bytes_live - footprint(b"cold value".len())
        );
    }
}

#[test]
fn empty_pages_beyond_a_small_reserve_go_back_to_the_os() {
    let store = one_shard();
    let value = vec![3u8; PAGE_SIZE / 4 - VALUE_HEADER_BYTES];
    let refs: Vec<ValueRef> = (0..4000).map(|_| store.write(&value, 1).unwrap()).collect();
    assert!(store.stats().pages >= 1000);
    for r in &refs {
        // SAFETY: never read again.
        unsafe { store.free(*r).unwrap() };
    }
    let stats = store.stats();
    // The open page and a reserve of at least 8 (a 64th of the resident pages, shrinking as
    // they go).
    assert!(stats.pages <= 1 + 16, "{stats:?}");
    assert!(stats.released_pages >= 980, "{stats:?}");
    assert_eq!(stats.bytes_allocated, stats.pages * PAGE_SIZE as u64);
    // Released pages come back in use, their memory faulting in again.
    let again: Vec<ValueRef> = (0..400).map(|_| store.write(&value, 2).unwrap()).collect();
    assert!(store.stats().page_ids <= 1001, "{:?}", store.stats());
    for r in &again {
        assert_eq!(store.read(*r).unwrap(), value);
    }
}

#[derive(Debug, Clone)]
enum RelocOp {
    Write(usize, u8),
    Free(usize),
    /// Evacuate the sealed page found at this position of a scan: relocate its live values.
    Evacuate(usize),
}

fn reloc_op() -> impl Strategy<Value = RelocOp> {
    prop_oneof![
        5 => (prop_oneof![1usize..200, 200usize..5_000, 16_000usize..20_000], any::<u8>())
            .prop_map(|(len, byte)| RelocOp::Write(len, byte)),
        4 => any::<usize>().prop_map(RelocOp::Free),
        2 => any::<usize>().prop_map(RelocOp::Evacuate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    /// The store with relocation against a model (ref -> bytes, ref -> owner): evacuating a
    /// page walks exactly the model's values in it (and freed ones, which the model knows
    /// are dead), the copies read the same bytes, freeing the old copies recycles the page,
    /// and the live-byte count always matches.
    #[test]
    fn relocation_matches_a_model(ops in proptest::collection::vec(reloc_op(), 1..300)) {
        let store = PageStore::new(PageStoreConfig {
            open_page_shards: 1,
            free_pages_retained_max: 2,
            ..PageStoreConfig::default()
        });
        let mut model: HashMap<ValueRef, (Vec<u8>, u64)> = HashMap::new();
        let mut order: Vec<ValueRef> = Vec::new();
        let mut next_owner = 1u64;
        for op in ops {
            match op {
                RelocOp::Write(len, byte) => {
                    let value: Vec<u8> = (0..len).map(|i| byte.wrapping_add(i as u8)).collect();
                    let vref = store.write(&value, next_owner).unwrap();
                    prop_assert!(vref.is_well_placed(), "{:?}", vref);
                    prop_assert!(!model.contains_key(&vref));
                    model.insert(vref, (value, next_owner));
                    order.push(vref);
                    next_owner += 1;
                }
                RelocOp::Free(pick) if !order.is_empty() => {
                    let vref = order.swap_remove(pick % order.len());
                    model.remove(&vref);
                    // SAFETY: removed from the model; never read again.
                    unsafe { store.free(vref).unwrap() };
                }
                RelocOp::Evacuate(pick) => {
                    let mut sealed = Vec::new();
                    store.scan_sealed(&mut |usage| sealed.push(usage));
                    if sealed.is_empty() {
                        continue;
                    }
                    let usage = sealed[pick % sealed.len()];
                    let live_in_model: u64 = model
                        .iter()
                        .filter(|(r, _)| r.page == usage.page)
                        .map(|(_, (v, _))| footprint(v.len()))
                        .sum();
                    prop_assert_eq!(u64::from(usage.live), live_in_model);
                    let pinned = store.pin(usage.page).expect("a sealed page with live values pins");
                    let walked = pinned.values();
                    let mut offset = VALUE_HEADER_BYTES as u32;
                    for (vref, owner) in &walked {
                        prop_assert_eq!(vref.offset, offset, "values are contiguous");
                        offset += vref.len + VALUE_HEADER_BYTES as u32;
                        if let Some((value, expected_owner)) = model.get(vref).cloned() {
                            prop_assert_eq!(*owner, expected_owner);
                            let moved = store.relocate(*vref, *owner).unwrap();
                            prop_assert_ne!(moved.page, usage.page);
                            prop_assert_eq!(&store.read(moved).unwrap()[..], &value[..]);
                            // Re-point, then free the old copy (no reader can hold it here).
                            model.remove(vref);
                            model.insert(moved, (value, *owner));
                            if let Some(slot) = order.iter_mut().find(|r| **r == *vref) {
                                *slot = moved;
                            }
                            // SAFETY: the model names only `moved` now.
                            unsafe { store.free(*vref).unwrap() };
                        }
                    }
                    prop_assert_eq!(offset - VALUE_HEADER_BYTES as u32, usage.used, "the walk covers the page");
                    let ids_before = store.stats().page_ids;
                    drop(pinned);
                    prop_assert!(store.pin(usage.page).is_none(), "evacuated page was recycled");
                    prop_assert!(store.stats().page_ids <= ids_before + 1);
                }
                _ => {}
            }
            for (vref, (value, _)) in &model {
                prop_assert!(store.with_value(*vref, |bytes| bytes == &value[..]).unwrap());
            }
            let stats = store.stats();
            prop_assert_eq!(stats.bytes_live, model.values().map(|(v, _)| footprint(v.len())).sum::<u64>());
            prop_assert_eq!(stats.values_live, model.len() as u64);
            prop_assert_eq!(stats.page_ids, stats.pages + stats.released_pages + stats.bare_ids);
        }
        for vref in order {
            // SAFETY: freed once, never read again.
            unsafe { store.free(vref).unwrap() };
        }
        let stats = store.stats();
        prop_assert_eq!(stats.bytes_live, 0);
        // Open pages (new values, survivors) and the resident reserve.
        prop_assert!(stats.pages <= 2 + 2, "{:?}", stats);
    }
}

#[test]
fn releasing_free_pages_closes_idle_open_pages_and_empties_the_reserve() {
    let store = one_shard();
    let value = vec![3u8; PAGE_SIZE / 4 - VALUE_HEADER_BYTES];
    let refs: Vec<ValueRef> = (0..400).map(|_| store.write(&value, 1).unwrap()).collect();
    for r in &refs {
        // SAFETY: never read again.
        unsafe { store.free(*r).unwrap() };
    }
    assert!(store.stats().pages >= 2, "the open page and a reserve");
    store.release_free_pages();
    let stats = store.stats();
    assert_eq!(stats.pages, 0, "{stats:?}");
    assert_eq!(stats.bytes_allocated, 0);
    assert_eq!(store.bytes_held(), 0);
    // A busy open page stays open.
    let kept = store.write(b"live", 2).unwrap();
    store.release_free_pages();
    assert_eq!(store.stats().pages, 1);
    assert_eq!(store.read(kept).unwrap(), &b"live"[..]);
    let next = store.write(b"next", 2).unwrap();
    assert_eq!(next.page, kept.page, "still the open page");
}

/// Successful spills and frame releases over all cases (the test checks some happen).
static SPILLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static RELEASES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static COMPACTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[test]
fn pages_on_ssd_cases_do_spill_and_release_frames() {
    // Run the property (its cases add to the counters), then check it exercised the tier.
    pages_on_ssd_match_a_model();
    let spills = SPILLS.load(std::sync::atomic::Ordering::Relaxed);
    let releases = RELEASES.load(std::sync::atomic::Ordering::Relaxed);
    let compactions = COMPACTIONS.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        spills > 20 && releases > 5 && compactions > 3,
        "spills {spills}, releases {releases}, compactions {compactions}"
    );
}

#[derive(Debug, Clone)]
enum TierOp {
    Write(usize, u8),
    Free(usize),
    /// Spill the sealed page of the value at this position, if it has one.
    Spill(usize),
    ReleaseFrame(usize),
    Load(usize),
    /// Compaction of the spill file: the page on SSD of the value at this position, if it
    /// is one, read whole; its live values moved to a cold survivor page.
    CompactSpilled(usize),
}

fn tier_op() -> impl Strategy<Value = TierOp> {
    prop_oneof![
        5 => (prop_oneof![1usize..200, 200usize..5_000, 16_000usize..20_000], any::<u8>())
            .prop_map(|(len, byte)| TierOp::Write(len, byte)),
        3 => any::<usize>().prop_map(TierOp::Free),
        2 => any::<usize>().prop_map(TierOp::Spill),
        2 => any::<usize>().prop_map(TierOp::ReleaseFrame),
        1 => any::<usize>().prop_map(TierOp::Load),
        1 => any::<usize>().prop_map(TierOp::CompactSpilled),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The store with pages going to SSD and back, against a model (ref -> bytes): every
    /// live value reads back exactly, from RAM or from SSD; a page on SSD never serves a read
    /// from RAM; the live bytes, the id space and the SSD slots always add up.
    #[test]
    fn pages_on_ssd_match_a_model(ops in proptest::collection::vec(tier_op(), 1..250)) {
        use crate::io::{Disk, SimDisk};
        use crate::tier::spill::{SpillFile, SLOT_BYTES};
        let store = PageStore::new(PageStoreConfig {
            open_page_shards: 1,
            free_pages_retained_max: 2,
            ..PageStoreConfig::default()
        });
        let disk = SimDisk::new(11);
        disk.create_dir_all(std::path::Path::new("/d")).unwrap();
        let path = std::path::Path::new("/d/tier.spill");
        let (file, direct) = disk.create_direct(path).unwrap();
        prop_assert!(store.attach_spill_file(SpillFile::new(file, path.into(), direct, 64 * SLOT_BYTES as u64)));
        let mut model: HashMap<ValueRef, Vec<u8>> = HashMap::new();
        let mut order: Vec<ValueRef> = Vec::new();
        for op in ops {
            let pick = |i: usize| (!order.is_empty()).then(|| order[i % order.len()]);
            match op {
                TierOp::Write(len, byte) => {
                    let value: Vec<u8> = (0..len).map(|i| byte.wrapping_add(i as u8)).collect();
                    let vref = store.write(&value, 1).unwrap();
                    prop_assert!(model.insert(vref, value).is_none());
                    order.push(vref);
                }
                TierOp::Free(i) if !order.is_empty() => {
                    let vref = order.swap_remove(i % order.len());
                    model.remove(&vref);
                    // SAFETY: removed from the model; never read again.
                    unsafe { store.free(vref).unwrap() };
                }
                TierOp::Spill(i) => {
                    if let Some(vref) = pick(i) {
                        // Refused for open pages, extents, pages already on SSD: fine.
                        if store.spill(vref.page).is_ok() {
                            SPILLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
                TierOp::ReleaseFrame(i) => {
                    if let Some(vref) = pick(i) {
                        // SAFETY: this test reads only through the store, never holding a
                        // slice across calls.
                        if unsafe { store.release_frame(vref.page) } {
                            RELEASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
                TierOp::Load(i) => {
                    if let Some(vref) = pick(i) {
                        let _ = store.load(vref.page);
                    }
                }
                TierOp::CompactSpilled(i) => {
                    if let Some(held) = pick(i).and_then(|v| store.hold_spilled(v.page).unwrap()) {
                        let walked = held.values();
                        let live: Vec<ValueRef> = order.iter().copied().filter(|v| v.page == held.page()).collect();
                        for old in live {
                            prop_assert!(walked.contains(&(old, 1)), "the walk lists every live value");
                            let bytes = held.bytes(old).unwrap();
                            prop_assert_eq!(bytes, &model[&old][..]);
                            let copy = store.relocate_bytes(bytes, 1, Survivors::Cold).unwrap();
                            let value = model.remove(&old).unwrap();
                            model.insert(copy, value);
                            let at = order.iter().position(|v| *v == old).unwrap();
                            order[at] = copy;
                            // SAFETY: the model names the copy now; the old place is never read.
                            unsafe { store.free(old).unwrap() };
                        }
                        COMPACTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                _ => {}
            }
            let mut on_ssd = std::collections::HashSet::new();
            for (vref, value) in &model {
                match store.residency(vref.page) {
                    Some(Residency::Resident) | None => {
                        prop_assert_eq!(&store.read(*vref).unwrap()[..], &value[..]);
                    }
                    Some(Residency::OnSsd { .. }) => {
                        on_ssd.insert(vref.page);
                        let refused = matches!(store.read(*vref), Err(crate::StorageError::NotResident { .. }));
                        prop_assert!(refused);
                    }
                }
                prop_assert_eq!(&store.read_cold(*vref).unwrap()[..], &value[..]);
            }
            let stats = store.stats();
            prop_assert_eq!(stats.bytes_live, model.values().map(|v| footprint(v.len())).sum::<u64>());
            prop_assert_eq!(stats.spilled_pages, on_ssd.len() as u64);
            prop_assert_eq!(store.spill_bytes(), on_ssd.len() as u64 * SLOT_BYTES as u64);
            prop_assert_eq!(
                stats.page_ids,
                stats.pages + stats.released_pages + stats.bare_ids + stats.spilled_frames_released
            );
        }
        for vref in order {
            // SAFETY: freed once, never read again.
            unsafe { store.free(vref).unwrap() };
        }
        let stats = store.stats();
        prop_assert_eq!(stats.spilled_pages, 0);
        prop_assert_eq!(store.spill_bytes(), 0);
    }
}

/// Compaction of the spill file at the store's level: a page on SSD read whole walks the same
/// values its frame did, its live values moved to a cold survivor page leave it empty (its SSD
/// slot freed), and the cold page, once sealed, is handed to the SSD tier to write out.
#[test]
fn a_page_on_ssd_is_walked_from_its_image_and_emptied_into_cold_pages() {
    let store = one_shard_with_spill_file(3);
    let values: Vec<(ValueRef, Vec<u8>)> = (0..40u8)
        .map(|i| {
            let bytes = vec![i; 500 + usize::from(i)];
            (store.write(&bytes, u64::from(i)).unwrap(), bytes)
        })
        .collect();
    seal_open_page(&store);
    let page = values[0].0.page;
    let in_ram = store.pin(page).unwrap().values();
    store.spill(page).unwrap();
    assert!(store.pin(page).is_none(), "a page on SSD does not pin");
    let mut spilled = Vec::new();
    store.scan_spilled(&mut |usage| spilled.push(usage.page));
    assert_eq!(spilled, vec![page]);
    let held = store.hold_spilled(page).unwrap().unwrap();
    assert_eq!(held.values(), in_ram, "the image walks as the frame did");
    assert!(store.hold_spilled(page).unwrap().is_none(), "held busy");
    let mut moved = Vec::new();
    for (old, bytes) in &values {
        assert_eq!(held.bytes(*old).unwrap(), &bytes[..]);
        let tag = u64::from(bytes[0]);
        moved.push(
            store
                .relocate_bytes(held.bytes(*old).unwrap(), tag, Survivors::Cold)
                .unwrap(),
        );
        // SAFETY: the copy replaces it; never read again.
        unsafe { store.free(*old).unwrap() };
    }
    drop(held);
    assert_eq!(store.stats().spilled_pages, 0, "emptied: its slot is freed");
    assert!(
        store.take_sealed_cold().is_empty(),
        "the cold page is still open"
    );
    for (copy, (_, bytes)) in moved.iter().zip(&values) {
        assert_ne!(copy.page, page);
        assert_eq!(&store.read(*copy).unwrap()[..], &bytes[..]);
    }
    // Fill the cold page until it seals: the tier is told.
    let mut fillers = Vec::new();
    while store.take_sealed_cold().is_empty() {
        fillers.push(
            store
                .relocate_bytes(&[7u8; 4000], 7, Survivors::Cold)
                .unwrap(),
        );
        assert!(fillers.len() < 40, "a page holds 16 of these");
    }
    assert_eq!(store.read(moved[0]).unwrap()[0], 0);
}

/// What a read-through's copy is checked against: a page's image on SSD (slot, write
/// generation) is gone once the page is loaded, and a new write of it never has the same
/// generation, so a copy taken from an older image is never mistaken for the current one.
#[test]
fn a_spilled_image_is_named_by_slot_and_generation_and_never_repeats() {
    let store = one_shard_with_spill_file(9);
    let value = store.write(&[5u8; 700], 5).unwrap();
    seal_open_page(&store);
    assert_eq!(store.spilled_image(value.page), None, "in RAM");
    store.spill(value.page).unwrap();
    let first = store.spilled_image(value.page).unwrap();
    let read = store.read_cold_owned(value).unwrap().unwrap();
    assert_eq!(read.image, first, "a read names the image it came from");
    assert_eq!(&read.value[..], &[5u8; 700][..]);
    assert_eq!(read.owner, 5);
    store.load(value.page).unwrap();
    assert_eq!(store.spilled_image(value.page), None, "loaded: no image");
    store.spill(value.page).unwrap();
    let second = store.spilled_image(value.page).unwrap();
    assert_ne!(second.1, first.1, "a new write, a new generation");
}
