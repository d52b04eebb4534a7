//! The writable upper dir on the host: how its files are reached and what they look
//! like from inside the container.
//!
//! Owns every access to the upper and work dirs. They are held open as O_PATH fds and
//! a relative path is resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` to the fd of its parent directory; the
//! final name is then used only with *at calls that never follow it (AT_SYMLINK_NOFOLLOW,
//! O_NOFOLLOW, unlinkat, renameat2, linkat without AT_SYMLINK_FOLLOW). So a symlink
//! planted in the upper dir, or swapped in by a racing rename, can never make the server
//! touch a host file outside it, and paths longer than PATH_MAX work (resolved in
//! chunks). Xattrs are read and written by `l*xattr` on `/proc/self/fd/DIRFD/NAME`: the
//! magic link pins the parent dir and the `l` call does not follow the final name.
//! Host modes: the server must always be able to read and write what it created, so
//! host permission bits include owner rw(x). Never reads the lower view. Invariant:
//! `rel` is a path the node table built, with no `..` and no empty components.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use fuser::{FileAttr, FileType, INodeNo};
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::OverlayError;
use super::lower::time;
use super::mapping::{Own, Ownership};

/// Longest piece of a relative path handed to one openat2 (the kernel takes PATH_MAX).
const CHUNK: usize = 3072;

/// A name in an upper directory: the O_PATH fd of its parent, resolved beneath the upper
/// root without following any symlink, and the final component (`.` for the root).
pub struct At {
    pub dir: OwnedFd,
    pub name: Vec<u8>,
}

impl At {
    /// `/proc/self/fd/DIRFD/NAME`: for `l*xattr` calls and the ownership record, which
    /// take a path; the final name is not followed by those calls.
    pub fn proc(&self) -> PathBuf {
        proc_path(self.dir.as_fd(), &self.name)
    }

    /// `fstatat(AT_SYMLINK_NOFOLLOW)`.
    pub fn lstat(&self) -> io::Result<libc::stat> {
        lstat_at(self.dir.as_fd(), &self.name)
    }

    /// Opens the final name itself, never following it: O_PATH, O_NOFOLLOW.
    pub fn open_path(&self) -> io::Result<OwnedFd> {
        openat(
            self.dir.as_fd(),
            &self.name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
            0,
        )
    }

    /// Opens the final name (which must be a directory) as an O_PATH dir fd.
    pub fn open_dir(&self) -> io::Result<OwnedFd> {
        openat(
            self.dir.as_fd(),
            &self.name,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
            0,
        )
    }

    /// chmod of a regular file or directory, pinned by an O_PATH fd and changed through
    /// its magic link; other types keep their mode in the ownership record only.
    pub fn chmod(&self, perm: u32) -> io::Result<()> {
        let p = self.open_path()?;
        let st = super::sys::fstat(p.as_raw_fd())?;
        let t = st.st_mode & libc::S_IFMT;
        if t != libc::S_IFREG && t != libc::S_IFDIR {
            return Ok(());
        }
        let path = format!("/proc/self/fd/{}", p.as_raw_fd());
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            path.as_str(),
            Mode::from_bits_truncate(perm),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(io::Error::from)
    }

    /// Opens a regular file or directory for I/O: it is pinned with O_PATH first, its
    /// type checked, then reopened through its /proc magic link (which lands on that very
    /// inode), so no device node, fifo or symlink is ever opened by mistake.
    pub fn open_node(&self, flags: OFlag) -> io::Result<OwnedFd> {
        let p = self.open_path()?;
        let st = super::sys::fstat(p.as_raw_fd())?;
        let t = st.st_mode & libc::S_IFMT;
        if t != libc::S_IFREG && t != libc::S_IFDIR {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        reopen(&p, flags)
    }
}

/// Reopens an O_PATH fd with real access flags through `/proc/self/fd/N`.
pub fn reopen(p: &OwnedFd, flags: OFlag) -> io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", p.as_raw_fd());
    nix::fcntl::open(
        path.as_str(),
        flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// `/proc/self/fd/DIRFD/NAME`.
pub fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    PathBuf::from(OsStr::from_bytes(&p))
}

/// `openat` with O_CLOEXEC added.
pub fn openat(dir: BorrowedFd<'_>, name: &[u8], flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        name,
        flags | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(io::Error::from)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<libc::stat> {
    nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(io::Error::from)
}

fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
        | ResolveFlag::RESOLVE_NO_XDEV
}

/// The O_PATH fd of the directory `rel` below `root` (`root` itself for an empty
/// `rel`), resolved in chunks shorter than PATH_MAX, never following a symlink.
pub fn dir_below(root: BorrowedFd<'_>, rel: &[u8]) -> io::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(resolve_flags());
    let mut cur: Option<OwnedFd> = None;
    let mut rest = rel;
    while !rest.is_empty() {
        let cut = if rest.len() <= CHUNK {
            rest.len()
        } else {
            rest[..CHUNK]
                .iter()
                .rposition(|&b| b == b'/')
                .filter(|&i| i > 0)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENAMETOOLONG))?
        };
        let from = cur.as_ref().map_or(root, |f| f.as_fd());
        let fd = nix::fcntl::openat2(from, &rest[..cut], how).map_err(io::Error::from)?;
        cur = Some(fd);
        rest = rest.get(cut + 1..).unwrap_or(&[]);
    }
    match cur {
        Some(fd) => Ok(fd),
        None => root.try_clone_to_owned(),
    }
}

pub struct Upper {
    root_fd: OwnedFd,
    work_fd: OwnedFd,
    pub own: Ownership,
}

impl Upper {
    pub fn open(root: &Path, work: &Path, table: PathBuf) -> Result<Upper, OverlayError> {
        let open = |d: &Path| -> Result<OwnedFd, OverlayError> {
            let err = |source| OverlayError::Upper {
                path: d.to_path_buf(),
                source,
            };
            fs::create_dir_all(d).map_err(err)?;
            let fd = nix::fcntl::open(
                d,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| err(e.into()))?;
            // Every later access goes through /proc/self/fd: check it is there.
            lstat_at(fd.as_fd(), b".")
                .and_then(|_| fs::symlink_metadata(proc_path(fd.as_fd(), b".")))
                .map_err(|e| {
                    err(io::Error::new(
                        e.kind(),
                        format!("/proc/self/fd is needed to reach the upper dir: {e}"),
                    ))
                })?;
            Ok(fd)
        };
        let root_fd = open(root)?;
        let work_fd = open(work)?;
        let own = Ownership::open(root, table)?;
        // What a server killed outright left in the journal goes into the table now.
        own.compact()?;
        Ok(Upper {
            root_fd,
            work_fd,
            own,
        })
    }

    pub fn root_fd(&self) -> BorrowedFd<'_> {
        self.root_fd.as_fd()
    }

    pub fn work_fd(&self) -> BorrowedFd<'_> {
        self.work_fd.as_fd()
    }

    /// The O_PATH fd of the upper directory `rel` (`""`: the root).
    pub fn dir(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        dir_below(self.root_fd.as_fd(), rel)
    }

    /// The parent dir fd and final name of `rel` (`""`: the root as `.`).
    pub fn at(&self, rel: &[u8]) -> io::Result<At> {
        match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => Ok(At {
                dir: self.dir(&rel[..i])?,
                name: rel[i + 1..].to_vec(),
            }),
            None if rel.is_empty() => Ok(At {
                dir: self.root_fd.try_clone()?,
                name: b".".to_vec(),
            }),
            None => Ok(At {
                dir: self.root_fd.try_clone()?,
                name: rel.to_vec(),
            }),
        }
    }

    /// A name in the work dir.
    pub fn work_at(&self, name: &[u8]) -> io::Result<At> {
        Ok(At {
            dir: self.work_fd.try_clone()?,
            name: name.to_vec(),
        })
    }

    /// The attributes of the upper file at `at` (path `rel`) given its host `stat`.
    pub fn attr(&self, at: &At, rel: &[u8], st: &libc::stat, ino: u64) -> FileAttr {
        let own = self.own.get(&at.proc(), rel, st.st_mode);
        attr_from_stat(st, ino, own)
    }
}

/// Removes `name` in `dir` and, if it is a directory, everything below it, without
/// following any symlink.
pub fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    use nix::unistd::UnlinkatFlags;
    let st = lstat_at(dir, name)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
            .map_err(io::Error::from);
    }
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        0,
    )?;
    for n in list_names(&fd)? {
        remove_tree(fd.as_fd(), &n)?;
    }
    nix::unistd::unlinkat(dir, name, UnlinkatFlags::RemoveDir).map_err(io::Error::from)
}

/// One name of a host directory: name, host inode, d_type if the filesystem gives it.
pub type HostEntry = (Vec<u8>, u64, Option<nix::dir::Type>);

/// The names in an open directory (without `.` and `..`).
pub fn list_dir(fd: &OwnedFd) -> io::Result<Vec<HostEntry>> {
    let dup = fd.try_clone()?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(io::Error::from)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(io::Error::from)?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        out.push((n.to_vec(), e.ino(), e.file_type()));
    }
    Ok(out)
}

fn list_names(fd: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    Ok(list_dir(fd)?.into_iter().map(|(n, _, _)| n).collect())
}

/// Opens the directory `at` for reading its entries.
pub fn open_listing(at: &At) -> io::Result<OwnedFd> {
    openat(
        at.dir.as_fd(),
        &at.name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        0,
    )
}

pub fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

pub fn attr_from_stat(st: &libc::stat, ino: u64, own: Option<Own>) -> FileAttr {
    let (mode, uid, gid, rdev) = match own {
        Some(o) => (
            o.mode,
            o.uid,
            o.gid,
            if o.rdev != 0 {
                o.rdev
            } else {
                st.st_rdev as u32
            },
        ),
        None => (st.st_mode, st.st_uid, st.st_gid, st.st_rdev as u32),
    };
    let kind = kind_of(mode);
    let size = match kind {
        FileType::CharDevice | FileType::BlockDevice => 0,
        _ => st.st_size as u64,
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec as u32),
        mtime: time(st.st_mtime, st.st_mtime_nsec as u32),
        ctime: time(st.st_ctime, st.st_ctime_nsec as u32),
        crtime: time(st.st_ctime, st.st_ctime_nsec as u32),
        kind,
        perm: (mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid,
        gid,
        rdev,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

/// Host permission bits for a container mode: the server keeps owner access.
pub fn host_perm(mode: u32, dir: bool) -> u32 {
    let m = mode & 0o777;
    if dir { m | 0o700 } else { m | 0o600 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_never_follows_a_symlink_and_takes_long_paths() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("upper");
        let outside = d.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a/evil")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("a/up")).unwrap();
        let fd =
            nix::fcntl::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        assert!(dir_below(fd.as_fd(), b"a").is_ok());
        for bad in [&b"a/evil"[..], b"a/up", b"a/evil/x"] {
            assert!(dir_below(fd.as_fd(), bad).is_err(), "{bad:?}");
        }
        // `..` cannot climb out: the root is its own parent.
        let top = dir_below(fd.as_fd(), b"a/../..").unwrap();
        let ino = |f: &OwnedFd| lstat_at(f.as_fd(), b".").unwrap().st_ino;
        assert_eq!(ino(&top), ino(&fd));
        // A path of 6000 bytes: longer than PATH_MAX, resolved in chunks.
        let mut rel = Vec::new();
        for i in 0..30 {
            let n = format!("{i:0>199}");
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(n.as_bytes());
            let parent = dir_below(
                fd.as_fd(),
                rel[..rel.len() - n.len()].strip_suffix(b"/").unwrap_or(&[]),
            )
            .unwrap();
            nix::sys::stat::mkdirat(parent.as_fd(), n.as_str(), Mode::from_bits_truncate(0o755))
                .unwrap();
        }
        assert!(rel.len() > 4096);
        let deep = dir_below(fd.as_fd(), &rel).unwrap();
        assert!(lstat_at(deep.as_fd(), b".").is_ok());
        remove_tree(fd.as_fd(), b"a").unwrap();
        remove_tree(fd.as_fd(), &rel[..199]).unwrap();
        assert!(outside.exists());
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    }
}
