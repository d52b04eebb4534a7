//! Safe extraction of a tar into a directory (`cp` into a container, `ADD` of an archive).
//!
//! Every path is normalised as docker does (`..` cannot climb above the root) and then
//! resolved by the kernel with `openat2(RESOLVE_IN_ROOT)` relative to the destination, so a
//! symlink met on the way (in the tar or already in the directory) is followed as if the
//! destination were `/`: nothing is ever created, written or linked outside it. The last
//! component is never followed: an existing entry is replaced (unlinked), not written
//! through. A path through a symlink whose target is missing is refused, not created.
//! Ownership is not applied (a rootless process cannot chown): each entry is
//! reported to the caller, who records it (the overlay keeps it in an xattr). Device nodes
//! cannot be made rootless: they become empty files, reported with their real kind.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{UnlinkatFlags, linkat, symlinkat, unlinkat};

use super::{Compression, LayerError, decoder, normalise};
use crate::tarindex::{Kind, NewEntry};

fn ext_err(path: &[u8]) -> impl Fn(Errno) -> LayerError + '_ {
    move |e| LayerError::Extract {
        path: String::from_utf8_lossy(path).into_owned(),
        source: io::Error::from(e),
    }
}

fn io_err(path: &[u8]) -> impl Fn(io::Error) -> LayerError + '_ {
    move |source| LayerError::Extract {
        path: String::from_utf8_lossy(path).into_owned(),
        source,
    }
}

fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&c| c == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(b)
}

/// Opens the directory `rel` resolved inside `root`.
fn open_dir(root: &OwnedFd, rel: &[u8]) -> Result<OwnedFd, Errno> {
    let rel = if rel.is_empty() { &b"."[..] } else { rel };
    let how = OpenHow::new()
        .flags(OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root.as_fd(), os(rel), how)
}

/// Opens the directory `rel` inside `root`, making missing components (0755).
fn ensure_dir(root: &OwnedFd, rel: &[u8]) -> Result<OwnedFd, Errno> {
    match open_dir(root, rel) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let mut cur: Vec<u8> = Vec::new();
    let mut fd = open_dir(root, b"")?;
    for c in rel.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if !cur.is_empty() {
            cur.push(b'/');
        }
        cur.extend_from_slice(c);
        fd = match open_dir(root, &cur) {
            Err(Errno::ENOENT) => {
                // EEXIST here is a symlink whose target is not there: refused (ENOENT)
                // rather than guessed at
                mkdirat(fd.as_fd(), os(c), Mode::from_bits_truncate(0o755))
                    .map_err(|e| if e == Errno::EEXIST { Errno::ENOENT } else { e })?;
                open_dir(root, &cur)?
            }
            other => other?,
        };
    }
    Ok(fd)
}

/// Removes `name` from `dir` unless it is a directory; fine if it is not there.
fn clear(dir: &OwnedFd, name: &[u8]) -> Result<(), Errno> {
    match unlinkat(dir.as_fd(), os(name), UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Extracts the tar (plain, gzip or zstd) from `input` into `dest`; returns the number of
/// entries. `on_entry(path, entry)` is told each entry made (path normalised, relative to
/// `dest`), with the owner, mode and kind the tar gave it.
pub fn extract<R: Read>(
    input: R,
    dest: &Path,
    on_entry: &mut dyn FnMut(&[u8], &NewEntry),
) -> Result<u64, LayerError> {
    let dest_b = dest.as_os_str().as_bytes();
    let root: OwnedFd = File::open(dest).map_err(io_err(dest_b))?.into();
    let mut input = io::BufReader::new(input);
    let head = io::BufRead::fill_buf(&mut input).map_err(io_err(dest_b))?;
    let compression = Compression::detect(head).map_err(LayerError::UnsupportedCompression)?;
    let reader = decoder(compression, input).map_err(io_err(dest_b))?;
    let mut archive = tar::Archive::new(reader);
    let mut dirs: Vec<(Vec<u8>, i64)> = Vec::new();
    let mut count = 0u64;
    for entry in archive.entries().map_err(io_err(dest_b))? {
        let mut entry = entry.map_err(io_err(dest_b))?;
        let raw = entry.path_bytes().into_owned();
        let path = normalise(&raw);
        let h = entry.header();
        let bad = |why: &str| LayerError::Extract {
            path: String::from_utf8_lossy(&raw).into_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, why.to_owned()),
        };
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Link => Kind::Hardlink,
            tar::EntryType::Char => Kind::Char,
            tar::EntryType::Block => Kind::Block,
            tar::EntryType::Fifo => Kind::Fifo,
            tar::EntryType::GNUSparse => return Err(bad("sparse files are not supported")),
            tar::EntryType::XGlobalHeader => continue,
            _ => return Err(bad("an entry type camada does not extract")),
        };
        let mode = h.mode().map_err(io_err(&raw))? & 0o7777;
        let ne = NewEntry {
            path: path.clone(),
            kind,
            mode,
            uid: h
                .uid()
                .ok()
                .and_then(|u| u32::try_from(u).ok())
                .unwrap_or(0),
            gid: h
                .gid()
                .ok()
                .and_then(|u| u32::try_from(u).ok())
                .unwrap_or(0),
            mtime: h
                .mtime()
                .ok()
                .and_then(|t| i64::try_from(t).ok())
                .unwrap_or(0),
            rdev_major: h.device_major().ok().flatten().unwrap_or(0),
            rdev_minor: h.device_minor().ok().flatten().unwrap_or(0),
            link: entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default(),
            size: if kind == Kind::File {
                h.size().unwrap_or(0)
            } else {
                0
            },
            ..NewEntry::default()
        };
        let (parent, base) = split(&path);
        if base.is_empty() {
            // the root itself: only its metadata could change; leave the destination be
            on_entry(&path, &ne);
            count += 1;
            continue;
        }
        let pfd = ensure_dir(&root, parent).map_err(ext_err(&path))?;
        let perm = Mode::from_bits_truncate(mode);
        match kind {
            Kind::Dir => {
                match mkdirat(pfd.as_fd(), os(base), perm) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        // an existing directory is kept (merged into); anything else goes
                        if open_dir(&root, &path).is_err() {
                            clear(&pfd, base).map_err(ext_err(&path))?;
                            mkdirat(pfd.as_fd(), os(base), perm).map_err(ext_err(&path))?;
                        }
                    }
                    Err(e) => return Err(ext_err(&path)(e)),
                }
                fchmodat(pfd.as_fd(), os(base), perm, FchmodatFlags::NoFollowSymlink)
                    .or_else(|e| {
                        if e == Errno::EOPNOTSUPP {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(ext_err(&path))?;
                dirs.push((path.clone(), ne.mtime));
            }
            Kind::File | Kind::Char | Kind::Block => {
                clear(&pfd, base).map_err(ext_err(&path))?;
                let fd = openat(
                    pfd.as_fd(),
                    os(base),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(ext_err(&path))?;
                let mut f = File::from(fd);
                if kind == Kind::File {
                    io::copy(&mut entry, &mut f).map_err(io_err(&path))?;
                }
                fchmod(f.as_fd(), perm).map_err(ext_err(&path))?;
            }
            Kind::Symlink => {
                clear(&pfd, base).map_err(ext_err(&path))?;
                symlinkat(os(&ne.link), pfd.as_fd(), os(base)).map_err(ext_err(&path))?;
            }
            Kind::Hardlink => {
                let target = normalise(&ne.link);
                let (tp, tb) = split(&target);
                if tb.is_empty() {
                    return Err(bad("a hardlink to the root"));
                }
                let tfd = open_dir(&root, tp).map_err(ext_err(&target))?;
                clear(&pfd, base).map_err(ext_err(&path))?;
                linkat(tfd.as_fd(), os(tb), pfd.as_fd(), os(base), AtFlags::empty())
                    .map_err(ext_err(&path))?;
            }
            Kind::Fifo => {
                clear(&pfd, base).map_err(ext_err(&path))?;
                mknodat(pfd.as_fd(), os(base), SFlag::S_IFIFO, perm, 0).map_err(ext_err(&path))?;
            }
            Kind::Whiteout => {}
        }
        if !matches!(kind, Kind::Dir | Kind::Hardlink) {
            let t = TimeSpec::new(ne.mtime, 0);
            utimensat(
                pfd.as_fd(),
                os(base),
                &t,
                &t,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(ext_err(&path))?;
        }
        on_entry(&path, &ne);
        count += 1;
    }
    // directory times last: making their children changed them
    for (path, mtime) in dirs.iter().rev() {
        let (parent, base) = split(path);
        if let Ok(pfd) = open_dir(&root, parent) {
            let t = TimeSpec::new(*mtime, 0);
            let _ = utimensat(
                pfd.as_fd(),
                os(base),
                &t,
                &t,
                UtimensatFlags::NoFollowSymlink,
            );
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn entry(
        b: &mut tar::Builder<Vec<u8>>,
        kind: tar::EntryType,
        path: &str,
        data: &[u8],
        link: &str,
    ) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o640);
        h.set_uid(1000);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        // write the name bytes raw: the tar crate refuses `..` in set_path
        let name = path.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if !link.is_empty() {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    #[test]
    fn nothing_lands_outside_the_destination() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("root");
        let outside = d.path().join("outside");
        fs::create_dir_all(&dest).unwrap();
        fs::create_dir_all(&outside).unwrap();
        let out_s = outside.to_str().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let t = tar::EntryType::Regular;
        entry(&mut b, t, "../../escape1", b"1", "");
        entry(&mut b, t, "/abs/escape2", b"2", "");
        entry(&mut b, tar::EntryType::Symlink, "toroot", b"", "/");
        entry(&mut b, t, "toroot/etc/x", b"3", "");
        entry(&mut b, tar::EntryType::Symlink, "evil", b"", out_s);
        entry(&mut b, t, "evil", b"", "");
        entry(&mut b, tar::EntryType::Symlink, "evil2", b"", "/etc");
        entry(&mut b, t, "evil2/planted", b"4", "");
        entry(&mut b, tar::EntryType::Symlink, "up", b"", "../../..");
        entry(&mut b, t, "up/planted2", b"5", "");
        entry(&mut b, tar::EntryType::Link, "hl", b"", "../etc/x");
        entry(&mut b, tar::EntryType::Symlink, "over", b"", out_s);
        entry(&mut b, t, "over", b"replaced, not written through", "");
        let tar = b.into_inner().unwrap();
        let mut seen = Vec::new();
        let n = extract(&tar[..], &dest, &mut |p, e| seen.push((p.to_vec(), e.uid))).unwrap();
        assert_eq!(n, 13);
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
        assert_eq!(fs::read(dest.join("escape1")).unwrap(), b"1");
        assert_eq!(fs::read(dest.join("abs/escape2")).unwrap(), b"2");
        assert_eq!(fs::read(dest.join("etc/x")).unwrap(), b"3");
        assert_eq!(fs::read(dest.join("etc/planted")).unwrap(), b"4");
        assert_eq!(fs::read(dest.join("planted2")).unwrap(), b"5");
        assert_eq!(fs::read(dest.join("hl")).unwrap(), b"3");
        assert!(fs::symlink_metadata(dest.join("evil")).unwrap().is_file());
        assert!(fs::symlink_metadata(dest.join("over")).unwrap().is_file());
        assert_eq!(
            seen[0],
            (b"escape1".to_vec(), 1000),
            "ownership is reported"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(dest.join("escape1"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o640
        );
    }

    #[test]
    fn a_path_through_a_dangling_symlink_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("root");
        let outside = d.path().join("outside");
        fs::create_dir_all(&dest).unwrap();
        fs::create_dir_all(&outside).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        entry(
            &mut b,
            tar::EntryType::Symlink,
            "evil",
            b"",
            outside.to_str().unwrap(),
        );
        entry(&mut b, tar::EntryType::Regular, "evil/planted", b"4", "");
        let err = extract(&b.into_inner().unwrap()[..], &dest, &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("evil/planted"), "{err}");
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
    }

    #[test]
    fn a_hardlink_to_a_missing_target_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, tar::EntryType::Link, "hl", b"", "nope/x");
        let err = extract(&b.into_inner().unwrap()[..], d.path(), &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
