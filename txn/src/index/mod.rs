//! The versioned index of one database: one [`KeyNode`] per user key, reachable both through an
//! ordered skip list (scans) and a concurrent hash map (point lookups).
//!
//! Invariants:
//! - the skip list and the hash map always name the *same* `KeyNode` for a key: nodes are
//!   inserted and removed only under the commit lock, hash first on insert... and both on
//!   removal, so a reader may find a node in one map that the other just dropped, which is
//!   harmless (the node stays alive while referenced and holds a tombstone);
//! - readers never lock anything a writer holds for long (the skip list is lock-free; the hash
//!   map takes a shard read lock for the probe only).
//!
//! The index sits behind [`KeyIndex`] because crossbeam-skiplist has had no release since 2024
//! and may need to be vendored or replaced.

pub(crate) mod version;

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use dashmap::DashMap;

pub(crate) use version::{KeyNode, Version, NO_EXPIRY};

/// What the engine needs from an index of key nodes.
pub(crate) trait KeyIndex: Send + Sync {
    /// The node of `key`, if present.
    fn get(&self, key: &[u8]) -> Option<Arc<KeyNode>>;
    /// The node of `key`, inserting an empty one if absent. Caller holds the commit lock.
    fn get_or_insert(&self, key: &[u8]) -> Arc<KeyNode>;
    /// Removes `key`'s node. Caller holds the commit lock.
    fn remove(&self, key: &[u8]);
    /// Visits nodes with keys in the range, in key order, until `visit` returns false.
    fn for_each_in(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        visit: &mut dyn FnMut(&Bytes, &KeyNode) -> bool,
    );
    /// The greatest key present.
    fn last_key(&self) -> Option<Bytes>;
    /// Number of key nodes (live keys, tombstones awaiting GC).
    fn len(&self) -> usize;
}

/// Skip list for order plus a hash map in front for point lookups.
#[derive(Default)]
pub(crate) struct HybridIndex {
    ordered: SkipMap<Bytes, Arc<KeyNode>>,
    hashed: DashMap<Bytes, Arc<KeyNode>>,
}

impl KeyIndex for HybridIndex {
    fn get(&self, key: &[u8]) -> Option<Arc<KeyNode>> {
        self.hashed.get(key).map(|entry| Arc::clone(entry.value()))
    }

    fn get_or_insert(&self, key: &[u8]) -> Arc<KeyNode> {
        if let Some(node) = self.get(key) {
            return node;
        }
        let key = Bytes::copy_from_slice(key);
        let node = Arc::new(KeyNode::default());
        self.ordered.insert(key.clone(), Arc::clone(&node));
        self.hashed.insert(key, Arc::clone(&node));
        node
    }

    fn remove(&self, key: &[u8]) {
        self.hashed.remove(key);
        self.ordered.remove(key);
    }

    fn for_each_in(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        visit: &mut dyn FnMut(&Bytes, &KeyNode) -> bool,
    ) {
        for entry in self.ordered.range::<[u8], _>((start, end)) {
            if !visit(entry.key(), entry.value()) {
                break;
            }
        }
    }

    fn last_key(&self) -> Option<Bytes> {
        self.ordered.back().map(|entry| entry.key().clone())
    }

    fn len(&self) -> usize {
        self.hashed.len()
    }
}
