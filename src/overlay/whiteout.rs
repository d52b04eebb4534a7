//! Deletions and opaque directories in the upper dir, in OCI form.
//!
//! A removed lower name `N` is recorded as an empty file `.wh.N` beside it; a directory
//! whose lower contents are hidden holds an empty file `.wh..wh..opq`. So the upper dir
//! is already a layer diff. Owns the naming and the marker files, reached only through
//! the fd of their directory (never following a symlink); never reads the lower view.
//! Invariant: no `.wh.` name is ever shown through the mount, and a whiteout is written
//! only for a name that a lower layer has.

use std::io;
use std::os::fd::BorrowedFd;

use nix::fcntl::OFlag;

use super::upper::{lstat_at, openat};

pub const PREFIX: &[u8] = b".wh.";
pub const OPAQUE: &[u8] = b".wh..wh..opq";

/// Names reserved for markers: never shown, never created through the mount.
pub fn is_marker(name: &[u8]) -> bool {
    name.starts_with(PREFIX)
}

/// The whiteout name for `name`.
pub fn name_of(name: &[u8]) -> Vec<u8> {
    let mut n = PREFIX.to_vec();
    n.extend_from_slice(name);
    n
}

pub fn exists(dir: BorrowedFd<'_>, name: &[u8]) -> bool {
    lstat_at(dir, &name_of(name)).is_ok()
}

/// An empty marker file `marker` in `dir` (never following a symlink of that name).
fn touch(dir: BorrowedFd<'_>, marker: &[u8]) -> io::Result<()> {
    openat(
        dir,
        marker,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW,
        0o644,
    )
    .map(drop)
}

/// The shared empty file in the work dir that whiteouts are hardlinks of.
const SHARED: &[u8] = b"whiteout";

/// Records the deletion of lower `name` in `dir`, as a hardlink of one shared empty file
/// in the work dir `work` (as the kernel's overlayfs does): a new inode per whiteout
/// costs far more (ext4 scans its inode bitmap for each). A layer reader tells
/// whiteouts by name, so sharing their inode changes nothing in the diff. A fresh
/// shared file is made when there is none or it has too many links. Fails with
/// ENAMETOOLONG for a lower name over 251 bytes: the host cannot hold its `.wh.` name.
/// Callers hold the overlay's `names` lock (the shared file is replaced under it).
pub fn create(work: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    use nix::errno::Errno;
    let wh = name_of(name);
    let link = || {
        nix::unistd::linkat(
            work,
            SHARED,
            dir,
            wh.as_slice(),
            nix::fcntl::AtFlags::empty(),
        )
    };
    match link() {
        Ok(()) | Err(Errno::EEXIST) => return Ok(()),
        Err(Errno::ENOENT) | Err(Errno::EMLINK) => {}
        Err(Errno::ENAMETOOLONG) => return Err(Errno::ENAMETOOLONG.into()),
        // Links refused (a filesystem without hardlinks): a file of its own.
        Err(_) => return touch(dir, &wh),
    }
    let tmp = b"whiteout.new";
    let _ = nix::unistd::unlinkat(work, &tmp[..], nix::unistd::UnlinkatFlags::NoRemoveDir);
    touch(work, tmp)?;
    nix::fcntl::renameat(work, &tmp[..], work, SHARED)?;
    match link() {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(_) => touch(dir, &wh),
    }
}

/// Removes the whiteout of `name` if there is one; true if there was. A name too long
/// to carry the prefix (over 251 bytes) cannot have one.
pub fn remove(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<bool> {
    match nix::unistd::unlinkat(
        dir,
        name_of(name).as_slice(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    ) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENAMETOOLONG) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `dir` (the fd of the directory itself) holds the opaque marker.
pub fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    lstat_at(dir, OPAQUE).is_ok()
}

pub fn make_opaque(dir: BorrowedFd<'_>) -> io::Result<()> {
    touch(dir, OPAQUE)
}
