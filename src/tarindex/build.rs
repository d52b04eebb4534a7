//! Building an index: the in-memory tree that [`IndexBuilder`] fills (tar semantics: later
//! entries replace earlier ones, missing parents are made) and that [`merge`](super::merge)
//! reuses, serialised breadth-first into the format described in the parent module.

use std::collections::{BTreeMap, HashMap};

use super::*;

/// Checks a normalised relative path; returns its components.
pub(super) fn components(path: &[u8]) -> Result<Vec<&[u8]>, IndexError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |why| IndexError::BadPath {
        path: String::from_utf8_lossy(path).into_owned(),
        why,
    };
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" => return Err(bad("empty component (leading, trailing or doubled '/')")),
            b"." | b".." => return Err(bad("'.' or '..' component")),
            _ if c.contains(&0) => return Err(bad("NUL byte in a name")),
            _ => out.push(c),
        }
    }
    Ok(out)
}

pub(super) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A node of the in-memory tree that the builder and merge share.
#[derive(Clone, Debug, Default)]
pub(super) struct Node {
    pub(super) e: NewEntry,
    /// A parent directory no tar entry described (0755, root-owned).
    pub(super) implicit: bool,
    pub(super) children: BTreeMap<Vec<u8>, usize>,
}

#[derive(Clone, Debug)]
pub(super) struct Tree {
    pub(super) nodes: Vec<Node>,
}

pub(super) fn implicit_dir() -> Node {
    Node {
        e: NewEntry {
            kind: Kind::Dir,
            mode: 0o755,
            ..NewEntry::default()
        },
        implicit: true,
        children: BTreeMap::new(),
    }
}

impl Tree {
    pub(super) fn new() -> Tree {
        Tree {
            nodes: vec![implicit_dir()],
        }
    }

    pub(super) fn push(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    pub(super) fn child(&self, dir: usize, name: &[u8]) -> Option<usize> {
        self.nodes.get(dir)?.children.get(name).copied()
    }

    pub(super) fn set_child(&mut self, dir: usize, name: &[u8], node: usize) {
        if let Some(d) = self.nodes.get_mut(dir) {
            d.children.insert(name.to_vec(), node);
        }
    }

    /// Serialises the tree reachable from node 0, breadth-first.
    pub(super) fn write(&self) -> Vec<u8> {
        let mut order: Vec<usize> = vec![0];
        let mut parent: Vec<u32> = vec![0];
        let mut first: Vec<u32> = Vec::new();
        let mut count: Vec<u32> = Vec::new();
        let mut names: Vec<&[u8]> = vec![b""];
        let mut i = 0;
        while i < order.len() {
            let node = &self.nodes[order[i]];
            let n = node.children.len() as u32;
            first.push(if n == 0 { 0 } else { order.len() as u32 });
            count.push(n);
            for (name, &c) in &node.children {
                order.push(c);
                parent.push(i as u32);
                names.push(name);
            }
            i += 1;
        }
        // Inodes: regular files (and resolved hardlinks) are the same inode exactly when
        // their data is the same bytes of the same tar.
        let mut ino = vec![0u32; order.len()];
        let mut nlink = vec![1u32; order.len()];
        let mut groups: HashMap<(u16, u64), (u32, u32)> = HashMap::new();
        for (id, &n) in order.iter().enumerate() {
            let e = &self.nodes[n].e;
            ino[id] = id as u32;
            if matches!(e.kind, Kind::File | Kind::Hardlink) {
                let g = groups
                    .entry((e.layer, e.data_offset))
                    .or_insert((id as u32, 0));
                g.1 += 1;
                ino[id] = g.0;
            }
        }
        for (id, &n) in order.iter().enumerate() {
            let e = &self.nodes[n].e;
            match e.kind {
                Kind::File | Kind::Hardlink => {
                    nlink[id] = groups.get(&(e.layer, e.data_offset)).map_or(1, |g| g.1)
                }
                Kind::Dir => {
                    let dirs = self.nodes[n]
                        .children
                        .values()
                        .filter(|&&c| self.nodes[c].e.kind == Kind::Dir)
                        .count();
                    nlink[id] = 2u32.saturating_add(dirs as u32);
                }
                _ => {}
            }
        }

        let mut recs = vec![0u8; order.len() * REC];
        let mut strings: Vec<u8> = Vec::new();
        for (id, &n) in order.iter().enumerate() {
            let node = &self.nodes[n];
            let e = &node.e;
            let mut r: Rec = [0; REC];
            wr(&mut r, R_NAME_OFF, &(strings.len() as u64).to_le_bytes());
            wr(&mut r, R_NAME_LEN, &(names[id].len() as u32).to_le_bytes());
            strings.extend_from_slice(names[id]);
            wr(&mut r, R_LINK_OFF, &(strings.len() as u64).to_le_bytes());
            wr(&mut r, R_LINK_LEN, &(e.link.len() as u32).to_le_bytes());
            strings.extend_from_slice(&e.link);
            let xoff = strings.len();
            for (k, v) in &e.xattrs {
                strings.extend_from_slice(&(k.len() as u32).to_le_bytes());
                strings.extend_from_slice(&(v.len() as u32).to_le_bytes());
                strings.extend_from_slice(k);
                strings.extend_from_slice(v);
            }
            wr(&mut r, R_XATTR_OFF, &(xoff as u64).to_le_bytes());
            wr(
                &mut r,
                R_XATTR_LEN,
                &((strings.len() - xoff) as u32).to_le_bytes(),
            );
            r[R_KIND] = e.kind as u8;
            r[R_FLAGS] = if e.opaque { FLAG_OPAQUE } else { 0 }
                | if node.implicit { FLAG_IMPLICIT } else { 0 };
            wr(&mut r, R_LAYER, &e.layer.to_le_bytes());
            wr(&mut r, R_MODE, &(e.mode & 0o7777).to_le_bytes());
            wr(&mut r, R_UID, &e.uid.to_le_bytes());
            wr(&mut r, R_GID, &e.gid.to_le_bytes());
            wr(&mut r, R_NSEC, &e.mtime_nsec.to_le_bytes());
            wr(&mut r, R_MTIME, &e.mtime.to_le_bytes());
            wr(&mut r, R_SIZE, &e.size.to_le_bytes());
            wr(&mut r, R_DATA, &e.data_offset.to_le_bytes());
            wr(&mut r, R_RDEV_MAJOR, &e.rdev_major.to_le_bytes());
            wr(&mut r, R_RDEV_MINOR, &e.rdev_minor.to_le_bytes());
            wr(&mut r, R_PARENT, &parent[id].to_le_bytes());
            wr(&mut r, R_FIRST_CHILD, &first[id].to_le_bytes());
            wr(&mut r, R_CHILD_COUNT, &count[id].to_le_bytes());
            wr(&mut r, R_INO, &ino[id].to_le_bytes());
            wr(&mut r, R_NLINK, &nlink[id].to_le_bytes());
            recs[id * REC..(id + 1) * REC].copy_from_slice(&r);
        }

        let mut out = Vec::with_capacity(HEADER_LEN + recs.len() + strings.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(REC as u32).to_le_bytes());
        out.extend_from_slice(&(order.len() as u32).to_le_bytes());
        out.resize(HEADER_LEN, 0);
        out.extend_from_slice(&recs);
        out.extend_from_slice(&strings);
        out
    }
}

/// Collects entries and writes the index bytes.
pub struct IndexBuilder {
    tree: Tree,
}

impl Default for IndexBuilder {
    fn default() -> IndexBuilder {
        IndexBuilder::new()
    }
}

impl IndexBuilder {
    pub fn new() -> IndexBuilder {
        IndexBuilder { tree: Tree::new() }
    }

    /// Walks to the directory that holds `comps`'s last component, making missing
    /// directories (implicit) on the way. A whiteout met on the way becomes an implicit
    /// opaque directory: the layer deleted the lower entry, then created things under it.
    fn parent_dir(&mut self, path: &[u8], comps: &[&[u8]]) -> Result<usize, IndexError> {
        let mut dir = 0;
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            dir = match self.tree.child(dir, c) {
                Some(n) if self.tree.nodes[n].e.kind == Kind::Dir => n,
                Some(n) if self.tree.nodes[n].e.kind == Kind::Whiteout => {
                    let mut d = implicit_dir();
                    d.e.opaque = true;
                    let id = self.tree.push(d);
                    self.tree.set_child(dir, c, id);
                    id
                }
                Some(_) => {
                    return Err(IndexError::BadPath {
                        path: lossy(path),
                        why: "a parent of this entry is not a directory in the same layer",
                    });
                }
                None => {
                    let id = self.tree.push(implicit_dir());
                    self.tree.set_child(dir, c, id);
                    id
                }
            };
        }
        Ok(dir)
    }

    /// The node at `path`, if any.
    fn find(&self, path: &[u8]) -> Option<usize> {
        let comps = components(path).ok()?;
        let mut n = 0;
        for c in comps {
            n = self.tree.child(n, c)?;
        }
        Some(n)
    }

    /// Adds an entry. A later entry for the same path replaces the earlier one (tar
    /// semantics); missing parent directories are made (0755, root-owned).
    /// A `Hardlink` must name a regular file (or hardlink) added earlier: it takes that
    /// inode's metadata and data location.
    pub fn add(&mut self, mut e: NewEntry) -> Result<(), IndexError> {
        let path = std::mem::take(&mut e.path);
        let comps = components(&path)?;
        if e.kind == Kind::Hardlink {
            let target = self
                .find(&e.link)
                .map(|n| &self.tree.nodes[n].e)
                .filter(|t| matches!(t.kind, Kind::File | Kind::Hardlink))
                .ok_or_else(|| IndexError::HardlinkTarget {
                    path: lossy(&path),
                    target: lossy(&e.link),
                })?;
            e.mode = target.mode;
            e.uid = target.uid;
            e.gid = target.gid;
            e.mtime = target.mtime;
            e.mtime_nsec = target.mtime_nsec;
            e.size = target.size;
            e.data_offset = target.data_offset;
            e.xattrs = target.xattrs.clone();
            e.layer = target.layer;
        }
        if e.kind != Kind::File && e.kind != Kind::Hardlink {
            e.size = 0;
            e.data_offset = 0;
        }
        if e.kind != Kind::Dir {
            e.opaque = false;
        }
        e.mode &= 0o7777;
        e.xattrs.sort();
        e.xattrs.dedup_by(|a, b| a.0 == b.0);
        let Some(last) = comps.last() else {
            if e.kind != Kind::Dir {
                return Err(IndexError::BadPath {
                    path: lossy(&path),
                    why: "the root of a layer must be a directory",
                });
            }
            let root = &mut self.tree.nodes[0];
            e.opaque |= root.e.opaque;
            root.e = e;
            root.implicit = false;
            return Ok(());
        };
        let dir = self.parent_dir(&path, &comps)?;
        match self.tree.child(dir, last) {
            Some(n) if e.kind == Kind::Dir && self.tree.nodes[n].e.kind == Kind::Dir => {
                let node = &mut self.tree.nodes[n];
                e.opaque |= node.e.opaque;
                node.e = e;
                node.implicit = false;
            }
            existing => {
                // A directory over a whiteout of the same layer: the lower one was deleted,
                // this one starts empty.
                if e.kind == Kind::Dir
                    && existing.is_some_and(|n| self.tree.nodes[n].e.kind == Kind::Whiteout)
                {
                    e.opaque = true;
                }
                let id = self.tree.push(Node {
                    e,
                    implicit: false,
                    children: BTreeMap::new(),
                });
                self.tree.set_child(dir, last, id);
            }
        }
        Ok(())
    }

    /// Marks the directory at `path` opaque (`path/.wh..wh..opq` in the tar), making it
    /// (implicit) if it is not there yet.
    pub fn set_opaque(&mut self, path: &[u8]) -> Result<(), IndexError> {
        let comps = components(path)?;
        let Some(last) = comps.last() else {
            self.tree.nodes[0].e.opaque = true;
            return Ok(());
        };
        let dir = self.parent_dir(path, &comps)?;
        match self.tree.child(dir, last) {
            Some(n) if self.tree.nodes[n].e.kind == Kind::Dir => {
                self.tree.nodes[n].e.opaque = true;
            }
            Some(n) if self.tree.nodes[n].e.kind != Kind::Whiteout => {
                return Err(IndexError::BadPath {
                    path: lossy(path),
                    why: "opaque marker inside something that is not a directory",
                });
            }
            _ => {
                let mut d = implicit_dir();
                d.e.opaque = true;
                let id = self.tree.push(d);
                self.tree.set_child(dir, last, id);
            }
        }
        Ok(())
    }

    /// The finished index bytes.
    pub fn finish(self) -> Vec<u8> {
        self.tree.write()
    }
}
