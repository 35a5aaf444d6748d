//! [`LogRecord`]: the logical write-ahead-log payload of one committed transaction.
//!
//! Invariant: encoding is deterministic (same record, same bytes) and `decode(encode(r)) == r`;
//! `decode` never panics, whatever the input. An active expiry or a `maxmemory` eviction is
//! logged as an explicit [`LogOp::Delete`], so replay never depends on the clock or the memory
//! policy.
//!
//! Layout (all integers little-endian; keep in sync with docs/FORMATS.md § "Record payload: one
//! committed transaction"):
//! ```text
//! u8  format version (1)
//! u64 commit_ts                       (offset 1; patched in place by the commit path)
//! u32 op count
//! op*: u8 tag, then
//!   1 Put        u8 db, u32 key len, key, u32 value len, value, expiry
//!   2 Delete     u8 db, u32 key len, key
//!   3 SetExpiry  u8 db, u32 key len, key, expiry
//!   4 FlushDb    u8 db
//!   5 FlushAll
//!   6 SwapDb     u8 a, u8 b
//! expiry: u8 0 (none) | u8 1, u64 deadline ms since the Unix epoch
//! ```

use bytes::Bytes;

use crate::limits::DATABASES;
use crate::timestamp::CommitTs;
use crate::DbIndex;

const FORMAT_VERSION: u8 = 1;
/// Byte offset of `commit_ts` in an encoded record.
pub(crate) const COMMIT_TS_OFFSET: usize = 1;
const HEADER_BYTES: usize = 1 + 8 + 4;

/// One logged change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOp {
    /// Set `key` to `value` with an optional absolute deadline.
    Put {
        /// Database.
        db: DbIndex,
        /// Key.
        key: Bytes,
        /// Value bytes.
        value: Bytes,
        /// Absolute deadline, ms since the Unix epoch.
        expire_at_ms: Option<u64>,
    },
    /// Delete `key` (also how an active expiry or an eviction is logged).
    Delete {
        /// Database.
        db: DbIndex,
        /// Key.
        key: Bytes,
    },
    /// Change only the deadline of `key`, keeping its value.
    SetExpiry {
        /// Database.
        db: DbIndex,
        /// Key.
        key: Bytes,
        /// New deadline, or `None` to persist.
        expire_at_ms: Option<u64>,
    },
    /// Delete every key of one database.
    FlushDb {
        /// Database.
        db: DbIndex,
    },
    /// Delete every key of every database.
    FlushAll,
    /// Exchange the contents of two databases.
    SwapDb {
        /// First database.
        a: DbIndex,
        /// Second database.
        b: DbIndex,
    },
}

/// Everything one committed transaction changed, under one commit timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The transaction's commit timestamp.
    pub commit_ts: CommitTs,
    /// Its changes, in the order they apply.
    pub ops: Vec<LogOp>,
}

/// Why a byte string is not a valid [`LogRecord`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("log record truncated at offset {offset}")]
    Truncated {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// Unknown format version byte.
    #[error("unknown log record format version {version}")]
    BadVersion {
        /// The byte found.
        version: u8,
    },
    /// Unknown op tag.
    #[error("unknown log op tag {tag} at offset {offset}")]
    BadTag {
        /// The tag found.
        tag: u8,
        /// Its offset.
        offset: usize,
    },
    /// A database index out of range.
    #[error("database index {db} out of range at offset {offset}")]
    BadDb {
        /// The index found.
        db: u8,
        /// Its offset.
        offset: usize,
    },
    /// An expiry flag other than 0 or 1.
    #[error("bad expiry flag {flag} at offset {offset}")]
    BadExpiryFlag {
        /// The byte found.
        flag: u8,
        /// Its offset.
        offset: usize,
    },
    /// Bytes left after the last op.
    #[error("{extra} trailing bytes after the last op")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

impl LogRecord {
    /// The encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_BYTES + self.ops.iter().map(op_len).sum::<usize>()
    }

    /// Encodes the record (deterministic).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        encode_header(out, self.commit_ts, self.ops.len() as u32);
        for op in &self.ops {
            encode_op(op, out);
        }
    }

    /// Decodes a record; never panics.
    pub fn decode(bytes: &[u8]) -> Result<LogRecord, DecodeError> {
        let mut reader = Reader { bytes, offset: 0 };
        let version = reader.u8()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::BadVersion { version });
        }
        let commit_ts = CommitTs(reader.u64()?);
        let count = reader.u32()? as usize;
        // Each op takes at least one byte: don't trust `count` for the allocation.
        let mut ops = Vec::with_capacity(count.min(bytes.len()));
        for _ in 0..count {
            ops.push(reader.op()?);
        }
        if reader.offset != bytes.len() {
            return Err(DecodeError::TrailingBytes {
                extra: bytes.len() - reader.offset,
            });
        }
        Ok(LogRecord { commit_ts, ops })
    }
}

fn op_len(op: &LogOp) -> usize {
    let expiry = |e: &Option<u64>| if e.is_some() { 9 } else { 1 };
    match op {
        LogOp::Put {
            key,
            value,
            expire_at_ms,
            ..
        } => 2 + 4 + key.len() + 4 + value.len() + expiry(expire_at_ms),
        LogOp::Delete { key, .. } => 2 + 4 + key.len(),
        LogOp::SetExpiry {
            key, expire_at_ms, ..
        } => 2 + 4 + key.len() + expiry(expire_at_ms),
        LogOp::FlushDb { .. } => 2,
        LogOp::FlushAll => 1,
        LogOp::SwapDb { .. } => 3,
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Keys and values are bounded far below u32::MAX by limits.rs.
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_expiry(out: &mut Vec<u8>, expiry: Option<u64>) {
    match expiry {
        None => out.push(0),
        Some(deadline) => {
            out.push(1);
            out.extend_from_slice(&deadline.to_le_bytes());
        }
    }
}

fn encode_put_op(out: &mut Vec<u8>, db: DbIndex, key: &[u8], value: &[u8], expiry: Option<u64>) {
    out.extend_from_slice(&[1, db]);
    put_bytes(out, key);
    put_bytes(out, value);
    put_expiry(out, expiry);
}

fn encode_delete_op(out: &mut Vec<u8>, db: DbIndex, key: &[u8]) {
    out.extend_from_slice(&[2, db]);
    put_bytes(out, key);
}

fn encode_header(out: &mut Vec<u8>, commit_ts: CommitTs, op_count: u32) {
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&commit_ts.0.to_le_bytes());
    out.extend_from_slice(&op_count.to_le_bytes());
}

/// The encoding of `LogRecord { commit_ts: 0, ops: [Put { db, key, value, expire_at_ms }] }`,
/// without copying key and value into a [`LogRecord`] first (the single-key commit path).
pub(crate) fn encode_single_put(
    db: DbIndex,
    key: &[u8],
    value: &[u8],
    expire_at_ms: Option<u64>,
) -> Vec<u8> {
    let expiry_len = if expire_at_ms.is_some() { 9 } else { 1 };
    let mut out =
        Vec::with_capacity(HEADER_BYTES + 2 + 4 + key.len() + 4 + value.len() + expiry_len);
    encode_header(&mut out, CommitTs(0), 1);
    encode_put_op(&mut out, db, key, value, expire_at_ms);
    out
}

/// The encoding of `LogRecord { commit_ts: 0, ops: [Delete { db, key }] }`, as
/// [`encode_single_put`].
pub(crate) fn encode_single_delete(db: DbIndex, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + 2 + 4 + key.len());
    encode_header(&mut out, CommitTs(0), 1);
    encode_delete_op(&mut out, db, key);
    out
}

fn encode_op(op: &LogOp, out: &mut Vec<u8>) {
    match op {
        LogOp::Put {
            db,
            key,
            value,
            expire_at_ms,
        } => encode_put_op(out, *db, key, value, *expire_at_ms),
        LogOp::Delete { db, key } => encode_delete_op(out, *db, key),
        LogOp::SetExpiry {
            db,
            key,
            expire_at_ms,
        } => {
            out.extend_from_slice(&[3, *db]);
            put_bytes(out, key);
            put_expiry(out, *expire_at_ms);
        }
        LogOp::FlushDb { db } => out.extend_from_slice(&[4, *db]),
        LogOp::FlushAll => out.push(5),
        LogOp::SwapDb { a, b } => out.extend_from_slice(&[6, *a, *b]),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], DecodeError> {
        let end = self.offset.checked_add(len).ok_or(DecodeError::Truncated {
            offset: self.offset,
        })?;
        let slice = self
            .bytes
            .get(self.offset..end)
            .ok_or(DecodeError::Truncated {
                offset: self.offset,
            })?;
        self.offset = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let offset = self.offset;
        self.take(N)?
            .try_into()
            .map_err(|_| DecodeError::Truncated { offset })
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_le_bytes(self.array::<1>()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array::<4>()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array::<8>()?))
    }

    fn db(&mut self) -> Result<DbIndex, DecodeError> {
        let offset = self.offset;
        let db = self.u8()?;
        if db as usize >= DATABASES {
            return Err(DecodeError::BadDb { db, offset });
        }
        Ok(db)
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u32()? as usize;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }

    fn expiry(&mut self) -> Result<Option<u64>, DecodeError> {
        let offset = self.offset;
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            flag => Err(DecodeError::BadExpiryFlag { flag, offset }),
        }
    }

    fn op(&mut self) -> Result<LogOp, DecodeError> {
        let offset = self.offset;
        Ok(match self.u8()? {
            1 => LogOp::Put {
                db: self.db()?,
                key: self.bytes()?,
                value: self.bytes()?,
                expire_at_ms: self.expiry()?,
            },
            2 => LogOp::Delete {
                db: self.db()?,
                key: self.bytes()?,
            },
            3 => LogOp::SetExpiry {
                db: self.db()?,
                key: self.bytes()?,
                expire_at_ms: self.expiry()?,
            },
            4 => LogOp::FlushDb { db: self.db()? },
            5 => LogOp::FlushAll,
            6 => LogOp::SwapDb {
                a: self.db()?,
                b: self.db()?,
            },
            tag => return Err(DecodeError::BadTag { tag, offset }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> LogRecord {
        LogRecord {
            commit_ts: CommitTs(42),
            ops: vec![
                LogOp::Put {
                    db: 0,
                    key: Bytes::from_static(b"k"),
                    value: Bytes::from_static(b"v"),
                    expire_at_ms: Some(9),
                },
                LogOp::Delete {
                    db: 3,
                    key: Bytes::from_static(b"gone"),
                },
                LogOp::SetExpiry {
                    db: 15,
                    key: Bytes::from_static(b"t"),
                    expire_at_ms: None,
                },
                LogOp::FlushDb { db: 2 },
                LogOp::FlushAll,
                LogOp::SwapDb { a: 1, b: 2 },
            ],
        }
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let record = sample();
        let bytes = record.encode();
        assert_eq!(bytes.len(), record.encoded_len());
        assert_eq!(bytes, record.encode());
        assert_eq!(LogRecord::decode(&bytes).unwrap(), record);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                LogRecord::decode(&bytes[..len]).is_err(),
                "prefix {len} decoded"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            LogRecord::decode(&long),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn bad_db_and_tag_are_typed() {
        let mut bytes = LogRecord {
            commit_ts: CommitTs(1),
            ops: vec![LogOp::FlushDb { db: 1 }],
        }
        .encode();
        *bytes.last_mut().unwrap() = 16;
        assert!(matches!(
            LogRecord::decode(&bytes),
            Err(DecodeError::BadDb { db: 16, .. })
        ));
        let len = bytes.len();
        bytes[len - 2] = 99;
        assert!(matches!(
            LogRecord::decode(&bytes),
            Err(DecodeError::BadTag { tag: 99, .. })
        ));
    }

    #[test]
    fn single_op_encoders_match_the_general_one() {
        for expire_at_ms in [None, Some(1_700_000_000_000)] {
            let general = LogRecord {
                commit_ts: CommitTs(0),
                ops: vec![LogOp::Put {
                    db: 7,
                    key: Bytes::from_static(b"key"),
                    value: Bytes::from_static(b"value"),
                    expire_at_ms,
                }],
            }
            .encode();
            assert_eq!(
                encode_single_put(7, b"key", b"value", expire_at_ms),
                general
            );
        }
        let general = LogRecord {
            commit_ts: CommitTs(0),
            ops: vec![LogOp::Delete {
                db: 3,
                key: Bytes::from_static(b"gone"),
            }],
        }
        .encode();
        assert_eq!(encode_single_delete(3, b"gone"), general);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = LogRecord::decode(&bytes);
        }
    }
}
