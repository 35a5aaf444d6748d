//! BUGGIFY fault points, after FoundationDB: rare, seed-driven misbehaviour injected at named
//! call sites to shake out recovery paths in simulation.
//!
//! Invariant: without the `sim` feature every point is the constant `false`, so production builds
//! carry no branch and no state. With `sim`, a site is enabled or not once per seed (hash of seed
//! and site) and an enabled site fires with a small probability from a per-thread seeded RNG, so
//! a failing seed replays exactly on one thread.

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
    use std::cell::Cell;

    /// Share of sites enabled per seed, in percent.
    const SITE_ENABLED_PERCENT: u64 = 25;
    /// Chance that an enabled site fires on one call, in percent.
    const FIRE_PERCENT: u64 = 5;

    thread_local! {
        static SEED: Cell<Option<u64>> = const { Cell::new(None) };
        static RNG: Cell<u64> = const { Cell::new(0) };
    }

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

    /// Turns fault points on for this thread, decided by `seed`.
    pub fn enable(seed: u64) {
        SEED.with(|s| s.set(Some(seed)));
        RNG.with(|r| r.set(splitmix(seed)));
    }

    /// Turns fault points off for this thread.
    pub fn disable() {
        SEED.with(|s| s.set(None));
    }

    /// True when `site` should misbehave now.
    pub fn fire(site: &'static str) -> bool {
        let Some(seed) = SEED.with(Cell::get) else {
            return false;
        };
        if splitmix(seed ^ site_hash(site)) % 100 >= SITE_ENABLED_PERCENT {
            return false;
        }
        RNG.with(|r| {
            let next = splitmix(r.get());
            r.set(next);
            next % 100 < FIRE_PERCENT
        })
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
