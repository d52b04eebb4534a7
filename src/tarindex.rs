//! The layer index format: what a layer tar holds, findable without reading the tar.
//!
//! An index is a byte buffer (usually an mmapped file) made by [`IndexBuilder`] (one layer)
//! or [`merge`] (the lower view of a chain) and read by [`Index`]. Pure: bytes in, entries
//! out; it never touches a file or the tar itself.
//!
//! Layout, all integers little-endian:
//! ```text
//! header   64 bytes: magic "camadaix", version, record size, entry count, reserved
//! records  count x 112 bytes, entry 0 is the root; breadth-first, so a directory's
//!          children are contiguous and sorted by name bytes
//! strings  names, link targets and xattr blobs ([klen u32][vlen u32][key][value]...),
//!          addressed by (offset, length) relative to the start of this area
//! ```
//! Invariant: [`Index::open`] checks, in one O(entries + name bytes) pass, every fact an
//! accessor relies on (every range inside the buffer, every child range partitioning the
//! entries with `parent < child`, names sorted and unique per directory, xattr blobs well
//! formed), so that afterwards no accessor can panic, read out of bounds or loop, whatever
//! the bytes were. Accessors still use checked slicing, so a bug here degrades to an empty
//! answer, never to a panic.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

/// The type of an entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    #[default]
    File = 0,
    Dir = 1,
    Symlink = 2,
    /// Only in a single-layer index: a tar hardlink, `link` is the target path.
    /// A merged index resolves it to a `File` sharing the target's `ino`.
    Hardlink = 3,
    Char = 4,
    Block = 5,
    Fifo = 6,
    /// Only in a single-layer index: `.wh.NAME` in the tar, recorded under `NAME`.
    Whiteout = 7,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::File,
            1 => Kind::Dir,
            2 => Kind::Symlink,
            3 => Kind::Hardlink,
            4 => Kind::Char,
            5 => Kind::Block,
            6 => Kind::Fifo,
            7 => Kind::Whiteout,
            _ => return None,
        })
    }
}

/// Position of an entry in the index; the root directory is 0.
pub type EntryId = u32;

/// An entry as the builder receives it (from a tar header, or from merging).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewEntry {
    /// Relative, normalised: no leading `/` or `./`, no `..`, no trailing `/`; `""` is the root.
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky, no file-type bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// Regular files: the data length. Otherwise 0.
    pub size: u64,
    /// Regular files: where the data starts in the layer's uncompressed tar.
    pub data_offset: u64,
    /// Symlink target, or (Hardlink) the normalised path of the link's target.
    pub link: Vec<u8>,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// A directory this layer made opaque (`.wh..wh..opq`).
    pub opaque: bool,
    /// Which layer's tar holds the data (bottom = 0); 0 in a single-layer index.
    pub layer: u16,
}

/// Why an index cannot be built or read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("corrupt layer index: {0}")]
    Corrupt(String),
    #[error("invalid path {path:?} in layer: {why}")]
    BadPath { path: String, why: &'static str },
    #[error(
        "hardlink {path:?} in layer points to {target:?}, which is not a regular file earlier in the same layer"
    )]
    HardlinkTarget { path: String, target: String },
    #[error("cannot merge {0} layers: at most 65536 are supported")]
    TooManyLayers(usize),
}

const MAGIC: &[u8; 8] = b"camadaix";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
const REC: usize = 112;

const FLAG_OPAQUE: u8 = 1;
const FLAG_IMPLICIT: u8 = 2;

// Field positions inside a record.
const R_NAME_OFF: usize = 0;
const R_NAME_LEN: usize = 8;
const R_LINK_LEN: usize = 12;
const R_LINK_OFF: usize = 16;
const R_XATTR_OFF: usize = 24;
const R_XATTR_LEN: usize = 32;
const R_KIND: usize = 36;
const R_FLAGS: usize = 37;
const R_LAYER: usize = 38;
const R_MODE: usize = 40;
const R_UID: usize = 44;
const R_GID: usize = 48;
const R_NSEC: usize = 52;
const R_MTIME: usize = 56;
const R_SIZE: usize = 64;
const R_DATA: usize = 72;
const R_RDEV_MAJOR: usize = 80;
const R_RDEV_MINOR: usize = 84;
const R_PARENT: usize = 88;
const R_FIRST_CHILD: usize = 92;
const R_CHILD_COUNT: usize = 96;
const R_INO: usize = 100;
const R_NLINK: usize = 104;

type Rec = [u8; REC];

fn rd_u16(r: &Rec, p: usize) -> u16 {
    let mut b = [0; 2];
    b.copy_from_slice(&r[p..p + 2]);
    u16::from_le_bytes(b)
}
fn rd_u32(r: &Rec, p: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&r[p..p + 4]);
    u32::from_le_bytes(b)
}
fn rd_u64(r: &Rec, p: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&r[p..p + 8]);
    u64::from_le_bytes(b)
}
fn wr(r: &mut Rec, p: usize, bytes: &[u8]) {
    r[p..p + bytes.len()].copy_from_slice(bytes);
}

/// `strings[off..off+len]`, or `None` when out of range.
fn slice_at(strings: &[u8], off: u64, len: u32) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let end = start.checked_add(len as usize)?;
    strings.get(start..end)
}

/// Iterates a well-formed xattr blob; stops at the first malformed byte.
struct XattrIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for XattrIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let klen = u32::from_le_bytes(self.rest.get(0..4)?.try_into().ok()?) as usize;
        let vlen = u32::from_le_bytes(self.rest.get(4..8)?.try_into().ok()?) as usize;
        let kend = 8usize.checked_add(klen)?;
        let vend = kend.checked_add(vlen)?;
        let k = self.rest.get(8..kend)?;
        let v = self.rest.get(kend..vend)?;
        self.rest = self.rest.get(vend..)?;
        Some((k, v))
    }
}

/// Whether an xattr blob is exactly a sequence of well-formed pairs.
fn xattrs_well_formed(mut blob: &[u8]) -> bool {
    while !blob.is_empty() {
        let mut it = XattrIter { rest: blob };
        if it.next().is_none() {
            return false;
        }
        blob = it.rest;
    }
    true
}

/// Checks a normalised relative path; returns its components.
fn components(path: &[u8]) -> Result<Vec<&[u8]>, IndexError> {
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

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A node of the in-memory tree that the builder and merge share.
#[derive(Clone, Debug, Default)]
struct Node {
    e: NewEntry,
    /// A parent directory no tar entry described (0755, root-owned).
    implicit: bool,
    children: BTreeMap<Vec<u8>, usize>,
}

#[derive(Clone, Debug)]
struct Tree {
    nodes: Vec<Node>,
}

fn implicit_dir() -> Node {
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
    fn new() -> Tree {
        Tree {
            nodes: vec![implicit_dir()],
        }
    }

    fn push(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn child(&self, dir: usize, name: &[u8]) -> Option<usize> {
        self.nodes.get(dir)?.children.get(name).copied()
    }

    fn set_child(&mut self, dir: usize, name: &[u8], node: usize) {
        if let Some(d) = self.nodes.get_mut(dir) {
            d.children.insert(name.to_vec(), node);
        }
    }

    /// Serialises the tree reachable from node 0, breadth-first.
    fn write(&self) -> Vec<u8> {
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

/// A read-only view of index bytes.
pub struct Index<B> {
    bytes: B,
    count: u32,
}

/// One entry, borrowed from the index.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    rec: &'a Rec,
    strings: &'a [u8],
    id: EntryId,
}

impl<'a> Entry<'a> {
    pub fn id(&self) -> EntryId {
        self.id
    }
    /// The last path component (`b""` for the root).
    pub fn name(&self) -> &'a [u8] {
        slice_at(
            self.strings,
            rd_u64(self.rec, R_NAME_OFF),
            rd_u32(self.rec, R_NAME_LEN),
        )
        .unwrap_or_default()
    }
    pub fn kind(&self) -> Kind {
        Kind::from_u8(self.rec[R_KIND]).unwrap_or_default()
    }
    pub fn mode(&self) -> u32 {
        rd_u32(self.rec, R_MODE)
    }
    pub fn uid(&self) -> u32 {
        rd_u32(self.rec, R_UID)
    }
    pub fn gid(&self) -> u32 {
        rd_u32(self.rec, R_GID)
    }
    pub fn mtime(&self) -> (i64, u32) {
        (rd_u64(self.rec, R_MTIME) as i64, rd_u32(self.rec, R_NSEC))
    }
    pub fn size(&self) -> u64 {
        rd_u64(self.rec, R_SIZE)
    }
    pub fn data_offset(&self) -> u64 {
        rd_u64(self.rec, R_DATA)
    }
    pub fn link(&self) -> &'a [u8] {
        slice_at(
            self.strings,
            rd_u64(self.rec, R_LINK_OFF),
            rd_u32(self.rec, R_LINK_LEN),
        )
        .unwrap_or_default()
    }
    pub fn rdev(&self) -> (u32, u32) {
        (
            rd_u32(self.rec, R_RDEV_MAJOR),
            rd_u32(self.rec, R_RDEV_MINOR),
        )
    }
    fn xattr_blob(&self) -> &'a [u8] {
        slice_at(
            self.strings,
            rd_u64(self.rec, R_XATTR_OFF),
            rd_u32(self.rec, R_XATTR_LEN),
        )
        .unwrap_or_default()
    }
    /// Extended attributes, sorted by name.
    pub fn xattrs(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        XattrIter {
            rest: self.xattr_blob(),
        }
    }
    pub fn opaque(&self) -> bool {
        self.rec[R_FLAGS] & FLAG_OPAQUE != 0
    }
    /// A directory no tar entry described: made because something under it was.
    pub fn implicit(&self) -> bool {
        self.rec[R_FLAGS] & FLAG_IMPLICIT != 0
    }
    pub fn layer(&self) -> u16 {
        rd_u16(self.rec, R_LAYER)
    }
    pub fn parent(&self) -> EntryId {
        rd_u32(self.rec, R_PARENT)
    }
    /// Hardlinked names share an inode: the id of the group's first entry (else `id()`).
    pub fn ino(&self) -> EntryId {
        rd_u32(self.rec, R_INO)
    }
    /// Link count: names sharing `ino` for files; 2 + subdirectories for directories.
    pub fn nlink(&self) -> u32 {
        rd_u32(self.rec, R_NLINK)
    }
    fn first_child(&self) -> u32 {
        rd_u32(self.rec, R_FIRST_CHILD)
    }
    fn child_count(&self) -> u32 {
        rd_u32(self.rec, R_CHILD_COUNT)
    }

    /// The entry as the builder takes it (path left empty).
    pub fn to_new(&self) -> NewEntry {
        NewEntry {
            path: Vec::new(),
            kind: self.kind(),
            mode: self.mode(),
            uid: self.uid(),
            gid: self.gid(),
            mtime: self.mtime().0,
            mtime_nsec: self.mtime().1,
            size: self.size(),
            data_offset: self.data_offset(),
            link: self.link().to_vec(),
            rdev_major: self.rdev().0,
            rdev_minor: self.rdev().1,
            xattrs: self
                .xattrs()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
            opaque: self.opaque(),
            layer: self.layer(),
        }
    }
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("name", &String::from_utf8_lossy(self.name()))
            .field("kind", &self.kind())
            .field("mode", &format_args!("{:o}", self.mode()))
            .field("size", &self.size())
            .field("layer", &self.layer())
            .finish()
    }
}

fn corrupt(msg: impl Into<String>) -> IndexError {
    IndexError::Corrupt(msg.into())
}

impl<B: AsRef<[u8]>> Index<B> {
    /// Checks the bytes; after `Ok`, no accessor panics whatever the bytes were.
    pub fn open(bytes: B) -> Result<Index<B>, IndexError> {
        let b = bytes.as_ref();
        let head = b
            .get(..HEADER_LEN)
            .ok_or_else(|| corrupt(format!("{} bytes is shorter than the header", b.len())))?;
        if &head[..8] != MAGIC {
            return Err(corrupt("not a camada layer index (bad magic)"));
        }
        let u32_at =
            |p: usize| u32::from_le_bytes([head[p], head[p + 1], head[p + 2], head[p + 3]]);
        let version = u32_at(8);
        if version != VERSION {
            return Err(corrupt(format!(
                "index format version {version}, this camada reads {VERSION}; rebuild it"
            )));
        }
        if u32_at(12) as usize != REC {
            return Err(corrupt(format!(
                "record size {} (expected {REC})",
                u32_at(12)
            )));
        }
        let count = u32_at(16);
        let strings_off = (count as usize)
            .checked_mul(REC)
            .and_then(|n| n.checked_add(HEADER_LEN))
            .filter(|&n| n <= b.len())
            .ok_or_else(|| corrupt(format!("{count} entries do not fit in {} bytes", b.len())))?;
        if count == 0 {
            return Err(corrupt("no root entry"));
        }
        let idx = Index { bytes, count };
        idx.validate(strings_off)?;
        Ok(idx)
    }

    fn validate(&self, strings_off: usize) -> Result<(), IndexError> {
        let strings = self.strings();
        debug_assert_eq!(strings.len(), self.bytes.as_ref().len() - strings_off);
        let n = self.count;
        let mut children_total: u64 = 0;
        for id in 0..n {
            let e = self
                .get(id)
                .ok_or_else(|| corrupt(format!("entry {id} out of range")))?;
            let bad = |what: &str| corrupt(format!("entry {id}: {what}"));
            let kind = Kind::from_u8(e.rec[R_KIND]).ok_or_else(|| bad("unknown kind"))?;
            let name = slice_at(
                strings,
                rd_u64(e.rec, R_NAME_OFF),
                rd_u32(e.rec, R_NAME_LEN),
            )
            .ok_or_else(|| bad("name out of range"))?;
            slice_at(
                strings,
                rd_u64(e.rec, R_LINK_OFF),
                rd_u32(e.rec, R_LINK_LEN),
            )
            .ok_or_else(|| bad("link target out of range"))?;
            let xb = slice_at(
                strings,
                rd_u64(e.rec, R_XATTR_OFF),
                rd_u32(e.rec, R_XATTR_LEN),
            )
            .ok_or_else(|| bad("xattrs out of range"))?;
            if !xattrs_well_formed(xb) {
                return Err(bad("malformed xattrs"));
            }
            if e.ino() >= n {
                return Err(bad("inode out of range"));
            }
            if id == 0 {
                if !name.is_empty() || kind != Kind::Dir || e.parent() != 0 {
                    return Err(bad("the root must be an unnamed directory"));
                }
            } else if name.is_empty()
                || name == b"."
                || name == b".."
                || name.contains(&b'/')
                || name.contains(&0)
            {
                return Err(bad("invalid name"));
            }
            let (first, cnt) = (e.first_child(), e.child_count());
            if cnt == 0 {
                continue;
            }
            if kind != Kind::Dir {
                return Err(bad("a non-directory with children"));
            }
            let end = first
                .checked_add(cnt)
                .filter(|&end| end <= n && first > id)
                .ok_or_else(|| bad("children out of range"))?;
            children_total += u64::from(cnt);
            if children_total > u64::from(n) {
                return Err(bad("children ranges overlap"));
            }
            let mut prev: Option<&[u8]> = None;
            for c in first..end {
                let ce = self.get(c).ok_or_else(|| bad("child out of range"))?;
                if ce.parent() != id {
                    return Err(bad("a child whose parent is another entry"));
                }
                let cname = slice_at(
                    strings,
                    rd_u64(ce.rec, R_NAME_OFF),
                    rd_u32(ce.rec, R_NAME_LEN),
                )
                .ok_or_else(|| bad("child name out of range"))?;
                if prev.is_some_and(|p| p >= cname) {
                    return Err(bad("children not sorted by name"));
                }
                prev = Some(cname);
            }
        }
        // Every child range lies above its directory, its members name that directory as
        // parent, and the ranges hold n-1 entries in all: they partition 1..n.
        if children_total != u64::from(n) - 1 {
            return Err(corrupt("entries not reachable from the root"));
        }
        Ok(())
    }

    fn strings(&self) -> &[u8] {
        let b = self.bytes.as_ref();
        let off = HEADER_LEN + self.count as usize * REC;
        b.get(off..).unwrap_or_default()
    }

    pub fn len(&self) -> u32 {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn get(&self, id: EntryId) -> Option<Entry<'_>> {
        if id >= self.count {
            return None;
        }
        let start = HEADER_LEN + id as usize * REC;
        let rec: &Rec = self
            .bytes
            .as_ref()
            .get(start..start + REC)?
            .try_into()
            .ok()?;
        Some(Entry {
            rec,
            strings: self.strings(),
            id,
        })
    }
    /// By normalised relative path (`b""` is the root). Empty components are skipped.
    pub fn lookup(&self, path: &[u8]) -> Option<EntryId> {
        let mut id = 0;
        for c in path.split(|&b| b == b'/') {
            if c.is_empty() {
                continue;
            }
            id = self.lookup_child(id, c)?;
        }
        Some(id)
    }
    pub fn lookup_child(&self, dir: EntryId, name: &[u8]) -> Option<EntryId> {
        let r = self.children(dir);
        let (mut lo, mut hi) = (r.start, r.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid)?.name().cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
    /// The ids of `dir`'s children, sorted by name (empty for a non-directory).
    pub fn children(&self, dir: EntryId) -> Range<EntryId> {
        match self.get(dir) {
            Some(e) if e.kind() == Kind::Dir && e.child_count() > 0 => {
                let first = e.first_child().min(self.count);
                first..first.saturating_add(e.child_count()).min(self.count)
            }
            _ => 0..0,
        }
    }
    /// The full relative path of an entry.
    pub fn path(&self, id: EntryId) -> Vec<u8> {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut cur = id;
        // parent < id for every non-root entry (checked by open): at most `count` steps.
        for _ in 0..self.count {
            let Some(e) = self.get(cur) else { break };
            if cur == 0 {
                break;
            }
            names.push(e.name());
            if e.parent() >= cur {
                break;
            }
            cur = e.parent();
        }
        names.reverse();
        names.join(&b'/')
    }
}

/// The lower view of a stack of layer indexes (bottom first): whiteouts and opaque
/// directories applied, hardlinks resolved, each entry's `layer` naming its tar.
/// The result holds no whiteouts, no hardlinks and no opaque flags.
pub fn merge<B: AsRef<[u8]>>(layers: &[&Index<B>]) -> Result<Vec<u8>, IndexError> {
    if layers.len() > usize::from(u16::MAX) + 1 {
        return Err(IndexError::TooManyLayers(layers.len()));
    }
    let mut tree = Tree::new();
    for (li, idx) in layers.iter().enumerate() {
        let layer = li as u16;
        let Some(root) = idx.get(0) else { continue };
        if root.opaque() {
            tree.nodes[0].children.clear();
        }
        if !root.implicit() {
            tree.nodes[0].e = NewEntry {
                layer,
                opaque: false,
                ..root.to_new()
            };
            tree.nodes[0].implicit = false;
        }
        let mut stack: Vec<(usize, EntryId)> = vec![(0, 0)];
        while let Some((tdir, ldir)) = stack.pop() {
            for c in idx.children(ldir) {
                let Some(e) = idx.get(c) else { continue };
                let name = e.name();
                let existing = tree.child(tdir, name);
                match e.kind() {
                    Kind::Whiteout => {
                        tree.nodes[tdir].children.remove(name);
                    }
                    Kind::Dir => {
                        let node = match existing {
                            Some(n) if tree.nodes[n].e.kind == Kind::Dir => {
                                if e.opaque() {
                                    tree.nodes[n].children.clear();
                                }
                                n
                            }
                            _ => {
                                let id = tree.push(implicit_dir());
                                tree.set_child(tdir, name, id);
                                id
                            }
                        };
                        if !e.implicit() {
                            tree.nodes[node].e = NewEntry {
                                layer,
                                opaque: false,
                                ..e.to_new()
                            };
                            tree.nodes[node].implicit = false;
                        }
                        stack.push((node, c));
                    }
                    kind => {
                        let mut ne = NewEntry {
                            layer,
                            ..e.to_new()
                        };
                        if kind == Kind::Hardlink {
                            ne.kind = Kind::File;
                            ne.link = Vec::new();
                        }
                        let id = tree.push(Node {
                            e: ne,
                            implicit: false,
                            children: BTreeMap::new(),
                        });
                        tree.set_child(tdir, name, id);
                    }
                }
            }
        }
    }
    Ok(tree.write())
}

#[cfg(test)]
mod tests;
