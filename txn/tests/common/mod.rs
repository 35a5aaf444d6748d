//! A simple reference model of the engine (a map of version lists) and a driver that runs the
//! same operations against the model and the real engine, asserting they agree on every read,
//! every conflict and every scan.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use tierkv_txn as txn;
use txn::{
    CommitTs, Engine, EngineConfig, Entry, Expiry, Isolation, KeyWrite, ManualClock, Transaction,
    TxnError,
};

pub type Key = (u8, Vec<u8>);

#[derive(Debug, Clone, PartialEq)]
pub struct MVersion {
    pub ts: u64,
    pub value: Option<Vec<u8>>, // None = tombstone
    pub expire: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MWrite {
    Put(Vec<u8>, Option<u64>),
    Delete,
    SetExpiry(Option<u64>),
}

/// A keyspace-wide op run inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MDbOp {
    Flush(u8),
    FlushAll,
    Swap(u8, u8),
}

#[derive(Debug, Default)]
pub struct MTxn {
    pub snapshot: u64,
    pub serializable: bool,
    /// Own writes, keyed by the database as the transaction sees it after `db_ops`.
    pub writes: BTreeMap<Key, MWrite>,
    pub reads: Vec<Key>,
    /// (db, start inclusive, end inclusive or None = unbounded)
    pub ranges: Vec<(u8, Option<Vec<u8>>)>,
    pub db_ops: Vec<MDbOp>,
    /// Which committed database each database shows (`None` = flushed); empty = identity.
    pub view: BTreeMap<u8, Option<u8>>,
}

impl MTxn {
    /// The committed database `db` shows to this transaction, `None` once flushed in it.
    pub fn source(&self, db: u8) -> Option<u8> {
        self.view.get(&db).copied().unwrap_or(Some(db))
    }
}

/// (value, version, expire) as read.
pub type MEntry = (Vec<u8>, u64, Option<u64>);

#[derive(Debug, Default)]
pub struct Model {
    pub versions: BTreeMap<Key, Vec<MVersion>>, // oldest first
    pub last_ts: u64,
    pub now: u64,
}

impl Model {
    fn visible(&self, key: &Key, snapshot: u64) -> Option<&MVersion> {
        self.versions
            .get(key)
            .and_then(|vs| vs.iter().rev().find(|v| v.ts <= snapshot))
    }

    fn latest(&self, key: &Key) -> Option<&MVersion> {
        self.versions.get(key).and_then(|vs| vs.last())
    }

    pub fn latest_ts(&self, key: &Key) -> u64 {
        self.latest(key).map_or(0, |v| v.ts)
    }

    fn committed(&self, tx: &MTxn, key: &Key) -> Option<MEntry> {
        let source = tx.source(key.0)?;
        self.visible(&(source, key.1.clone()), tx.snapshot)
            .and_then(|v| v.value.clone().map(|value| (value, v.ts, v.expire)))
    }

    fn live(&self, entry: Option<MEntry>) -> Option<MEntry> {
        entry.filter(|(_, _, e)| e.is_none_or(|d| self.now < d))
    }

    pub fn get(&self, tx: &mut MTxn, key: &Key) -> Option<MEntry> {
        let entry = match tx.writes.get(key) {
            Some(MWrite::Put(v, e)) => Some((v.clone(), u64::MAX, *e)),
            Some(MWrite::Delete) => None,
            Some(MWrite::SetExpiry(e)) => {
                self.committed(tx, key).map(|(v, _, _)| (v, u64::MAX, *e))
            }
            None => {
                if tx.serializable {
                    if let Some(source) = tx.source(key.0) {
                        tx.reads.push((source, key.1.clone()));
                    }
                }
                self.committed(tx, key)
            }
        };
        self.live(entry)
    }

    pub fn tx_flush_db(&self, tx: &mut MTxn, db: u8) {
        tx.writes.retain(|key, _| key.0 != db);
        tx.view.insert(db, None);
        tx.db_ops.push(MDbOp::Flush(db));
    }

    pub fn tx_flush_all(&self, tx: &mut MTxn) {
        tx.writes.clear();
        for db in 0..16 {
            tx.view.insert(db, None);
        }
        tx.db_ops.push(MDbOp::FlushAll);
    }

    pub fn tx_swap_db(&self, tx: &mut MTxn, a: u8, b: u8) {
        if a == b {
            return;
        }
        let writes = std::mem::take(&mut tx.writes);
        tx.writes = writes
            .into_iter()
            .map(|((db, key), write)| {
                let db = if db == a {
                    b
                } else if db == b {
                    a
                } else {
                    db
                };
                ((db, key), write)
            })
            .collect();
        let (source_a, source_b) = (tx.source(a), tx.source(b));
        tx.view.insert(a, source_b);
        tx.view.insert(b, source_a);
        tx.db_ops.push(MDbOp::Swap(a, b));
    }

    pub fn put(&self, tx: &mut MTxn, key: &Key, value: &[u8], expiry: Expiry) {
        let expire = match expiry {
            Expiry::Persist => None,
            Expiry::At(d) => Some(d),
            Expiry::Keep => self.get(tx, key).and_then(|(_, _, e)| e),
        };
        tx.writes
            .insert(key.clone(), MWrite::Put(value.to_vec(), expire));
    }

    pub fn delete(&self, tx: &mut MTxn, key: &Key) -> bool {
        let existed = self.get(tx, key).is_some();
        if existed || tx.writes.contains_key(key) {
            tx.writes.insert(key.clone(), MWrite::Delete);
        }
        existed
    }

    pub fn set_expiry(&self, tx: &mut MTxn, key: &Key, expire: Option<u64>) -> bool {
        let Some((value, _, _)) = self.get(tx, key) else {
            return false;
        };
        if expire.is_some_and(|d| d <= self.now) {
            tx.writes.insert(key.clone(), MWrite::Delete);
            return true;
        }
        let write = match tx.writes.get(key) {
            Some(MWrite::Put(..)) => MWrite::Put(value, expire),
            _ => MWrite::SetExpiry(expire),
        };
        tx.writes.insert(key.clone(), write);
        true
    }

    /// Full scan of `db` with `limit` (own writes merged).
    pub fn scan(&self, tx: &mut MTxn, db: u8, limit: usize) -> Vec<(Vec<u8>, MEntry)> {
        let source = tx.source(db);
        let mut keys: Vec<Key> = self
            .versions
            .keys()
            .filter(|k| Some(k.0) == source)
            .map(|k| (db, k.1.clone()))
            .collect();
        keys.extend(tx.writes.keys().filter(|k| k.0 == db).cloned());
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            if out.len() >= limit {
                break;
            }
            let entry = match tx.writes.get(&key) {
                Some(MWrite::Put(v, e)) => Some((v.clone(), u64::MAX, *e)),
                Some(MWrite::Delete) => None,
                Some(MWrite::SetExpiry(e)) => {
                    self.committed(tx, &key).map(|(v, _, _)| (v, u64::MAX, *e))
                }
                None => self.committed(tx, &key),
            };
            if let Some(entry) = self.live(entry) {
                out.push((key.1.clone(), entry));
            }
        }
        if tx.serializable {
            let end = if out.len() >= limit {
                out.last().map(|(k, _)| k.clone())
            } else {
                None
            };
            if let Some(source) = source {
                tx.ranges.push((source, end));
            }
        }
        out
    }

    /// Predicts and applies a commit. Returns Ok(Some(ts)), Ok(None) for read-only, or the
    /// kind of error.
    pub fn commit(&mut self, tx: MTxn) -> Result<Option<u64>, &'static str> {
        if tx.writes.is_empty() && tx.db_ops.is_empty() {
            return Ok(None);
        }
        let changed = |key: &Key| self.latest_ts(key) > tx.snapshot;
        // A written key replaces what its database shows: nothing after a flush.
        let written_over = tx
            .writes
            .keys()
            .filter_map(|(db, key)| tx.source(*db).map(|source| (source, key.clone())));
        if written_over.clone().any(|key| changed(&key)) {
            return Err("conflict");
        }
        if tx.serializable {
            if tx.reads.iter().any(changed) {
                return Err("conflict");
            }
            for (db, end) in &tx.ranges {
                let hit = self
                    .versions
                    .keys()
                    .filter(|k| k.0 == *db)
                    .filter(|k| end.as_ref().is_none_or(|e| &k.1 <= e))
                    .any(changed);
                if hit {
                    return Err("conflict");
                }
            }
        }
        self.last_ts += 1;
        let ts = self.last_ts;
        for op in &tx.db_ops {
            match *op {
                MDbOp::Flush(db) => self.flush_db_at(db, ts),
                MDbOp::FlushAll => {
                    for db in 0..16 {
                        self.flush_db_at(db, ts);
                    }
                }
                MDbOp::Swap(a, b) => self.swap_db_at(a, b, ts),
            }
        }
        for (key, write) in tx.writes {
            let latest_value = self.latest(&key).and_then(|v| v.value.clone());
            let version = match write {
                MWrite::Put(value, expire) => MVersion {
                    ts,
                    value: Some(value),
                    expire,
                },
                MWrite::Delete if latest_value.is_some() => MVersion {
                    ts,
                    value: None,
                    expire: None,
                },
                MWrite::SetExpiry(expire) if latest_value.is_some() => MVersion {
                    ts,
                    value: latest_value,
                    expire,
                },
                _ => continue,
            };
            self.versions.entry(key).or_default().push(version);
        }
        Ok(Some(ts))
    }

    /// Active expiry of every due key, as one commit.
    pub fn expire_all_due(&mut self) -> usize {
        let due: Vec<Key> = self
            .versions
            .iter()
            .filter(|(_, vs)| {
                vs.last()
                    .is_some_and(|v| v.value.is_some() && v.expire.is_some_and(|d| d <= self.now))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if due.is_empty() {
            return 0;
        }
        self.last_ts += 1;
        for key in &due {
            self.versions.get_mut(key).unwrap().push(MVersion {
                ts: self.last_ts,
                value: None,
                expire: None,
            });
        }
        due.len()
    }

    fn heads(&self, db: u8) -> Vec<(Vec<u8>, Vec<u8>, Option<u64>)> {
        self.versions
            .iter()
            .filter(|(k, _)| k.0 == db)
            .filter_map(|(k, vs)| {
                let v = vs.last()?;
                v.value.clone().map(|value| (k.1.clone(), value, v.expire))
            })
            .collect()
    }

    pub fn flush_db(&mut self, db: u8) {
        self.last_ts += 1;
        self.flush_db_at(db, self.last_ts);
    }

    fn flush_db_at(&mut self, db: u8, ts: u64) {
        for (key, _, _) in self.heads(db) {
            self.versions.get_mut(&(db, key)).unwrap().push(MVersion {
                ts,
                value: None,
                expire: None,
            });
        }
    }

    pub fn swap_db(&mut self, a: u8, b: u8) {
        self.last_ts += 1;
        self.swap_db_at(a, b, self.last_ts);
    }

    fn swap_db_at(&mut self, a: u8, b: u8, ts: u64) {
        if a == b {
            return;
        }
        let (heads_a, heads_b) = (self.heads(a), self.heads(b));
        for (target, source, incoming) in [(a, &heads_a, &heads_b), (b, &heads_b, &heads_a)] {
            for (key, value, expire) in incoming {
                self.versions
                    .entry((target, key.clone()))
                    .or_default()
                    .push(MVersion {
                        ts,
                        value: Some(value.clone()),
                        expire: *expire,
                    });
            }
            for (key, _, _) in source {
                if !incoming.iter().any(|(k, _, _)| k == key) {
                    self.versions
                        .get_mut(&(target, key.clone()))
                        .unwrap()
                        .push(MVersion {
                            ts,
                            value: None,
                            expire: None,
                        });
                }
            }
        }
    }

    pub fn live_keys(&self, db: u8) -> u64 {
        self.versions
            .iter()
            .filter(|(k, vs)| k.0 == db && vs.last().is_some_and(|v| v.value.is_some()))
            .count() as u64
    }
}

pub fn to_mentry(entry: Option<Entry>) -> Option<MEntry> {
    entry.map(|e| (e.value.to_vec(), e.version.0, e.expire_at_ms))
}

pub fn kind(result: &Result<txn::CommitInfo, TxnError>) -> Result<Option<u64>, &'static str> {
    match result {
        Ok(info) => Ok(info.commit_ts.map(|ts| ts.0)),
        Err(TxnError::Conflict { .. }) => Err("conflict"),
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

/// Why a single-key update's decision wrote nothing.
#[derive(Debug, PartialEq)]
pub struct Rejected(pub &'static str);

impl From<TxnError> for Rejected {
    fn from(e: TxnError) -> Self {
        panic!("unexpected engine error {e:?}")
    }
}

/// One step of a history over transaction slots.
#[derive(Debug, Clone)]
pub enum Step {
    Begin {
        slot: usize,
        serializable: bool,
    },
    Get {
        slot: usize,
        key: usize,
    },
    Put {
        slot: usize,
        key: usize,
        value: u8,
        ttl: Option<u64>,
        keep: bool,
    },
    Delete {
        slot: usize,
        key: usize,
    },
    SetExpiry {
        slot: usize,
        key: usize,
        ttl: Option<u64>,
    },
    Scan {
        slot: usize,
        db: u8,
        limit: usize,
    },
    Commit {
        slot: usize,
    },
    Abort {
        slot: usize,
    },
    Advance {
        ms: u64,
    },
    Gc,
    /// Compaction of every sealed page (`Engine::compact_now`): values move, nothing visible
    /// may change.
    Compact,
    ExpireTick,
    FlushDb {
        db: u8,
    },
    SwapDb,
    /// FLUSHDB inside the transaction in `slot`.
    TxFlushDb {
        slot: usize,
        db: u8,
    },
    /// FLUSHALL inside the transaction in `slot`.
    TxFlushAll {
        slot: usize,
    },
    /// `Engine::put`: the single-key fast path for a blind write.
    OnePut {
        key: usize,
        value: u8,
        ttl: Option<u64>,
    },
    /// `Engine::update` adding `delta` to a decimal value (INCRBY; a non-decimal value is an
    /// error that writes nothing), keeping the deadline.
    OneIncr {
        key: usize,
        delta: i64,
    },
    /// `Engine::update` deleting the key if it holds a live value (DEL of one key).
    OneDelete {
        key: usize,
    },
    /// `Engine::get`.
    OneGet {
        key: usize,
    },
    /// SWAPDB 0 1 inside the transaction in `slot`.
    TxSwapDb {
        slot: usize,
    },
}

pub const KEYS: usize = 8;
pub const SLOTS: usize = 3;

/// Keys `k0..k3` in each of dbs 0 and 1 (same names, so SWAPDB exchanges them).
/// The bytes the steps write for `value`: up to 2.8 KB, so pages fill and seal, and
/// compaction has something to move.
pub fn value_bytes(value: u8) -> Vec<u8> {
    vec![value; 1 + (value as usize % 5) * 700]
}

pub fn key_of(index: usize) -> Key {
    (
        (index % 2) as u8,
        format!("k{}", (index / 2) % (KEYS / 2)).into_bytes(),
    )
}

/// Runs the model and the engine side by side.
pub struct Harness {
    pub model: Model,
    pub engine: Engine,
    pub clock: Arc<ManualClock>,
    pub slots: Vec<Option<(Transaction, MTxn)>>,
}

impl Harness {
    pub fn new() -> Harness {
        let clock = Arc::new(ManualClock::new(1_000));
        let engine = Engine::new(EngineConfig {
            clock: clock.clone(),
            ..EngineConfig::default()
        });
        Harness {
            model: Model {
                now: 1_000,
                ..Model::default()
            },
            engine,
            clock,
            slots: (0..SLOTS).map(|_| None).collect(),
        }
    }

    pub fn step(&mut self, step: &Step) {
        let now = self.model.now;
        match *step {
            Step::Begin { slot, serializable } => {
                if self.slots[slot].is_some() {
                    return;
                }
                let isolation = if serializable {
                    Isolation::Serializable
                } else {
                    Isolation::Snapshot
                };
                let tx = self.engine.begin(isolation);
                let mtx = MTxn {
                    snapshot: self.model.last_ts,
                    serializable,
                    ..MTxn::default()
                };
                assert_eq!(tx.snapshot_ts().0, mtx.snapshot, "snapshot");
                self.slots[slot] = Some((tx, mtx));
            }
            Step::Get { slot, key } => {
                if let Some((tx, mtx)) = self.slots[slot].as_mut() {
                    let k = key_of(key);
                    let got = to_mentry(tx.get(k.0, &k.1).unwrap());
                    assert_eq!(got, self.model.get(mtx, &k), "get {k:?}");
                }
            }
            Step::Put {
                slot,
                key,
                value,
                ttl,
                keep,
            } => {
                if let Some((tx, mtx)) = self.slots[slot].as_mut() {
                    let k = key_of(key);
                    let expiry = match (keep, ttl) {
                        (true, _) => Expiry::Keep,
                        (false, Some(ttl)) => Expiry::At(now + ttl),
                        (false, None) => Expiry::Persist,
                    };
                    let v = value_bytes(value);
                    tx.put(k.0, &k.1, &v, expiry).unwrap();
                    self.model.put(mtx, &k, &v, expiry);
                }
            }
            Step::Delete { slot, key } => {
                if let Some((tx, mtx)) = self.slots[slot].as_mut() {
                    let k = key_of(key);
                    assert_eq!(
                        tx.delete(k.0, &k.1).unwrap(),
                        self.model.delete(mtx, &k),
                        "delete {k:?}"
                    );
                }
            }
            Step::SetExpiry { slot, key, ttl } => {
                if let Some((tx, mtx)) = self.slots[slot].as_mut() {
                    let k = key_of(key);
                    let expire = ttl.map(|t| now + t);
                    assert_eq!(
                        tx.set_expiry(k.0, &k.1, expire).unwrap(),
                        self.model.set_expiry(mtx, &k, expire),
                        "set_expiry"
                    );
                }
            }
            Step::Scan { slot, db, limit } => {
                if let Some((tx, mtx)) = self.slots[slot].as_mut() {
                    let got: Vec<(Vec<u8>, MEntry)> = tx
                        .scan(db, None, None, limit)
                        .unwrap()
                        .into_iter()
                        .map(|(k, e)| (k.to_vec(), to_mentry(Some(e)).unwrap()))
                        .collect();
                    assert_eq!(
                        got,
                        self.model.scan(mtx, db, limit),
                        "scan db {db} limit {limit}"
                    );
                }
            }
            Step::Commit { slot } => {
                if let Some((tx, mtx)) = self.slots[slot].take() {
                    let got = kind(&tx.commit());
                    assert_eq!(got, self.model.commit(mtx), "commit");
                }
            }
            Step::Abort { slot } => {
                if let Some((tx, _)) = self.slots[slot].take() {
                    tx.abort();
                }
            }
            Step::Advance { ms } => {
                self.clock.advance(ms);
                self.model.now += ms;
            }
            Step::Compact => {
                self.engine.compact_now(100);
                // Relocation publishes timestamps of its own (no data changes at them).
                self.model.last_ts = self.engine.stats().visible_ts.0;
            }
            Step::Gc => {
                let stats = self.engine.gc();
                let oldest = self
                    .slots
                    .iter()
                    .flatten()
                    .map(|(_, m)| m.snapshot)
                    .min()
                    .unwrap_or(self.model.last_ts);
                assert_eq!(stats.low_watermark, CommitTs(oldest), "watermark");
            }
            Step::FlushDb { db } => {
                let info = self.engine.flush_db(db).unwrap();
                self.model.flush_db(db);
                assert_eq!(
                    info.commit_ts.map(|t| t.0),
                    Some(self.model.last_ts),
                    "flush ts"
                );
            }
            Step::SwapDb => {
                let info = self.engine.swap_db(0, 1).unwrap();
                self.model.swap_db(0, 1);
                assert_eq!(
                    info.commit_ts.map(|t| t.0),
                    Some(self.model.last_ts),
                    "swap ts"
                );
            }
            Step::TxFlushDb { slot, db } => {
                if let Some((tx, mtx)) = self.slots[slot].as_mut() {
                    tx.flush_db(db).unwrap();
                    self.model.tx_flush_db(mtx, db);
                }
            }
            Step::TxFlushAll { slot } => {
                if let Some((tx, mtx)) = self.slots[slot].as_mut() {
                    tx.flush_all().unwrap();
                    self.model.tx_flush_all(mtx);
                }
            }
            Step::TxSwapDb { slot } => {
                if let Some((tx, mtx)) = self.slots[slot].as_mut() {
                    tx.swap_db(0, 1).unwrap();
                    self.model.tx_swap_db(mtx, 0, 1);
                }
            }
            Step::OnePut { key, value, ttl } => {
                let k = key_of(key);
                let v = value_bytes(value);
                let expire = ttl.map(|t| now + t);
                let info = self.engine.put(k.0, &k.1, &v, expire).unwrap();
                let mut mtx = self.autocommit();
                let expiry = expire.map_or(Expiry::Persist, Expiry::At);
                self.model.put(&mut mtx, &k, &v, expiry);
                let expected = self.model.commit(mtx);
                assert_eq!(Ok(info.commit_ts.map(|t| t.0)), expected, "put_one {k:?}");
            }
            Step::OneIncr { key, delta } => {
                let k = key_of(key);
                let parse = |v: &[u8]| std::str::from_utf8(v).ok()?.parse::<i64>().ok();
                let got = self.engine.update(k.0, &k.1, true, |current| {
                    let current = match current {
                        None => 0,
                        Some(e) => parse(&e.value).ok_or(Rejected("not an integer"))?,
                    };
                    let next = current.checked_add(delta).ok_or(Rejected("overflow"))?;
                    let write = KeyWrite::Put {
                        value: txn::Bytes::from(next.to_string()),
                        expiry: Expiry::Keep,
                    };
                    Ok::<_, Rejected>((Some(write), next))
                });
                let mut mtx = self.autocommit();
                let expected = match self.model.get(&mut mtx, &k) {
                    None => Ok(0),
                    Some((v, _, _)) => parse(&v).ok_or(Rejected("not an integer")),
                }
                .and_then(|current| current.checked_add(delta).ok_or(Rejected("overflow")));
                match expected {
                    Ok(next) => {
                        let value = next.to_string().into_bytes();
                        self.model.put(&mut mtx, &k, &value, Expiry::Keep);
                        let ts = self.model.commit(mtx);
                        let (n, info) = got.expect("update");
                        assert_eq!(n, next, "incr {k:?}");
                        assert_eq!(Ok(info.commit_ts.map(|t| t.0)), ts, "incr ts {k:?}");
                    }
                    Err(why) => assert_eq!(got.map(|(n, _)| n), Err(why), "incr {k:?}"),
                }
            }
            Step::OneDelete { key } => {
                let k = key_of(key);
                let (existed, info) = self
                    .engine
                    .update(k.0, &k.1, false, |current| {
                        let existed = current.is_some();
                        Ok::<_, TxnError>((existed.then_some(KeyWrite::Delete), existed))
                    })
                    .unwrap();
                let mut mtx = self.autocommit();
                assert_eq!(existed, self.model.delete(&mut mtx, &k), "delete_one {k:?}");
                let expected = self.model.commit(mtx);
                assert_eq!(Ok(info.commit_ts.map(|t| t.0)), expected, "delete_one ts");
            }
            Step::OneGet { key } => {
                let k = key_of(key);
                let got = to_mentry(self.engine.get(k.0, &k.1).unwrap());
                let mut mtx = self.autocommit();
                assert_eq!(got, self.model.get(&mut mtx, &k), "get_one {k:?}");
            }
            Step::ExpireTick => {
                let deleted = self.engine.expire_tick(10_000);
                let expected = self.model.expire_all_due();
                assert_eq!(deleted, expected, "expire_tick");
            }
        }
        for db in 0..2 {
            assert_eq!(
                self.engine.dbsize(db),
                self.model.live_keys(db),
                "dbsize {db}"
            );
        }
    }

    /// The model of a one-command transaction (what the single-key fast paths stand for).
    fn autocommit(&self) -> MTxn {
        MTxn {
            snapshot: self.model.last_ts,
            serializable: true,
            ..MTxn::default()
        }
    }

    /// Closes every transaction, sweeps GC, and checks that only the newest versions remain.
    pub fn finish(&mut self) {
        for slot in 0..SLOTS {
            self.step(&Step::Abort { slot });
        }
        loop {
            if self.engine.gc().caught_up {
                break;
            }
        }
        // Compaction moves what is left, frees every old copy (no snapshot is open), and a
        // survey finds nothing more to reclaim.
        self.step(&Step::Compact);
        self.engine.compact_tick();
        assert_eq!(self.engine.compaction_stats().retired_bytes, 0);
        let stats = self.engine.stats();
        let live: u64 = (0..2).map(|db| self.model.live_keys(db)).sum();
        let versions: u64 = stats.dbs.iter().map(|d| d.versions).sum();
        assert_eq!(
            versions, live,
            "after a full GC sweep only live keys' newest versions remain"
        );
        assert_eq!(
            stats.pages.values_live, live,
            "every other value was freed exactly once"
        );
        // The memory counters agree with what is left: one node per live key (all keys are
        // 2 bytes), its value, no older version, nothing awaiting GC.
        assert_eq!(stats.memory.index_bytes, live * txn::memory::node_bytes(2));
        assert_eq!(stats.memory.value_bytes, stats.pages.bytes_live);
        assert_eq!(stats.memory.version_bytes, 0);
        // Nothing awaits GC: eviction counts every node and every live value (charged 10%
        // more, the fragmentation compaction tolerates by default).
        let m = stats.memory;
        assert_eq!(
            m.counted_for_evict_bytes,
            m.index_bytes
                + m.hash_index_bytes
                + m.value_bytes * 110 / 100
                + m.overhead_bytes
                + m.expiry_bytes
        );
        for index in 0..KEYS {
            let k = key_of(index);
            let mut tx = self.engine.begin(Isolation::Snapshot);
            let mut mtx = MTxn {
                snapshot: self.model.last_ts,
                ..MTxn::default()
            };
            assert_eq!(
                to_mentry(tx.get(k.0, &k.1).unwrap()),
                self.model.get(&mut mtx, &k)
            );
        }
    }
}
