//! The data directory's lock: one server per `dir`.
//!
//! Invariant: while a server runs, it holds an exclusive `flock` on `<dir>/LOCK`; a second
//! server on the same directory fails to start before it reads anything there. Two servers on
//! one directory would both recover the live WAL and both append to it, and writes the first
//! one acknowledged would be gone after a restart (issue #13, item 1).
//!
//! The lock is the kernel's, tied to the open file: a killed process (SIGKILL, OOM) releases
//! it with its descriptors, so no stale lock ever blocks a restart, and nothing has to clean
//! it up. The file also names the holder's pid, for the error message only; the lock, not
//! the pid, decides. (Redis has no such lock; PostgreSQL's `postmaster.pid` and RocksDB's
//! `LOCK` file are the model.)

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DirLockError {
    /// Another process holds the lock.
    #[error(
        "data directory {dir} is in use by another tierkv-server{holder}; two servers on one \
         directory would lose acknowledged writes. Stop the other server, or start this one \
         with another --dir"
    )]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// " (pid N)" when the lock file names one, else empty.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("locking data directory {dir}: {source}")]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the exclusive lock on `<dir>/LOCK` (created if missing) without waiting, and
    /// writes this process's pid into it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, DirLockError> {
        let io = |source| DirLockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(DirLockError::InUse {
                    dir: dir.to_path_buf(),
                    holder: holder_of(&mut file),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Ours now: name the holder for the next one's message.
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataDirLock { _file: file })
    }
}

/// " (pid N)" from the lock file's content, or "" if it names none.
fn holder_of(file: &mut File) -> String {
    let mut text = String::new();
    // At most a line: the file is ours to read, but never trust its size.
    let _ = file.take(32).read_to_string(&mut text);
    match text.trim().parse::<u32>() {
        Ok(pid) => format!(" (pid {pid})"),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let first = DataDirLock::acquire(tmp.path()).expect("first lock");
        // flock locks belong to the open file description, so a second open in this process
        // conflicts as another process's would.
        let second = DataDirLock::acquire(tmp.path());
        match second {
            Err(DirLockError::InUse { holder, .. }) => {
                assert_eq!(holder, format!(" (pid {})", std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        DataDirLock::acquire(tmp.path()).expect("free again once dropped");
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_does_not_block() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join(LOCK_FILE), "999999\n").expect("write");
        DataDirLock::acquire(tmp.path()).expect("no process holds it");
        let pid = std::fs::read_to_string(tmp.path().join(LOCK_FILE)).expect("read");
        assert_eq!(pid.trim(), std::process::id().to_string());
    }
}
