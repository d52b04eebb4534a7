//! Copy-up: making a lower object exist in the upper dir before it is changed.
//!
//! Files are copied from the mmapped tar into `work/` (zero blocks skipped, so sparse
//! files stay sparse), given their owner, mode, xattrs and times, then renamed into
//! place: a half-copied file is never visible. Every host access goes through the dir
//! fds of `upper` (never a joined path, never following a symlink). Parents are copied up first. A lower
//! file with several names is copied once and every other name becomes a hardlink to
//! the copy. Never decides *when* to copy up: the operations in `fs` do.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

use fuser::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::tarindex::{Entry, EntryId, Kind};

use super::mapping::Own;
use super::node::ROOT;
use super::upper::{self, At, host_perm, lstat_at, openat};
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
    /// A fresh name in the work dir for a copy being built.
    fn tmp_at(&self) -> R<At> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let name = format!("copyup-{}-{n}", std::process::id());
        Ok(self.upper.work_at(name.as_bytes())?)
    }

    /// Makes inode `ino` exist in the upper dir, its parents first. `data`: copy a
    /// regular file's bytes (false when it is about to be truncated to 0).
    pub(crate) fn copy_up(&self, ino: u64, data: bool) -> R<()> {
        let (node, rel) = self.node(ino)?;
        if node.upper {
            return Ok(());
        }
        // Its last name is gone: copying it up would bring the name back.
        if node.gone {
            return Err(Errno::ENOENT);
        }
        if ino != ROOT {
            self.copy_up(node.parent, true)?;
        }
        let id = node.lower.ok_or(Errno::ENOENT)?;
        let at = self.upper.at(&rel)?;
        let st = self.copy_entry(id, &rel, &at, data)?;
        let mut nodes = self.nodes_w();
        nodes.bind_host(st.st_ino, ino);
        if let Some(n) = nodes.get_mut(ino) {
            n.upper = true;
        }
        drop(nodes);
        let e = self.lower.get(id).ok_or(Errno::EIO)?;
        if e.kind() == Kind::File && e.nlink() > 1 {
            self.link_other_names(id, &at);
        }
        Ok(())
    }

    /// Copies one lower entry to `at` (its parent exists in the upper dir).
    fn copy_entry(&self, id: EntryId, rel: &[u8], at: &At, data: bool) -> R<libc::stat> {
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
            let mode = Mode::from_bits_truncate(host_perm(perm, true));
            match nix::sys::stat::mkdirat(at.dir.as_fd(), at.name.as_slice(), mode) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(err) => return Err(errno(err)),
            }
            at.chmod(host_perm(perm, true))?;
            self.finish_entry(&e, at, rel, own)?;
            return Ok(at.lstat()?);
        }
        let tmp = self.tmp_at()?;
        let made = self.make_tmp(&e, &tmp, data, perm);
        let res = made.and_then(|()| self.finish_entry(&e, &tmp, rel, own));
        let res = res.and_then(|()| {
            nix::fcntl::renameat(
                tmp.dir.as_fd(),
                tmp.name.as_slice(),
                at.dir.as_fd(),
                at.name.as_slice(),
            )
            .map_err(errno)
        });
        if res.is_err() {
            let _ = nix::unistd::unlinkat(
                tmp.dir.as_fd(),
                tmp.name.as_slice(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        res?;
        Ok(at.lstat()?)
    }

    fn make_tmp(&self, e: &Entry<'_>, tmp: &At, data: bool, perm: u32) -> R<()> {
        let plain = || {
            openat(
                tmp.dir.as_fd(),
                &tmp.name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW,
                host_perm(perm, false),
            )
        };
        match e.kind() {
            Kind::Symlink => {
                nix::unistd::symlinkat(e.link(), tmp.dir.as_fd(), tmp.name.as_slice())
                    .map_err(errno)?;
            }
            Kind::Fifo | Kind::Char | Kind::Block => {
                let (a, b) = e.rdev();
                let dev = nix::sys::stat::makedev(u64::from(a), u64::from(b));
                let (sflag, dev) = match e.kind() {
                    Kind::Fifo => (SFlag::S_IFIFO, 0),
                    Kind::Char => (SFlag::S_IFCHR, dev),
                    _ => (SFlag::S_IFBLK, dev),
                };
                let mode = Mode::from_bits_truncate(host_perm(perm, false));
                let made =
                    nix::sys::stat::mknodat(tmp.dir.as_fd(), tmp.name.as_slice(), sflag, mode, dev);
                if made.is_err() {
                    // Not allowed to make device nodes: a plain file; the ownership
                    // record carries the type and device number.
                    plain()?;
                }
            }
            _ => {
                let f = fs::File::from(plain()?);
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
    fn finish_entry(&self, e: &Entry<'_>, at: &At, rel: &[u8], own: Own) -> R<()> {
        let xpath = at.proc();
        for (k, v) in e.xattrs() {
            if k.starts_with(super::mapping::PRIVATE_PREFIX) {
                continue;
            }
            // Best effort, like overlayfs: xattrs the host refuses (trusted.*,
            // security.* without privilege) are dropped.
            let _ = super::sys::lsetxattr(&xpath, k, v, 0);
        }
        self.upper.own.set(&xpath, rel, own.mode, own)?;
        let (s, ns) = e.mtime();
        let t = TimeSpec::new(s, i64::from(ns.min(999_999_999)));
        nix::sys::stat::utimensat(
            at.dir.as_fd(),
            at.name.as_slice(),
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(errno)?;
        Ok(())
    }

    /// After copying up a hardlinked lower file, gives every other name of it in the
    /// lower view a hardlink to the copy (where that name is still visible).
    fn link_other_names(&self, id: EntryId, first: &At) {
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
                if lstat_at(dir.as_fd(), name).is_err()
                    && !whiteout::exists(dir.as_fd(), name)
                    && nix::unistd::linkat(
                        first.dir.as_fd(),
                        first.name.as_slice(),
                        dir.as_fd(),
                        name,
                        nix::fcntl::AtFlags::empty(),
                    )
                    .is_ok()
                {
                    let _ = self.upper.own.link(&self.lower.index.path(id), &rel);
                }
            }
        }
    }

    /// Makes the lower parent dirs of `rel` exist in the upper dir, by index path; the
    /// fd of the last one, or None if one of them was deleted or replaced there.
    fn upper_dirs_for(&self, rel: &[u8]) -> Option<OwnedFd> {
        let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        let mut cur = Vec::new();
        let mut host = self.upper.dir(b"").ok()?;
        for p in &parts[..parts.len().saturating_sub(1)] {
            if whiteout::exists(host.as_fd(), p) {
                return None;
            }
            if !cur.is_empty() {
                cur.push(b'/');
            }
            cur.extend_from_slice(p);
            let at = At {
                dir: host,
                name: p.to_vec(),
            };
            match at.lstat() {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                Ok(_) => return None,
                Err(_) => {
                    let id = self.lower.index.lookup(&cur)?;
                    self.copy_entry(id, &cur, &at, false).ok()?;
                }
            }
            host = at.open_dir().ok()?;
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
        strip_markers(&self.upper.dir(&rel)?)?;
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

    /// `links`: lower hardlink groups already copied, by the rel of their first copy.
    fn copy_children(&self, dir: EntryId, rel: &[u8], links: &mut HashMap<u32, Vec<u8>>) -> R<()> {
        let host_dir = self.upper.dir(rel)?;
        for c in self.lower.index.children(dir) {
            let Some(e) = self.lower.get(c) else { continue };
            let name = e.name();
            let mut crel = rel.to_vec();
            if !crel.is_empty() {
                crel.push(b'/');
            }
            crel.extend_from_slice(name);
            if whiteout::exists(host_dir.as_fd(), name) {
                continue;
            }
            let at = At {
                dir: host_dir.try_clone()?,
                name: name.to_vec(),
            };
            if let Ok(st) = at.lstat() {
                let opaque = || at.open_dir().is_ok_and(|d| whiteout::is_opaque(d.as_fd()));
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR && e.kind() == Kind::Dir && !opaque()
                {
                    self.copy_children(c, &crel, links)?;
                }
                continue;
            }
            if e.kind() == Kind::File && e.nlink() > 1 {
                if let Some(first) = links.get(&e.ino()) {
                    let first = self.upper.at(first)?;
                    nix::unistd::linkat(
                        first.dir.as_fd(),
                        first.name.as_slice(),
                        at.dir.as_fd(),
                        at.name.as_slice(),
                        nix::fcntl::AtFlags::empty(),
                    )
                    .map_err(errno)?;
                    continue;
                }
            }
            let st = self.copy_entry(c, &crel, &at, true)?;
            self.nodes_w()
                .bind_host(st.st_ino, super::lower::ino_of(&e));
            if e.kind() == Kind::File && e.nlink() > 1 {
                links.insert(e.ino(), crel.clone());
            }
            if e.kind() == Kind::Dir {
                self.copy_children(c, &crel, links)?;
            }
        }
        Ok(())
    }
}

fn errno(e: nix::errno::Errno) -> Errno {
    Errno::from_i32(e as i32)
}

/// Removes whiteouts and opaque markers below the directory `dir` (it now holds
/// everything itself).
fn strip_markers(dir: &OwnedFd) -> io::Result<()> {
    let fd = openat(dir.as_fd(), b".", OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
    for (name, _, _) in upper::list_dir(&fd)? {
        let st = lstat_at(fd.as_fd(), &name)?;
        if whiteout::is_marker(&name) {
            nix::unistd::unlinkat(
                fd.as_fd(),
                name.as_slice(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )?;
        } else if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let at = At {
                dir: fd.try_clone()?,
                name,
            };
            strip_markers(&at.open_dir()?)?;
        }
    }
    Ok(())
}
