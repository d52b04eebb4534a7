//! Upper dir -> layer tar: the writable layer of a container (or a build step) becomes a
//! layer by one sorted walk.
//!
//! The upper dir already holds deletions in OCI form (`.wh.NAME` files, `.wh..wh..opq`
//! markers), so they are written as they are. What the container sees as owner and mode
//! (the server runs as one host user) comes from the caller through [`Owner`]: this module
//! reads no ownership records itself (they belong to the overlay). The walk reaches every
//! entry through its parent's open fd, as the overlay does ([`UpperDir`]): each directory is
//! opened `O_DIRECTORY|O_NOFOLLOW` relative to its parent, entries are `fstatat`ed without
//! following, files opened `O_NOFOLLOW`, and an entry replaced between its stat and its
//! open is an error; so a symlink planted in the upper dir is written as a link and never
//! leads the walk to a host file outside it. Invariant: the output is deterministic for a
//! given tree (names sorted by bytes, hardlinks written once then as links, no host uid/gid
//! leaks when the caller knows better).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};

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

/// A directory of an upper dir, open. Below the upper dir itself, each one was opened
/// relative to its parent's fd with `O_NOFOLLOW`, so none is ever reached through a symlink.
pub struct UpperDir {
    fd: OwnedFd,
    rel: Vec<u8>,
}

/// The `S_IFMT` bits of a stat.
pub fn kind_of(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

/// An error when the entry opened as `fd` is not the one `st` described (something else
/// was put in its place between the stat and the open).
fn same_entry(fd: &OwnedFd, st: &FileStat) -> io::Result<()> {
    let now = fstat(fd)?;
    if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino) {
        Ok(())
    } else {
        Err(io::Error::other("it was replaced while being read"))
    }
}

impl UpperDir {
    /// The upper dir at `path` (the store's own path to it).
    pub fn open(path: &Path) -> io::Result<UpperDir> {
        let fd = openat(
            AT_FDCWD,
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(UpperDir {
            fd,
            rel: Vec::new(),
        })
    }

    /// Its path under the upper dir (empty for the upper dir itself).
    pub fn rel(&self) -> &[u8] {
        &self.rel
    }

    /// The path under the upper dir of `name` in this directory.
    pub fn child_rel(&self, name: &[u8]) -> Vec<u8> {
        let mut v = self.rel.clone();
        if !v.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(name);
        v
    }

    /// The names it holds (`.` and `..` left out), sorted by bytes.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        // the copy shares the fd's offset: from the start, however often it is read
        let fd = self.fd.try_clone()?;
        nix::unistd::lseek(&fd, 0, nix::unistd::Whence::SeekSet)?;
        let mut names: Vec<OsString> = nix::dir::Dir::from_fd(fd)?
            .into_iter()
            .map(|e| e.map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string()))
            .filter(|n| !matches!(n.as_ref().map(|n| n.as_bytes()), Ok(b".") | Ok(b"..")))
            .collect::<Result<_, _>>()?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    /// `name`'s own stat (a symlink is the link, never what it points at).
    pub fn stat(&self, name: &OsStr) -> io::Result<FileStat> {
        Ok(fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)?)
    }

    /// The directory `name`, which `st` described; an error when a symlink or anything
    /// else has taken its place.
    pub fn open_dir(&self, name: &OsStr, st: &FileStat) -> io::Result<UpperDir> {
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        same_entry(&fd, st)?;
        Ok(UpperDir {
            fd,
            rel: self.child_rel(name.as_bytes()),
        })
    }

    /// The regular file `name`, which `st` described, open for reading; an error when a
    /// symlink or anything else has taken its place.
    pub fn open_file(&self, name: &OsStr, st: &FileStat) -> io::Result<File> {
        // O_NONBLOCK: a fifo put in its place must not block the open
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        same_entry(&fd, st)?;
        Ok(File::from(fd))
    }

    /// The target of the symlink `name`.
    pub fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        Ok(readlinkat(&self.fd, name)?)
    }

    /// Whether `name` (stat `st`) is a directory with nothing in it.
    pub fn is_empty_dir(&self, name: &OsStr, st: &FileStat) -> bool {
        kind_of(st) == SFlag::S_IFDIR
            && self
                .open_dir(name, st)
                .and_then(|d| d.names())
                .is_ok_and(|n| n.is_empty())
    }

    /// A path that reaches `name` through this directory's fd (`/proc/self/fd/N/NAME`), for
    /// the `l*` calls that take a path (xattrs): only `name` is looked up by them, and never
    /// followed.
    pub fn at(&self, name: &OsStr) -> PathBuf {
        Path::new(&format!("/proc/self/fd/{}", self.fd.as_raw_fd())).join(name)
    }
}

/// One entry of the upper dir as the walk reached it, for the caller's [`Owner`] and keep
/// decisions.
pub struct Entry<'a> {
    /// The directory it is in.
    pub dir: &'a UpperDir,
    pub name: &'a OsStr,
    /// Its path under the upper dir.
    pub rel: &'a [u8],
    /// Its own stat (a symlink is the link).
    pub stat: &'a FileStat,
}

impl Entry<'_> {
    /// Whether its type (`S_IFMT` bits) is `kind`.
    pub fn is(&self, kind: SFlag) -> bool {
        kind_of(self.stat) == kind
    }

    /// [`UpperDir::at`] of it.
    pub fn at(&self) -> PathBuf {
        self.dir.at(self.name)
    }
}

fn dev_split(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Writes the tree under `upper` as a layer tar to `out`; returns the number of entries.
/// `owner(entry)` gives the container's view of an entry, or `None` for "as on the host,
/// owned by the container's root".
pub fn diff<W: Write>(
    upper: &Path,
    owner: &dyn Fn(&Entry<'_>) -> Option<Owner>,
    out: W,
) -> Result<u64, LayerError> {
    diff_with(upper, owner, &|_| true, out)
}

/// A directory being walked: the names still to visit, last first.
struct Frame {
    dir: UpperDir,
    names: Vec<OsString>,
}

impl Frame {
    fn new(dir: UpperDir) -> io::Result<Frame> {
        let mut names = dir.names()?;
        names.reverse();
        Ok(Frame { dir, names })
    }
}

/// [`diff`], leaving out the entries (and what is below them) for which `keep(entry)` is
/// false (the mount points a runtime made).
pub fn diff_with<W: Write>(
    upper: &Path,
    owner: &dyn Fn(&Entry<'_>) -> Option<Owner>,
    keep: &dyn Fn(&Entry<'_>) -> bool,
    out: W,
) -> Result<u64, LayerError> {
    let walk_err = |rel: &[u8]| {
        let path = upper.join(OsStr::from_bytes(rel));
        move |source| LayerError::ReadUpper { path, source }
    };
    let werr = LayerError::WriteTar;
    let mut tar = tar::Builder::new(out);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut entries = 0u64;
    // depth-first, children sorted by name bytes; one open fd per level
    let root = UpperDir::open(upper)
        .and_then(Frame::new)
        .map_err(walk_err(b""))?;
    let mut stack = vec![root];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.names.pop() else {
            stack.pop();
            continue;
        };
        let dir = &top.dir;
        let rel_bytes = dir.child_rel(name.as_bytes());
        let rel = Path::new(OsStr::from_bytes(&rel_bytes));
        let st = dir.stat(&name).map_err(walk_err(&rel_bytes))?;
        let entry = Entry {
            dir,
            name: &name,
            rel: &rel_bytes,
            stat: &st,
        };
        if !keep(&entry) {
            continue;
        }
        let own = owner(&entry).unwrap_or_else(|| Owner {
            uid: 0,
            gid: 0,
            mode: st.st_mode,
            rdev: st.st_rdev,
            xattrs: Vec::new(),
        });
        let kind = kind_of(&st);
        let typ = own.mode & libc::S_IFMT;
        let mut h = tar::Header::new_gnu();
        h.set_mode(own.mode & 0o7777);
        h.set_uid(u64::from(own.uid));
        h.set_gid(u64::from(own.gid));
        h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        h.set_size(0);
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
        let mut below = None;
        if kind == SFlag::S_IFDIR {
            let sub = dir.open_dir(&name, &st).map_err(walk_err(&rel_bytes))?;
            h.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut h, rel, io::empty()).map_err(werr)?;
            below = Some(Frame::new(sub).map_err(walk_err(&rel_bytes))?);
        } else if kind == SFlag::S_IFLNK {
            let target = dir.read_link(&name).map_err(walk_err(&rel_bytes))?;
            h.set_entry_type(tar::EntryType::Symlink);
            tar.append_link(&mut h, rel, &target).map_err(werr)?;
        } else if kind == SFlag::S_IFREG
            && matches!(typ, libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO)
        {
            // a device node or fifo the container made, kept as a plain host file
            let (major, minor) = dev_split(own.rdev);
            h.set_entry_type(match typ {
                libc::S_IFCHR => tar::EntryType::Char,
                libc::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            h.set_device_major(major).map_err(werr)?;
            h.set_device_minor(minor).map_err(werr)?;
            tar.append_data(&mut h, rel, io::empty()).map_err(werr)?;
        } else if kind == SFlag::S_IFREG {
            let key = (st.st_dev, st.st_ino);
            // whiteouts may share one inode (the overlay links them all to one empty
            // file, as the kernel's does): each is an entry of its own, never a link
            let marker = name.as_bytes().starts_with(b".wh.");
            if st.st_nlink > 1 && !marker {
                if let Some(first) = links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    tar.append_link(&mut h, rel, first).map_err(werr)?;
                    entries += 1;
                    continue;
                }
                links.insert(key, rel.to_path_buf());
            }
            let f = dir.open_file(&name, &st).map_err(walk_err(&rel_bytes))?;
            let size = u64::try_from(st.st_size).unwrap_or(0);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(size);
            // a file that changes size while read would make a corrupt tar: read exactly
            // the size recorded, and fail if it shrank
            let mut data = io::Read::take(f, size);
            let mut counted = CountingReader {
                inner: &mut data,
                n: 0,
            };
            tar.append_data(&mut h, rel, &mut counted).map_err(werr)?;
            if counted.n != size {
                return Err(walk_err(&rel_bytes)(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being read",
                )));
            }
        } else if matches!(kind, SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO) {
            let (major, minor) = dev_split(st.st_rdev);
            h.set_entry_type(match kind {
                SFlag::S_IFCHR => tar::EntryType::Char,
                SFlag::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            h.set_device_major(major).map_err(werr)?;
            h.set_device_minor(minor).map_err(werr)?;
            tar.append_data(&mut h, rel, io::empty()).map_err(werr)?;
        } else {
            // sockets do not go into layers (docker skips them too)
            continue;
        }
        entries += 1;
        if let Some(frame) = below {
            stack.push(frame);
        }
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
    use std::fs;

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
        let owner = |e: &Entry<'_>| -> Option<Owner> {
            match e.rel {
                b"etc/hostname" => Some(Owner {
                    uid: 1000,
                    gid: 1001,
                    mode: e.stat.st_mode & !0o777 | 0o600,
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
        diff(up, &|_| None, &mut tar).unwrap();
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
    fn a_dir_lists_its_names_sorted_however_often_asked() {
        let d = tempfile::tempdir().unwrap();
        for n in ["b", "a", ".wh.c"] {
            fs::write(d.path().join(n), b"").unwrap();
        }
        let dir = UpperDir::open(d.path()).unwrap();
        let want = [".wh.c", "a", "b"].map(OsString::from);
        assert_eq!(dir.names().unwrap(), want);
        assert_eq!(dir.names().unwrap(), want);
    }

    #[test]
    fn a_missing_upper_dir_is_an_error_naming_it() {
        let err = diff(Path::new("/nonexistent/upper"), &|_| None, io::sink()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/upper"), "{err}");
    }

    /// The names and contents a layer tar holds.
    fn tar_entries(tar: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>)> {
        let mut ar = tar::Archive::new(tar);
        let mut out = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            io::Read::read_to_end(&mut e, &mut data).unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            out.push((path, e.header().entry_type(), data));
        }
        out
    }

    /// A host directory outside the upper dir, holding a file the walk must never read.
    fn host_secret(d: &Path) -> PathBuf {
        let host = d.join("host");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("secret"), b"host secret").unwrap();
        host
    }

    #[test]
    fn a_planted_symlink_is_written_as_a_link_and_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let host = host_secret(d.path());
        let up = d.path().join("upper");
        fs::create_dir(&up).unwrap();
        std::os::unix::fs::symlink(&host, up.join("etc")).unwrap();
        std::os::unix::fs::symlink(host.join("secret"), up.join("file")).unwrap();
        let mut tar = Vec::new();
        assert_eq!(diff(&up, &|_| None, &mut tar).unwrap(), 2);
        let mut ar = tar::Archive::new(&tar[..]);
        let got: Vec<_> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name().unwrap().map(|l| l.into_owned());
                let path = e.path().unwrap().into_owned();
                (path, e.header().entry_type(), e.size(), link)
            })
            .collect();
        let link =
            |name: &str, to: PathBuf| (PathBuf::from(name), tar::EntryType::Symlink, 0, Some(to));
        assert_eq!(
            got,
            [link("etc", host.clone()), link("file", host.join("secret"))]
        );
    }

    #[test]
    fn an_entry_swapped_for_a_symlink_under_the_walk_never_leads_outside() {
        // between the walk's stat of an entry and its open (the window the caller's owner
        // callback sits in), the entry is replaced by a symlink to the host: a directory
        // whose names would be listed, a file whose bytes would be read
        for victim in ["dir", "file"] {
            let d = tempfile::tempdir().unwrap();
            let host = host_secret(d.path());
            let up = d.path().join("upper");
            fs::create_dir_all(up.join("dir")).unwrap();
            fs::write(up.join("dir/mine"), b"mine").unwrap();
            fs::write(up.join("file"), b"a file of the container").unwrap();
            let swap = |e: &Entry<'_>| -> Option<Owner> {
                if e.rel == victim.as_bytes() {
                    let path = up.join(victim);
                    fs::rename(&path, d.path().join("moved")).unwrap();
                    let to = if victim == "dir" {
                        host.clone()
                    } else {
                        host.join("secret")
                    };
                    std::os::unix::fs::symlink(to, &path).unwrap();
                }
                None
            };
            let mut tar = Vec::new();
            let err = diff(&up, &swap, &mut tar).unwrap_err().to_string();
            assert!(err.contains(&format!("upper/{victim}")), "{victim}: {err}");
            let leaked = tar
                .windows(b"host secret".len())
                .any(|w| w == b"host secret");
            assert!(!leaked, "{victim}: the host file was read");
            for (name, _, _) in tar_entries(&tar) {
                assert!(!name.contains("secret"), "{victim}: {name} listed");
            }
        }
    }
}
