//! The layer index format: what a layer tar holds, findable without reading the tar.
//!
//! API CONTRACT (stub: the bodies are being written; keep these signatures, extend freely).
//!
//! An index is a byte buffer (usually an mmapped file) made by [`IndexBuilder`] and read
//! by [`Index`]. Entries are numbered by [`EntryId`]; 0 is the root directory. A directory's
//! children are contiguous and sorted by name bytes, so lookup of a name in a directory is a
//! binary search and listing a directory is a slice: no scan. Pure: bytes in, entries out.
//! Opening arbitrary bytes never panics: [`Index::open`] checks what accessors rely on.

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
}

/// Collects entries and writes the index bytes.
#[derive(Default)]
pub struct IndexBuilder {}

impl IndexBuilder {
    pub fn new() -> IndexBuilder {
        todo!()
    }
    /// Adds an entry. A later entry for the same path replaces the earlier one (tar
    /// semantics); missing parent directories are made (0755, root-owned).
    pub fn add(&mut self, _e: NewEntry) -> Result<(), IndexError> {
        todo!()
    }
    /// The finished index bytes.
    pub fn finish(self) -> Vec<u8> {
        todo!()
    }
}

/// A read-only view of index bytes.
pub struct Index<B> {
    bytes: B,
}

/// One entry, borrowed from the index.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    _bytes: &'a [u8],
}

impl<'a> Entry<'a> {
    pub fn id(&self) -> EntryId {
        todo!()
    }
    /// The last path component (`b""` for the root).
    pub fn name(&self) -> &'a [u8] {
        todo!()
    }
    pub fn kind(&self) -> Kind {
        todo!()
    }
    pub fn mode(&self) -> u32 {
        todo!()
    }
    pub fn uid(&self) -> u32 {
        todo!()
    }
    pub fn gid(&self) -> u32 {
        todo!()
    }
    pub fn mtime(&self) -> (i64, u32) {
        todo!()
    }
    pub fn size(&self) -> u64 {
        todo!()
    }
    pub fn data_offset(&self) -> u64 {
        todo!()
    }
    pub fn link(&self) -> &'a [u8] {
        todo!()
    }
    pub fn rdev(&self) -> (u32, u32) {
        todo!()
    }
    pub fn xattrs(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        std::iter::empty()
    }
    pub fn opaque(&self) -> bool {
        todo!()
    }
    pub fn layer(&self) -> u16 {
        todo!()
    }
    pub fn parent(&self) -> EntryId {
        todo!()
    }
    /// Hardlinked names share an inode: the id of the group's first entry (else `id()`).
    pub fn ino(&self) -> EntryId {
        todo!()
    }
    /// Link count: names sharing `ino` for files; 2 + subdirectories for directories.
    pub fn nlink(&self) -> u32 {
        todo!()
    }
}

impl<B: AsRef<[u8]>> Index<B> {
    /// Checks the bytes; after `Ok`, no accessor panics whatever the bytes were.
    pub fn open(bytes: B) -> Result<Index<B>, IndexError> {
        let _ = bytes.as_ref();
        todo!()
    }
    pub fn len(&self) -> u32 {
        let _ = self.bytes.as_ref();
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn get(&self, _id: EntryId) -> Option<Entry<'_>> {
        todo!()
    }
    /// By normalised relative path (`b""` is the root).
    pub fn lookup(&self, _path: &[u8]) -> Option<EntryId> {
        todo!()
    }
    pub fn lookup_child(&self, _dir: EntryId, _name: &[u8]) -> Option<EntryId> {
        todo!()
    }
    /// The ids of `dir`'s children, sorted by name (empty for a non-directory).
    pub fn children(&self, _dir: EntryId) -> Range<EntryId> {
        todo!()
    }
    /// The full relative path of an entry.
    pub fn path(&self, _id: EntryId) -> Vec<u8> {
        todo!()
    }
}

/// The lower view of a stack of layer indexes (bottom first): whiteouts and opaque
/// directories applied, hardlinks resolved, each entry's `layer` naming its tar.
pub fn merge<B: AsRef<[u8]>>(_layers: &[&Index<B>]) -> Result<Vec<u8>, IndexError> {
    todo!()
}
