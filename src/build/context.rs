//! The build context: a host directory read as if it were `/`, minus what `.dockerignore`
//! excludes.
//!
//! Every path is opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to
//! the directory's fd, and the last component is never followed (`O_NOFOLLOW`, `fstatat`
//! with `AT_SYMLINK_NOFOLLOW`), so a symlink in the context (`ln -s /etc/shadow`,
//! `ln -s ../../secret`) is read as a link, and a link followed on purpose (a top-level
//! COPY source) resolves inside the context, never outside it. Owns [`ContextError`], the
//! error of the whole COPY/ADD side of `build` (context, image sources, plans, layers).
//! Never writes to the context. Invariant: an excluded path is indistinguishable from a
//! missing one (not listed, not found), as in BuildKit where it is never sent.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2, readlinkat};
use nix::sys::stat::{FileStat, fstatat};

use super::ignore::{Ignore, IgnoreError};
use super::view::{Node, View};
use crate::tarindex::Kind;

/// What went wrong reading sources or writing a COPY/ADD layer. `op` is `COPY` or `ADD`;
/// the executor prefixes the Dockerfile and line (`Dockerfile:7: COPY failed: ...`).
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("opening the build context {path}: {source}")]
    OpenContext { path: PathBuf, source: io::Error },
    #[error("reading {path}: {source}")]
    ReadIgnoreFile { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Ignore(#[from] IgnoreError),
    #[error("reading {path:?} in the build context: {source}")]
    ReadContext { path: String, source: io::Error },
    #[error("reading {path:?} in {image}: {source}")]
    ReadImage {
        image: String,
        path: String,
        source: io::Error,
    },
    #[error("{op} failed: file not found in build context or excluded by .dockerignore: {path:?}")]
    NotFound { op: &'static str, path: String },
    #[error("{op} failed: file not found in {image}: {path:?}")]
    NotFoundInImage {
        op: &'static str,
        image: String,
        path: String,
    },
    #[error("{op} failed: forbidden path outside the build context: {path}")]
    OutsideContext { op: &'static str, path: String },
    #[error(
        "When using {op} with more than one source file, the destination must be a directory and end with a /"
    )]
    DestNotDir { op: &'static str },
    #[error("{op} failed: cannot copy to non-directory: {path}")]
    ParentNotDir { op: &'static str, path: String },
    #[error("{op} failed: cannot copy a directory onto the file {path}")]
    DirOntoFile { op: &'static str, path: String },
    #[error("{op} failed: syntax error in pattern {pattern:?}")]
    BadPattern { op: &'static str, pattern: String },
    #[error("{op} failed: too many levels of symbolic links resolving {path:?}")]
    SymlinkLoop { op: &'static str, path: String },
    #[error("invalid --chmod={0}: expected octal permission bits such as 0755")]
    BadChmod(String),
    #[error("invalid --chown={0}: expected USER[:GROUP] (names or numbers)")]
    BadChown(String),
    #[error(
        "unable to convert uid/gid chown string to host mapping: no such user {0:?} in the image's /etc/passwd"
    )]
    UnknownUser(String),
    #[error(
        "unable to convert uid/gid chown string to host mapping: no such group {0:?} in the image's /etc/group"
    )]
    UnknownGroup(String),
    #[error("{op} failed: {path:?} changed while it was being copied (size differs)")]
    Changed { op: &'static str, path: String },
    #[error("writing the {op} layer: {source}")]
    WriteLayer { op: &'static str, source: io::Error },
    #[error("ADD failed: fetching {url}: {source}")]
    Fetch {
        url: String,
        source: Box<ureq::Error>,
    },
    #[error("ADD failed: reading the archive {path:?}: {source}")]
    Archive { path: String, source: io::Error },
}

pub type Result<T, E = ContextError> = std::result::Result<T, E>;

/// The build context directory and its `.dockerignore`.
#[derive(Debug)]
pub struct Context {
    dir: PathBuf,
    /// The canonical host path (names files in a [`ContentMemo`](super::memo::ContentMemo)).
    real: PathBuf,
    root: OwnedFd,
    ignore: Ignore,
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(b)
}

impl Context {
    /// Opens the context `dir`. The ignore file is `<Dockerfile>.dockerignore` beside the
    /// Dockerfile when that exists (BuildKit's per-Dockerfile ignore file), else
    /// `.dockerignore` at the context root. `dockerfile` is the Dockerfile's host path, or
    /// `None` when it came from stdin.
    pub fn open(dir: &Path, dockerfile: Option<&Path>) -> Result<Context> {
        let root: OwnedFd = File::open(dir)
            .and_then(|f| {
                if f.metadata()?.is_dir() {
                    Ok(f)
                } else {
                    Err(io::Error::from(io::ErrorKind::NotADirectory))
                }
            })
            .map_err(|source| ContextError::OpenContext {
                path: dir.to_path_buf(),
                source,
            })?
            .into();
        let specific = dockerfile.map(|d| {
            let mut name = d.as_os_str().to_owned();
            name.push(".dockerignore");
            PathBuf::from(name)
        });
        let mut ignore = Ignore::default();
        for candidate in specific.into_iter().chain([dir.join(".dockerignore")]) {
            match std::fs::read(&candidate) {
                Ok(bytes) => {
                    ignore = Ignore::parse(&bytes)?;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ContextError::ReadIgnoreFile {
                        path: candidate,
                        source,
                    });
                }
            }
        }
        Ok(Context {
            real: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
            dir: dir.to_path_buf(),
            root,
            ignore,
        })
    }

    /// The context directory on the host.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ignore(&self) -> &Ignore {
        &self.ignore
    }

    fn err(&self, rel: &[u8]) -> impl Fn(Errno) -> ContextError + '_ {
        let path = String::from_utf8_lossy(rel).into_owned();
        move |e| ContextError::ReadContext {
            path: path.clone(),
            source: io::Error::from(e),
        }
    }

    /// Opens `rel` inside the context, the last component not followed.
    fn open_in(&self, rel: &[u8], flags: OFlag) -> std::result::Result<OwnedFd, Errno> {
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.root.as_fd(), os(rel), how)
    }

    /// The entry `name` of the open directory `dir` (whose context path is the parent of
    /// `rel`), as the build sees it: `None` when missing, excluded or a socket. An excluded
    /// directory is still seen when an exception may re-include something below it.
    fn node_in(&self, dir: &OwnedFd, rel: &[u8], name: &[u8]) -> Result<Option<Node>> {
        let excluded = self.excluded(rel);
        if excluded && !self.ignore.may_include_below(rel) {
            return Ok(None);
        }
        let st = match fstatat(dir.as_fd(), os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
            Err(e) => return Err(self.err(rel)(e)),
        };
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt == libc::S_IFSOCK || (excluded && fmt != libc::S_IFDIR) {
            return Ok(None); // sockets are not sent (docker skips them)
        }
        let link = if fmt == libc::S_IFLNK {
            readlinkat(dir.as_fd(), os(name))
                .map_err(self.err(rel))?
                .as_bytes()
                .to_vec()
        } else {
            Vec::new()
        };
        Ok(Some(node_of(&st, link)))
    }

    /// Whether `rel` is excluded by `.dockerignore` (the root never is).
    pub fn excluded(&self, rel: &[u8]) -> bool {
        !rel.is_empty() && self.ignore.excluded(rel)
    }
}

/// `a/b/c` -> (`a/b`, `c`); `c` -> (``, `c`).
pub(super) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&c| c == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

fn node_of(st: &FileStat, link: Vec<u8>) -> Node {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        libc::S_IFCHR => Kind::Char,
        libc::S_IFBLK => Kind::Block,
        libc::S_IFIFO => Kind::Fifo,
        _ => Kind::File,
    };
    Node {
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: if kind == Kind::File {
            u64::try_from(st.st_size).unwrap_or(0)
        } else {
            0
        },
        mtime: (st.st_mtime, u32::try_from(st.st_mtime_nsec).unwrap_or(0)),
        link,
        identity: (st.st_dev, st.st_ino),
        nlink: u32::try_from(st.st_nlink).unwrap_or(u32::MAX),
        rdev: st.st_rdev,
        ctime: (st.st_ctime, u32::try_from(st.st_ctime_nsec).unwrap_or(0)),
    }
}

impl View for Context {
    fn describe(&self) -> String {
        "build context".into()
    }

    fn node(&self, rel: &[u8]) -> Result<Option<Node>> {
        let (parent, name) = split(rel);
        if name.is_empty() {
            let st = fstatat(self.root.as_fd(), ".", AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(self.err(rel))?;
            return Ok(Some(node_of(&st, Vec::new())));
        }
        let dir = match self.open_in(parent, OFlag::O_DIRECTORY | OFlag::O_RDONLY) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
            Err(e) => return Err(self.err(rel)(e)),
        };
        self.node_in(&dir, rel, name)
    }

    fn children(&self, rel: &[u8]) -> Result<Vec<(Vec<u8>, Node)>> {
        let fd = self
            .open_in(rel, OFlag::O_DIRECTORY | OFlag::O_RDONLY)
            .map_err(self.err(rel))?;
        let mut names = Vec::new();
        {
            let mut dir =
                nix::dir::Dir::from_fd(fd.try_clone().map_err(|e| ContextError::ReadContext {
                    path: String::from_utf8_lossy(rel).into_owned(),
                    source: e,
                })?)
                .map_err(self.err(rel))?;
            for e in dir.iter() {
                let e = e.map_err(self.err(rel))?;
                let name = e.file_name().to_bytes();
                if name != b"." && name != b".." {
                    names.push(name.to_vec());
                }
            }
        }
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let child = join(rel, &name);
            if let Some(node) = self.node_in(&fd, &child, &name)? {
                out.push((name, node));
            }
        }
        Ok(out)
    }

    fn open(&self, rel: &[u8], node: &Node) -> Result<Box<dyn io::Read + '_>> {
        // O_NONBLOCK: a file swapped for a fifo after it was listed cannot hang the build
        let fd = self
            .open_in(rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
            .map_err(self.err(rel))?;
        Ok(Box::new(io::Read::take(File::from(fd), node.size)))
    }

    fn hidden(&self, rel: &[u8]) -> bool {
        self.excluded(rel)
    }

    fn memo_key(&self, rel: &[u8], _node: &Node) -> Option<String> {
        let mut key = self.real.as_os_str().as_bytes().to_vec();
        key.push(b'/');
        key.extend_from_slice(rel);
        String::from_utf8(key).ok()
    }
}

/// `dir` + `/` + `name` (`name` alone under the root).
pub(super) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}
