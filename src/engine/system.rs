//! `version`, `info` and `system df`: what camada is, where it keeps things, and whether
//! this machine lets an unprivileged user run containers (subordinate id ranges,
//! newuidmap/newgidmap, /dev/fuse, unprivileged user namespaces).
//!
//! Probes only look (read files, stat, open /dev/fuse): they change nothing.

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
        Ok(SystemInfo {
            version: version(),
            root: self.paths.root.clone(),
            runroot: self.paths.runroot.clone(),
            config: self.paths.config.clone(),
            user,
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            subuid,
            subgid,
            newuidmap: userns::find_program("newuidmap"),
            newgidmap: userns::find_program("newgidmap"),
            fuse: probe_fuse(),
            userns: probe_userns(),
            images: ids.len(),
            containers: count_dirs(&self.paths.containers_dir()),
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

fn probe_fuse() -> Probe {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata("/dev/fuse").map(|m| m.permissions().mode() & 0o777);
    match (
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse"),
        mode,
    ) {
        (Ok(_), Ok(mode)) => Probe {
            ok: true,
            detail: format!("/dev/fuse is usable (mode {mode:04o})"),
        },
        (Err(e), Ok(mode)) => Probe {
            ok: false,
            detail: format!(
                "/dev/fuse cannot be opened ({e}, mode {mode:04o}); as root: chmod 0666 /dev/fuse"
            ),
        },
        (_, Err(e)) => Probe {
            ok: false,
            detail: format!("/dev/fuse is missing ({e}); load the fuse module (modprobe fuse)"),
        },
    }
}

fn probe_userns() -> Probe {
    let read = |p: &str| fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let max = read("/proc/sys/user/max_user_namespaces");
    let clone = read("/proc/sys/kernel/unprivileged_userns_clone");
    let apparmor = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let mut seen = Vec::new();
    let mut ok = true;
    if let Some(m) = &max {
        seen.push(format!("user.max_user_namespaces={m}"));
        ok &= m != "0";
    }
    if let Some(c) = &clone {
        seen.push(format!("kernel.unprivileged_userns_clone={c}"));
        ok &= c != "0";
    }
    if let Some(a) = &apparmor {
        seen.push(format!("kernel.apparmor_restrict_unprivileged_userns={a}"));
        ok &= a == "0";
    }
    if max.is_none() {
        ok = false;
        seen.push("the kernel has no user namespaces".into());
    }
    // the settings can look right and still be refused (a seccomp profile, a container
    // we run in): try it, in a child, when util-linux's unshare is there
    if ok && let Some(unshare) = userns::find_program("unshare") {
        match std::process::Command::new(unshare)
            .args(["--user", "--map-root-user", "true"])
            .stdin(std::process::Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => seen.push("unshare --user works".into()),
            Ok(out) => {
                ok = false;
                seen.push(format!(
                    "unshare --user fails: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Err(e) => seen.push(format!("unshare not run: {e}")),
        }
    }
    Probe {
        ok,
        detail: seen.join(", "),
    }
}
