//! Layers for the overlay tests, made from one description two ways: as layer tars with
//! their merged camada index (what our overlay serves) and as overlayfs lower dirs
//! (what the kernel's overlayfs serves), so both can be given the same operations.

#![allow(dead_code)]

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use camada::tarindex::{Index, IndexBuilder, Kind, NewEntry};

/// Every fixture file has this mtime, so a stat can tell "kept" from "changed".
pub const MTIME: u64 = 1_000_000_000;

#[derive(Clone, Debug)]
pub enum Item {
    /// A dir holding this many empty files named f0, f1, ...
    Many(&'static str, usize),
    Dir(&'static str, u32),
    File(&'static str, u32, Vec<u8>),
    /// A file owned by (uid, gid).
    Owned(&'static str, u32, u32, u32, Vec<u8>),
    Symlink(&'static str, &'static str),
    /// A hardlink: (new name, existing name in the same layer).
    Hardlink(&'static str, &'static str),
    Fifo(&'static str),
    /// Deletes a lower name.
    Whiteout(&'static str),
    /// Hides the lower contents of a dir.
    Opaque(&'static str),
    /// A user xattr on a file or dir of this layer.
    Xattr(&'static str, &'static str, &'static [u8]),
}

pub type Layer = Vec<Item>;

/// The standard lower stack: three layers exercising deletions, opaque dirs,
/// hardlinks, symlinks, owners, xattrs, a fifo and a sparse-looking file.
pub fn standard() -> Vec<Layer> {
    use Item::*;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut holes = vec![0u8; 200_000];
    holes[150_000..150_010].copy_from_slice(b"0123456789");
    vec![
        vec![
            Dir("d1", 0o755),
            File("d1/f", 0o644, b"lower f\n".to_vec()),
            File("d1/g", 0o600, b"lower g\n".to_vec()),
            File("d1/w", 0o644, b"lower w\n".to_vec()),
            File("d1/t", 0o644, b"lower t, to truncate\n".to_vec()),
            Dir("d1/sub", 0o755),
            File("d1/sub/deep", 0o644, b"deep\n".to_vec()),
            Dir("d2", 0o700),
            File("d2/x", 0o644, b"x\n".to_vec()),
            File("d2/y", 0o644, b"y\n".to_vec()),
            File("a", 0o644, b"layer0 a\n".to_vec()),
            File("ro", 0o444, b"read only\n".to_vec()),
            Owned("owned", 0o640, 1000, 1000, b"owned\n".to_vec()),
            File("h1", 0o644, b"hardlinked\n".to_vec()),
            Hardlink("h2", "h1"),
            Hardlink("d1/h3", "h1"),
            Symlink("l1", "a"),
            Symlink("loop1", "loop2"),
            Symlink("loop2", "loop1"),
            Fifo("fifo"),
            File("big", 0o644, big),
            File("holes", 0o644, holes),
            Dir("gone", 0o755),
            File("gone/inside", 0o644, b"i\n".to_vec()),
            Dir("opq", 0o755),
            File("opq/old", 0o644, b"old\n".to_vec()),
            Xattr("a", "user.test", b"va"),
            Xattr("d1", "user.dir", b"vd"),
        ],
        vec![
            File("a", 0o644, b"layer1 a\n".to_vec()),
            Dir("d2", 0o700),
            Whiteout("d2/y"),
            Whiteout("gone"),
            Opaque("opq"),
            File("opq/new", 0o644, b"new\n".to_vec()),
            File("b", 0o755, b"b\n".to_vec()),
            Dir("d3", 0o755),
        ],
        vec![
            Dir("d3", 0o755),
            File("d3/z", 0o644, b"z\n".to_vec()),
            File("c", 0o644, b"c\n".to_vec()),
        ],
    ]
}

fn header(kind: tar::EntryType, path: &str, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_path(path).expect("fixture path");
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

/// A layer as a tar (OCI whiteouts).
pub fn tar_bytes(layer: &Layer) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for it in layer {
        match it {
            Item::Many(p, n) => {
                let mut h = header(tar::EntryType::Directory, p, 0o755, 0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
                for i in 0..*n {
                    let mut h = header(tar::EntryType::Regular, &format!("{p}/f{i}"), 0o644, 0);
                    h.set_cksum();
                    b.append(&h, &[][..]).unwrap();
                }
            }
            Item::Dir(p, m) => {
                let mut h = header(tar::EntryType::Directory, p, *m, 0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            Item::File(p, m, data) | Item::Owned(p, m, _, _, data) => {
                let mut h = header(tar::EntryType::Regular, p, *m, data.len() as u64);
                if let Item::Owned(_, _, u, g, _) = it {
                    h.set_uid(u64::from(*u));
                    h.set_gid(u64::from(*g));
                }
                h.set_cksum();
                b.append(&h, &data[..]).unwrap();
            }
            Item::Symlink(p, t) => {
                let mut h = header(tar::EntryType::Symlink, p, 0o777, 0);
                h.set_link_name(t).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            Item::Hardlink(p, t) => {
                let mut h = header(tar::EntryType::Link, p, 0o644, 0);
                h.set_link_name(t).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            Item::Fifo(p) => {
                let mut h = header(tar::EntryType::Fifo, p, 0o644, 0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            Item::Whiteout(p) => {
                let (dir, name) = match p.rsplit_once('/') {
                    Some((d, n)) => (format!("{d}/"), n),
                    None => (String::new(), *p),
                };
                let mut h = header(
                    tar::EntryType::Regular,
                    &format!("{dir}.wh.{name}"),
                    0o644,
                    0,
                );
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            Item::Opaque(p) => {
                let mut h = header(
                    tar::EntryType::Regular,
                    &format!("{p}/.wh..wh..opq"),
                    0o644,
                    0,
                );
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            Item::Xattr(..) => {}
        }
    }
    // Xattrs ride on PAX headers of a re-emitted entry: simplest is to re-add the entry
    // with a pax extension before it.
    for it in layer {
        if let Item::Xattr(p, k, v) = it {
            let orig = layer.iter().find_map(|i| match i {
                Item::File(q, m, d) if q == p => Some((tar::EntryType::Regular, *m, d.clone())),
                Item::Dir(q, m) if q == p => Some((tar::EntryType::Directory, *m, Vec::new())),
                _ => None,
            });
            let (kind, m, data) = orig.expect("xattr on a file or dir of the same layer");
            let key = format!("SCHILY.xattr.{k}");
            b.append_pax_extensions([(key.as_str(), *v)]).unwrap();
            let mut h = header(kind, p, m, data.len() as u64);
            h.set_cksum();
            b.append(&h, &data[..]).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// Indexes a layer tar the way the layer module does: data offsets, whiteouts, xattrs.
pub fn index_tar(tar_bytes: &[u8]) -> Vec<u8> {
    let mut ib = IndexBuilder::new();
    let mut ar = tar::Archive::new(tar_bytes);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path_bytes().into_owned();
        let path: Vec<u8> = path.strip_suffix(b"/").unwrap_or(&path).to_vec();
        let (dir, name) = match path.iter().rposition(|&c| c == b'/') {
            Some(i) => (path[..i].to_vec(), path[i + 1..].to_vec()),
            None => (Vec::new(), path.clone()),
        };
        if name == b".wh..wh..opq" {
            ib.set_opaque(&dir).unwrap();
            continue;
        }
        let h = e.header().clone();
        let mut ne = NewEntry {
            path: path.clone(),
            mode: h.mode().unwrap() & 0o7777,
            uid: h.uid().unwrap() as u32,
            gid: h.gid().unwrap() as u32,
            mtime: h.mtime().unwrap() as i64,
            ..NewEntry::default()
        };
        if let Some(x) = name.strip_prefix(b".wh.") {
            let mut p = dir.clone();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(x);
            ne.path = p;
            ne.kind = Kind::Whiteout;
            ib.add(ne).unwrap();
            continue;
        }
        if let Ok(Some(exts)) = e.pax_extensions() {
            for x in exts {
                let x = x.unwrap();
                if let Some(k) = x.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    ne.xattrs.push((k.to_vec(), x.value_bytes().to_vec()));
                }
            }
        }
        match h.entry_type() {
            tar::EntryType::Directory => ne.kind = Kind::Dir,
            tar::EntryType::Symlink => {
                ne.kind = Kind::Symlink;
                ne.link = e.link_name_bytes().unwrap().into_owned();
            }
            tar::EntryType::Link => {
                ne.kind = Kind::Hardlink;
                ne.link = e.link_name_bytes().unwrap().into_owned();
            }
            tar::EntryType::Fifo => ne.kind = Kind::Fifo,
            _ => {
                ne.kind = Kind::File;
                ne.size = h.size().unwrap();
                ne.data_offset = e.raw_file_position();
            }
        }
        std::io::copy(&mut e, &mut std::io::sink()).unwrap();
        ib.add(ne).unwrap();
    }
    ib.finish()
}

/// Everything the overlay needs on disk, under `dir`.
pub struct Built {
    pub tars: Vec<PathBuf>,
    pub merged: PathBuf,
    /// overlayfs lower dirs, bottom first (only when built as root).
    pub lower_dirs: Vec<PathBuf>,
}

pub fn build(dir: &Path, layers: &[Layer], kernel_dirs: bool) -> Built {
    let mut tars = Vec::new();
    let mut idx = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let t = tar_bytes(l);
        let p = dir.join(format!("layer{i}.tar"));
        fs::write(&p, &t).unwrap();
        idx.push(Index::open(index_tar(&t)).unwrap());
        tars.push(p);
    }
    let refs: Vec<&Index<Vec<u8>>> = idx.iter().collect();
    let merged = dir.join("merged.idx");
    fs::write(&merged, camada::tarindex::merge(&refs).unwrap()).unwrap();
    let mut lower_dirs = Vec::new();
    if kernel_dirs {
        for (i, l) in layers.iter().enumerate() {
            let d = dir.join(format!("lower{i}"));
            extract(&d, l);
            lower_dirs.push(d);
        }
    }
    Built {
        tars,
        merged,
        lower_dirs,
    }
}

fn set_mtime(p: &Path) {
    let t = nix::sys::time::TimeSpec::new(MTIME as i64, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// A layer as an overlayfs lower dir (char 0:0 whiteouts, trusted.overlay.opaque).
fn extract(d: &Path, layer: &Layer) {
    fs::create_dir_all(d).unwrap();
    let mut dirs = Vec::new();
    for it in layer {
        match it {
            Item::Many(p, n) => {
                let q = d.join(p);
                fs::create_dir_all(&q).unwrap();
                for i in 0..*n {
                    let f = q.join(format!("f{i}"));
                    fs::File::create(&f).unwrap();
                    set_mtime(&f);
                }
            }
            Item::Dir(p, m) => {
                let q = d.join(p);
                fs::create_dir_all(&q).unwrap();
                fs::set_permissions(&q, fs::Permissions::from_mode(*m)).unwrap();
                dirs.push(q);
            }
            Item::File(p, m, data) | Item::Owned(p, m, _, _, data) => {
                let q = d.join(p);
                fs::create_dir_all(q.parent().unwrap()).unwrap();
                fs::write(&q, data).unwrap();
                fs::set_permissions(&q, fs::Permissions::from_mode(*m)).unwrap();
                if let Item::Owned(_, _, u, g, _) = it {
                    std::os::unix::fs::lchown(&q, Some(*u), Some(*g)).unwrap();
                }
                set_mtime(&q);
            }
            Item::Symlink(p, t) => {
                let q = d.join(p);
                std::os::unix::fs::symlink(t, &q).unwrap();
                set_mtime(&q);
            }
            Item::Hardlink(p, t) => fs::hard_link(d.join(t), d.join(p)).unwrap(),
            Item::Fifo(p) => {
                let q = d.join(p);
                nix::unistd::mkfifo(&q, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
                set_mtime(&q);
            }
            Item::Whiteout(p) => {
                let q = d.join(p);
                fs::create_dir_all(q.parent().unwrap()).unwrap();
                nix::sys::stat::mknod(
                    &q,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::empty(),
                    0,
                )
                .unwrap();
            }
            Item::Opaque(p) => {
                let q = d.join(p);
                fs::create_dir_all(&q).unwrap();
                lsetxattr(&q, "trusted.overlay.opaque", b"y").unwrap();
                dirs.push(q);
            }
            Item::Xattr(p, k, v) => {
                lsetxattr(&d.join(p), k, v).unwrap();
            }
        }
    }
    for q in dirs.iter().rev() {
        set_mtime(q);
    }
}
pub mod ops;

/// `lsetxattr(2)` for fixtures and operations.
pub fn lsetxattr(p: &Path, k: &str, v: &[u8]) -> std::io::Result<()> {
    let cp = std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let ck = std::ffi::CString::new(k).map_err(std::io::Error::other)?;
    // SAFETY: NUL-terminated strings; v valid for its length.
    let r = unsafe { libc::lsetxattr(cp.as_ptr(), ck.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `lgetxattr(2)`, None when absent.
pub fn lgetxattr(p: &Path, k: &str) -> Option<Vec<u8>> {
    let cp = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let ck = std::ffi::CString::new(k).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated strings; buf valid for its length.
    let r =
        unsafe { libc::lgetxattr(cp.as_ptr(), ck.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return None;
    }
    buf.truncate(r as usize);
    Some(buf)
}

/// Every name of a hardlink group in the layers (the links and their targets).
pub fn hardlinked_names(layers: &[Layer]) -> Vec<String> {
    let mut v = Vec::new();
    for l in layers {
        for it in l {
            if let Item::Hardlink(a, b) = it {
                v.push(a.to_string());
                v.push(b.to_string());
            }
        }
    }
    v
}
