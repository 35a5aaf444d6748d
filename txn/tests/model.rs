//! Property test: random interleaved transaction histories (begin/get/put/delete/set_expiry/
//! scan/commit/abort, and FLUSHDB/FLUSHALL/SWAPDB inside them, over several open transactions,
//! with clock moves, GC, active expiry, and the single-key fast paths `Engine::put`, `update`
//! and `get` modelled as one-command transactions)
//! run against the engine and a model of version lists; every read, conflict and scan must
//! agree.

mod common;

use common::{Harness, Step, KEYS, SLOTS};
use proptest::prelude::*;

fn step() -> impl Strategy<Value = Step> {
    let slot = 0..SLOTS;
    let key = 0..KEYS;
    prop_oneof![
        3 => (slot.clone(), any::<bool>()).prop_map(|(slot, serializable)| Step::Begin { slot, serializable }),
        5 => (slot.clone(), key.clone()).prop_map(|(slot, key)| Step::Get { slot, key }),
        5 => (slot.clone(), key.clone(), any::<u8>(), proptest::option::of(1u64..6), proptest::bool::weighted(0.15))
            .prop_map(|(slot, key, value, ttl, keep)| Step::Put { slot, key, value, ttl, keep }),
        2 => (slot.clone(), key.clone()).prop_map(|(slot, key)| Step::Delete { slot, key }),
        1 => (slot.clone(), key.clone(), proptest::option::of(0u64..6)).prop_map(|(slot, key, ttl)| Step::SetExpiry { slot, key, ttl }),
        2 => (slot.clone(), 0u8..2, 1usize..5).prop_map(|(slot, db, limit)| Step::Scan { slot, db, limit }),
        3 => slot.clone().prop_map(|slot| Step::Commit { slot }),
        1 => slot.prop_map(|slot| Step::Abort { slot }),
        1 => (0u64..4).prop_map(|ms| Step::Advance { ms }),
        1 => Just(Step::Gc),
        1 => Just(Step::Compact),
        1 => Just(Step::ExpireTick),
        1 => (0u8..2).prop_map(|db| Step::FlushDb { db }),
        1 => Just(Step::SwapDb),
        1 => (0..SLOTS, 0u8..2).prop_map(|(slot, db)| Step::TxFlushDb { slot, db }),
        1 => (0..SLOTS).prop_map(|slot| Step::TxSwapDb { slot }),
        1 => (0..SLOTS).prop_map(|slot| Step::TxFlushAll { slot }),
        3 => (key.clone(), any::<u8>(), proptest::option::of(1u64..6))
            .prop_map(|(key, value, ttl)| Step::OnePut { key, value, ttl }),
        2 => (key.clone(), prop_oneof![-3i64..4, Just(i64::MAX), Just(i64::MIN)])
            .prop_map(|(key, delta)| Step::OneIncr { key, delta }),
        1 => key.clone().prop_map(|key| Step::OneDelete { key }),
        2 => key.prop_map(|key| Step::OneGet { key }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]
    #[test]
    fn engine_matches_model(steps in proptest::collection::vec(step(), 1..80)) {
        let mut harness = Harness::new();
        for step in &steps {
            harness.step(step);
        }
        harness.finish();
    }
}
