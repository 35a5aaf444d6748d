//! `tierkv-server`: parse the config, set up logging, start the runtime, serve until a signal
//! or SHUTDOWN, exit 0.

use std::sync::Arc;

use anyhow::Context;
use parking_lot::RwLock;
use tierkv::config::{Config, Invocation};
use tierkv::persistence::Persistence;

/// Fixes glibc malloc's trim and mmap thresholds at their defaults (128 KiB). Left dynamic,
/// freeing one large mapped chunk (a big hash table, a value of many pages) raises both, up
/// to 32 MiB and 64 MiB, after which the free space at the top of a worker thread's arena is
/// never returned: RSS stayed megabytes above a fresh server's after a FLUSHALL. Fixed, each
/// `free` that leaves more than 128 KiB free at an arena's top gives it back.
fn pin_malloc_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

/// Threads in tokio's blocking pool at most (see the runtime's construction).
const BLOCKING_THREADS_MAX: usize = 32;
/// How long exit waits for the runtime's threads once the server has stopped and the WAL is
/// closed (a thread still in a command is left to the process's exit).
const RUNTIME_SHUTDOWN_MAX: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> anyhow::Result<()> {
    pin_malloc_thresholds();
    let mut config = match Config::from_args(std::env::args().skip(1)) {
        Ok(Invocation::Run(c)) => *c,
        Ok(Invocation::Help(text)) => {
            print!("{text}");
            return Ok(());
        }
        Ok(Invocation::Version) => {
            println!("tierkv-server v={}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Err(e) => {
            eprintln!("tierkv-server: {e}\nTry 'tierkv-server --help' for the list of options.");
            std::process::exit(1);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(config.loglevel.filter()));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        // One JSON object per line, for log shippers: the event's fields, its span and the
        // spans around it (recovery, checkpoint), target, level, timestamp.
        log.json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        log.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }

    match tierkv::fdlimit::fit_maxclients(&mut config.maxclients) {
        tierkv::fdlimit::FdLimit::Enough => {}
        tierkv::fdlimit::FdLimit::Raised { from, to } => {
            tracing::info!(from, to, "raised the open-file limit to fit maxclients");
        }
        tierkv::fdlimit::FdLimit::Reduced {
            requested,
            reduced,
            limit,
        } => tracing::warn!(
            "You requested maxclients of {requested} requiring at least {} max file \
             descriptors. Current maximum open files is {limit}. maxclients has been reduced \
             to {reduced} to compensate for low ulimit. If you need higher maxclients increase \
             'ulimit -n'.",
            requested.saturating_add(tierkv::fdlimit::RESERVED_FDS)
        ),
    }
    warn_if_open_without_password(&config);
    std::fs::create_dir_all(&config.dir)
        .with_context(|| format!("creating data directory {}", config.dir.display()))?;
    // Before anything in the directory is read; held until the process ends.
    let _dir_lock = tierkv::dirlock::DataDirLock::acquire(&config.dir)?;
    let (durability, report) = tierkv::persistence::open(&config)
        .with_context(|| format!("recovering from {}", config.dir.display()))?;
    tracing::info!(
        checkpoint_ts = report.checkpoint_ts,
        checkpoint_keys = report.checkpoint_keys,
        wal_records = report.wal_records,
        ms = report.elapsed.as_millis() as u64,
        "recovered {} keys from the checkpoint and {} WAL records",
        report.checkpoint_keys,
        report.wal_records,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads())
        // The blocking pool serves the SSD tier's reads that are not io_uring's (promotions,
        // page reads and loads) and a failed WAL's recovery: a small pool, so a burst of
        // misses queues instead of starting hundreds of threads (tokio's default of 512 held
        // 61 threads after a 15 s YCSB-B run at 10 x the budget, 38 with this bound; RSS the
        // same within 0.2 %).
        .max_blocking_threads(BLOCKING_THREADS_MAX)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let served = runtime.block_on(async move {
        let mut hosts = config.bind.iter();
        let first = hosts
            .next()
            .map_or("127.0.0.1", |h| h.trim_start_matches('-'));
        let listener = tokio::net::TcpListener::bind((first, config.port))
            .await
            .with_context(|| format!("binding {first}:{}", config.port))?;
        // With --port 0 every address shares the port the first one got.
        let port = listener.local_addr()?.port();
        let mut listeners = vec![];
        for host in hosts {
            // Redis's `-addr`: bind if the address exists, skip it quietly otherwise.
            let optional = host.starts_with('-');
            let host = host.trim_start_matches('-');
            match tokio::net::TcpListener::bind((host, port)).await {
                Ok(l) => listeners.push(l),
                Err(e) if optional => tracing::info!("skipping optional bind address {host}: {e}"),
                Err(e) => return Err(e).with_context(|| format!("binding {host}:{port}")),
            }
        }
        let local = listener.local_addr()?;
        listeners.insert(0, listener);
        // Install the handlers before announcing readiness, so an early signal still means a
        // graceful stop rather than the default kill.
        let shutdown = shutdown_signal()?;
        tracing::info!("tierkv-server ready to accept connections on {local}");
        // Tests and scripts read this line to learn the port when started with --port 0.
        println!("Ready to accept connections tcp {local}");
        let persistence =
            Persistence::new(durability.clone()).context("watching the write-ahead log")?;
        let engine = durability.engine().clone();
        let config = Arc::new(RwLock::new(config));
        tierkv::server::run_listeners(listeners, engine, config, persistence, shutdown).await?;
        // Everything acknowledged is already durable; this flushes what `everysec`/`no` hold.
        durability.close().context("closing the write-ahead log")?;
        anyhow::Ok(())
    });
    // Not joined beyond this: a connection stuck in a command that never yields would hold
    // the process for ever (issue #13 item 3); the WAL is closed and durable already.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_MAX);
    served?;
    tracing::info!("tierkv-server is now ready to exit, bye bye...");
    Ok(())
}

/// As the issue asks of a server reachable from other machines with no password (issue #13
/// item 11): say so at start, and what protected mode does about it.
fn warn_if_open_without_password(config: &Config) {
    let open = config
        .bind
        .iter()
        .map(|b| b.trim_start_matches('-'))
        .filter(|b| !matches!(*b, "127.0.0.1" | "::1" | "localhost"))
        .collect::<Vec<_>>();
    if open.is_empty() || config.requirepass.is_some() {
        return;
    }
    let addrs = open.join(" ");
    if config.protected_mode {
        tracing::warn!(
            "WARNING: listening on {addrs} without a password (requirepass): protected mode \
             refuses every client that is not on loopback. Set requirepass to serve them."
        );
    } else {
        tracing::warn!(
            "WARNING: listening on {addrs} without a password and with protected mode off: \
             anyone who can reach this port can read and change every key. Set requirepass."
        );
    }
}

fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
