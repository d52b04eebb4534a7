//! The container's process: who it runs as, with what environment, where, and the exec.
//!
//! Owns: `-u` resolution through the image's /etc/passwd and /etc/group (supplementary
//! groups included), the environment defaults docker adds (PATH, HOSTNAME, HOME, TERM), the
//! working directory (created when missing, as docker does), docker's default capability
//! set, `no_new_privs`, the PATH lookup and the exec with docker's 126/127 codes. Runs inside
//! the container's namespaces after pivot_root; never mounts anything. Invariant: on every
//! failure the caller gets a [`Failure`] (exit code + one-line message) instead of a panic,
//! and on success nothing returns (the process image is replaced).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

use super::sys;

/// What runs in the container (the engine applies docker's ENTRYPOINT/CMD rules and the
/// image/env-file/-e merge; this module adds only docker's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessSpec {
    /// argv; `args[0]` is looked up on the container's PATH unless it holds a `/`.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// Absolute working directory inside the container; empty means `/`.
    pub cwd: String,
    /// `-u`: empty (root), `name`, `uid`, `name:group`, `uid:gid`...
    pub user: String,
    /// A terminal is attached (sets TERM=xterm when missing).
    pub tty: bool,
}

/// A failure to start the process: the exit code docker gives it and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
    pub(crate) fn engine(message: impl Into<String>) -> Failure {
        Failure::new(125, message)
    }
}

/// The identity the process takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary group included, as docker does).
    pub groups: Vec<u32>,
    /// From /etc/passwd, else `/`.
    pub home: String,
}

/// docker's default capabilities: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
/// SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
pub const DEFAULT_CAPS: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 7)
    | (1 << 8)
    | (1 << 10)
    | (1 << 13)
    | (1 << 18)
    | (1 << 27)
    | (1 << 29)
    | (1 << 31);

/// The PATH docker sets when the image has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

/// (name, gid, members) of each /etc/group line.
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        let members = f[3].split(',').filter(|m| !m.is_empty()).collect();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// Resolves `-u USER[:GROUP]` as docker does: names through the image's passwd and group
/// files, numbers as given even when absent there (a numeric uid without an entry gets gid 0
/// and home `/`), supplementary groups from the group file's member lists.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<User, Failure> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|e| e.uid == uid),
        Err(_) => Some(
            passwd_entries(passwd)
                .find(|e| e.name == user_part)
                .ok_or_else(|| {
                    Failure::engine(format!(
                        "unable to find user {user_part}: no matching entries in passwd file"
                    ))
                })?,
        ),
    };
    let (uid, mut gid, home, name) = match (&entry, user_part.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        (None, Ok(uid)) => (uid, 0, "/".to_string(), None),
        (None, Err(_)) => unreachable!("a name without an entry returned above"),
    };
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_entries(group)
                .find(|(n, _, _)| *n == g)
                .map(|(_, id, _)| id)
                .ok_or_else(|| {
                    Failure::engine(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    let mut groups = vec![gid];
    if let Some(name) = name {
        for (_, id, members) in group_entries(group) {
            if members.contains(&name) && !groups.contains(&id) {
                groups.push(id);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        groups,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// The environment with docker's defaults added where the spec has none.
pub fn with_defaults(env: &[String], hostname: &str, home: &str, tty: bool) -> Vec<String> {
    let has = |k: &str| {
        env.iter()
            .any(|e| e.split_once('=').map_or(e.as_str(), |(key, _)| key) == k)
    };
    let mut out = Vec::with_capacity(env.len() + 4);
    if !has("PATH") {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOSTNAME") {
        out.push(format!("HOSTNAME={hostname}"));
    }
    out.extend(env.iter().cloned());
    if tty && !has("TERM") {
        out.push("TERM=xterm".into());
    }
    if !has("HOME") {
        out.push(format!("HOME={home}"));
    }
    out
}

fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key)?.strip_prefix('='))
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The program to exec for `name`, looked up on `path` like docker (Go's LookPath).
pub fn find_executable(name: &str, path: &str) -> Result<PathBuf, Failure> {
    if name.is_empty() {
        return Err(Failure::new(127, "no command specified"));
    }
    if name.contains('/') {
        let p = PathBuf::from(name);
        return match std::fs::metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::new(
                127,
                format!("exec: \"{name}\": stat {name}: no such file or directory"),
            )),
            _ => Ok(p),
        };
    }
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(name);
        if is_executable_file(&p) {
            return Ok(p);
        }
    }
    Err(Failure::new(
        127,
        format!("exec: \"{name}\": executable file not found in $PATH"),
    ))
}

fn cstrings<'a>(items: impl Iterator<Item = &'a [u8]>) -> Result<Vec<CString>, Failure> {
    items
        .map(|s| CString::new(s).map_err(|_| Failure::engine("an argument holds a NUL byte")))
        .collect()
}

/// What the user namespace allows the process, and what it gets besides its identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ids {
    /// False in single-id mode (the kernel denies setgroups there).
    pub(crate) can_setgroups: bool,
    /// Single-id mode: the one container (uid, gid) that is mapped. When it is root's, a
    /// nested user namespace gives the process any other single id; else no other can be
    /// taken.
    pub(crate) single: Option<(u32, u32)>,
    /// The host user's name, for the fix the single-id error gives.
    pub(crate) host_user: String,
    /// Load the fake-ids seccomp filter ([`super::seccomp`]) before the exec.
    pub(crate) fake_ids: bool,
}

/// Single-id mode: a nested user namespace where this process's one id (container root)
/// is `uid`/`gid`. Files it creates still belong to the invoking user on the host.
fn become_single(uid: u32, gid: u32) -> std::io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)?;
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} 0 1\n"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} 0 1\n"))
}

/// The error for `-u` asking for an id the single mapping lacks.
fn unmapped(spec: &str, what: &str, id: u32, mapped: u32, host_user: &str) -> Failure {
    let who = if host_user.is_empty() {
        "USER"
    } else {
        host_user
    };
    Failure::engine(format!(
        "user {spec:?} needs {what} {id}, but this container maps only {what} {mapped} (single-id mode: {who} has no subordinate ids); give {who} a range with: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}"
    ))
}

/// In the container, after pivot_root: takes the user's identity and capabilities, goes to
/// the working directory and execs. Returns only on failure.
pub(crate) fn become_and_exec(spec: &ProcessSpec, hostname: &str, ids: &Ids) -> Failure {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = match resolve_user(&spec.user, &passwd, &group) {
        Ok(u) => u,
        Err(f) => return f,
    };
    match ids.single {
        // single-id mode as container root: the one id can become any user's in a nested
        // user namespace (the user's own id -> that user)
        Some((0, 0)) if (user.uid, user.gid) != (0, 0) => {
            if let Err(e) = become_single(user.uid, user.gid) {
                return Failure::engine(format!(
                    "mapping the single id to uid {} gid {}: {e}",
                    user.uid, user.gid
                ));
            }
        }
        Some((uid, _)) if user.uid != uid => {
            return unmapped(&spec.user, "uid", user.uid, uid, &ids.host_user);
        }
        Some((_, gid)) if user.gid != gid => {
            return unmapped(&spec.user, "gid", user.gid, gid, &ids.host_user);
        }
        _ => {}
    }
    let env = with_defaults(&spec.env, hostname, &user.home, spec.tty);
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    if std::fs::create_dir_all(cwd).is_err() && !Path::new(cwd).is_dir() {
        return Failure::engine(format!("creating the working directory {cwd}"));
    }
    if let Err(e) = sys::drop_bounding_set(DEFAULT_CAPS) {
        return Failure::engine(format!("dropping capabilities: {e}"));
    }
    if ids.can_setgroups {
        let groups: Vec<Gid> = user.groups.iter().map(|&g| Gid::from_raw(g)).collect();
        if let Err(e) = nix::unistd::setgroups(&groups) {
            return Failure::engine(format!("setting groups {:?}: {e}", user.groups));
        }
    }
    let (uid, gid) = (Uid::from_raw(user.uid), Gid::from_raw(user.gid));
    if let Err(e) = nix::unistd::setresgid(gid, gid, gid) {
        return Failure::engine(format!(
            "setting gid {}: {e} (is the id mapped? without a range in /etc/subgid only root is)",
            user.gid
        ));
    }
    if let Err(e) = nix::unistd::setresuid(uid, uid, uid) {
        return Failure::engine(format!(
            "setting uid {}: {e} (is the id mapped? without a range in /etc/subuid only root is)",
            user.uid
        ));
    }
    if user.uid == 0
        && let Err(e) = sys::set_capabilities(DEFAULT_CAPS)
    {
        return Failure::engine(format!("setting capabilities: {e}"));
    }
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        return Failure::engine(format!("setting no_new_privs: {e}"));
    }
    if ids.fake_ids
        && let Err(e) = sys::install_seccomp(&super::seccomp::fake_ids_program())
    {
        return Failure::engine(format!("loading the fake-ids seccomp filter: {e}"));
    }
    if let Err(e) = nix::unistd::chdir(cwd) {
        return Failure::engine(format!("changing to the working directory {cwd}: {e}"));
    }
    exec(&spec.args, &env)
}

/// Looks up `args[0]` and execs it with `env`; returns only on failure (126/127 as docker).
pub(crate) fn exec(args: &[String], env: &[String]) -> Failure {
    let Some(name) = args.first() else {
        return Failure::new(127, "no command specified");
    };
    let path = env_value(env, "PATH").unwrap_or(DEFAULT_PATH);
    let program = match find_executable(name, path) {
        Ok(p) => p,
        Err(f) => return f,
    };
    let (prog, argv, envp) = match (
        CString::new(program.as_os_str().as_bytes())
            .map_err(|_| Failure::engine("the program path holds a NUL byte")),
        cstrings(args.iter().map(|s| s.as_bytes())),
        cstrings(env.iter().map(|s| s.as_bytes())),
    ) {
        (Ok(p), Ok(a), Ok(e)) => (p, a, e),
        (Err(f), ..) | (_, Err(f), _) | (.., Err(f)) => return f,
    };
    sys::reset_signal_dispositions();
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    let err = match nix::unistd::execve(&prog, &argv, &envp) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    let shown = program.display();
    match err {
        nix::errno::Errno::ENOENT => {
            Failure::new(127, format!("exec: \"{shown}\": no such file or directory"))
        }
        nix::errno::Errno::EACCES | nix::errno::Errno::EISDIR => {
            Failure::new(126, format!("exec: \"{shown}\": permission denied"))
        }
        nix::errno::Errno::ENOEXEC => {
            Failure::new(126, format!("exec: \"{shown}\": exec format error"))
        }
        e => Failure::new(126, format!("exec: \"{shown}\": {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nana:x:1000:1000::/home/ana:/bin/sh\nbo:x:1001:1001::/home/bo:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:ana,bo\nana:x:1000:\nbo:x:1001:\naudio:x:29:ana\n";

    #[test]
    fn names_resolve_with_supplementary_groups() {
        let u = resolve_user("ana", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/ana"));
        assert_eq!(u.groups, vec![1000, 10, 29]);
        let u = resolve_user("ana:bo", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1001));
        assert_eq!(u.groups, vec![1001, 10, 29]);
        let u = resolve_user("", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn numbers_need_no_entry() {
        let u = resolve_user("1001", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1001, 1001, "/home/bo"));
        assert_eq!(u.groups, vec![1001, 10]);
        let u = resolve_user("4242:77", PASSWD, GROUP).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.groups.clone(), u.home.as_str()),
            (4242, 77, vec![77], "/")
        );
    }

    #[test]
    fn unknown_names_are_engine_errors() {
        let f = resolve_user("nobody2", PASSWD, GROUP).unwrap_err();
        assert_eq!(f.code, 125);
        assert!(
            f.message.contains("unable to find user nobody2"),
            "{}",
            f.message
        );
        let f = resolve_user("ana:nogroup", PASSWD, GROUP).unwrap_err();
        assert!(f.message.contains("unable to find group nogroup"));
    }

    #[test]
    fn an_unmapped_user_is_told_the_fix() {
        let f = unmapped("root", "uid", 0, 1000, "ana");
        assert_eq!(f.code, 125);
        assert!(f.message.contains("maps only uid 1000"), "{}", f.message);
        assert!(
            f.message.ends_with(
                "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ana"
            ),
            "{}",
            f.message
        );
    }

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let env = with_defaults(&["A=1".into(), "HOME=/x".into()], "h1", "/root", true);
        assert_eq!(
            env,
            vec![
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=h1".into(),
                "A=1".into(),
                "HOME=/x".into(),
                "TERM=xterm".into()
            ]
        );
        let env = with_defaults(&["PATH=/bin".into()], "h", "/root", false);
        assert_eq!(
            env,
            vec![
                "HOSTNAME=h".to_string(),
                "PATH=/bin".into(),
                "HOME=/root".into()
            ]
        );
    }

    #[test]
    fn lookup_gives_docker_codes() {
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = d.path().join("data");
        std::fs::write(&plain, "x").unwrap();
        let path = format!("/nonexistent:{}", d.path().display());
        assert_eq!(find_executable("tool", &path).unwrap(), exe);
        assert_eq!(find_executable("data", &path).unwrap_err().code, 127);
        assert_eq!(find_executable("/no/such", &path).unwrap_err().code, 127);
        // a path that exists is exec'd as is: the exec itself gives 126 when it is not runnable
        assert_eq!(
            find_executable(plain.to_str().unwrap(), &path).unwrap(),
            plain
        );
    }
}
