//! The SSD tier's building blocks (issue "Larger than RAM, part 1"): the spill file that holds
//! cold page images ([`spill`]), the policy that chooses which pages stay in RAM
//! ([`policy`], W-TinyLFU over a frequency [`sketch`]) and the lock-free histogram of the
//! file's read and write times ([`latency`]).
//!
//! Each is self-contained and tested on its own; the page store moves pages between RAM and
//! the spill file (`page/store/residency.rs`), and `txn`'s `tier.rs` drives it.

pub mod latency;
pub mod policy;
pub mod sketch;
pub mod spill;
pub mod uring;

pub use latency::LatencyHistogram;
pub use policy::{EvictionPolicy, Policy};
pub use sketch::FrequencySketch;
pub use spill::{ReadPlan, SlotId, SpillError, SpillFile, SpillStats};
pub use uring::Uring;
