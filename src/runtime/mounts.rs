//! The container's filesystem view, set up by its first process before pivot_root.
//!
//! Owns: /proc of the new pid namespace, a minimal /dev (tmpfs with null, zero, full,
//! random, urandom, tty bound from the host, devpts `newinstance`, /dev/shm, the fd links,
//! /dev/console for a terminal), /sys read-only, the paths docker masks or makes read-only,
//! the generated /etc/hosts, /etc/hostname, /etc/resolv.conf, `-v` bind mounts, pivot_root.
//! Never mounts the root filesystem itself (the monitor does). Invariant: every mount target
//! inside the rootfs is opened with `openat2(RESOLVE_IN_ROOT)` and mounted on through
//! `/proc/self/fd/N`, so a symlink in an image can never point a mount outside the rootfs.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, mkdirat};

use super::Network;

/// Makes every mount of the calling thread's (new) mount namespace private, recursively
/// (`mount --make-rprivate /`): nothing mounted here propagates to the namespace it was
/// copied from, nor from there to here.
pub(crate) fn make_rprivate() -> nix::Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
}

/// A `-v SRC:DST[:ro]` bind mount.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bind {
    /// Host path (absolute).
    pub source: PathBuf,
    /// Path inside the container (absolute).
    pub destination: String,
    pub readonly: bool,
    /// A volume: when its source directory is empty, the image's content at the
    /// destination is first copied into it, with its owners and modes (docker's copy-up).
    #[serde(default)]
    pub fill: bool,
    /// Not a bind: a fresh tmpfs with these mount options (`size=N` or empty) is mounted
    /// at `destination`, and `source` is unused (build's `RUN --mount=type=tmpfs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<String>,
}

/// Why a mount step failed (the target is named as the container sees it).
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("opening the root filesystem {path}: {source}")]
    OpenRoot { path: PathBuf, source: Errno },
    #[error("preparing the mount point {target} in the container: {source}")]
    Target { target: String, source: Errno },
    #[error("mounting {what} on {target} in the container: {source}")]
    Mount {
        what: String,
        target: String,
        source: Errno,
    },
    #[error("copying the image's {target} into the volume {path}: {source}")]
    Fill {
        target: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("bind mount source {path}: {source}")]
    BindSource { path: PathBuf, source: io::Error },
    #[error("pivot_root into {path}: {source}")]
    Pivot { path: PathBuf, source: Errno },
}

/// Paths docker masks: files get /dev/null bound over them, directories an empty read-only
/// tmpfs.
pub const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths docker makes read-only.
pub const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Device nodes bound from the host into the container's /dev.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// /etc/hosts of a container.
pub fn hosts_file(hostname: &str, network: Network) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    if network != Network::Host {
        s.push_str(&format!("127.0.0.1\t{hostname}\n"));
    }
    s
}

/// /etc/resolv.conf of a container from the host's: for a private network the host's
/// loopback resolvers cannot be reached, so they are dropped (and docker's public fallback
/// used when none is left).
pub fn resolv_conf(host: &str, network: Network) -> String {
    if network == Network::Host {
        return host.to_string();
    }
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// What to set up under the rootfs.
pub(crate) struct Setup<'a> {
    pub rootfs: &'a Path,
    pub network: Network,
    /// (path in the container, host file) bound over it: /etc/hosts and friends.
    pub files: &'a [(String, PathBuf)],
    pub binds: &'a [Bind],
}

enum Kind {
    Dir,
    File,
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

fn rel_components(path: &str) -> Vec<&std::ffi::OsStr> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// Opens `path` (as the container sees it) under `root` with O_PATH, creating it (and its
/// parents, as directories) when missing and `create` says what it should be.
fn open_in_root(root: &OwnedFd, path: &str, create: Option<Kind>) -> Result<OwnedFd, MountError> {
    let err = |source| MountError::Target {
        target: path.to_string(),
        source,
    };
    let comps = rel_components(path);
    let rel: PathBuf = comps.iter().collect();
    let rel = if comps.is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    match openat2(root, &rel, how(OFlag::O_PATH)) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) if create.is_some() => {}
        Err(e) => return Err(err(e)),
    }
    let mut cur = PathBuf::from(".");
    for (i, name) in comps.iter().enumerate() {
        let next = cur.join(name);
        match openat2(root, &next, how(OFlag::O_PATH)) {
            Ok(_) => {
                cur = next;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(err(e)),
        }
        let parent = openat2(root, &cur, how(OFlag::O_PATH | OFlag::O_DIRECTORY)).map_err(err)?;
        let last = i + 1 == comps.len();
        let made = if last && matches!(create, Some(Kind::File)) {
            openat(
                &parent,
                *name,
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        } else {
            mkdirat(&parent, *name, Mode::from_bits_truncate(0o755))
        };
        match made {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(err(e)),
        }
        cur = next;
    }
    openat2(root, &rel, how(OFlag::O_PATH)).map_err(err)
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn mount_on(
    root: &OwnedFd,
    target: &str,
    kind: Kind,
    source: Option<&str>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), MountError> {
    let fd = open_in_root(root, target, Some(kind))?;
    mount(source, fd_path(&fd).as_str(), fstype, flags, data).map_err(|source_err| {
        MountError::Mount {
            what: fstype.or(source).unwrap_or("?").to_string(),
            target: target.to_string(),
            source: source_err,
        }
    })
}

/// Remounts the bind mount at `target` read-only, keeping the flags the kernel locks.
fn remount_readonly(root: &OwnedFd, target: &str) -> Result<(), MountError> {
    let fd = open_in_root(root, target, None)?;
    let path = fd_path(&fd);
    let locked = nix::sys::statvfs::statvfs(path.as_str())
        .map(|s| {
            use nix::sys::statvfs::FsFlags;
            let f = s.flags();
            let mut m = MsFlags::empty();
            for (a, b) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
                (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
            ] {
                if f.contains(a) {
                    m |= b;
                }
            }
            m
        })
        .unwrap_or(MsFlags::empty());
    mount(
        None::<&str>,
        path.as_str(),
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | locked,
        None::<&str>,
    )
    .map_err(|source| MountError::Mount {
        what: "a read-only remount".into(),
        target: target.to_string(),
        source,
    })
}

/// Read-only for the bind at `target` and every mount below it (a recursive bind brings
/// the source's submounts along; each needs its own remount).
fn remount_tree_readonly(root: &OwnedFd, target: &str) -> Result<(), MountError> {
    remount_readonly(root, target)?;
    let fd = open_in_root(root, target, None)?;
    let Ok(real) = std::fs::read_link(fd_path(&fd)) else {
        return Ok(());
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Ok(());
    };
    let rootfs = std::fs::read_link(fd_path(root)).unwrap_or_default();
    for below in submounts(&info, &real) {
        let Ok(inside) = below.strip_prefix(&rootfs) else {
            continue;
        };
        let inside = format!("/{}", inside.display());
        remount_readonly(root, &inside)?;
    }
    Ok(())
}

/// The mount points strictly below `top` in a /proc/self/mountinfo text, outermost first.
fn submounts(mountinfo: &str, top: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p != top && p.starts_with(top))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// docker's copy-up: when the volume directory `source` is empty, the image's content at
/// `target` (resolved inside the rootfs) is copied into it with owners and modes (this
/// runs as the container's root, so the owners are container ids, mapped on the host).
fn fill_volume(root: &OwnedFd, source: &Path, target: &str) -> Result<(), MountError> {
    let err = |e: io::Error| MountError::Fill {
        target: target.to_string(),
        path: source.to_path_buf(),
        source: e,
    };
    let empty = std::fs::read_dir(source).map_err(err)?.next().is_none();
    if !empty {
        return Ok(());
    }
    let from = match openat2(root, rel_path(target).as_path(), how(OFlag::O_PATH)) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(err(io::Error::from(e))),
    };
    let from = PathBuf::from(fd_path(&from));
    let meta = std::fs::metadata(&from).map_err(err)?;
    if !meta.is_dir() {
        return Ok(());
    }
    copy_tree(&from, source).map_err(err)?;
    copy_owner_and_mode(&meta, source);
    Ok(())
}

fn rel_path(path: &str) -> PathBuf {
    let comps = rel_components(path);
    if comps.is_empty() {
        PathBuf::from(".")
    } else {
        comps.iter().collect()
    }
}

/// Owners (when this namespace maps them) and permission bits of `meta` onto `path`.
fn copy_owner_and_mode(meta: &std::fs::Metadata, path: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _ = std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()));
    if !meta.file_type().is_symlink() {
        let _ =
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777));
    }
}

/// Copies the children of directory `from` into directory `to`: directories, regular
/// files and symlinks (never followed); device nodes and sockets are skipped.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&src)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else {
            continue;
        }
        copy_owner_and_mode(&meta, &dst);
    }
    Ok(())
}

fn bind(root: &OwnedFd, source: &Path, target: &str, recursive: bool) -> Result<(), MountError> {
    let meta = std::fs::metadata(source).map_err(|e| MountError::BindSource {
        path: source.to_path_buf(),
        source: e,
    })?;
    let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount_on(root, target, kind, source.to_str(), None, flags, None)
}

/// The `-v`/`--mount` binds, in order: a volume filled first when it asks for it, each bound
/// recursively, and a read-only one made read-only with everything below it.
fn user_binds(root: &OwnedFd, binds: &[Bind]) -> Result<(), MountError> {
    for b in binds {
        if let Some(opts) = &b.tmpfs {
            let data = if opts.is_empty() {
                "mode=755".to_owned()
            } else {
                format!("mode=755,{opts}")
            };
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            mount_on(
                root,
                &b.destination,
                Kind::Dir,
                Some("tmpfs"),
                Some("tmpfs"),
                flags,
                Some(&data),
            )?;
            continue;
        }
        if b.fill {
            fill_volume(root, &b.source, &b.destination)?;
        }
        bind(root, &b.source, &b.destination, true)?;
        if b.readonly {
            remount_tree_readonly(root, &b.destination)?;
        }
    }
    Ok(())
}

/// An O_PATH fd of the root filesystem every mount target is opened beneath.
fn open_root(rootfs: &Path) -> Result<OwnedFd, MountError> {
    nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| MountError::OpenRoot {
        path: rootfs.to_path_buf(),
        source,
    })
}

/// The container's binds and volumes mounted on a root filesystem that is not running (a
/// mount server's, so that `cp` reaches a volume as the container would): as in
/// a start, every target opened inside `rootfs`. Call as root of the user namespace that
/// owns the mount namespace.
pub fn bind_user_mounts(rootfs: &Path, binds: &[Bind]) -> Result<(), MountError> {
    let root = open_root(rootfs)?;
    user_binds(&root, binds)
}

/// Mounts everything under `setup.rootfs` (run inside the container's mount namespace, as
/// its root, before pivot_root).
pub(crate) fn prepare(setup: &Setup<'_>) -> Result<(), MountError> {
    let root = open_root(setup.rootfs)?;
    let secure = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_on(
        &root,
        "/proc",
        Kind::Dir,
        Some("proc"),
        Some("proc"),
        secure,
        None,
    )?;
    mount_on(
        &root,
        "/dev",
        Kind::Dir,
        Some("tmpfs"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for dev in DEVICES {
        let host = Path::new("/dev").join(dev);
        if host.exists() {
            bind(&root, &host, &format!("/dev/{dev}"), false)?;
        }
    }
    let pts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let with_gid = mount_on(
        &root,
        "/dev/pts",
        Kind::Dir,
        Some("devpts"),
        Some("devpts"),
        pts_flags,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    );
    if with_gid.is_err() {
        // gid 5 (tty) is not mapped in single-id mode
        mount_on(
            &root,
            "/dev/pts",
            Kind::Dir,
            Some("devpts"),
            Some("devpts"),
            pts_flags,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )?;
    }
    mount_on(
        &root,
        "/dev/shm",
        Kind::Dir,
        Some("shm"),
        Some("tmpfs"),
        secure,
        Some("mode=1777,size=65536k"),
    )?;
    let dev = open_in_root(&root, "/dev", None)?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        nix::unistd::symlinkat(target, dev.as_fd(), link).map_err(|source| MountError::Target {
            target: format!("/dev/{link}"),
            source,
        })?;
    }
    // sysfs needs the network namespace to be ours; with the host's, bind the host's /sys.
    let ro = secure | MsFlags::MS_RDONLY;
    if mount_on(
        &root,
        "/sys",
        Kind::Dir,
        Some("sysfs"),
        Some("sysfs"),
        ro,
        None,
    )
    .is_err()
    {
        bind(&root, Path::new("/sys"), "/sys", true)?;
        let _ = remount_readonly(&root, "/sys");
    }
    for path in MASKED {
        let Ok(fd) = open_in_root(&root, path, None) else {
            continue;
        };
        let is_dir =
            nix::sys::stat::fstat(&fd).is_ok_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR);
        let res = if is_dir {
            mount(
                Some("tmpfs"),
                fd_path(&fd).as_str(),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                fd_path(&fd).as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        res.map_err(|source| MountError::Mount {
            what: "a mask".into(),
            target: path.to_string(),
            source,
        })?;
    }
    for path in READONLY {
        let Ok(fd) = open_in_root(&root, path, None) else {
            continue;
        };
        mount(
            Some(fd_path(&fd).as_str()),
            fd_path(&fd).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|source| MountError::Mount {
            what: "a read-only bind".into(),
            target: path.to_string(),
            source,
        })?;
        remount_readonly(&root, path)?;
    }
    // user mounts first, so /etc/hosts and friends land on a volume bound over /etc; a
    // user mount of one of those files wins over the generated one
    user_binds(&root, setup.binds)?;
    for (path, host) in setup.files {
        let under: Vec<&Bind> = setup
            .binds
            .iter()
            .filter(|b| Path::new(path).starts_with(&b.destination))
            .collect();
        if under
            .iter()
            .any(|b| Path::new(&b.destination) == Path::new(path))
        {
            continue;
        }
        match bind(&root, host, path, false) {
            // a read-only user mount over /etc has no mount point for it: the user's wins
            Err(MountError::Target {
                source: Errno::EROFS,
                ..
            }) if !under.is_empty() => {}
            r => r?,
        }
    }
    let _ = setup.network;
    Ok(())
}

/// Shows the pty `slave` as /dev/console (after [`prepare`], before [`pivot`]).
pub(crate) fn bind_console(rootfs: &Path, slave: &OwnedFd) -> Result<(), MountError> {
    let root = open_root(rootfs)?;
    mount_on(
        &root,
        "/dev/console",
        Kind::File,
        Some(&fd_path(slave)),
        None,
        MsFlags::MS_BIND,
        None,
    )
}

/// Makes `rootfs` the root of this mount namespace and detaches the old root.
pub(crate) fn pivot(rootfs: &Path) -> Result<(), MountError> {
    let err = |source| MountError::Pivot {
        path: rootfs.to_path_buf(),
        source,
    };
    nix::unistd::chdir(rootfs).map_err(err)?;
    nix::unistd::pivot_root(".", ".").map_err(err)?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err)?;
    nix::unistd::chdir("/").map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_names_the_container_except_on_the_host_network() {
        let h = hosts_file("abc123", Network::Private);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("127.0.0.1\tabc123\n"));
        assert!(!hosts_file("abc123", Network::Host).contains("abc123"));
    }

    #[test]
    fn resolv_drops_loopback_servers_off_the_host_network() {
        let host = "search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n";
        assert_eq!(
            resolv_conf(host, Network::Private),
            "search lan\nnameserver 10.0.0.1\n"
        );
        assert_eq!(resolv_conf(host, Network::Host), host);
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", Network::None),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }

    #[test]
    fn submounts_below_a_bind_are_found_in_mountinfo() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    30 22 0:5 / /r/data rw - tmpfs t rw\n\
                    31 30 0:6 / /r/data/a\\040b rw - tmpfs t rw\n\
                    32 22 0:7 / /r/database rw - tmpfs t rw\n";
        assert_eq!(
            submounts(info, Path::new("/r/data")),
            vec![PathBuf::from("/r/data/a b")]
        );
        assert_eq!(unescape_mountinfo("x\\011y\\"), "x\ty\\");
    }
}
