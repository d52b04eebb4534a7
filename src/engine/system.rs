//! `version`, `info` and `system df`: what camada is, where it keeps things, and the
//! doctor: whether this machine lets this user run containers, each finding with the one
//! command that fixes it ([`Check`]): user namespaces (sysctls, AppArmor), subordinate id
//! ranges, newuidmap/newgidmap and their privilege, /dev/fuse, the kernel version, the store
//! and runroot (writable, local), XDG_RUNTIME_DIR under su/sudo, the outbound network
//! helpers and /dev/net/tun.
//!
//! Probes only look (read files, stat, statfs, open devices, `unshare --user true` in a
//! child): they change nothing. The decisions are pure functions of what the probes saw, so
//! each finding and its fix is tested without the machine that would produce it.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Engine, EngineError};
use crate::runtime::userns;

/// `camada version`.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub version: &'static str,
    pub os: &'static str,
    pub arch: &'static str,
    pub kernel: String,
}

pub fn version() -> VersionInfo {
    VersionInfo {
        version: env!("CARGO_PKG_VERSION"),
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        kernel: kernel_release(),
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// A yes/no fact with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub ok: bool,
    pub detail: String,
}

/// `camada info`.
#[derive(Debug, Clone)]
pub struct SystemInfo {
    pub version: VersionInfo,
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub config: PathBuf,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// Subordinate ranges from /etc/subuid and /etc/subgid: (first id, count).
    pub subuid: Vec<(u64, u64)>,
    pub subgid: Vec<(u64, u64)>,
    pub newuidmap: Option<PathBuf>,
    pub newgidmap: Option<PathBuf>,
    pub fuse: Probe,
    pub userns: Probe,
    pub images: usize,
    pub containers: usize,
    /// The doctor's findings, in the order `info` prints them.
    pub checks: Vec<Check>,
}

/// How a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    /// Works, with a limit (single-id mode, no outbound network, a slow or remote disk).
    Warn,
    /// Containers cannot run (or this part of them cannot) until it is fixed.
    Missing,
}

/// One finding of the doctor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: &'static str,
    pub status: CheckStatus,
    /// What was seen.
    pub found: String,
    /// The one command that fixes it (None when nothing needs fixing or no command can).
    pub fix: Option<String>,
}

impl Check {
    fn ok(what: &'static str, found: impl Into<String>) -> Check {
        Check {
            what,
            status: CheckStatus::Ok,
            found: found.into(),
            fix: None,
        }
    }
    fn warn(what: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            what,
            status: CheckStatus::Warn,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
    fn missing(what: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            what,
            status: CheckStatus::Missing,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
    fn probe(&self) -> Probe {
        Probe {
            ok: self.status != CheckStatus::Missing,
            detail: self.found.clone(),
        }
    }
}

/// One line of `system df`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageLine {
    pub total: u64,
    pub active: u64,
    pub size: u64,
    pub reclaimable: u64,
}

/// `system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    pub images: UsageLine,
    pub containers: UsageLine,
    pub volumes: UsageLine,
    pub build_cache: UsageLine,
}

impl Engine {
    pub fn info(&self) -> Result<SystemInfo, EngineError> {
        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        let ranges = |file: &str| -> Vec<(u64, u64)> {
            let text = fs::read_to_string(file).unwrap_or_default();
            userns::parse_subids(&text, &user, uid.as_raw())
                .into_iter()
                .map(|(first, count)| (u64::from(first), u64::from(count)))
                .collect()
        };
        let (subuid, subgid) = (ranges("/etc/subuid"), ranges("/etc/subgid"));
        let images = self.images(&super::ListImages::default())?;
        let mut ids: Vec<_> = images.iter().map(|r| &r.id).collect();
        ids.sort();
        ids.dedup();
        let version = version();
        let (newuidmap, newgidmap) = (
            userns::find_program("newuidmap"),
            userns::find_program("newgidmap"),
        );
        let root = uid.is_root();
        let helper = |p: &Option<PathBuf>| p.clone().map(|p| (userns::helper_privilege(&p), p));
        let userns_check = check_userns(&read_userns_sysctls(), try_unshare);
        let fuse_check = check_fuse();
        let checks = vec![
            userns_check.clone(),
            check_subids(root, &user, &subuid, &subgid),
            check_helpers(root, &helper(&newuidmap), &helper(&newgidmap)),
            fuse_check.clone(),
            check_kernel(&version.kernel),
            check_dir("Store", &self.paths.root, false),
            check_dir("Run root", &self.paths.runroot, true),
            check_xdg(
                uid.as_raw(),
                &user,
                std::env::var_os("XDG_RUNTIME_DIR")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .as_deref(),
                &self.paths.runroot,
                owner_of,
            ),
            check_network_helper(
                userns::find_program("pasta"),
                userns::find_program("slirp4netns"),
            ),
            check_tun(
                root,
                fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/net/tun")
                    .map(drop),
            ),
        ];
        Ok(SystemInfo {
            version,
            root: self.paths.root.clone(),
            runroot: self.paths.runroot.clone(),
            config: self.paths.config.clone(),
            user,
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            subuid,
            subgid,
            newuidmap,
            newgidmap,
            fuse: fuse_check.probe(),
            userns: userns_check.probe(),
            images: ids.len(),
            containers: count_dirs(&self.paths.containers_dir()),
            checks,
        })
    }

    pub fn disk_usage(&self) -> Result<DiskUsage, EngineError> {
        let du = self.store.du()?;
        Ok(DiskUsage {
            images: UsageLine {
                total: du.images as u64,
                active: du.images_active as u64,
                size: du.images_size,
                // with no container, every byte of every image can go
                reclaimable: if du.images_active == 0 {
                    du.images_size
                } else {
                    du.images_reclaimable
                },
            },
            containers: UsageLine {
                total: du.containers as u64,
                active: 0,
                size: du.containers_size,
                reclaimable: du.containers_size,
            },
            volumes: self.volumes_usage()?,
            build_cache: {
                let (entries, bytes) = crate::build::cache::usage(&self.store);
                UsageLine {
                    total: entries as u64,
                    active: 0,
                    size: bytes,
                    reclaimable: bytes,
                }
            },
        })
    }
}

fn count_dirs(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
                .count()
        })
        .unwrap_or(0)
}

fn check_fuse() -> Check {
    use std::os::unix::fs::PermissionsExt;
    const WHAT: &str = "FUSE";
    let mode = fs::metadata("/dev/fuse").map(|m| m.permissions().mode() & 0o777);
    match (
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse"),
        mode,
    ) {
        (Ok(_), Ok(mode)) => Check::ok(WHAT, format!("/dev/fuse is usable (mode {mode:04o})")),
        (Err(e), Ok(mode)) => Check::missing(
            WHAT,
            format!("/dev/fuse cannot be opened ({e}, mode {mode:04o})"),
            "sudo chmod 0666 /dev/fuse",
        ),
        (_, Err(e)) => Check::missing(
            WHAT,
            format!("/dev/fuse is missing ({e})"),
            "sudo modprobe fuse",
        ),
    }
}

/// The user-namespace sysctls as read (None: the file does not exist on this kernel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct UsernsSysctls {
    max_user_namespaces: Option<String>,
    unprivileged_userns_clone: Option<String>,
    apparmor_restrict: Option<String>,
}

fn read_userns_sysctls() -> UsernsSysctls {
    let read = |p: &str| fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    UsernsSysctls {
        max_user_namespaces: read("/proc/sys/user/max_user_namespaces"),
        unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone"),
        apparmor_restrict: read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
    }
}

/// `unshare --user --map-root-user true` in a child: Ok, Err(why), or None (no unshare).
fn try_unshare() -> Option<Result<(), String>> {
    let unshare = userns::find_program("unshare")?;
    Some(
        match std::process::Command::new(unshare)
            .args(["--user", "--map-root-user", "true"])
            .stdin(std::process::Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            Err(e) => Err(e.to_string()),
        },
    )
}

/// User namespaces: each sysctl that forbids them names its fix; when they look allowed,
/// `try_it` confirms (a seccomp profile or an outer container can still refuse).
fn check_userns(s: &UsernsSysctls, try_it: fn() -> Option<Result<(), String>>) -> Check {
    const WHAT: &str = "User namespaces";
    let mut seen = Vec::new();
    if let Some(m) = &s.max_user_namespaces {
        seen.push(format!("user.max_user_namespaces={m}"));
    }
    if let Some(c) = &s.unprivileged_userns_clone {
        seen.push(format!("kernel.unprivileged_userns_clone={c}"));
    }
    if let Some(a) = &s.apparmor_restrict {
        seen.push(format!("kernel.apparmor_restrict_unprivileged_userns={a}"));
    }
    let found = |extra: &str| {
        let mut v = seen.clone();
        if !extra.is_empty() {
            v.push(extra.to_string());
        }
        v.join(", ")
    };
    let Some(max) = &s.max_user_namespaces else {
        return Check::missing(
            WHAT,
            found("the kernel has no user namespaces"),
            "use a kernel built with CONFIG_USER_NS=y",
        );
    };
    if max == "0" {
        return Check::missing(
            WHAT,
            found(""),
            "sudo sysctl -w user.max_user_namespaces=28633",
        );
    }
    if s.unprivileged_userns_clone.as_deref() == Some("0") {
        return Check::missing(
            WHAT,
            found(""),
            "sudo sysctl -w kernel.unprivileged_userns_clone=1",
        );
    }
    if s.apparmor_restrict.as_deref().is_some_and(|a| a != "0") {
        return Check::missing(
            WHAT,
            found("AppArmor restricts unprivileged user namespaces"),
            "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
        );
    }
    match try_it() {
        Some(Ok(())) => Check::ok(WHAT, found("unshare --user works")),
        Some(Err(why)) => Check {
            what: WHAT,
            status: CheckStatus::Missing,
            found: found(&format!("unshare --user fails: {why}")),
            // not a sysctl: a seccomp profile or an outer container's policy
            fix: None,
        },
        None => Check::ok(WHAT, found("")),
    }
}

fn usermod_fix(user: &str) -> String {
    format!("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}")
}

/// Subordinate ranges: without them containers run in single-id mode (one id).
fn check_subids(root: bool, user: &str, subuid: &[(u64, u64)], subgid: &[(u64, u64)]) -> Check {
    const WHAT: &str = "Subordinate ids";
    if root {
        return Check::ok(WHAT, "not needed as root (every id is mapped)");
    }
    let total = |r: &[(u64, u64)]| r.iter().map(|(_, c)| c).sum::<u64>();
    let (u, g) = (total(subuid), total(subgid));
    if u == 0 || g == 0 {
        let missing = match (u, g) {
            (0, 0) => "/etc/subuid and /etc/subgid",
            (0, _) => "/etc/subuid",
            _ => "/etc/subgid",
        };
        return Check::warn(
            WHAT,
            format!(
                "none for {user} in {missing}: containers get one id (single-id mode: -u and chown to other ids fail)"
            ),
            usermod_fix(user),
        );
    }
    if u < 65535 || g < 65535 {
        return Check::warn(
            WHAT,
            format!("{u} uids and {g} gids: images using ids up to 65534 (nobody) need 65536"),
            usermod_fix(user),
        );
    }
    Check::ok(WHAT, format!("{u} uids, {g} gids"))
}

/// newuidmap/newgidmap: present, and setuid root or with file capabilities.
fn check_helpers(
    root: bool,
    newuidmap: &Option<(userns::HelperPrivilege, PathBuf)>,
    newgidmap: &Option<(userns::HelperPrivilege, PathBuf)>,
) -> Check {
    use userns::HelperPrivilege as P;
    const WHAT: &str = "newuidmap/newgidmap";
    if root {
        return Check::ok(WHAT, "not needed as root (the maps are written directly)");
    }
    let (Some((pu, u)), Some((pg, g))) = (newuidmap, newgidmap) else {
        return Check::warn(
            WHAT,
            "not found: the subordinate ranges cannot be used (single-id mode)",
            "sudo apt-get install uidmap",
        );
    };
    let unprivileged: Vec<String> = [(pu, u), (pg, g)]
        .iter()
        .filter(|(p, _)| **p == P::None)
        .map(|(_, path)| path.display().to_string())
        .collect();
    if !unprivileged.is_empty() {
        return Check::missing(
            WHAT,
            format!(
                "{} neither setuid root nor with file capabilities: every range is refused",
                unprivileged.join(" and ")
            ),
            format!("sudo chmod u+s {}", unprivileged.join(" ")),
        );
    }
    let how = |p: &P| match p {
        P::Setuid => "setuid",
        _ => "file caps",
    };
    Check::ok(
        WHAT,
        format!(
            "{} ({}), {} ({})",
            u.display(),
            how(pu),
            g.display(),
            how(pg)
        ),
    )
}

/// The kernel: FUSE in a user namespace needs 4.18; openat2 (safe path walks) 5.6.
fn check_kernel(release: &str) -> Check {
    const WHAT: &str = "Kernel";
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let (Some(major), Some(minor)) = (nums.next(), nums.next()) else {
        return Check::ok(WHAT, format!("{release} (version not understood)"));
    };
    let at_least = |a: u32, b: u32| (major, minor) >= (a, b);
    if !at_least(4, 18) {
        Check::missing(
            WHAT,
            format!("{release}: FUSE inside a user namespace needs 4.18"),
            "upgrade the kernel to 4.18 or later (sudo apt-get install linux-image-amd64)",
        )
    } else if !at_least(5, 6) {
        Check::warn(
            WHAT,
            format!("{release}: no openat2 (5.6), path walks take a slower way"),
            "upgrade the kernel to 5.6 or later (sudo apt-get install linux-image-amd64)",
        )
    } else {
        Check::ok(WHAT, release.to_string())
    }
}

/// The network filesystems by statfs f_type (a runroot there cannot hold sockets and
/// FUSE mounts reliably; a store there is slow and may lack xattrs).
fn network_fs(magic: i64) -> Option<&'static str> {
    Some(match magic as u32 {
        0x6969 => "NFS",
        0xFF53_4D42 => "CIFS",
        0xFE53_4D42 => "SMB2",
        0x517B => "SMB",
        0x0102_1997 => "9p",
        0x00C3_6400 => "CephFS",
        0x0BD0_0BD0 => "Lustre",
        0x4750_4653 => "GPFS",
        0x5346_414F => "AFS",
        0x6B41_4653 => "AFS",
        _ => return None,
    })
}

/// The nearest existing directory at or above `path` (the store is made on first use).
fn existing_ancestor(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.is_dir())
}

/// A directory camada writes: writable by this user, and (for the runroot) local.
fn check_dir(what: &'static str, path: &Path, must_be_local: bool) -> Check {
    let elsewhere = if must_be_local {
        "export CAMADA_RUNROOT=/tmp/camada-$(id -u)"
    } else {
        "export CAMADA_ROOT=$HOME/.local/share/camada"
    };
    let Some(dir) = existing_ancestor(path) else {
        return Check::missing(
            what,
            format!("{}: no directory above it exists", path.display()),
            format!("mkdir -p {}", path.display()),
        );
    };
    if let Err(e) = nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK) {
        // the directory itself is someone else's: give it back; else go somewhere else
        let fix = match dir == path {
            true => format!("sudo chown -R $(id -un) {}", dir.display()),
            false => elsewhere.to_string(),
        };
        return Check::missing(
            what,
            format!("{} is not writable ({e})", dir.display()),
            fix,
        );
    }
    let fs_kind = nix::sys::statfs::statfs(dir)
        .ok()
        .and_then(|s| network_fs(s.filesystem_type().0));
    decide_dir(what, path, fs_kind, must_be_local)
        .unwrap_or_else(|| Check::ok(what, format!("{} (writable, local)", path.display())))
}

/// The network-filesystem part of [`check_dir`], pure.
fn decide_dir(
    what: &'static str,
    path: &Path,
    fs_kind: Option<&str>,
    must_be_local: bool,
) -> Option<Check> {
    let kind = fs_kind?;
    let found = format!("{} is on {kind}", path.display());
    Some(if must_be_local {
        Check::missing(
            what,
            format!("{found}: sockets and FUSE mounts need a local filesystem"),
            "export CAMADA_RUNROOT=/tmp/camada-$(id -u)",
        )
    } else {
        Check::warn(
            what,
            format!("{found}: slower, and files may lose their owners without xattrs"),
            "export CAMADA_ROOT=/var/tmp/camada-$(id -u)",
        )
    })
}

fn owner_of(p: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).ok().map(|m| m.uid())
}

/// XDG_RUNTIME_DIR as `su`/`sudo` leave it: unset, missing, or another user's (/run/user/0).
fn check_xdg(
    uid: u32,
    user: &str,
    xdg: Option<&Path>,
    runroot: &Path,
    owner: fn(&Path) -> Option<u32>,
) -> Check {
    const WHAT: &str = "XDG_RUNTIME_DIR";
    let own = PathBuf::from(format!("/run/user/{uid}"));
    let own_ok = owner(&own) == Some(uid);
    let fix = if own_ok {
        format!("export XDG_RUNTIME_DIR={}", own.display())
    } else if uid == 0 {
        "unset XDG_RUNTIME_DIR".to_string()
    } else {
        format!("sudo loginctl enable-linger {user}")
    };
    let used = xdg.is_some_and(|x| runroot.starts_with(x));
    match xdg {
        None if uid == 0 => Check::ok(WHAT, "unset (root: the runroot is /tmp/camada-0)"),
        None => Check::warn(
            WHAT,
            format!(
                "unset (su/sudo without a login session): the runroot falls back to {}",
                runroot.display()
            ),
            fix,
        ),
        Some(x) => match owner(x) {
            Some(o) if o == uid => Check::ok(WHAT, x.display().to_string()),
            seen => {
                let why = match seen {
                    None => "does not exist".to_string(),
                    Some(o) => format!("belongs to uid {o}, not {uid} (left by su or sudo)"),
                };
                let found = if used {
                    format!("{} {why}: the runroot under it cannot be used", x.display())
                } else {
                    format!("{} {why} (not used: the runroot is set)", x.display())
                };
                let fix = if own_ok {
                    fix
                } else {
                    "unset XDG_RUNTIME_DIR".into()
                };
                match used {
                    true => Check::missing(WHAT, found, fix),
                    false => Check::warn(WHAT, found, fix),
                }
            }
        },
    }
}

/// pasta or slirp4netns: outbound network for containers of an unprivileged user.
fn check_network_helper(pasta: Option<PathBuf>, slirp: Option<PathBuf>) -> Check {
    const WHAT: &str = "Network helper";
    match (pasta, slirp) {
        (Some(p), _) => Check::ok(WHAT, format!("pasta ({})", p.display())),
        (None, Some(s)) => Check::ok(WHAT, format!("slirp4netns ({})", s.display())),
        (None, None) => Check::warn(
            WHAT,
            "neither pasta nor slirp4netns: containers get loopback only",
            "sudo apt-get install passt",
        ),
    }
}

/// /dev/net/tun: pasta and slirp4netns open it inside the container's namespace, where
/// host root's 0600 device refuses the user.
fn check_tun(root: bool, opened: std::io::Result<()>) -> Check {
    const WHAT: &str = "/dev/net/tun";
    match opened {
        Ok(()) => Check::ok(WHAT, "usable"),
        Err(e) if root => {
            Check::missing(WHAT, format!("cannot be opened ({e})"), "sudo modprobe tun")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Check::warn(WHAT, "missing: no outbound network", "sudo modprobe tun")
        }
        Err(e) => Check::warn(
            WHAT,
            format!("cannot be opened ({e}): no outbound network"),
            "sudo chmod 0666 /dev/net/tun",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysctls(max: &str, clone: Option<&str>, apparmor: Option<&str>) -> UsernsSysctls {
        UsernsSysctls {
            max_user_namespaces: Some(max.into()),
            unprivileged_userns_clone: clone.map(Into::into),
            apparmor_restrict: apparmor.map(Into::into),
        }
    }

    fn works() -> Option<Result<(), String>> {
        Some(Ok(()))
    }

    fn refused() -> Option<Result<(), String>> {
        Some(Err("unshare: Operation not permitted".into()))
    }

    #[test]
    fn each_userns_switch_names_its_sysctl() {
        let fix = |s: UsernsSysctls| check_userns(&s, works).fix;
        assert_eq!(
            check_userns(&sysctls("1000", Some("1"), Some("0")), works).status,
            CheckStatus::Ok
        );
        assert_eq!(
            fix(sysctls("0", None, None)).as_deref(),
            Some("sudo sysctl -w user.max_user_namespaces=28633")
        );
        assert_eq!(
            fix(sysctls("1000", Some("0"), None)).as_deref(),
            Some("sudo sysctl -w kernel.unprivileged_userns_clone=1")
        );
        assert_eq!(
            fix(sysctls("1000", None, Some("1"))).as_deref(),
            Some("sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0")
        );
        let c = check_userns(&sysctls("1000", None, None), refused);
        assert_eq!(c.status, CheckStatus::Missing);
        assert!(c.found.contains("Operation not permitted"), "{c:?}");
    }

    #[test]
    fn subids_and_helpers() {
        let c = check_subids(false, "ana", &[], &[(100_000, 65_536)]);
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(
            c.found.contains("/etc/subuid") && !c.found.contains("subgid"),
            "{c:?}"
        );
        assert_eq!(
            c.fix.as_deref(),
            Some("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ana")
        );
        let full = [(100_000, 65_536)];
        assert_eq!(
            check_subids(false, "ana", &full, &full).status,
            CheckStatus::Ok
        );
        assert_eq!(
            check_subids(false, "ana", &[(1, 1000)], &full).status,
            CheckStatus::Warn
        );
        assert_eq!(check_subids(true, "root", &[], &[]).status, CheckStatus::Ok);

        use userns::HelperPrivilege as P;
        let u = Some((P::Setuid, PathBuf::from("/usr/bin/newuidmap")));
        let g = Some((P::None, PathBuf::from("/usr/bin/newgidmap")));
        let c = check_helpers(false, &u, &g);
        assert_eq!(c.status, CheckStatus::Missing);
        assert_eq!(c.fix.as_deref(), Some("sudo chmod u+s /usr/bin/newgidmap"));
        let c = check_helpers(false, &None, &g);
        assert_eq!(c.fix.as_deref(), Some("sudo apt-get install uidmap"));
        let caps = Some((P::FileCaps, PathBuf::from("/usr/bin/newgidmap")));
        assert_eq!(check_helpers(false, &u, &caps).status, CheckStatus::Ok);
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(
            check_kernel("4.15.0-20-generic").status,
            CheckStatus::Missing
        );
        assert_eq!(check_kernel("5.4.0-100-generic").status, CheckStatus::Warn);
        assert_eq!(check_kernel("6.1.0-18-amd64").status, CheckStatus::Ok);
        assert_eq!(check_kernel("4.18.0-553.el8").status, CheckStatus::Warn);
    }

    #[test]
    fn a_runroot_on_nfs_is_refused_a_store_warned() {
        assert_eq!(network_fs(0x6969), Some("NFS"));
        assert_eq!(network_fs(0xEF53), None); // ext4
        let run = decide_dir("Run root", Path::new("/home/a/run"), Some("NFS"), true).unwrap();
        assert_eq!(run.status, CheckStatus::Missing);
        assert_eq!(
            run.fix.as_deref(),
            Some("export CAMADA_RUNROOT=/tmp/camada-$(id -u)")
        );
        let store = decide_dir("Store", Path::new("/home/a/s"), Some("NFS"), false).unwrap();
        assert_eq!(store.status, CheckStatus::Warn);
        assert!(decide_dir("Store", Path::new("/x"), None, false).is_none());
    }

    #[test]
    fn xdg_runtime_dir_after_su() {
        fn mine(p: &Path) -> Option<u32> {
            match p.to_str() {
                Some("/run/user/1000") => Some(1000),
                Some("/run/user/0") => Some(0),
                _ => None,
            }
        }
        fn none(_: &Path) -> Option<u32> {
            None
        }
        let run = Path::new("/run/user/0/camada");
        let c = check_xdg(1000, "ana", Some(Path::new("/run/user/0")), run, mine);
        assert_eq!(c.status, CheckStatus::Missing);
        assert!(c.found.contains("belongs to uid 0"), "{c:?}");
        assert_eq!(
            c.fix.as_deref(),
            Some("export XDG_RUNTIME_DIR=/run/user/1000")
        );
        // not used for the runroot: only a warning
        let c = check_xdg(
            1000,
            "ana",
            Some(Path::new("/run/user/0")),
            Path::new("/tmp/r"),
            mine,
        );
        assert_eq!(c.status, CheckStatus::Warn);
        let c = check_xdg(1000, "ana", None, Path::new("/tmp/camada-1000"), none);
        assert_eq!(c.status, CheckStatus::Warn);
        assert_eq!(c.fix.as_deref(), Some("sudo loginctl enable-linger ana"));
        let own = Path::new("/run/user/1000");
        assert_eq!(
            check_xdg(1000, "ana", Some(own), &own.join("camada"), mine).status,
            CheckStatus::Ok
        );
    }

    #[test]
    fn network_pieces() {
        assert_eq!(
            check_network_helper(None, None).fix.as_deref(),
            Some("sudo apt-get install passt")
        );
        assert_eq!(
            check_network_helper(None, Some("/usr/bin/slirp4netns".into())).status,
            CheckStatus::Ok
        );
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(
            check_tun(false, Err(denied)).fix.as_deref(),
            Some("sudo chmod 0666 /dev/net/tun")
        );
        assert_eq!(check_tun(false, Ok(())).status, CheckStatus::Ok);
    }
}
