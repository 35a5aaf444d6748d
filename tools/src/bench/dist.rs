//! Key distributions: uniform, Zipf(θ) (optionally scrambled) and "latest".
//!
//! Invariant: every sampler returns a key id in `[0, n)` for the `n` it is given; the Zipf
//! sampler is exact (rejection-inversion), so rank frequencies match `k^-θ / H(n, θ)`.

use rand::Rng;

/// Which key distribution a run uses.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum KeyDistKind {
    /// Every key equally likely.
    Uniform,
    /// Zipf(θ) over ranks, ranks spread over the key space by a fixed bijection.
    Zipf {
        /// Skew: 0 is uniform, 0.99 is YCSB's default.
        theta: f64,
    },
    /// Zipf(θ) over recency: the most recently inserted key is the most popular.
    Latest {
        /// Skew of the recency distribution.
        theta: f64,
    },
}

/// Samples `k` in `[1, n]` with probability proportional to `k^-exponent`.
///
/// Rejection-inversion after Hörmann and Derflinger (1996): O(1) set-up, so "latest" can
/// rebuild it as the key space grows.
#[derive(Debug, Clone)]
pub struct ZipfSampler {
    n: f64,
    exponent: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

impl ZipfSampler {
    /// A sampler over `[1, n]`; `n` is clamped to at least 1 and `exponent` to at least 0.
    pub fn new(n: u64, exponent: f64) -> ZipfSampler {
        let n = n.max(1) as f64;
        let exponent = exponent.max(0.0);
        let h_integral_x1 = h_integral(1.5, exponent) - 1.0;
        let h_integral_n = h_integral(n + 0.5, exponent);
        let s = 2.0 - h_integral_inverse(h_integral(2.5, exponent) - h(2.0, exponent), exponent);
        ZipfSampler {
            n,
            exponent,
            h_integral_x1,
            h_integral_n,
            s,
        }
    }

    /// One rank in `[1, n]`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        loop {
            let u: f64 =
                self.h_integral_n + rng.gen::<f64>() * (self.h_integral_x1 - self.h_integral_n);
            let x = h_integral_inverse(u, self.exponent);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.s || u >= h_integral(k + 0.5, self.exponent) - h(k, self.exponent) {
                return k as u64;
            }
        }
    }
}

fn h(x: f64, exponent: f64) -> f64 {
    (-exponent * x.ln()).exp()
}

fn h_integral(x: f64, exponent: f64) -> f64 {
    let log_x = x.ln();
    helper2((1.0 - exponent) * log_x) * log_x
}

fn h_integral_inverse(x: f64, exponent: f64) -> f64 {
    let t = (x * (1.0 - exponent)).max(-1.0);
    (helper1(t) * x).exp()
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x - 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

/// A bijection of `[0, n)`: `x -> (x * mul + add) mod n` with `gcd(mul, n) = 1`.
///
/// Scrambles Zipf ranks over the key space without collisions, so hot keys are not all
/// neighbours and the rank frequencies survive exactly (YCSB's hash-based scrambling merges
/// ranks).
#[derive(Debug, Clone, Copy)]
pub struct Permutation {
    n: u64,
    mul: u64,
    add: u64,
}

impl Permutation {
    /// A fixed permutation of `[0, n)` (identity when `n <= 1`).
    pub fn new(n: u64) -> Permutation {
        let n = n.max(1);
        let mut mul = 0x9E37_79B9_7F4A_7C15 % n;
        while n > 1 && gcd(mul, n) != 1 {
            mul = (mul + 1) % n;
        }
        Permutation {
            n,
            mul: mul.max(1),
            add: 0x2545_F491_4F6C_DD1D % n,
        }
    }

    /// The image of `x` (taken modulo `n`).
    pub fn apply(&self, x: u64) -> u64 {
        let product = u128::from(x % self.n) * u128::from(self.mul) + u128::from(self.add);
        (product % u128::from(self.n)) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// A ready-to-sample key chooser for one connection.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    kind: KeyDistKind,
    n: u64,
    zipf: Option<ZipfSampler>,
    perm: Permutation,
    latest_cache: Option<(u64, ZipfSampler)>,
}

impl KeyChooser {
    /// A chooser over the `n` loaded keys.
    pub fn new(kind: KeyDistKind, n: u64) -> KeyChooser {
        let zipf = match kind {
            KeyDistKind::Zipf { theta } => Some(ZipfSampler::new(n, theta)),
            _ => None,
        };
        KeyChooser {
            kind,
            n: n.max(1),
            zipf,
            perm: Permutation::new(n),
            latest_cache: None,
        }
    }

    /// A key id in `[0, n)`, or for `Latest` in `[0, existing)` where `existing` is how many
    /// keys have been inserted so far (loaded plus run-phase inserts).
    pub fn sample<R: Rng + ?Sized>(&mut self, rng: &mut R, existing: u64) -> u64 {
        match (self.kind, &self.zipf) {
            (KeyDistKind::Uniform, _) => rng.gen_range(0..self.n),
            (KeyDistKind::Zipf { .. }, Some(zipf)) => self.perm.apply(zipf.sample(rng) - 1),
            (KeyDistKind::Zipf { .. }, None) => rng.gen_range(0..self.n),
            (KeyDistKind::Latest { theta }, _) => {
                let existing = existing.max(1);
                // Rebuilding is O(1) but costs a few transcendental calls; reuse while the
                // key space has not grown.
                let sampler = match &self.latest_cache {
                    Some((cached_n, sampler)) if *cached_n == existing => sampler.clone(),
                    _ => {
                        let sampler = ZipfSampler::new(existing, theta);
                        self.latest_cache = Some((existing, sampler.clone()));
                        sampler
                    }
                };
                existing - sampler.sample(rng)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn harmonic(n: u64, theta: f64) -> f64 {
        (1..=n).map(|k| (k as f64).powf(-theta)).sum()
    }

    #[test]
    fn zipf_rank_frequencies_match_theory() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for &(n, theta) in &[(1000u64, 0.99), (50, 0.5), (10_000, 1.2)] {
            let sampler = ZipfSampler::new(n, theta);
            let draws = 200_000u64;
            let mut counts = vec![0u64; n as usize + 1];
            for _ in 0..draws {
                let k = sampler.sample(&mut rng);
                assert!((1..=n).contains(&k));
                counts[k as usize] += 1;
            }
            let h = harmonic(n, theta);
            for rank in 1..=10u64 {
                let expected = draws as f64 * (rank as f64).powf(-theta) / h;
                let observed = counts[rank as usize] as f64;
                // 5 standard deviations of a binomial count, plus 1% slack.
                let tolerance = 5.0 * expected.sqrt() + 0.01 * expected;
                assert!(
                    (observed - expected).abs() <= tolerance,
                    "n={n} theta={theta} rank={rank}: observed {observed}, expected {expected:.0}"
                );
            }
        }
    }

    #[test]
    fn zipf_theta_zero_is_uniform() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let sampler = ZipfSampler::new(10, 0.0);
        let mut counts = [0u64; 11];
        for _ in 0..100_000 {
            counts[sampler.sample(&mut rng) as usize] += 1;
        }
        for &count in &counts[1..] {
            assert!((9_000..=11_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 7, 12, 1000, 1024, 999_983] {
            let perm = Permutation::new(n);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = perm.apply(x);
                assert!(y < n);
                assert!(!seen[y as usize], "n={n}: {y} hit twice");
                seen[y as usize] = true;
            }
        }
    }

    #[test]
    fn latest_prefers_recent_keys_and_stays_in_range() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut chooser = KeyChooser::new(KeyDistKind::Latest { theta: 0.99 }, 100);
        let mut newest = 0u64;
        for _ in 0..10_000 {
            let k = chooser.sample(&mut rng, 500);
            assert!(k < 500);
            if k == 499 {
                newest += 1;
            }
        }
        // Rank 1 of Zipf(0.99) over 500 keys has probability about 0.15.
        assert!(newest > 1_000, "newest key drawn {newest} times");
    }

    #[test]
    fn uniform_and_zipf_choosers_stay_in_range() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for kind in [KeyDistKind::Uniform, KeyDistKind::Zipf { theta: 0.99 }] {
            let mut chooser = KeyChooser::new(kind, 37);
            for _ in 0..5_000 {
                assert!(chooser.sample(&mut rng, 37) < 37);
            }
        }
    }
}
