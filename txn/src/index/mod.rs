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
//!   is held only for the probe (a shard's write lock only for an insert, removal or resize).
//!
//! The index sits behind [`KeyIndex`] because crossbeam-skiplist has had no release since 2024
//! and may need to be vendored or replaced.

mod key;
pub(crate) use key::InlineKey;
pub(crate) mod version;

use std::ops::Bound;

use crossbeam_epoch::Guard;
use crossbeam_skiplist::SkipMap;
use hashbrown::HashTable;
use parking_lot::RwLock;

pub(crate) use version::{KeyNode, VersionView, EXPIRE_MAX_MS, NO_EXPIRY};

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
const HASH_SHARDS: usize = 1024;

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

/// Skip list for order plus a hash table in front for point lookups.
pub(crate) struct HybridIndex {
    ordered: SkipMap<KeyNode, ()>,
    hashed: Box<[RwLock<HashTable<NodePtr>>]>,
    seed: u64,
}

impl Default for HybridIndex {
    fn default() -> Self {
        let seed = {
            // Per-index seed so keys chosen by a client cannot be tuned to collide everywhere.
            let local = 0u8;
            let address = &local as *const u8 as u64;
            let time = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            hash_key(time, &address.to_le_bytes())
        };
        HybridIndex {
            ordered: SkipMap::new(),
            hashed: (0..HASH_SHARDS)
                .map(|_| RwLock::new(HashTable::new()))
                .collect(),
            seed,
        }
    }
}

/// A skip-list node reserved outside the commit lock ([`HybridIndex::reserve_node`]). Holding
/// it keeps the node's memory alive, so the install under the lock can adopt it without a
/// second descent.
pub(crate) struct Reserved<'a>(crossbeam_skiplist::map::Entry<'a, KeyNode, ()>);

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
        Some(Reserved(self.ordered.get_or_insert(KeyNode::new(key), ())))
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
        if reserved.0.is_removed() {
            return None;
        }
        let node = reserved.0.key();
        let pointer = NodePtr(node as *const KeyNode);
        let hash = hash_key(self.seed, node.key());
        if let Some(shard) = self.shard(hash) {
            let seed = self.seed;
            // SAFETY: every pointer in the table names a live node (see `get`).
            shard
                .write()
                .insert_unique(hash, pointer, |p| hash_key(seed, unsafe { p.key() }));
        }
        // SAFETY: the node stays in the skip list until a later removal under the commit lock
        // (which the caller holds), and `guard` keeps it alive beyond that.
        Some(unsafe { &*pointer.0 })
    }

    /// Removes `key`'s node if it is only a reservation (in the skip list, not in the hash
    /// table); true if one was removed. Caller holds the commit lock, under which such a node is
    /// empty: versions are installed only after `adopt` or `insert_absent`.
    pub(crate) fn remove_reserved(&self, key: &[u8], guard: &Guard) -> bool {
        self.get(key, guard).is_none() && self.ordered.remove(key).is_some()
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
        let hash = hash_key(self.seed, key);
        if let Some(shard) = self.shard(hash) {
            let seed = self.seed;
            // SAFETY: every pointer in the table names a live node (see `get`).
            shard
                .write()
                .insert_unique(hash, pointer, |p| hash_key(seed, unsafe { p.key() }));
        }
        // SAFETY: the node stays in the skip list until a later removal under the commit lock
        // (which the caller holds), and `guard` keeps it alive beyond that.
        unsafe { &*pointer.0 }
    }

    /// Recovery's find-or-insert in one hash probe: `key`'s node and whether it was made now.
    /// Holds the shard's write lock across the skip-list insert, which only a bulk load with no
    /// readers may do; the caller is the only thread touching `key`.
    pub(crate) fn load_node<'g>(&self, key: &[u8], guard: &'g Guard) -> (&'g KeyNode, bool) {
        let hash = hash_key(self.seed, key);
        let Some(shard) = self.shard(hash) else {
            return (self.insert_absent(key, guard), true);
        };
        let seed = self.seed;
        let mut table = shard.write();
        // SAFETY (both closures): every pointer in the table names a live node (see `get`).
        let entry = table.entry(
            hash,
            |p| unsafe { p.key() } == key,
            |p| hash_key(seed, unsafe { p.key() }),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(found) => {
                // SAFETY: as in `get`; `guard` bounds the reference.
                (unsafe { &*found.get().0 }, false)
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                let entry = self.ordered.get_or_insert(KeyNode::new(key), ());
                let pointer = NodePtr(entry.key() as *const KeyNode);
                drop(entry);
                slot.insert(pointer);
                // SAFETY: linked until a removal under the commit lock; `guard` keeps it alive.
                (unsafe { &*pointer.0 }, true)
            }
        }
    }

    /// Makes room for `additional` more keys in the hash table ahead of a bulk load, so it does
    /// not rehash (every rehash dereferences every node) as it grows. Best effort: a
    /// reservation that cannot be allocated is skipped.
    pub(crate) fn reserve(&self, additional: usize) {
        let per_shard = additional / HASH_SHARDS + 1;
        let seed = self.seed;
        for shard in self.hashed.iter() {
            // SAFETY: every pointer in the table names a live node (see `get`).
            let _ = shard
                .write()
                .try_reserve(per_shard, |p| hash_key(seed, unsafe { p.key() }));
        }
    }

    /// Gives back what [`Self::reserve`] over-estimated: shrinks shards holding less than half
    /// their capacity.
    pub(crate) fn shrink_oversized(&self) {
        let seed = self.seed;
        for shard in self.hashed.iter() {
            let mut table = shard.write();
            if table.capacity() > 2 * table.len() + 16 {
                // SAFETY: every pointer in the table names a live node (see `get`).
                table.shrink_to_fit(|p| hash_key(seed, unsafe { p.key() }));
            }
        }
    }

    fn shard(&self, hash: u64) -> Option<&RwLock<HashTable<NodePtr>>> {
        self.hashed.get((hash >> 40) as usize % HASH_SHARDS)
    }
}

impl KeyIndex for HybridIndex {
    fn get<'g>(&self, key: &[u8], _guard: &'g Guard) -> Option<&'g KeyNode> {
        let hash = hash_key(self.seed, key);
        let shard = self.shard(hash)?.read();
        // SAFETY: pointers in the table name live nodes (removed from the table before the
        // skip list), and the caller's pinned guard keeps a node found now alive until it
        // unpins, even if it is removed meanwhile.
        let found = shard.find(hash, |p| unsafe { p.key() } == key).copied();
        drop(shard);
        // SAFETY: as above; the reference is bounded by the guard's lifetime.
        found.map(|p| unsafe { &*p.0 })
    }

    fn remove(&self, key: &[u8]) {
        let hash = hash_key(self.seed, key);
        if let Some(shard) = self.shard(hash) {
            let mut table = shard.write();
            // SAFETY: every pointer in the table names a live node (see `get`).
            if let Ok(entry) = table.find_entry(hash, |p| unsafe { p.key() } == key) {
                entry.remove();
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
        for entry in self.ordered.range::<[u8], _>((start, end)) {
            if !visit(entry.key()) {
                break;
            }
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
