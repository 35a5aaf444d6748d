//! A shuttle model of relocation's re-point and grace-period protocol (`txn/src/compact.rs`):
//! readers register a snapshot (`snapshot.rs`), load a value's place from its key node and
//! read the bytes there; the relocator copies the value, re-points the node under the commit
//! lock, publishes a timestamp R, and frees the old place once the low watermark reaches R.
//!
//! Shuttle explores interleavings at every operation on its own atomics and locks; the engine
//! uses std and parking_lot ones, which shuttle cannot schedule around, so the protocol is
//! modelled here step by step with the same memory orderings and lock scopes as the code
//! (registration: count, then the shard lock around reading the oracle; the relocator: store
//! the new place, then publish R, then compute the watermark under every shard lock). The
//! engine-level tests (`compaction.rs`, `compact::tests`) run the real code.
//!
//! `freeing_without_the_grace_period_is_caught` checks the model can fail: the same protocol
//! without the wait reads a freed place in some interleaving.

use shuttle::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use shuttle::sync::{Arc, Mutex};
use shuttle::thread;

const VALUE: u64 = 0xC0FFEE;
/// What a freed place reads as (debug builds junk freed values, see `PageStore::free`).
const JUNK: u64 = 0xDBDB;

struct Engine {
    /// The oracle's visible timestamp.
    visible: AtomicU64,
    /// Open snapshots, counted before registering (the registry's second invariant).
    open: AtomicUsize,
    /// One registry shard: the timestamps of registered snapshots.
    registry: Mutex<Vec<u64>>,
    commit_lock: Mutex<()>,
    /// The key node's value place: 0 or 1.
    location: AtomicU64,
    /// The bytes at each place.
    places: [AtomicU64; 2],
}

impl Engine {
    fn new() -> Engine {
        Engine {
            visible: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            registry: Mutex::new(Vec::new()),
            commit_lock: Mutex::new(()),
            location: AtomicU64::new(0),
            places: [AtomicU64::new(VALUE), AtomicU64::new(0)],
        }
    }

    fn register(&self) -> u64 {
        self.open.fetch_add(1, Ordering::SeqCst);
        let mut registry = self.registry.lock().unwrap();
        let ts = self.visible.load(Ordering::Acquire);
        registry.push(ts);
        ts
    }

    fn release(&self, ts: u64) {
        let mut registry = self.registry.lock().unwrap();
        if let Some(i) = registry.iter().position(|t| *t == ts) {
            registry.swap_remove(i);
        }
        self.open.fetch_sub(1, Ordering::Release);
    }

    fn low_watermark(&self) -> u64 {
        let registry = self.registry.lock().unwrap();
        let visible = self.visible.load(Ordering::Acquire);
        registry.iter().copied().fold(visible, u64::min)
    }

    /// `Engine::get`: register, load the place, read it, release.
    fn read(&self) -> u64 {
        let ts = self.register();
        let place = self.location.load(Ordering::Acquire) as usize;
        thread::yield_now();
        let bytes = self.places[place].load(Ordering::Relaxed);
        self.release(ts);
        bytes
    }

    /// One evacuation of the value from place 0 to place 1; `grace`: wait for the watermark
    /// before freeing the old place (the protocol), or not (the bug).
    fn relocate(&self, grace: bool) {
        // Step 2: the copy, outside the lock.
        self.places[1].store(VALUE, Ordering::Relaxed);
        // Step 3: re-point under the commit lock, then publish R.
        let retired_at = {
            let _lock = self.commit_lock.lock().unwrap();
            self.location.store(1, Ordering::Release);
            let r = self.visible.load(Ordering::Relaxed) + 1;
            self.visible.store(r, Ordering::Release);
            r
        };
        // Step 4: free the old place once no snapshot below R is left.
        if grace {
            while self.low_watermark() < retired_at {
                thread::yield_now();
            }
        }
        self.places[0].store(JUNK, Ordering::Relaxed);
    }
}

fn scenario(grace: bool) {
    let engine = Arc::new(Engine::new());
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let engine = Arc::clone(&engine);
            thread::spawn(move || {
                for _ in 0..2 {
                    assert_eq!(engine.read(), VALUE, "a reader read a freed place");
                }
            })
        })
        .collect();
    let relocator = {
        let engine = Arc::clone(&engine);
        thread::spawn(move || engine.relocate(grace))
    };
    for reader in readers {
        reader.join().unwrap();
    }
    relocator.join().unwrap();
    assert_eq!(engine.read(), VALUE);
}

#[test]
fn readers_never_read_a_relocated_value_s_old_place_after_it_is_freed() {
    shuttle::check_random(|| scenario(true), 5_000);
}

#[test]
#[should_panic(expected = "a reader read a freed place")]
fn freeing_without_the_grace_period_is_caught() {
    shuttle::check_random(|| scenario(false), 5_000);
}
