//! Copy-up: making a lower object exist in the upper dir before it is changed.
//!
//! Files are copied from the mmapped tar into `work/` (zero blocks skipped, so sparse
//! files stay sparse), given their owner, mode, xattrs and times, then renamed into
//! place: a half-copied file is never visible. Parents are copied up first. A lower
//! file with several names is copied once and every other name becomes a hardlink to
//! the copy. Never decides *when* to copy up: the operations in `fs` do.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use fuser::Errno;
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::tarindex::{Entry, EntryId, Kind};

use super::mapping::Own;
use super::node::ROOT;
use super::upper::host_perm;
use super::{Overlay, whiteout};

type R<T> = Result<T, Errno>;

const CHUNK: usize = 1 << 16;

fn type_bits(k: Kind) -> u32 {
    match k {
        Kind::Dir => libc::S_IFDIR,
        Kind::Symlink => libc::S_IFLNK,
        Kind::Char => libc::S_IFCHR,
        Kind::Block => libc::S_IFBLK,
        Kind::Fifo => libc::S_IFIFO,
        _ => libc::S_IFREG,
    }
}

impl Overlay {
    fn tmp_path(&self) -> PathBuf {
        let n = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.upper
            .work
            .join(format!("copyup-{}-{n}", std::process::id()))
    }

    /// Makes inode `ino` exist in the upper dir, its parents first. `data`: copy a
    /// regular file's bytes (false when it is about to be truncated to 0).
    pub(crate) fn copy_up(&self, ino: u64, data: bool) -> R<()> {
        let (node, rel) = self.node(ino)?;
        if node.upper {
            return Ok(());
        }
        if ino != ROOT {
            self.copy_up(node.parent, true)?;
        }
        let id = node.lower.ok_or(Errno::ENOENT)?;
        let host = self.upper.host(&rel);
        let st = self.copy_entry(id, &rel, &host, data)?;
        let mut nodes = self.nodes_w();
        nodes.bind_host(st.ino(), ino);
        if let Some(n) = nodes.get_mut(ino) {
            n.upper = true;
        }
        drop(nodes);
        let e = self.lower.get(id).ok_or(Errno::EIO)?;
        if e.kind() == Kind::File && e.nlink() > 1 {
            self.link_other_names(id, &host);
        }
        Ok(())
    }

    /// Copies one lower entry to `host` (its parent exists in the upper dir).
    fn copy_entry(&self, id: EntryId, rel: &[u8], host: &Path, data: bool) -> R<fs::Metadata> {
        let e = self.lower.get(id).ok_or(Errno::EIO)?;
        let perm = e.mode() & 0o7777;
        let (ma, mi) = e.rdev();
        let own = Own {
            uid: e.uid(),
            gid: e.gid(),
            mode: type_bits(e.kind()) | perm,
            rdev: super::lower::rdev32(ma, mi),
        };
        if e.kind() == Kind::Dir {
            match fs::create_dir(host) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err.into()),
            }
            nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                host,
                Mode::from_bits_truncate(host_perm(perm, true)),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| Errno::from_i32(e as i32))?;
            self.finish_entry(&e, host, rel, own)?;
            return fs::symlink_metadata(host).map_err(Errno::from);
        }
        let tmp = self.tmp_path();
        let made = self.make_tmp(&e, &tmp, data, perm);
        let res = made.and_then(|()| self.finish_entry(&e, &tmp, rel, own));
        let res = res.and_then(|()| fs::rename(&tmp, host).map_err(Errno::from));
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res?;
        fs::symlink_metadata(host).map_err(Errno::from)
    }

    fn make_tmp(&self, e: &Entry<'_>, tmp: &Path, data: bool, perm: u32) -> R<()> {
        match e.kind() {
            Kind::Symlink => {
                std::os::unix::fs::symlink(OsStr::from_bytes(e.link()), tmp)?;
            }
            Kind::Fifo | Kind::Char | Kind::Block => {
                let (sflag, dev) = match e.kind() {
                    Kind::Fifo => (SFlag::S_IFIFO, 0),
                    Kind::Char => (SFlag::S_IFCHR, {
                        let (a, b) = e.rdev();
                        nix::sys::stat::makedev(u64::from(a), u64::from(b))
                    }),
                    _ => (SFlag::S_IFBLK, {
                        let (a, b) = e.rdev();
                        nix::sys::stat::makedev(u64::from(a), u64::from(b))
                    }),
                };
                let mode = Mode::from_bits_truncate(host_perm(perm, false));
                if nix::sys::stat::mknod(tmp, sflag, mode, dev).is_err() {
                    // Not allowed to make device nodes: a plain file; the ownership
                    // record carries the type and device number.
                    fs::File::create(tmp)?;
                }
            }
            _ => {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(tmp)?;
                if data {
                    let bytes = self.lower.data(e.id());
                    let mut off = 0usize;
                    while off < bytes.len() {
                        let end = (off + CHUNK).min(bytes.len());
                        let chunk = &bytes[off..end];
                        if chunk.iter().any(|&b| b != 0) {
                            f.write_all_at(chunk, off as u64)?;
                        }
                        off = end;
                    }
                    f.set_len(bytes.len() as u64)?;
                }
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(fs::Permissions::from_mode(host_perm(perm, false)))?;
            }
        }
        Ok(())
    }

    /// Xattrs, ownership record and times of a copied entry.
    fn finish_entry(&self, e: &Entry<'_>, path: &Path, rel: &[u8], own: Own) -> R<()> {
        for (k, v) in e.xattrs() {
            if k.starts_with(super::mapping::PRIVATE_PREFIX) {
                continue;
            }
            // Best effort, like overlayfs: xattrs the host refuses (trusted.*,
            // security.* without privilege) are dropped.
            let _ = super::sys::lsetxattr(path, k, v, 0);
        }
        self.upper.own.set(path, rel, own.mode, own)?;
        let (s, ns) = e.mtime();
        let t = TimeSpec::new(s, i64::from(ns.min(999_999_999)));
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| Errno::from_i32(e as i32))?;
        Ok(())
    }

    /// After copying up a hardlinked lower file, gives every other name of it in the
    /// lower view a hardlink to the copy (where that name is still visible).
    fn link_other_names(&self, id: EntryId, host: &Path) {
        let Some(e) = self.lower.get(id) else { return };
        let group = e.ino();
        for other in 0..self.lower.index.len() {
            if other == id {
                continue;
            }
            let Some(o) = self.lower.get(other) else {
                continue;
            };
            if o.ino() != group || o.kind() != Kind::File {
                continue;
            }
            let rel = self.lower.index.path(other);
            if let Some(dir) = self.upper_dirs_for(&rel) {
                let name = rel.rsplit(|&b| b == b'/').next().unwrap_or(&rel);
                let dst = dir.join(OsStr::from_bytes(name));
                if fs::symlink_metadata(&dst).is_err()
                    && !whiteout::exists(&dir, name)
                    && fs::hard_link(host, &dst).is_ok()
                {
                    self.upper.own.link(&self.lower.index.path(id), &rel);
                }
            }
        }
    }

    /// Makes the lower parent dirs of `rel` exist in the upper dir, by index path;
    /// None if one of them was deleted or replaced in the upper dir.
    fn upper_dirs_for(&self, rel: &[u8]) -> Option<PathBuf> {
        let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        let mut cur = Vec::new();
        let mut host = self.upper.root.clone();
        for p in &parts[..parts.len().saturating_sub(1)] {
            if whiteout::exists(&host, p) {
                return None;
            }
            if !cur.is_empty() {
                cur.push(b'/');
            }
            cur.extend_from_slice(p);
            let next = host.join(OsStr::from_bytes(p));
            match fs::symlink_metadata(&next) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return None,
                Err(_) => {
                    let id = self.lower.index.lookup(&cur)?;
                    self.copy_entry(id, &cur, &next, false).ok()?;
                }
            }
            host = next;
        }
        Some(host)
    }

    /// Copies a whole lower directory tree (what is still visible of it) into the upper
    /// dir, so that it no longer depends on its lower path: used before renaming it.
    pub(crate) fn copy_up_tree(&self, ino: u64) -> R<()> {
        self.copy_up(ino, true)?;
        let (node, rel) = self.node(ino)?;
        if let Some(id) = node.lower {
            let mut links = HashMap::new();
            self.copy_children(id, &rel, &mut links)?;
        }
        let host = self.upper.host(&rel);
        strip_markers(&host)?;
        let below = self.nodes_r().descendants(ino);
        let mut nodes = self.nodes_w();
        for i in below {
            if let Some(n) = nodes.get_mut(i) {
                n.upper = true;
                n.lower = None;
            }
        }
        if let Some(n) = nodes.get_mut(ino) {
            n.lower = None;
        }
        Ok(())
    }

    fn copy_children(
        &self,
        dir: EntryId,
        rel: &[u8],
        links: &mut HashMap<EntryId, PathBuf>,
    ) -> R<()> {
        let host_dir = self.upper.host(rel);
        for c in self.lower.index.children(dir) {
            let Some(e) = self.lower.get(c) else { continue };
            let name = e.name();
            let mut crel = rel.to_vec();
            if !crel.is_empty() {
                crel.push(b'/');
            }
            crel.extend_from_slice(name);
            let dst = host_dir.join(OsStr::from_bytes(name));
            if whiteout::exists(&host_dir, name) {
                continue;
            }
            if let Ok(m) = fs::symlink_metadata(&dst) {
                if m.is_dir() && e.kind() == Kind::Dir && !whiteout::is_opaque(&dst) {
                    self.copy_children(c, &crel, links)?;
                }
                continue;
            }
            if e.kind() == Kind::File && e.nlink() > 1 {
                if let Some(first) = links.get(&e.ino()) {
                    fs::hard_link(first, &dst)?;
                    continue;
                }
            }
            let st = self.copy_entry(c, &crel, &dst, true)?;
            self.nodes_w().bind_host(st.ino(), super::lower::ino_of(&e));
            if e.kind() == Kind::File && e.nlink() > 1 {
                links.insert(e.ino(), dst.clone());
            }
            if e.kind() == Kind::Dir {
                self.copy_children(c, &crel, links)?;
            }
        }
        Ok(())
    }
}

/// Removes whiteouts and opaque markers below `dir` (it now holds everything itself).
fn strip_markers(dir: &Path) -> io::Result<()> {
    for de in fs::read_dir(dir)? {
        let de = de?;
        let name = de.file_name();
        if whiteout::is_marker(name.as_bytes()) {
            fs::remove_file(de.path())?;
        } else if de.file_type()?.is_dir() {
            strip_markers(&de.path())?;
        }
    }
    Ok(())
}
