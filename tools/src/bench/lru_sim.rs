//! An ideal value-granular LRU cache, simulated over a run's own request trace: the yardstick
//! for the SSD tier's hit ratio (issue "Larger than RAM, part 1": at least 95 % of what such
//! a cache of the same byte budget gets on the same trace).
//!
//! "Ideal": it evicts exactly the least recently used value, by bytes, with no page, header
//! or index cost. GETs count hits; a GET that misses brings its value in, and a SET puts its
//! value in (both most recent). The load phase's writes, in key order, warm it first, as they
//! warm the server. Invariant: `used` is the sum of the sizes of the values held, never above
//! the capacity after an access.

use std::collections::{BTreeMap, HashMap};

/// The cache (see the module docs).
#[derive(Debug)]
pub struct LruSim {
    capacity: u64,
    used: u64,
    clock: u64,
    /// Key -> (last use, size).
    held: HashMap<u64, (u64, u64)>,
    /// Last use -> key, oldest first.
    order: BTreeMap<u64, u64>,
}

impl LruSim {
    /// An empty cache of `capacity` bytes.
    pub fn new(capacity: u64) -> LruSim {
        LruSim {
            capacity,
            used: 0,
            clock: 0,
            held: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// An access to `key`, whose value is `size` bytes: true if it was held (a hit). Either
    /// way it is held afterwards, as the most recent, if it fits at all.
    pub fn access(&mut self, key: u64, size: u64) -> bool {
        self.clock += 1;
        let hit = match self.held.get_mut(&key) {
            Some((last, held_size)) => {
                self.order.remove(last);
                *last = self.clock;
                self.used = self.used - *held_size + size;
                *held_size = size;
                true
            }
            None => {
                self.held.insert(key, (self.clock, size));
                self.used += size;
                false
            }
        };
        self.order.insert(self.clock, key);
        while self.used > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, size)) = self.held.remove(&oldest) {
                self.used -= size;
            }
        }
        hit
    }
}

/// The GET hit ratio of an LRU cache of `capacity` bytes warmed by writing keys
/// `0..loaded` in order and then fed `trace` (`(key, is_get)`); `size` gives a key's value
/// size. `None` without a GET.
pub fn get_hit_ratio(
    capacity: u64,
    loaded: u64,
    trace: &[(u64, bool)],
    size: impl Fn(u64) -> u64,
) -> Option<f64> {
    let mut cache = LruSim::new(capacity);
    for key in 0..loaded {
        cache.access(key, size(key));
    }
    let (mut gets, mut hits) = (0u64, 0u64);
    for &(key, is_get) in trace {
        let hit = cache.access(key, size(key));
        if is_get {
            gets += 1;
            hits += u64::from(hit);
        }
    }
    (gets > 0).then(|| hits as f64 / gets as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_value_goes_first_by_bytes() {
        let mut cache = LruSim::new(300);
        assert!(!cache.access(1, 100));
        assert!(!cache.access(2, 100));
        assert!(!cache.access(3, 100));
        assert!(cache.access(1, 100), "1 is held and now the most recent");
        assert!(!cache.access(4, 100), "4 evicts 2, the oldest");
        assert!(cache.access(3, 100));
        assert!(!cache.access(2, 100), "2 was evicted");
        assert!(!cache.access(5, 250), "a large value evicts several");
        assert_eq!(cache.used, 250);
        assert!(
            !cache.access(6, 400),
            "a value larger than the cache is never held"
        );
        assert_eq!(cache.used, 0);
    }

    #[test]
    fn a_cache_that_holds_everything_hits_every_get_and_a_cyclic_scan_defeats_a_small_one() {
        let trace: Vec<(u64, bool)> = (0..10).cycle().take(100).map(|k| (k, true)).collect();
        assert_eq!(get_hit_ratio(1000, 10, &trace, |_| 100), Some(1.0));
        // Ten keys cycled through a cache of nine: LRU's worst case, never a hit.
        assert_eq!(get_hit_ratio(900, 0, &trace, |_| 100), Some(0.0));
        assert_eq!(get_hit_ratio(900, 0, &[(1, false)], |_| 100), None);
    }
}
