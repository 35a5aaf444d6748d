//! Every bound of the storage crate in one place, units last.
//!
//! Invariant: each queue, buffer and allocation driven by file contents is capped by a constant
//! here, and the relations between them are checked at compile time below.

/// Largest WAL record payload accepted by `WalWriter::append` and by the reader. A transaction
/// holding one maximal value (512 MiB) plus its keys fits.
pub const WAL_RECORD_PAYLOAD_BYTES_MAX: usize = 600 * 1024 * 1024;

/// Default size after which the WAL writer starts a new segment file.
pub const WAL_SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Default length of zeros the WAL writer writes ahead of its write position. fdatasync of a
/// write into already-written blocks flushes only the data; a write that grows the file also
/// commits the file-size change to the filesystem journal, which cost ~1.5× as much per
/// fdatasync on ext4 here (docs/BENCHMARKS.md). One extension per this many bytes of log.
/// Not larger: the run is written under the WAL's I/O lock, and every reply waits for it;
/// 4 MiB runs (every 0.2 s at 20 MB/s of log) made the p99 of an open-loop YCSB-A run 2.6-3×
/// Redis's, 256 KiB runs brought it to 1.0-1.5× (docs/BENCHMARKS.md, tail latency).
pub const WAL_PREALLOCATE_BYTES_DEFAULT: u64 = 256 * 1024;

/// Zeros a failed WAL's recovery writes and syncs past the log's end before it takes writes
/// again: proof the disk has room for more than what the recovery itself freed and rewrote
/// (`WriterIo::recover`). 1 MiB: a few hundred small commits' worth, already allocated.
pub const WAL_RECOVERY_PROBE_BYTES: usize = 1024 * 1024;

/// Default bound, in bytes, of the group-commit batch in front of the writer thread. A record
/// larger than this is still admitted, alone, when the batch is empty.
pub const WAL_GROUP_COMMIT_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;

/// Default bound, in records, of the group-commit batch in front of the writer thread.
pub const WAL_GROUP_COMMIT_RECORDS_MAX_DEFAULT: usize = 16 * 1024;

/// Written-but-unsynced bytes the writer keeps in memory so that `try_recover` can rewrite them
/// after a failed fsync. Reaching it forces an fsync even under `FsyncPolicy::No`. The copy is
/// resident memory `used_memory` does not count: at 64 MiB a bulk load under `everysec` held
/// ~50 MB of RSS in it (more than the whole RAM budget of an 8 MiB SSD-tier test); 16 MiB
/// costs at most a few more fsyncs a second under heavy writes.
pub const WAL_UNSYNCED_BYTES_MAX: usize = 16 * 1024 * 1024;

/// How far past a bad frame the reader looks for a valid record to tell a damaged tail from
/// corruption in the middle of the log.
pub const WAL_SCAN_AHEAD_BYTES_MAX: u64 = 128 * 1024 * 1024;

/// Read-ahead buffer of the WAL reader per open segment: one large read replaces two small
/// ones per record during recovery.
pub const WAL_READ_AHEAD_BYTES: usize = 1024 * 1024;

/// Interval between background fsyncs under `FsyncPolicy::EverySec`, in milliseconds.
pub const WAL_EVERYSEC_INTERVAL_MS: u64 = 1000;

/// Most durable-LSN subscribers one WAL accepts.
pub const WAL_SUBSCRIBERS_MAX: usize = 64;

/// Uncompressed size at which the checkpoint writer closes a block.
pub const CHECKPOINT_BLOCK_BYTES_TARGET: usize = 64 * 1024;

/// Largest single checkpoint record (one key with its value and metadata).
pub const CHECKPOINT_RECORD_BYTES_MAX: usize = 600 * 1024 * 1024;

/// Largest uncompressed checkpoint block: one maximal record plus its framing, or a full block.
pub const CHECKPOINT_BLOCK_RAW_BYTES_MAX: usize = CHECKPOINT_RECORD_BYTES_MAX + 64;

/// Largest MANIFEST file the loader reads.
pub const MANIFEST_BYTES_MAX: usize = 4096;

/// Longest checkpoint file name a MANIFEST may hold.
pub const MANIFEST_NAME_BYTES_MAX: usize = 255;

const _: () = assert!(WAL_GROUP_COMMIT_BYTES_MAX_DEFAULT <= WAL_UNSYNCED_BYTES_MAX);
const _: () = assert!(WAL_PREALLOCATE_BYTES_DEFAULT <= WAL_SEGMENT_BYTES_DEFAULT);
const _: () = assert!(WAL_RECORD_PAYLOAD_BYTES_MAX < u32::MAX as usize);
const _: () = assert!(CHECKPOINT_BLOCK_RAW_BYTES_MAX < u32::MAX as usize);
const _: () = assert!(CHECKPOINT_BLOCK_BYTES_TARGET < CHECKPOINT_BLOCK_RAW_BYTES_MAX);
const _: () = assert!(MANIFEST_NAME_BYTES_MAX < MANIFEST_BYTES_MAX);
