//! Deletions and opaque directories in the upper dir, in OCI form.
//!
//! A removed lower name `N` is recorded as an empty file `.wh.N` beside it; a directory
//! whose lower contents are hidden holds an empty file `.wh..wh..opq`. So the upper dir
//! is already a layer diff. Owns the naming and the marker files; never reads the lower
//! view. Invariant: no `.wh.` name is ever shown through the mount, and a whiteout is
//! written only for a name that a lower layer has.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub const PREFIX: &[u8] = b".wh.";
pub const OPAQUE: &[u8] = b".wh..wh..opq";

/// Names reserved for markers: never shown, never created through the mount.
pub fn is_marker(name: &[u8]) -> bool {
    name.starts_with(PREFIX)
}

/// The host path of the whiteout for `name` in the host directory `dir`.
pub fn path(dir: &Path, name: &[u8]) -> PathBuf {
    let mut n = PREFIX.to_vec();
    n.extend_from_slice(name);
    dir.join(OsStr::from_bytes(&n))
}

pub fn exists(dir: &Path, name: &[u8]) -> bool {
    fs::symlink_metadata(path(dir, name)).is_ok()
}

/// Records the deletion of lower `name` in `dir`. Fails with ENAMETOOLONG for a lower
/// name over 251 bytes: the host cannot hold its `.wh.` name.
pub fn create(dir: &Path, name: &[u8]) -> io::Result<()> {
    fs::File::create(path(dir, name)).map(|_| ())
}

/// Removes the whiteout of `name` if there is one; true if there was. A name too long
/// to carry the prefix (over 251 bytes) cannot have one.
pub fn remove(dir: &Path, name: &[u8]) -> io::Result<bool> {
    match fs::remove_file(path(dir, name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn is_opaque(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(OsStr::from_bytes(OPAQUE))).is_ok()
}

pub fn make_opaque(dir: &Path) -> io::Result<()> {
    fs::File::create(dir.join(OsStr::from_bytes(OPAQUE))).map(|_| ())
}
