//! [`SimDisk`]: an in-memory disk that keeps, per file, a *live* image (what reads see) and a
//! *durable* image (what survives [`SimDisk::crash`]), and fails writes and syncs on demand.
//!
//! Invariant: data reaches the durable image only through `sync_data` on its file, and a name
//! (create, rename, remove) only through `sync_dir` on its directory — the same promises a POSIX
//! file system gives, and no more. After a crash, handles opened before it fail with EIO so a
//! writer thread that outlived the "power cut" cannot touch the rebooted image.
//!
//! It is compiled in every build (not only with `sim`) because it is small, has no dependencies
//! and the integration tests of every crate use it.

use super::{Disk, DiskFile, FileHandle};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which operation an injected fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// `write_at` and `create`.
    Write,
    /// `sync_data` and `sync_dir`.
    Sync,
}

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// ENOSPC: the device is full.
    NoSpace,
    /// EIO: the device failed.
    Io,
}

impl FaultKind {
    fn error(self) -> io::Error {
        match self {
            FaultKind::NoSpace => io::Error::from_raw_os_error(28),
            FaultKind::Io => io::Error::from_raw_os_error(5),
        }
    }
}

/// What a crash does to data that was written but not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every file reverts to its durable image.
    DropUnsynced,
    /// Each file keeps its durable image plus a random prefix of its unsynced appended bytes
    /// (a torn write), chosen by the disk's seeded RNG.
    TearUnsynced,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    successes_left: u64,
    kind: FaultKind,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    live_names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    next_inode: u64,
    generation: u64,
    rng: u64,
    rules: [Option<Rule>; 2],
    chance_per_million: [(u32, Option<FaultKind>); 2],
    short_writes: bool,
    writes: u64,
    syncs: u64,
    /// Bytes all live files may hold together; a write that would grow past it fails with
    /// ENOSPC and writes nothing (a full disk: overwriting in place still works, and
    /// truncating frees room).
    capacity: Option<u64>,
    /// While set, every fsync waits (a disk that stalls: tests build a backlog with it).
    syncs_held: bool,
}

fn op_index(op: FaultOp) -> usize {
    match op {
        FaultOp::Write => 0,
        FaultOp::Sync => 1,
    }
}

impl State {
    fn next_random(&mut self) -> u64 {
        // splitmix64: tiny, seedable, good enough to pick faults.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Decides whether the next call of `op` fails.
    fn fault(&mut self, op: FaultOp) -> Option<FaultKind> {
        let i = op_index(op);
        if let Some(rule) = self.rules.get_mut(i).and_then(Option::as_mut) {
            if rule.successes_left == 0 {
                return Some(rule.kind);
            }
            rule.successes_left -= 1;
        }
        let (chance, kind) = self.chance_per_million.get(i).copied().unwrap_or((0, None));
        if chance > 0 && (self.next_random() % 1_000_000) < u64::from(chance) {
            return kind;
        }
        None
    }
}

/// An in-memory, crash-simulating, fault-injecting disk. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl SimDisk {
    /// An empty disk whose random choices (torn lengths, probabilistic faults) follow `seed`.
    pub fn new(seed: u64) -> Self {
        let state = State {
            rng: seed,
            ..State::default()
        };
        SimDisk {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Makes the disk hold at most `bytes` over all live files (`None`: unlimited): see
    /// `State::capacity`. [`SimDisk::clear_faults`] leaves it as it is.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.lock().capacity = bytes;
    }

    /// While `held`, every `sync_data` waits until it is released: a stalled disk, so the
    /// writer falls behind on purpose.
    pub fn hold_syncs(&self, held: bool) {
        self.state.lock().syncs_held = held;
    }

    /// Bytes all live files hold now.
    pub fn used_bytes(&self) -> u64 {
        let st = self.state.lock();
        st.inodes.values().map(|i| i.live.len() as u64).sum()
    }

    /// After `successes` more successful calls of `op`, every call of `op` fails with `kind`
    /// until [`SimDisk::clear_faults`].
    pub fn fail_after(&self, op: FaultOp, successes: u64, kind: FaultKind) {
        let mut st = self.state.lock();
        if let Some(slot) = st.rules.get_mut(op_index(op)) {
            *slot = Some(Rule {
                successes_left: successes,
                kind,
            });
        }
    }

    /// Each call of `op` fails with `kind` with probability `per_million` / 1 000 000.
    pub fn fail_with_probability(&self, op: FaultOp, per_million: u32, kind: FaultKind) {
        let mut st = self.state.lock();
        if let Some(slot) = st.chance_per_million.get_mut(op_index(op)) {
            *slot = (per_million, Some(kind));
        }
    }

    /// When on, a failing `write_at` first writes a random prefix of its buffer (a short write).
    pub fn set_short_writes(&self, on: bool) {
        self.state.lock().short_writes = on;
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        let mut st = self.state.lock();
        st.rules = [None, None];
        st.chance_per_million = [(0, None), (0, None)];
    }

    /// Simulates a power cut and reboot: names and contents revert to their durable images
    /// (see [`CrashMode`]); every handle opened before fails from now on.
    pub fn crash(&self, mode: CrashMode) {
        let mut st = self.state.lock();
        st.generation += 1;
        st.live_names = st.durable_names.clone();
        let alive: Vec<u64> = st.durable_names.values().copied().collect();
        st.inodes.retain(|ino, _| alive.contains(ino));
        let mut inos: Vec<u64> = st.inodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let r = st.next_random();
            if let Some(inode) = st.inodes.get_mut(&ino) {
                let keep = match mode {
                    CrashMode::TearUnsynced
                        if inode.live.len() > inode.durable.len()
                            && inode.live.starts_with(&inode.durable) =>
                    {
                        let unsynced = (inode.live.len() - inode.durable.len()) as u64;
                        inode.durable.len() + (r % (unsynced + 1)) as usize
                    }
                    _ => inode.durable.len(),
                };
                if keep > inode.durable.len() {
                    inode.live.truncate(keep);
                    inode.durable = inode.live.clone();
                } else {
                    inode.live = inode.durable.clone();
                }
            }
        }
    }

    /// The live contents of `path`, if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let ino = st.live_names.get(path)?;
        st.inodes.get(ino).map(|i| i.live.clone())
    }

    /// The durable contents of the file live-named `path` (what a crash now would leave).
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let ino = st.live_names.get(path)?;
        st.inodes.get(ino).map(|i| i.durable.clone())
    }

    /// Replaces the contents of `path` in both images (test corruption). Returns false if the
    /// file does not exist.
    pub fn set_contents(&self, path: &Path, bytes: Vec<u8>) -> bool {
        let mut st = self.state.lock();
        let Some(ino) = st.live_names.get(path).copied() else {
            return false;
        };
        match st.inodes.get_mut(&ino) {
            Some(inode) => {
                inode.durable = bytes.clone();
                inode.live = bytes;
                true
            }
            None => false,
        }
    }

    /// Number of `write_at` calls and of sync calls made so far.
    pub fn op_counts(&self) -> (u64, u64) {
        let st = self.state.lock();
        (st.writes, st.syncs)
    }
}

struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    generation: u64,
}

impl SimFile {
    fn with<R>(&self, f: impl FnOnce(&mut State, u64) -> io::Result<R>) -> io::Result<R> {
        let mut st = self.state.lock();
        if st.generation != self.generation {
            return Err(io::Error::from_raw_os_error(5));
        }
        f(&mut st, self.ino)
    }
}

fn stale() -> io::Error {
    io::Error::from_raw_os_error(5)
}

impl DiskFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with(|st, ino| {
            let inode = st.inodes.get(&ino).ok_or_else(stale)?;
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let src = inode.live.get(start..).unwrap_or_default();
            let n = src.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
                dst.copy_from_slice(src);
            }
            Ok(n)
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(|st, ino| {
            st.writes += 1;
            let fault = st.fault(FaultOp::Write);
            let len = match fault {
                Some(_) if st.short_writes && !buf.is_empty() => {
                    (st.next_random() % buf.len() as u64) as usize
                }
                Some(_) => 0,
                None => buf.len(),
            };
            let start = usize::try_from(offset).map_err(|_| io::Error::from_raw_os_error(27))?;
            let end = start + len;
            if let Some(capacity) = st.capacity {
                let used: u64 = st.inodes.values().map(|i| i.live.len() as u64).sum();
                let own = st.inodes.get(&ino).map_or(0, |i| i.live.len() as u64);
                if used + (end as u64).saturating_sub(own) > capacity {
                    return Err(FaultKind::NoSpace.error());
                }
            }
            let inode = st.inodes.get_mut(&ino).ok_or_else(stale)?;
            if inode.live.len() < end {
                inode.live.resize(end, 0);
            }
            if let (Some(dst), Some(src)) = (inode.live.get_mut(start..end), buf.get(..len)) {
                dst.copy_from_slice(src);
            }
            match fault {
                Some(kind) => Err(kind.error()),
                None => Ok(()),
            }
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        while self.state.lock().syncs_held {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.with(|st, ino| {
            st.syncs += 1;
            if let Some(kind) = st.fault(FaultOp::Sync) {
                return Err(kind.error());
            }
            let inode = st.inodes.get_mut(&ino).ok_or_else(stale)?;
            inode.durable = inode.live.clone();
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|st, ino| Ok(st.inodes.get(&ino).ok_or_else(stale)?.live.len() as u64))
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.with(|st, ino| {
            let inode = st.inodes.get_mut(&ino).ok_or_else(stale)?;
            let len = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(27))?;
            inode.live.resize(len, 0);
            Ok(())
        })
    }
}

fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

impl Disk for SimDisk {
    fn create(&self, path: &Path) -> io::Result<FileHandle> {
        let mut st = self.state.lock();
        st.writes += 1;
        if let Some(kind) = st.fault(FaultOp::Write) {
            return Err(kind.error());
        }
        let ino = match st.live_names.get(path).copied() {
            Some(ino) => {
                if let Some(inode) = st.inodes.get_mut(&ino) {
                    inode.live.clear();
                }
                ino
            }
            None => {
                st.next_inode += 1;
                let ino = st.next_inode;
                st.inodes.insert(ino, Inode::default());
                st.live_names.insert(path.to_path_buf(), ino);
                ino
            }
        };
        Ok(Box::new(SimFile {
            state: Arc::clone(&self.state),
            ino,
            generation: st.generation,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<FileHandle> {
        let st = self.state.lock();
        let ino = *st.live_names.get(path).ok_or_else(not_found)?;
        Ok(Box::new(SimFile {
            state: Arc::clone(&self.state),
            ino,
            generation: st.generation,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        let ino = st.live_names.remove(from).ok_or_else(not_found)?;
        st.live_names.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.live_names.remove(path).ok_or_else(not_found)?;
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.state.lock();
        let mut names: Vec<String> = st
            .live_names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.syncs += 1;
        if let Some(kind) = st.fault(FaultOp::Sync) {
            return Err(kind.error());
        }
        st.durable_names.retain(|p, _| p.parent() != Some(dir));
        let entries: Vec<(PathBuf, u64)> = st
            .live_names
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        st.durable_names.extend(entries);
        Ok(())
    }

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        // Directories are implicit: a file's parent path is its directory.
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        self.state.lock().live_names.contains_key(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_only_synced_data_and_names() {
        let disk = SimDisk::new(1);
        let dir = Path::new("/d");
        let a = dir.join("a");
        let f = disk.create(&a).unwrap();
        f.write_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        f.write_at(b" world", 5).unwrap();
        // Name not synced yet: the file vanishes.
        disk.crash(CrashMode::DropUnsynced);
        assert!(!disk.exists(&a));

        let f = disk.create(&a).unwrap();
        f.write_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        disk.sync_dir(dir).unwrap();
        f.write_at(b" world", 5).unwrap();
        disk.crash(CrashMode::DropUnsynced);
        assert_eq!(disk.contents(&a).unwrap(), b"hello");
        assert!(f.write_at(b"x", 0).is_err(), "stale handle must fail");
    }

    #[test]
    fn torn_crash_keeps_a_prefix_of_unsynced_bytes() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let disk = SimDisk::new(seed);
            let p = Path::new("/d/f");
            let f = disk.create(p).unwrap();
            f.write_at(b"abc", 0).unwrap();
            f.sync_data().unwrap();
            disk.sync_dir(Path::new("/d")).unwrap();
            f.write_at(b"defgh", 3).unwrap();
            disk.crash(CrashMode::TearUnsynced);
            let c = disk.contents(p).unwrap();
            assert!(b"abcdefgh".starts_with(&c) && c.len() >= 3);
            seen.insert(c.len());
        }
        assert!(
            seen.len() > 2,
            "tearing should vary with the seed: {seen:?}"
        );
    }

    #[test]
    fn faults_fire_after_n_calls_until_cleared() {
        let disk = SimDisk::new(2);
        let f = disk.create(Path::new("/d/f")).unwrap();
        disk.fail_after(FaultOp::Sync, 1, FaultKind::NoSpace);
        f.sync_data().unwrap();
        let e = f.sync_data().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28));
        assert!(f.sync_data().is_err());
        disk.clear_faults();
        f.sync_data().unwrap();
    }

    #[test]
    fn short_write_leaves_prefix() {
        let disk = SimDisk::new(9);
        let f = disk.create(Path::new("/d/f")).unwrap();
        disk.set_short_writes(true);
        disk.fail_after(FaultOp::Write, 0, FaultKind::Io);
        assert!(f.write_at(&[7u8; 100], 0).is_err());
        assert!(f.len().unwrap() < 100);
    }
}
