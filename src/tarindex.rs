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

mod build;
mod merge;

pub use build::IndexBuilder;
pub use merge::merge;

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

#[cfg(test)]
mod tests;
