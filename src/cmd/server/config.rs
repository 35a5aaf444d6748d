//! CONFIG GET pattern [pattern ...] | CONFIG SET name value [name value ...] | CONFIG RESETSTAT
use bytes::Bytes;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::config::{ConfigError, OPTIONS};
use crate::glob;
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "config",
    -2,
    ADMIN | NOSCRIPT | LOADING | STALE,
    "server",
    "A container for server configuration commands.",
);

enum Sub {
    Get(Vec<Bytes>),
    Set(Vec<(String, String)>),
    ResetStat,
}

/// CONFIG.
pub struct ConfigCmd(Sub);

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let raw = args.next_bytes()?;
    let sub = String::from_utf8_lossy(&raw).to_ascii_uppercase();
    let parsed = match sub.as_str() {
        "GET" if args.remaining() >= 1 => Sub::Get(args.rest()),
        "SET" if args.remaining() >= 2 && args.remaining().is_multiple_of(2) => {
            let rest = args.rest();
            let pairs = rest
                .chunks(2)
                .filter_map(|p| match p {
                    [n, v] => Some((
                        String::from_utf8_lossy(n).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )),
                    _ => None,
                })
                .collect();
            Sub::Set(pairs)
        }
        "RESETSTAT" if args.remaining() == 0 => Sub::ResetStat,
        "GET" | "SET" | "RESETSTAT" => {
            return Err(CmdError::WrongArity(format!(
                "config|{}",
                sub.to_ascii_lowercase()
            )))
        }
        _ => {
            return Err(CmdError::UnknownSubcommand {
                cmd: "CONFIG",
                sub: String::from_utf8_lossy(&raw).into_owned(),
            })
        }
    };
    Ok(Command::session(ConfigCmd(parsed)))
}

impl SessionCommand for ConfigCmd {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        match &self.0 {
            Sub::Get(patterns) => {
                let config = cx.shared.config.read();
                let mut out = Vec::new();
                for o in OPTIONS {
                    if patterns
                        .iter()
                        .any(|p| glob::matches(p, o.name.as_bytes(), true))
                    {
                        let value = config.get(o.name).unwrap_or_default();
                        out.push((Frame::bulk_static(o.name), Frame::Bulk(Bytes::from(value))));
                    }
                }
                Ok(Frame::Map(out))
            }
            Sub::Set(pairs) => {
                // All or nothing, like Redis 7: apply to a copy, then publish.
                let mut next = cx.shared.config.read().clone();
                for (name, value) in pairs {
                    next.set_runtime(name, value).map_err(|e| match e {
                        ConfigError::UnknownOption(_) => CmdError::ConfigUnknown(name.clone()),
                        // Redis's words for a startup-only option (appendonly, appendfsync, …).
                        ConfigError::Immutable(_) => CmdError::ConfigInvalid {
                            name: name.clone(),
                            reason: "can't set immutable config".to_owned(),
                        },
                        ConfigError::InvalidValue { reason, .. } => CmdError::ConfigInvalid {
                            name: name.clone(),
                            reason: reason.to_owned(),
                        },
                        other => CmdError::ConfigInvalid {
                            name: name.clone(),
                            reason: other.to_string(),
                        },
                    })?;
                }
                // As Redis: a maxclients the open-file limit cannot hold (after raising its soft
                // part if the hard one allows) is refused, naming what it can hold.
                if next.maxclients != cx.shared.config.read().maxclients
                    && !crate::fdlimit::allows(next.maxclients)
                {
                    return Err(CmdError::ConfigInvalid {
                        name: "maxclients".to_owned(),
                        reason: format!(
                            "The operating system is not able to handle the specified number \
                             of clients, try with {}",
                            crate::fdlimit::most_clients()
                        ),
                    });
                }
                // Published to the engine under the same lock, so racing CONFIG SETs leave the
                // engine with the settings the config shows.
                let mut config = cx.shared.config.write();
                *config = next;
                cx.shared.engine.set_memory_config(config.memory_config());
                // `maxmemory` under `spill` for the first time: the SSD tier starts now.
                if let Err(error) = crate::persistence::attach_tier(&config, &cx.shared.engine) {
                    tracing::warn!(%error, "the SSD tier could not start; writes over maxmemory get -OOM");
                }
                cx.shared
                    .engine
                    .set_compaction_config(config.compaction_config());
                cx.shared
                    .engine
                    .set_snapshot_limits(config.snapshot_limits());
                cx.shared.slowlog.configure(
                    config.slowlog_log_slower_than,
                    config.slowlog_max_len as usize,
                );
                cx.shared
                    .latency
                    .set_threshold_ms(config.latency_monitor_threshold_ms);
                cx.shared.stats.latency_tracking.store(
                    config.latency_tracking,
                    std::sync::atomic::Ordering::Relaxed,
                );
                Ok(Frame::ok())
            }
            Sub::ResetStat => {
                cx.shared.stats.reset();
                Ok(Frame::ok())
            }
        }
    }
}
