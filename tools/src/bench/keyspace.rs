//! Key names, self-describing values and the per-key version bounds used to check reads.
//!
//! Invariant: a value is a pure function of `(key id, version)`: 8 bytes key id, 8 bytes
//! version (both little-endian), then filler derived from both. A read is correct when its
//! version lies in `[acked-before-send, issued-at-reply]`: every write acknowledged before the
//! read was sent is visible, and nothing we never sent is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use thiserror::Error;

/// Bytes of a value taken by the key id and version header.
pub const VALUE_HEADER_BYTES: usize = 16;

/// A size that is fixed (`min == max`) or drawn per key from `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SizeRange {
    /// Smallest size in bytes.
    pub min: usize,
    /// Largest size in bytes.
    pub max: usize,
}

impl SizeRange {
    /// A fixed size.
    pub fn fixed(size: usize) -> SizeRange {
        SizeRange {
            min: size,
            max: size,
        }
    }

    /// The size for a given seed, stable across calls.
    pub fn pick(&self, seed: u64) -> usize {
        let span = (self.max - self.min) as u64 + 1;
        self.min + (mix64(seed) % span) as usize
    }
}

impl std::str::FromStr for SizeRange {
    type Err = String;

    /// `1024` or `100-2000`.
    fn from_str(text: &str) -> Result<SizeRange, String> {
        let parse = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|e| format!("bad size {t:?}: {e}"))
        };
        let range = match text.split_once('-') {
            Some((lo, hi)) => SizeRange {
                min: parse(lo)?,
                max: parse(hi)?,
            },
            None => SizeRange::fixed(parse(text)?),
        };
        if range.min > range.max {
            return Err(format!("size range {text:?} has min above max"));
        }
        Ok(range)
    }
}

/// splitmix64's finaliser: a fast, well-mixed 64-bit hash.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Why a value read back is not one this run could have written at that moment.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// The key was absent though a write to it had been acknowledged.
    #[error("key {key_id}: missing, required version >= {floor}")]
    Missing {
        /// The key id.
        key_id: u64,
        /// Smallest version the read could return.
        floor: u64,
    },
    /// The value is shorter than its header or its length does not match its version.
    #[error("key {key_id}: value of {len} bytes is malformed")]
    Malformed {
        /// The key id.
        key_id: u64,
        /// Length of what came back.
        len: usize,
    },
    /// The value names another key.
    #[error("key {key_id}: value belongs to key {found}")]
    WrongKey {
        /// The key id.
        key_id: u64,
        /// The key id in the value.
        found: u64,
    },
    /// The filler bytes are not those derived from key and version.
    #[error("key {key_id}: version {version} corrupt")]
    Corrupt {
        /// The key id.
        key_id: u64,
        /// The version in the header.
        version: u64,
    },
    /// An older version than one already acknowledged (a lost or reordered write).
    #[error("key {key_id}: stale version {version} < required {floor}")]
    Stale {
        /// The key id.
        key_id: u64,
        /// Version read.
        version: u64,
        /// Smallest version the read could return.
        floor: u64,
    },
    /// A version never sent.
    #[error("key {key_id}: version {version} > issued {issued}")]
    Phantom {
        /// The key id.
        key_id: u64,
        /// Version read.
        version: u64,
        /// Highest version issued when the reply arrived.
        issued: u64,
    },
    /// An INCR reply that went backwards or was not an integer.
    #[error("counter {key_id}: {value} not above acknowledged {floor}")]
    Counter {
        /// The counter id.
        key_id: u64,
        /// The reply.
        value: i64,
        /// Highest value acknowledged before the INCR was sent.
        floor: u64,
    },
}

impl Mismatch {
    /// A short name for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Mismatch::Missing { .. } => "missing",
            Mismatch::Malformed { .. } => "malformed",
            Mismatch::WrongKey { .. } => "wrong_key",
            Mismatch::Corrupt { .. } => "corrupt",
            Mismatch::Stale { .. } => "stale",
            Mismatch::Phantom { .. } => "phantom",
            Mismatch::Counter { .. } => "counter",
        }
    }
}

/// How keys and values are shaped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyShape {
    /// Prefix of every data key.
    pub prefix: String,
    /// Key length (padded after the decimal id).
    pub key_size: SizeRange,
    /// Value length (at least the 16-byte header).
    pub value_size: SizeRange,
}

impl KeyShape {
    /// Writes the name of data key `id` into `out` (cleared first).
    pub fn key(&self, id: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        let want = self.key_size.pick(id ^ 0x6b65_7973);
        // Padding after the id keeps keys unique whatever the length.
        while out.len() < want {
            out.push(b'.');
        }
    }

    /// Writes the name of counter `id` (the INCR key space) into `out`.
    pub fn counter_key(&self, id: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(b"ctr:");
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    }

    fn value_len(&self, id: u64, version: u64) -> usize {
        self.value_size
            .pick(id.rotate_left(17) ^ version)
            .max(VALUE_HEADER_BYTES)
    }

    /// Writes the value of `(id, version)` into `out` (cleared first).
    pub fn value(&self, id: u64, version: u64, out: &mut Vec<u8>) {
        out.clear();
        let len = self.value_len(id, version);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&version.to_le_bytes());
        let seed = mix64(id ^ mix64(version));
        let mut word_index = 0u64;
        while out.len() < len {
            let word = mix64(seed.wrapping_add(word_index)).to_le_bytes();
            let take = (len - out.len()).min(word.len());
            out.extend(word.iter().take(take));
            word_index += 1;
        }
    }

    /// Checks that `bytes` is a value this run writes for key `id`, and returns its version.
    pub fn decode_value(&self, id: u64, bytes: &[u8]) -> Result<u64, Mismatch> {
        let malformed = Mismatch::Malformed {
            key_id: id,
            len: bytes.len(),
        };
        let (head, filler) = bytes
            .split_at_checked(VALUE_HEADER_BYTES)
            .ok_or(malformed.clone())?;
        let (id_bytes, version_bytes) = head.split_at(8);
        let found = u64::from_le_bytes(id_bytes.try_into().map_err(|_| malformed.clone())?);
        let version = u64::from_le_bytes(version_bytes.try_into().map_err(|_| malformed.clone())?);
        if found != id {
            return Err(Mismatch::WrongKey { key_id: id, found });
        }
        if self.value_len(id, version) != bytes.len() {
            return Err(malformed);
        }
        let seed = mix64(id ^ mix64(version));
        for (word_index, chunk) in filler.chunks(8).enumerate() {
            let word = mix64(seed.wrapping_add(word_index as u64)).to_le_bytes();
            if word.get(..chunk.len()) != Some(chunk) {
                return Err(Mismatch::Corrupt {
                    key_id: id,
                    version,
                });
            }
        }
        Ok(version)
    }
}

/// Shards of the out-of-order completion sets.
pub const COMPLETION_SHARDS: usize = 1024;
/// Most out-of-order completions remembered per key; past it completions are dropped, which
/// only stalls that key's floor (checking gets weaker, never wrong).
pub const COMPLETIONS_PENDING_MAX: usize = 4096;

/// Per shard: versions completed out of order, by key id.
type PendingCompletions = HashMap<u64, Vec<u64>>;

/// A write in flight: its version and the key's completed prefix when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteTicket {
    /// The key id.
    pub id: u64,
    /// The version written.
    pub version: u64,
    /// Every version up to this one had completed before this write was sent.
    pub prefix_at_issue: u64,
}

/// Per-key version bounds shared by all connections to one server.
///
/// Versions are issued in send order but concurrent writers may be applied in another order,
/// so "the highest acknowledged version" is not a valid floor. What is sound: when write `x`
/// is acknowledged, every version that had *completed* before `x` was sent is overwritten for
/// any read sent afterwards. So each key keeps the contiguous prefix of completed versions,
/// each write remembers that prefix at send time, and an acknowledged write raises the key's
/// floor to `prefix_at_issue + 1` (version 0 is "absent", completed from the start).
#[derive(Debug)]
pub struct Versions {
    issued: Box<[AtomicU64]>,
    prefix: Box<[AtomicU64]>,
    floor: Box<[AtomicU64]>,
    pending: Box<[Mutex<PendingCompletions>]>,
    counters: Box<[AtomicU64]>,
    next_insert: AtomicU64,
    loaded: u64,
    strict: bool,
}

impl Versions {
    /// Bounds for `loaded` keys plus room for `insert_capacity` inserts and `counter_count`
    /// INCR counters. `strict` is false when the data was not loaded by this run: then only
    /// the value's shape is checked, not its version.
    pub fn new(loaded: u64, insert_capacity: u64, counter_count: u64, strict: bool) -> Versions {
        let total = loaded.saturating_add(insert_capacity).max(1);
        let make = |n: u64| {
            (0..n)
                .map(|_| AtomicU64::new(0))
                .collect::<Box<[AtomicU64]>>()
        };
        Versions {
            issued: make(total),
            prefix: make(total),
            floor: make(total),
            pending: (0..COMPLETION_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            counters: make(counter_count.max(1)),
            next_insert: AtomicU64::new(loaded),
            loaded,
            strict,
        }
    }

    /// Number of keys loaded before the run.
    pub fn loaded(&self) -> u64 {
        self.loaded
    }

    /// Number of key ids tracked (loaded plus insert capacity).
    pub fn capacity(&self) -> u64 {
        self.issued.len() as u64
    }

    /// Number of INCR counters.
    pub fn counter_count(&self) -> u64 {
        self.counters.len() as u64
    }

    /// Keys that exist or are being inserted: reads of "latest" choose among these.
    pub fn existing(&self) -> u64 {
        self.next_insert
            .load(Ordering::Relaxed)
            .min(self.issued.len() as u64)
    }

    /// A fresh key id for an insert, or `None` once the insert capacity is used up.
    pub fn claim_insert(&self) -> Option<u64> {
        let id = self.next_insert.fetch_add(1, Ordering::Relaxed);
        (id < self.issued.len() as u64).then_some(id)
    }

    /// Issues the next version of key `id` (1 for its first write); call just before sending.
    pub fn issue(&self, id: u64) -> WriteTicket {
        let index = id as usize;
        // Read the prefix first: it may only grow, so a stale read is conservative.
        let prefix_at_issue = self
            .prefix
            .get(index)
            .map_or(0, |p| p.load(Ordering::Acquire));
        let version = self
            .issued
            .get(index)
            .map_or(0, |v| v.fetch_add(1, Ordering::AcqRel) + 1);
        WriteTicket {
            id,
            version,
            prefix_at_issue,
        }
    }

    /// Records that a write finished: `acked` when the server confirmed it, false when it
    /// certainly did not apply (error reply, aborted EXEC). Writes whose fate is unknown
    /// (connection lost) must never be completed.
    pub fn complete(&self, ticket: WriteTicket, acked: bool) {
        let index = ticket.id as usize;
        let (Some(prefix), Some(floor)) = (self.prefix.get(index), self.floor.get(index)) else {
            return;
        };
        let shard = self.pending.get(index % COMPLETION_SHARDS);
        if let Some(Ok(mut pending)) = shard.map(Mutex::lock) {
            let mut current = prefix.load(Ordering::Acquire);
            if ticket.version == current + 1 {
                current = ticket.version;
                if let Some(waiting) = pending.get_mut(&ticket.id) {
                    while let Some(pos) = waiting.iter().position(|v| *v == current + 1) {
                        waiting.swap_remove(pos);
                        current += 1;
                    }
                    if waiting.is_empty() {
                        pending.remove(&ticket.id);
                    }
                }
                prefix.store(current, Ordering::Release);
            } else if ticket.version > current {
                let waiting = pending.entry(ticket.id).or_default();
                if waiting.len() < COMPLETIONS_PENDING_MAX {
                    waiting.push(ticket.version);
                }
            }
        }
        if acked {
            floor.fetch_max(ticket.prefix_at_issue + 1, Ordering::AcqRel);
        }
    }

    /// The smallest version a read of `id` sent now may return (0: absent is allowed).
    pub fn read_floor(&self, id: u64) -> u64 {
        self.floor
            .get(id as usize)
            .map_or(0, |v| v.load(Ordering::Acquire))
    }

    /// Checks a GET reply (`None` for nil) against the floor captured when it was sent.
    pub fn check_read(
        &self,
        shape: &KeyShape,
        id: u64,
        floor: u64,
        value: Option<&[u8]>,
    ) -> Result<(), Mismatch> {
        let Some(bytes) = value else {
            return if floor == 0 || !self.strict {
                Ok(())
            } else {
                Err(Mismatch::Missing { key_id: id, floor })
            };
        };
        let version = shape.decode_value(id, bytes)?;
        if !self.strict {
            return Ok(());
        }
        if version < floor {
            return Err(Mismatch::Stale {
                key_id: id,
                version,
                floor,
            });
        }
        let issued = self
            .issued
            .get(id as usize)
            .map_or(0, |v| v.load(Ordering::Acquire));
        if version > issued {
            return Err(Mismatch::Phantom {
                key_id: id,
                version,
                issued,
            });
        }
        Ok(())
    }

    /// The lower bound an INCR of counter `id` sent now must exceed.
    pub fn counter_floor(&self, id: u64) -> u64 {
        self.counters
            .get(id as usize)
            .map_or(0, |v| v.load(Ordering::Acquire))
    }

    /// Checks and records an INCR reply: an increment sent after another was answered must
    /// return more than that answer.
    pub fn check_incr(&self, id: u64, floor: u64, value: i64) -> Result<(), Mismatch> {
        let bad = Mismatch::Counter {
            key_id: id,
            value,
            floor,
        };
        let value_u64 = u64::try_from(value).map_err(|_| bad.clone())?;
        if value_u64 <= floor && self.strict {
            return Err(bad);
        }
        if let Some(slot) = self.counters.get(id as usize) {
            slot.fetch_max(value_u64, Ordering::AcqRel);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(value: &str) -> KeyShape {
        KeyShape {
            prefix: "k".into(),
            key_size: "4-12".parse().unwrap(),
            value_size: value.parse().unwrap(),
        }
    }

    #[test]
    fn values_round_trip_and_detect_damage() {
        let shape = shape("16-300");
        let mut buf = Vec::new();
        for id in 0..200u64 {
            for version in 1..4u64 {
                shape.value(id, version, &mut buf);
                assert!((16..=300).contains(&buf.len()));
                assert_eq!(shape.decode_value(id, &buf), Ok(version));
                assert!(matches!(
                    shape.decode_value(id + 1, &buf),
                    Err(Mismatch::WrongKey { .. })
                ));
                if buf.len() > 16 {
                    let last = buf.len() - 1;
                    buf[last] ^= 1;
                    assert!(matches!(
                        shape.decode_value(id, &buf),
                        Err(Mismatch::Corrupt { .. })
                    ));
                }
            }
        }
        assert!(matches!(
            shape.decode_value(1, b"short"),
            Err(Mismatch::Malformed { .. })
        ));
    }

    #[test]
    fn keys_are_unique_and_sized() {
        let shape = shape("16");
        let mut seen = std::collections::HashSet::new();
        let mut buf = Vec::new();
        for id in 0..5000u64 {
            shape.key(id, &mut buf);
            assert!(buf.len() >= 4 && (buf.len() <= 12 || id >= 10_000_000_000));
            assert!(seen.insert(buf.clone()));
        }
    }

    #[test]
    fn read_bounds_catch_stale_missing_and_phantom() {
        let shape = shape("64");
        let versions = Versions::new(10, 0, 1, true);
        let mut buf = Vec::new();
        assert_eq!(
            versions.check_read(&shape, 3, versions.read_floor(3), None),
            Ok(())
        );
        let w1 = versions.issue(3);
        assert_eq!((w1.version, w1.prefix_at_issue), (1, 0));
        shape.value(3, w1.version, &mut buf);
        versions.complete(w1, true);
        let floor = versions.read_floor(3);
        assert_eq!(
            floor, 1,
            "after the first acknowledged write, absent is stale"
        );
        assert_eq!(versions.check_read(&shape, 3, floor, Some(&buf)), Ok(()));
        assert!(matches!(
            versions.check_read(&shape, 3, floor, None),
            Err(Mismatch::Missing { .. })
        ));
        let w2 = versions.issue(3);
        versions.complete(w2, true);
        assert_eq!(versions.read_floor(3), 2);
        assert!(matches!(
            versions.check_read(&shape, 3, versions.read_floor(3), Some(&buf)),
            Err(Mismatch::Stale { .. })
        ));
        shape.value(3, 9, &mut buf);
        assert!(matches!(
            versions.check_read(&shape, 3, 0, Some(&buf)),
            Err(Mismatch::Phantom { .. })
        ));
        // Issued but unacknowledged versions are fine: the write may have landed.
        let w3 = versions.issue(3);
        shape.value(3, w3.version, &mut buf);
        assert_eq!(
            versions.check_read(&shape, 3, versions.read_floor(3), Some(&buf)),
            Ok(())
        );
    }

    #[test]
    fn concurrent_writers_may_land_in_either_order() {
        // Writers A (v1) and B (v2) overlap; the server may apply B then A, so after both
        // acknowledgements a read may still return v1: no false "stale".
        let shape = shape("32");
        let versions = Versions::new(1, 0, 1, true);
        let a = versions.issue(0);
        let b = versions.issue(0);
        versions.complete(b, true);
        versions.complete(a, true);
        assert_eq!(versions.read_floor(0), 1);
        let mut buf = Vec::new();
        shape.value(0, a.version, &mut buf);
        assert_eq!(
            versions.check_read(&shape, 0, versions.read_floor(0), Some(&buf)),
            Ok(())
        );
        // A write sent after both completed supersedes them once acknowledged.
        let c = versions.issue(0);
        assert_eq!(c.prefix_at_issue, 2);
        versions.complete(c, true);
        assert!(matches!(
            versions.check_read(&shape, 0, versions.read_floor(0), Some(&buf)),
            Err(Mismatch::Stale { .. })
        ));
    }

    #[test]
    fn unknown_outcomes_stall_the_floor_instead_of_guessing() {
        let versions = Versions::new(1, 0, 1, true);
        let lost = versions.issue(0); // connection dropped: never completed
        let next = versions.issue(0);
        versions.complete(next, true);
        let after = versions.issue(0);
        assert_eq!(
            after.prefix_at_issue, 0,
            "v1's fate is unknown, so v2 is not a prefix"
        );
        versions.complete(after, true);
        assert_eq!(versions.read_floor(0), 1);
        let _ = lost;
    }

    #[test]
    fn counters_must_grow() {
        let versions = Versions::new(1, 0, 2, true);
        assert_eq!(versions.check_incr(1, versions.counter_floor(1), 1), Ok(()));
        assert_eq!(versions.check_incr(1, versions.counter_floor(1), 2), Ok(()));
        assert!(versions
            .check_incr(1, versions.counter_floor(1), 2)
            .is_err());
    }

    #[test]
    fn inserts_stop_at_capacity() {
        let versions = Versions::new(5, 2, 1, true);
        assert_eq!(versions.existing(), 5);
        assert_eq!(versions.claim_insert(), Some(5));
        assert_eq!(versions.claim_insert(), Some(6));
        assert_eq!(versions.claim_insert(), None);
        assert_eq!(versions.existing(), 7);
    }

    #[test]
    fn size_ranges_parse() {
        assert_eq!("1024".parse::<SizeRange>(), Ok(SizeRange::fixed(1024)));
        assert_eq!(
            "10-20".parse::<SizeRange>(),
            Ok(SizeRange { min: 10, max: 20 })
        );
        assert!("20-10".parse::<SizeRange>().is_err());
        assert!("x".parse::<SizeRange>().is_err());
    }
}
