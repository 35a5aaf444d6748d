//! `maxclients` against the open-file limit, as Redis's `adjustOpenFilesLimit` does.
//!
//! Invariant: after [`fit_maxclients`], `maxclients` plus [`RESERVED_FDS`] fits the process's
//! soft `RLIMIT_NOFILE`, so a client past `maxclients` is accepted and told
//! `-ERR max number of clients reached`, never left unanswered in the listen backlog because
//! `accept` ran out of descriptors (issue #13, item 4: under `ulimit -n 1024`, connections past
//! about 1 010 hung and the log got "accept failed: Too many open files" 100 times a second).

/// Descriptors kept for everything but clients: listeners, the WAL's segments, checkpoint
/// files, the spill file, the runtime's epoll and wakers, io_uring, logs. Redis keeps 32
/// (`CONFIG_MIN_RESERVED_FDS`); tierkv opens a few more files of its own.
pub const RESERVED_FDS: u64 = 64;

/// Linux's default `fs.nr_open`: no soft limit can go past it without a sysctl.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// What [`fit_maxclients`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdLimit {
    /// The soft limit already allowed `maxclients`.
    Enough,
    /// The soft limit was raised from `from` to `to` (at most the hard limit).
    Raised {
        /// The soft limit before.
        from: u64,
        /// The soft limit now.
        to: u64,
    },
    /// The limit cannot allow `requested` clients: `maxclients` is now `reduced`.
    Reduced {
        /// The configured `maxclients`.
        requested: u64,
        /// The `maxclients` in force.
        reduced: u64,
        /// The soft limit in force.
        limit: u64,
    },
}

/// Raises the soft open-file limit to fit `maxclients` if the hard limit allows it, else
/// lowers `maxclients` to what the limit fits (at least 1). Returns what it did, for the log.
pub fn fit_maxclients(maxclients: &mut u64) -> FdLimit {
    let needed = maxclients.saturating_add(RESERVED_FDS);
    let Some((soft, hard)) = nofile() else {
        return FdLimit::Enough;
    };
    if soft >= needed {
        return FdLimit::Enough;
    }
    // The hard limit may be "unlimited" while the kernel's `nr_open` is not: then the
    // kernel's default ceiling (2^20) is the next try, as Redis steps down on failure.
    let limit = [needed.min(hard), hard.min(NR_OPEN_DEFAULT)]
        .into_iter()
        .filter(|&target| target > soft)
        .find(|&target| set_soft_nofile(target, hard))
        .unwrap_or(soft);
    if limit >= needed {
        return FdLimit::Raised {
            from: soft,
            to: limit,
        };
    }
    let requested = *maxclients;
    *maxclients = limit.saturating_sub(RESERVED_FDS).max(1);
    FdLimit::Reduced {
        requested,
        reduced: *maxclients,
        limit,
    }
}

/// Whether `maxclients` fits the open-file limit now (raising the soft limit if it must and
/// can): CONFIG SET refuses a value that does not.
pub fn allows(maxclients: u64) -> bool {
    let mut n = maxclients;
    !matches!(fit_maxclients(&mut n), FdLimit::Reduced { .. })
}

/// The most clients the open-file limit allows now (for CONFIG SET's error).
pub fn most_clients() -> u64 {
    nofile().map_or(u64::MAX, |(soft, hard)| {
        soft.max(hard).saturating_sub(RESERVED_FDS).max(1)
    })
}

/// `(soft, hard)` RLIMIT_NOFILE; `None` where it cannot be read.
fn nofile() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the two fields of `rl`, a valid local.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
        // `rlim_t` is u64 on Linux but not on every Unix.
        #[allow(clippy::unnecessary_cast)]
        let limits = (rl.rlim_cur as u64, rl.rlim_max as u64);
        (rc == 0).then_some(limits)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Sets the soft RLIMIT_NOFILE to `soft`, keeping the hard limit; whether it worked.
fn set_soft_nofile(soft: u64, hard: u64) -> bool {
    #[cfg(unix)]
    {
        let rl = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit only reads `rl`, a valid local.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = (soft, hard);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxclients_that_fit_are_kept_and_the_soft_limit_follows() {
        let Some((soft, _)) = nofile() else { return };
        let mut small = soft.saturating_sub(RESERVED_FDS).max(1);
        assert_eq!(fit_maxclients(&mut small), FdLimit::Enough);
        assert!(allows(small));
        // Past the hard limit nothing can be raised: maxclients comes down to what fits.
        let mut huge = u64::MAX / 2;
        match fit_maxclients(&mut huge) {
            FdLimit::Reduced { reduced, limit, .. } => {
                assert_eq!(reduced, limit - RESERVED_FDS);
                assert_eq!(huge, reduced);
            }
            other => panic!("expected Reduced, got {other:?}"),
        }
        assert!(!allows(u64::MAX / 2));
    }
}
