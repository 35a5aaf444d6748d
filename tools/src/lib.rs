//! tierkv operator tools.

pub mod bench;
