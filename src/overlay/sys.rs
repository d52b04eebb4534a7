//! Every raw syscall of the overlay that nix does not wrap safely: extended attributes
//! by path and by fd, I/O on the raw fds of upper files kept by inode, and mount(2) of a FUSE
//! connection. Nothing else in `overlay` uses `unsafe`.
//!
//! Invariant: each function checks its return value and turns -1 into `io::Error`;
//! buffers handed to the kernel are Rust slices whose lengths are passed alongside.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn cname(n: &[u8]) -> io::Result<CString> {
    CString::new(n).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Calls `call` with a buffer that grows (from `start` bytes, up to `max`) while the
/// kernel answers ERANGE: for the xattr calls, whose value or list size is not known.
fn sized(
    start: usize,
    max: usize,
    mut call: impl FnMut(&mut [u8]) -> libc::ssize_t,
) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; start];
    loop {
        match check(call(&mut buf)) {
            Ok(len) => {
                buf.truncate(len);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && buf.len() < max => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `lgetxattr`: the value of `name` on `path` (not following a final symlink).
pub fn lgetxattr(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let p = cpath(path)?;
    let n = cname(name)?;
    sized(256, 1 << 20, |buf| {
        // SAFETY: p and n are NUL-terminated strings; buf is valid for buf.len() bytes.
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
    })
}

/// `fgetxattr`: the value of `name` on the file open as `fd`.
pub fn fgetxattr(fd: RawFd, name: &[u8]) -> io::Result<Vec<u8>> {
    let n = cname(name)?;
    sized(256, 1 << 20, |buf| {
        // SAFETY: n is NUL-terminated; buf is valid for buf.len() bytes; a bad fd is EBADF.
        unsafe { libc::fgetxattr(fd, n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
    })
}

/// `lsetxattr` with `flags` (`XATTR_CREATE`, `XATTR_REPLACE` or 0).
pub fn lsetxattr(path: &Path, name: &[u8], value: &[u8], flags: i32) -> io::Result<()> {
    let p = cpath(path)?;
    let n = cname(name)?;
    // SAFETY: p and n are NUL-terminated; value is valid for value.len() bytes.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    check(r as libc::ssize_t).map(|_| ())
}

/// `fsetxattr` with `flags`, on the file open as `fd`.
pub fn fsetxattr(fd: RawFd, name: &[u8], value: &[u8], flags: i32) -> io::Result<()> {
    let n = cname(name)?;
    // SAFETY: n is NUL-terminated; value is valid for value.len() bytes; a bad fd is EBADF.
    let r = unsafe { libc::fsetxattr(fd, n.as_ptr(), value.as_ptr().cast(), value.len(), flags) };
    check(r as libc::ssize_t).map(|_| ())
}

/// `fremovexattr`, on the file open as `fd`.
pub fn fremovexattr(fd: RawFd, name: &[u8]) -> io::Result<()> {
    let n = cname(name)?;
    // SAFETY: n is NUL-terminated; a bad fd is EBADF.
    let r = unsafe { libc::fremovexattr(fd, n.as_ptr()) };
    check(r as libc::ssize_t).map(|_| ())
}

/// `lremovexattr`.
pub fn lremovexattr(path: &Path, name: &[u8]) -> io::Result<()> {
    let p = cpath(path)?;
    let n = cname(name)?;
    // SAFETY: p and n are NUL-terminated strings.
    let r = unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) };
    check(r as libc::ssize_t).map(|_| ())
}

/// `llistxattr`: the names, each followed by a NUL, as the kernel returns them.
pub fn llistxattr(path: &Path) -> io::Result<Vec<u8>> {
    let p = cpath(path)?;
    sized(1024, 1 << 22, |buf| {
        // SAFETY: p is NUL-terminated; buf is valid for buf.len() bytes.
        unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
    })
}

/// `pread` on a raw fd of an upper file the caller keeps open.
pub fn pread(fd: RawFd, buf: &mut [u8], off: u64) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes; a bad fd gives EBADF, not UB.
    let r = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off as libc::off_t) };
    check(r)
}

/// `pwrite` on a raw fd of an upper file the caller keeps open.
pub fn pwrite(fd: RawFd, buf: &[u8], off: u64) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes; a bad fd gives EBADF, not UB.
    let r = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off as libc::off_t) };
    check(r)
}

/// `fstat` on a raw fd.
pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid, writable stat struct.
    let r = unsafe { libc::fstat(fd, &mut st) };
    check(r as libc::ssize_t).map(|_| st)
}

/// `fsync` / `fdatasync`.
pub fn fsync(fd: RawFd, datasync: bool) -> io::Result<()> {
    // SAFETY: plain syscalls on an integer fd.
    let r = unsafe {
        if datasync {
            libc::fdatasync(fd)
        } else {
            libc::fsync(fd)
        }
    };
    check(r as libc::ssize_t).map(|_| ())
}

/// `ftruncate`.
pub fn ftruncate(fd: RawFd, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall on an integer fd.
    let r = unsafe { libc::ftruncate(fd, len as libc::off_t) };
    check(r as libc::ssize_t).map(|_| ())
}

/// `fallocate`.
pub fn fallocate(fd: RawFd, mode: i32, off: u64, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall on an integer fd.
    let r = unsafe { libc::fallocate(fd, mode, off as libc::off_t, len as libc::off_t) };
    check(r as libc::ssize_t).map(|_| ())
}

/// `lseek`.
pub fn lseek(fd: RawFd, off: i64, whence: i32) -> io::Result<i64> {
    // SAFETY: plain syscall on an integer fd.
    let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i64)
    }
}

/// mount(2) of a FUSE connection: `source` on `target`, type `fstype`, `data` the
/// option string (`fd=N,rootmode=...`). Root on the host or in the mount's user
/// namespace (Linux >= 4.18) may call it.
pub fn mount_fuse(
    source: &OsStr,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let s = cname(source.as_bytes())?;
    let t = cpath(target)?;
    let f = cname(fstype.as_bytes())?;
    let d = cname(data.as_bytes())?;
    // SAFETY: all four are NUL-terminated strings that live across the call.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, d.as_ptr().cast()) };
    check(r as libc::ssize_t).map(|_| ())
}

/// umount2(2).
pub fn umount2(target: &Path, flags: i32) -> io::Result<()> {
    let t = cpath(target)?;
    // SAFETY: t is a NUL-terminated string.
    let r = unsafe { libc::umount2(t.as_ptr(), flags) };
    check(r as libc::ssize_t).map(|_| ())
}

/// Maps a whole file read-only.
pub fn map_file(f: &std::fs::File) -> io::Result<memmap2::Mmap> {
    // SAFETY: the store never changes a layer tar or index after renaming it into place
    // (they are content-addressed and immutable), so the mapped bytes do not change under
    // us; a file truncated by someone else would SIGBUS, which the store's rules exclude.
    unsafe { memmap2::MmapOptions::new().map(f) }
}

static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; b lives across the call.
        unsafe {
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }
}

/// Routes SIGTERM, SIGINT and SIGHUP of the whole process to a byte on the returned
/// pipe, whichever thread receives them.
pub fn signal_pipe() -> io::Result<std::fs::File> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    use std::os::fd::IntoRawFd;
    SIGNAL_PIPE.store(w.into_raw_fd(), std::sync::atomic::Ordering::Relaxed);
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_signal),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    for s in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        // SAFETY: the handler only loads an atomic and calls write(2), both
        // async-signal-safe.
        unsafe { nix::sys::signal::sigaction(s, &action) }.map_err(io::Error::from)?;
    }
    Ok(std::fs::File::from(r))
}
