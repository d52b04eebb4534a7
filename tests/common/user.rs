//! The unprivileged test user `camadatest` and the machine set-up rootless runs need.
//!
//! Owns: creating the user once per test run (idempotent, under an exclusive lock, so parallel
//! tests and parallel test binaries agree), its /etc/subuid and /etc/subgid range
//! 200000:65536, running commands as it (setpriv), and making /dev/fuse usable (0666) when
//! the tests run as root. Never edits another user's entry; rewrites /etc/subuid and
//! /etc/subgid only by rename of a complete file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The unprivileged user every rootless test runs as (when the tests run as root).
pub struct TestUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
    /// First id of its /etc/subuid and /etc/subgid range.
    pub subid_start: u32,
    /// Length of that range.
    pub subid_count: u32,
}

const NAME: &str = "camadatest";
const SUBID_START: u32 = 200_000;
const SUBID_COUNT: u32 = 65_536;

impl TestUser {
    /// `setpriv --reuid=U --regid=G --init-groups --reset-env PROGRAM`: PROGRAM as this user
    /// with a clean environment (HOME, USER, PATH... from passwd).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--init-groups", "--reset-env", program]);
        c
    }

    /// Gives `path` and everything under it to this user (symlinks themselves, not targets).
    pub fn chown_tree(&self, path: &Path) {
        let st = Command::new("chown")
            .args(["-R", "-h", &format!("{}:{}", self.uid, self.gid)])
            .arg(path)
            .status()
            .unwrap_or_else(|e| panic!("running chown: {e}"));
        assert!(st.success(), "chown -R {} failed", path.display());
    }
}

/// The test user, made on first use. Err when the tests do not run as root (then there is no
/// other user to switch to: the current one is the unprivileged user) or making it failed.
pub fn test_user() -> Result<&'static TestUser, String> {
    static USER: OnceLock<Result<TestUser, String>> = OnceLock::new();
    USER.get_or_init(make_user).as_ref().map_err(Clone::clone)
}

fn make_user() -> Result<TestUser, String> {
    if !super::is_root() {
        return Err("root, to create user camadatest (run the tests as root, e.g. in CI)".into());
    }
    // One creator at a time across every test thread and test binary of the machine.
    let lock_path = if Path::new("/run").is_dir() {
        PathBuf::from("/run/camadatest.lock")
    } else {
        std::env::temp_dir().join("camadatest.lock")
    };
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("locking {}: {e}", lock_path.display()))?;

    if lookup()?.is_none() {
        // -K SUB_*_COUNT=0: no automatic subuid range; ours is written below.
        let out = Command::new("useradd")
            .args([
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/bin/sh",
                "-K",
                "SUB_UID_COUNT=0",
                "-K",
                "SUB_GID_COUNT=0",
                NAME,
            ])
            .output()
            .map_err(|e| format!("running useradd: {e} (apt-get install passwd)"))?;
        if !out.status.success() && lookup()?.is_none() {
            return Err(format!(
                "useradd {NAME} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let (uid, gid) = lookup()?.ok_or_else(|| format!("user {NAME} missing after useradd"))?;
    for file in ["/etc/subuid", "/etc/subgid"] {
        ensure_subid_range(Path::new(file))?;
    }
    Ok(TestUser {
        name: NAME,
        uid,
        gid,
        subid_start: SUBID_START,
        subid_count: SUBID_COUNT,
    })
}

fn lookup() -> Result<Option<(u32, u32)>, String> {
    nix::unistd::User::from_name(NAME)
        .map(|u| u.map(|u| (u.uid.as_raw(), u.gid.as_raw())))
        .map_err(|e| format!("looking up user {NAME}: {e}"))
}

/// Makes `camadatest:200000:65536` the one line of the user in `file`, keeping every other
/// line; rewrites the file (temp + rename) only when that is not already so.
fn ensure_subid_range(file: &Path) -> Result<(), String> {
    let want = format!("{NAME}:{SUBID_START}:{SUBID_COUNT}");
    let text = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {}: {e}", file.display())),
    };
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{NAME}:")))
        .collect();
    if ours == [want.as_str()] {
        return Ok(());
    }
    for l in text.lines() {
        if let Some((start, count)) = parse_range(l)
            && !l.starts_with(&format!("{NAME}:"))
            && start < SUBID_START + SUBID_COUNT
            && SUBID_START < start.saturating_add(count)
        {
            super::loud(&format!(
                "warning: {}: \"{l}\" overlaps the test user's range {SUBID_START}:{SUBID_COUNT}",
                file.display()
            ));
        }
    }
    let mut new: String = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{NAME}:")))
        .map(|l| format!("{l}\n"))
        .collect();
    new.push_str(&want);
    new.push('\n');
    let tmp = file.with_extension("camadatest-tmp");
    fs::write(&tmp, new).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("chmod {}: {e}", tmp.display()))?;
    fs::rename(&tmp, file).map_err(|e| format!("renaming onto {}: {e}", file.display()))
}

fn parse_range(line: &str) -> Option<(u32, u32)> {
    let mut it = line.split(':');
    let _name = it.next()?;
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Ok when /dev/fuse can be opened read-write by an unprivileged user. As root, a 0600
/// /dev/fuse (Debian on some machines; typical distributions ship 0666) is made 0666, once,
/// with a note; otherwise Err says how to fix it.
pub fn fuse_usable() -> Result<(), String> {
    static FUSE: OnceLock<Result<(), String>> = OnceLock::new();
    FUSE.get_or_init(|| {
        let dev = Path::new("/dev/fuse");
        let mode = match fs::metadata(dev) {
            Ok(m) => m.permissions().mode() & 0o777,
            Err(e) => return Err(format!("/dev/fuse: {e} (no FUSE in this kernel or container)")),
        };
        if mode & 0o006 == 0o006 {
            return Ok(());
        }
        if !super::is_root() {
            // The current user may still reach it through its group or ownership.
            return match fs::OpenOptions::new().read(true).write(true).open(dev) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!(
                    "/dev/fuse is {mode:o} and not usable by you ({e}); as root run: chmod 0666 /dev/fuse"
                )),
            };
        }
        fs::set_permissions(dev, fs::Permissions::from_mode(0o666))
            .map_err(|e| format!("chmod 0666 /dev/fuse: {e}"))?;
        super::loud(&format!(
            "note: /dev/fuse was {mode:o}; made it 0666 so unprivileged users can mount FUSE \
             (typical distributions ship it 0666)"
        ));
        Ok(())
    })
    .clone()
}

/// A world-readable copy of the file `src` (e.g. the camada binary) in a directory every user
/// can reach, reused while `src` is unchanged; published by rename when complete.
pub fn shared_copy(src: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let base = std::env::temp_dir().join("camada-test-bin");
    let dir = base.join(format!(
        "{}-{}-{}",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ));
    let name = src
        .file_name()
        .unwrap_or_else(|| panic!("{} has no file name", src.display()));
    let dst = dir.join(name);
    if dst.is_file() {
        return dst;
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("making {}: {e}", dir.display()));
    for d in [&base, &dir] {
        // In /tmp anyone may have made the dir first: use it only if it is ours.
        let owner = fs::symlink_metadata(d).map(|m| m.uid());
        assert!(
            owner
                .as_ref()
                .is_ok_and(|&u| u == nix::unistd::geteuid().as_raw()),
            "{} is not a directory of ours ({owner:?}); remove it",
            d.display()
        );
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", d.display()));
    }
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    fs::copy(src, &tmp).unwrap_or_else(|e| panic!("copying {}: {e}", src.display()));
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", tmp.display()));
    fs::rename(&tmp, &dst).unwrap_or_else(|e| panic!("renaming onto {}: {e}", dst.display()));
    dst
}
