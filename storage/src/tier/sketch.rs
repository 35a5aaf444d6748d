//! A 4-bit count-min sketch of access frequency with periodic halving (TinyLFU's "reset"), as
//! Caffeine's `FrequencySketch`: the admission filter of W-TinyLFU (`policy.rs`).
//!
//! Invariant: `frequency(x)` never underestimates how often `x` was recorded since the last
//! halving, up to 15 (each of the `DEPTH` counters of `x` was incremented at least that often,
//! saturating), and halving keeps it an overestimate of half the count: old popularity decays,
//! so the sketch follows a shifting hot set. Memory: 8 bytes per 16 counters, a table of
//! `next_power_of_two(capacity)` words, i.e. 8 bytes per expected entry.
//!
//! Why written here and not taken from a crate: the sketch is some 100 lines, it sits on the
//! pool's hot path (one call per access), and the crates that have one (moka) keep it private
//! behind their own cache; the standalone ones are unmaintained.

/// Counters per item.
const DEPTH: usize = 4;
/// A counter saturates here (4 bits).
const COUNTER_MAX: u64 = 15;
/// Items recorded, per expected entry, before every counter is halved (Caffeine uses 10).
const SAMPLES_PER_ENTRY: u64 = 10;
/// Per-depth seeds (odd constants from splitmix64 and xxhash).
const SEEDS: [u64; DEPTH] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x85EB_CA77_C2B2_AE63,
];

/// A count-min sketch of 4-bit counters (see the module docs).
#[derive(Debug, Clone)]
pub struct FrequencySketch {
    table: Vec<u64>,
    /// Counters in the table minus one (a power of two minus one).
    counter_mask: u64,
    /// Items recorded since the last halving.
    samples: u64,
    sample_limit: u64,
}

fn mix(x: u64) -> u64 {
    // splitmix64's finaliser: every input bit reaches every output bit.
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl FrequencySketch {
    /// A sketch sized for about `capacity` distinct items in the cache.
    pub fn new(capacity: usize) -> FrequencySketch {
        let words = capacity.clamp(1, 1 << 30).next_power_of_two();
        FrequencySketch {
            table: vec![0; words],
            counter_mask: (words as u64 * 16) - 1,
            samples: 0,
            sample_limit: (words as u64).saturating_mul(SAMPLES_PER_ENTRY),
        }
    }

    /// (word index, bit shift) of `item`'s counter at `depth`.
    fn slot(&self, item: u64, depth: usize) -> (usize, u32) {
        let seed = SEEDS.get(depth).copied().unwrap_or(1);
        let counter = mix(item.wrapping_add(seed)) & self.counter_mask;
        ((counter >> 4) as usize, ((counter & 15) * 4) as u32)
    }

    fn counter(&self, item: u64, depth: usize) -> u64 {
        let (word, shift) = self.slot(item, depth);
        self.table
            .get(word)
            .map_or(0, |w| (w >> shift) & COUNTER_MAX)
    }

    /// How often `item` was recorded (an overestimate; at most 15).
    pub fn frequency(&self, item: u64) -> u8 {
        (0..DEPTH)
            .map(|depth| self.counter(item, depth))
            .min()
            .unwrap_or(0) as u8
    }

    /// Records one access of `item`; halves every counter once enough were recorded.
    pub fn record(&mut self, item: u64) {
        let mut added = false;
        for depth in 0..DEPTH {
            let (word, shift) = self.slot(item, depth);
            if let Some(w) = self.table.get_mut(word) {
                if (*w >> shift) & COUNTER_MAX < COUNTER_MAX {
                    *w += 1 << shift;
                    added = true;
                }
            }
        }
        if added {
            self.samples += 1;
            if self.samples >= self.sample_limit {
                self.halve();
            }
        }
    }

    /// Halves every counter (TinyLFU's reset), so past popularity fades.
    fn halve(&mut self) {
        // Each 4-bit counter shifted right by one: the bit falling out of a counter is masked
        // off instead of landing in its neighbour.
        const KEEP: u64 = 0x7777_7777_7777_7777;
        for w in &mut self.table {
            *w = (*w >> 1) & KEEP;
        }
        self.samples /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_saturate_at_fifteen_and_halve() {
        let mut sketch = FrequencySketch::new(64);
        for _ in 0..20 {
            sketch.record(42);
        }
        assert_eq!(sketch.frequency(42), 15);
        sketch.halve();
        assert_eq!(sketch.frequency(42), 7);
        assert_eq!(sketch.frequency(43), 0);
    }

    #[test]
    fn popularity_fades_after_enough_samples() {
        let mut sketch = FrequencySketch::new(16);
        for _ in 0..15 {
            sketch.record(1);
        }
        // 16 words x 10 samples: a stream of other items triggers halvings.
        for item in 1000..3000 {
            sketch.record(item);
        }
        assert!(sketch.frequency(1) < 15, "old popularity decays");
    }

    proptest! {
        /// Count-min never underestimates (below the saturation point, between halvings).
        #[test]
        fn never_underestimates(items in proptest::collection::vec(0u64..50, 1..300)) {
            let mut sketch = FrequencySketch::new(4096);
            let mut counts = std::collections::HashMap::new();
            for &item in &items {
                sketch.record(item);
                *counts.entry(item).or_insert(0u64) += 1;
            }
            for (&item, &count) in &counts {
                prop_assert!(u64::from(sketch.frequency(item)) >= count.min(15));
            }
        }
    }
}
