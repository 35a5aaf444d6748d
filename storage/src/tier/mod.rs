//! The SSD tier's building blocks (issue "Larger than RAM, part 1"): the spill file that holds
//! cold page images ([`spill`]) and the policy that chooses which pages stay in RAM
//! ([`policy`], W-TinyLFU over a frequency [`sketch`]).
//!
//! What is here is self-contained and tested on its own; the pool that moves pages between
//! RAM and the spill file, the asynchronous miss path and the server's configuration are the
//! next steps (docs/ARCHITECTURE.md, "The SSD tier").

pub mod policy;
pub mod sketch;
pub mod spill;

pub use policy::{EvictionPolicy, Policy};
pub use sketch::FrequencySketch;
pub use spill::{SlotId, SpillError, SpillFile, SpillStats};
