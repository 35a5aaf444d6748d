//! [`FileDisk`]: the real file system through `std::fs`.
//!
//! Invariant: `sync_data` is `File::sync_data` (fdatasync) and `sync_dir` fsyncs the directory
//! itself, which is what makes creates and renames survive a power cut on Linux.

use super::{Disk, DiskFile, FileHandle};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileDisk;

struct StdFile(File);

impl DiskFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn raw_fd(&self) -> Option<i32> {
        use std::os::unix::io::AsRawFd;
        Some(self.0.as_raw_fd())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Disk for FileDisk {
    fn create(&self, path: &Path) -> io::Result<FileHandle> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile(f)))
    }
    fn create_direct(&self, path: &Path) -> io::Result<(FileHandle, bool)> {
        use std::os::unix::fs::OpenOptionsExt;
        let direct = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(path);
        match direct {
            Ok(f) => Ok((Box::new(StdFile(f)), true)),
            // tmpfs and some others refuse O_DIRECT: fall back to the page cache (INFO and
            // the log say so).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.create(path).map(|file| (file, false))
            }
            Err(e) => Err(e),
        }
    }
    fn open(&self, path: &Path) -> io::Result<FileHandle> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(StdFile(f)))
    }
    fn open_read(&self, path: &Path) -> io::Result<FileHandle> {
        Ok(Box::new(StdFile(File::open(path)?)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        path.is_file()
    }
}
