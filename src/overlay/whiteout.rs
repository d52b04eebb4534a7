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

/// Records the deletion of lower `name` in `dir`. Fails with ENAMETOOLONG for a lower
/// name over 251 bytes: the host cannot hold its `.wh.` name.
pub fn create(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    touch(dir, &name_of(name))
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
