//! Operations run on a mounted overlay, with results written as comparable lines.
//!
//! The same list runs on our overlay and on the kernel's; each result line holds what
//! overlayfs defines (errno, type, permissions, owner, size, link count, whether mtime
//! kept the layer's value, inode identity within the run, bytes, listings, xattrs).

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::MTIME;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Op {
    Stat(String),
    Read(String),
    Write(String, Vec<u8>),
    Append(String, Vec<u8>),
    WriteAt(String, u64, Vec<u8>),
    Truncate(String, u64),
    Mkdir(String),
    Rmdir(String),
    Unlink(String),
    /// Renames unless the source is a directory (kernel overlayfs without redirect_dir
    /// refuses lower dirs with EXDEV; we allow it, tested apart).
    RenameFile(String, String),
    /// Any rename, directories included.
    Rename(String, String),
    /// mknod of a character device.
    MknodChar(String, u64, u64),
    RenameNoReplace(String, String),
    RenameExchange(String, String),
    Symlink(String, String),
    Readlink(String),
    Link(String, String),
    Chmod(String, u32),
    Chown(String, u32, u32),
    Utimes(String, i64),
    List(String),
    Mkfifo(String),
    SetXattr(String, String, Vec<u8>),
    GetXattr(String, String),
    ListXattr(String),
    RemoveXattr(String, String),
    /// Opens, unlinks, then fstats the open file: nlink and bytes.
    OpenUnlinkFstat(String),
    /// Open for reading and writing, remove the name, write, then read it all back.
    OpenUnlinkWrite(String),
    /// Open for reading and writing, remove the name, then ftruncate and fchmod it.
    OpenUnlinkTruncate(String),
    /// Opens, renames, writes through the old fd, reads the new name.
    OpenRenameWrite(String, String),
    /// Reads through a shared mmap.
    MmapRead(String),
    /// Writes through a shared mmap, then reads the file.
    MmapWrite(String, Vec<u8>),
    /// Makes a 4 GiB sparse file: truncate up, write 3 bytes at the end, read them back.
    Sparse4G(String),
    /// Two writers creating and renaming in one dir for this many seconds; then checks no
    /// file was lost, and that this process (the server's) holds no more fds and not
    /// much more memory than before.
    Stress(String, u64),
    /// Seeks to the n-th entry with telldir/seekdir semantics: lists, then lists again
    /// from the middle offset.
    ListFromMiddle(String),
}

fn err(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("ERR {}", nix::errno::Errno::from_raw(n)),
        None => format!("ERR {e}"),
    }
}

pub struct Runner<'a> {
    root: &'a Path,
    /// uid/gid as the kernel would show them to the caller (single-id user namespace:
    /// unmapped ids become the overflow id).
    pub map_id: fn(u32) -> u32,
    inos: HashMap<u64, usize>,
    /// The next inode label (labels of freed inodes are never given again).
    next_label: usize,
}

fn same(x: u32) -> u32 {
    x
}

pub fn overflow(x: u32) -> u32 {
    if x == 0 { 0 } else { 65534 }
}

impl<'a> Runner<'a> {
    pub fn new(root: &'a Path, map_id: fn(u32) -> u32) -> Runner<'a> {
        Runner {
            root,
            map_id,
            inos: HashMap::new(),
            next_label: 0,
        }
    }

    pub fn plain(root: &'a Path) -> Runner<'a> {
        Runner::new(root, same)
    }

    fn p(&self, s: &str) -> std::path::PathBuf {
        self.root.join(s)
    }

    fn ino(&mut self, ino: u64) -> usize {
        let n = self.next_label;
        let l = *self.inos.entry(ino).or_insert(n);
        if l == n {
            self.next_label += 1;
        }
        l
    }

    fn stat_line(&mut self, m: &fs::Metadata) -> String {
        let ft = m.file_type();
        let t = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "link"
        } else if ft.is_file() {
            "file"
        } else {
            "special"
        };
        let size = if ft.is_dir() { 0 } else { m.size() };
        // A dir's link count depends on how many lower layers have it (the kernel says 1
        // for a dir in several layers); the index does not keep that, so only files'.
        let nlink = if ft.is_dir() { 0 } else { m.nlink() };
        let mt = if m.mtime() as u64 == MTIME {
            "kept"
        } else {
            "new"
        };
        let mt = if ft.is_dir() { "-" } else { mt };
        let ino = self.ino(m.ino());
        format!(
            "{t} mode={:o} uid={} gid={} size={size} nlink={nlink} mtime={mt} ino=#{ino} rdev={}",
            m.mode(),
            (self.map_id)(m.uid()),
            (self.map_id)(m.gid()),
            m.rdev()
        )
    }

    pub fn run(&mut self, ops: &[Op]) -> Vec<String> {
        ops.iter()
            .map(|op| {
                let freed = self.freed_by(op);
                let r = self.one(op);
                // The inode number of a file that is gone may be given to the next new
                // file, or not: it depends on when the filesystem lets go of it (the
                // kernel's overlayfs at the last close, ours when the kernel forgets the
                // inode). Either way that is a new file: it gets a new label.
                if let Some(ino) = freed {
                    self.inos.remove(&ino);
                }
                format!("{op:?} -> {}", r.unwrap_or_else(|e| err(&e)))
            })
            .collect()
    }

    /// The inode that `op` removes the last name of, if it is a regular file.
    fn freed_by(&self, op: &Op) -> Option<u64> {
        let p = match op {
            Op::Unlink(p)
            | Op::OpenUnlinkFstat(p)
            | Op::OpenUnlinkWrite(p)
            | Op::OpenUnlinkTruncate(p) => p,
            _ => return None,
        };
        let m = fs::symlink_metadata(self.p(p)).ok()?;
        (m.is_file() && m.nlink() == 1).then(|| m.ino())
    }

    fn one(&mut self, op: &Op) -> std::io::Result<String> {
        Ok(match op {
            Op::Stat(p) => {
                let m = fs::symlink_metadata(self.p(p))?;
                self.stat_line(&m)
            }
            Op::Read(p) => {
                let d = fs::read(self.p(p))?;
                digest(&d)
            }
            Op::Write(p, d) => {
                fs::write(self.p(p), d)?;
                let m = fs::symlink_metadata(self.p(p))?;
                self.stat_line(&m)
            }
            Op::Append(p, d) => {
                let mut f = fs::OpenOptions::new().append(true).open(self.p(p))?;
                f.write_all(d)?;
                drop(f);
                digest(&fs::read(self.p(p))?)
            }
            Op::WriteAt(p, off, d) => {
                let mut f = fs::OpenOptions::new().write(true).open(self.p(p))?;
                f.seek(SeekFrom::Start(*off))?;
                f.write_all(d)?;
                drop(f);
                let m = fs::symlink_metadata(self.p(p))?;
                format!("{} {}", self.stat_line(&m), digest(&fs::read(self.p(p))?))
            }
            Op::Truncate(p, n) => {
                let f = fs::OpenOptions::new().write(true).open(self.p(p))?;
                f.set_len(*n)?;
                drop(f);
                let m = fs::symlink_metadata(self.p(p))?;
                format!("{} {}", self.stat_line(&m), digest(&fs::read(self.p(p))?))
            }
            Op::Mkdir(p) => {
                fs::create_dir(self.p(p))?;
                "ok".into()
            }
            Op::Rmdir(p) => {
                fs::remove_dir(self.p(p))?;
                "ok".into()
            }
            Op::Unlink(p) => {
                fs::remove_file(self.p(p))?;
                "ok".into()
            }
            Op::RenameFile(a, b) => {
                if fs::symlink_metadata(self.p(a)).is_ok_and(|m| m.is_dir()) {
                    return Ok("skip dir".into());
                }
                fs::rename(self.p(a), self.p(b))?;
                "ok".into()
            }
            Op::Rename(a, b) => {
                fs::rename(self.p(a), self.p(b))?;
                "ok".into()
            }
            Op::MknodChar(p, ma, mi) => {
                nix::sys::stat::mknod(
                    &self.p(p),
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                    nix::sys::stat::makedev(*ma, *mi),
                )
                .map_err(std::io::Error::from)?;
                "ok".into()
            }
            Op::RenameNoReplace(a, b) | Op::RenameExchange(a, b) => {
                if fs::symlink_metadata(self.p(a)).is_ok_and(|m| m.is_dir())
                    || fs::symlink_metadata(self.p(b)).is_ok_and(|m| m.is_dir())
                {
                    return Ok("skip dir".into());
                }
                let fl = if matches!(op, Op::RenameNoReplace(..)) {
                    nix::fcntl::RenameFlags::RENAME_NOREPLACE
                } else {
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE
                };
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &self.p(a),
                    nix::fcntl::AT_FDCWD,
                    &self.p(b),
                    fl,
                )
                .map_err(std::io::Error::from)?;
                "ok".into()
            }
            Op::Symlink(t, p) => {
                std::os::unix::fs::symlink(t, self.p(p))?;
                "ok".into()
            }
            Op::Readlink(p) => fs::read_link(self.p(p))?.display().to_string(),
            Op::Link(a, b) => {
                fs::hard_link(self.p(a), self.p(b))?;
                let m = fs::symlink_metadata(self.p(b))?;
                self.stat_line(&m)
            }
            Op::Chmod(p, m) => {
                fs::set_permissions(self.p(p), fs::Permissions::from_mode(*m))?;
                let m = fs::symlink_metadata(self.p(p))?;
                self.stat_line(&m)
            }
            Op::Chown(p, u, g) => {
                std::os::unix::fs::lchown(self.p(p), Some(*u), Some(*g))?;
                let m = fs::symlink_metadata(self.p(p))?;
                self.stat_line(&m)
            }
            Op::Utimes(p, t) => {
                let ts = nix::sys::time::TimeSpec::new(*t, 0);
                nix::sys::stat::utimensat(
                    nix::fcntl::AT_FDCWD,
                    &self.p(p),
                    &ts,
                    &ts,
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                )
                .map_err(std::io::Error::from)?;
                let m = fs::symlink_metadata(self.p(p))?;
                format!("mtime={}", m.mtime())
            }
            Op::List(p) => {
                let mut v = Vec::new();
                for e in fs::read_dir(self.p(p))? {
                    let e = e?;
                    let t = e.file_type()?;
                    let k = if t.is_dir() {
                        "/"
                    } else if t.is_symlink() {
                        "@"
                    } else if t.is_file() {
                        ""
                    } else {
                        "|"
                    };
                    v.push(format!("{}{k}", e.file_name().to_string_lossy()));
                }
                v.sort();
                v.join(" ")
            }
            Op::Mkfifo(p) => {
                nix::unistd::mkfifo(&self.p(p), nix::sys::stat::Mode::from_bits_truncate(0o644))
                    .map_err(std::io::Error::from)?;
                "ok".into()
            }
            Op::SetXattr(p, k, v) => {
                xattr_set(&self.p(p), k, v)?;
                "ok".into()
            }
            Op::GetXattr(p, k) => String::from_utf8_lossy(&xattr_get(&self.p(p), k)?).into_owned(),
            Op::ListXattr(p) => {
                let mut names: Vec<String> = xattr_list(&self.p(p))?
                    .into_iter()
                    .filter(|n| n.starts_with("user."))
                    .collect();
                names.sort();
                names.join(",")
            }
            Op::RemoveXattr(p, k) => {
                xattr_remove(&self.p(p), k)?;
                "ok".into()
            }
            Op::OpenUnlinkFstat(p) => {
                let mut f = fs::File::open(self.p(p))?;
                fs::remove_file(self.p(p))?;
                let m = f.metadata()?;
                let mut d = Vec::new();
                f.read_to_end(&mut d)?;
                format!("nlink={} {}", m.nlink(), digest(&d))
            }
            Op::OpenUnlinkWrite(p) => {
                let mut f = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.p(p))?;
                fs::remove_file(self.p(p))?;
                f.seek(SeekFrom::End(0))?;
                f.write_all(b"+written after unlink")?;
                f.seek(SeekFrom::Start(0))?;
                let mut d = Vec::new();
                f.read_to_end(&mut d)?;
                format!("nlink={} {}", f.metadata()?.nlink(), digest(&d))
            }
            Op::OpenUnlinkTruncate(p) => {
                let mut f = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.p(p))?;
                fs::remove_file(self.p(p))?;
                f.set_len(3)?;
                f.set_permissions(fs::Permissions::from_mode(0o640))?;
                let m = f.metadata()?;
                let mut d = Vec::new();
                f.read_to_end(&mut d)?;
                format!(
                    "nlink={} mode={:o} size={} {}",
                    m.nlink(),
                    m.mode(),
                    m.len(),
                    digest(&d)
                )
            }
            Op::OpenRenameWrite(a, b) => {
                let mut f = fs::OpenOptions::new().append(true).open(self.p(a))?;
                fs::rename(self.p(a), self.p(b))?;
                f.write_all(b"+moved")?;
                drop(f);
                digest(&fs::read(self.p(b))?)
            }
            Op::MmapRead(p) => {
                let f = fs::File::open(self.p(p))?;
                let len = f.metadata()?.len() as usize;
                if len == 0 {
                    return Ok("empty".into());
                }
                let m = unsafe_free_mmap_read(&f, len)?;
                digest(&m)
            }
            Op::MmapWrite(p, d) => {
                let f = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.p(p))?;
                mmap_write(&f, d)?;
                drop(f);
                digest(&fs::read(self.p(p))?)
            }
            Op::ListFromMiddle(p) => list_from_middle(&self.p(p))?,
            Op::Stress(p, secs) => stress(&self.p(p), *secs)?,
            Op::Sparse4G(p) => {
                let size = 4u64 << 30;
                let mut f = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(self.p(p))?;
                f.set_len(size)?;
                f.seek(SeekFrom::Start(size - 3))?;
                f.write_all(b"end")?;
                f.seek(SeekFrom::Start(size - 6))?;
                let mut tail = [0u8; 6];
                f.read_exact(&mut tail)?;
                drop(f);
                let m = fs::symlink_metadata(self.p(p))?;
                format!("size={} tail={:?}", m.size(), tail)
            }
        })
    }
}

fn digest(d: &[u8]) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(d);
    let hex: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("len={} sha={hex}", d.len())
}

fn xattr_set(p: &Path, k: &str, v: &[u8]) -> std::io::Result<()> {
    super::lsetxattr(p, k, v)
}

fn cstr(b: &[u8]) -> std::io::Result<std::ffi::CString> {
    std::ffi::CString::new(b).map_err(std::io::Error::other)
}

fn xattr_get(p: &Path, k: &str) -> std::io::Result<Vec<u8>> {
    let (cp, ck) = (cstr(p.as_os_str().as_bytes())?, cstr(k.as_bytes())?);
    let mut buf = vec![0u8; 65536];
    // SAFETY: NUL-terminated strings; buf valid for its length.
    let r =
        unsafe { libc::lgetxattr(cp.as_ptr(), ck.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

fn xattr_list(p: &Path) -> std::io::Result<Vec<String>> {
    let cp = cstr(p.as_os_str().as_bytes())?;
    let mut buf = vec![0u8; 65536];
    // SAFETY: NUL-terminated string; buf valid for its length.
    let r = unsafe { libc::llistxattr(cp.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect())
}

fn xattr_remove(p: &Path, k: &str) -> std::io::Result<()> {
    let (cp, ck) = (cstr(p.as_os_str().as_bytes())?, cstr(k.as_bytes())?);
    // SAFETY: NUL-terminated strings.
    let r = unsafe { libc::lremovexattr(cp.as_ptr(), ck.as_ptr()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn unsafe_free_mmap_read(f: &fs::File, _len: usize) -> std::io::Result<Vec<u8>> {
    // memmap2 needs unsafe; tests may use it (the rule binds src/).
    // SAFETY: the file is not changed while mapped in this test.
    let m = unsafe { memmap2::Mmap::map(f)? };
    Ok(m.to_vec())
}

fn mmap_write(f: &fs::File, d: &[u8]) -> std::io::Result<()> {
    if f.metadata()?.len() < d.len() as u64 {
        f.set_len(d.len() as u64)?;
    }
    // SAFETY: the mapping is private to this function and the file stays open.
    let mut m = unsafe { memmap2::MmapMut::map_mut(f)? };
    m[..d.len()].copy_from_slice(d);
    m.flush()?;
    Ok(())
}

fn list_from_middle(p: &Path) -> std::io::Result<String> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: plain libc directory stream calls on a stream this function owns; d_name
    // is NUL-terminated by the kernel.
    unsafe {
        let d = libc::opendir(c.as_ptr());
        if d.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        let mut all: Vec<(libc::c_long, Vec<u8>)> = Vec::new();
        loop {
            let pos = libc::telldir(d);
            let e = libc::readdir64(d);
            if e.is_null() {
                break;
            }
            let name = std::ffi::CStr::from_ptr((*e).d_name.as_ptr())
                .to_bytes()
                .to_vec();
            all.push((pos, name));
        }
        let k = all.len() / 2;
        let mut again = Vec::new();
        if let Some((pos, _)) = all.get(k) {
            libc::seekdir(d, *pos);
            loop {
                let e = libc::readdir64(d);
                if e.is_null() {
                    break;
                }
                again.push(
                    std::ffi::CStr::from_ptr((*e).d_name.as_ptr())
                        .to_bytes()
                        .to_vec(),
                );
            }
        }
        libc::closedir(d);
        let rest: Vec<Vec<u8>> = all[k..].iter().map(|(_, n)| n.clone()).collect();
        let mut uniq: Vec<&Vec<u8>> = all.iter().map(|(_, n)| n).collect();
        uniq.sort();
        uniq.dedup();
        Ok(format!(
            "entries={} unique={} resumed_same={}",
            all.len(),
            uniq.len(),
            rest == again
        ))
    }
}

fn fd_count() -> usize {
    fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss_kb() -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn stress(dir: &Path, secs: u64) -> std::io::Result<String> {
    fs::create_dir_all(dir)?;
    // Warm up once so lazily made server state is not counted as growth.
    fs::write(dir.join("warm"), b"w")?;
    fs::remove_file(dir.join("warm"))?;
    let (fds0, rss0) = (fd_count(), rss_kb());
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let dir = dir.to_path_buf();
            std::thread::spawn(move || -> std::io::Result<u64> {
                let mut k = 0u64;
                while std::time::Instant::now() < end {
                    let t = dir.join(format!("t{w}-{k}"));
                    fs::write(&t, format!("{w}:{k}"))?;
                    fs::rename(&t, dir.join(format!("r{w}-{}", k % 50)))?;
                    k += 1;
                }
                Ok(k)
            })
        })
        .collect();
    let mut counts = Vec::new();
    for w in workers {
        counts.push(
            w.join()
                .map_err(|_| std::io::Error::other("worker panicked"))??,
        );
    }
    let mut lost = 0;
    for (w, &n) in counts.iter().enumerate() {
        for j in 0..n.min(50) {
            // The last write to slot j was round k = the largest k < n with k % 50 == j.
            let k = (n - 1 - j) / 50 * 50 + j;
            let got = fs::read_to_string(dir.join(format!("r{w}-{j}"))).unwrap_or_default();
            if got != format!("{w}:{k}") {
                lost += 1;
            }
        }
    }
    let names = fs::read_dir(dir)?.count();
    let expect: u64 = counts.iter().map(|&n| n.min(50)).sum();
    let (fds1, rss1) = (fd_count(), rss_kb());
    // The server keeps up to MAX_KEPT_FDS fds of upper files open for reuse (the kernel
    // names inodes, not handles): only growth beyond that is a leak. Each round leaves
    // an unlinked file behind, so a leak per round is thousands.
    let kept = camada::overlay::MAX_KEPT_FDS as i64;
    Ok(format!(
        "lost={lost} extra_names={} fds_leaked={} rss_growth_under_20mb={} rounds_ok={}",
        names as i64 - expect as i64,
        (fds1 as i64 - fds0 as i64 - kept).max(0),
        rss1.saturating_sub(rss0) < 20 * 1024,
        counts.iter().all(|&n| n > 50)
    ))
}
