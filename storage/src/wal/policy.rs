//! [`FsyncPolicy`]: when the WAL writer calls fdatasync, and what each choice promises.
//!
//! Invariant: a record is reported durable (`durable_lsn`, `wait_durable`, subscribers) only
//! once it has reached the point the policy promises, never earlier.

/// When the WAL writer makes written records durable. "Acknowledged" below means
/// `wait_durable` returned and subscribers saw the LSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// fdatasync after every group-commit batch; a record is acknowledged only after the
    /// fdatasync covering it returned.
    /// Process crash: every acknowledged record survives. Power cut: every acknowledged record
    /// survives (on a medium that honours flushes, see docs/FORMATS.md).
    #[default]
    Always,
    /// Records are acknowledged once written to the OS (`write` returned); a background fsync
    /// runs about once a second, and at segment rotation, shutdown and every
    /// `WAL_UNSYNCED_BYTES_MAX` bytes.
    /// Process crash: every acknowledged record survives (it is in the page cache).
    /// Power cut: up to about one second of acknowledged records may be lost; the log stays a
    /// clean prefix (the reader cuts the torn tail).
    EverySec,
    /// Records are acknowledged once written to the OS; the writer fsyncs only at segment
    /// rotation, shutdown and every `WAL_UNSYNCED_BYTES_MAX` bytes, otherwise leaving it to the OS.
    /// Process crash: every acknowledged record survives. Power cut: an unbounded (in time)
    /// suffix of acknowledged records may be lost; the log stays a clean prefix.
    No,
}
