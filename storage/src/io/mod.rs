//! The disk seam: every byte the WAL and checkpoints write or read goes through [`Disk`] and
//! [`DiskFile`], so tests can swap the real file system ([`FileDisk`]) for the fault-injecting,
//! crash-simulating [`SimDisk`].
//!
//! Invariant: a write is durable only after `sync_data` on its file returned `Ok`, and a file's
//! name (create, rename, remove) is durable only after `sync_dir` on its directory returned `Ok`.
//! Callers must order their steps accordingly; `SimDisk::crash` enforces exactly this and nothing
//! more.

mod file;
mod sim;

pub use file::FileDisk;
pub use sim::{CrashMode, FaultKind, FaultOp, SimDisk};

use std::io;
use std::path::{Path, PathBuf};

/// An open file. Positioned I/O only, so one handle can be shared without a cursor.
#[allow(clippy::len_without_is_empty)] // a file's length is an I/O call, not a container size
pub trait DiskFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed. On error a prefix may
    /// have been written.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Cuts or extends the file to `len` bytes.
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// The OS file descriptor, where there is one (the SSD tier's io_uring reads need it; a
    /// simulated file has none and is read with [`DiskFile::read_at`]).
    fn raw_fd(&self) -> Option<i32> {
        None
    }
}

/// A handle to an open file.
pub type FileHandle = Box<dyn DiskFile>;

/// File-system operations on paths.
pub trait Disk: Send + Sync {
    /// Creates `path` (truncating an existing file) for reading and writing.
    fn create(&self, path: &Path) -> io::Result<FileHandle>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<FileHandle>;
    /// Opens an existing file for reading only (inspection tools on read-only media).
    fn open_read(&self, path: &Path) -> io::Result<FileHandle> {
        self.open(path)
    }
    /// Creates `path` (truncating) for I/O that bypasses the OS page cache where the file
    /// system allows it (`O_DIRECT`; the caller aligns offsets, lengths and buffers to 4 KiB).
    /// Returns the handle and whether the cache is bypassed. By default: [`Disk::create`].
    fn create_direct(&self, path: &Path) -> io::Result<(FileHandle, bool)> {
        self.create(path).map(|file| (file, false))
    }
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Names (not paths) of the files directly inside `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// True when `path` names an existing file.
    fn exists(&self, path: &Path) -> bool;
}

/// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
pub fn read_exact_at(file: &dyn DiskFile, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = file.read_at(buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = buf.get_mut(n..).unwrap_or_default();
        offset += n as u64;
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
