//! Seeded single-threaded simulation: long random histories (transactions, a manual clock,
//! GC and active expiry interleaved) checked against the model after every step.
//!
//! A failure prints `TIERKV_SEED=<n>`; rerun exactly that history with
//! `TIERKV_SEED=<n> cargo test -p tierkv-txn --test simulation`; `TIERKV_STEPS=<k>` stops it
//! after `k` steps (to find the first step that fails), `TIERKV_TRACE=1` prints each step.

mod common;

use common::{Harness, Step, KEYS, SLOTS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random_step(rng: &mut StdRng) -> Step {
    let slot = rng.gen_range(0..SLOTS);
    let key = rng.gen_range(0..KEYS);
    match rng.gen_range(0..100) {
        0..=9 => Step::Begin {
            slot,
            serializable: rng.gen_bool(0.5),
        },
        10..=29 => Step::Get { slot, key },
        30..=49 => Step::Put {
            slot,
            key,
            value: rng.gen(),
            ttl: rng.gen_bool(0.3).then(|| rng.gen_range(1..20)),
            keep: rng.gen_bool(0.1),
        },
        50..=57 => Step::Delete { slot, key },
        58..=62 => Step::SetExpiry {
            slot,
            key,
            ttl: rng.gen_bool(0.7).then(|| rng.gen_range(0..20)),
        },
        63..=69 => Step::Scan {
            slot,
            db: rng.gen_range(0..2),
            limit: rng.gen_range(1..6),
        },
        70..=84 => Step::Commit { slot },
        85..=87 => Step::Abort { slot },
        88..=92 => Step::Advance {
            ms: rng.gen_range(0..5),
        },
        93..=94 => Step::Gc,
        95 => Step::Compact,
        96..=97 => Step::ExpireTick,
        98 => match rng.gen_range(0..6) {
            0 => Step::SwapDb,
            1 => Step::FlushDb {
                db: rng.gen_range(0..2),
            },
            2 | 3 => Step::TxSwapDb { slot },
            4 => Step::TxFlushDb {
                slot,
                db: rng.gen_range(0..2),
            },
            _ => Step::TxFlushAll { slot },
        },
        _ => Step::FlushDb {
            db: rng.gen_range(0..2),
        },
    }
}

/// Runs one seed; returns the values compaction moved in it.
fn run_seed(seed: u64, steps: usize) -> u64 {
    let outcome = std::panic::catch_unwind(|| {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut harness = Harness::new();
        for _ in 0..steps {
            let step = random_step(&mut rng);
            if std::env::var("TIERKV_TRACE").is_ok() {
                eprintln!("{step:?}");
            }
            harness.step(&step);
        }
        harness.finish();
        // A history that never committed anything would check nothing.
        assert!(
            harness.model.last_ts > steps as u64 / 100,
            "only {} commits",
            harness.model.last_ts
        );
        (
            harness.model.last_ts,
            harness.engine.compaction_stats().values_moved,
        )
    });
    match outcome {
        Ok((commits, moved)) => {
            eprintln!("seed {seed}: {commits} commits, {moved} values moved by compaction");
            moved
        }
        Err(panic) => {
            eprintln!("simulation failed: TIERKV_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn simulation() {
    if let Some(seed) = std::env::var("TIERKV_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        let steps = std::env::var("TIERKV_STEPS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5_000);
        run_seed(seed, steps);
        return;
    }
    let base: u64 = rand::random();
    let moved: u64 = (0..100)
        .map(|i| run_seed(base.wrapping_add(i), 5_000))
        .sum();
    assert!(
        moved > 0,
        "compaction never moved a value: the runs did not exercise it"
    );
}
