//! An image's root filesystem read from its layers without unpacking them: the merged
//! chain index (which names every path of the image) and the layer tars its entries point
//! into. It is a COPY source (`COPY --from=stage|image`) and the tree a destination is
//! resolved in (the image's own symlinks such as `/bin -> usr/bin`, its `/etc/passwd`).
//!
//! Never writes; never reads a tar outside an entry's data range. Invariant: every file's
//! data range was checked against its tar's length when the view was opened.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::context::{ContextError, Result};
use super::view::{Node, View};
use crate::tarindex::{Entry, Index, Kind};

/// The files of an image (or of a build stage so far).
pub struct ImageFs {
    name: String,
    /// `None`: the empty image (`FROM scratch`).
    index: Option<Index<Vec<u8>>>,
    tars: Vec<File>,
}

impl std::fmt::Debug for ImageFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFs").field("name", &self.name).finish()
    }
}

impl ImageFs {
    /// Opens the merged index `index` of a chain whose layer tars are `tars` (bottom
    /// first, as `Store::chain_index` and `Paths::layer_tar` name them). `name` is what
    /// errors call it (`image alpine:3.20`, `stage builder`).
    pub fn open(name: &str, index: &Path, tars: &[PathBuf]) -> Result<ImageFs> {
        let ierr = |path: &Path| {
            let name = name.to_owned();
            let path = path.display().to_string();
            move |source| ContextError::ReadImage {
                image: name.clone(),
                path: path.clone(),
                source,
            }
        };
        let bytes = std::fs::read(index).map_err(ierr(index))?;
        let index_ok = Index::open(bytes)
            .map_err(|e| ierr(index)(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
        let mut files = Vec::with_capacity(tars.len());
        let mut lens = Vec::with_capacity(tars.len());
        for t in tars {
            let f = File::open(t).map_err(ierr(t))?;
            lens.push(f.metadata().map_err(ierr(t))?.len());
            files.push(f);
        }
        for id in 0..index_ok.len() {
            let Some(e) = index_ok.get(id) else { continue };
            if e.kind() != Kind::File {
                continue;
            }
            let fits = lens.get(usize::from(e.layer())).is_some_and(|&len| {
                e.data_offset()
                    .checked_add(e.size())
                    .is_some_and(|end| end <= len)
            });
            if !fits {
                return Err(ierr(index)(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the data of {:?} lies outside layer {}",
                        String::from_utf8_lossy(&index_ok.path(id)),
                        e.layer()
                    ),
                )));
            }
        }
        Ok(ImageFs {
            name: name.to_owned(),
            index: Some(index_ok),
            tars: files,
        })
    }

    /// The empty image (`FROM scratch`, or a stage with no layer yet).
    pub fn empty(name: &str) -> ImageFs {
        ImageFs {
            name: name.to_owned(),
            index: None,
            tars: Vec::new(),
        }
    }

    /// The bytes of the regular file at `path` after resolving symlinks inside the image
    /// (e.g. `etc/passwd`); `None` when there is none.
    pub fn read_file(&self, path: &[u8], limit: u64) -> Result<Option<Vec<u8>>> {
        let r = super::view::resolve(self, "COPY", path, true)?;
        let Some(node) = r.node.filter(|n| n.kind == Kind::File) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        self.open(&r.path, &node)?
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|source| self.read_err(&r.path, source))?;
        Ok(Some(out))
    }

    fn read_err(&self, rel: &[u8], source: io::Error) -> ContextError {
        ContextError::ReadImage {
            image: self.name.clone(),
            path: String::from_utf8_lossy(rel).into_owned(),
            source,
        }
    }
}

impl View for ImageFs {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn node(&self, rel: &[u8]) -> Result<Option<Node>> {
        let Some(index) = &self.index else {
            return Ok(rel.is_empty().then(|| Node {
                kind: Kind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                mtime: (0, 0),
                link: Vec::new(),
                identity: (0, 0),
                nlink: 1,
                rdev: 0,
                ctime: (0, 0),
            }));
        };
        Ok(index
            .lookup(rel)
            .and_then(|id| index.get(id))
            .map(|e| node_of(&e)))
    }

    fn children(&self, rel: &[u8]) -> Result<Vec<(Vec<u8>, Node)>> {
        let Some(index) = &self.index else {
            return Ok(Vec::new());
        };
        let Some(id) = index.lookup(rel) else {
            return Ok(Vec::new());
        };
        Ok(index
            .children(id)
            .filter_map(|c| index.get(c).map(|e| (e.name().to_vec(), node_of(&e))))
            .collect())
    }

    fn open(&self, rel: &[u8], node: &Node) -> Result<Box<dyn Read + '_>> {
        let e = self
            .index
            .as_ref()
            .and_then(|i| i.lookup(rel).and_then(|id| i.get(id)))
            .filter(|e| e.kind() == Kind::File);
        let Some(e) = e else {
            return Err(self.read_err(rel, io::ErrorKind::NotFound.into()));
        };
        let Some(file) = self.tars.get(usize::from(e.layer())) else {
            return Err(self.read_err(rel, io::ErrorKind::NotFound.into()));
        };
        Ok(Box::new(At {
            file,
            pos: e.data_offset(),
            left: node.size.min(e.size()),
        }))
    }
}

/// Reads `left` bytes of `file` from `pos` (positioned reads: many readers share a file).
struct At<'a> {
    file: &'a File,
    pos: u64,
    left: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

fn node_of(e: &Entry<'_>) -> Node {
    let (major, minor) = e.rdev();
    Node {
        kind: e.kind(),
        mode: e.mode(),
        uid: e.uid(),
        gid: e.gid(),
        size: if e.kind() == Kind::File { e.size() } else { 0 },
        mtime: e.mtime(),
        link: e.link().to_vec(),
        identity: (0, u64::from(e.ino())),
        nlink: e.nlink(),
        rdev: makedev(major, minor),
        ctime: (0, 0),
    }
}

/// The kernel's device number encoding (glibc's `makedev`).
fn makedev(major: u32, minor: u32) -> u64 {
    let (ma, mi) = (u64::from(major), u64::from(minor));
    ((ma & 0xfff) << 8) | ((ma & !0xfff) << 32) | (mi & 0xff) | ((mi & !0xff) << 12)
}
