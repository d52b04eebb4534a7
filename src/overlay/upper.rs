//! The writable upper dir on the host: where its files are and what they look like
//! from inside the container.
//!
//! Owns host paths (relative path -> host path), the attributes of upper files with
//! the container-side ownership applied, and host modes (the server must always be able
//! to read and write what it created, so host permission bits include owner rw(x)).
//! Never reads the lower view. Invariant: `rel` is a path the node table built, with
//! no `..` and no empty components.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use fuser::{FileAttr, FileType, INodeNo};

use super::OverlayError;
use super::lower::time;
use super::mapping::{Own, Ownership};

pub struct Upper {
    pub root: PathBuf,
    pub work: PathBuf,
    pub own: Ownership,
}

impl Upper {
    pub fn open(root: &Path, work: &Path, table: PathBuf) -> Result<Upper, OverlayError> {
        for d in [root, work] {
            fs::create_dir_all(d).map_err(|source| OverlayError::Upper {
                path: d.to_path_buf(),
                source,
            })?;
        }
        let own = Ownership::open(root, table)?;
        Ok(Upper {
            root: root.to_path_buf(),
            work: work.to_path_buf(),
            own,
        })
    }

    /// The host path of a relative path.
    pub fn host(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }

    /// The attributes of the upper file at `rel` given its host `stat`.
    pub fn attr(&self, host: &Path, rel: &[u8], st: &libc::stat, ino: u64) -> FileAttr {
        let own = self.own.get(host, rel, st.st_mode);
        attr_from_stat(st, ino, own)
    }
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
