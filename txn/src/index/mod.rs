//! The versioned index of one database: one [`KeyNode`] per user key, reachable through an
//! ordered skip list (scans) and, for point lookups, a sharded hash table of pointers to the
//! same nodes.
//!
//! Invariants:
//! - a key node lives inside its skip-list entry (key inline, newest version inline), so a key
//!   costs one allocation plus an 8-byte hash slot; the skip list destroys nodes through the
//!   global epoch collector, after every thread pinned at removal time has unpinned;
//! - nodes enter the hash table and are removed (hash, then skip list) only under the commit
//!   lock; so a pointer found in the hash table by a reader that pinned the epoch before looking
//!   stays valid until it unpins;
//! - a committer may put an *empty* node into the skip list alone, outside the commit lock
//!   ([`HybridIndex::reserve_node`]), so the costly ordered insert leaves the critical
//!   section; such a node holds no version (scans skip it) and is adopted into the hash table
//!   under the lock (`adopt`, `insert_absent`), or removed by GC if its commit aborted;
//! - readers never block on writers: the skip list is lock-free, and the hash shard read lock
//!   is held only for the probe (a shard's write lock only for an insert, removal or resize);
//! - the memory counters (`memory::Accounting::node_bytes`, `hash_bytes`) change together with
//!   the hash table, under its shard's write lock (itself under the commit lock): a node counts
//!   from its adoption into the hash table until its removal from it.
//!
//! The index sits behind [`KeyIndex`] because crossbeam-skiplist has had no release since 2024
//! and may need to be vendored or replaced.

mod key;
pub(crate) mod version;

use std::ops::Bound;
use std::sync::Arc;

use crossbeam_epoch::Guard;
use crossbeam_skiplist::SkipMap;
use hashbrown::raw::RawTable;
use parking_lot::RwLock;

pub(crate) use key::heap_key_len;
pub(crate) use version::{KeyNode, VersionView, ACCESS_MASK, EXPIRE_MAX_MS, NO_EXPIRY};

use crate::memory::{self, Accounting};

/// What the engine needs from an index of key nodes. References are valid while `guard` is
/// pinned.
pub(crate) trait KeyIndex: Send + Sync {
    /// The node of `key`, if present.
    fn get<'g>(&self, key: &[u8], guard: &'g Guard) -> Option<&'g KeyNode>;
    /// Removes `key`'s node. Caller holds the commit lock.
    fn remove(&self, key: &[u8]);
    /// Visits nodes with keys in the range, in key order, until `visit` returns false.
    fn for_each_in(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        visit: &mut dyn FnMut(&KeyNode) -> bool,
    );
    /// The greatest key present.
    fn last_key(&self) -> Option<Vec<u8>>;
    /// Number of key nodes (live keys, tombstones awaiting GC).
    fn len(&self) -> usize;
}

/// Hash shards per database. Many small shards keep a shard's resize (which holds its write
/// lock, and runs inside the commit lock) short: about 10 K keys per shard at 10 M keys.
/// Shards are not cache-padded (40 bytes each): with this many, two threads rarely share a
/// line, and padding would cost 128 KiB per database.
pub(crate) const HASH_SHARDS: usize = 1024;
/// Bytes of one shard's header (its lock and empty table), allocated up front.
pub(crate) const SHARD_HEADER_BYTES: usize = std::mem::size_of::<RwLock<RawTable<NodePtr>>>();

#[derive(Clone, Copy)]
struct NodePtr(*const KeyNode);

// SAFETY: a NodePtr is only dereferenced under an epoch guard while the node is alive (see the
// module invariants); KeyNode itself is Sync.
unsafe impl Send for NodePtr {}
// SAFETY: as above.
unsafe impl Sync for NodePtr {}

impl NodePtr {
    /// # Safety
    /// The node must still be alive (in the index, or removed after the caller pinned).
    unsafe fn key(&self) -> &[u8] {
        // SAFETY: guaranteed by the caller.
        unsafe { (*self.0).key() }
    }
}

/// A seeded multiply-xorshift hash over 8-byte words; fast for short keys.
fn hash_key(seed: u64, key: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K);
        h ^= h >> 29;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        if let Some(prefix) = word.get_mut(..rest.len()) {
            prefix.copy_from_slice(rest);
        }
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K);
        h ^= h >> 29;
    }
    h = (h ^ (h >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^ (h >> 32)
}

/// Odd, so multiplying by it is a bijection of `u64`: a key's table hash is its 48-bit owner
/// tag times this, and the tag is the hash times [`TAG_MUL_INV`].
const TAG_MUL: u64 = 0x9E37_79B9_7F4A_7C15;
/// The inverse of [`TAG_MUL`] modulo 2^64 (Newton's iteration doubles the correct low bits).
const TAG_MUL_INV: u64 = {
    let mut inverse: u64 = TAG_MUL; // correct to 3 bits for any odd number
    let mut i = 0;
    while i < 5 {
        inverse = inverse.wrapping_mul(2u64.wrapping_sub(TAG_MUL.wrapping_mul(inverse)));
        i += 1;
    }
    inverse
};
const _: () = assert!(TAG_MUL.wrapping_mul(TAG_MUL_INV) == 1);

/// How keys hash, the same in every database of an engine (one random seed), so a value's
/// owner tag (kept beside it in its page, see `storage::page`) finds its key's node in
/// whichever database holds it, SWAPDB included.
///
/// The table hash is derived from 48 bits (the top of the seeded hash, spread over 64 by an
/// odd multiplier) so that the 48-bit owner tag gives it back exactly: no key bytes need to be
/// kept beside a value to find who refers to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyHasher {
    seed: u64,
}

impl KeyHasher {
    /// A hasher with a random seed, so keys chosen by a client cannot be tuned to collide.
    pub(crate) fn random() -> KeyHasher {
        let local = 0u8;
        let address = &local as *const u8 as u64;
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        KeyHasher {
            seed: hash_key(time, &address.to_le_bytes()),
        }
    }

    /// The hash tables' hash of `key`.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        Self::hash_of_tag(hash_key(self.seed, key) >> 16)
    }

    /// The owner tag of `key` (48 bits): what the page store keeps beside its values.
    pub(crate) fn tag(&self, key: &[u8]) -> u64 {
        Self::tag_of_hash(self.hash(key))
    }

    /// The table hash of a key whose owner tag is `tag`.
    pub(crate) fn hash_of_tag(tag: u64) -> u64 {
        tag.wrapping_mul(TAG_MUL)
    }

    /// The owner tag of a key whose table hash is `hash`.
    pub(crate) fn tag_of_hash(hash: u64) -> u64 {
        hash.wrapping_mul(TAG_MUL_INV)
    }
}

/// Hints the CPU to bring the line holding `address` into cache (a no-op off x86-64).
#[inline(always)]
fn prefetch_line(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Skip list for order plus a hash table in front for point lookups.
pub(crate) struct HybridIndex {
    ordered: SkipMap<KeyNode, ()>,
    hashed: Box<[RwLock<RawTable<NodePtr>>]>,
    hasher: KeyHasher,
    accounting: Arc<Accounting>,
}

impl Default for HybridIndex {
    fn default() -> Self {
        HybridIndex::new(Arc::default(), KeyHasher::random())
    }
}

impl HybridIndex {
    /// An empty index whose memory is counted in `accounting`, hashing with `hasher` (the
    /// engine's, shared by its databases).
    pub(crate) fn new(accounting: Arc<Accounting>, hasher: KeyHasher) -> Self {
        HybridIndex {
            ordered: SkipMap::new(),
            hashed: (0..HASH_SHARDS)
                .map(|_| RwLock::new(RawTable::new()))
                .collect(),
            hasher,
            accounting,
        }
    }
}

/// A skip-list node reserved outside the commit lock ([`HybridIndex::reserve_node`]). Holding
/// it keeps the node's memory alive, so the install under the lock can adopt it without a
/// second descent. It knows its index: a flush may retire that index before the commit takes
/// the lock (`keyspace.rs`), and then the node is removed, never adopted elsewhere.
pub(crate) struct Reserved<'a> {
    entry: crossbeam_skiplist::map::Entry<'a, KeyNode, ()>,
    index: &'a HybridIndex,
}

impl Reserved<'_> {
    /// Whether the node was reserved in `index`.
    pub(crate) fn is_in(&self, index: &HybridIndex) -> bool {
        std::ptr::eq(self.index, index)
    }

    /// Removes the node from its index if no one adopted it (a reservation in a keyspace a
    /// flush retired meanwhile). Caller holds the commit lock.
    pub(crate) fn discard(&self, guard: &Guard) {
        self.index.remove_reserved(self.entry.key().key(), guard);
    }
}

impl HybridIndex {
    /// Makes sure `key` has a node in the skip list, without the commit lock, so a committer
    /// pays for the ordered insert before entering the critical section. `None` if `key` is
    /// already in the hash table. A node made here is empty (invisible) until [`Self::adopt`]
    /// or `insert_absent` puts it into the hash table under the lock.
    pub(crate) fn reserve_node(&self, key: &[u8], guard: &Guard) -> Option<Reserved<'_>> {
        if self.get(key, guard).is_some() {
            return None;
        }
        // Lock-free, and only the skip list: the hash table (which readers trust to name live
        // nodes) is touched under the commit lock alone. If GC removes this node before our
        // commit takes the lock, `adopt` notices and `insert_absent` inserts a fresh one.
        Some(Reserved {
            entry: self.ordered.get_or_insert(KeyNode::new(key), ()),
            index: self,
        })
    }

    /// Puts a reserved node into the hash table and returns it, or `None` if GC removed it
    /// from the skip list meanwhile (the caller then uses `insert_absent`). Caller holds the
    /// commit lock and has just seen `get` miss, so the key is not in the hash table.
    pub(crate) fn adopt<'g>(
        &self,
        reserved: &Reserved<'_>,
        _guard: &'g Guard,
    ) -> Option<&'g KeyNode> {
        // Removal happens only under the commit lock, which the caller holds: a node not
        // removed now stays linked until the caller releases it.
        if reserved.entry.is_removed() || !reserved.is_in(self) {
            return None;
        }
        let node = reserved.entry.key();
        let pointer = NodePtr(node as *const KeyNode);
        self.hash_insert(node.key(), pointer);
        // SAFETY: the node stays in the skip list until a later removal under the commit lock
        // (which the caller holds), and `guard` keeps it alive beyond that.
        Some(unsafe { &*pointer.0 })
    }

    fn shard(&self, hash: u64) -> Option<&RwLock<RawTable<NodePtr>>> {
        self.hashed.get((hash >> 40) as usize % HASH_SHARDS)
    }

    /// Puts `pointer` (a live node of `key`, not yet in the table) into the hash table and
    /// counts its memory. Caller holds the commit lock.
    fn hash_insert(&self, key: &[u8], pointer: NodePtr) {
        let hash = self.hasher.hash(key);
        let Some(shard) = self.shard(hash) else {
            return;
        };
        let mut table = shard.write();
        self.hash_insert_locked(&mut table, hash, key, pointer);
    }

    /// [`Self::hash_insert`] into a shard whose write lock the caller holds.
    fn hash_insert_locked(
        &self,
        table: &mut RawTable<NodePtr>,
        hash: u64,
        key: &[u8],
        pointer: NodePtr,
    ) {
        let hasher = self.hasher;
        self.resized(table, |table| {
            // SAFETY: every pointer in the table names a live node (see `get`).
            table.insert(hash, pointer, |p| hasher.hash(unsafe { p.key() }));
        });
        Accounting::add(&self.accounting.node_bytes, memory::node_bytes(key.len()));
    }

    /// Runs `change` on a shard's table and counts any change of its allocation.
    fn resized(&self, table: &mut RawTable<NodePtr>, change: impl FnOnce(&mut RawTable<NodePtr>)) {
        let before = table.allocation_info().1.size();
        change(table);
        let after = table.allocation_info().1.size();
        if after != before {
            let a = &self.accounting;
            Accounting::add(&a.hash_bytes, memory::table_bytes(after));
            Accounting::sub(&a.hash_bytes, memory::table_bytes(before));
        }
    }

    /// The node of `key`, inserting an empty one if absent. Caller holds the commit lock.
    #[cfg(test)]
    fn get_or_insert<'g>(&self, key: &[u8], guard: &'g Guard) -> &'g KeyNode {
        if let Some(node) = self.get(key, guard) {
            return node;
        }
        self.insert_absent(key, guard)
    }

    /// Inserts a node for `key`, which the caller just saw missing from the hash table (saves
    /// a `get` then insert: a second probe). Caller holds the commit lock, or is the only thread
    /// touching `key` (recovery).
    pub(crate) fn insert_absent<'g>(&self, key: &[u8], _guard: &'g Guard) -> &'g KeyNode {
        let entry = self.ordered.get_or_insert(KeyNode::new(key), ());
        let pointer = NodePtr(entry.key() as *const KeyNode);
        drop(entry);
        self.hash_insert(key, pointer);
        // SAFETY: the node stays in the skip list until a later removal under the commit lock
        // (which the caller holds), and `guard` keeps it alive beyond that.
        unsafe { &*pointer.0 }
    }

    /// Removes `key`'s node if it is only a reservation (in the skip list, not in the hash
    /// table); true if one was removed. Caller holds the commit lock, under which such a node is
    /// empty: versions are installed only after `adopt` or `insert_absent`. Reservations are
    /// not counted in the memory counters (a node counts from its adoption).
    pub(crate) fn remove_reserved(&self, key: &[u8], guard: &Guard) -> bool {
        self.get(key, guard).is_none() && self.ordered.remove(key).is_some()
    }

    /// The hash of `key` in this index (its seed), for [`Self::prefetch`] and
    /// [`Self::load_node`].
    pub(crate) fn hash_of(&self, key: &[u8]) -> u64 {
        self.hasher.hash(key)
    }

    /// Asks the CPU to fetch the hash-table lines a probe for `hash` starts at (its control
    /// group and first slot), so a bulk load that issues this some keys ahead finds them in
    /// cache: without it, the probe's first read is a cache miss per key (70% of a loader's
    /// time in `load_node` at 2 M keys).
    pub(crate) fn prefetch(&self, hash: u64) {
        let Some(shard) = self.shard(hash) else {
            return;
        };
        let table = shard.read();
        let position = (hash as usize) & table.buckets().saturating_sub(1);
        let data_end = table.data_end().as_ptr();
        // hashbrown lays out the slots just below `data_end` (slot i at `data_end - i - 1`)
        // and the control bytes from `data_end` up. Prefetching reads nothing, so the
        // addresses need not be valid.
        prefetch_line(data_end.cast::<u8>().wrapping_add(position));
        prefetch_line(data_end.wrapping_sub(position + 1).cast::<u8>());
    }

    /// The second step after [`Self::prefetch`], once the probe's lines are in cache: asks
    /// the CPU to fetch the node the first slot matching `hash` points to (the key compare of
    /// a lookup, its last cache miss). A server issues it one command ahead of a pipelined
    /// lookup, and [`Self::prefetch`] two ahead.
    pub(crate) fn prefetch_node(&self, hash: u64) {
        let Some(shard) = self.shard(hash) else {
            return;
        };
        let table = shard.read();
        // SAFETY: the shard's read lock is held, so the table is not resized; a bucket
        // yielded by `iter_hash` is full. The pointer is only prefetched, never dereferenced.
        let first = unsafe { table.iter_hash(hash).next().map(|bucket| *bucket.as_ref()) };
        if let Some(node) = first {
            let start = node.0.cast::<u8>();
            prefetch_line(start);
            prefetch_line(start.wrapping_add(std::mem::size_of::<KeyNode>() - 1));
        }
    }

    /// [`Self::prefetch`] or [`Self::prefetch_node`] for the key whose owner tag is `tag`
    /// (compaction looks owners up by tag).
    pub(crate) fn prefetch_tag(&self, tag: u64, step: crate::KeyPrefetch) {
        let hash = KeyHasher::hash_of_tag(tag);
        match step {
            crate::KeyPrefetch::Table => self.prefetch(hash),
            crate::KeyPrefetch::Node | crate::KeyPrefetch::Value => self.prefetch_node(hash),
        }
    }

    /// Recovery's find-or-insert under one hold of the shard's write lock: `key`'s node
    /// (`hash` = [`Self::hash_of`]) and whether it was made now. Holds that lock across the
    /// skip-list insert, which only a bulk load with no readers may do; the caller is the only
    /// thread touching `key`. A node made here is not yet counted in the memory counters: the
    /// caller adds [`memory::node_bytes`] for it through [`Self::count_loaded`] (a loader
    /// counts once per batch, as two loaders adding to one counter per key bounce its cache
    /// line between cores).
    pub(crate) fn load_node<'g>(
        &self,
        key: &[u8],
        hash: u64,
        guard: &'g Guard,
    ) -> (&'g KeyNode, bool) {
        let Some(shard) = self.shard(hash) else {
            return (self.insert_absent(key, guard), false);
        };
        let mut table = shard.write();
        // SAFETY: every pointer in the table names a live node (see `get`).
        if let Some(found) = table.get(hash, |p| unsafe { p.key() } == key) {
            // SAFETY: as in `get`; `guard` bounds the reference.
            return (unsafe { &*found.0 }, false);
        }
        let entry = self.ordered.get_or_insert(KeyNode::new(key), ());
        let pointer = NodePtr(entry.key() as *const KeyNode);
        drop(entry);
        let hasher = self.hasher;
        self.resized(&mut table, |table| {
            // SAFETY: every pointer in the table names a live node (see `get`).
            table.insert(hash, pointer, |p| hasher.hash(unsafe { p.key() }));
        });
        // SAFETY: linked until a removal under the commit lock; `guard` keeps it alive.
        (unsafe { &*pointer.0 }, true)
    }

    /// Counts `bytes` of nodes made by [`Self::load_node`].
    pub(crate) fn count_loaded(&self, bytes: u64) {
        Accounting::add(&self.accounting.node_bytes, bytes);
    }

    /// Makes room for `additional` more keys in the hash table ahead of a bulk load, so it does
    /// not rehash (every rehash dereferences every node) as it grows. Best effort: a
    /// reservation that cannot be allocated is skipped.
    pub(crate) fn reserve(&self, additional: usize) {
        let per_shard = additional / HASH_SHARDS + 1;
        let hasher = self.hasher;
        for shard in self.hashed.iter() {
            let mut table = shard.write();
            self.resized(&mut table, |table| {
                // SAFETY: every pointer in the table names a live node (see `get`).
                let _ = table.try_reserve(per_shard, |p| hasher.hash(unsafe { p.key() }));
            });
        }
    }

    /// Bytes of this index's hash table arrays (MEMORY STATS per database); takes each
    /// shard's read lock in turn.
    pub(crate) fn table_bytes(&self) -> u64 {
        self.hashed
            .iter()
            .map(|shard| {
                let size = shard.read().allocation_info().1.size();
                if size == 0 {
                    0
                } else {
                    memory::table_bytes(size)
                }
            })
            .sum()
    }

    /// Gives back what [`Self::reserve`] over-estimated: shrinks shards holding less than half
    /// their capacity, and frees the table of every empty one (after a FLUSHALL, a small
    /// table left by a shrink while reclaim was still removing nodes would stay allocated,
    /// one per shard, scattered over the heap the load grew).
    pub(crate) fn shrink_oversized(&self) {
        let hasher = self.hasher;
        for shard in self.hashed.iter() {
            let mut table = shard.write();
            if table.capacity() > 2 * table.len() + 16 || (table.is_empty() && table.capacity() > 0)
            {
                self.resized(&mut table, |table| {
                    // SAFETY: every pointer in the table names a live node (see `get`).
                    table.shrink_to(0, |p| hasher.hash(unsafe { p.key() }));
                });
            }
        }
    }

    /// Calls `visit` with every node whose key has owner tag `tag` (keys of the same 48-bit
    /// tag collide rarely; the caller tells them apart by what they refer to). A node found is
    /// alive while `guard` is pinned, even if removed meanwhile; under the commit lock none is
    /// removed.
    pub(crate) fn for_each_with_tag<'g>(
        &self,
        tag: u64,
        _guard: &'g Guard,
        visit: &mut dyn FnMut(&'g KeyNode),
    ) {
        let hash = KeyHasher::hash_of_tag(tag);
        let Some(shard) = self.shard(hash) else {
            return;
        };
        let mut found: Vec<NodePtr> = Vec::new();
        {
            let table = shard.read();
            // SAFETY: we hold the shard's read lock for the whole iteration, so the table is
            // not resized under it.
            for bucket in unsafe { table.iter_hash(hash) } {
                // SAFETY: a bucket yielded by `iter_hash` is full.
                found.push(unsafe { *bucket.as_ref() });
            }
        }
        for pointer in found {
            // SAFETY: in the table when we looked, and the caller's pinned guard keeps a node
            // found then alive until it unpins, even if it is removed meanwhile (as in `get`).
            visit(unsafe { &*pointer.0 });
        }
    }

    /// Visits nodes at random positions of the hash index, as Redis's `dictGetSomeKeys` does:
    /// from a random shard and bucket, walking buckets forward and on to the next shards, until
    /// `visit` has accepted `count` nodes or `steps_max` buckets of non-empty shards have been
    /// looked at (every shard is looked at most once). Nodes are visited after their shard's
    /// lock is released.
    pub(crate) fn sample<'g>(
        &self,
        random: u64,
        count: usize,
        steps_max: usize,
        _guard: &'g Guard,
        visit: &mut dyn FnMut(&'g KeyNode) -> bool,
    ) {
        let mut accepted = 0usize;
        let mut steps = 0usize;
        let first_shard = (random % HASH_SHARDS as u64) as usize;
        let mut found: Vec<NodePtr> = Vec::with_capacity(count);
        for i in 0..HASH_SHARDS {
            if accepted >= count || steps >= steps_max {
                break;
            }
            let Some(shard) = self.hashed.get((first_shard + i) % HASH_SHARDS) else {
                continue;
            };
            found.clear();
            {
                let table = shard.read();
                if table.is_empty() {
                    continue;
                }
                let buckets = table.buckets();
                let start = (random.rotate_left(23) as usize) % buckets;
                for j in 0..buckets {
                    if found.len() + accepted >= count.saturating_mul(2) || steps >= steps_max {
                        break;
                    }
                    steps += 1;
                    let index = (start + j) % buckets;
                    // SAFETY: `index < buckets`, the table is allocated (not empty) and we hold
                    // its read lock, so the bucket's control byte and value are stable.
                    unsafe {
                        if table.is_bucket_full(index) {
                            found.push(*table.bucket(index).as_ref());
                        }
                    }
                }
            }
            for pointer in &found {
                if accepted >= count {
                    break;
                }
                // SAFETY: found in the table, so alive when we looked; the caller's pinned
                // guard keeps it alive until it unpins, even if it is removed meanwhile.
                let node: &'g KeyNode = unsafe { &*pointer.0 };
                if visit(node) {
                    accepted += 1;
                }
            }
        }
    }
}

impl KeyIndex for HybridIndex {
    fn get<'g>(&self, key: &[u8], _guard: &'g Guard) -> Option<&'g KeyNode> {
        let hash = self.hasher.hash(key);
        let shard = self.shard(hash)?.read();
        // SAFETY: pointers in the table name live nodes (removed from the table before the
        // skip list), and the caller's pinned guard keeps a node found now alive until it
        // unpins, even if it is removed meanwhile.
        let found = shard.get(hash, |p| unsafe { p.key() } == key).copied();
        drop(shard);
        // SAFETY: as above; the reference is bounded by the guard's lifetime.
        found.map(|p| unsafe { &*p.0 })
    }

    fn remove(&self, key: &[u8]) {
        let hash = self.hasher.hash(key);
        if let Some(shard) = self.shard(hash) {
            // SAFETY: every pointer in the table names a live node (see `get`).
            let removed = shard
                .write()
                .remove_entry(hash, |p| unsafe { p.key() } == key);
            if removed.is_some() {
                Accounting::sub(&self.accounting.node_bytes, memory::node_bytes(key.len()));
            }
        }
        self.ordered.remove(key);
    }

    fn for_each_in(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        visit: &mut dyn FnMut(&KeyNode) -> bool,
    ) {
        // Not `SkipMap::range`: in crossbeam-skiplist 0.1.3 its iterator keeps a reference to
        // every node it passes (`RefRange::next` replaces its head without releasing it), so
        // each node a scan, a GC sweep or a FLUSHALL ever walked over could never be freed once
        // removed. Fixed upstream after 0.1.3; `Entry::next` releases what it moves past.
        let mut current = self.ordered.lower_bound(start);
        while let Some(entry) = current {
            let past_end = match end {
                Bound::Included(end) => entry.key().key() > end,
                Bound::Excluded(end) => entry.key().key() >= end,
                Bound::Unbounded => false,
            };
            if past_end || !visit(entry.key()) {
                break;
            }
            current = entry.next();
        }
    }

    fn last_key(&self) -> Option<Vec<u8>> {
        self.ordered.back().map(|entry| entry.key().key().to_vec())
    }

    fn len(&self) -> usize {
        self.ordered.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_skip_list_agree() {
        let index = HybridIndex::default();
        let guard = crossbeam_epoch::pin();
        for i in 0..1000u32 {
            let key = format!("key:{i:05}");
            index.get_or_insert(key.as_bytes(), &guard);
        }
        assert_eq!(index.len(), 1000);
        assert!(index.get(b"key:00500", &guard).is_some());
        assert!(index.get(b"nope", &guard).is_none());
        index.remove(b"key:00500");
        assert!(index.get(b"key:00500", &guard).is_none());
        let mut keys = Vec::new();
        index.for_each_in(
            Bound::Included(b"key:00498"),
            Bound::Excluded(b"key:00503"),
            &mut |n| {
                keys.push(String::from_utf8(n.key().to_vec()).unwrap());
                true
            },
        );
        assert_eq!(keys, ["key:00498", "key:00499", "key:00501", "key:00502"]);
        assert_eq!(index.last_key().unwrap(), b"key:00999");
    }

    #[test]
    fn owner_tags_find_their_keys_in_every_index_of_one_hasher() {
        let hasher = KeyHasher::random();
        let a = HybridIndex::new(Arc::default(), hasher);
        let b = HybridIndex::new(Arc::default(), hasher);
        let guard = crossbeam_epoch::pin();
        for i in 0..2000u32 {
            let key = format!("key:{i}");
            a.get_or_insert(key.as_bytes(), &guard);
            if i % 2 == 0 {
                b.get_or_insert(key.as_bytes(), &guard);
            }
        }
        for i in 0..2000u32 {
            let key = format!("key:{i}");
            let tag = hasher.tag(key.as_bytes());
            assert!(tag <= storage::page::OWNER_TAG_MAX);
            assert_eq!(KeyHasher::hash_of_tag(tag), hasher.hash(key.as_bytes()));
            for (index, expected) in [(&a, true), (&b, i % 2 == 0)] {
                let mut found = Vec::new();
                index.for_each_with_tag(tag, &guard, &mut |n| found.push(n.key().to_vec()));
                assert_eq!(found.contains(&key.as_bytes().to_vec()), expected, "{key}");
            }
        }
    }

    /// Regression: ordered scans went through crossbeam-skiplist 0.1.3's `range`, which never
    /// released the nodes it passed, so no key node that a scan (a GC sweep, a FLUSHALL) had
    /// walked over was freed after its removal: 90 bytes a key leaked on every FLUSHALL.
    #[test]
    fn nodes_a_scan_walked_over_are_freed_once_removed() {
        use std::sync::atomic::Ordering;
        let index = HybridIndex::default();
        let guard = crossbeam_epoch::pin();
        let key = |i: u32| format!("{}{i:04}", version::DROP_PROBE_PREFIX);
        for i in 0..1000 {
            index.get_or_insert(key(i).as_bytes(), &guard);
        }
        drop(guard);
        let mut seen = 0;
        index.for_each_in(Bound::Unbounded, Bound::Unbounded, &mut |_| {
            seen += 1;
            true
        });
        index.for_each_in(
            Bound::Included(key(10).as_bytes()),
            Bound::Excluded(key(20).as_bytes()),
            &mut |_| {
                seen += 1;
                true
            },
        );
        assert_eq!(seen, 1010);
        let dropped_before = version::DROP_PROBES.load(Ordering::SeqCst);
        for i in 0..1000 {
            index.remove(key(i).as_bytes());
        }
        // Other tests on other threads may hold the epoch back for a while: wait for it (the
        // old code never frees these nodes at all).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while version::DROP_PROBES.load(Ordering::SeqCst) - dropped_before < 1000
            && std::time::Instant::now() < deadline
        {
            crossbeam_epoch::pin().flush();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(
            version::DROP_PROBES.load(Ordering::SeqCst) - dropped_before,
            1000,
            "removed nodes a scan had passed were never freed"
        );
    }

    #[test]
    fn reserved_node_is_adopted_not_duplicated() {
        let index = HybridIndex::default();
        let guard = crossbeam_epoch::pin();
        drop(index.reserve_node(b"k", &guard));
        // In order, not yet in the hash table.
        assert_eq!(index.len(), 1);
        assert!(index.get(b"k", &guard).is_none());
        let adopted = index.get_or_insert(b"k", &guard) as *const KeyNode;
        assert_eq!(index.len(), 1);
        assert_eq!(
            index.get(b"k", &guard).map(|n| n as *const KeyNode),
            Some(adopted)
        );
        // Reserving a present key changes nothing.
        assert!(index.reserve_node(b"k", &guard).is_none());
        assert_eq!(index.len(), 1);
        index.remove(b"k");
        assert_eq!(index.len(), 0);
        assert!(index.get(b"k", &guard).is_none());
    }

    #[test]
    fn adopting_a_reserved_node_fails_once_it_was_removed() {
        let index = HybridIndex::default();
        let guard = crossbeam_epoch::pin();
        let kept = index.reserve_node(b"a", &guard).unwrap();
        let node = index.adopt(&kept, &guard).unwrap() as *const KeyNode;
        assert_eq!(
            index.get(b"a", &guard).map(|n| n as *const KeyNode),
            Some(node)
        );
        let removed = index.reserve_node(b"b", &guard).unwrap();
        index.remove(b"b");
        assert!(index.adopt(&removed, &guard).is_none());
        assert!(index.get(b"b", &guard).is_none());
        assert_eq!(index.len(), 1);
    }
}
