//! BUGGIFY fault points, after FoundationDB: rare, seed-driven misbehaviour injected at named
//! call sites to shake out recovery paths in simulation.
//!
//! Invariant: without the `sim` feature every point is the constant `false`, so production builds
//! carry no branch and no state. With `sim`, a site is enabled or not once per seed (hash of seed
//! and site) and an enabled site fires with a small probability decided by the seed and the
//! number of calls so far, so a failing seed replays exactly when the calls come in the same
//! order (always, on one thread).

/// `buggify!()` is true when this call site should misbehave in the current simulation run.
#[macro_export]
macro_rules! buggify {
    () => {
        $crate::buggify::fire(concat!(file!(), ":", line!()))
    };
}

#[cfg(not(feature = "sim"))]
/// Always `false`: fault points are compiled out without the `sim` feature.
#[inline(always)]
pub fn fire(_site: &'static str) -> bool {
    false
}

#[cfg(not(feature = "sim"))]
/// No-op without the `sim` feature.
pub fn enable(_seed: u64) {}

#[cfg(not(feature = "sim"))]
/// No-op without the `sim` feature.
pub fn disable() {}

#[cfg(feature = "sim")]
mod imp {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// Share of sites enabled per seed, in percent.
    const SITE_ENABLED_PERCENT: u64 = 25;
    /// Chance that an enabled site fires on one call, in percent.
    const FIRE_PERCENT: u64 = 5;

    // Global rather than thread-local: the points sit on background threads (the WAL writer),
    // which must see the test's seed. Decisions follow the order of calls, so a run on one
    // thread replays exactly.
    static ENABLED: AtomicBool = AtomicBool::new(false);
    static SEED: AtomicU64 = AtomicU64::new(0);
    static CALLS: AtomicU64 = AtomicU64::new(0);

    fn splitmix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn site_hash(site: &str) -> u64 {
        // FNV-1a: stable across runs and platforms, unlike std's RandomState.
        site.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    }

    /// Turns fault points on, decided by `seed`.
    pub fn enable(seed: u64) {
        SEED.store(seed, Ordering::SeqCst);
        CALLS.store(0, Ordering::SeqCst);
        ENABLED.store(true, Ordering::SeqCst);
    }

    /// Turns fault points off.
    pub fn disable() {
        ENABLED.store(false, Ordering::SeqCst);
    }

    /// True when `site` should misbehave now.
    pub fn fire(site: &'static str) -> bool {
        if !ENABLED.load(Ordering::Relaxed) {
            return false;
        }
        let seed = SEED.load(Ordering::Relaxed);
        if splitmix(seed ^ site_hash(site)) % 100 >= SITE_ENABLED_PERCENT {
            return false;
        }
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        splitmix(seed.wrapping_add(call.wrapping_mul(0x2545_F491_4F6C_DD1D))) % 100 < FIRE_PERCENT
    }
}

#[cfg(feature = "sim")]
pub use imp::{disable, enable, fire};

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(not(feature = "sim"))]
    fn points_are_off_without_sim() {
        super::enable(7);
        assert!((0..1000).all(|_| !crate::buggify!()));
    }

    #[test]
    #[cfg(feature = "sim")]
    fn same_seed_same_decisions() {
        let run = |seed| {
            super::enable(seed);
            let v: Vec<bool> = (0..2000).map(|_| super::fire("site-a")).collect();
            super::disable();
            v
        };
        assert_eq!(run(3), run(3));
        assert!((0..64).any(|s| run(s).contains(&true)));
    }
}
