//! Which resident items stay in RAM: W-TinyLFU (Caffeine's design), or plain LRU to compare.
//!
//! Items are opaque `u64` ids with a weight in bytes (the pool uses page ids and page bytes;
//! the hit-ratio simulator in `tierkv-bench` uses values). The resident set is split into:
//! - a **window** LRU (about 1 % of the budget): every new item enters here, so a burst of
//!   new items competes only with other new items at first;
//! - a **main** region, segmented LRU: **probation** (items that left the window) and
//!   **protected** (items hit again while in probation; at most 80 % of main).
//!
//! When the window overflows, its least recent item is a *candidate* for main. If main has no
//! room, the candidate is admitted only if the frequency sketch (`sketch.rs`) says it is
//! accessed more often than main's *victim* (probation's least recent item, else protected's);
//! the loser leaves RAM. So a scan (every key read once) passes through the window and is
//! turned away at main's door: it cannot flush the hot set.
//!
//! Invariants (checked by `check` in tests): every item is in exactly one list; each region's
//! weight is the sum of its items'; after `insert` the total weight is at most the budget
//! (unless one item alone is heavier, which then is the only one left); protected holds at
//! most its share unless main is otherwise empty. Every id `insert` or `access` drops is
//! returned to the caller exactly once.

use std::collections::HashMap;

use super::sketch::FrequencySketch;

/// Share of the budget for the window, in per mille (Caffeine starts at 1 %).
const WINDOW_PER_MILLE: u64 = 10;
/// Share of main for protected items, in percent.
const PROTECTED_PCT: u64 = 80;

/// How the policy chooses what leaves RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionPolicy {
    /// Window + segmented main with TinyLFU admission (the default).
    WTinyLfu,
    /// One LRU list: for comparison (`tierkv-bench --policy lru`).
    Lru,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Window,
    Probation,
    Protected,
}

const NIL: usize = usize::MAX;

#[derive(Debug, Clone)]
struct Node {
    id: u64,
    weight: u64,
    region: Region,
    prev: usize,
    next: usize,
}

/// A doubly linked list threaded through the node slab: `head` least recent, `tail` most.
#[derive(Debug, Clone, Copy)]
struct List {
    head: usize,
    tail: usize,
    weight: u64,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        weight: 0,
    };
}

/// The resident set under a byte budget (see the module docs).
#[derive(Debug, Clone)]
pub struct Policy {
    kind: EvictionPolicy,
    budget: u64,
    window_budget: u64,
    protected_budget: u64,
    nodes: Vec<Node>,
    free: Vec<usize>,
    index: HashMap<u64, usize>,
    window: List,
    probation: List,
    protected: List,
    sketch: FrequencySketch,
}

impl Policy {
    /// A policy keeping at most `budget` bytes, sized for about `expected_items` items.
    pub fn new(kind: EvictionPolicy, budget: u64, expected_items: usize) -> Policy {
        let window_budget = match kind {
            EvictionPolicy::WTinyLfu => (budget * WINDOW_PER_MILLE / 1000).max(1),
            EvictionPolicy::Lru => 0,
        };
        let main = budget.saturating_sub(window_budget);
        Policy {
            kind,
            budget,
            window_budget,
            protected_budget: main * PROTECTED_PCT / 100,
            nodes: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            window: List::EMPTY,
            probation: List::EMPTY,
            protected: List::EMPTY,
            sketch: FrequencySketch::new(expected_items),
        }
    }

    /// The budget in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes of the items resident.
    pub fn weight(&self) -> u64 {
        self.window.weight + self.probation.weight + self.protected.weight
    }

    /// Items resident.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nothing is resident.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The resident ids, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.index.keys().copied()
    }

    /// Whether `id` is resident.
    pub fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    /// The sketch's estimate of how often `id` was accessed lately (0–15).
    pub fn frequency(&self, id: u64) -> u8 {
        self.sketch.frequency(id)
    }

    /// Records an access of `id`: counted by the sketch whether resident or not (a miss
    /// counts too, so an item read often from SSD earns its way back); a resident item moves
    /// up. Returns whether it was resident.
    pub fn access(&mut self, id: u64) -> bool {
        self.sketch.record(id);
        let Some(&slot) = self.index.get(&id) else {
            return false;
        };
        match self.region(slot) {
            Some(region @ (Region::Window | Region::Protected)) => {
                self.unlink(slot);
                self.push_tail(slot, region);
            }
            Some(Region::Probation) if self.kind == EvictionPolicy::Lru => {
                self.unlink(slot);
                self.push_tail(slot, Region::Probation);
            }
            Some(Region::Probation) => {
                // A second hit in main: protected, demoting protected's least recent items
                // to probation if it outgrows its share.
                self.unlink(slot);
                self.push_tail(slot, Region::Protected);
                while self.protected.weight > self.protected_budget && self.protected.head != slot {
                    let demoted = self.protected.head;
                    self.unlink(demoted);
                    self.push_tail(demoted, Region::Probation);
                }
            }
            None => {}
        }
        true
    }

    /// Makes `id` (of `weight` bytes) resident and returns the ids that must leave RAM to keep
    /// the budget (possibly `id` itself, if TinyLFU turns it away). An id already resident
    /// has its weight updated and counts as accessed.
    pub fn insert(&mut self, id: u64, weight: u64) -> Vec<u64> {
        if let Some(&slot) = self.index.get(&id) {
            if let Some(node) = self.nodes.get(slot) {
                let (region, old) = (node.region, node.weight);
                self.list_mut(region).weight = self.list(region).weight - old + weight;
                if let Some(node) = self.nodes.get_mut(slot) {
                    node.weight = weight;
                }
            }
            self.access(id);
            return self.evict();
        }
        self.sketch.record(id);
        let node = Node {
            id,
            weight,
            region: Region::Window,
            prev: NIL,
            next: NIL,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(n) = self.nodes.get_mut(slot) {
                    *n = node;
                }
                slot
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.index.insert(id, slot);
        let region = match self.kind {
            EvictionPolicy::WTinyLfu => Region::Window,
            EvictionPolicy::Lru => Region::Probation,
        };
        self.push_tail(slot, region);
        self.evict()
    }

    /// Forgets `id` (its page was freed or left RAM by other means). Returns whether it was
    /// resident.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(slot) = self.index.remove(&id) else {
            return false;
        };
        self.unlink(slot);
        self.free.push(slot);
        true
    }

    /// Changes the budget; returns the ids that must leave RAM.
    pub fn set_budget(&mut self, budget: u64) -> Vec<u64> {
        let fresh = Policy::new(self.kind, budget, 1);
        self.budget = budget;
        self.window_budget = fresh.window_budget;
        self.protected_budget = fresh.protected_budget;
        self.evict()
    }

    /// Restores the budget: the window's overflow goes to main, through TinyLFU's admission
    /// when main is full.
    fn evict(&mut self) -> Vec<u64> {
        let mut evicted = Vec::new();
        // The window's overflow: candidates for main.
        while self.window.weight > self.window_budget && self.window.head != NIL {
            let candidate = self.window.head;
            self.unlink(candidate);
            self.push_tail(candidate, Region::Probation);
            self.admit(candidate, &mut evicted);
        }
        // Over budget still (LRU mode, or a weight change): least recent first.
        while self.weight() > self.budget && self.len() > 1 {
            let victim = self.victim(NIL, true);
            if victim == NIL {
                break;
            }
            self.evict_slot(victim, &mut evicted);
        }
        evicted
    }

    /// Main is over its share after `candidate` joined probation: the candidate and main's
    /// victims meet at the door, the more frequent stays.
    fn admit(&mut self, candidate: usize, evicted: &mut Vec<u64>) {
        let main_budget = self.budget.saturating_sub(self.window_budget);
        while self.probation.weight + self.protected.weight > main_budget {
            let victim = self.victim(candidate, false);
            if victim == NIL {
                // The candidate alone is over main's share: it stays only if nothing else is
                // resident.
                if self.len() > 1 {
                    self.evict_slot(candidate, evicted);
                }
                return;
            }
            let (Some(c), Some(v)) = (self.nodes.get(candidate), self.nodes.get(victim)) else {
                return;
            };
            if self.sketch.frequency(c.id) > self.sketch.frequency(v.id) {
                self.evict_slot(victim, evicted);
            } else {
                self.evict_slot(candidate, evicted);
                return;
            }
        }
    }

    /// The least recent item other than `except`: probation's first, then protected's, then
    /// (with `window`) the window's. In LRU mode probation is the one list. NIL if none.
    fn victim(&self, except: usize, window: bool) -> usize {
        let lists = [self.probation, self.protected, self.window];
        for list in lists.iter().take(if window { 3 } else { 2 }) {
            let mut slot = list.head;
            while slot != NIL {
                if slot != except {
                    return slot;
                }
                slot = self.nodes.get(slot).map_or(NIL, |n| n.next);
            }
        }
        NIL
    }

    fn evict_slot(&mut self, slot: usize, evicted: &mut Vec<u64>) {
        let Some(id) = self.nodes.get(slot).map(|n| n.id) else {
            return;
        };
        self.unlink(slot);
        self.index.remove(&id);
        self.free.push(slot);
        evicted.push(id);
    }

    fn region(&self, slot: usize) -> Option<Region> {
        self.nodes.get(slot).map(|n| n.region)
    }

    fn list(&self, region: Region) -> List {
        match region {
            Region::Window => self.window,
            Region::Probation => self.probation,
            Region::Protected => self.protected,
        }
    }

    fn list_mut(&mut self, region: Region) -> &mut List {
        match region {
            Region::Window => &mut self.window,
            Region::Probation => &mut self.probation,
            Region::Protected => &mut self.protected,
        }
    }

    fn unlink(&mut self, slot: usize) {
        let Some(node) = self.nodes.get(slot) else {
            return;
        };
        let (prev, next, region, weight) = (node.prev, node.next, node.region, node.weight);
        if let Some(p) = self.nodes.get_mut(prev) {
            p.next = next;
        }
        if let Some(n) = self.nodes.get_mut(next) {
            n.prev = prev;
        }
        let list = self.list_mut(region);
        if list.head == slot {
            list.head = next;
        }
        if list.tail == slot {
            list.tail = prev;
        }
        list.weight -= weight;
        if let Some(node) = self.nodes.get_mut(slot) {
            node.prev = NIL;
            node.next = NIL;
        }
    }

    fn push_tail(&mut self, slot: usize, region: Region) {
        let Some(weight) = self.nodes.get(slot).map(|n| n.weight) else {
            return;
        };
        let tail = self.list(region).tail;
        if let Some(node) = self.nodes.get_mut(slot) {
            node.region = region;
            node.prev = tail;
            node.next = NIL;
        }
        if let Some(t) = self.nodes.get_mut(tail) {
            t.next = slot;
        }
        let list = self.list_mut(region);
        if list.head == NIL {
            list.head = slot;
        }
        list.tail = slot;
        list.weight += weight;
    }

    /// Checks the invariants of the module docs (tests).
    #[cfg(test)]
    fn check(&self) {
        let mut seen = 0;
        for region in [Region::Window, Region::Probation, Region::Protected] {
            let list = self.list(region);
            let (mut slot, mut prev, mut weight) = (list.head, NIL, 0);
            while slot != NIL {
                let node = &self.nodes[slot];
                assert_eq!(node.region, region);
                assert_eq!(node.prev, prev);
                assert_eq!(self.index.get(&node.id), Some(&slot));
                weight += node.weight;
                seen += 1;
                prev = slot;
                slot = node.next;
            }
            assert_eq!(list.tail, prev);
            assert_eq!(list.weight, weight, "{region:?}");
        }
        assert_eq!(seen, self.index.len());
        if self.len() > 1 {
            assert!(
                self.weight() <= self.budget,
                "{} > {}",
                self.weight(),
                self.budget
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A scan of many cold items, each read once, does not flush a hot set that fits.
    fn hot_set_survives_a_scan(kind: EvictionPolicy) -> usize {
        let mut policy = Policy::new(kind, 1000 * 100, 1000);
        for _ in 0..20 {
            for id in 0..500u64 {
                if !policy.access(id) {
                    policy.insert(id, 100);
                }
            }
        }
        for id in 1_000_000..1_020_000u64 {
            if !policy.access(id) {
                policy.insert(id, 100);
            }
            policy.check();
        }
        (0..500u64).filter(|&id| policy.contains(id)).count()
    }

    #[test]
    fn a_scan_does_not_flush_the_hot_set_under_tinylfu_but_does_under_lru() {
        assert!(hot_set_survives_a_scan(EvictionPolicy::WTinyLfu) >= 490);
        assert_eq!(hot_set_survives_a_scan(EvictionPolicy::Lru), 0);
    }

    #[test]
    fn a_second_hit_in_probation_protects_and_protected_keeps_its_share() {
        let mut policy = Policy::new(EvictionPolicy::WTinyLfu, 10_000, 100);
        for id in 0..100 {
            policy.insert(id, 100);
        }
        policy.check();
        for id in 0..100 {
            policy.access(id);
        }
        policy.check();
        assert!(policy.protected.weight <= policy.protected_budget);
        assert!(policy.protected.weight > 0);
    }

    #[test]
    fn an_item_heavier_than_the_budget_stays_only_alone() {
        let mut policy = Policy::new(EvictionPolicy::WTinyLfu, 1000, 10);
        assert!(policy.insert(1, 100).is_empty());
        let evicted = policy.insert(2, 5000);
        policy.check();
        assert_eq!(policy.len(), 1);
        assert_eq!(evicted.len(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Access(u64),
        Insert(u64, u64),
        Remove(u64),
        Budget(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..64).prop_map(Op::Access),
            4 => (0u64..64, 1u64..400).prop_map(|(id, w)| Op::Insert(id, w)),
            1 => (0u64..64).prop_map(Op::Remove),
            1 => (500u64..5000).prop_map(Op::Budget),
        ]
    }

    proptest! {
        /// Against a model of the resident set: every id the policy drops is reported once,
        /// and what it reports resident is exactly what was inserted and not dropped.
        #[test]
        fn matches_a_model_of_the_resident_set(
            tinylfu in any::<bool>(),
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let kind = if tinylfu { EvictionPolicy::WTinyLfu } else { EvictionPolicy::Lru };
            let mut policy = Policy::new(kind, 2000, 64);
            let mut model: HashMap<u64, u64> = HashMap::new();
            for op in ops {
                let dropped = match op {
                    Op::Access(id) => {
                        prop_assert_eq!(policy.access(id), model.contains_key(&id));
                        Vec::new()
                    }
                    Op::Insert(id, w) => {
                        model.insert(id, w);
                        policy.insert(id, w)
                    }
                    Op::Remove(id) => {
                        prop_assert_eq!(policy.remove(id), model.remove(&id).is_some());
                        Vec::new()
                    }
                    Op::Budget(b) => policy.set_budget(b),
                };
                for id in dropped {
                    prop_assert!(model.remove(&id).is_some(), "dropped {} twice or never held", id);
                }
                policy.check();
                prop_assert_eq!(policy.len(), model.len());
                prop_assert_eq!(policy.weight(), model.values().sum::<u64>());
            }
        }
    }
}
