//! The server's side of durability: opening the data directory from the config, turning the
//! WAL's durable position into a tokio watch channel replies wait on, and the background
//! checkpoint schedule (Redis's `save` rules, plus a WAL-size trigger).
//!
//! Invariant: a reply to a write leaves the server only once its LSN is durable under the
//! configured `appendfsync` policy; if the WAL fails first, the connection is closed without
//! the reply (the client sees the same as a crash: outcome unknown), never an early `+OK`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;
use txn::durability::{FileDisk, FsyncPolicy, WalWriter};
use txn::{Durability, DurabilityConfig, EngineConfig, RecoveryReport, TxnError};

use crate::config::{AppendFsync, Config};
use crate::server::{unix_secs, Shared};

/// WAL segment size of the server's log.
pub const WAL_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// A checkpoint starts once the WAL holds this much past the last one, whatever `save` says,
/// so restarts stay fast and the log's disk use stays bounded.
pub const CHECKPOINT_WAL_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// How often the schedule is looked at.
pub const SCHEDULE_INTERVAL: Duration = Duration::from_secs(1);

/// What replies wait on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurableState {
    /// Every LSN up to this one is durable.
    pub lsn: u64,
    /// The WAL failed: LSNs above `lsn` may never become durable.
    pub failed: bool,
}

/// The server's handle on persistence; `Default` is a purely in-memory server.
#[derive(Clone, Default)]
pub struct Persistence {
    /// The engine's data directory binding (recovery, WAL, checkpoints).
    pub durability: Option<Arc<Durability>>,
    /// Durable WAL position, when a WAL is kept.
    pub durable: Option<watch::Receiver<DurableState>>,
}

impl Persistence {
    /// Watches `durability`'s WAL (if any) for replies to wait on.
    pub fn new(durability: Arc<Durability>) -> Result<Persistence, TxnError> {
        let durable = match durability.wal() {
            Some(wal) => {
                let (tx, rx) = watch::channel(DurableState {
                    lsn: wal.durable_lsn().0,
                    failed: false,
                });
                // Weak: the WAL owns its subscribers, so a strong handle would be a cycle.
                let weak: Weak<WalWriter> = Arc::downgrade(wal);
                wal.subscribe(Box::new(move |lsn| {
                    let failed = weak.upgrade().is_some_and(|w| w.failure().is_some());
                    tx.send_replace(DurableState { lsn: lsn.0, failed });
                }))
                .map_err(TxnError::Sink)?;
                Some(rx)
            }
            None => None,
        };
        Ok(Persistence {
            durability: Some(durability),
            durable,
        })
    }

    /// Waits until `lsn` is durable; if the WAL fails (or is gone) first, `Err` with the LSN
    /// up to which everything is durable.
    pub async fn wait_durable(&self, lsn: u64) -> Result<(), u64> {
        let Some(durable) = self.durable.as_ref() else {
            return Ok(());
        };
        let mut durable = durable.clone();
        let reached = match durable.wait_for(|s| s.lsn >= lsn || s.failed).await {
            Ok(state) if state.lsn >= lsn => Ok(()),
            Ok(state) => Err(state.lsn),
            Err(_) => Err(0),
        };
        reached
    }
}

/// Opens the configured data directory: recovery, then the WAL per `appendonly`/`appendfsync`.
pub fn open(config: &Config) -> Result<(Arc<Durability>, RecoveryReport), TxnError> {
    let fsync = match config.appendfsync {
        AppendFsync::Always => FsyncPolicy::Always,
        AppendFsync::EverySec => FsyncPolicy::EverySec,
        AppendFsync::No => FsyncPolicy::No,
    };
    let (durability, report) = Durability::open(DurabilityConfig {
        dir: config.dir.clone(),
        disk: Arc::new(FileDisk),
        wal: config.appendonly,
        fsync,
        wal_segment_bytes: WAL_SEGMENT_BYTES,
        engine: EngineConfig::default(),
    })?;
    Ok((Arc::new(durability), report))
}

/// Parses Redis's `save` value: pairs of `seconds changes`; `""` disables the schedule.
pub fn parse_save_rules(text: &str) -> Option<Vec<(u64, u64)>> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if !words.len().is_multiple_of(2) {
        return None;
    }
    words
        .chunks(2)
        .map(|pair| match pair {
            [secs, changes] => Some((secs.parse().ok()?, changes.parse().ok()?)),
            _ => None,
        })
        .collect()
}

/// Whether a checkpoint is due: a `save` rule is met, or the WAL grew past its bound.
pub fn checkpoint_due(
    rules: &[(u64, u64)],
    secs_since_last: u64,
    changes: u64,
    wal_bytes: u64,
) -> bool {
    wal_bytes >= CHECKPOINT_WAL_BYTES_MAX
        || rules
            .iter()
            .any(|&(secs, n)| changes >= n.max(1) && secs_since_last >= secs)
}

/// Starts a checkpoint on a blocking thread unless one runs; `false` if one was running.
pub fn start_background_checkpoint(durability: &Arc<Durability>) -> bool {
    if durability.stats().checkpoint_in_progress {
        return false;
    }
    let d = Arc::clone(durability);
    tokio::task::spawn_blocking(move || {
        if let Err(error) = d.checkpoint() {
            tracing::error!(%error, "background checkpoint failed");
        }
    });
    true
}

/// The schedule: checkpoints per `save` and WAL size; retries a failed WAL once a second.
pub async fn schedule(shared: Arc<Shared>) {
    let Some(durability) = shared.persistence.durability.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(SCHEDULE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let stats = durability.stats();
        if stats.wal_error.is_some() {
            let d = Arc::clone(&durability);
            let recovered = tokio::task::spawn_blocking(move || d.try_recover_log()).await;
            if let Ok(Ok(())) = recovered {
                tracing::info!("write-ahead log recovered; accepting writes again");
            }
            continue;
        }
        if stats.checkpoint_in_progress {
            continue;
        }
        let rules = parse_save_rules(&shared.config.read().save).unwrap_or_default();
        let since = unix_secs().saturating_sub(stats.last_checkpoint_unix_s);
        let wal_bytes = stats.wal.as_ref().map_or(0, |w| w.log_bytes);
        if checkpoint_due(&rules, since, stats.changes_since_checkpoint, wal_bytes) {
            start_background_checkpoint(&durability);
        }
        shared
            .lastsave_unix
            .store(stats.last_checkpoint_unix_s, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_rules_parse_like_redis() {
        assert_eq!(
            parse_save_rules("3600 1 300 100 60 10000"),
            Some(vec![(3600, 1), (300, 100), (60, 10000)])
        );
        assert_eq!(parse_save_rules(""), Some(vec![]));
        assert_eq!(parse_save_rules("3600"), None);
        assert_eq!(parse_save_rules("x 1"), None);
    }

    #[test]
    fn due_when_a_rule_is_met_or_the_wal_is_big() {
        let rules = [(3600, 1), (60, 10000)];
        assert!(!checkpoint_due(&rules, 59, 20_000, 0));
        assert!(checkpoint_due(&rules, 60, 10_000, 0));
        assert!(!checkpoint_due(&rules, 3599, 9_999, 0));
        assert!(checkpoint_due(&rules, 3600, 1, 0));
        assert!(!checkpoint_due(&rules, 10_000, 0, 0), "nothing changed");
        assert!(checkpoint_due(&[], 0, 0, CHECKPOINT_WAL_BYTES_MAX));
    }
}
