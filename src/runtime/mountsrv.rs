//! A root filesystem without a container, and work done as root of a user namespace: the
//! detached mount server of `camada mount`, `camada unshare`, and the joiner `cp` uses.
//!
//! Owns: [`serve_detached`] (fork a server that makes its own user and mount namespaces,
//! mounts the engine's [`MountFn`] there and serves until SIGTERM, SIGINT or SIGHUP, then
//! unmounts and exits; pid in `<dir>/server.pid`), [`unshare`] (a command in a new user and
//! mount namespace with the user's id maps, or in the user namespace of a running
//! process), and [`in_userns_of`] (a closure run by a forked child that joined the user
//! namespace of a process, while the caller works beside it). Never touches records, the
//! store or the overlay's code: the engine hands the mount over as a closure.
//!
//! Invariants: like [`super::start`], call from a single-threaded process holding no
//! `flock` (the fork keeps it); a server's mount lives only in its own mount namespace and
//! dies with it, so a killed server leaves no mount behind on the host.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::{IdMaps, MountFn, RuntimeError, sys};

/// The file holding a mount server's pid, in its directory.
pub const SERVER_PID: &str = "server.pid";
/// The mount point inside a server's directory (in the server's mount namespace).
pub const MOUNT_POINT: &str = "root";

fn setup_err(what: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Setup {
        id: what.to_string(),
        message: message.into(),
    }
}

fn say(f: &mut File, line: &str) {
    let _ = f.write_all(format!("{}\n", line.replace('\n', " ")).as_bytes());
}

/// The pid of the live mount server of `dir`, if there is one.
pub fn server_pid(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join(SERVER_PID))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    (pid > 0 && !stat.contains(") Z ")).then_some(pid)
}

/// The path through which the user's own processes reach the server's mount.
pub fn server_path(dir: &Path, pid: i32) -> PathBuf {
    let mp = dir.join(MOUNT_POINT);
    let rel = mp.strip_prefix("/").unwrap_or(&mp);
    Path::new("/proc")
        .join(pid.to_string())
        .join("root")
        .join(rel)
}

/// Forks a child that unshares its user namespace; the parent writes `maps` for it. The
/// child then runs `then` (already in the new user namespace, as its root) and exits with
/// its code; `status` lets the child report to the parent. Returns the child's pid and
/// the read end of its status pipe.
fn fork_in_new_userns(
    what: &str,
    maps: &IdMaps,
    detach: bool,
    then: impl FnOnce(&mut File) -> i32,
) -> Result<(Pid, BufReader<File>), RuntimeError> {
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| setup_err(what, e.to_string()));
    let (status_r, status_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    match sys::fork() {
        Err(source) => Err(RuntimeError::Fork {
            id: what.to_string(),
            source,
        }),
        Ok(ForkResult::Child) => {
            drop(status_r);
            drop(go_w);
            let mut status = File::from(status_w);
            if detach {
                let _ = nix::unistd::setsid();
                let _ = nix::unistd::chdir("/");
                if let Ok(null) =
                    nix::fcntl::open("/dev/null", OFlag::O_RDWR, nix::sys::stat::Mode::empty())
                {
                    let _ = nix::unistd::dup2_stdin(&null);
                    let _ = nix::unistd::dup2_stdout(&null);
                    let _ = nix::unistd::dup2_stderr(&null);
                }
            }
            if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWUSER) {
                say(&mut status, &format!("S creating a user namespace: {e}"));
                std::process::exit(125);
            }
            say(&mut status, "U");
            let mut line = String::new();
            if BufReader::new(File::from(go_r))
                .read_line(&mut line)
                .unwrap_or(0)
                == 0
                || line.trim() != "G"
            {
                std::process::exit(125);
            }
            if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWNS)
                .and_then(|()| super::mounts::make_rprivate())
            {
                say(&mut status, &format!("S creating a mount namespace: {e}"));
                std::process::exit(125);
            }
            std::process::exit(then(&mut status));
        }
        Ok(ForkResult::Parent { child }) => {
            drop(status_w);
            drop(go_r);
            let mut status = BufReader::new(File::from(status_r));
            let mut go = File::from(go_w);
            let fail = |e: RuntimeError| {
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                Err(e)
            };
            let mut line = String::new();
            let _ = status.read_line(&mut line);
            if line.trim() != "U" {
                let msg = line.trim().strip_prefix("S ").unwrap_or("it ended early");
                return fail(setup_err(what, msg.to_string()));
            }
            if let Err(source) = maps.apply(child.as_raw()) {
                return fail(RuntimeError::Userns {
                    id: what.to_string(),
                    source,
                });
            }
            say(&mut go, "G");
            Ok((child, status))
        }
    }
}

/// Starts a detached server that mounts `mount` at `<dir>/root` in its own user (with
/// `maps`) and mount namespaces and serves it until SIGTERM, SIGINT or SIGHUP. Returns once
/// the mount is up (its pid is then in `<dir>/server.pid`), or with why it failed. The
/// user's own processes reach the mount at [`server_path`]. `dir` must exist.
pub fn serve_detached(
    what: &str,
    dir: &Path,
    maps: &IdMaps,
    mount: MountFn,
) -> Result<i32, RuntimeError> {
    let mp = dir.join(MOUNT_POINT);
    std::fs::create_dir_all(&mp).map_err(|source| RuntimeError::RunDir {
        path: mp.clone(),
        source,
    })?;
    let pid_file = dir.join(SERVER_PID);
    let (child, mut status) = fork_in_new_userns(what, maps, true, |status| {
        // signals wait on a signalfd; the mount's threads inherit the mask
        let mut set = SigSet::empty();
        for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            set.add(s);
        }
        let _ = set.thread_block();
        let sigfd = match SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => fd,
            Err(e) => {
                say(status, &format!("S signalfd: {e}"));
                return 125;
            }
        };
        let keep = match mount(&mp) {
            Ok(k) => k,
            Err(e) => {
                say(status, &format!("S mounting: {e}"));
                return 125;
            }
        };
        let me = nix::unistd::getpid().as_raw();
        if let Err(e) = std::fs::write(&pid_file, me.to_string()) {
            say(status, &format!("S writing {}: {e}", pid_file.display()));
            return 125;
        }
        say(status, &format!("R {me}"));
        loop {
            match sigfd.read_signal() {
                Ok(Some(_)) => break,
                Err(nix::Error::EINTR) | Ok(None) => continue,
                Err(_) => break,
            }
        }
        let _ = nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH);
        drop(keep);
        let _ = std::fs::remove_file(&pid_file);
        0
    })?;
    let mut line = String::new();
    let _ = status.read_line(&mut line);
    let line = line.trim();
    match line.strip_prefix("R ").and_then(|p| p.parse().ok()) {
        Some(pid) => Ok(pid),
        None => {
            let _ = waitpid(child, None);
            Err(setup_err(
                what,
                line.strip_prefix("S ")
                    .unwrap_or("the mount server ended without saying why")
                    .to_string(),
            ))
        }
    }
}

/// Stops the mount server of `dir` (SIGTERM, then waits until it has unmounted and gone;
/// SIGKILL after `grace`, its mount then goes with its namespace). True if one was running.
pub fn stop_server(dir: &Path, grace: std::time::Duration) -> bool {
    let Some(pid) = server_pid(dir) else {
        let _ = std::fs::remove_file(dir.join(SERVER_PID));
        return false;
    };
    let p = Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(p, Signal::SIGTERM);
    let start = std::time::Instant::now();
    while server_pid(dir).is_some() {
        if start.elapsed() > grace {
            let _ = nix::sys::signal::kill(p, Signal::SIGKILL);
            std::thread::sleep(std::time::Duration::from_millis(50));
            let _ = std::fs::remove_file(dir.join(SERVER_PID));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    true
}

fn exit_code(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Err(nix::Error::EINTR) => continue,
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            _ => return 125,
        }
    }
}

fn join_userns(pid: i32) -> Result<(), String> {
    let path = format!("/proc/{pid}/ns/user");
    let fd = nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("opening {path}: {e}"))?;
    let theirs = std::fs::metadata(&path).map_err(|e| e.to_string())?;
    let ours = std::fs::metadata("/proc/self/ns/user").map_err(|e| e.to_string())?;
    if std::os::unix::fs::MetadataExt::ino(&theirs) == std::os::unix::fs::MetadataExt::ino(&ours) {
        return Ok(()); // already there (a container of root without a user namespace)
    }
    nix::sched::setns(fd, CloneFlags::CLONE_NEWUSER).map_err(|e| format!("setns({path}): {e}"))
}

/// `camada unshare`: runs `argv` as root of a new user namespace with `maps` and a new
/// mount namespace, or, with `join`, in the user namespace of process `join` (a running
/// container's first process). Returns its exit code (127 when it cannot be run).
pub fn unshare(maps: &IdMaps, join: Option<i32>, argv: &[String]) -> Result<i32, RuntimeError> {
    let exec = |argv: &[String]| -> i32 {
        let args: Vec<std::ffi::CString> = argv
            .iter()
            .filter_map(|a| std::ffi::CString::new(a.as_bytes()).ok())
            .collect();
        let Some(first) = args.first() else {
            return 127;
        };
        sys::reset_signal_dispositions();
        let e = nix::unistd::execvp(first, &args).err();
        eprintln!(
            "Error: running {}: {}",
            argv[0],
            e.map_or(String::new(), |e| e.to_string())
        );
        127
    };
    let child = match join {
        None => fork_in_new_userns("unshare", maps, false, |_| exec(argv))?.0,
        Some(pid) => match sys::fork() {
            Err(source) => {
                return Err(RuntimeError::Fork {
                    id: "unshare".into(),
                    source,
                });
            }
            Ok(ForkResult::Child) => {
                if let Err(e) = join_userns(pid) {
                    eprintln!("Error: joining the container's user namespace: {e}");
                    std::process::exit(125);
                }
                std::process::exit(exec(argv));
            }
            Ok(ForkResult::Parent { child }) => child,
        },
    };
    // the command owns the terminal's signals; this process only waits
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGQUIT);
    let old = set
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .ok();
    let code = exit_code(child);
    if let Some(old) = old {
        let _ = old.thread_set_mask();
    }
    Ok(code)
}

/// Runs `inside` in a forked child that joined the user namespace of process `pid` (as its
/// root), while the caller runs `beside`; returns the child's exit code (`inside`'s return
/// value, 125 if the namespace could not be joined) and what `beside` returned. Pipes made
/// before the call connect the two: give each closure its own ends (moved in), so each
/// process closes the other side's ends at once and end-of-file arrives.
pub fn in_userns_of<T>(
    pid: i32,
    inside: impl FnOnce() -> i32,
    beside: impl FnOnce() -> T,
) -> Result<(i32, T), RuntimeError> {
    let child = match sys::fork() {
        Err(source) => {
            return Err(RuntimeError::Fork {
                id: format!("joiner of {pid}"),
                source,
            });
        }
        Ok(ForkResult::Child) => {
            drop(beside); // the caller's pipe ends
            if let Err(e) = join_userns(pid) {
                eprintln!("Error: joining the container's user namespace: {e}");
                std::process::exit(125);
            }
            std::process::exit(inside());
        }
        Ok(ForkResult::Parent { child }) => {
            drop(inside); // the child's pipe ends
            child
        }
    };
    let out = beside();
    Ok((exit_code(child), out))
}
