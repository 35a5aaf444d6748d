//! Log sequence numbers.

/// A log sequence number: the position of a record in the write-ahead log.
/// LSNs are assigned in strictly increasing order; `Lsn(0)` means "nothing logged".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);
