//! Expiry: the clock seam and the timing wheel that drives active expiry.
//!
//! Invariant: the wheel is only a hint. Whether a key is expired is decided by its current
//! version's absolute deadline and the [`Clock`]; a wheel entry whose deadline no longer matches
//! the key's current one is stale and ignored.

pub mod clock;
pub(crate) mod schedule;
pub mod timing_wheel;

pub use clock::{Clock, ManualClock, SystemClock};
pub(crate) use schedule::ExpirySchedule;
pub use timing_wheel::TimingWheel;
