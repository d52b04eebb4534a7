//! The per-container monitor and the container's first process.
//!
//! Owns: [`start`] (fork the monitor, write its id maps, wait until the process runs or
//! fails), the monitor's life (namespaces, rootfs mount, the first process, the log or the
//! terminal, the control socket, the exit hook, unmount), the first process up to the exec
//! (or `--init`'s reaper), and the client side of the control socket ([`signal`],
//! [`attach`], [`wait`], [`resize`], [`is_running`]). Never touches container records: the
//! engine's [`OnExit`] hook does that, inside the monitor, once the container has exited.
//!
//! Invariants: the monitor is the only parent of the container's first process, which dies
//! with it (PR_SET_PDEATHSIG); the caller learns the outcome on a status pipe in one line
//! (`R <pid>` running, `F <code> <message>` failed to start, `S <message>` set-up failed,
//! later `X <code>` exited). After the first process has exited the monitor cannot fork (its
//! pid namespace is gone), so the exit hook must not spawn processes.
//!
//! Control socket protocol (`<run_dir>/ctl.sock`, one request line per connection):
//! `signal N` -> `ok`; `resize ROWS COLS` -> `ok`; `wait` -> `exit CODE` once the container
//! has exited; `attach` -> frames `[stream, 0, 0, 0, len u32 BE] payload` (1 stdout, 2
//! stderr, 255 exit code in decimal) while the client's bytes become the container's stdin.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::process::{self, Failure};
use super::pty::{self, RawMode};
use super::userns::MapWriter;
use super::{Container, Io, Network, RootFs, RuntimeError, mounts, sys};

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit code docker reports: the process's own, 128+n after signal n, 125/126/127
    /// when it never ran.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// Why it never ran, if it did not.
    pub failure: Option<String>,
}

/// The engine's hook, run in the monitor after the container exited and its rootfs was
/// unmounted (record the exit, remove the container for `--rm`). It must not fork.
pub type OnExit = Box<dyn FnOnce(&ExitInfo)>;

/// Signals the caller and the monitor pass on to the container.
const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

fn forwarded_set() -> SigSet {
    let mut s = SigSet::empty();
    for sig in FORWARDED {
        s.add(*sig);
    }
    s
}

/// A container whose process runs, as seen by the caller of [`start`].
pub struct Started {
    pub id: String,
    /// Host pid of the monitor.
    pub monitor_pid: i32,
    /// Host pid of the container's first process.
    pub init_pid: i32,
    status: BufReader<File>,
    old_mask: SigSet,
    raw: Option<RawMode>,
    done: bool,
}

impl Started {
    pub(crate) fn new(id: String, status: File, old_mask: SigSet, raw: Option<RawMode>) -> Started {
        Started {
            id,
            monitor_pid: 0,
            init_pid: 0,
            status: BufReader::new(status),
            old_mask,
            raw,
            done: false,
        }
    }

    /// Reads the `R`/`F`/`S` line of a monitor (or exec joiner) `pid`; reaps it on failure.
    pub(crate) fn read_outcome(&mut self, pid: Pid) -> Result<(), RuntimeError> {
        let mut line = String::new();
        let _ = self.status.read_line(&mut line);
        let line = line.trim_end_matches('\n');
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let err = match kind {
            "R" => {
                self.init_pid = rest.parse().unwrap_or(0);
                return Ok(());
            }
            "F" => {
                let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
                RuntimeError::Process(Failure::new(code.parse().unwrap_or(125), message))
            }
            "S" => setup_err(&self.id, rest),
            _ => RuntimeError::MonitorLost {
                id: self.id.clone(),
            },
        };
        let _ = waitpid(pid, None);
        self.finish();
        Err(err)
    }

    /// Foreground: waits for the container to exit, passing SIGINT, SIGTERM, SIGHUP, SIGQUIT,
    /// SIGUSR1/2 and SIGWINCH on to it, and returns its exit code.
    pub fn wait(mut self) -> Result<i32, RuntimeError> {
        let sigfd =
            SignalFd::with_flags(&forwarded_set(), SfdFlags::SFD_CLOEXEC).map_err(|source| {
                RuntimeError::Setup {
                    id: self.id.clone(),
                    message: format!("signalfd: {source}"),
                }
            })?;
        let monitor = Pid::from_raw(self.monitor_pid);
        let mut code = None;
        loop {
            let (sig_ready, status_ready) = {
                let mut fds = [
                    PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.status.get_ref().as_fd(), PollFlags::POLLIN),
                ];
                if let Err(e) = poll(&mut fds, PollTimeout::NONE) {
                    if e == nix::Error::EINTR {
                        continue;
                    }
                    break;
                }
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), ready(&fds[1]))
            };
            if sig_ready && let Ok(Some(info)) = sigfd.read_signal() {
                if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                    let _ = kill(monitor, sig);
                }
            }
            if status_ready {
                let mut line = String::new();
                match self.status.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if let Some(c) = line.trim().strip_prefix("X ") {
                            code = c.parse().ok();
                        }
                    }
                }
            }
        }
        let status = loop {
            match waitpid(monitor, None) {
                Err(nix::Error::EINTR) => continue,
                other => break other,
            }
        };
        self.finish();
        match (code, status) {
            (Some(c), _) => Ok(c),
            (None, Ok(WaitStatus::Exited(_, c))) => Ok(c),
            (None, Ok(WaitStatus::Signaled(_, s, _))) => Ok(128 + s as i32),
            _ => Err(RuntimeError::MonitorLost {
                id: self.id.clone(),
            }),
        }
    }

    /// Detached: leaves the container to its monitor.
    pub fn detach(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.raw = None;
            let _ = self.old_mask.thread_set_mask();
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.finish();
    }
}

fn write_line(f: &mut File, line: &str) {
    let _ = f.write_all(format!("{line}\n").as_bytes());
}

fn setup_err(id: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Setup {
        id: id.to_string(),
        message: message.into(),
    }
}

/// Starts `container`: forks its monitor and returns once the process runs (then call
/// [`Started::wait`] for the foreground or [`Started::detach`]), or fails with the reason
/// (and, for 126/127, docker's code: [`RuntimeError::exit_code`]). `on_exit` runs in the
/// monitor when the container has exited, also when it never started. Call from a
/// single-threaded process.
pub fn start(mut container: Container, on_exit: Option<OnExit>) -> Result<Started, RuntimeError> {
    let id = container.id.clone();
    let maps = container.maps.clone();
    let rootfs = std::mem::replace(&mut container.rootfs, RootFs::Dir(PathBuf::new()));
    let run_dir = container.run_dir.clone();
    std::fs::create_dir_all(&run_dir)
        .and_then(|()| std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|source| RuntimeError::RunDir {
            path: run_dir.clone(),
            source,
        })?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for (name, text) in [
        (
            "hosts",
            mounts::hosts_file(&container.hostname, container.network),
        ),
        ("hostname", format!("{}\n", container.hostname)),
        (
            "resolv.conf",
            mounts::resolv_conf(&host_resolv, container.network),
        ),
    ] {
        let path = run_dir.join(name);
        std::fs::write(&path, text).map_err(|source| RuntimeError::RunDir { path, source })?;
    }
    let pipe =
        || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| setup_err(&id, format!("pipe: {e}")));
    let (status_r, status_w) = pipe()?;
    let (go_r, go_w) = pipe()?;

    let mut block = forwarded_set();
    block.add(Signal::SIGCHLD);
    let old_mask = block
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(|e| setup_err(&id, format!("blocking signals: {e}")))?;
    let raw = match (&container.io, container.process.tty) {
        (Io::Inherit { stdin: true }, true) => match RawMode::enter(std::io::stdin().as_fd()) {
            Ok(r) => r,
            Err(source) => {
                let _ = old_mask.thread_set_mask();
                return Err(RuntimeError::Terminal { source });
            }
        },
        _ => None,
    };
    let mut started = Started::new(id.clone(), File::from(status_r), old_mask, raw);
    let pid = match sys::fork() {
        Err(source) => return Err(RuntimeError::Fork { id, source }),
        Ok(ForkResult::Child) => {
            drop(go_w);
            let code = monitor_main(
                container,
                rootfs,
                on_exit,
                File::from(status_w),
                File::from(go_r),
            );
            std::process::exit(code);
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(status_w);
    drop(go_r);
    let mut go = File::from(go_w);
    started.monitor_pid = pid.as_raw();
    let reap = |started: &mut Started| {
        let _ = waitpid(pid, None);
        started.finish();
    };
    let mut line = String::new();
    if started.status.read_line(&mut line).unwrap_or(0) == 0 || line.trim() != "U" {
        reap(&mut started);
        return Err(RuntimeError::MonitorLost { id });
    }
    if let Err(source) = maps.apply(pid.as_raw()) {
        let _ = kill(pid, Signal::SIGKILL);
        reap(&mut started);
        return Err(RuntimeError::Userns { id, source });
    }
    write_line(&mut go, "G");
    started.read_outcome(pid)?;
    Ok(started)
}

// ---------------------------------------------------------------------------------------
// The monitor

struct MonitorFiles {
    status: File,
    run_dir: PathBuf,
}

impl MonitorFiles {
    fn say(&mut self, line: &str) {
        write_line(&mut self.status, line);
    }
    fn cleanup(&self) {
        for f in ["ctl.sock", "init.pid", "monitor.pid"] {
            let _ = std::fs::remove_file(self.run_dir.join(f));
        }
        let _ = std::fs::remove_dir(self.run_dir.join("rootfs"));
    }
}

/// The monitor: returns its exit code (the container's).
fn monitor_main(
    c: Container,
    rootfs: RootFs,
    on_exit: Option<OnExit>,
    status: File,
    go: File,
) -> i32 {
    let mut m = MonitorFiles {
        status,
        run_dir: c.run_dir.clone(),
    };
    let _ = nix::unistd::setsid();
    if matches!(c.io, Io::Log { .. })
        && let Ok(null) =
            nix::fcntl::open("/dev/null", OFlag::O_RDWR, nix::sys::stat::Mode::empty())
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWUSER) {
        m.say(&format!(
            "S creating a user namespace: {e} (are user namespaces enabled? sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone)"
        ));
        return 125;
    }
    m.say("U");
    let mut line = String::new();
    if BufReader::new(go).read_line(&mut line).unwrap_or(0) == 0 || line.trim() != "G" {
        return 125;
    }
    match run_monitor(&c, rootfs, &mut m) {
        Ok((info, keep)) => {
            let _ =
                nix::mount::umount2(&c.run_dir.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
            drop(keep);
            if let Some(hook) = on_exit {
                hook(&info.exit);
            }
            m.cleanup();
            for mut w in info.waiters {
                let _ = w.write_all(format!("exit {}\n", info.exit.code).as_bytes());
            }
            m.say(&format!("X {}", info.exit.code));
            info.exit.code
        }
        Err(Early::Setup(msg)) => {
            m.cleanup();
            if let Some(hook) = on_exit {
                hook(&ExitInfo {
                    code: 125,
                    signal: None,
                    failure: Some(msg.clone()),
                });
            }
            m.say(&format!("S {}", msg.replace('\n', " ")));
            125
        }
        Err(Early::Failed(f)) => {
            let _ =
                nix::mount::umount2(&c.run_dir.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
            m.cleanup();
            if let Some(hook) = on_exit {
                hook(&ExitInfo {
                    code: f.code,
                    signal: None,
                    failure: Some(f.message.clone()),
                });
            }
            m.say(&format!("F {} {}", f.code, f.message.replace('\n', " ")));
            f.code
        }
    }
}

enum Early {
    Setup(String),
    Failed(Failure),
}

struct Ended {
    exit: ExitInfo,
    waiters: Vec<UnixStream>,
}

/// The pipes between the monitor and the first process in log mode.
struct LogPipes {
    out: (OwnedFd, OwnedFd),
    err: (OwnedFd, OwnedFd),
    stdin: Option<(OwnedFd, OwnedFd)>,
}

#[allow(clippy::type_complexity)]
fn run_monitor(
    c: &Container,
    source: RootFs,
    m: &mut MonitorFiles,
) -> Result<(Ended, Option<Box<dyn std::any::Any>>), Early> {
    let setup = |what: &str, e: &dyn std::fmt::Display| Early::Setup(format!("{what}: {e}"));
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID;
    if c.network != Network::Host {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    nix::sched::unshare(flags).map_err(|e| setup("creating namespaces", &e))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| setup("making / private", &e))?;
    if c.network != Network::Host {
        sys::loopback_up().map_err(|e| setup("bringing up lo", &e))?;
    }
    nix::unistd::sethostname(&c.hostname).map_err(|e| setup("setting the hostname", &e))?;

    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| setup("pipe", &e));
    let log_pipes = match &c.io {
        Io::Log { stdin, .. } if !c.process.tty => Some(LogPipes {
            out: pipe()?,
            err: pipe()?,
            stdin: if *stdin { Some(pipe()?) } else { None },
        }),
        _ => None,
    };
    let pty_chan = if c.process.tty {
        Some(
            socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| setup("socketpair", &e))?,
        )
    } else {
        None
    };
    let (err_r, err_w) = pipe()?;
    let (cgo_r, cgo_w) = pipe()?;
    let mut mask = forwarded_set();
    mask.add(Signal::SIGCHLD);
    let _ = mask.thread_block();
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| setup("signalfd", &e))?;
    let rootfs = c.run_dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| setup("creating the mount point", &e))?;

    let init = match sys::fork().map_err(|e| setup("forking the container process", &e))? {
        ForkResult::Child => {
            drop(err_r);
            drop(cgo_w);
            drop(sigfd);
            let pty_tx = pty_chan.map(|(_, tx)| tx);
            let code = first_process(c, &rootfs, cgo_r, err_w, log_pipes, pty_tx);
            std::process::exit(code);
        }
        ForkResult::Parent { child } => child,
    };
    drop(err_w);
    drop(cgo_r);
    let pty_rx = pty_chan.map(|(rx, _)| rx);
    let kill_init = || {
        let _ = kill(init, Signal::SIGKILL);
        let _ = waitpid(init, None);
    };
    let keep = match source {
        RootFs::Dir(src) => nix::mount::mount(
            Some(src.as_path()),
            &rootfs,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .map(|()| None)
        .map_err(|e| format!("mounting the root filesystem {}: {e}", src.display())),
        RootFs::Mount(f) => f(&rootfs)
            .map(Some)
            .map_err(|e| format!("mounting the root filesystem: {e}")),
    };
    let keep = match keep {
        Ok(k) => k,
        Err(msg) => {
            kill_init();
            return Err(Early::Setup(msg));
        }
    };
    let mut cgo = File::from(cgo_w);
    let _ = cgo.write_all(b"g");
    drop(cgo);

    let master = pty_rx.and_then(|rx| receive_fd(&rx));
    let mut failure = String::new();
    let _ = File::from(err_r).read_to_string(&mut failure);
    if !failure.is_empty() {
        let _ = waitpid(init, None);
        let (code, msg) = failure.split_once(' ').unwrap_or(("125", &failure));
        return Err(Early::Failed(Failure::new(
            code.parse().unwrap_or(125),
            msg.trim_end(),
        )));
    }
    let listener = match bind_control(&c.run_dir) {
        Ok(l) => l,
        Err(e) => {
            kill_init();
            return Err(Early::Setup(format!("control socket: {e}")));
        }
    };
    let _ = std::fs::write(c.run_dir.join("init.pid"), init.as_raw().to_string());
    let _ = std::fs::write(
        c.run_dir.join("monitor.pid"),
        nix::unistd::getpid().as_raw().to_string(),
    );
    m.say(&format!("R {}", init.as_raw()));

    let (log, inherit) = match &c.io {
        Io::Log { path, .. } => (
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok(),
            false,
        ),
        Io::Inherit { .. } => (None, true),
    };
    let stdin_open = matches!(
        c.io,
        Io::Inherit { stdin: true } | Io::Log { stdin: true, .. }
    );
    let mut ev = EventLoop {
        init,
        sigfd,
        listener,
        clients: Vec::new(),
        out: log_pipes
            .as_ref()
            .map(|p| File::from(p.out.0.try_clone().unwrap_or_else(|_| dup_or_null()))),
        err: log_pipes
            .as_ref()
            .map(|p| File::from(p.err.0.try_clone().unwrap_or_else(|_| dup_or_null()))),
        stdin_w: log_pipes
            .as_ref()
            .and_then(|p| p.stdin.as_ref())
            .and_then(|s| s.1.try_clone().ok())
            .map(File::from),
        master: master.map(File::from),
        term_in: inherit && c.process.tty && stdin_open,
        inherit_tty: inherit && c.process.tty,
        log: log.map(LogWriter::new),
        exit: None,
    };
    drop(log_pipes);
    if ev.inherit_tty
        && let Some(master) = &ev.master
        && let Some(size) = pty::size_of(std::io::stdin().as_fd())
    {
        let _ = pty::set_size(master.as_fd(), size);
    }
    let exit = ev.run();
    let waiters = ev.finish(&exit);
    Ok((Ended { exit, waiters }, keep))
}

fn dup_or_null() -> OwnedFd {
    nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap_or_else(|_| std::process::exit(125))
}

fn receive_fd(rx: &OwnedFd) -> Option<OwnedFd> {
    let mut buf = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        rx.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    for cmsg in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            return Some(sys::own_fd(fd));
        }
    }
    None
}

fn send_fd(tx: &OwnedFd, fd: &OwnedFd) -> nix::Result<()> {
    let fds = [fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"m")];
    sendmsg::<()>(
        tx.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(drop)
}

fn bind_control(run_dir: &Path) -> std::io::Result<UnixListener> {
    let path = run_dir.join("ctl.sock");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

// ---------------------------------------------------------------------------------------
// The container's first process

/// Runs in the first process (pid 1 of the new pid namespace): waits for the rootfs, sets up
/// the mounts and stdio, pivots and execs. Returns an exit code only on failure, after
/// writing `CODE MESSAGE` on `err_w`.
fn first_process(
    c: &Container,
    rootfs: &Path,
    go: OwnedFd,
    err_w: OwnedFd,
    log_pipes: Option<LogPipes>,
    pty_tx: Option<OwnedFd>,
) -> i32 {
    let err_w = File::from(err_w);
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut b = [0u8; 1];
    if File::from(go).read(&mut b).unwrap_or(0) == 0 {
        return 125;
    }
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWNS) {
        return report(
            &err_w,
            Failure::engine(format!("creating the mount namespace: {e}")),
        );
    }
    let files: Vec<(String, PathBuf)> = ["hosts", "hostname", "resolv.conf"]
        .iter()
        .map(|f| (format!("/etc/{f}"), c.run_dir.join(f)))
        .collect();
    let setup = mounts::Setup {
        rootfs,
        network: c.network,
        files: &files,
        binds: &c.binds,
    };
    if let Err(e) = mounts::prepare(&setup) {
        return report(&err_w, Failure::engine(e.to_string()));
    }
    if let Some(tx) = pty_tx {
        let pair = pty::open_pair(&rootfs.join("dev/pts/ptmx"));
        let (master, slave) = match pair {
            Ok(p) => p,
            Err(e) => return report(&err_w, Failure::engine(format!("opening a pty: {e}"))),
        };
        if let Err(e) = mounts::bind_console(rootfs, &slave) {
            return report(&err_w, Failure::engine(e.to_string()));
        }
        if let Err(e) = send_fd(&tx, &master) {
            return report(
                &err_w,
                Failure::engine(format!("passing the pty to the monitor: {e}")),
            );
        }
        drop(master);
        if let Err(e) = pty::become_session_leader_on(&slave) {
            return report(
                &err_w,
                Failure::engine(format!("making the pty the terminal: {e}")),
            );
        }
    } else if let Some(p) = &log_pipes {
        let null;
        let stdin_fd = match &p.stdin {
            Some((r, _)) => r,
            None => {
                null = dup_or_null();
                &null
            }
        };
        let _ = nix::unistd::dup2_stdin(stdin_fd);
        let _ = nix::unistd::dup2_stdout(&p.out.1);
        let _ = nix::unistd::dup2_stderr(&p.err.1);
    } else if matches!(c.io, Io::Inherit { stdin: false }) {
        let _ = nix::unistd::dup2_stdin(dup_or_null());
    }
    drop(log_pipes);
    if let Err(e) = mounts::pivot(rootfs) {
        return report(&err_w, Failure::engine(e.to_string()));
    }
    let can_setgroups = c.maps.writer != MapWriter::Single;
    if c.init {
        return match sys::fork() {
            Err(e) => report(
                &err_w,
                Failure::engine(format!("forking under --init: {e}")),
            ),
            Ok(ForkResult::Child) => {
                sys::close_fds_from(3, &[err_w.as_raw_fd()]);
                let f = process::become_and_exec(&c.process, &c.hostname, can_setgroups);
                report(&err_w, f)
            }
            Ok(ForkResult::Parent { child }) => {
                drop(err_w);
                reap_as_init(child)
            }
        };
    }
    sys::close_fds_from(3, &[err_w.as_raw_fd()]);
    let f = process::become_and_exec(&c.process, &c.hostname, can_setgroups);
    report(&err_w, f)
}

/// Writes `CODE MESSAGE` for the monitor and returns the code.
fn report(mut err_w: &File, f: Failure) -> i32 {
    let _ = err_w.write_all(format!("{} {}", f.code, f.message).as_bytes());
    f.code
}

/// `--init`: reaps every child, forwards signals to `child`, exits with its status.
fn reap_as_init(child: Pid) -> i32 {
    let mut mask = forwarded_set();
    mask.add(Signal::SIGCHLD);
    let Ok(sigfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC) else {
        return 125;
    };
    loop {
        let Ok(Some(info)) = sigfd.read_signal() else {
            continue;
        };
        if info.ssi_signo as i32 == libc::SIGCHLD {
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == child => return code,
                    Ok(WaitStatus::Signaled(p, sig, _)) if p == child => return 128 + sig as i32,
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        } else if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
            let _ = kill(child, sig);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The monitor's event loop

/// docker's json-file log: one JSON object per line of output.
struct LogWriter {
    file: File,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    fn new(file: File) -> LogWriter {
        LogWriter {
            file,
            partial: [Vec::new(), Vec::new()],
        }
    }

    fn record(&mut self, stream: usize, bytes: &[u8]) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let time = crate::image::format_rfc3339(now.as_secs() as i64, now.subsec_nanos());
        let name = if stream == 0 { "stdout" } else { "stderr" };
        let line = serde_json::json!({
            "log": String::from_utf8_lossy(bytes),
            "stream": name,
            "time": time,
        });
        let _ = writeln!(self.file, "{line}");
    }

    fn write(&mut self, stream: usize, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.partial[stream]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
            self.record(stream, &buf[start..start + i + 1]);
            start += i + 1;
        }
        self.partial[stream] = buf[start..].to_vec();
    }

    fn flush(&mut self) {
        for s in 0..2 {
            let rest = std::mem::take(&mut self.partial[s]);
            if !rest.is_empty() {
                self.record(s, &rest);
            }
        }
    }
}

enum ClientState {
    Request(Vec<u8>),
    Attached {
        input_open: bool,
    },
    Waiting,
    /// Answered or gone: dropped after this round.
    Closed,
}

struct Client {
    stream: UnixStream,
    state: ClientState,
}

struct EventLoop {
    init: Pid,
    sigfd: SignalFd,
    listener: UnixListener,
    clients: Vec<Client>,
    out: Option<File>,
    err: Option<File>,
    stdin_w: Option<File>,
    master: Option<File>,
    term_in: bool,
    inherit_tty: bool,
    log: Option<LogWriter>,
    exit: Option<ExitInfo>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Signal,
    Listener,
    Client(usize),
    Out,
    Err,
    Master,
    TermIn,
}

fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + data.len());
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

impl EventLoop {
    fn run(&mut self) -> ExitInfo {
        loop {
            if let Some(e) = &self.exit
                && self.out.is_none()
                && self.err.is_none()
                && self.master.is_none()
            {
                return e.clone();
            }
            let ready = self.poll_once();
            for (tag, flags) in ready {
                self.handle(tag, flags);
            }
        }
    }

    fn poll_once(&self) -> Vec<(Tag, PollFlags)> {
        let stdin = std::io::stdin();
        let mut wanted: Vec<(Tag, std::os::fd::BorrowedFd<'_>)> = Vec::new();
        let mut add = |tag: Tag, fd| wanted.push((tag, fd));
        add(Tag::Signal, self.sigfd.as_fd());
        add(Tag::Listener, self.listener.as_fd());
        for (i, c) in self.clients.iter().enumerate() {
            let reading = match c.state {
                ClientState::Request(_) => true,
                ClientState::Attached { input_open } => input_open,
                ClientState::Waiting => true,
                ClientState::Closed => false,
            };
            if reading {
                add(Tag::Client(i), c.stream.as_fd());
            }
        }
        if let Some(f) = &self.out {
            add(Tag::Out, f.as_fd());
        }
        if let Some(f) = &self.err {
            add(Tag::Err, f.as_fd());
        }
        if let Some(f) = &self.master {
            add(Tag::Master, f.as_fd());
        }
        if self.term_in && self.master.is_some() && self.exit.is_none() {
            add(Tag::TermIn, stdin.as_fd());
        }
        let tags: Vec<Tag> = wanted.iter().map(|w| w.0).collect();
        let mut fds: Vec<PollFd<'_>> = wanted
            .iter()
            .map(|w| PollFd::new(w.1, PollFlags::POLLIN))
            .collect();
        // After the exit, wait briefly for the output still in flight.
        let timeout = if self.exit.is_some() {
            PollTimeout::from(200u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => {
                // timed out after the exit: output is done
                return vec![(Tag::Out, PollFlags::POLLHUP)];
            }
            Ok(_) => {}
            Err(_) => return Vec::new(),
        }
        tags.into_iter()
            .zip(fds.iter())
            .filter_map(|(t, f)| f.revents().filter(|r| !r.is_empty()).map(|r| (t, r)))
            .collect()
    }

    fn handle(&mut self, tag: Tag, flags: PollFlags) {
        match tag {
            Tag::Signal => self.on_signal(),
            Tag::Listener => {
                while let Ok((stream, _)) = self.listener.accept() {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
                    self.clients.push(Client {
                        stream,
                        state: ClientState::Request(Vec::new()),
                    });
                }
            }
            Tag::Client(i) => self.on_client(i),
            Tag::Out | Tag::Err | Tag::Master => {
                if self.exit.is_some() && flags == PollFlags::POLLHUP && tag == Tag::Out {
                    // the after-exit timeout
                    self.out = None;
                    self.err = None;
                    self.master = None;
                    return;
                }
                let (file, stream) = match tag {
                    Tag::Out => (&mut self.out, 1u8),
                    Tag::Err => (&mut self.err, 2u8),
                    _ => (&mut self.master, 1u8),
                };
                let Some(f) = file else { return };
                let mut buf = [0u8; 16384];
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => *file = None,
                    Ok(n) => self.output(stream, &buf[..n]),
                }
            }
            Tag::TermIn => {
                let mut buf = [0u8; 4096];
                match std::io::stdin().lock().read(&mut buf) {
                    Ok(0) | Err(_) => self.term_in = false,
                    Ok(n) => {
                        if let Some(m) = &mut self.master {
                            let _ = m.write_all(&buf[..n]);
                        }
                    }
                }
            }
        }
        self.clients
            .retain(|c| !matches!(c.state, ClientState::Closed));
    }

    fn output(&mut self, stream: u8, data: &[u8]) {
        if self.inherit_tty {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(data);
            let _ = out.flush();
        }
        if let Some(log) = &mut self.log {
            log.write(usize::from(stream - 1), data);
        }
        let framed = frame(stream, data);
        self.clients.retain_mut(|c| match c.state {
            ClientState::Attached { .. } => c.stream.write_all(&framed).is_ok(),
            _ => true,
        });
    }

    fn on_signal(&mut self) {
        while let Ok(Some(info)) = self.sigfd.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo == libc::SIGCHLD {
                self.reap();
            } else if signo == libc::SIGWINCH && self.inherit_tty {
                if let (Some(m), Some(size)) =
                    (&self.master, pty::size_of(std::io::stdin().as_fd()))
                {
                    let _ = pty::set_size(m.as_fd(), size);
                }
            } else if let Ok(sig) = Signal::try_from(signo) {
                let _ = kill(self.init, sig);
            }
        }
    }

    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == self.init => {
                    self.exit = Some(ExitInfo {
                        code,
                        signal: None,
                        failure: None,
                    });
                }
                Ok(WaitStatus::Signaled(p, sig, _)) if p == self.init => {
                    self.exit = Some(ExitInfo {
                        code: 128 + sig as i32,
                        signal: Some(sig as i32),
                        failure: None,
                    });
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn on_client(&mut self, i: usize) {
        let mut buf = [0u8; 4096];
        let n: usize = self.clients[i].stream.read(&mut buf).unwrap_or_default();
        let client = &mut self.clients[i];
        match &mut client.state {
            ClientState::Request(req) => {
                if n == 0 {
                    client.state = ClientState::Closed;
                    return;
                }
                req.extend_from_slice(&buf[..n]);
                let Some(nl) = req.iter().position(|&b| b == b'\n') else {
                    return;
                };
                let line = String::from_utf8_lossy(&req[..nl]).trim().to_string();
                let rest = req[nl + 1..].to_vec();
                self.request(i, &line, &rest);
            }
            ClientState::Attached { input_open } => {
                if n == 0 {
                    *input_open = false;
                    if self.master.is_none() {
                        self.stdin_w = None; // the client closed its stdin: so does the container's
                    }
                    return;
                }
                self.input(&buf[..n]);
            }
            ClientState::Closed => {}
            ClientState::Waiting => {
                if n == 0 {
                    client.state = ClientState::Closed;
                }
            }
        }
    }

    fn input(&mut self, data: &[u8]) {
        if let Some(m) = &mut self.master {
            let _ = m.write_all(data);
        } else if let Some(w) = &mut self.stdin_w {
            let _ = w.write_all(data);
        }
    }

    fn request(&mut self, i: usize, line: &str, rest: &[u8]) {
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next(), words.next()) {
            (Some("signal"), Some(n), None) => match n.parse::<i32>().map(Signal::try_from) {
                Ok(Ok(sig)) => match kill(self.init, sig) {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("error {e}"),
                },
                _ => format!("error bad signal {n:?}"),
            },
            (Some("resize"), Some(r), Some(c)) => match (&self.master, r.parse(), c.parse()) {
                (Some(m), Ok(rows), Ok(cols)) => {
                    let _ = pty::set_size(m.as_fd(), super::WinSize { rows, cols });
                    "ok".to_string()
                }
                (None, ..) => "error no terminal".to_string(),
                _ => "error bad size".to_string(),
            },
            (Some("wait"), None, None) => {
                self.clients[i].state = ClientState::Waiting;
                return;
            }
            (Some("attach"), None, None) => {
                self.clients[i].state = ClientState::Attached { input_open: true };
                if !rest.is_empty() {
                    self.input(rest);
                }
                return;
            }
            _ => format!("error unknown request {line:?}"),
        };
        let client = &mut self.clients[i];
        let _ = client.stream.write_all(format!("{reply}\n").as_bytes());
        client.state = ClientState::Closed;
    }

    /// After the exit: flushes the log, tells attached clients, returns the waiters.
    fn finish(&mut self, exit: &ExitInfo) -> Vec<UnixStream> {
        if let Some(log) = &mut self.log {
            log.flush();
        }
        let mut waiters = Vec::new();
        for mut c in self.clients.drain(..) {
            match c.state {
                ClientState::Attached { .. } => {
                    let _ = c
                        .stream
                        .write_all(&frame(255, exit.code.to_string().as_bytes()));
                }
                ClientState::Waiting => waiters.push(c.stream),
                ClientState::Request(_) | ClientState::Closed => {}
            }
        }
        // Late `wait` requests while the hook runs still get an answer: refuse new ones.
        waiters
    }
}

// ---------------------------------------------------------------------------------------
// Clients of the control socket

fn control(run_dir: &Path) -> Result<UnixStream, RuntimeError> {
    let path = run_dir.join("ctl.sock");
    UnixStream::connect(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            RuntimeError::NotRunning {
                what: run_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            }
        }
        _ => RuntimeError::Control { path, source },
    })
}

fn request(run_dir: &Path, line: &str) -> Result<String, RuntimeError> {
    let path = run_dir.join("ctl.sock");
    let mut s = control(run_dir)?;
    let io = |source| RuntimeError::Control {
        path: path.clone(),
        source,
    };
    s.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).map_err(io)?;
    let reply = reply.trim().to_string();
    if reply.starts_with("error") || reply.is_empty() {
        if reply.is_empty() {
            return Err(RuntimeError::NotRunning {
                what: run_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            });
        }
        return Err(RuntimeError::Refused {
            path,
            request: line.to_string(),
            reply,
        });
    }
    Ok(reply)
}

/// True while the container's monitor answers on its control socket.
pub fn is_running(run_dir: &Path) -> bool {
    UnixStream::connect(run_dir.join("ctl.sock")).is_ok()
}

/// Sends signal `sig` to the container's first process.
pub fn signal(run_dir: &Path, sig: Signal) -> Result<(), RuntimeError> {
    request(run_dir, &format!("signal {}", sig as i32)).map(drop)
}

/// Sets the container's terminal size.
pub fn resize(run_dir: &Path, size: super::WinSize) -> Result<(), RuntimeError> {
    request(run_dir, &format!("resize {} {}", size.rows, size.cols)).map(drop)
}

/// Waits until the container exits (at most `timeout`, when given) and returns its exit
/// code; `Ok(None)` on timeout. A container that is not running gives `NotRunning`.
pub fn wait(run_dir: &Path, timeout: Option<Duration>) -> Result<Option<i32>, RuntimeError> {
    let path = run_dir.join("ctl.sock");
    let mut s = control(run_dir)?;
    let io = |source| RuntimeError::Control {
        path: path.clone(),
        source,
    };
    s.write_all(b"wait\n").map_err(io)?;
    s.set_read_timeout(timeout).map_err(io)?;
    let mut reply = String::new();
    match BufReader::new(&s).read_line(&mut reply) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(io(e)),
    }
    // An empty reply: the monitor died without answering (killed); the code is unknown.
    Ok(Some(
        reply
            .trim()
            .strip_prefix("exit ")
            .and_then(|c| c.parse().ok())
            .unwrap_or(137),
    ))
}

/// Attaches the caller's stdio to the container until it exits (or the caller's stdin
/// ends, when `stdin` is false never reads it) and returns the exit code. With `tty` the
/// caller's terminal goes raw and its size is passed on.
pub fn attach(run_dir: &Path, stdin: bool, tty: bool) -> Result<i32, RuntimeError> {
    let path = run_dir.join("ctl.sock");
    let mut s = control(run_dir)?;
    let io = |source| RuntimeError::Control {
        path: path.clone(),
        source,
    };
    if tty && let Some(size) = pty::size_of(std::io::stdin().as_fd()) {
        let _ = resize(run_dir, size);
    }
    s.write_all(b"attach\n").map_err(io)?;
    let _raw = if tty && stdin {
        RawMode::enter(std::io::stdin().as_fd())
            .map_err(|source| RuntimeError::Terminal { source })?
    } else {
        None
    };
    if stdin {
        let mut w = s.try_clone().map_err(io)?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut input = std::io::stdin();
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if w.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = w.shutdown(std::net::Shutdown::Write);
        });
    }
    let mut r = BufReader::new(s);
    loop {
        let mut head = [0u8; 8];
        if r.read_exact(&mut head).is_err() {
            return Ok(137);
        }
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let mut data = vec![0u8; len];
        r.read_exact(&mut data).map_err(io)?;
        match head[0] {
            1 => {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(&data);
                let _ = o.flush();
            }
            2 => {
                let _ = std::io::stderr().lock().write_all(&data);
            }
            255 => {
                return Ok(String::from_utf8_lossy(&data).parse().unwrap_or(125));
            }
            _ => {}
        }
    }
}
