//! `exec`: a new process in a running container, by setns into its namespaces.
//!
//! Owns: joining the namespaces of the container's first process (user first: the
//! monitor's, which owns the others; mount last; then a fork so the pid namespace applies), a pty made in the container's own devpts for
//! `-t`, and relaying it. The process itself is set up exactly as the first one
//! ([`super::process`]). Never talks to the monitor: the first process's pid in
//! `<run_dir>/init.pid` is all it needs. Invariant: like [`super::start`], call it from a
//! single-threaded process; the caller's terminal is restored on every path out.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::monitor::{Started, forwarded_set};
use super::process::{self, Failure, ProcessSpec};
use super::pty::{self, RawMode};
use super::{RuntimeError, sys, userns};

const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// What exec waits for: the signals passed on to the process, and its end.
fn signals() -> SigSet {
    let mut s = forwarded_set();
    s.add(Signal::SIGCHLD);
    s
}

/// Starts `spec` in the running container of `run_dir`; [`Started::wait`] gives its exit
/// code. `stdin` keeps the caller's stdin (else /dev/null); `spec.tty` gives it a pty.
pub fn exec(run_dir: &Path, spec: &ProcessSpec, stdin: bool) -> Result<Started, RuntimeError> {
    let what = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let not_running = || RuntimeError::NotRunning { what: what.clone() };
    let pid: i32 = std::fs::read_to_string(run_dir.join("init.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(not_running)?;
    // the user namespace that owns the others is the monitor's: the first process may sit
    // in a nested one (single-id mode with -u), whose members cannot join the rest
    let monitor: Option<i32> = std::fs::read_to_string(run_dir.join("monitor.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let mut joins: Vec<(OwnedFd, CloneFlags)> = Vec::new();
    for (name, flag) in NAMESPACES {
        let owner = match (*name, monitor) {
            ("user", Some(m)) => m,
            _ => pid,
        };
        let theirs = format!("/proc/{owner}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        let (Ok(a), Ok(b)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
            return Err(not_running());
        };
        if a.ino() == b.ino() && a.dev() == b.dev() {
            continue;
        }
        let fd = nix::fcntl::open(
            theirs.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|source| RuntimeError::Enter {
            what: what.clone(),
            source,
        })?;
        joins.push((fd, *flag));
    }
    let setup = |m: String| RuntimeError::Setup {
        id: what.clone(),
        message: m,
    };
    let (status_r, status_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| setup(format!("pipe: {e}")))?;
    let old_mask = signals()
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|e| setup(format!("blocking signals: {e}")))?;
    let raw = if spec.tty && stdin {
        match RawMode::enter(std::io::stdin().as_fd()) {
            Ok(r) => r,
            Err(source) => {
                let _ = old_mask.thread_set_mask();
                return Err(RuntimeError::Terminal { source });
            }
        }
    } else {
        None
    };
    let mut started = Started::new(what.clone(), File::from(status_r), old_mask, raw);
    let extra = Extra {
        host_user: nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default(),
        fake_ids: run_dir.join(super::monitor::FAKE_IDS_FILE).exists(),
    };
    match sys::fork() {
        Err(source) => Err(RuntimeError::Fork { id: what, source }),
        Ok(ForkResult::Child) => {
            let code = enter_and_run(joins, spec, stdin, &extra, File::from(status_w));
            std::process::exit(code);
        }
        Ok(ForkResult::Parent { child }) => {
            drop(status_w);
            started.monitor_pid = child.as_raw();
            started.read_outcome(child)?;
            Ok(started)
        }
    }
}

/// What the exec'd process needs to know from the host side.
struct Extra {
    host_user: String,
    /// The container runs under the fake-ids filter: so does this process.
    fake_ids: bool,
}

/// The joiner: enters the namespaces, forks the process, relays its pty, reports on
/// `status` like a monitor does, and returns the process's exit code.
fn enter_and_run(
    joins: Vec<(OwnedFd, CloneFlags)>,
    spec: &ProcessSpec,
    stdin: bool,
    extra: &Extra,
    mut status: File,
) -> i32 {
    let mut say = |line: String| {
        let _ = status.write_all(format!("{line}\n").as_bytes());
    };
    for (fd, flag) in &joins {
        if let Err(e) = nix::sched::setns(fd, *flag) {
            say(format!(
                "S joining the container's namespaces ({flag:?}): {e}"
            ));
            return 125;
        }
    }
    drop(joins);
    let pair = if spec.tty {
        match pty::open_pair(Path::new("/dev/pts/ptmx")) {
            Ok(p) => Some(p),
            Err(e) => {
                say(format!("S opening a pty in the container: {e}"));
                return 125;
            }
        }
    } else {
        None
    };
    if let (Some((master, _)), Some(size)) = (&pair, pty::size_of(std::io::stdin().as_fd())) {
        let _ = pty::set_size(master.as_fd(), size);
    }
    let Ok((err_r, err_w)) = nix::unistd::pipe2(OFlag::O_CLOEXEC) else {
        say("S pipe".into());
        return 125;
    };
    let child = match sys::fork() {
        Err(e) => {
            say(format!("S fork: {e}"));
            return 125;
        }
        Ok(ForkResult::Child) => {
            drop(err_r);
            let mut err_w = File::from(err_w);
            let f = run_in_container(spec, stdin, extra, pair.map(|(_, s)| s), &err_w);
            let _ = err_w.write_all(format!("{} {}", f.code, f.message).as_bytes());
            std::process::exit(f.code);
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(err_w);
    let master = pair.map(|(m, s)| {
        drop(s);
        File::from(m)
    });
    let mut failure = String::new();
    let _ = File::from(err_r).read_to_string(&mut failure);
    if !failure.is_empty() {
        let _ = waitpid(child, None);
        let (code, msg) = failure.split_once(' ').unwrap_or(("125", &failure));
        say(format!("F {code} {msg}"));
        return code.parse().unwrap_or(125);
    }
    say(format!("R {}", child.as_raw()));
    let code = relay_until_exit(child, master, stdin);
    say(format!("X {code}"));
    code
}

fn run_in_container(
    spec: &ProcessSpec,
    stdin: bool,
    extra: &Extra,
    slave: Option<OwnedFd>,
    err_w: &File,
) -> Failure {
    use std::os::fd::AsRawFd;
    if let Some(slave) = &slave {
        if let Err(e) = pty::become_session_leader_on(slave) {
            return Failure::engine(format!("making the pty the terminal: {e}"));
        }
    } else if !stdin
        && let Ok(null) =
            nix::fcntl::open("/dev/null", OFlag::O_RDONLY, nix::sys::stat::Mode::empty())
    {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    drop(slave);
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let ids = process::Ids {
        can_setgroups: std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() != "deny")
            .unwrap_or(true),
        single: userns::single_mapping(
            &std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default(),
            &std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default(),
        ),
        host_user: extra.host_user.clone(),
        fake_ids: extra.fake_ids,
    };
    sys::close_fds_from(3, &[err_w.as_raw_fd()]);
    process::become_and_exec(spec, &hostname, &ids)
}

/// Waits for `child`, forwarding signals and relaying the pty when there is one.
fn relay_until_exit(child: Pid, mut master: Option<File>, stdin: bool) -> i32 {
    let Ok(sigfd) =
        SignalFd::with_flags(&signals(), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    else {
        return wait_code(child);
    };
    let mut stdin_open = stdin && master.is_some();
    let mut exit: Option<i32> = None;
    loop {
        if let Some(code) = exit
            && master.is_none()
        {
            return code;
        }
        let (sig_r, in_r, m_r) = {
            let stdin_h = std::io::stdin();
            let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
            let in_i = stdin_open.then(|| {
                fds.push(PollFd::new(stdin_h.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let m_i = master.as_ref().map(|m| {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let timeout = if exit.is_some() {
                PollTimeout::from(200u16)
            } else {
                PollTimeout::NONE
            };
            match poll(&mut fds, timeout) {
                Ok(0) => {
                    master = None;
                    continue;
                }
                Ok(_) => {}
                Err(_) => continue,
            }
            let ready = |i: Option<usize>| {
                i.and_then(|i| fds[i].revents())
                    .is_some_and(|r| !r.is_empty())
            };
            (ready(Some(0)), ready(in_i), ready(m_i))
        };
        if sig_r {
            while let Ok(Some(info)) = sigfd.read_signal() {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGCHLD {
                    match waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(_, c)) => exit = Some(c),
                        Ok(WaitStatus::Signaled(_, s, _)) => exit = Some(128 + s as i32),
                        _ => {}
                    }
                } else if signo == libc::SIGWINCH {
                    if let (Some(m), Some(size)) = (&master, pty::size_of(std::io::stdin().as_fd()))
                    {
                        let _ = pty::set_size(m.as_fd(), size);
                    }
                } else if let Ok(sig) = Signal::try_from(signo) {
                    let _ = kill(child, sig);
                }
            }
        }
        if in_r {
            let mut buf = [0u8; 4096];
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if let Some(m) = &mut master {
                        let _ = m.write_all(&buf[..n]);
                    }
                }
            }
        }
        if m_r && let Some(m) = &mut master {
            let mut buf = [0u8; 16384];
            match m.read(&mut buf) {
                Ok(0) | Err(_) => master = None,
                Ok(n) => {
                    let mut o = std::io::stdout().lock();
                    let _ = o.write_all(&buf[..n]);
                    let _ = o.flush();
                }
            }
        }
    }
}

fn wait_code(child: Pid) -> i32 {
    match waitpid(child, None) {
        Ok(WaitStatus::Exited(_, c)) => c,
        Ok(WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
        _ => 125,
    }
}
