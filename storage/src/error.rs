//! The storage crate's one error type.

use crate::Lsn;
use std::path::PathBuf;

/// Everything that can go wrong below the transaction layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An operating-system I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A [`crate::page::ValueRef`] that does not name a live, in-range value of this store.
    #[error("bad value reference: page {page}, offset {offset}, length {len}")]
    BadValueRef {
        /// The page the reference names.
        page: u32,
        /// Byte offset inside the page (or extent).
        offset: u32,
        /// Length in bytes.
        len: u32,
    },
    /// A value longer than the page store accepts.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// The offered length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The page id space (or the configured page budget) is exhausted.
    #[error("out of pages: {pages} pages in use")]
    OutOfPages {
        /// Pages in use when the allocation failed.
        pages: u64,
    },

    /// An operating-system I/O error on a named file.
    #[error("I/O error on {}: {source}", path.display())]
    IoAt {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The value's page is on SSD: read it with `PageStore::read_cold`, or bring the page
    /// back with `PageStore::load`, and try again.
    #[error("page {page} is not resident")]
    NotResident {
        /// The page.
        page: u32,
        /// The value's offset in it.
        offset: u32,
        /// The value's length.
        len: u32,
    },

    /// A page that cannot go to SSD (open, pinned, empty, part of an extent, or not resident).
    #[error("page {page} cannot be spilled: {reason}")]
    NotSpillable {
        /// The page.
        page: u32,
        /// Why not.
        reason: &'static str,
    },

    /// The SSD tier's file failed (I/O, checksum, full) or is not attached.
    #[error(transparent)]
    Spill(#[from] crate::tier::SpillError),

    /// The write-ahead log stopped accepting writes after a failed write or fsync; reads are
    /// unaffected. `WalWriter::try_recover` resumes once the disk works again.
    #[error(
        "write-ahead log is failed after {op} error ({kind}); records after LSN {} are not durable; writes are refused until the disk recovers",
        durable_lsn.0
    )]
    WalPoisoned {
        /// The operation that failed.
        op: WalOp,
        /// The OS error kind.
        kind: std::io::ErrorKind,
        /// Every LSN up to this one is durable.
        durable_lsn: Lsn,
    },

    /// The write-ahead log was closed.
    #[error("write-ahead log is closed")]
    WalClosed,
    /// The log ends below its synced mark: records that were fsynced (acknowledged under
    /// `appendfsync always`) are missing, which no crash does (`wal::synced`).
    #[error("the WAL in {} ends at LSN {}, but records up to LSN {} were fsynced: {} durable records are missing (a segment truncated or replaced?). Refusing to start; restore the WAL, or start with wal-load-truncated yes to go on without them", dir.display(), ends_at.0, synced.0, synced.0 - ends_at.0)]
    WalSyncedRecordsMissing {
        /// The WAL directory.
        dir: PathBuf,
        /// The last LSN the log holds (or the checkpoint covers).
        ends_at: Lsn,
        /// The synced mark.
        synced: Lsn,
    },

    /// A WAL payload or checkpoint record exceeds its limit.
    #[error("record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// The record's length.
        len: usize,
        /// The limit (see `limits.rs`).
        max: usize,
    },

    /// More durable-LSN subscribers than `WAL_SUBSCRIBERS_MAX`.
    #[error("too many WAL subscribers (limit {max})")]
    TooManySubscribers {
        /// The limit.
        max: usize,
    },

    /// A checkpoint writer was used after `finish`.
    #[error("checkpoint writer already finished")]
    CheckpointFinished,

    /// `wait_durable` was asked about an LSN the log has not handed out.
    #[error("LSN {} has not been assigned (next is {})", lsn.0, next.0)]
    LsnNotAssigned {
        /// The LSN asked about.
        lsn: Lsn,
        /// The next LSN the log will assign.
        next: Lsn,
    },

    /// The WAL is damaged somewhere recovery must not cut off.
    #[error(
        "write-ahead log corrupt in {} at offset {offset}: {reason}; inspect with `kvtool wal verify {}`",
        file.display(),
        dir.display()
    )]
    WalCorrupt {
        /// The segment file.
        file: PathBuf,
        /// The data directory (for the kvtool hint).
        dir: PathBuf,
        /// Byte offset of the first bad frame in `file`.
        offset: u64,
        /// What is wrong there.
        reason: Corruption,
    },

    /// A checkpoint file is damaged or foreign.
    #[error(
        "checkpoint {} corrupt at offset {offset}: {reason}; inspect with `kvtool checkpoint inspect {}`",
        file.display(),
        crate::io::parent_dir(file).display()
    )]
    CheckpointCorrupt {
        /// The checkpoint file.
        file: PathBuf,
        /// Byte offset of the bad structure.
        offset: u64,
        /// What is wrong there.
        reason: Corruption,
    },

    /// The MANIFEST file is damaged or foreign.
    #[error("manifest {} corrupt: {reason}", file.display())]
    ManifestCorrupt {
        /// The MANIFEST file.
        file: PathBuf,
        /// What is wrong.
        reason: Corruption,
    },
}

/// An operation of the WAL writer that can fail and poison the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalOp {
    /// Writing a batch of records.
    Write,
    /// fdatasync of a segment.
    Sync,
    /// Creating a new segment file.
    CreateSegment,
    /// The writer thread died.
    WriterThread,
}

impl std::fmt::Display for WalOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WalOp::Write => "write",
            WalOp::Sync => "fsync",
            WalOp::CreateSegment => "segment create",
            WalOp::WriterThread => "writer thread",
        })
    }
}

/// What is wrong with a damaged structure, for error messages and `kvtool`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// The magic bytes do not match: not a tierkv file of this kind.
    #[error("bad magic (not a tierkv {expected} file)")]
    BadMagic {
        /// The kind of file expected.
        expected: &'static str,
    },
    /// Written by a format version this build does not read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u16),
    /// A checksum does not match the bytes it covers.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadChecksum {
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// A length field is impossible.
    #[error("impossible length {0}")]
    BadLength(u64),
    /// The structure ends early.
    #[error("truncated")]
    Truncated,
    /// A record carries the wrong LSN.
    #[error("LSN gap: expected {expected}, found {found}")]
    LsnGap {
        /// The LSN that should come next.
        expected: u64,
        /// The LSN found.
        found: u64,
    },
    /// A damaged frame is followed by a valid record in the same segment: not a torn tail.
    #[error("damaged frame ({frame}) followed by a valid record at offset {valid_at}")]
    BeforeTail {
        /// What is wrong with the damaged frame.
        frame: crate::wal::TailState,
        /// Offset of the valid record after it.
        valid_at: u64,
    },
    /// A damaged frame is followed by a later segment: not a torn tail.
    #[error("damaged frame ({frame}) followed by a later segment")]
    BeforeLaterSegment {
        /// What is wrong with the damaged frame.
        frame: crate::wal::TailState,
    },
    /// A segment's name and header disagree.
    #[error("segment name says first LSN {name}, header says {header}")]
    NameMismatch {
        /// From the file name.
        name: u64,
        /// From the header.
        header: u64,
    },
    /// An unknown record or block kind.
    #[error("unknown kind byte {0}")]
    UnknownKind(u8),
    /// A record that passed its block's checksum but that its reader cannot take (the
    /// checkpoint writer's bug, or a foreign file).
    #[error("record {index}: {reason}")]
    BadRecord {
        /// The record's position in the file, counting from 0.
        index: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A MANIFEST whose consistent point lies before its checkpoint's snapshot.
    #[error("consistent point (ts {ts}, LSN {lsn}) before the snapshot (ts {snapshot_ts}, redo LSN {redo_lsn})")]
    ConsistentBeforeSnapshot {
        /// `consistent_ts`.
        ts: u64,
        /// `consistent_lsn`.
        lsn: u64,
        /// `snapshot_ts`.
        snapshot_ts: u64,
        /// `redo_lsn`.
        redo_lsn: u64,
    },
    /// Footer counts or checksums do not match the content.
    #[error("footer mismatch: {0}")]
    FooterMismatch(&'static str),
    /// Recovery must not cut the log here (see the WAL tail decision table).
    #[error("{0}: refusing to cut the log")]
    Unrecoverable(crate::wal::TailState),
    /// A compressed block does not decompress.
    #[error("block does not decompress")]
    Decompress,
}

impl StorageError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io_at(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::IoAt {
            path: path.into(),
            source,
        }
    }
}
