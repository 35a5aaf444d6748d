//! Runs the phases: preflight each server, load, then run rounds (alternating servers when
//! comparing), with a live progress line and a throughput timeline per phase.
//!
//! Invariant: each server has its own [`Versions`], and both servers of a comparison get the
//! same per-connection seeds, so they see the same operation streams and are checked
//! independently.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use thiserror::Error;

use super::config::{BenchConfig, ConfigError, ProgressMode, Resolved};
use super::conn::{drive, ConnPlan, Progress, Source, Stop};
use super::dist::KeyChooser;
use super::keyspace::{mix64, KeyShape, Versions};
use super::ops::{OpContext, Planner};
use super::plot::{spectra, Spectrum};
use super::report::{BenchReport, Phase, Role};
use super::resp::{encode_command, parse_reply, Reply};
use super::schedule::Schedule;
use super::stats::Stats;

/// How often the progress line is redrawn.
pub const PROGRESS_REDRAW: Duration = Duration::from_millis(200);
/// How often `--progress always` writes a line when stderr is not a terminal.
pub const PROGRESS_LINE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest preflight reply accepted.
pub const PREFLIGHT_REPLY_MAX_BYTES: usize = 64 * 1024;

/// Why a benchmark could not run (failures of single operations are results, not errors).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The options are inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The async runtime could not start.
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
    /// A server could not be reached or answered PING/FLUSHALL wrongly.
    #[error("server {addr}: {reason}")]
    Preflight {
        /// The server.
        addr: String,
        /// What went wrong.
        reason: String,
    },
}

/// One run of a phase against one server.
#[derive(Debug)]
pub struct PhaseOutcome {
    /// The server.
    pub addr: String,
    /// Baseline or comparison server.
    pub role: Role,
    /// Load or run.
    pub phase: Phase,
    /// Round number, from 0.
    pub round: u32,
    /// Wall time of the phase.
    pub elapsed: Duration,
    /// Merged results of all connections.
    pub stats: Stats,
    /// `(seconds since phase start, operations per second)` per sample window.
    pub timeline: Vec<[f64; 2]>,
}

/// What a benchmark produced: the report and the latency spectra for the charts.
#[derive(Debug)]
pub struct BenchOutput {
    /// Every figure, ready for text, JSON or CSV.
    pub report: BenchReport,
    /// Per server and operation kind, from the merged run phases.
    pub spectra: Vec<Spectrum>,
}

/// Runs the whole benchmark described by `config`.
pub fn run(config: &BenchConfig) -> Result<BenchOutput, BenchError> {
    let resolved = config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(resolved.threads)
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let mut servers = vec![(config.target.clone(), Role::Target)];
    if let Some(other) = &config.compare {
        servers.push((other.clone(), Role::Compare));
    }
    let shape = KeyShape {
        prefix: config.key_prefix.clone(),
        key_size: resolved.key_size,
        value_size: resolved.value_size,
    };
    let mut contexts = Vec::new();
    for (addr, _) in &servers {
        preflight(
            addr,
            config.flushall,
            Duration::from_secs_f64(config.timeout_secs),
        )?;
        let versions = Versions::new(
            config.keys,
            resolved.insert_capacity,
            config.counters,
            !config.no_load,
        );
        contexts.push(Arc::new(OpContext {
            shape: shape.clone(),
            versions: Arc::new(versions),
        }));
    }
    let mut outcomes = Vec::new();
    if !config.no_load {
        for ((addr, role), ctx) in servers.iter().zip(&contexts) {
            outcomes.push(run_phase(
                &runtime,
                config,
                &resolved,
                addr,
                *role,
                ctx,
                Phase::Load,
                0,
            ));
        }
    }
    if !config.load_only {
        for round in 0..config.rounds {
            for ((addr, role), ctx) in servers.iter().zip(&contexts) {
                outcomes.push(run_phase(
                    &runtime,
                    config,
                    &resolved,
                    addr,
                    *role,
                    ctx,
                    Phase::Run,
                    round,
                ));
            }
        }
    }
    let mut all_spectra = Vec::new();
    for (addr, role) in &servers {
        let mut merged = Stats::default();
        for outcome in outcomes
            .iter()
            .filter(|o| o.role == *role && o.phase == Phase::Run)
        {
            merged.merge(&outcome.stats);
        }
        // The legend names the role too ("127.0.0.1:6379 (target)"): with --compare, which
        // line is the baseline of the ratios is not otherwise visible in the chart.
        all_spectra.extend(spectra(&format!("{addr} ({})", role.name()), &merged));
    }
    Ok(BenchOutput {
        report: BenchReport::build(config, &resolved, &outcomes),
        spectra: all_spectra,
    })
}

#[allow(clippy::too_many_arguments)]
fn run_phase(
    runtime: &tokio::runtime::Runtime,
    config: &BenchConfig,
    resolved: &Resolved,
    addr: &str,
    role: Role,
    ctx: &Arc<OpContext>,
    phase: Phase,
    round: u32,
) -> PhaseOutcome {
    let progress = Arc::new(Progress::default());
    let connections = config.connections;
    let start = Instant::now();
    let mut plans = Vec::with_capacity(connections);
    let (deadline, total_ops) = match phase {
        Phase::Load => (None, Some(Planner::load_items(&ctx.versions))),
        Phase::Run | Phase::Total => match config.ops {
            Some(ops) => (None, Some(ops)),
            None => (Some(start + Duration::from_secs_f64(config.duration)), None),
        },
    };
    let conns_u64 = connections as u64;
    for index in 0..connections {
        let index_u64 = index as u64;
        let share = |total: u64| total / conns_u64 + u64::from(index_u64 < total % conns_u64);
        let plan = match phase {
            Phase::Load => {
                // Contiguous slices, the first `items % connections` one item longer.
                let items = Planner::load_items(&ctx.versions);
                let first = index_u64 * (items / conns_u64) + index_u64.min(items % conns_u64);
                ConnPlan {
                    addr: addr.to_string(),
                    source: Source::Load {
                        next: first,
                        end: first + share(items),
                    },
                    pipeline: config.load_pipeline,
                    stop: Stop {
                        deadline: None,
                        ops_max: None,
                    },
                    schedule: None,
                    timeout: Duration::from_secs_f64(config.timeout_secs),
                }
            }
            Phase::Run | Phase::Total => {
                let rng = rand::rngs::StdRng::seed_from_u64(mix64(config.seed ^ mix64(index_u64)));
                let chooser = KeyChooser::new(resolved.dist, config.keys);
                let mut planner = Planner::new(
                    resolved.mix.clone(),
                    chooser,
                    rng,
                    config.batch_keys,
                    config.scan_max,
                );
                if !config.simulate_lru.is_empty() {
                    planner.record_trace();
                }
                ConnPlan {
                    addr: addr.to_string(),
                    source: Source::Run(Box::new(planner)),
                    pipeline: config.pipeline,
                    stop: Stop {
                        deadline,
                        ops_max: total_ops.map(share),
                    },
                    timeout: Duration::from_secs_f64(config.timeout_secs),
                    schedule: config.rate.map(|rate| {
                        Schedule::new(
                            start,
                            rate / connections as f64,
                            index as f64 / connections as f64,
                        )
                    }),
                }
            }
        };
        plans.push(plan);
    }

    let finished = Arc::new(AtomicBool::new(false));
    let label = format!("{} {} {}", role.name(), phase.name(), round + 1);
    let show = match config.progress {
        ProgressMode::Always => true,
        ProgressMode::Never => false,
        ProgressMode::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let sampler = {
        let progress = Arc::clone(&progress);
        let finished = Arc::clone(&finished);
        let sample = Duration::from_secs_f64(config.sample_secs);
        let duration = match phase {
            Phase::Run if total_ops.is_none() => Some(config.duration),
            _ => None,
        };
        std::thread::spawn(move || {
            sample_progress(
                &progress, &finished, start, sample, show, &label, duration, total_ops,
            )
        })
    };

    let ctx_for_tasks = Arc::clone(ctx);
    let stats = runtime.block_on(async move {
        let mut handles = Vec::with_capacity(plans.len());
        for plan in plans {
            handles.push(tokio::spawn(drive(
                plan,
                Arc::clone(&ctx_for_tasks),
                Arc::clone(&progress),
            )));
        }
        let mut total = Stats::default();
        for handle in handles {
            match handle.await {
                Ok(stats) => total.merge(&stats),
                Err(_) => total.error("client_task_panicked"),
            }
        }
        total
    });
    let elapsed = start.elapsed();
    finished.store(true, Ordering::Release);
    let timeline = sampler.join().unwrap_or_default();
    PhaseOutcome {
        addr: addr.to_string(),
        role,
        phase,
        round,
        elapsed,
        stats,
        timeline,
    }
}

#[allow(clippy::too_many_arguments)]
fn sample_progress(
    progress: &Progress,
    finished: &AtomicBool,
    start: Instant,
    sample: Duration,
    show: bool,
    label: &str,
    duration_secs: Option<f64>,
    total_ops: Option<u64>,
) -> Vec<[f64; 2]> {
    let mut timeline = Vec::new();
    let mut window_start = start;
    let mut window_ops = 0u64;
    let mut last_draw = start;
    let mut draw_ops = 0u64;
    let mut rate = 0.0f64;
    // On a terminal the line is redrawn in place; elsewhere (a log, a pipe) each update is a
    // line of its own, once a second, as `--progress always` promises.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let redraw = if tty {
        PROGRESS_REDRAW
    } else {
        PROGRESS_LINE_INTERVAL
    };
    loop {
        let done = finished.load(Ordering::Acquire);
        let now = Instant::now();
        let completed = progress.completed.load(Ordering::Relaxed);
        let window = now.saturating_duration_since(window_start);
        if window >= sample || (done && window.as_secs_f64() > 0.0 && completed > window_ops) {
            let secs = window.as_secs_f64();
            timeline.push([
                now.saturating_duration_since(start).as_secs_f64(),
                (completed - window_ops) as f64 / secs,
            ]);
            window_start = now;
            window_ops = completed;
        }
        if show && (done || now.saturating_duration_since(last_draw) >= redraw) {
            let dt = now.saturating_duration_since(last_draw).as_secs_f64();
            if dt > 0.0 {
                rate = (completed - draw_ops) as f64 / dt;
            }
            last_draw = now;
            draw_ops = completed;
            let elapsed = now.saturating_duration_since(start).as_secs_f64();
            let fraction = match (duration_secs, total_ops) {
                (Some(d), _) => elapsed / d,
                (None, Some(total)) if total > 0 => completed as f64 / total as f64,
                _ => 0.0,
            };
            let filled = ((fraction.clamp(0.0, 1.0)) * 30.0) as usize;
            let bar: String = (0..30)
                .map(|i| if i < filled { '=' } else { ' ' })
                .collect();
            let line = format!(
                "{label:<16} [{bar}] {elapsed:>6.1}s {rate:>11.0} ops/s  done {completed:>10}  err {:>6}  mismatch {:>4}",
                progress.failed.load(Ordering::Relaxed),
                progress.mismatched.load(Ordering::Relaxed),
            );
            if tty {
                eprint!("\r{line}");
                if done {
                    eprintln!();
                }
            } else {
                eprintln!("{line}");
            }
        }
        if done {
            return timeline;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects with a blocking socket, optionally flushes, and checks the server answers PING.
fn preflight(addr: &str, flushall: bool, timeout: Duration) -> Result<(), BenchError> {
    let fail = |reason: String| BenchError::Preflight {
        addr: addr.to_string(),
        reason,
    };
    let mut stream =
        std::net::TcpStream::connect(addr).map_err(|e| fail(format!("connect: {e}")))?;
    // FLUSHALL of a large dataset can take a while; give it at least 30 s.
    let wait = if flushall {
        timeout.max(Duration::from_secs(30))
    } else {
        timeout
    };
    stream
        .set_read_timeout(Some(wait))
        .map_err(|e| fail(e.to_string()))?;
    let mut request = Vec::new();
    if flushall {
        encode_command(&mut request, &[b"FLUSHALL"]);
    }
    encode_command(&mut request, &[b"PING"]);
    stream
        .write_all(&request)
        .map_err(|e| fail(format!("write: {e}")))?;
    let expected = if flushall { 2 } else { 1 };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut pos = 0;
        let mut replies = Vec::new();
        while let Some((reply, used)) =
            parse_reply(buf.get(pos..).unwrap_or_default()).map_err(|e| fail(e.to_string()))?
        {
            replies.push(reply);
            pos += used;
        }
        if replies.len() >= expected {
            return match replies.iter().find(|r| matches!(r, Reply::Error(_))) {
                Some(Reply::Error(msg)) => Err(fail(String::from_utf8_lossy(msg).into_owned())),
                _ => Ok(()),
            };
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| fail(format!("read: {e}")))?;
        if n == 0 || buf.len() > PREFLIGHT_REPLY_MAX_BYTES {
            return Err(fail("connection closed during PING".into()));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}
