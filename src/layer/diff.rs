//! Upper dir -> layer tar: the writable layer of a container (or a build step) becomes a
//! layer by one sorted walk.
//!
//! The upper dir already holds deletions in OCI form (`.wh.NAME` files, `.wh..wh..opq`
//! markers), so they are written as they are. What the container sees as owner and mode
//! (the server runs as one host user) comes from the caller through [`Owner`]: this module
//! reads no ownership records itself (they belong to the overlay) and never follows a
//! symlink. Invariant: the output is deterministic for a given tree (names sorted by bytes,
//! hardlinks written once then as links, no host uid/gid leaks when the caller knows better).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::LayerError;

/// What the container sees for one upper entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    /// Full `st_mode` (type bits included: a device node can be kept as a plain host file).
    pub mode: u32,
    /// Device number in the kernel encoding, for device nodes.
    pub rdev: u64,
    /// Extended attributes to record (e.g. `security.capability`).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn walk_err(path: &Path) -> impl Fn(io::Error) -> LayerError + '_ {
    move |source| LayerError::ReadUpper {
        path: path.to_path_buf(),
        source,
    }
}

fn dev_split(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Writes the tree under `upper` as a layer tar to `out`; returns the number of entries.
/// `owner(rel_path, host_metadata)` gives the container's view of an entry, or `None` for
/// "as on the host, owned by the container's root".
pub fn diff<W: Write>(
    upper: &Path,
    owner: &dyn Fn(&[u8], &fs::Metadata) -> Option<Owner>,
    out: W,
) -> Result<u64, LayerError> {
    diff_with(upper, owner, &|_, _| true, out)
}

/// [`diff`], leaving out the entries (and what is below them) for which
/// `keep(rel_path, host_metadata)` is false (the mount points a runtime made).
pub fn diff_with<W: Write>(
    upper: &Path,
    owner: &dyn Fn(&[u8], &fs::Metadata) -> Option<Owner>,
    keep: &dyn Fn(&[u8], &fs::Metadata) -> bool,
    out: W,
) -> Result<u64, LayerError> {
    let mut tar = tar::Builder::new(out);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut entries = 0u64;
    // depth-first, children sorted by name bytes; (host path, relative path)
    let mut stack: Vec<(PathBuf, PathBuf)> = Vec::new();
    let push_children = |stack: &mut Vec<(PathBuf, PathBuf)>, dir: &Path, rel: &Path| {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(walk_err(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(walk_err(dir))?;
        names.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
        for n in names {
            stack.push((dir.join(&n), rel.join(&n)));
        }
        Ok::<(), LayerError>(())
    };
    push_children(&mut stack, upper, Path::new(""))?;
    while let Some((host, rel)) = stack.pop() {
        let meta = fs::symlink_metadata(&host).map_err(walk_err(&host))?;
        if !keep(rel.as_os_str().as_bytes(), &meta) {
            continue;
        }
        let own = owner(rel.as_os_str().as_bytes(), &meta).unwrap_or_else(|| Owner {
            uid: 0,
            gid: 0,
            mode: meta.mode(),
            rdev: meta.rdev(),
            xattrs: Vec::new(),
        });
        let ft = meta.file_type();
        let typ = own.mode & libc::S_IFMT;
        let mut h = tar::Header::new_gnu();
        h.set_mode(own.mode & 0o7777);
        h.set_uid(u64::from(own.uid));
        h.set_gid(u64::from(own.gid));
        h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        h.set_size(0);
        let werr = |e: io::Error| LayerError::WriteTar(e);
        if !own.xattrs.is_empty() {
            let keys: Vec<(String, &[u8])> = own
                .xattrs
                .iter()
                .map(|(k, v)| {
                    (
                        format!("SCHILY.xattr.{}", String::from_utf8_lossy(k)),
                        &v[..],
                    )
                })
                .collect();
            tar.append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(werr)?;
        }
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut h, &rel, io::empty()).map_err(werr)?;
            push_children(&mut stack, &host, &rel)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&host).map_err(walk_err(&host))?;
            h.set_entry_type(tar::EntryType::Symlink);
            tar.append_link(&mut h, &rel, &target).map_err(werr)?;
        } else if ft.is_file() && matches!(typ, libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO) {
            // a device node or fifo the container made, kept as a plain host file
            let (major, minor) = dev_split(own.rdev);
            h.set_entry_type(match typ {
                libc::S_IFCHR => tar::EntryType::Char,
                libc::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            h.set_device_major(major).map_err(werr)?;
            h.set_device_minor(minor).map_err(werr)?;
            tar.append_data(&mut h, &rel, io::empty()).map_err(werr)?;
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            // whiteouts may share one inode (the overlay links them all to one empty
            // file, as the kernel's does): each is an entry of its own, never a link
            let marker = rel
                .file_name()
                .is_some_and(|n| n.as_bytes().starts_with(b".wh."));
            if meta.nlink() > 1 && !marker {
                if let Some(first) = links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    tar.append_link(&mut h, &rel, first).map_err(werr)?;
                    entries += 1;
                    continue;
                }
                links.insert(key, rel.clone());
            }
            let f = fs::File::open(&host).map_err(walk_err(&host))?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            // a file that changes size while read would make a corrupt tar: read exactly
            // the size recorded, and fail if it shrank
            let mut data = io::Read::take(f, meta.len());
            let mut counted = CountingReader {
                inner: &mut data,
                n: 0,
            };
            tar.append_data(&mut h, &rel, &mut counted).map_err(werr)?;
            if counted.n != meta.len() {
                return Err(walk_err(&host)(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being read",
                )));
            }
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let (major, minor) = dev_split(meta.rdev());
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            h.set_device_major(major).map_err(werr)?;
            h.set_device_minor(minor).map_err(werr)?;
            tar.append_data(&mut h, &rel, io::empty()).map_err(werr)?;
        } else {
            // sockets do not go into layers (docker skips them too)
            continue;
        }
        entries += 1;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(LayerError::WriteTar)?;
    Ok(entries)
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: io::Read> io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::ingest;
    use crate::tarindex::{Index, Kind};

    #[test]
    fn an_upper_dir_round_trips_through_ingest() {
        let d = tempfile::tempdir().unwrap();
        let up = d.path();
        fs::create_dir_all(up.join("etc/ssl")).unwrap();
        fs::write(up.join("etc/hostname"), b"box\n").unwrap();
        fs::write(up.join("etc/.wh.motd"), b"").unwrap();
        fs::write(up.join("etc/ssl/.wh..wh..opq"), b"").unwrap();
        fs::write(up.join("etc/ssl/cert.pem"), vec![b'c'; 3000]).unwrap();
        fs::hard_link(up.join("etc/ssl/cert.pem"), up.join("etc/ssl/same.pem")).unwrap();
        std::os::unix::fs::symlink("../../outside", up.join("etc/escape")).unwrap();
        let long = "L".repeat(200);
        fs::write(up.join(&long), b"long").unwrap();
        fs::write(up.join("null"), b"").unwrap();
        let owner = |rel: &[u8], m: &fs::Metadata| -> Option<Owner> {
            match rel {
                b"etc/hostname" => Some(Owner {
                    uid: 1000,
                    gid: 1001,
                    mode: m.mode() & !0o777 | 0o600,
                    rdev: 0,
                    xattrs: vec![(b"user.k".to_vec(), b"v".to_vec())],
                }),
                b"null" => Some(Owner {
                    mode: libc::S_IFCHR | 0o666,
                    rdev: (1 << 8) | 3,
                    ..Owner::default()
                }),
                _ => None,
            }
        };
        let mut tar = Vec::new();
        let n = diff(up, &owner, &mut tar).unwrap();
        assert_eq!(n, 10);
        let mut again = Vec::new();
        diff(up, &owner, &mut again).unwrap();
        assert_eq!(tar, again, "deterministic");

        let (mut t, mut idx) = (Vec::new(), Vec::new());
        ingest(&tar[..], &mut t, &mut idx).unwrap();
        let idx = Index::open(&idx[..]).unwrap();
        let get = |p: &str| idx.get(idx.lookup(p.as_bytes()).unwrap()).unwrap();
        let h = get("etc/hostname");
        assert_eq!((h.uid(), h.gid(), h.mode()), (1000, 1001, 0o600));
        assert_eq!(
            h.xattrs().collect::<Vec<_>>(),
            [(&b"user.k"[..], &b"v"[..])]
        );
        let off = h.data_offset() as usize;
        assert_eq!(&t[off..off + 4], b"box\n");
        assert_eq!(get("etc/motd").kind(), Kind::Whiteout);
        assert!(get("etc/ssl").opaque());
        assert_eq!(get("etc/ssl/same.pem").ino(), get("etc/ssl/cert.pem").ino());
        assert_eq!(get("etc/escape").link(), b"../../outside");
        assert_eq!(get(&long).size(), 4);
        let null = get("null");
        assert_eq!(
            (null.kind(), null.rdev(), null.mode()),
            (Kind::Char, (1, 3), 0o666)
        );
        assert_eq!(get("etc").uid(), 0, "no record: the container's root");
    }

    #[test]
    fn whiteouts_sharing_an_inode_stay_whiteouts() {
        let d = tempfile::tempdir().unwrap();
        let up = d.path();
        fs::create_dir(up.join("a")).unwrap();
        fs::write(up.join(".wh.x"), b"").unwrap();
        fs::hard_link(up.join(".wh.x"), up.join("a/.wh.y")).unwrap();
        fs::hard_link(up.join(".wh.x"), up.join("a/.wh..wh..opq")).unwrap();
        let mut tar = Vec::new();
        diff(up, &|_, _| None, &mut tar).unwrap();
        let mut ar = tar::Archive::new(&tar[..]);
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            assert_ne!(
                e.header().entry_type(),
                tar::EntryType::Link,
                "{:?}",
                e.path()
            );
        }
        let (mut t, mut idx) = (Vec::new(), Vec::new());
        ingest(&tar[..], &mut t, &mut idx).unwrap();
        let idx = Index::open(&idx[..]).unwrap();
        let get = |p: &str| idx.get(idx.lookup(p.as_bytes()).unwrap()).unwrap();
        assert_eq!(get("x").kind(), Kind::Whiteout);
        assert_eq!(get("a/y").kind(), Kind::Whiteout);
        assert!(get("a").opaque());
    }

    #[test]
    fn a_missing_upper_dir_is_an_error_naming_it() {
        let err = diff(Path::new("/nonexistent/upper"), &|_, _| None, io::sink()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/upper"), "{err}");
    }
}
