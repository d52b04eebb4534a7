//! Attaching the filesystem: open /dev/fuse, mount(2) it on a directory, unmount.
//!
//! The same code runs as root on the host and as root of a user namespace (Linux 4.18
//! and later let that root mount FUSE); no fusermount3. Owns the mount options and the
//! detection of a mount left behind by a crashed server. Never serves requests.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{OverlayError, sys};

/// Opens /dev/fuse and mounts a FUSE connection on `mountpoint`; returns the device fd
/// that serves it.
pub fn mount(mountpoint: &Path) -> Result<OwnedFd, OverlayError> {
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/fuse")
        .map_err(|source| OverlayError::OpenFuse { source })?;
    let fd: OwnedFd = dev.into();
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let data = format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid},default_permissions,allow_other,max_read=1048576",
        fd.as_raw_fd()
    );
    sys::mount_fuse(
        std::ffi::OsStr::new("camada"),
        mountpoint,
        "fuse.camada",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOATIME,
        &data,
    )
    .map_err(|source| OverlayError::Mount {
        path: mountpoint.to_path_buf(),
        source,
    })?;
    Ok(fd)
}

/// Detaches the mount on `mountpoint` (lazily: open files keep it until closed).
pub fn unmount(mountpoint: &Path) -> Result<(), OverlayError> {
    sys::umount2(mountpoint, libc::MNT_DETACH).map_err(|source| OverlayError::Unmount {
        path: mountpoint.to_path_buf(),
        source,
    })
}

/// A mount whose server died answers ENOTCONN: detach it. True if one was found.
/// statfs is asked because the kernel never answers it from its cache.
pub fn detach_stale(mountpoint: &Path) -> Result<bool, OverlayError> {
    match nix::sys::statvfs::statvfs(mountpoint) {
        Err(nix::errno::Errno::ENOTCONN) => {
            unmount(mountpoint)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// True if `err` says the FUSE connection is gone (the normal end of serving).
pub fn is_disconnect(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENODEV) | Some(libc::ENOTCONN)
    )
}
