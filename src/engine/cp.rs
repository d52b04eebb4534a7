//! `cp`: files and directories between a container and the host, both ways, with docker's
//! rules for the destination (`/` and `/.` endings, existing or missing paths) and tar
//! streams for `-`.
//!
//! The container side runs in a forked child that joined the container's user namespace
//! (the kernel admits only that namespace to a running container's mount; a stopped
//! container is served by a mount server for the copy, with its volumes and binds mounted
//! where the container has them, so a volume's path reaches the volume as docker's does).
//! Every container path is resolved
//! by the kernel with `openat2(RESOLVE_IN_ROOT)` from an fd of the container's root, and
//! walked below with `O_NOFOLLOW` opens relative to directory fds, so no component ever
//! leads out: a symlink in the container is copied as a symlink. The two sides talk over
//! two pipes: a line each way to agree on names ([`plan`]), then a tar stream. Ownership:
//! files copied out belong to the invoking user, files copied in to the container's root,
//! unless `-a` keeps the ids of the tar.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};

use super::fsops::{FsopsError, Mounted};
use super::{Engine, EngineError};
use crate::layer;
use crate::runtime::mountsrv;

/// One side of `cp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpPath {
    /// `-`: a tar stream on stdin (source) or stdout (destination).
    Stream,
    Host(String),
    Container {
        container: String,
        path: String,
    },
}

impl CpPath {
    /// docker's reading: `NAME:PATH` is a container path when NAME is non-empty and has
    /// no `/` (write `./a:b` for a host file named `a:b`).
    pub fn parse(arg: &str) -> CpPath {
        if arg == "-" {
            return CpPath::Stream;
        }
        match arg.split_once(':') {
            Some((c, p)) if !c.is_empty() && !c.contains('/') => CpPath::Container {
                container: c.to_string(),
                path: p.to_string(),
            },
            _ => CpPath::Host(arg.to_string()),
        }
    }
}

/// `cp` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpRequest {
    pub src: CpPath,
    pub dst: CpPath,
    /// `-a`: keep the uid/gid of the source.
    pub archive: bool,
    /// `-L`: follow a symlink that SRC itself is.
    pub follow: bool,
}

/// Why a copy failed (docker's messages where docker has one).
#[derive(Debug, thiserror::Error)]
pub enum CpError {
    #[error("copying between containers is not supported")]
    BothContainers,
    #[error("must specify at least one container source")]
    NoContainer,
    #[error("Could not find the file {path} in container {container}")]
    NotFoundIn { path: String, container: String },
    #[error("{what}: {why}")]
    Refused { what: String, why: String },
    #[error("copying {what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("copying {what}: {source}")]
    Layer {
        what: String,
        source: layer::LayerError,
    },
    #[error("copying: the helper in the container's user namespace failed: {0}")]
    Helper(String),
}

/// What a source is, as [`plan`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrcKind {
    Dir,
    /// Anything else: a file, a symlink (copied as one), a device node.
    NonDir,
}

/// What the destination path is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DstState {
    Dir,
    NonDir,
    /// Missing, its parent a directory.
    Missing,
    /// Missing, and so is its parent (or the parent is not a directory).
    NoParent,
}

/// docker's rules: where the tar is extracted (a directory on the destination side) and
/// the name the source gets in it (`.`: the contents of a source directory). `src_path`
/// and `dst_path` as typed (their `/` and `/.` endings matter).
pub fn plan(
    src_path: &str,
    src: SrcKind,
    dst_path: &str,
    dst: DstState,
) -> Result<(String, String), String> {
    let contents =
        src_path.ends_with("/.") || src_path == "." || src_path.trim_matches('/').is_empty();
    let base = base_name(src_path);
    let (parent, name) = split_parent(dst_path);
    match (dst, src) {
        (DstState::Dir, SrcKind::Dir) if contents => Ok((dst_path.to_string(), ".".into())),
        (DstState::Dir, _) => Ok((dst_path.to_string(), base)),
        (DstState::NonDir, SrcKind::Dir) => Err(format!(
            "cannot copy a directory to a file: {dst_path} is not a directory"
        )),
        (DstState::NonDir, SrcKind::NonDir) if dst_path.ends_with('/') => {
            Err(format!("{dst_path} is not a directory"))
        }
        (DstState::NonDir, SrcKind::NonDir) => Ok((parent, name)),
        (DstState::Missing, SrcKind::NonDir) if dst_path.ends_with('/') => {
            Err(format!("the destination directory must exist: {dst_path}"))
        }
        (DstState::Missing, _) => Ok((parent, name)),
        (DstState::NoParent, _) => Err(format!(
            "the destination directory must exist: {}",
            if parent.is_empty() { "." } else { &parent }
        )),
    }
}

/// The last name of a path as typed, `/` and `/.` endings dropped (`.` for the root).
fn base_name(p: &str) -> String {
    let t = p.trim_end_matches("/.").trim_end_matches('/');
    match t.rsplit('/').next() {
        Some(n) if !n.is_empty() && n != "." && n != ".." => n.to_string(),
        _ => ".".into(),
    }
}

/// `a/b/c` -> (`a/b`, `c`); `c` -> (`.`, `c`); `/c` -> (`/`, `c`).
fn split_parent(p: &str) -> (String, String) {
    let t = p.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some(("", n)) => ("/".into(), n.into()),
        Some((d, n)) => (d.into(), n.into()),
        None => (".".into(), t.into()),
    }
}

// ---------------------------------------------------------------------------------------
// Resolving paths on one side

/// Where paths are resolved: inside a container root (every path, `..` and absolute
/// symlinks included, stays in it), or on the host as the user typed them.
enum Root {
    Container(OwnedFd),
    Host,
}

impl Root {
    fn open(&self, path: &str, flags: OFlag, follow_last: bool) -> Result<OwnedFd, Errno> {
        let path = if path.is_empty() { "." } else { path };
        let mut flags = flags | OFlag::O_CLOEXEC;
        if !follow_last {
            flags |= OFlag::O_NOFOLLOW;
        }
        match self {
            Root::Container(fd) => openat2(
                fd,
                path,
                OpenHow::new()
                    .flags(flags)
                    .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS),
            ),
            Root::Host => openat(AT_FDCWD, path, flags, Mode::empty()),
        }
    }

    /// The item at `path` as an `O_PATH` fd (its last component followed only when
    /// `follow_last`), with its stat.
    fn item(&self, path: &str, follow_last: bool) -> Result<(OwnedFd, FileStat), Errno> {
        let fd = self.open(path, OFlag::O_PATH, follow_last)?;
        let st = fstatat(
            &fd,
            "",
            AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        Ok((fd, st))
    }

    fn dst_state(&self, path: &str) -> DstState {
        match self.item(path, true) {
            Ok((_, st)) if is_dir(&st) => DstState::Dir,
            Ok(_) => DstState::NonDir,
            Err(_) => {
                let (parent, _) = split_parent(path);
                match self.item(&parent, true) {
                    Ok((_, st)) if is_dir(&st) => DstState::Missing,
                    _ => DstState::NoParent,
                }
            }
        }
    }
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// Stats the source: its kind, or why it cannot be copied.
fn src_kind(root: &Root, path: &str, follow: bool) -> Result<SrcKind, String> {
    let (_, st) = root.item(path, follow).map_err(|e| match e {
        Errno::ENOENT => "ENOENT".to_string(),
        e => io::Error::from(e).to_string(),
    })?;
    let dir = is_dir(&st);
    if !dir && (path.ends_with('/') || path.ends_with("/.")) {
        return Err(io::Error::from(Errno::ENOTDIR).to_string());
    }
    Ok(if dir { SrcKind::Dir } else { SrcKind::NonDir })
}

// ---------------------------------------------------------------------------------------
// The tar of a source, walked by fds

struct TarWriter<W: Write> {
    tar: tar::Builder<W>,
    links: std::collections::HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> TarWriter<W> {
    fn header(st: &FileStat, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        h.set_size(0);
        h
    }

    /// Writes `name` (in directory `dir`, stat `st`) as `tar_path`, and what is below it.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        st: &FileStat,
        tar_path: &Path,
    ) -> io::Result<()> {
        let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let skip_top = tar_path == Path::new(".");
        match fmt {
            SFlag::S_IFDIR => {
                let fd = openat(
                    dir,
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                if !skip_top {
                    let mut h = Self::header(st, tar::EntryType::Directory);
                    self.tar.append_data(&mut h, tar_path, io::empty())?;
                }
                self.dir_contents(fd, tar_path, skip_top)
            }
            SFlag::S_IFREG => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        let mut h = Self::header(st, tar::EntryType::Link);
                        return self.tar.append_link(&mut h, tar_path, first);
                    }
                    self.links.insert(key, tar_path.to_path_buf());
                }
                let fd = openat(
                    dir,
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                let size = u64::try_from(st.st_size).unwrap_or(0);
                let mut h = Self::header(st, tar::EntryType::Regular);
                h.set_size(size);
                let mut data = File::from(fd).take(size);
                let mut counted = Counted(&mut data, 0);
                self.tar.append_data(&mut h, tar_path, &mut counted)?;
                if counted.1 != size {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} shrank while being copied", tar_path.display()),
                    ));
                }
                Ok(())
            }
            SFlag::S_IFLNK => {
                let target = readlinkat(dir, name)?;
                let mut h = Self::header(st, tar::EntryType::Symlink);
                self.tar.append_link(&mut h, tar_path, Path::new(&target))
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO => {
                let mut h = Self::header(
                    st,
                    match fmt {
                        SFlag::S_IFCHR => tar::EntryType::Char,
                        SFlag::S_IFBLK => tar::EntryType::Block,
                        _ => tar::EntryType::Fifo,
                    },
                );
                let rdev = st.st_rdev;
                h.set_device_major(nix::sys::stat::major(rdev) as u32)?;
                h.set_device_minor(nix::sys::stat::minor(rdev) as u32)?;
                self.tar.append_data(&mut h, tar_path, io::empty())
            }
            _ => Ok(()), // sockets are not copied (docker skips them too)
        }
    }

    fn dir_contents(&mut self, fd: OwnedFd, tar_path: &Path, top: bool) -> io::Result<()> {
        let dup = fd.try_clone()?;
        let mut names: Vec<std::ffi::OsString> = nix::dir::Dir::from_fd(dup)?
            .into_iter()
            .filter_map(|e| e.ok())
            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        for n in names {
            let st = fstatat(&fd, n.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
            let child = if top {
                PathBuf::from(&n)
            } else {
                tar_path.join(&n)
            };
            self.entry(fd.as_fd(), &n, &st, &child)?;
        }
        Ok(())
    }
}

struct Counted<R>(R, u64);

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}

/// Writes the tar of the source at `path` (its own name in the tar: `top`; `.` for only
/// the contents of a directory) to `out`. With `follow`, a symlink that the source itself
/// is gets followed (inside the root), else it is copied as a symlink.
fn write_tar(root: &Root, path: &str, follow: bool, top: &str, out: impl Write) -> io::Result<()> {
    let path = if follow {
        resolve_links(root, path)?
    } else {
        path.to_string()
    };
    let (fd, st) = root.item(&path, false)?;
    let mut w = TarWriter {
        tar: tar::Builder::new(out),
        links: Default::default(),
    };
    if is_dir(&st) {
        w.entry(fd.as_fd(), OsStr::new("."), &st, Path::new(top))?;
    } else {
        let (parent, name) = split_parent(&path);
        let parent = root.open(&parent, OFlag::O_PATH | OFlag::O_DIRECTORY, true)?;
        w.entry(parent.as_fd(), OsStr::new(&name), &st, Path::new(top))?;
    }
    w.tar.into_inner()?.flush()
}

/// `path` with the symlinks that its last component is replaced by their targets, each
/// read as a path inside the root (40 at most, as the kernel allows).
fn resolve_links(root: &Root, path: &str) -> io::Result<String> {
    let mut path = path.to_string();
    for _ in 0..40 {
        let (_, st) = root.item(&path, false)?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
            return Ok(path);
        }
        let (parent, name) = split_parent(&path);
        let dir = root.open(&parent, OFlag::O_PATH | OFlag::O_DIRECTORY, true)?;
        let target = readlinkat(&dir, name.as_str())?;
        let target = target.to_string_lossy();
        path = if target.starts_with('/') {
            target.into_owned()
        } else {
            format!("{}/{target}", parent.trim_end_matches('/'))
        };
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// Extracts the tar on `input` into the directory `dir` (resolved in `root`); with
/// `keep_ids`, each entry gets the tar's uid/gid.
fn extract_into(root: &Root, dir: &str, input: impl Read, keep_ids: bool) -> Result<(), String> {
    let fd = root
        .open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, true)
        .map_err(|e| format!("{dir}: {e}"))?;
    let dest = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let inner = Root::Container(fd.try_clone().map_err(|e| format!("{dir}: {e}"))?);
    let mut chown_err: Option<String> = None;
    let mut on_entry = |p: &[u8], e: &crate::tarindex::NewEntry| {
        if !keep_ids || chown_err.is_some() {
            return;
        }
        let p = String::from_utf8_lossy(p).into_owned();
        let res = inner.item(&p, false).and_then(|(f, _)| {
            nix::unistd::fchownat(
                &f,
                "",
                Some(e.uid.into()),
                Some(e.gid.into()),
                AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
            )
        });
        if let Err(err) = res {
            chown_err = Some(format!(
                "keeping the owner {}:{} of {p}: {err}",
                e.uid, e.gid
            ));
        }
    };
    layer::extract(input, &dest, &mut on_entry).map_err(|e| e.to_string())?;
    match chown_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// The two sides

fn pipe() -> io::Result<(File, File)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((File::from(r), File::from(w)))
}

fn line(r: &mut impl BufRead) -> String {
    let mut s = String::new();
    let _ = r.read_line(&mut s);
    s.trim_end_matches('\n').to_string()
}

/// Opens the container root in the joined namespace.
fn container_root(root_path: &Path) -> Result<Root, String> {
    openat(
        AT_FDCWD,
        root_path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(Root::Container)
    .map_err(|e| format!("opening the container's root {}: {e}", root_path.display()))
}

impl Engine {
    /// `cp SRC DST`: one side in a container, the other a host path or `-`.
    pub fn copy(&self, req: &CpRequest) -> Result<(), EngineError> {
        let (word, ctr_path, out) = match (&req.src, &req.dst) {
            (CpPath::Container { .. }, CpPath::Container { .. }) => {
                return Err(FsopsError::Cp(CpError::BothContainers).into());
            }
            (CpPath::Container { container, path }, _) => (container, path, true),
            (_, CpPath::Container { container, path }) => (container, path, false),
            _ => return Err(FsopsError::Cp(CpError::NoContainer).into()),
        };
        let (records, c) = self.find(word)?;
        let dir = self.paths.mount_dir(&c.record.id);
        let had_server = mountsrv::server_pid(&dir).is_some();
        let mounted = self.mount_found(&records, &c)?;
        let (pid, root_path) = match &mounted {
            Mounted::Server { path, pid } | Mounted::Running { path, pid } => (*pid, path.clone()),
        };
        let ctr_path = if ctr_path.starts_with('/') {
            ctr_path.clone()
        } else {
            format!("/{ctr_path}")
        };
        let res = if out {
            self.copy_out(pid, &root_path, word, &ctr_path, &req.dst, req)
        } else {
            self.copy_in(pid, &root_path, word, &ctr_path, &req.src, req)
        };
        if matches!(mounted, Mounted::Server { .. }) && !had_server {
            self.stop_mount_server(&c.record.id);
        }
        res.map_err(|e| FsopsError::Cp(e).into())
    }

    fn copy_out(
        &self,
        pid: i32,
        root_path: &Path,
        container: &str,
        src: &str,
        dst: &CpPath,
        req: &CpRequest,
    ) -> Result<(), CpError> {
        let io_err = |source| CpError::Io {
            what: format!("{container}:{src}"),
            source,
        };
        let (a_r, a_w) = pipe().map_err(io_err)?;
        let (b_r, b_w) = pipe().map_err(io_err)?;
        let follow = req.follow;
        let inside = move || -> i32 {
            let mut a_w = a_w;
            let mut b = BufReader::new(b_r);
            let root = match container_root(root_path) {
                Ok(r) => r,
                Err(e) => {
                    let _ = writeln!(a_w, "E {e}");
                    return 1;
                }
            };
            match src_kind(&root, src, follow) {
                Ok(SrcKind::Dir) => {
                    let _ = writeln!(a_w, "dir");
                }
                Ok(SrcKind::NonDir) => {
                    let _ = writeln!(a_w, "nondir");
                }
                Err(e) => {
                    let _ = writeln!(a_w, "E {e}");
                    return 1;
                }
            }
            let top = line(&mut b);
            if top.is_empty() {
                return 1;
            }
            match write_tar(&root, src, follow, &top, io::BufWriter::new(&mut a_w)) {
                Ok(()) => 0,
                Err(_) => 1,
            }
        };
        let keep_ids = req.archive;
        let beside = move || -> Result<(), CpError> {
            let mut a = BufReader::new(a_r);
            let mut b_w = b_w;
            let first = line(&mut a);
            let kind = match first.as_str() {
                "dir" => SrcKind::Dir,
                "nondir" => SrcKind::NonDir,
                e => {
                    let why = e.strip_prefix("E ").unwrap_or("the helper ended early");
                    return Err(if why == "ENOENT" {
                        CpError::NotFoundIn {
                            path: src.to_string(),
                            container: container.to_string(),
                        }
                    } else {
                        CpError::Refused {
                            what: format!("{container}:{src}"),
                            why: why.to_string(),
                        }
                    });
                }
            };
            let (dir, top) = match dst {
                CpPath::Stream | CpPath::Container { .. } => (String::new(), base_name(src)),
                CpPath::Host(d) => {
                    plan(src, kind, d, Root::Host.dst_state(d)).map_err(|why| CpError::Refused {
                        what: d.clone(),
                        why,
                    })?
                }
            };
            writeln!(b_w, "{top}").map_err(|source| CpError::Io {
                what: format!("{container}:{src}"),
                source,
            })?;
            drop(b_w);
            match dst {
                CpPath::Host(_) => {
                    extract_into(&Root::Host, &dir, a, keep_ids).map_err(|why| CpError::Refused {
                        what: dir.clone(),
                        why,
                    })
                }
                _ => io::copy(&mut a, &mut io::stdout().lock())
                    .map(drop)
                    .map_err(|source| CpError::Io {
                        what: "to stdout".into(),
                        source,
                    }),
            }
        };
        let (code, res) = mountsrv::in_userns_of(pid, inside, beside)
            .map_err(|e| CpError::Helper(e.to_string()))?;
        res?;
        if code != 0 {
            return Err(CpError::Helper(format!("it exited with {code}")));
        }
        Ok(())
    }

    fn copy_in(
        &self,
        pid: i32,
        root_path: &Path,
        container: &str,
        dst: &str,
        src: &CpPath,
        req: &CpRequest,
    ) -> Result<(), CpError> {
        let io_err = |source| CpError::Io {
            what: format!("{container}:{dst}"),
            source,
        };
        let src_kind_host = match src {
            CpPath::Host(p) => Some(src_kind(&Root::Host, p, req.follow).map_err(|why| {
                if why == "ENOENT" {
                    CpError::Refused {
                        what: p.clone(),
                        why: "no such file or directory".into(),
                    }
                } else {
                    CpError::Refused {
                        what: p.clone(),
                        why,
                    }
                }
            })?),
            _ => None,
        };
        let (a_r, a_w) = pipe().map_err(io_err)?;
        let (b_r, b_w) = pipe().map_err(io_err)?;
        let keep_ids = req.archive;
        let inside = move || -> i32 {
            let mut a_w = a_w;
            let mut b = BufReader::new(b_r);
            let root = match container_root(root_path) {
                Ok(r) => r,
                Err(e) => {
                    let _ = writeln!(a_w, "E {e}");
                    return 1;
                }
            };
            let state = match root.dst_state(dst) {
                DstState::Dir => "dir",
                DstState::NonDir => "nondir",
                DstState::Missing => "missing",
                DstState::NoParent => "noparent",
            };
            let _ = writeln!(a_w, "{state}");
            let dir = line(&mut b);
            if dir.is_empty() {
                return 1;
            }
            match extract_into(&root, &dir, &mut b, keep_ids) {
                Ok(()) => {
                    let _ = writeln!(a_w, "ok");
                    0
                }
                Err(e) => {
                    let _ = writeln!(a_w, "E {e}");
                    1
                }
            }
        };
        let follow = req.follow;
        let beside = move || -> Result<(), CpError> {
            let mut a = BufReader::new(a_r);
            let mut b_w = b_w;
            let refused = |why: String| CpError::Refused {
                what: format!("{container}:{dst}"),
                why,
            };
            let state = match line(&mut a).as_str() {
                "dir" => DstState::Dir,
                "nondir" => DstState::NonDir,
                "missing" => DstState::Missing,
                "noparent" => DstState::NoParent,
                e => {
                    return Err(refused(
                        e.strip_prefix("E ")
                            .unwrap_or("the helper ended early")
                            .into(),
                    ));
                }
            };
            let werr = |source| CpError::Io {
                what: format!("{container}:{dst}"),
                source,
            };
            let sent = match (src, src_kind_host) {
                (CpPath::Host(p), Some(kind)) => {
                    let (dir, top) = plan(p, kind, dst, state).map_err(refused)?;
                    writeln!(b_w, "{dir}").map_err(werr)?;
                    write_tar(&Root::Host, p, follow, &top, io::BufWriter::new(&mut b_w))
                }
                _ => {
                    if state != DstState::Dir {
                        return Err(refused("destination must be a directory".into()));
                    }
                    writeln!(b_w, "{dst}").map_err(werr)?;
                    io::copy(&mut io::stdin().lock(), &mut b_w).map(drop)
                }
            };
            drop(b_w);
            let status = line(&mut a);
            if let Some(e) = status.strip_prefix("E ") {
                return Err(refused(e.to_string()));
            }
            sent.map_err(|source| CpError::Io {
                what: match src {
                    CpPath::Host(p) => p.clone(),
                    _ => "stdin".into(),
                },
                source,
            })?;
            if status != "ok" {
                return Err(refused("the helper ended early".into()));
            }
            Ok(())
        };
        let (code, res) = mountsrv::in_userns_of(pid, inside, beside)
            .map_err(|e| CpError::Helper(e.to_string()))?;
        res?;
        if code != 0 {
            return Err(CpError::Helper(format!("it exited with {code}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_read_as_docker_reads_them() {
        assert_eq!(
            CpPath::parse("c1:/etc/x"),
            CpPath::Container {
                container: "c1".into(),
                path: "/etc/x".into()
            }
        );
        assert_eq!(CpPath::parse("./a:b"), CpPath::Host("./a:b".into()));
        assert_eq!(CpPath::parse("/tmp/a:b"), CpPath::Host("/tmp/a:b".into()));
        assert_eq!(CpPath::parse("-"), CpPath::Stream);
        assert_eq!(CpPath::parse("plain"), CpPath::Host("plain".into()));
    }

    #[test]
    fn destinations_follow_docker_s_rules() {
        use DstState::{Dir as D, Missing, NoParent, NonDir as ND};
        use SrcKind::{Dir as SD, NonDir as SF};
        let p = |s, k, d, st| plan(s, k, d, st);
        // a file
        assert_eq!(
            p("/etc/hosts", SF, "out", Missing),
            Ok((".".into(), "out".into()))
        );
        assert!(
            p("/etc/hosts", SF, "out/", Missing)
                .unwrap_err()
                .contains("must exist")
        );
        assert_eq!(
            p("/etc/hosts", SF, "/x/f", ND),
            Ok(("/x".into(), "f".into()))
        );
        assert_eq!(
            p("/etc/hosts", SF, "/x", D),
            Ok(("/x".into(), "hosts".into()))
        );
        assert!(p("/etc/hosts", SF, "/x/f/", ND).is_err());
        assert!(
            p("/etc/hosts", SF, "/no/f", NoParent)
                .unwrap_err()
                .contains("/no")
        );
        // a directory
        assert_eq!(
            p("/etc", SD, "/x/new", Missing),
            Ok(("/x".into(), "new".into()))
        );
        assert_eq!(
            p("/etc", SD, "/x/new/", Missing),
            Ok(("/x".into(), "new".into()))
        );
        assert!(
            p("/etc", SD, "/x/f", ND)
                .unwrap_err()
                .contains("directory to a file")
        );
        assert_eq!(p("/etc", SD, "/x", D), Ok(("/x".into(), "etc".into())));
        assert_eq!(p("/etc/", SD, "/x", D), Ok(("/x".into(), "etc".into())));
        assert_eq!(p("/etc/.", SD, "/x", D), Ok(("/x".into(), ".".into())));
        assert_eq!(p("/", SD, "/x", D), Ok(("/x".into(), ".".into())));
    }

    #[test]
    fn a_source_walk_never_leaves_the_root_and_keeps_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc/sub")).unwrap();
        std::fs::create_dir_all(d.path().join("outside")).unwrap();
        std::fs::write(d.path().join("outside/secret"), b"host").unwrap();
        std::fs::write(root.join("etc/sub/f"), b"in").unwrap();
        std::os::unix::fs::symlink("/outside/secret", root.join("etc/shadowlink")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("etc/up")).unwrap();
        let r = Root::Container(
            openat(
                AT_FDCWD,
                &root,
                OFlag::O_PATH | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .unwrap(),
        );
        // `..` and absolute links resolve inside the root: /etc/up/etc is /etc
        assert_eq!(src_kind(&r, "/etc/up/etc/sub", false), Ok(SrcKind::Dir));
        assert_eq!(
            src_kind(&r, "/outside/secret", false).unwrap_err(),
            "ENOENT"
        );
        // -L on a link to a host path resolves inside the root: nothing there
        assert_eq!(src_kind(&r, "/etc/shadowlink", true).unwrap_err(), "ENOENT");
        let mut tar = Vec::new();
        write_tar(&r, "/etc", false, "etc", &mut tar).unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let kind = e.header().entry_type();
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            seen.push((e.path().unwrap().display().to_string(), kind, link));
        }
        assert_eq!(
            seen,
            [
                ("etc".to_string(), tar::EntryType::Directory, None),
                (
                    "etc/shadowlink".into(),
                    tar::EntryType::Symlink,
                    Some("/outside/secret".into())
                ),
                ("etc/sub".into(), tar::EntryType::Directory, None),
                ("etc/sub/f".into(), tar::EntryType::Regular, None),
                (
                    "etc/up".into(),
                    tar::EntryType::Symlink,
                    Some("../../..".into())
                ),
            ]
        );
        // the contents only, and a file on its own
        let mut tar = Vec::new();
        write_tar(&r, "/etc/sub/.", false, ".", &mut tar).unwrap();
        let names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["f"]);
        // extraction into the root stays in it, even through the `up` link
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "planted", &b"x"[..]).unwrap();
        extract_into(&r, "/etc/up/etc/up", &b.into_inner().unwrap()[..], false).unwrap();
        assert!(root.join("planted").is_file());
        assert_eq!(
            std::fs::read_dir(d.path().join("outside")).unwrap().count(),
            1
        );
    }
}
