//! Upper files by inode. The kernel opens no file on this filesystem (open is not
//! implemented, see `fs`): its reads and writes name an inode, not a handle. This
//! keeps the fds of upper files that serve them: a bounded set opened on first use,
//! and the fds that keep the data of an unlinked upper file alive while the kernel
//! may still use its inode (until it forgets it).
//!
//! Never opens anything itself: `fs` hands it the fds. Invariant: an fd here is the
//! very host file the inode had when the fd was taken (a file keeps its fd across
//! renames; an unlinked one is reachable only here).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

/// Open fds kept for reuse; beyond this, one is closed for each one opened (it is
/// opened again when next used).
pub const MAX_OPEN: usize = 256;

#[derive(Default)]
pub(crate) struct Fds {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Fds of upper files that still have a name: a cache.
    open: HashMap<u64, Arc<OwnedFd>>,
    /// Fds of unlinked upper files: the only way left to their data.
    orphans: HashMap<u64, Arc<OwnedFd>>,
}

impl Fds {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fd kept for `ino`, if any.
    pub fn get(&self, ino: u64) -> Option<Arc<OwnedFd>> {
        let i = self.inner();
        i.orphans.get(&ino).or_else(|| i.open.get(&ino)).cloned()
    }

    /// Whether `ino` is an unlinked file whose data is kept here.
    pub fn is_orphan(&self, ino: u64) -> bool {
        self.inner().orphans.contains_key(&ino)
    }

    /// Keeps `fd` as the open fd of `ino` (or returns the one another thread kept first).
    pub fn insert(&self, ino: u64, fd: OwnedFd) -> Arc<OwnedFd> {
        let mut i = self.inner();
        if let Some(f) = i.orphans.get(&ino).or_else(|| i.open.get(&ino)) {
            return f.clone();
        }
        if i.open.len() >= MAX_OPEN
            && let Some(&k) = i.open.keys().next()
        {
            i.open.remove(&k);
        }
        let fd = Arc::new(fd);
        i.open.insert(ino, fd.clone());
        fd
    }

    /// `ino`'s last name is about to go: its fd (the kept one, else `open()`'s) becomes
    /// the way to its data until [`Fds::forget`].
    pub fn orphan(&self, ino: u64, open: impl FnOnce() -> Option<OwnedFd>) {
        {
            let mut i = self.inner();
            if i.orphans.contains_key(&ino) {
                return;
            }
            if let Some(f) = i.open.remove(&ino) {
                i.orphans.insert(ino, f);
                return;
            }
        }
        // Opened without the lock held (the caller holds the overlay's `names` lock,
        // so the name cannot go meanwhile).
        if let Some(f) = open() {
            self.inner()
                .orphans
                .entry(ino)
                .or_insert_with(|| Arc::new(f));
        }
    }

    /// Keeps `fd` as the data of the unlinked `ino` (a lower file copied up after its
    /// last name went).
    pub fn insert_orphan(&self, ino: u64, fd: OwnedFd) -> Arc<OwnedFd> {
        let fd = Arc::new(fd);
        self.inner().orphans.insert(ino, fd.clone());
        fd
    }

    /// The kernel forgot `ino`: nothing will name it again.
    pub fn forget(&self, ino: u64) {
        let mut i = self.inner();
        i.open.remove(&ino);
        i.orphans.remove(&ino);
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    fn fd() -> OwnedFd {
        OwnedFd::from(std::fs::File::open("/dev/null").unwrap())
    }

    #[test]
    fn kept_fds_are_bounded_and_orphans_live_until_forget() {
        let f = Fds::default();
        for ino in 0..(MAX_OPEN as u64 + 10) {
            f.insert(ino, fd());
        }
        let kept = (0..(MAX_OPEN as u64 + 10))
            .filter(|&i| f.get(i).is_some())
            .count();
        assert_eq!(kept, MAX_OPEN);

        // A kept fd becomes the orphan: no second open.
        let some = (0..(MAX_OPEN as u64 + 10))
            .find(|&i| f.get(i).is_some())
            .unwrap();
        let before = f.get(some).unwrap().as_raw_fd();
        f.orphan(some, || panic!("must reuse the kept fd"));
        assert!(f.is_orphan(some));
        assert_eq!(f.get(some).unwrap().as_raw_fd(), before);
        // Orphans are never evicted by new inserts.
        for ino in 1000..(1000 + 2 * MAX_OPEN as u64) {
            f.insert(ino, fd());
        }
        assert!(f.is_orphan(some));
        // Without a kept fd, the opener gives it; forget drops it.
        f.orphan(5000, || Some(fd()));
        assert!(f.is_orphan(5000));
        f.forget(5000);
        f.forget(some);
        assert!(f.get(5000).is_none() && f.get(some).is_none());
    }
}
