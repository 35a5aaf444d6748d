//! Operation kinds, weighted mixes and the YCSB presets.
//!
//! Invariant: a `Mix` has at least one operation with a positive weight, so drawing from it
//! always yields an operation.

use rand::Rng;

use super::dist::KeyDistKind;

/// One kind of benchmark operation (one sample in the latency histograms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// `GET k`, checked against the expected version range.
    Get,
    /// `SET k v` of an existing key (YCSB "update").
    Set,
    /// `SET k v` of a new key (YCSB "insert").
    Insert,
    /// `MGET` of consecutive key ids: YCSB "scan" on a server without ordered ranges.
    Scan,
    /// `GET k` then `SET k v'` (YCSB "read-modify-write", two round trips).
    Rmw,
    /// `INCR` of a counter key.
    Incr,
    /// `MGET` of random keys.
    Mget,
    /// `MSET` of random keys.
    Mset,
    /// `MULTI`, `SET` × n, `EXEC`.
    Multi,
    /// Interactive transaction: `WATCH k`, `GET k`, then `MULTI`, `SET k v'`, `EXEC`.
    Txn,
    /// `DEL k`: only the load phase uses it, to clear keys an earlier run inserted.
    Del,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 11] = [
        OpKind::Get,
        OpKind::Set,
        OpKind::Insert,
        OpKind::Scan,
        OpKind::Rmw,
        OpKind::Incr,
        OpKind::Mget,
        OpKind::Mset,
        OpKind::Multi,
        OpKind::Txn,
        OpKind::Del,
    ];

    /// Position in [`OpKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Set => "set",
            OpKind::Insert => "insert",
            OpKind::Scan => "scan",
            OpKind::Rmw => "rmw",
            OpKind::Incr => "incr",
            OpKind::Mget => "mget",
            OpKind::Mset => "mset",
            OpKind::Multi => "multi",
            OpKind::Txn => "txn",
            OpKind::Del => "del",
        }
    }

    /// The kind named `name`, if a mix may use it (`del` may not).
    fn from_name(name: &str) -> Option<OpKind> {
        OpKind::ALL
            .into_iter()
            .find(|k| k.name() == name && *k != OpKind::Del)
    }
}

/// A weighted choice of operations.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Mix {
    weights: Vec<(OpKind, u32)>,
    total: u32,
}

impl Mix {
    /// A mix from `(kind, weight)` pairs; `None` if no weight is positive.
    pub fn new(weights: Vec<(OpKind, u32)>) -> Option<Mix> {
        let weights: Vec<_> = weights.into_iter().filter(|(_, w)| *w > 0).collect();
        let total = weights.iter().map(|(_, w)| *w).sum();
        (total > 0).then_some(Mix { weights, total })
    }

    /// Draws one operation kind.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> OpKind {
        let mut ticket = rng.gen_range(0..self.total);
        for (kind, weight) in &self.weights {
            if ticket < *weight {
                return *kind;
            }
            ticket -= weight;
        }
        // Unreachable while `total` is the sum of weights; fall back to the first op.
        self.weights.first().map_or(OpKind::Get, |(k, _)| *k)
    }

    /// The kinds this mix can draw.
    pub fn kinds(&self) -> impl Iterator<Item = OpKind> + '_ {
        self.weights.iter().map(|(k, _)| *k)
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    /// `get=50,set=30,incr=20`
    fn from_str(text: &str) -> Result<Mix, String> {
        let mut weights = Vec::new();
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("expected op=weight, got {part:?}"))?;
            let kind = OpKind::from_name(name.trim().to_ascii_lowercase().as_str())
                .ok_or_else(|| format!("unknown operation {name:?}"))?;
            let weight = weight
                .trim()
                .parse::<u32>()
                .map_err(|e| format!("bad weight in {part:?}: {e}"))?;
            weights.push((kind, weight));
        }
        Mix::new(weights).ok_or_else(|| "a mix needs at least one positive weight".to_string())
    }
}

/// The YCSB core workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Workload {
    /// 50% read, 50% update, Zipf.
    A,
    /// 95% read, 5% update, Zipf.
    B,
    /// 100% read, Zipf.
    C,
    /// 95% read, 5% insert, reads favour the latest inserts.
    D,
    /// 95% short scan, 5% insert, Zipf.
    E,
    /// 50% read, 50% read-modify-write, Zipf.
    F,
}

impl Workload {
    /// The operation mix of this workload.
    pub fn mix(self) -> Mix {
        let weights = match self {
            Workload::A => vec![(OpKind::Get, 50), (OpKind::Set, 50)],
            Workload::B => vec![(OpKind::Get, 95), (OpKind::Set, 5)],
            Workload::C => vec![(OpKind::Get, 100)],
            Workload::D => vec![(OpKind::Get, 95), (OpKind::Insert, 5)],
            Workload::E => vec![(OpKind::Scan, 95), (OpKind::Insert, 5)],
            Workload::F => vec![(OpKind::Get, 50), (OpKind::Rmw, 50)],
        };
        Mix::new(weights).unwrap_or(Mix {
            weights: vec![(OpKind::Get, 1)],
            total: 1,
        })
    }

    /// The key distribution YCSB uses for this workload.
    pub fn default_dist(self, theta: f64) -> KeyDistKind {
        match self {
            Workload::D => KeyDistKind::Latest { theta },
            _ => KeyDistKind::Zipf { theta },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mixes_parse_and_draw_in_proportion() {
        let mix: Mix = "get=75, set=25".parse().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let gets = (0..40_000)
            .filter(|_| mix.draw(&mut rng) == OpKind::Get)
            .count();
        assert!((29_000..=31_000).contains(&gets), "{gets}");
        assert!("get=0".parse::<Mix>().is_err());
        assert!("frob=1".parse::<Mix>().is_err());
        assert!("get".parse::<Mix>().is_err());
        assert!("del=1".parse::<Mix>().is_err());
    }

    #[test]
    fn presets_match_ycsb() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let c = Workload::C.mix();
        assert!((0..1000).all(|_| c.draw(&mut rng) == OpKind::Get));
        let f: Vec<_> = Workload::F.mix().kinds().collect();
        assert_eq!(f, vec![OpKind::Get, OpKind::Rmw]);
        assert_eq!(
            Workload::D.default_dist(0.99),
            KeyDistKind::Latest { theta: 0.99 }
        );
        for (i, kind) in OpKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
            if *kind != OpKind::Del {
                assert_eq!(OpKind::from_name(kind.name()), Some(*kind));
            }
        }
    }
}
