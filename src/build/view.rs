//! A read-only tree a COPY reads from or resolves a destination in: the build context
//! ([`Context`](super::context::Context)) or an image's layers
//! ([`ImageFs`](super::imagefs::ImageFs)), and path resolution inside one as if it were `/`.
//!
//! Never touches the host outside what the view's own methods open. Invariant: a resolved
//! path is normalised, relative to the view's root, and never climbs above it (`..` at
//! the root stays at the root; an absolute symlink target restarts at the root).

use std::io::Read;

use super::context::{ContextError, Result, join};
use crate::tarindex::Kind;

/// Symlinks followed in one resolution before it is called a loop (Linux's limit).
const MAX_LINKS: usize = 40;

/// One entry of a view, as `lstat` would show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Regular files: the data length.
    pub size: u64,
    pub mtime: (i64, u32),
    /// Symlinks: the target as written.
    pub link: Vec<u8>,
    /// Names with the same identity are hardlinks of one file.
    pub identity: (u64, u64),
    pub nlink: u32,
    /// Device nodes: the kernel encoding.
    pub rdev: u64,
    /// When the inode last changed (host files; 0 in images), for [`memo_key`](View::memo_key).
    pub ctime: (i64, u32),
}

/// A read-only tree. Paths are relative, normalised, `""` the root; the last component is
/// never followed.
pub trait View {
    /// What errors call the view (`build context`, `image alpine:3.20`, `stage builder`).
    fn describe(&self) -> String;
    /// The entry at `rel`, or `None` when there is none (or it is hidden).
    fn node(&self, rel: &[u8]) -> Result<Option<Node>>;
    /// The entries of the directory `rel` (names and what [`node`](View::node) would say),
    /// sorted by name bytes; hidden ones left out.
    fn children(&self, rel: &[u8]) -> Result<Vec<(Vec<u8>, Node)>>;
    /// The data of the regular file `rel` (exactly `node.size` bytes, or fewer if it
    /// shrank, which the caller checks).
    fn open(&self, rel: &[u8], node: &Node) -> Result<Box<dyn Read + '_>>;
    /// Whether the directory `rel` is there only to reach what an exception re-includes
    /// below it (`.dockerignore`): a copy keeps it only if it keeps something inside.
    fn hidden(&self, _rel: &[u8]) -> bool {
        false
    }
    /// Where a content digest of the file `rel` may be remembered across builds
    /// ([`ContentMemo`](super::memo::ContentMemo)): `None` when it must be read each time.
    fn memo_key(&self, _rel: &[u8], _node: &Node) -> Option<String> {
        None
    }
}

/// Where a path leads inside a view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The real path: every existing component resolved, the missing rest appended as
    /// written.
    pub path: Vec<u8>,
    /// The entry there, `None` when the path (or a parent) does not exist.
    pub node: Option<Node>,
}

fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

fn parent(path: &mut Vec<u8>) {
    match path.iter().rposition(|&c| c == b'/') {
        Some(i) => path.truncate(i),
        None => path.clear(),
    }
}

/// Resolves `path` inside `view` as if the view were `/`: symlinks in the middle are
/// followed (inside the view), the last one only with `follow_last`. A file met where a
/// directory is needed is [`ContextError::ParentNotDir`].
pub fn resolve(
    view: &dyn View,
    op: &'static str,
    path: &[u8],
    follow_last: bool,
) -> Result<Resolved> {
    let mut rest: Vec<Vec<u8>> = components(path).rev().map(<[u8]>::to_vec).collect();
    let mut cur: Vec<u8> = Vec::new();
    let mut node = None;
    let mut missing = false;
    let mut links = 0;
    while let Some(c) = rest.pop() {
        if c == b".." {
            parent(&mut cur);
            if !missing {
                node = None; // looked up again below if this is the end
            }
            continue;
        }
        let next = join(&cur, &c);
        if missing {
            cur = next;
            continue;
        }
        match view.node(&next)? {
            None => {
                missing = true;
                node = None;
                cur = next;
            }
            Some(n) if n.kind == Kind::Symlink && (follow_last || !rest.is_empty()) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(ContextError::SymlinkLoop {
                        op,
                        path: String::from_utf8_lossy(path).into_owned(),
                    });
                }
                if n.link.first() == Some(&b'/') {
                    cur.clear();
                }
                rest.extend(components(&n.link).rev().map(<[u8]>::to_vec));
                node = None;
            }
            Some(n) => {
                if n.kind != Kind::Dir && !rest.is_empty() {
                    return Err(ContextError::ParentNotDir {
                        op,
                        path: String::from_utf8_lossy(&next).into_owned(),
                    });
                }
                cur = next;
                node = Some(n);
            }
        }
    }
    if !missing && node.is_none() {
        node = view.node(&cur)?;
    }
    Ok(Resolved { path: cur, node })
}
