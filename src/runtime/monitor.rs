//! The per-container monitor and the container's first process.
//!
//! Owns: [`start`] (fork the monitor, write its id maps, wait until the process runs or
//! fails), the monitor's life (namespaces, rootfs mount, forking the first process
//! (`first.rs`), the event loop (`relay.rs`), the exit hook, unmount). The
//! client side of the control socket is `control.rs`. Never touches container
//! records: the engine's [`OnExit`] hook does that, inside the monitor, once the container
//! has exited.
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

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, socketpair,
};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::process::Failure;
use super::pty::{self, RawMode};
use super::{Container, Io, Network, RootFs, RuntimeError, mounts, netns, ports, sys};

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

pub(crate) fn forwarded_set() -> SigSet {
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
/// monitor when the container has exited, also when it never started.
///
/// Call from a single-threaded process, and hold no `flock` while calling: the monitor
/// inherits the caller's open files (it is a fork, not an exec) and would keep such a lock
/// for the container's whole life.
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
            netns::resolv_conf(&host_resolv, &container.outbound)
                .unwrap_or_else(|| mounts::resolv_conf(&host_resolv, container.network)),
        ),
    ] {
        let path = run_dir.join(name);
        std::fs::write(&path, text).map_err(|source| RuntimeError::RunDir { path, source })?;
    }
    if !container.ports.is_empty() {
        ports::write_published(&run_dir, &container.ports).map_err(|source| {
            RuntimeError::RunDir {
                path: run_dir.join(ports::PORTS_FILE),
                source,
            }
        })?;
    }
    let fake_ids = run_dir.join(FAKE_IDS_FILE);
    let marked = if container.fake_ids {
        std::fs::write(&fake_ids, "")
    } else {
        std::fs::remove_file(&fake_ids).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })
    };
    marked.map_err(|source| RuntimeError::RunDir {
        path: fake_ids,
        source,
    })?;
    let pipe =
        || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| setup_err(&id, format!("pipe: {e}")));
    let (status_r, status_w) = pipe()?;
    let (go_r, go_w) = pipe()?;

    let mut block = forwarded_set();
    block.add(Signal::SIGCHLD);
    let old_mask = block
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(|e| setup_err(&id, format!("blocking signals: {e}")))?;
    let raw = match (
        container.io.foreground() && container.io.stdin(),
        container.process.tty,
    ) {
        (true, true) => match RawMode::enter(std::io::stdin().as_fd()) {
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
        Ok(ForkResult::Parent { child }) => {
            // the host ports are the monitor's now
            drop(container);
            child
        }
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
    /// Removes the run directory: nothing in it outlives the monitor.
    fn cleanup(&self) {
        for f in RUN_FILES {
            let _ = std::fs::remove_file(self.run_dir.join(f));
        }
        let _ = std::fs::remove_dir(self.run_dir.join("rootfs"));
        let _ = std::fs::remove_dir(&self.run_dir);
    }
}

/// Present in the run directory when the container runs with fake ids (`exec` follows).
pub(crate) const FAKE_IDS_FILE: &str = "fake-ids";

/// The files a monitor keeps in its run directory.
const RUN_FILES: &[&str] = &[
    FAKE_IDS_FILE,
    "ctl.sock",
    "init.pid",
    "monitor.pid",
    "hosts",
    "hostname",
    "resolv.conf",
    ports::PORTS_FILE,
];

/// The monitor: returns its exit code (the container's).
fn monitor_main(
    mut c: Container,
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
    // keep no directory of the caller's busy
    let _ = nix::unistd::chdir("/");
    if !c.io.foreground()
        && let Ok(null) =
            nix::fcntl::open("/dev/null", OFlag::O_RDWR, nix::sys::stat::Mode::empty())
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    // the network helper must start in the host's namespaces: fork it first
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let helper = match netns::Helper::fork(&c.outbound, &host_resolv) {
        Ok(h) => h,
        Err(e) => {
            m.say(&format!("S starting the network helper: {e}"));
            return 125;
        }
    };
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
    let published = std::mem::take(&mut c.ports);
    match run_monitor(&c, rootfs, published, helper, &mut m) {
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
pub(crate) struct LogPipes {
    pub(crate) out: (OwnedFd, OwnedFd),
    pub(crate) err: (OwnedFd, OwnedFd),
    pub(crate) stdin: Option<(OwnedFd, OwnedFd)>,
}

#[allow(clippy::type_complexity)]
fn run_monitor(
    c: &Container,
    source: RootFs,
    published: Vec<ports::Bound>,
    mut helper: Option<netns::Helper>,
    m: &mut MonitorFiles,
) -> Result<(Ended, Option<Box<dyn std::any::Any>>), Early> {
    let setup = |what: &str, e: &dyn std::fmt::Display| Early::Setup(format!("{what}: {e}"));
    // CLONE_NEWPID comes later, after the root filesystem is mounted: once this thread's
    // children go to a new pid namespace it cannot create threads (clone(2): EINVAL), and a
    // FUSE server mounted by RootFs::Mount needs its threads.
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if c.network != Network::Host {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    nix::sched::unshare(flags).map_err(|e| setup("creating namespaces", &e))?;
    mounts::make_rprivate().map_err(|e| setup("making / private", &e))?;
    if c.network != Network::Host {
        sys::loopback_up().map_err(|e| setup("bringing up lo", &e))?;
    }
    if let Some(h) = &mut helper {
        h.release();
    }
    nix::unistd::sethostname(&c.hostname).map_err(|e| setup("setting the hostname", &e))?;

    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| setup("pipe", &e));
    let log_pipes = match &c.io {
        Io::Log { stdin, .. } if !c.process.tty => Some(LogPipes {
            out: pipe()?,
            err: pipe()?,
            stdin: if *stdin { Some(pipe()?) } else { None },
        }),
        // the output passes through the monitor to reach the log; stdin stays the caller's
        Io::InheritAndLog { .. } if !c.process.tty => Some(LogPipes {
            out: pipe()?,
            err: pipe()?,
            stdin: None,
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
        Err(msg) => return Err(Early::Setup(msg)),
    };
    if let Some(h) = &mut helper {
        h.wait_ready().map_err(|e| setup("outbound network", &e))?;
    }
    // the forwarder's sockets to the container's ports are made in its network namespace,
    // and its thread must exist before CLONE_NEWPID
    let forwarder = if published.is_empty() {
        None
    } else {
        Some(ports::spawn(published).map_err(|e| setup("starting the port forwarder", &e))?)
    };
    nix::sched::unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|e| setup("creating the pid namespace", &e))?;
    let init = match sys::fork().map_err(|e| setup("forking the container process", &e))? {
        ForkResult::Child => {
            drop(err_r);
            drop(cgo_w);
            drop(sigfd);
            let pty_tx = pty_chan.map(|(_, tx)| tx);
            let code = super::first::first_process(c, &rootfs, cgo_r, err_w, log_pipes, pty_tx);
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

    let log = c.io.log().and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    let inherit = c.io.foreground();
    let stdin_open = c.io.stdin();
    let mut ev = super::relay::EventLoop {
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
        echo: inherit,
        log: log.map(super::relay::LogWriter::new),
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
    if let Some(f) = forwarder {
        f.stop();
    }
    let waiters = ev.finish(&exit);
    Ok((Ended { exit, waiters }, keep))
}

pub(crate) fn dup_or_null() -> OwnedFd {
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

fn bind_control(run_dir: &Path) -> std::io::Result<UnixListener> {
    let path = run_dir.join("ctl.sock");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path)?;
    l.set_nonblocking(true)?;
    Ok(l)
}
