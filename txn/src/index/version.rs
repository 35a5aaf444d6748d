//! A key's versions: the newest inline in its [`KeyNode`] (read under a seqlock), older ones in
//! a heap chain, newest first; and the key's access word (LRU clock or LFU counter).
//!
//! Invariants:
//! - commit timestamps strictly decrease along inline → older chain;
//! - every mutation of versions (install, GC cut, node removal) happens under the engine's
//!   commit lock, so there is one writer at a time; readers take no lock;
//! - install first pushes a copy of the current inline version onto the older chain (Release),
//!   then rewrites the inline version under the seqlock (`ts` = [`WRITING`] while fields
//!   change). A reader that sees `WRITING` or a torn read falls back to the older chain, whose
//!   head is then the previous newest version, so readers never wait;
//! - a version is published only after it is fully written; unlinked heap versions are
//!   destroyed through the epoch collector;
//! - the `meta` word is outside the seqlock: its top byte is the key's tag (fixed at creation),
//!   its low 24 bits the access word, which readers and writers overwrite with plain relaxed
//!   stores (last writer wins: the word is an approximation, as Redis's is). Every store writes
//!   back the tag it loaded, and the tag never changes, so no interleaving can corrupt it.

use std::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, Ordering};

use crossbeam_epoch::{Atomic, Guard, Owned};
use storage::page::{PageId, ValueRef, PAGE_SIZE, SMALL_VALUE_MAX_BYTES, VALUE_MAX_BYTES};

use super::key::KeyBytes;

/// Deadline meaning "no expiry".
pub(crate) const NO_EXPIRY: u64 = 0;
/// `KeyNode::ts` while the inline version is being rewritten.
const WRITING: u64 = u64::MAX;
/// `KeyNode::ts` before the first version is installed.
const EMPTY: u64 = 0;

const FLAG_TOMBSTONE: u32 = 1;
const FLAG_OLDER_VALUE_IN_USE: u32 = 2;

/// One committed state of a key, by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VersionView {
    pub(crate) commit_ts: u64,
    /// Absolute deadline (ms since the Unix epoch) or [`NO_EXPIRY`].
    pub(crate) expire_at_ms: u64,
    /// The value ([`ValueRef::EMPTY`] for tombstones).
    pub(crate) value: ValueRef,
    pub(crate) tombstone: bool,
    /// The next older version's value is still in use elsewhere, so this chain must not free
    /// it: this version shares it (a TTL-only change), or SWAPDB moved it into the other
    /// database's chain for the same key (which frees it in due course). GC thus frees every
    /// value exactly once: through the oldest version of the one chain that owns it and does
    /// not hand it on.
    pub(crate) older_value_in_use: bool,
}

impl VersionView {
    /// Holds a value not expired at `now_ms`.
    pub(crate) fn is_live(&self, now_ms: u64) -> bool {
        !self.tombstone && (self.expire_at_ms == NO_EXPIRY || now_ms < self.expire_at_ms)
    }

    pub(crate) fn expiry(&self) -> Option<u64> {
        (self.expire_at_ms != NO_EXPIRY).then_some(self.expire_at_ms)
    }

    fn flags(&self) -> u32 {
        (u32::from(self.tombstone) * FLAG_TOMBSTONE)
            | (u32::from(self.older_value_in_use) * FLAG_OLDER_VALUE_IN_USE)
    }
}

/// An older version on the heap chain.
pub(crate) struct Version {
    pub(crate) view: VersionView,
    pub(crate) next: Atomic<Version>,
}

/// Largest deadline a key node stores: deadlines are kept in 48 bits (ms since the Unix
/// epoch, about 8900 years from 1970); later ones are clamped to this, which reads as "never".
pub(crate) const EXPIRE_MAX_MS: u64 = (1 << 48) - 1;
/// Commit timestamps are kept in 56 bits beside the flags.
const TS_BITS: u32 = 56;
const TS_MASK: u64 = (1 << TS_BITS) - 1;

/// Bits of `meta` that hold the access word; the byte above holds the key's tag.
pub(crate) const ACCESS_BITS: u32 = 24;
/// Mask of the access word in `meta`.
pub(crate) const ACCESS_MASK: u32 = (1 << ACCESS_BITS) - 1;

/// A value's offset and length packed into 32 bits ("span"): a small value
/// (`len <= SMALL_VALUE_MAX_BYTES`) keeps its 16-bit in-page offset and its 15-bit length; a
/// longer one starts at offset 0 (storage's placement invariant, `ValueRef::is_well_placed`)
/// and keeps a 31-bit length behind [`SPAN_EXTENT`].
const SPAN_EXTENT: u32 = 1 << 31;
const SPAN_OFFSET_BITS: u32 = 16;
const SPAN_OFFSET_MASK: u32 = (1 << SPAN_OFFSET_BITS) - 1;

const _: () = assert!(PAGE_SIZE <= 1 << SPAN_OFFSET_BITS);
const _: () = assert!(SMALL_VALUE_MAX_BYTES < 1 << (31 - SPAN_OFFSET_BITS));
const _: () = assert!((VALUE_MAX_BYTES as u64) < SPAN_EXTENT as u64);

fn pack_span(value: ValueRef) -> u32 {
    debug_assert!(value.is_well_placed(), "{value:?}");
    if value.len as usize > SMALL_VALUE_MAX_BYTES {
        SPAN_EXTENT | value.len
    } else {
        (value.len << SPAN_OFFSET_BITS) | (value.offset & SPAN_OFFSET_MASK)
    }
}

/// A value's page and packed span in one word ([`KeyNode`]'s `location`).
fn pack_location(value: ValueRef) -> u64 {
    u64::from(value.page.0) | u64::from(pack_span(value)) << 32
}

fn unpack_location(location: u64) -> ValueRef {
    let (offset, len) = unpack_span((location >> 32) as u32);
    ValueRef {
        page: PageId(location as u32),
        offset,
        len,
    }
}

/// `(offset, len)` of a packed span.
fn unpack_span(span: u32) -> (u32, u32) {
    if span & SPAN_EXTENT != 0 {
        (0, span & !SPAN_EXTENT)
    } else {
        (span & SPAN_OFFSET_MASK, span >> SPAN_OFFSET_BITS)
    }
}

/// One user key: its bytes, its newest version inline, the chain of older ones, and its access
/// word. Packed into 56 bytes (it lives inside its skip-list entry, whose malloc chunk it
/// exactly fills at tower height 1) because its size is most of the engine's per-key memory:
///
/// | bytes | field | |
/// |---|---|---|
/// | 0..8 | `ts_flags` | commit ts (low 56 bits) \| flags << 56; the seqlock word ([`WRITING`] while the inline version changes, [`EMPTY`] before the first one) |
/// | 8..16 | `older` | the older-version chain |
/// | 16..24 | `location` | the value's page id (low 32 bits) \| its offset and length (high 32, see [`pack_span`]) |
/// | 24..28 | `meta` | key tag (top 8 bits: inline length or `HEAP_TAG`) \| access word (low 24 bits) |
/// | 28..32 | `expire_low` | deadline ms, bits 0..32 |
/// | 32..34 | `expire_high` | deadline ms, bits 32..48 |
/// | 34..56 | `key` | the key inline, or its heap pointer and length |
///
/// `expire_*` and `location` are read under the `ts_flags` seqlock. `location` is one word so
/// that relocation ([`KeyNode::repoint`]) can move the value without the seqlock: a reader
/// sees the old place or the new one, both holding the same bytes until the old is retired. The key is last:
/// crossbeam's skip-list entry is the node followed by its tower of next pointers, and a
/// descent reads a node's key bytes and one tower pointer at each step, so key last puts the two
/// within a few bytes, often one cache line instead of two (measured before the access word
/// existed: new-key `SET -P 64` about 9% less CPU per SET).
#[repr(C)]
pub(crate) struct KeyNode {
    ts_flags: AtomicU64,
    pub(crate) older: Atomic<Version>,
    location: AtomicU64,
    meta: AtomicU32,
    expire_low: AtomicU32,
    expire_high: AtomicU16,
    /// Last, next to the skip list's tower that follows the node in its entry.
    key: KeyBytes,
}

const _: () = assert!(std::mem::size_of::<KeyNode>() == 56);
const _: () =
    assert!(std::mem::offset_of!(KeyNode, key) == 56 - crate::index::key::INLINE_KEY_MAX_BYTES);
const _: () = assert!(std::mem::align_of::<KeyNode>() == 8);

enum Inline {
    Empty,
    Writing,
    Version(VersionView),
}

impl KeyNode {
    /// A node for `key` holding no version, its access word 0.
    pub(crate) fn new(key: &[u8]) -> KeyNode {
        let (key, tag) = KeyBytes::new(key);
        KeyNode {
            ts_flags: AtomicU64::new(EMPTY),
            older: Atomic::null(),
            meta: AtomicU32::new(u32::from(tag) << ACCESS_BITS),
            key,
            expire_high: AtomicU16::new(0),
            location: AtomicU64::new(0),
            expire_low: AtomicU32::new(0),
        }
    }

    fn tag(&self) -> u8 {
        (self.meta.load(Ordering::Relaxed) >> ACCESS_BITS) as u8
    }

    pub(crate) fn key(&self) -> &[u8] {
        // SAFETY: the tag was stored with these bytes in `new` and never changes (module
        // invariants); the heap key, if any, is freed only in `Drop`.
        unsafe { self.key.as_bytes(self.tag()) }
    }

    /// The access word (24 bits; its meaning is the engine's, see `memory::access`).
    pub(crate) fn access(&self) -> u32 {
        self.meta.load(Ordering::Relaxed) & ACCESS_MASK
    }

    /// Replaces the access word with `update(current)`; stores nothing when the word would not
    /// change, so readers of a hot key do not keep writing its cache line. Racing updates may
    /// lose one another (see the module invariants).
    pub(crate) fn update_access(&self, update: impl FnOnce(u32) -> u32) {
        let meta = self.meta.load(Ordering::Relaxed);
        let next = (meta & !ACCESS_MASK) | (update(meta & ACCESS_MASK) & ACCESS_MASK);
        if next != meta {
            self.meta.store(next, Ordering::Relaxed);
        }
    }

    fn read_inline(&self) -> Inline {
        loop {
            let word = self.ts_flags.load(Ordering::Acquire);
            if word == EMPTY {
                return Inline::Empty;
            }
            if word == WRITING {
                return Inline::Writing;
            }
            let expire_low = self.expire_low.load(Ordering::Relaxed);
            let expire_high = self.expire_high.load(Ordering::Relaxed);
            let location = self.location.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.ts_flags.load(Ordering::Relaxed) != word {
                continue;
            }
            let flags = (word >> TS_BITS) as u32;
            return Inline::Version(VersionView {
                commit_ts: word & TS_MASK,
                expire_at_ms: (u64::from(expire_high) << 32) | u64::from(expire_low),
                value: unpack_location(location),
                tombstone: flags & FLAG_TOMBSTONE != 0,
                older_value_in_use: flags & FLAG_OLDER_VALUE_IN_USE != 0,
            });
        }
    }

    fn older_head<'g>(&self, guard: &'g Guard) -> Option<&'g Version> {
        // SAFETY: heap versions are destroyed only via the epoch collector after being
        // unlinked, and `guard` pins the epoch.
        unsafe { self.older.load(Ordering::Acquire, guard).as_ref() }
    }

    /// The newest committed version (during an install: the previous newest).
    pub(crate) fn newest(&self, guard: &Guard) -> Option<VersionView> {
        match self.read_inline() {
            Inline::Version(view) => Some(view),
            Inline::Empty => None,
            Inline::Writing => self.older_head(guard).map(|v| v.view),
        }
    }

    /// The newest version with `commit_ts <= snapshot`.
    pub(crate) fn visible(&self, snapshot: u64, guard: &Guard) -> Option<VersionView> {
        match self.read_inline() {
            Inline::Version(view) if view.commit_ts <= snapshot => return Some(view),
            Inline::Empty => return None,
            _ => {}
        }
        let mut current = self.older_head(guard);
        while let Some(version) = current {
            if version.view.commit_ts <= snapshot {
                return Some(version.view);
            }
            // SAFETY: as in `older_head`. A reader at or above the low watermark stops at or
            // before the version GC keeps, so it never follows a cut link.
            current = unsafe { version.next.load(Ordering::Acquire, guard).as_ref() };
        }
        None
    }

    /// The newest committed timestamp, 0 if none.
    pub(crate) fn newest_ts(&self, guard: &Guard) -> u64 {
        self.newest(guard).map_or(0, |v| v.commit_ts)
    }

    /// Publishes `view` as the newest version. Caller holds the commit lock.
    pub(crate) fn install(&self, view: VersionView, guard: &Guard) {
        debug_assert!(view.commit_ts < TS_MASK);
        if let Inline::Version(current) = self.read_inline() {
            let next = self.older.load(Ordering::Acquire, guard);
            self.older.store(
                Owned::new(Version {
                    view: current,
                    next: Atomic::from(next),
                }),
                Ordering::Release,
            );
        }
        self.ts_flags.store(WRITING, Ordering::Release);
        fence(Ordering::Release);
        let expire = view.expire_at_ms.min(EXPIRE_MAX_MS);
        self.expire_low.store(expire as u32, Ordering::Relaxed);
        self.expire_high
            .store((expire >> 32) as u16, Ordering::Relaxed);
        self.location
            .store(pack_location(view.value), Ordering::Relaxed);
        let word = (view.commit_ts & TS_MASK) | (u64::from(view.flags()) << TS_BITS);
        self.ts_flags.store(word, Ordering::Release);
    }

    /// Cuts every version older than the newest one with `commit_ts <= watermark`, calling
    /// `free` for each value no remaining version uses. Returns the number of versions
    /// unlinked. Caller holds the commit lock.
    pub(crate) fn cut_below(
        &self,
        watermark: u64,
        guard: &Guard,
        mut free: impl FnMut(ValueRef),
    ) -> u64 {
        let Inline::Version(inline) = self.read_inline() else {
            return 0;
        };
        let (mut tail, mut older_value_in_use) = if inline.commit_ts <= watermark {
            (
                self.older
                    .swap(crossbeam_epoch::Shared::null(), Ordering::AcqRel, guard),
                inline.older_value_in_use,
            )
        } else {
            let mut current = self.older_head(guard);
            loop {
                let Some(version) = current else { return 0 };
                if version.view.commit_ts <= watermark {
                    break (
                        version
                            .next
                            .swap(crossbeam_epoch::Shared::null(), Ordering::AcqRel, guard),
                        version.view.older_value_in_use,
                    );
                }
                // SAFETY: as in `older_head`.
                current = unsafe { version.next.load(Ordering::Acquire, guard).as_ref() };
            }
        };
        let mut unlinked = 0;
        // SAFETY: `tail` was cut from the chain above (under the commit lock, so nobody else
        // cuts or links it); each node is destroyed once, via the epoch collector.
        while let Some(version) = unsafe { tail.as_ref() } {
            if !version.view.tombstone && !older_value_in_use {
                free(version.view.value);
            }
            older_value_in_use = version.view.older_value_in_use;
            let next = version.next.load(Ordering::Acquire, guard);
            // SAFETY: unlinked above; no new reference to it can be created.
            unsafe { guard.defer_destroy(tail) };
            unlinked += 1;
            tail = next;
        }
        unlinked
    }

    /// Unlinks the versions no snapshot reads when every snapshot is at `lo` or at `hi` and
    /// above (`lo < hi`): those newer than the newest version with `commit_ts <= lo` and older
    /// than the newest with `commit_ts <= hi`. Calls `free` for their values and returns how
    /// many it unlinked. Does nothing (returns 0) where a version involved shares a value with
    /// its older neighbour or hands it on (`older_value_in_use`: a TTL-only change or SWAPDB),
    /// which are rare, so each value unlinked belongs to its version alone. Caller holds the
    /// commit lock.
    ///
    /// A reader at `hi` or above stops at or before the version kept for `hi`; one at `lo`
    /// may stand on an unlinked version, whose `next` still leads to the one kept for it.
    pub(crate) fn cut_between(
        &self,
        lo: u64,
        hi: u64,
        guard: &Guard,
        mut free: impl FnMut(ValueRef),
    ) -> u64 {
        debug_assert!(lo < hi);
        let Inline::Version(inline) = self.read_inline() else {
            return 0;
        };
        // The link below the version kept for `hi`.
        let link = if inline.commit_ts <= hi {
            if inline.older_value_in_use {
                return 0;
            }
            &self.older
        } else {
            let mut current = self.older_head(guard);
            loop {
                let Some(version) = current else { return 0 };
                if version.view.commit_ts <= hi {
                    if version.view.older_value_in_use {
                        return 0;
                    }
                    break &version.next;
                }
                // SAFETY: as in `older_head`.
                current = unsafe { version.next.load(Ordering::Acquire, guard).as_ref() };
            }
        };
        let first = link.load(Ordering::Acquire, guard);
        // The version kept for `lo` (null if the key had none then).
        let mut kept = first;
        let mut unlinked = 0;
        // SAFETY: as in `older_head`; under the commit lock nobody else unlinks them.
        while let Some(version) = unsafe { kept.as_ref() } {
            if version.view.commit_ts <= lo {
                break;
            }
            if version.view.older_value_in_use {
                return 0;
            }
            unlinked += 1;
            kept = version.next.load(Ordering::Acquire, guard);
        }
        if unlinked == 0 {
            return 0;
        }
        link.store(kept, Ordering::Release);
        let mut current = first;
        while current != kept {
            // SAFETY: unlinked just now, and reachable from `first` up to `kept` (checked
            // above, under the commit lock); each is destroyed once, via the epoch collector.
            let Some(version) = (unsafe { current.as_ref() }) else {
                break;
            };
            if !version.view.tombstone {
                free(version.view.value);
            }
            let next = version.next.load(Ordering::Acquire, guard);
            // SAFETY: unlinked above; no new reference to it can be created.
            unsafe { guard.defer_destroy(current) };
            current = next;
        }
        unlinked
    }

    /// Whether some version of this key names `value`. Lock-free, valid while `guard` is
    /// pinned; the answer may be stale by the time it returns (relocation checks again under
    /// the commit lock).
    /// Whether a version some reader may still load names `value`: the newest, those above
    /// `watermark` and the newest at or below it (the one GC keeps), not the garbage below.
    /// Relocation asks this, not [`KeyNode::names`]: a version below a SWAPDB's tombstone may
    /// still name a value its new owner has freed (in a flushed keyspace awaiting reclaim GC
    /// does not cut it), and a copy only such a version named would be freed by no one.
    pub(crate) fn names_readable(&self, value: ValueRef, watermark: u64, guard: &Guard) -> bool {
        if let Inline::Version(inline) = self.read_inline() {
            if !inline.tombstone && inline.value == value {
                return true;
            }
            if inline.commit_ts <= watermark {
                return false;
            }
        }
        let mut current = self.older_head(guard);
        while let Some(version) = current {
            if !version.view.tombstone && version.view.value == value {
                return true;
            }
            if version.view.commit_ts <= watermark {
                return false;
            }
            // SAFETY: as in `names`.
            current = unsafe { version.next.load(Ordering::Acquire, guard).as_ref() };
        }
        false
    }

    pub(crate) fn names(&self, value: ValueRef, guard: &Guard) -> bool {
        if let Inline::Version(inline) = self.read_inline() {
            if !inline.tombstone && inline.value == value {
                return true;
            }
        }
        let mut current = self.older_head(guard);
        while let Some(version) = current {
            if !version.view.tombstone && version.view.value == value {
                return true;
            }
            // SAFETY: as in `older_head`. A version cut from the chain after we pinned stays
            // allocated until we unpin (epoch), and its `next` still names versions that do.
            current = unsafe { version.next.load(Ordering::Acquire, guard).as_ref() };
        }
        false
    }

    /// Relocation: makes every version of this key that names `old` name `new` instead (the
    /// same bytes in another place) and returns how many did. A reader sees one place or the
    /// other; the caller retires `old` until no reader can hold it. Caller holds the commit
    /// lock (so no install, cut or other re-point runs meanwhile).
    pub(crate) fn repoint<'g>(&'g self, old: ValueRef, new: ValueRef, guard: &'g Guard) -> u32 {
        let mut moved = 0;
        if let Inline::Version(inline) = self.read_inline() {
            if !inline.tombstone && inline.value == old {
                // One word, outside the seqlock: the version itself does not change.
                self.location.store(pack_location(new), Ordering::Release);
                moved += 1;
            }
        }
        // An older version is immutable once linked: one naming `old` is replaced by a copy
        // naming `new`, linked in its place; a reader already on the old node finishes there
        // (its `next` is unchanged), and the old node is destroyed through the epoch.
        let mut link = &self.older;
        loop {
            let current = link.load(Ordering::Acquire, guard);
            // SAFETY: as in `older_head`; under the commit lock nobody else unlinks it.
            let Some(version) = (unsafe { current.as_ref() }) else {
                break;
            };
            if version.view.tombstone || version.view.value != old {
                link = &version.next;
                continue;
            }
            let replacement = Owned::new(Version {
                view: VersionView {
                    value: new,
                    ..version.view
                },
                next: Atomic::from(version.next.load(Ordering::Acquire, guard)),
            })
            .into_shared(guard);
            link.store(replacement, Ordering::Release);
            // SAFETY: unlinked just now (replaced); no new reference to it can be created.
            unsafe { guard.defer_destroy(current) };
            moved += 1;
            // SAFETY: linked just now; it lives at least as long as `guard`.
            link = &unsafe { replacement.deref() }.next;
        }
        moved
    }

    /// True if the node never held a version: one reserved by a commit that has not installed
    /// yet, or that aborted (see `HybridIndex::reserve_node`).
    pub(crate) fn is_empty(&self, guard: &Guard) -> bool {
        matches!(self.read_inline(), Inline::Empty)
            && self.older.load(Ordering::Acquire, guard).is_null()
    }

    /// True if the only version left is a tombstone at or below `watermark`.
    pub(crate) fn is_dead(&self, watermark: u64, guard: &Guard) -> bool {
        matches!(self.read_inline(), Inline::Version(v) if v.tombstone && v.commit_ts <= watermark)
            && self.older.load(Ordering::Acquire, guard).is_null()
    }

    /// Number of versions (diagnostics and tests).
    #[allow(dead_code)]
    pub(crate) fn chain_len(&self, guard: &Guard) -> usize {
        let mut count = usize::from(matches!(self.read_inline(), Inline::Version(_)));
        let mut current = self.older_head(guard);
        while let Some(version) = current {
            count += 1;
            // SAFETY: as in `older_head`.
            current = unsafe { version.next.load(Ordering::Acquire, guard).as_ref() };
        }
        count
    }
}

impl PartialEq for KeyNode {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for KeyNode {}
impl PartialOrd for KeyNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for KeyNode {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(other.key())
    }
}
impl std::borrow::Borrow<[u8]> for KeyNode {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

/// Keys starting with this count their node's destruction in [`DROP_PROBES`] (tests only).
#[cfg(test)]
pub(crate) const DROP_PROBE_PREFIX: &str = "\u{1}drop-probe:";
/// Destroyed key nodes whose key starts with [`DROP_PROBE_PREFIX`].
#[cfg(test)]
pub(crate) static DROP_PROBES: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

impl Drop for KeyNode {
    fn drop(&mut self) {
        #[cfg(test)]
        if self.key().starts_with(DROP_PROBE_PREFIX.as_bytes()) {
            DROP_PROBES.fetch_add(1, Ordering::SeqCst);
        }
        let tag = (*self.meta.get_mut() >> ACCESS_BITS) as u8;
        // SAFETY: the tag stored with the key in `new`; dropped once, never read again.
        unsafe { self.key.free(tag) };
        // SAFETY: `&mut self`: the skip list destroys a node only after it was removed and
        // every pinned reader moved on, so the older chain is ours alone.
        unsafe {
            let guard = crossbeam_epoch::unprotected();
            let mut current = self.older.load(Ordering::Relaxed, guard);
            while !current.is_null() {
                let next = current.deref().next.load(Ordering::Relaxed, guard);
                drop(current.into_owned());
                current = next;
            }
        }
    }
}

impl std::fmt::Debug for KeyNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyNode")
            .field("key", &bytes::Bytes::copy_from_slice(self.key()))
            .field("ts_flags", &self.ts_flags.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ts: u64, expire: u64, offset: u32, tombstone: bool, inherits: bool) -> VersionView {
        VersionView {
            commit_ts: ts,
            expire_at_ms: expire,
            value: ValueRef {
                page: PageId(7),
                offset,
                len: 42,
            },
            tombstone,
            older_value_in_use: inherits,
        }
    }

    #[test]
    fn packed_fields_round_trip_and_chain_orders_newest_first() {
        let node = KeyNode::new(b"key");
        let guard = crossbeam_epoch::pin();
        assert_eq!(node.newest(&guard), None);
        let a = view(1, 0, 65_536 - 42, false, false);
        let b = view(5, 1_700_000_000_000, 12, false, true);
        let c = view(9, 0, 0, true, false);
        node.install(a, &guard);
        node.install(b, &guard);
        node.install(c, &guard);
        assert_eq!(node.newest(&guard), Some(c));
        assert_eq!(node.visible(8, &guard), Some(b));
        assert_eq!(node.visible(4, &guard), Some(a));
        assert_eq!(node.visible(0, &guard), None);
        assert_eq!(node.chain_len(&guard), 3);
        let far = view(10, u64::MAX, 1, false, false);
        node.install(far, &guard);
        assert_eq!(node.newest(&guard).unwrap().expire_at_ms, EXPIRE_MAX_MS);
    }

    #[test]
    fn spans_of_small_and_extent_values_round_trip() {
        let node = KeyNode::new(b"k");
        let guard = crossbeam_epoch::pin();
        let cases = [
            (7, 65_535 - 16_384, 16_384),
            (7, 0, 16_385),
            (9, 0, VALUE_MAX_BYTES as u32),
            (PageId::NONE.0, 0, 0),
        ];
        for (ts, (page, offset, len)) in (1u64..).zip(cases) {
            let mut v = view(ts, EXPIRE_MAX_MS, offset, false, false);
            v.value = ValueRef {
                page: PageId(page),
                offset,
                len,
            };
            node.install(v, &guard);
            assert_eq!(node.newest(&guard), Some(v));
        }
    }

    #[test]
    fn access_word_and_key_do_not_disturb_each_other() {
        for key in [&b""[..], b"short", &[b'x'; 22], &[b'y'; 23], &[b'z'; 300]] {
            let node = KeyNode::new(key);
            let guard = crossbeam_epoch::pin();
            assert_eq!(node.access(), 0);
            node.update_access(|_| u32::MAX);
            assert_eq!(node.access(), ACCESS_MASK, "the word is 24 bits wide");
            assert_eq!(node.key(), key, "the tag survives access updates");
            node.install(view(3, 1_700_000_000_000, 12, false, false), &guard);
            assert_eq!(node.access(), ACCESS_MASK, "installs leave the word alone");
            node.update_access(|word| word - 5);
            assert_eq!(node.access(), ACCESS_MASK - 5);
            assert_eq!(node.key(), key);
        }
    }

    #[test]
    fn cut_between_keeps_the_versions_lo_and_hi_see_and_frees_the_rest_once() {
        let guard = crossbeam_epoch::pin();
        // Versions at 2, 4, 6, 8, 10 (offset = ts), newest inline.
        let chain = |shared_at: Option<u64>| {
            let node = KeyNode::new(b"k");
            for ts in [2, 4, 6, 8, 10] {
                node.install(view(ts, 0, ts as u32, false, shared_at == Some(ts)), &guard);
            }
            node
        };
        let node = chain(None);
        let mut freed = Vec::new();
        // lo = 5 sees 4; hi = 9 sees 8: 6 goes.
        assert_eq!(node.cut_between(5, 9, &guard, |v| freed.push(v.offset)), 1);
        assert_eq!(freed, [6]);
        for (snapshot, ts) in [(5, 4), (9, 8), (10, 10), (3, 2)] {
            assert_eq!(node.visible(snapshot, &guard).unwrap().commit_ts, ts);
        }
        assert_eq!(node.chain_len(&guard), 4);
        // lo below every version: everything under hi's goes, the inline one too if hi sees it.
        let node = chain(None);
        let mut freed = Vec::new();
        assert_eq!(node.cut_between(1, 10, &guard, |v| freed.push(v.offset)), 4);
        assert_eq!(freed, [8, 6, 4, 2]);
        assert_eq!(node.visible(1, &guard), None);
        assert_eq!(node.chain_len(&guard), 1);
        // Nothing between: nothing cut.
        let node = chain(None);
        assert_eq!(
            node.cut_between(8, 9, &guard, |_| panic!("nothing to free")),
            0
        );
        assert_eq!(node.chain_len(&guard), 5);
        // A shared value in the range (a TTL-only change at 8 shares 6's): left alone.
        let node = chain(Some(8));
        assert_eq!(node.cut_between(5, 9, &guard, |_| panic!("shared")), 0);
        assert_eq!(node.chain_len(&guard), 5);
        // A shared value below lo's version is none of its business.
        let node = chain(Some(4));
        let mut freed = Vec::new();
        assert_eq!(node.cut_between(5, 9, &guard, |v| freed.push(v.offset)), 1);
        assert_eq!(freed, [6]);
    }

    #[test]
    fn repoint_moves_every_version_naming_the_value_and_only_those() {
        let node = KeyNode::new(b"k");
        let guard = crossbeam_epoch::pin();
        let at = |page: u32, offset: u32| ValueRef {
            page: PageId(page),
            offset,
            len: 42,
        };
        // v1 own value A, v2 shares A (TTL change), v3 value B, v4 shares B, v5 tombstone.
        let mut versions = Vec::new();
        for (ts, value, shared) in [
            (1, at(1, 8), false),
            (2, at(1, 8), true),
            (3, at(2, 8), false),
            (4, at(2, 8), true),
        ] {
            let mut v = view(ts, 0, 8, false, shared);
            v.value = value;
            versions.push(v);
            node.install(v, &guard);
        }
        assert_eq!(node.repoint(at(1, 8), at(7, 100), &guard), 2, "v1 and v2");
        assert_eq!(node.visible(1, &guard).unwrap().value, at(7, 100));
        assert_eq!(node.visible(2, &guard).unwrap().value, at(7, 100));
        assert_eq!(node.visible(3, &guard).unwrap().value, at(2, 8));
        assert_eq!(
            node.repoint(at(2, 8), at(9, 8), &guard),
            2,
            "v3 and the inline v4"
        );
        let newest = node.newest(&guard).unwrap();
        assert_eq!(
            newest,
            VersionView {
                value: at(9, 8),
                ..versions[3]
            }
        );
        assert_eq!(
            node.visible(3, &guard).unwrap(),
            VersionView {
                value: at(9, 8),
                ..versions[2]
            }
        );
        assert_eq!(
            node.repoint(at(3, 8), at(4, 8), &guard),
            0,
            "no version names it"
        );
        assert_eq!(node.chain_len(&guard), 4);
        // The chain still cuts and frees each value once, at its new place.
        let mut freed = Vec::new();
        node.cut_below(4, &guard, |v| freed.push(v));
        assert_eq!(freed, vec![at(7, 100)]);
    }

    #[test]
    fn cut_below_frees_each_value_once() {
        let node = KeyNode::new(b"k");
        let guard = crossbeam_epoch::pin();
        // v1 (own value), v2 inherits v1's value (TTL change), v3 new value, v4 inherits v3.
        let mut v1 = view(1, 0, 0, false, false);
        v1.value.page = PageId(1);
        let mut v2 = view(2, 99, 0, false, true);
        v2.value.page = PageId(1);
        let mut v3 = view(3, 0, 0, false, false);
        v3.value.page = PageId(3);
        let mut v4 = view(4, 0, 0, false, true);
        v4.value.page = PageId(3);
        for v in [v1, v2, v3, v4] {
            node.install(v, &guard);
        }
        let mut freed = Vec::new();
        assert_eq!(node.cut_below(2, &guard, |v| freed.push(v.page.0)), 1);
        assert!(freed.is_empty(), "v1's value is still used by v2");
        assert_eq!(node.cut_below(4, &guard, |v| freed.push(v.page.0)), 2);
        assert_eq!(
            freed,
            vec![1],
            "v2 hands nothing on to v3, so v1/v2's value goes once; v3's stays with v4"
        );
        assert_eq!(node.chain_len(&guard), 1);
    }
}
