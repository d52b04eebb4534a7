//! The read-only lower view: the merged chain index and the layer tars, both mmapped.
//!
//! Owns turning index entries into FUSE attributes and serving file bytes as slices of
//! the mmapped tars (no copy, no allocation). Never writes anything; never looks at the
//! upper dir. Invariant: an entry's data range was checked against its tar's length
//! when the view was opened, so reads slice without further checks failing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use memmap2::Mmap;

use crate::tarindex::{Entry, EntryId, Index, Kind};

use super::OverlayError;

/// Reads at least this long ask the kernel to read the tar further ahead.
const READAHEAD_HINT: u32 = 64 << 10;

/// The merged lower index and the tars its entries point into (bottom layer first).
pub struct Lower {
    pub index: Index<Mmap>,
    tars: Vec<Mmap>,
}

fn map(path: &Path) -> Result<Mmap, OverlayError> {
    let f = File::open(path).map_err(|source| OverlayError::OpenLower {
        path: path.to_path_buf(),
        source,
    })?;
    super::sys::map_file(&f).map_err(|source| OverlayError::OpenLower {
        path: path.to_path_buf(),
        source,
    })
}

impl Lower {
    /// Maps the merged index and the tars and checks that every file's data lies inside
    /// the tar its entry names.
    pub fn open(index: &Path, tars: &[PathBuf]) -> Result<Lower, OverlayError> {
        let bytes = map(index)?;
        let index_path = index.to_path_buf();
        let index = Index::open(bytes).map_err(|source| OverlayError::BadIndex {
            path: index_path.clone(),
            source,
        })?;
        let tars = tars.iter().map(|p| map(p)).collect::<Result<Vec<_>, _>>()?;
        for id in 0..index.len() {
            let Some(e) = index.get(id) else { continue };
            if e.kind() != Kind::File {
                continue;
            }
            let fits = tars.get(usize::from(e.layer())).is_some_and(|t| {
                e.data_offset()
                    .checked_add(e.size())
                    .is_some_and(|end| end <= t.len() as u64)
            });
            if !fits {
                return Err(OverlayError::DataOutsideTar {
                    path: String::from_utf8_lossy(&index.path(id)).into_owned(),
                    layer: e.layer(),
                });
            }
        }
        Ok(Lower { index, tars })
    }

    pub fn get(&self, id: EntryId) -> Option<Entry<'_>> {
        self.index.get(id)
    }

    /// Bytes `[off, off+len)` of a regular file, clipped to its size.
    pub fn read(&self, id: EntryId, off: u64, len: u32) -> &[u8] {
        let Some(e) = self.index.get(id) else {
            return &[];
        };
        let Some(tar) = self.tars.get(usize::from(e.layer())) else {
            return &[];
        };
        if off >= e.size() {
            return &[];
        }
        let end = e.size().min(off.saturating_add(u64::from(len)));
        let start = (e.data_offset() + off) as usize;
        let stop = (e.data_offset() + end) as usize;
        // A readahead-sized read (the kernel's are 128 KiB) is one of a sequential run:
        // start reading the next ones from disk now, so their page faults find them.
        if len >= READAHEAD_HINT && end < e.size() {
            let ahead = (e.size() - end).min(u64::from(len) * 8) as usize;
            let _ = tar.advise_range(memmap2::Advice::WillNeed, stop, ahead);
        }
        tar.get(start..stop).unwrap_or(&[])
    }

    /// The whole data of a regular file.
    pub fn data(&self, id: EntryId) -> &[u8] {
        let Some(e) = self.index.get(id) else {
            return &[];
        };
        let Some(tar) = self.tars.get(usize::from(e.layer())) else {
            return &[];
        };
        let start = e.data_offset() as usize;
        tar.get(start..start + e.size() as usize).unwrap_or(&[])
    }
}

/// The FUSE inode number of a lower entry: hardlinked names share one.
pub fn ino_of(e: &Entry<'_>) -> u64 {
    u64::from(e.ino()) + 1
}

pub fn file_type(k: Kind) -> FileType {
    match k {
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Char => FileType::CharDevice,
        Kind::Block => FileType::BlockDevice,
        Kind::Fifo => FileType::NamedPipe,
        Kind::File | Kind::Hardlink | Kind::Whiteout => FileType::RegularFile,
    }
}

/// The `rdev` FUSE carries (the kernel's new encoding, 32 bits).
pub fn rdev32(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

pub fn time(secs: i64, nsec: u32) -> SystemTime {
    let nsec = nsec.min(999_999_999);
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            + Duration::from_nanos(u64::from(nsec))
    }
}

/// The attributes of a lower entry, reported under inode `ino`.
pub fn attr(e: &Entry<'_>, ino: u64) -> FileAttr {
    let (s, ns) = e.mtime();
    let t = time(s, ns);
    let kind = file_type(e.kind());
    let size = match e.kind() {
        Kind::File => e.size(),
        Kind::Symlink => e.link().len() as u64,
        Kind::Dir => 4096,
        _ => 0,
    };
    let (ma, mi) = e.rdev();
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind,
        perm: (e.mode() & 0o7777) as u16,
        nlink: e.nlink().max(1),
        uid: e.uid(),
        gid: e.gid(),
        rdev: rdev32(ma, mi),
        blksize: 4096,
        flags: 0,
    }
}
