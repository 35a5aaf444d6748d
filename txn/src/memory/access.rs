//! The 24-bit access word each key node carries, read and written as Redis does its object's
//! `lru` field (src/evict.c):
//!
//! - under an LRU (or no) policy: the LRU clock, seconds since the epoch modulo 2^24 (wraps
//!   after 194 days; idle times are computed modulo the wrap, as Redis does);
//! - under an LFU policy: the minute of the last decrement (16 bits, modulo 2^16) above an
//!   8-bit logarithmic access counter that starts at [`LFU_INIT_VAL`], grows with probability
//!   `1 / ((counter - LFU_INIT_VAL) * lfu_log_factor + 1)` per access and loses one per
//!   `lfu_decay_time` idle minutes.
//!
//! Switching between LRU and LFU policies reinterprets the words in place (Redis's warning
//! "data will take some time to adjust" applies). Time comes from the engine's cached access
//! clock, never from a clock call per read. Invariant: these functions are pure given the word,
//! the clock and a random draw, so tests check them exactly.

use std::cell::Cell;

use crate::index::ACCESS_MASK;

/// The LRU clock's largest value (24 bits).
pub(crate) const LRU_CLOCK_MAX: u32 = ACCESS_MASK;
/// Milliseconds per LRU clock tick.
pub(crate) const LRU_CLOCK_RESOLUTION_MS: u64 = 1000;
/// An LFU counter's value for a new key, so it is not evicted before it can be used.
pub(crate) const LFU_INIT_VAL: u32 = 5;
/// Milliseconds per LFU time unit.
const LFU_MINUTE_MS: u64 = 60_000;
/// The LFU minute clock's largest value (16 bits).
const LFU_MINUTES_MAX: u32 = u16::MAX as u32;
const LFU_COUNTER_MAX: u32 = 255;

/// What OBJECT FREQ / OBJECT IDLETIME report for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    /// Under an LRU (or no) eviction policy: time since the last access, in milliseconds
    /// (one-second resolution).
    Idle {
        /// Milliseconds.
        ms: u64,
    },
    /// Under an LFU policy: the logarithmic access counter after decay (0..=255).
    Frequency {
        /// The counter.
        counter: u8,
    },
}

/// How access words are read and written right now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tracking {
    /// LFU words rather than LRU clocks.
    pub(crate) lfu: bool,
    /// The cached engine clock, ms since the epoch.
    pub(crate) now_ms: u64,
    /// `lfu-log-factor`.
    pub(crate) lfu_log_factor: u32,
    /// `lfu-decay-time`, minutes.
    pub(crate) lfu_decay_time_min: u32,
}

fn lru_clock(now_ms: u64) -> u32 {
    ((now_ms / LRU_CLOCK_RESOLUTION_MS) & u64::from(LRU_CLOCK_MAX)) as u32
}

fn lfu_minutes(now_ms: u64) -> u32 {
    ((now_ms / LFU_MINUTE_MS) & u64::from(LFU_MINUTES_MAX)) as u32
}

/// Redis's `estimateObjectIdleTime`.
fn lru_idle_ms(word: u32, now_ms: u64) -> u64 {
    let now = lru_clock(now_ms);
    let ticks = if now >= word {
        now - word
    } else {
        now + (LRU_CLOCK_MAX - word)
    };
    u64::from(ticks) * LRU_CLOCK_RESOLUTION_MS
}

/// Redis's `LFUTimeElapsed`.
fn lfu_elapsed_minutes(last: u32, now_ms: u64) -> u32 {
    let now = lfu_minutes(now_ms);
    if now >= last {
        now - last
    } else {
        LFU_MINUTES_MAX - last + now
    }
}

/// Redis's `LFULogIncr`, with `draw` uniform in `[0, 1)`.
fn lfu_log_incr(counter: u32, log_factor: u32, draw: f64) -> u32 {
    if counter >= LFU_COUNTER_MAX {
        return LFU_COUNTER_MAX;
    }
    let base = f64::from(counter.saturating_sub(LFU_INIT_VAL));
    let p = 1.0 / (base * f64::from(log_factor) + 1.0);
    if draw < p {
        counter + 1
    } else {
        counter
    }
}

thread_local! {
    static DRAWS: Cell<u64> = const { Cell::new(0x2545_F491_4F6C_DD1D) };
}

/// A uniform draw in `[0, 1)` from a per-thread xorshift generator (fixed seed: the engine's
/// simulation stays deterministic).
fn draw() -> f64 {
    DRAWS.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

impl Tracking {
    /// The word of a key that just got a value.
    pub(crate) fn fresh(&self) -> u32 {
        if self.lfu {
            (lfu_minutes(self.now_ms) << 8) | LFU_INIT_VAL
        } else {
            lru_clock(self.now_ms)
        }
    }

    /// The LFU counter of `word` after decay (Redis's `LFUDecrAndReturn`).
    pub(crate) fn lfu_counter(&self, word: u32) -> u32 {
        let counter = word & 0xFF;
        let periods = lfu_elapsed_minutes(word >> 8, self.now_ms)
            .checked_div(self.lfu_decay_time_min)
            .unwrap_or(0);
        counter.saturating_sub(periods)
    }

    /// The word after one access, given a random draw in `[0, 1)` (Redis's `updateLFU`, or
    /// the LRU clock).
    pub(crate) fn touched_with(&self, word: u32, draw: f64) -> u32 {
        if self.lfu {
            let counter = lfu_log_incr(self.lfu_counter(word), self.lfu_log_factor, draw);
            (lfu_minutes(self.now_ms) << 8) | counter
        } else {
            lru_clock(self.now_ms)
        }
    }

    /// The word after one access.
    pub(crate) fn touched(&self, word: u32) -> u32 {
        // The draw only matters for an LFU counter below its maximum; skip it otherwise.
        if self.lfu && word & 0xFF < LFU_COUNTER_MAX {
            self.touched_with(word, draw())
        } else {
            self.touched_with(word, 1.0)
        }
    }

    /// The word of a key loaded with what a checkpoint saved of its access (Redis's
    /// `objectSetLRUOrLFU`): under an LRU policy an idle time counted back from now, under an
    /// LFU one the counter with this minute as its last decrement (time spent down does not
    /// decay it). A kind the current policy does not read is ignored: the key starts fresh.
    pub(crate) fn restored(&self, saved: KeyAccess) -> u32 {
        match (self.lfu, saved) {
            (false, KeyAccess::Idle { ms }) => {
                let ticks = (ms / LRU_CLOCK_RESOLUTION_MS).min(u64::from(LRU_CLOCK_MAX)) as u32;
                let now = lru_clock(self.now_ms);
                if now >= ticks {
                    now - ticks
                } else {
                    LRU_CLOCK_MAX - (ticks - now)
                }
            }
            (true, KeyAccess::Frequency { counter }) => {
                (lfu_minutes(self.now_ms) << 8) | u32::from(counter)
            }
            _ => self.fresh(),
        }
    }

    /// What OBJECT reports for `word`.
    pub(crate) fn report(&self, word: u32) -> KeyAccess {
        if self.lfu {
            KeyAccess::Frequency {
                counter: self.lfu_counter(word) as u8,
            }
        } else {
            KeyAccess::Idle {
                ms: lru_idle_ms(word, self.now_ms),
            }
        }
    }

    /// An eviction score: higher evicts first (idle ms under LRU, 255 - counter under LFU).
    pub(crate) fn eviction_score(&self, word: u32) -> u64 {
        match self.report(word) {
            KeyAccess::Idle { ms } => ms,
            KeyAccess::Frequency { counter } => u64::from(u8::MAX - counter),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lru(now_ms: u64) -> Tracking {
        Tracking {
            lfu: false,
            now_ms,
            lfu_log_factor: 10,
            lfu_decay_time_min: 1,
        }
    }

    fn lfu(now_ms: u64) -> Tracking {
        Tracking {
            lfu: true,
            ..lru(now_ms)
        }
    }

    #[test]
    fn lru_idle_time_counts_whole_seconds_and_survives_the_wrap() {
        let t0 = 1_700_000_000_000;
        let word = lru(t0).fresh();
        assert_eq!(lru(t0 + 999).report(word), KeyAccess::Idle { ms: 0 });
        assert_eq!(lru(t0 + 2_000).report(word), KeyAccess::Idle { ms: 2_000 });
        assert_eq!(lru(t0 + 5_000).touched(word), lru(t0 + 5_000).fresh());
        // A clock that wrapped past 2^24 seconds still yields the elapsed time (Redis's formula
        // loses one tick at the wrap; so do we).
        let wrap_ms = u64::from(LRU_CLOCK_MAX + 1) * 1000;
        let before = lru(wrap_ms - 3_000).fresh();
        assert_eq!(
            lru(wrap_ms + 2_000).report(before),
            KeyAccess::Idle { ms: 4_000 }
        );
    }

    #[test]
    fn lfu_counter_starts_at_five_grows_logarithmically_and_decays() {
        let t0 = 1_700_000_000_000;
        let word = lfu(t0).fresh();
        assert_eq!(lfu(t0).report(word), KeyAccess::Frequency { counter: 5 });
        // At the initial value the first access always counts (p = 1) ...
        let once = lfu(t0).touched_with(word, 0.999);
        assert_eq!(lfu(t0).report(once), KeyAccess::Frequency { counter: 6 });
        // ... the next one with p = 1 / (1 * 10 + 1).
        assert_eq!(lfu(t0).touched_with(once, 0.09), (lfu_minutes(t0) << 8) | 7);
        assert_eq!(lfu(t0).touched_with(once, 0.091), once);
        // Decay: one per idle minute (lfu-decay-time 1), never below 0.
        assert_eq!(
            lfu(t0 + 3 * 60_000).report(once),
            KeyAccess::Frequency { counter: 3 }
        );
        assert_eq!(
            lfu(t0 + 90 * 60_000).report(once),
            KeyAccess::Frequency { counter: 0 }
        );
        let no_decay = Tracking {
            lfu_decay_time_min: 0,
            ..lfu(t0 + 90 * 60_000)
        };
        assert_eq!(no_decay.report(once), KeyAccess::Frequency { counter: 6 });
        // Saturates at 255.
        let max = (lfu_minutes(t0) << 8) | 255;
        assert_eq!(lfu(t0).touched(max), max);
    }

    #[test]
    fn eviction_scores_rank_idle_and_rare_keys_first() {
        let t0 = 1_700_000_000_000;
        let old = lru(t0).fresh();
        let recent = lru(t0 + 10_000).fresh();
        let now = lru(t0 + 20_000);
        assert!(now.eviction_score(old) > now.eviction_score(recent));
        let rare = lfu(t0).fresh();
        let frequent = (lfu_minutes(t0) << 8) | 40;
        assert!(lfu(t0).eviction_score(rare) > lfu(t0).eviction_score(frequent));
    }

    #[test]
    fn draws_are_uniform_enough() {
        let n = 100_000;
        let below_tenth = (0..n).filter(|_| draw() < 0.1).count();
        assert!((8_000..12_000).contains(&below_tenth), "{below_tenth}");
    }
}
