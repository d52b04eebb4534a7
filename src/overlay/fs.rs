//! The FUSE operations: the kernel's requests answered from the lower view, the upper
//! dir and the inode table.
//!
//! Owns the overlay semantics (which layer a name comes from, when to copy up, where
//! whiteouts go). Never panics: every failure is an errno reply. Invariant: operations
//! that change names take `names` first, then the node table lock, never the reverse.
//!
//! The kernel opens nothing here: open, opendir and flush are not implemented, on
//! purpose (each saves a round trip per file or directory opened; see there), so reads,
//! writes and readdirs name an inode, and upper files are served from fds kept by
//! inode (`fds`).
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::{Arc, MutexGuard, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::tarindex::{EntryId, Kind};

use super::lower::{self, ino_of};
use super::mapping::{Own, PRIVATE_PREFIX};
use super::node::{Node, Nodes, ROOT};
use super::upper::{self, At, attr_from_stat, host_perm, lstat_at};
use super::{Overlay, sys, whiteout};

type R<T> = Result<T, Errno>;

/// Lower entries never change: the kernel may cache them for long.
const TTL_LOWER: Duration = Duration::from_secs(86400);
const TTL_UPPER: Duration = Duration::from_secs(1);
const NAME_MAX: usize = 255;
/// Every open file: pages stay cached across opens (all changes go through this
/// mount, which drops them itself), and a close sends no flush round trip.
const OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_KEEP_CACHE.union(FopenFlags::FOPEN_NOFLUSH);

/// Where the bytes of a file are, for a read or write that names no handle.
enum Data {
    Lower(EntryId),
    Upper(Arc<OwnedFd>),
}

/// A setattr time as `utimensat` takes it (absent: left as it is).
fn timespec(t: Option<TimeOrNow>) -> TimeSpec {
    match t {
        None => TimeSpec::UTIME_OMIT,
        Some(TimeOrNow::Now) => TimeSpec::UTIME_NOW,
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            TimeSpec::new(d.as_secs() as i64, i64::from(d.subsec_nanos()))
        }
    }
}

/// Replies to a read from an upper fd, through one buffer per worker thread, reused:
/// no allocation per read.
fn read_upper(fd: i32, offset: u64, size: u32, reply: ReplyData) {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        if buf.len() < size as usize {
            buf.resize(size as usize, 0);
        }
        let buf = &mut buf[..size as usize];
        let mut got = 0usize;
        while got < buf.len() {
            match sys::pread(fd, &mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return reply.error(e.into()),
            }
        }
        reply.data(&buf[..got]);
    });
}

/// One name of a directory listing.
#[derive(Clone, Debug)]
pub struct DirEnt {
    pub ino: u64,
    pub kind: FileType,
    pub name: Vec<u8>,
}

/// Xattrs this filesystem does not support, answered `EOPNOTSUPP` like a filesystem
/// mounted without them: SELinux labels (a request for one reaches the server only
/// when no LSM on the host answers it, so a label would mean nothing) and POSIX ACLs
/// (the kernel answers those itself in a user namespace, and would not enforce them:
/// ACLs are not negotiated). Tools such as `ls -l` then stop asking for the whole
/// mount after the first answer, instead of asking once per file.
fn unsupported_xattr(name: &[u8]) -> bool {
    matches!(
        name,
        b"security.selinux" | b"system.posix_acl_access" | b"system.posix_acl_default"
    )
}

fn errno(e: nix::errno::Errno) -> Errno {
    Errno::from_i32(e as i32)
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(dir.len() + 1 + name.len());
    v.extend_from_slice(dir);
    if !dir.is_empty() {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

fn check_name(name: &OsStr) -> R<&[u8]> {
    let n = name.as_bytes();
    if n.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(n)
}

/// The attributes of a negative entry (node id 0).
fn negative() -> FileAttr {
    let t = SystemTime::UNIX_EPOCH;
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// Creates a new empty regular file at `at` (read-write, never following a symlink).
fn new_file(at: &At, perm: u32) -> io::Result<std::os::fd::OwnedFd> {
    upper::openat(
        at.dir.as_fd(),
        &at.name,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW,
        perm,
    )
}

fn kind_of_dtype(t: nix::dir::Type) -> FileType {
    use nix::dir::Type;
    match t {
        Type::Directory => FileType::Directory,
        Type::Symlink => FileType::Symlink,
        Type::CharacterDevice => FileType::CharDevice,
        Type::BlockDevice => FileType::BlockDevice,
        Type::Fifo => FileType::NamedPipe,
        Type::Socket => FileType::Socket,
        Type::File => FileType::RegularFile,
    }
}

/// What a name resolves to, before the kernel is told.
struct Found {
    ino: u64,
    node: Node,
    attr: FileAttr,
}

impl Overlay {
    pub(crate) fn nodes_r(&self) -> RwLockReadGuard<'_, Nodes> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn nodes_w(&self) -> RwLockWriteGuard<'_, Nodes> {
        self.nodes.write().unwrap_or_else(|p| p.into_inner())
    }
    fn names(&self) -> MutexGuard<'_, ()> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the node and its current path.
    pub(crate) fn node(&self, ino: u64) -> R<(Node, Vec<u8>)> {
        let nodes = self.nodes_r();
        let n = nodes.get(ino).ok_or(Errno::ENOENT)?.clone();
        let p = nodes.path(ino).ok_or(Errno::ENOENT)?;
        Ok((n, p))
    }

    fn ttl(&self, node: &Node) -> Duration {
        if node.upper { TTL_UPPER } else { TTL_LOWER }
    }

    /// The attributes of a node; `fd` an upper fd of it to stat (an unlinked file).
    fn attr_of(&self, ino: u64, node: &Node, rel: &[u8], fd: Option<i32>) -> R<FileAttr> {
        if let Some(fd) = fd {
            let st = sys::fstat(fd)?;
            let own = if st.st_nlink > 0 {
                let at = self.upper.at(rel).ok();
                at.and_then(|at| self.upper.own.get(&at.proc(), rel, st.st_mode))
            } else {
                None
            };
            return Ok(attr_from_stat(&st, ino, own));
        }
        if node.gone {
            if let Some(fd) = self.fds.get(ino) {
                return self.attr_of(ino, node, rel, Some(fd.as_raw_fd()));
            }
            let e = node
                .lower
                .and_then(|l| self.lower.get(l))
                .ok_or(Errno::ENOENT)?;
            let mut a = lower::attr(&e, ino);
            a.nlink = 0;
            return Ok(a);
        }
        if node.upper {
            let found = self.upper.at(rel).and_then(|at| Ok((at.lstat()?, at)));
            let (st, at) = match found {
                Ok(x) => x,
                Err(e) => match self.fds.get(ino) {
                    Some(fd) => return self.attr_of(ino, node, rel, Some(fd.as_raw_fd())),
                    None => return Err(e.into()),
                },
            };
            let mut a = self.upper.attr(&at, rel, &st, ino);
            if node.kind == FileType::Directory && node.lower.is_some() {
                a.nlink = 1;
            }
            return Ok(a);
        }
        let id = node.lower.ok_or(Errno::ENOENT)?;
        let e = self.lower.get(id).ok_or(Errno::EIO)?;
        Ok(lower::attr(&e, ino))
    }

    /// Resolves `name` in directory `parent` through the layers.
    fn resolve(&self, parent: u64, name: &[u8]) -> R<Option<Found>> {
        if whiteout::is_marker(name) {
            return Ok(None);
        }
        let (pnode, ppath) = self.node(parent)?;
        if pnode.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let rel = join(&ppath, name);
        let mut upper_st = None;
        if pnode.upper {
            let dir = self.upper.dir(&ppath)?;
            match lstat_at(dir.as_fd(), name) {
                Ok(st) => {
                    upper_st = Some((
                        st,
                        At {
                            dir,
                            name: name.to_vec(),
                        },
                    ))
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if pnode.lower.is_some() && whiteout::exists(dir.as_fd(), name) {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        let lower_hit = pnode
            .lower
            .and_then(|pl| self.lower.index.lookup_child(pl, name))
            .and_then(|id| self.lower.get(id));
        match (upper_st, lower_hit) {
            (Some((st, at)), lh) => {
                let own = self.upper.own.get(&at.proc(), &rel, st.st_mode);
                let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                let lower_dir = lh
                    .filter(|e| is_dir && e.kind() == Kind::Dir)
                    .filter(|_| !at.open_dir().is_ok_and(|d| whiteout::is_opaque(d.as_fd())));
                let lower_ino = lh
                    .filter(|e| (e.kind() == Kind::Dir) == is_dir)
                    .filter(|e| !is_dir || lower_dir.is_some() || e.kind() != Kind::Dir)
                    .map(|e| ino_of(&e));
                let lower_ino = if is_dir && lower_dir.is_none() {
                    None
                } else {
                    lower_ino
                };
                let ino = self.nodes_w().ino_for_host(st.st_ino, lower_ino);
                let mut attr = attr_from_stat(&st, ino, own);
                if lower_dir.is_some() {
                    attr.nlink = 1;
                }
                Ok(Some(Found {
                    ino,
                    node: Node {
                        parent,
                        name: name.to_vec(),
                        lower: lower_dir.map(|e| e.id()),
                        upper: true,
                        kind: attr.kind,
                        nlookup: 0,
                        gone: false,
                        alt: Vec::new(),
                    },
                    attr,
                }))
            }
            (None, Some(e)) => {
                let ino = ino_of(&e);
                Ok(Some(Found {
                    ino,
                    node: Node {
                        parent,
                        name: name.to_vec(),
                        lower: Some(e.id()),
                        upper: false,
                        kind: lower::file_type(e.kind()),
                        nlookup: 0,
                        gone: false,
                        alt: Vec::new(),
                    },
                    attr: lower::attr(&e, ino),
                }))
            }
            (None, None) => Ok(None),
        }
    }

    fn remember(&self, f: &Found) {
        self.nodes_w().looked_up(f.ino, f.node.clone());
    }

    /// The merged listing of a directory (without `.` and `..`).
    fn list(&self, ino: u64) -> R<Vec<DirEnt>> {
        let (node, rel) = self.node(ino)?;
        if node.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let mut out = Vec::new();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut whiteouts: HashSet<Vec<u8>> = HashSet::new();
        if node.upper {
            let fd = upper::open_listing(&self.upper.at(&rel)?)?;
            for (name, host_ino, dtype) in upper::list_dir(&fd)? {
                if whiteout::is_marker(&name) {
                    if name.as_slice() != whiteout::OPAQUE {
                        whiteouts.insert(name[whiteout::PREFIX.len()..].to_vec());
                    }
                    continue;
                }
                let kind = match dtype {
                    Some(t) => kind_of_dtype(t),
                    None => upper::kind_of(lstat_at(fd.as_fd(), &name)?.st_mode),
                };
                let is_dir = kind == FileType::Directory;
                let lower_ino = node
                    .lower
                    .and_then(|l| self.lower.index.lookup_child(l, &name))
                    .and_then(|id| self.lower.get(id))
                    .filter(|e| (e.kind() == Kind::Dir) == is_dir)
                    .map(|e| ino_of(&e));
                let known = self.nodes_r().known_host(host_ino);
                let ino = match known {
                    Some(i) => i,
                    None => self.nodes_w().ino_for_host(host_ino, lower_ino),
                };
                seen.insert(name.clone());
                out.push(DirEnt { ino, kind, name });
            }
        }
        if let Some(l) = node.lower {
            for c in self.lower.index.children(l) {
                let Some(e) = self.lower.get(c) else { continue };
                let name = e.name();
                if seen.contains(name) || whiteouts.contains(name) {
                    continue;
                }
                out.push(DirEnt {
                    ino: ino_of(&e),
                    kind: lower::file_type(e.kind()),
                    name: name.to_vec(),
                });
            }
        }
        Ok(out)
    }

    /// The ownership a new object gets: the caller, or the directory's group when it
    /// is setgid. Returns (own, setgid-bit to add for new dirs).
    fn new_own(&self, req: &Request, parent: u64, mode: u32) -> R<Own> {
        let (pnode, prel) = self.node(parent)?;
        let pattr = self.attr_of(parent, &pnode, &prel, None)?;
        let mut gid = req.gid();
        let mut mode = mode;
        if pattr.perm as u32 & libc::S_ISGID != 0 {
            gid = pattr.gid;
            if mode & libc::S_IFMT == libc::S_IFDIR {
                mode |= libc::S_ISGID;
            }
        }
        Ok(Own {
            uid: req.uid(),
            gid,
            mode,
            rdev: 0,
        })
    }

    /// Common preparation for making `name` in `parent`: the parent exists in the upper
    /// dir, the name is free (its whiteout removed); returns (where to make it, child
    /// rel, a lower layer has a dir of that name, which a new dir must then hide).
    fn prepare_new(&self, parent: u64, name: &[u8]) -> R<(At, Vec<u8>, bool)> {
        if whiteout::is_marker(name) {
            return Err(Errno::EINVAL);
        }
        if self.resolve(parent, name)?.is_some() {
            return Err(Errno::EEXIST);
        }
        self.copy_up(parent, true)?;
        let (pnode, prel) = self.node(parent)?;
        let dir = self.upper.dir(&prel)?;
        whiteout::remove(dir.as_fd(), name)?;
        let lower_dir = self.lower_child_is_dir(pnode.lower, name);
        let rel = join(&prel, name);
        let at = At {
            dir,
            name: name.to_vec(),
        };
        Ok((at, rel, lower_dir))
    }

    /// A lower layer has a directory `name` in the lower dir `dir`.
    fn lower_child_is_dir(&self, dir: Option<EntryId>, name: &[u8]) -> bool {
        dir.and_then(|l| self.lower.index.lookup_child(l, name))
            .and_then(|id| self.lower.get(id))
            .is_some_and(|e| e.kind() == Kind::Dir)
    }

    /// Registers a freshly made upper object and builds its entry reply.
    fn fresh(&self, parent: u64, at: &At, rel: &[u8], own: Own) -> R<Found> {
        let name = &at.name;
        let st = at.lstat()?;
        self.upper.own.set(&at.proc(), rel, st.st_mode, own)?;
        let st = at.lstat()?;
        let ino = {
            let mut nodes = self.nodes_w();
            nodes.unbind_host(st.st_ino);
            nodes.ino_for_host(st.st_ino, None)
        };
        let attr = attr_from_stat(&st, ino, Some(own));
        let f = Found {
            ino,
            node: Node {
                parent,
                name: name.to_vec(),
                lower: None,
                upper: true,
                kind: attr.kind,
                nlookup: 0,
                gone: false,
                alt: Vec::new(),
            },
            attr,
        };
        self.remember(&f);
        Ok(f)
    }

    /// Removes `name` (a non-dir if `!dir`, an empty dir if `dir`) from `parent`.
    fn remove(&self, parent: u64, name: &[u8], dir: bool) -> R<()> {
        let _g = self.names();
        let f = self.resolve(parent, name)?.ok_or(Errno::ENOENT)?;
        let is_dir = f.attr.kind == FileType::Directory;
        if dir && !is_dir {
            return Err(Errno::ENOTDIR);
        }
        if !dir && is_dir {
            return Err(Errno::EISDIR);
        }
        if dir {
            self.remember(&f);
            let empty = self.list(f.ino).map(|l| l.is_empty());
            self.nodes_w().forget(f.ino, 1);
            if !empty? {
                return Err(Errno::ENOTEMPTY);
            }
        }
        let (pnode, prel) = self.node(parent)?;
        let lower_had = pnode
            .lower
            .and_then(|l| self.lower.index.lookup_child(l, name))
            .is_some();
        let rel = join(&prel, name);
        if lower_had {
            self.copy_up(parent, true)?;
        }
        if f.node.upper || lower_had {
            let pdir = self.upper.dir(&prel)?;
            if f.node.upper {
                if dir {
                    upper::remove_tree(pdir.as_fd(), name)?;
                } else {
                    if f.attr.kind == FileType::RegularFile {
                        self.keep_data(f.ino, pdir.as_fd(), name);
                    }
                    nix::unistd::unlinkat(
                        pdir.as_fd(),
                        name,
                        nix::unistd::UnlinkatFlags::NoRemoveDir,
                    )
                    .map_err(errno)?;
                }
                self.upper.own.remove(&rel)?;
            }
            if lower_had {
                whiteout::create(self.upper.work_fd(), pdir.as_fd(), name)?;
            }
        }
        self.nodes_w().drop_name(f.ino, parent, name);
        Ok(())
    }

    fn do_rename(&self, parent: u64, name: &[u8], np: u64, nn: &[u8], flags: RenameFlags) -> R<()> {
        let _g = self.names();
        if whiteout::is_marker(nn) {
            return Err(Errno::EINVAL);
        }
        let src = self.resolve(parent, name)?.ok_or(Errno::ENOENT)?;
        let dst = self.resolve(np, nn)?;
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        if flags.contains(RenameFlags::RENAME_NOREPLACE) && dst.is_some() {
            return Err(Errno::EEXIST);
        }
        if exchange && dst.is_none() {
            return Err(Errno::ENOENT);
        }
        if let Some(d) = &dst
            && d.ino == src.ino
            && !exchange
        {
            return Ok(());
        }
        let src_dir = src.attr.kind == FileType::Directory;
        if let Some(d) = &dst
            && !exchange
        {
            let ddir = d.attr.kind == FileType::Directory;
            if src_dir && !ddir {
                return Err(Errno::ENOTDIR);
            }
            if !src_dir && ddir {
                return Err(Errno::EISDIR);
            }
            if ddir {
                self.remember(d);
                let empty = self.list(d.ino).map(|l| l.is_empty());
                self.nodes_w().forget(d.ino, 1);
                if !empty? {
                    return Err(Errno::ENOTEMPTY);
                }
            }
        }
        // Bring the source (and, for an exchange, the target) wholly into the upper dir.
        self.remember(&src);
        let prep = |f: &Found| -> R<()> {
            if f.attr.kind == FileType::Directory {
                if f.node.lower.is_some() {
                    self.copy_up_tree(f.ino)
                } else {
                    Ok(())
                }
            } else {
                self.copy_up(f.ino, true)
            }
        };
        let r = prep(&src);
        if let Some(d) = dst.as_ref().filter(|_| exchange) {
            self.remember(d);
            let r2 = r.and_then(|()| prep(d));
            self.nodes_w().forget(d.ino, 1);
            r2.inspect_err(|_| self.nodes_w().forget(src.ino, 1))?;
        } else {
            r.inspect_err(|_| self.nodes_w().forget(src.ino, 1))?;
        }
        let res = self.rename_upper(parent, name, np, nn, &src, dst.as_ref(), exchange);
        self.nodes_w().forget(src.ino, 1);
        res
    }

    #[allow(clippy::too_many_arguments)]
    fn rename_upper(
        &self,
        parent: u64,
        name: &[u8],
        np: u64,
        nn: &[u8],
        src: &Found,
        dst: Option<&Found>,
        exchange: bool,
    ) -> R<()> {
        self.copy_up(np, true)?;
        let (pnode, prel) = self.node(parent)?;
        let (npnode, nprel) = self.node(np)?;
        let old_rel = join(&prel, name);
        let new_rel = join(&nprel, nn);
        let old = self.upper.at(&old_rel)?;
        let new = self.upper.at(&new_rel)?;
        let lower_at = |n: &Node, nm: &[u8]| -> Option<EntryId> {
            n.lower.and_then(|l| self.lower.index.lookup_child(l, nm))
        };
        let src_lower_had = lower_at(&pnode, name).is_some();
        let dst_lower_dir = self.lower_child_is_dir(npnode.lower, nn);
        let src_dir = src.attr.kind == FileType::Directory;
        if exchange {
            nix::fcntl::renameat2(
                old.dir.as_fd(),
                old.name.as_slice(),
                new.dir.as_fd(),
                new.name.as_slice(),
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .map_err(errno)?;
            self.upper.own.exchange(&old_rel, &new_rel)?;
            let d = dst.ok_or(Errno::EIO)?;
            let dst_dir = d.attr.kind == FileType::Directory;
            if src_dir && dst_lower_dir {
                whiteout::make_opaque(new.open_dir()?.as_fd())?;
            }
            if dst_dir && self.lower_child_is_dir(pnode.lower, name) {
                whiteout::make_opaque(old.open_dir()?.as_fd())?;
            }
            let mut nodes = self.nodes_w();
            nodes.move_name(src.ino, (parent, name), (u64::MAX, b"\0"));
            nodes.move_name(d.ino, (np, nn), (parent, name));
            nodes.move_name(src.ino, (u64::MAX, b"\0"), (np, nn));
            for i in [src.ino, d.ino] {
                if let Some(n) = nodes.get_mut(i) {
                    n.upper = true;
                    n.lower = None;
                }
            }
            return Ok(());
        }
        // Clear the target: a whiteout, or an upper object being replaced.
        whiteout::remove(new.dir.as_fd(), nn)?;
        if let Some(d) = dst
            && d.node.upper
            && d.attr.kind == FileType::RegularFile
        {
            self.keep_data(d.ino, new.dir.as_fd(), &new.name);
        }
        if let Some(d) = dst
            && d.node.upper
            && d.attr.kind == FileType::Directory
        {
            // Only markers are left in it (it is empty in the merged view).
            upper::remove_tree(new.dir.as_fd(), nn)?;
        }
        nix::fcntl::renameat(
            old.dir.as_fd(),
            old.name.as_slice(),
            new.dir.as_fd(),
            new.name.as_slice(),
        )
        .map_err(errno)?;
        self.upper.own.rename(&old_rel, &new_rel)?;
        if src_dir && dst_lower_dir {
            whiteout::make_opaque(new.open_dir()?.as_fd())?;
        }
        if src_lower_had {
            whiteout::create(self.upper.work_fd(), old.dir.as_fd(), name)?;
        }
        let mut nodes = self.nodes_w();
        if let Some(d) = dst {
            nodes.drop_name(d.ino, np, nn);
        }
        nodes.move_name(src.ino, (parent, name), (np, nn));
        if let Some(n) = nodes.get_mut(src.ino) {
            n.upper = true;
            n.lower = None;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr_inner(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> R<FileAttr> {
        if self.nodes_r().get(ino).is_some_and(|n| n.gone) {
            return self.setattr_unlinked(ino, mode, size, atime, mtime);
        }
        {
            let _g = self.names();
            self.copy_up(ino, size != Some(0))?;
        }
        let (node, rel) = self.node(ino)?;
        let at = self.upper.at(&rel)?;
        let upper_fd = self.fds.get(ino);
        if let Some(sz) = size {
            match upper_fd {
                Some(fd) => sys::ftruncate(fd.as_raw_fd(), sz)?,
                None => {
                    let f = at.open_node(OFlag::O_WRONLY)?;
                    sys::ftruncate(std::os::fd::AsRawFd::as_raw_fd(&f), sz)?
                }
            }
        }
        if mode.is_some() || uid.is_some() || gid.is_some() {
            let st = at.lstat()?;
            let xpath = at.proc();
            let mut own = self.upper.own.get(&xpath, &rel, st.st_mode).unwrap_or(Own {
                uid: st.st_uid,
                gid: st.st_gid,
                mode: st.st_mode,
                rdev: 0,
            });
            if let Some(m) = mode {
                own.mode = (own.mode & libc::S_IFMT) | (m & 0o7777);
                at.chmod(host_perm(m, st.st_mode & libc::S_IFMT == libc::S_IFDIR))?;
            }
            if let Some(u) = uid {
                own.uid = u;
            }
            if let Some(g) = gid {
                own.gid = g;
            }
            if (uid.is_some() || gid.is_some())
                && mode.is_none()
                && own.mode & libc::S_IFMT == libc::S_IFREG
            {
                // chown clears setuid, and setgid when group-executable (as the kernel does).
                own.mode &= !libc::S_ISUID;
                if own.mode & 0o010 != 0 {
                    own.mode &= !libc::S_ISGID;
                }
            }
            self.upper.own.set(&xpath, &rel, st.st_mode, own)?;
        }
        if atime.is_some() || mtime.is_some() {
            nix::sys::stat::utimensat(
                at.dir.as_fd(),
                at.name.as_slice(),
                &timespec(atime),
                &timespec(mtime),
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(errno)?;
        }
        self.attr_of(ino, &node, &rel, None)
    }

    /// Where the bytes of `ino` are: its upper file (an fd kept in `fds`, opened on
    /// first use) or its lower entry. An unlinked file is reached through the fd kept
    /// when its last name went ([`Overlay::keep_data`]), or its lower entry.
    fn data_of(&self, ino: u64) -> R<Data> {
        let (upper, gone, lower) = {
            let nodes = self.nodes_r();
            let n = nodes.get(ino).ok_or(Errno::ENOENT)?;
            (n.upper, n.gone, n.lower)
        };
        if (upper || gone)
            && let Some(fd) = self.fds.get(ino)
        {
            return Ok(Data::Upper(fd));
        }
        if !upper {
            return lower.map(Data::Lower).ok_or(Errno::ENOENT);
        }
        if gone {
            return Err(Errno::ESTALE);
        }
        let (_, rel) = self.node(ino)?;
        let at = self.upper.at(&rel)?;
        let fd = match at.open_node(OFlag::O_RDWR) {
            Ok(f) => f,
            Err(_) => at.open_node(OFlag::O_RDONLY)?,
        };
        Ok(Data::Upper(self.fds.insert(ino, fd)))
    }

    /// The upper fd a write to `ino` (through no handle) goes to: its upper file,
    /// copied up first, on this first write (overlayfs copies up on open for writing;
    /// there is no open here).
    fn write_fd(&self, ino: u64) -> R<Arc<OwnedFd>> {
        let (upper, gone) = {
            let nodes = self.nodes_r();
            let n = nodes.get(ino).ok_or(Errno::ENOENT)?;
            (n.upper, n.gone)
        };
        if !upper {
            if gone {
                if !self.fds.is_orphan(ino) {
                    return self.orphan_copy(ino);
                }
            } else {
                let _g = self.names();
                self.copy_up(ino, true)?;
            }
        }
        match self.data_of(ino)? {
            Data::Upper(fd) => Ok(fd),
            Data::Lower(_) => Err(Errno::EIO),
        }
    }

    /// A write to a lower file whose last name is gone: its bytes are copied to an
    /// unnamed file in the work dir, which serves it from now on.
    fn orphan_copy(&self, ino: u64) -> R<Arc<OwnedFd>> {
        let id = self
            .nodes_r()
            .get(ino)
            .and_then(|n| n.lower)
            .ok_or(Errno::ENOENT)?;
        let e = self.lower.get(id).ok_or(Errno::EIO)?;
        let size = e.size();
        let fd = upper::openat(
            self.upper.work_fd(),
            b".",
            OFlag::O_TMPFILE | OFlag::O_RDWR,
            host_perm(e.mode() & 0o7777, false),
        )?;
        let mut off = 0u64;
        while off < size {
            let chunk = self.lower.read(id, off, 1 << 20);
            if chunk.is_empty() {
                break;
            }
            let mut done = 0;
            while done < chunk.len() {
                done += sys::pwrite(fd.as_raw_fd(), &chunk[done..], off + done as u64)?;
            }
            off += chunk.len() as u64;
        }
        Ok(self.fds.insert_orphan(ino, fd))
    }

    /// The last name of upper file `ino` is about to go (`name` in `dir`): keep an fd,
    /// so a process that has it open goes on reading and writing it, as it would on
    /// any filesystem, until the kernel forgets the inode.
    fn keep_data(&self, ino: u64, dir: std::os::fd::BorrowedFd<'_>, name: &[u8]) {
        let last = self
            .nodes_r()
            .get(ino)
            .is_some_and(|n| n.alt.is_empty() && n.nlookup > 0);
        if last {
            self.fds.orphan(ino, || {
                upper::openat(
                    dir,
                    name,
                    OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
                    0,
                )
                .ok()
            });
        }
    }

    /// For a node whose last name is gone, the fd that keeps its data (a lower file is
    /// copied to one first): what a change to it must act on, never its old path.
    /// `None` while it has a name.
    fn unlinked_fd(&self, ino: u64) -> R<Option<Arc<OwnedFd>>> {
        if self.nodes_r().get(ino).is_some_and(|n| n.gone) {
            return Ok(Some(self.write_fd(ino)?));
        }
        Ok(None)
    }

    /// A setattr through an open file whose last name is gone (ftruncate, fchmod,
    /// futimens after unlink): applied to the fd that keeps its data (a lower file is
    /// copied to one first), never by a path, which may name another file by now.
    /// Owner changes have nowhere to be recorded and are ignored.
    fn setattr_unlinked(
        &self,
        ino: u64,
        mode: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> R<FileAttr> {
        let fd = self.unlinked_fd(ino)?.ok_or(Errno::EIO)?;
        let raw = fd.as_raw_fd();
        if let Some(sz) = size {
            sys::ftruncate(raw, sz)?;
        }
        if let Some(m) = mode {
            nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(host_perm(m, false)))
                .map_err(errno)?;
        }
        if atime.is_some() || mtime.is_some() {
            nix::sys::stat::futimens(fd.as_fd(), &timespec(atime), &timespec(mtime))
                .map_err(errno)?;
        }
        let (node, rel) = self.node(ino)?;
        self.attr_of(ino, &node, &rel, Some(raw))
    }

    fn xattr_reply(data: &[u8], size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(data.len() as u32);
        } else if (size as usize) < data.len() {
            reply.error(Errno::ERANGE);
        } else {
            reply.data(data);
        }
    }

    /// For a directory served straight from the lower index (a lower-only one): its
    /// children from directory offset `pos` (2 and up; 0 and 1 are `.` and `..`), each
    /// with the offset of the entry after it. `None` for an upper or merged directory.
    fn lower_children(
        &self,
        dir: u64,
        pos: u64,
    ) -> Option<impl Iterator<Item = (u64, crate::tarindex::Entry<'_>)>> {
        let id = match self.nodes_r().get(dir) {
            Some(n) if !n.upper => n.lower?,
            _ => return None,
        };
        let kids = self.lower.index.children(id);
        let start = kids.start as u64 + (pos - 2);
        Some(
            (start..u64::from(kids.end))
                .enumerate()
                .filter_map(move |(k, c)| {
                    let e = self.lower.get(EntryId::try_from(c).ok()?)?;
                    Some((pos + k as u64 + 1, e))
                }),
        )
    }

    /// The listing of a merged or upper directory that a readdir from directory offset
    /// `pos` continues: made afresh when reading starts (`pos` 2 or less), else the one
    /// made then, so the offsets of one pass through the directory stay stable. There
    /// is no opendir (see [`Filesystem::opendir`]): listings are kept by inode until the
    /// pass reaches the end ([`Overlay::listing_done`]) or the kernel forgets the inode.
    fn listing(&self, dir: u64, pos: u64) -> R<Arc<Vec<DirEnt>>> {
        if pos > 2
            && let Some(l) = self.dirs_map().get(&dir)
        {
            return Ok(l.clone());
        }
        let l = Arc::new(self.list(dir)?);
        self.dirs_map().insert(dir, l.clone());
        Ok(l)
    }

    /// A pass through `dir` reached its end: its listing is made again by the next one.
    fn listing_done(&self, dir: u64) {
        self.dirs_map().remove(&dir);
    }

    fn dirs_map(&self) -> MutexGuard<'_, HashMap<u64, Arc<Vec<DirEnt>>>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Filesystem for Overlay {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        let want = InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_CACHE_SYMLINKS;
        let _ = config.add_capabilities(want & config.capabilities());
        Ok(())
    }

    fn destroy(&mut self) {
        let _ = self.upper.own.save();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = check_name(name).and_then(|n| self.resolve(parent.0, n));
        match r {
            Ok(Some(f)) => {
                self.remember(&f);
                reply.entry(&self.ttl(&f.node), &self.shown(&f.attr), Generation(0));
            }
            // A negative entry: the kernel caches the absence (every later create of the
            // name goes through the kernel and replaces it). Nothing but the kernel's own
            // requests adds a name to a lower-only directory: cache that absence long.
            Ok(None) => {
                let lower_only = self.nodes_r().get(parent.0).is_some_and(|n| !n.upper);
                let ttl = if lower_only { TTL_LOWER } else { TTL_UPPER };
                reply.entry(&ttl, &negative(), Generation(0))
            }
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let gone = {
            let mut nodes = self.nodes_w();
            nodes.forget(ino.0, nlookup);
            nodes.get(ino.0).is_none()
        };
        if gone {
            self.fds.forget(ino.0);
        }
        self.listing_done(ino.0);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self
            .node(ino.0)
            .and_then(|(n, p)| Ok((self.attr_of(ino.0, &n, &p, None)?, n)));
        match r {
            Ok((a, n)) => reply.attr(&self.ttl(&n), &self.shown(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.setattr_inner(ino.0, mode, uid, gid, size, atime, mtime) {
            Ok(a) => reply.attr(&TTL_UPPER, &self.shown(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = self.node(ino.0).and_then(|(n, p)| {
            if n.upper {
                let at = self.upper.at(&p)?;
                let t =
                    nix::fcntl::readlinkat(at.dir.as_fd(), at.name.as_slice()).map_err(errno)?;
                Ok(t.into_vec())
            } else {
                let e = n
                    .lower
                    .and_then(|l| self.lower.get(l))
                    .ok_or(Errno::ENOENT)?;
                if e.kind() != Kind::Symlink {
                    return Err(Errno::EINVAL);
                }
                Ok(e.link().to_vec())
            }
        });
        match r {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = (|| -> R<Found> {
            let name = check_name(name)?;
            let fmt = mode & libc::S_IFMT;
            if (fmt == libc::S_IFCHR || fmt == libc::S_IFBLK) && rdev == 0 {
                return Err(Errno::EPERM);
            }
            let _g = self.names();
            let (at, rel, _) = self.prepare_new(parent.0, name)?;
            let perm = Mode::from_bits_truncate(host_perm(mode, false));
            let mut own = self.new_own(req, parent.0, mode)?;
            let node = |k| {
                nix::sys::stat::mknodat(at.dir.as_fd(), at.name.as_slice(), k, perm, 0)
                    .map_err(errno)
            };
            let plain = || new_file(&at, perm.bits()).map(drop);
            match fmt {
                libc::S_IFIFO => node(SFlag::S_IFIFO)?,
                libc::S_IFSOCK => node(SFlag::S_IFSOCK)?,
                libc::S_IFREG | 0 => {
                    plain()?;
                    own.mode = libc::S_IFREG | (mode & 0o7777);
                }
                libc::S_IFCHR | libc::S_IFBLK => {
                    // A plain host file; the ownership record carries type and device.
                    plain()?;
                    own.rdev = rdev;
                }
                _ => return Err(Errno::EINVAL),
            }
            self.fresh(parent.0, &at, &rel, own)
        })();
        match r {
            Ok(f) => reply.entry(&TTL_UPPER, &self.shown(&f.attr), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let r = (|| -> R<Found> {
            let name = check_name(name)?;
            let _g = self.names();
            let (at, rel, lower_dir) = self.prepare_new(parent.0, name)?;
            nix::sys::stat::mkdirat(
                at.dir.as_fd(),
                at.name.as_slice(),
                Mode::from_bits_truncate(host_perm(mode, true)),
            )
            .map_err(errno)?;
            if lower_dir {
                whiteout::make_opaque(at.open_dir()?.as_fd())?;
            }
            let own = self.new_own(req, parent.0, libc::S_IFDIR | (mode & 0o7777))?;
            self.fresh(parent.0, &at, &rel, own)
        })();
        match r {
            Ok(f) => reply.entry(&TTL_UPPER, &self.shown(&f.attr), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match check_name(name).and_then(|n| self.remove(parent.0, n, false)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match check_name(name).and_then(|n| self.remove(parent.0, n, true)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = (|| -> R<Found> {
            let name = check_name(link_name)?;
            let _g = self.names();
            let (at, rel, _) = self.prepare_new(parent.0, name)?;
            nix::unistd::symlinkat(target, at.dir.as_fd(), at.name.as_slice()).map_err(errno)?;
            let own = self.new_own(req, parent.0, libc::S_IFLNK | 0o777)?;
            self.fresh(parent.0, &at, &rel, own)
        })();
        match r {
            Ok(f) => reply.entry(&TTL_UPPER, &self.shown(&f.attr), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = check_name(name)
            .and_then(|n| Ok((n, check_name(newname)?)))
            .and_then(|(n, nn)| self.do_rename(parent.0, n, newparent.0, nn, flags));
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = (|| -> R<Found> {
            let nn = check_name(newname)?;
            let _g = self.names();
            let (at, rel, _) = self.prepare_new(newparent.0, nn)?;
            self.copy_up(ino.0, true)?;
            let (node, src_rel) = self.node(ino.0)?;
            if node.kind == FileType::Directory {
                return Err(Errno::EPERM);
            }
            let src = self.upper.at(&src_rel)?;
            nix::unistd::linkat(
                src.dir.as_fd(),
                src.name.as_slice(),
                at.dir.as_fd(),
                at.name.as_slice(),
                nix::fcntl::AtFlags::empty(),
            )
            .map_err(errno)?;
            self.upper.own.link(&src_rel, &rel)?;
            let st = at.lstat()?;
            self.nodes_w().bind_host(st.st_ino, ino.0);
            let attr = self.upper.attr(&at, &rel, &st, ino.0);
            let f = Found {
                ino: ino.0,
                node: Node {
                    parent: newparent.0,
                    name: nn.to_vec(),
                    lower: None,
                    upper: true,
                    kind: attr.kind,
                    nlookup: 0,
                    gone: false,
                    alt: Vec::new(),
                },
                attr,
            };
            self.remember(&f);
            Ok(f)
        })();
        match r {
            Ok(f) => reply.entry(&TTL_UPPER, &self.shown(&f.attr), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    /// Not implemented, on purpose: the kernel then never sends open or release for
    /// a file again (a round trip saved on every open: tar, a compiler, a container's
    /// start read thousands of files), keeps their pages cached across opens
    /// (`FOPEN_KEEP_CACHE`, all changes go through this mount) and names the inode in
    /// each read and write. A lower file is copied up on its first write, chmod,
    /// chown or xattr change; O_TRUNC comes as a setattr (no `FUSE_ATOMIC_O_TRUNC`).
    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = (|| -> R<(Found, u64)> {
            let name = check_name(name)?;
            let _g = self.names();
            let (at, rel, _) = self.prepare_new(parent.0, name)?;
            let _ = flags;
            let file = new_file(&at, host_perm(mode, false))?;
            let own = self.new_own(req, parent.0, libc::S_IFREG | (mode & 0o7777))?;
            let f = self.fresh(parent.0, &at, &rel, own)?;
            // No handle (the kernel sends no release once open is not implemented):
            // the new file's fd serves its reads and writes by inode.
            self.fds.insert(f.ino, file);
            Ok((f, 0))
        })();
        match r {
            Ok((f, fh)) => reply.created(
                &TTL_UPPER,
                &self.shown(&f.attr),
                Generation(0),
                FileHandle(fh),
                OPEN_FLAGS,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.data_of(ino.0) {
            Ok(Data::Lower(id)) => reply.data(self.lower.read(id, offset, size)),
            Ok(Data::Upper(fd)) => read_upper(fd.as_raw_fd(), offset, size, reply),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let kept = match self.write_fd(ino.0) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let fd = kept.as_raw_fd();
        let mut done = 0usize;
        while done < data.len() {
            match sys::pwrite(fd, &data[done..], offset + done as u64) {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return reply.error(e.into()),
            }
        }
        reply.written(done as u32);
    }

    /// Not implemented, on purpose (a close has nothing to report: data goes to the
    /// host file on each write, locks are the kernel's own): the kernel then never
    /// sends it again; [`OPEN_FLAGS`] already asks it not to.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.data_of(ino.0).and_then(|d| match d {
            Data::Upper(fd) => Ok(sys::fsync(fd.as_raw_fd(), datasync)?),
            Data::Lower(_) => Ok(()),
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// Not implemented, on purpose: the kernel then never sends opendir or releasedir
    /// again (two round trips saved per directory opened) and caches every directory's
    /// listing (`FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE`), dropping it itself whenever a
    /// name changes through this mount. Readdir finds the directory by its inode.
    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let parent = self.nodes_r().get(ino.0).map_or(ROOT, |n| n.parent);
        let mut pos = offset;
        if pos == 0 {
            if reply.add(ino, 1, FileType::Directory, ".") {
                return reply.ok();
            }
            pos = 1;
        }
        if pos == 1 {
            if reply.add(INodeNo(parent), 2, FileType::Directory, "..") {
                return reply.ok();
            }
            pos = 2;
        }
        if let Some(kids) = self.lower_children(ino.0, pos) {
            for (next, e) in kids {
                if reply.add(
                    INodeNo(ino_of(&e)),
                    next,
                    lower::file_type(e.kind()),
                    OsStr::from_bytes(e.name()),
                ) {
                    break;
                }
            }
            return reply.ok();
        }
        let list = match self.listing(ino.0, pos) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let mut full = false;
        for (k, d) in list.iter().enumerate().skip((pos - 2) as usize) {
            if reply.add(
                INodeNo(d.ino),
                k as u64 + 3,
                d.kind,
                OsStr::from_bytes(&d.name),
            ) {
                full = true;
                break;
            }
        }
        if !full {
            self.listing_done(ino.0);
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let me = match self.node(ino.0) {
            Ok((n, p)) => match self.attr_of(ino.0, &n, &p, None) {
                Ok(a) => (n, a),
                Err(e) => return reply.error(e),
            },
            Err(e) => return reply.error(e),
        };
        let (node, attr) = me;
        let ttl = self.ttl(&node);
        let mut pos = offset;
        if pos == 0 {
            if reply.add(ino, 1, ".", &ttl, &self.shown(&attr), Generation(0)) {
                return reply.ok();
            }
            pos = 1;
        }
        if pos == 1 {
            let mut pa = attr;
            pa.ino = INodeNo(node.parent);
            if reply.add(
                INodeNo(node.parent),
                2,
                "..",
                &ttl,
                &self.shown(&pa),
                Generation(0),
            ) {
                return reply.ok();
            }
            pos = 2;
        }
        if let Some(kids) = self.lower_children(ino.0, pos) {
            for (next, e) in kids {
                let cino = ino_of(&e);
                let a = lower::attr(&e, cino);
                if reply.add(
                    INodeNo(cino),
                    next,
                    OsStr::from_bytes(e.name()),
                    &TTL_LOWER,
                    &self.shown(&a),
                    Generation(0),
                ) {
                    break;
                }
                self.nodes_w().looked_up(
                    cino,
                    Node {
                        parent: ino.0,
                        name: e.name().to_vec(),
                        lower: Some(e.id()),
                        upper: false,
                        kind: a.kind,
                        nlookup: 0,
                        gone: false,
                        alt: Vec::new(),
                    },
                );
            }
            return reply.ok();
        }
        let list = match self.listing(ino.0, pos) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let mut full = false;
        for (k, d) in list.iter().enumerate().skip((pos - 2) as usize) {
            let Ok(Some(f)) = self.resolve(ino.0, &d.name) else {
                continue;
            };
            let ttl = self.ttl(&f.node);
            if reply.add(
                INodeNo(f.ino),
                k as u64 + 3,
                OsStr::from_bytes(&d.name),
                &ttl,
                &self.shown(&f.attr),
                Generation(0),
            ) {
                full = true;
                break;
            }
            self.remember(&f);
        }
        if !full {
            self.listing_done(ino.0);
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match nix::sys::statvfs::fstatvfs(self.upper.root_fd()) {
            Ok(s) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                s.block_size() as u32,
                NAME_MAX as u32,
                s.fragment_size() as u32,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let r = (|| -> R<()> {
            let n = name.as_bytes();
            if n.starts_with(PRIVATE_PREFIX) {
                return Err(Errno::EPERM);
            }
            if unsupported_xattr(n) {
                return Err(Errno::EOPNOTSUPP);
            }
            if let Some(fd) = self.unlinked_fd(ino.0)? {
                return Ok(sys::fsetxattr(fd.as_raw_fd(), n, value, flags)?);
            }
            {
                let _g = self.names();
                self.copy_up(ino.0, true)?;
            }
            let (_, rel) = self.node(ino.0)?;
            sys::lsetxattr(&self.upper.at(&rel)?.proc(), n, value, flags)?;
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let n = name.as_bytes();
        if n.starts_with(PRIVATE_PREFIX) {
            return reply.error(Errno::ENODATA);
        }
        if unsupported_xattr(n) {
            return reply.error(Errno::EOPNOTSUPP);
        }
        // A lower node needs no path: answered under the read lock, no allocation but the
        // value (writes ask security.capability).
        let lower = {
            let nodes = self.nodes_r();
            match nodes.get(ino.0) {
                Some(node) if !node.upper => Some(node.lower),
                Some(_) => None,
                None => return reply.error(Errno::ENOENT),
            }
        };
        if let Some(l) = lower {
            let e = l.and_then(|l| self.lower.get(l));
            let v = e
                .as_ref()
                .map(|e| e.xattrs().find(|(k, _)| *k == n).map(|(_, v)| v));
            return match v {
                None => reply.error(Errno::ENOENT),
                Some(None) => reply.error(Errno::ENODATA),
                Some(Some(v)) => Self::xattr_reply(v, size, reply),
            };
        }
        // An upper file with a kept fd (one just created, or read or written: writes ask
        // security.capability) is asked through it, without resolving its path.
        if let Some(fd) = self.fds.get(ino.0) {
            return match sys::fgetxattr(fd.as_raw_fd(), n) {
                Ok(v) => Self::xattr_reply(&v, size, reply),
                Err(e) => reply.error(e.into()),
            };
        }
        let r = self.node(ino.0).and_then(|(node, rel)| {
            if node.upper {
                Ok(sys::lgetxattr(&self.upper.at(&rel)?.proc(), n)?)
            } else {
                let e = node
                    .lower
                    .and_then(|l| self.lower.get(l))
                    .ok_or(Errno::ENOENT)?;
                let v = e.xattrs().find(|(k, _)| *k == n).map(|(_, v)| v.to_vec());
                v.ok_or(Errno::ENODATA)
            }
        });
        match r {
            Ok(v) => Self::xattr_reply(&v, size, reply),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let r = self.node(ino.0).and_then(|(node, rel)| {
            let mut out = Vec::new();
            if node.upper {
                let all = sys::llistxattr(&self.upper.at(&rel)?.proc())?;
                for k in all.split(|&b| b == 0).filter(|k| !k.is_empty()) {
                    if !k.starts_with(PRIVATE_PREFIX) && !unsupported_xattr(k) {
                        out.extend_from_slice(k);
                        out.push(0);
                    }
                }
            } else {
                let e = node
                    .lower
                    .and_then(|l| self.lower.get(l))
                    .ok_or(Errno::ENOENT)?;
                for (k, _) in e.xattrs().filter(|(k, _)| !unsupported_xattr(k)) {
                    out.extend_from_slice(k);
                    out.push(0);
                }
            }
            Ok(out)
        });
        match r {
            Ok(v) => Self::xattr_reply(&v, size, reply),
            Err(e) => reply.error(e),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| -> R<()> {
            let n = name.as_bytes();
            if n.starts_with(PRIVATE_PREFIX) {
                return Err(Errno::ENODATA);
            }
            if unsupported_xattr(n) {
                return Err(Errno::EOPNOTSUPP);
            }
            let (node, _) = self.node(ino.0)?;
            if !node.upper {
                let e = node
                    .lower
                    .and_then(|l| self.lower.get(l))
                    .ok_or(Errno::ENOENT)?;
                if !e.xattrs().any(|(k, _)| k == n) {
                    return Err(Errno::ENODATA);
                }
            }
            if let Some(fd) = self.unlinked_fd(ino.0)? {
                return Ok(sys::fremovexattr(fd.as_raw_fd(), n)?);
            }
            {
                let _g = self.names();
                self.copy_up(ino.0, true)?;
            }
            let (_, rel) = self.node(ino.0)?;
            sys::lremovexattr(&self.upper.at(&rel)?.proc(), n)?;
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        match self.node(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = self
            .write_fd(ino.0)
            .and_then(|fd| Ok(sys::fallocate(fd.as_raw_fd(), mode, offset, length)?));
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let data = match self.data_of(ino.0) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        let fd = match data {
            Data::Upper(fd) => fd,
            Data::Lower(id) => {
                let size = self.lower.get(id).map_or(0, |e| e.size()) as i64;
                // A lower file is all data: one extent, then the hole at EOF.
                return match whence {
                    libc::SEEK_DATA if offset < size => reply.offset(offset),
                    libc::SEEK_HOLE if offset < size => reply.offset(size),
                    libc::SEEK_DATA | libc::SEEK_HOLE => reply.error(Errno::ENXIO),
                    _ => reply.error(Errno::EINVAL),
                };
            }
        };
        match sys::lseek(fd.as_raw_fd(), offset, whence) {
            Ok(o) => reply.offset(o),
            Err(e) => reply.error(e.into()),
        }
    }
}
