//! Model and concurrency tests of the page store.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;

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
                    let vref = store.write(&value).unwrap();
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
            prop_assert_eq!(stats.bytes_live, model.values().map(|v| v.len() as u64).sum::<u64>());
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
                    let vref = store.write(&vec![byte; len]).unwrap();
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
    let vref = store.write(&value).unwrap();
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
    let mut current = store.write(&value).unwrap();
    for round in 0..1_000u32 {
        // MVCC order: the new version is written before the old one is freed.
        let next = store.write(&value).unwrap();
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
                    live.push(store.write(&vec![pages as u8; len]).unwrap());
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
            prop_assert_eq!(stats.page_ids, stats.pages + stats.bare_ids, "{:?}", stats);
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
        prop_assert!(stats.bare_id_runs <= stats.free_pages + 1, "{:?}", stats);
        prop_assert_eq!(stats.page_ids, stats.pages + stats.bare_ids);
    }
}
