//! Running a container: namespaces, id maps, the root filesystem's mounts, the process, the
//! per-container monitor, the terminal, and `exec` into a running container.
//!
//! The engine hands [`start`] a [`Container`]: the process to run, where its root filesystem
//! comes from ([`RootFs`]), its run directory (`$CAMADA_RUNROOT/<id>/`), and how its stdio
//! goes ([`Io`]). `start` forks the **monitor** (setsid): it creates the user namespace
//! (maps written by the caller, see [`userns`]), the mount, uts, ipc, pid (and net)
//! namespaces, mounts the rootfs at `<run_dir>/rootfs`, and forks the container's first
//! process, which sets up /proc, /dev, /sys, the generated /etc files and bind mounts
//! ([`mounts`]), pivot_roots and execs ([`process`]). The monitor then keeps the log or the
//! terminal, answers the control socket `<run_dir>/ctl.sock` ([`signal`], [`attach`],
//! [`wait`], [`resize`]), runs the engine's exit hook, unmounts, and exits with the
//! container's code.
//!
//! Rows (design.md): `runtime` never imports the store, images, state or the overlay. The
//! overlay reaches the monitor as a closure ([`RootFs::Mount`]) that the engine builds: the
//! monitor is a fork of the engine's process (no re-exec), so the closure, and the exit hook
//! that records state, simply run in it. Hence the rule for callers: call [`start`] and
//! [`exec()`] from a process with one thread (the CLI is), because a user namespace can only
//! be entered by a single-threaded process and the fork copies only the calling thread.
//!
//! Files under `<run_dir>/`, all owned by this module: `ctl.sock`, `monitor.pid`,
//! `init.pid` (host pid of the container's first process), `rootfs/` (mount point), `fake-ids`,
//! `hosts`, `hostname`, `resolv.conf`. The log (`Io::Log`, `Io::InheritAndLog`) is docker's json-file
//! format: one `{"log":"...","stream":"stdout|stderr","time":"RFC3339Nano"}` per line.

mod control;
pub mod exec;
mod first;
pub mod monitor;
pub mod mounts;
pub mod mountsrv;
pub mod netns;
pub mod ports;
pub mod process;
pub mod pty;
mod relay;
mod seccomp;
mod sys;
pub mod unshared;
pub mod userns;

use std::path::{Path, PathBuf};

pub use control::{attach, is_running, resize, signal, wait};
pub use exec::exec;
pub use monitor::{ExitInfo, OnExit, Started, start};
pub use mounts::Bind;
pub use process::{Failure, ProcessSpec};
pub use sys::WinSize;
pub use userns::IdMaps;

/// `--network`: what network namespace the container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Its own namespace with loopback up (docker's default bridge comes with issue 6).
    #[default]
    Private,
    /// The host's network namespace.
    Host,
    /// Its own namespace with loopback only (same as Private until ports land).
    None,
}

impl std::str::FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "private" | "bridge" | "default" => Ok(Network::Private),
            "host" => Ok(Network::Host),
            "none" => Ok(Network::None),
            other => Err(format!(
                "network {other:?} is not supported: use host, none or private"
            )),
        }
    }
}

/// Mounts the root filesystem at the given (empty, existing) directory, inside the
/// container's user and mount namespaces, as their root. What it returns is kept alive
/// until the container has exited (e.g. the FUSE session's threads).
pub type MountFn = Box<dyn FnOnce(&Path) -> Result<Box<dyn std::any::Any>, String>>;

/// Where the container's root filesystem comes from.
pub enum RootFs {
    /// A plain directory, bind-mounted (tests; `import`ed trees).
    Dir(PathBuf),
    /// Anything the engine mounts itself, e.g. the FUSE overlay.
    Mount(MountFn),
}

impl std::fmt::Debug for RootFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootFs::Dir(p) => f.debug_tuple("Dir").field(p).finish(),
            RootFs::Mount(_) => f.write_str("Mount(..)"),
        }
    }
}

/// Where the container's stdio goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Io {
    /// Foreground: the caller's stdout and stderr, and its stdin when `stdin` (else
    /// /dev/null). With a terminal the monitor relays the caller's stdio to the pty.
    Inherit { stdin: bool },
    /// Detached: output goes to the json-file log at this path (and to attached clients);
    /// stdin, when `stdin`, stays open for `attach`.
    Log { path: PathBuf, stdin: bool },
    /// Foreground as [`Io::Inherit`], and the output also goes to the json-file log at
    /// `log` (docker's `logs` of a container that ran in the foreground): the monitor
    /// relays it, stdout to its stdout and stderr to its stderr (a pty's output is stdout).
    InheritAndLog { stdin: bool, log: PathBuf },
}

impl Io {
    /// The container keeps its stdin open (the caller's, or one `attach` feeds).
    pub fn stdin(&self) -> bool {
        match self {
            Io::Inherit { stdin } | Io::Log { stdin, .. } | Io::InheritAndLog { stdin, .. } => {
                *stdin
            }
        }
    }

    /// The caller's terminal or stdio takes part (the foreground modes).
    pub fn foreground(&self) -> bool {
        !matches!(self, Io::Log { .. })
    }

    /// The json-file log the output goes to, if any.
    pub fn log(&self) -> Option<&Path> {
        match self {
            Io::Log { path, .. } => Some(path),
            Io::InheritAndLog { log, .. } => Some(log),
            Io::Inherit { .. } => None,
        }
    }
}

/// Everything [`start`] needs to run one container.
#[derive(Debug)]
pub struct Container {
    /// The full container ID (64 hex).
    pub id: String,
    pub rootfs: RootFs,
    /// `$CAMADA_RUNROOT/<id>/` (created if missing, 0700).
    pub run_dir: PathBuf,
    pub process: ProcessSpec,
    pub hostname: String,
    pub network: Network,
    pub binds: Vec<Bind>,
    /// `--init`: a tiny init reaps zombies and forwards signals to the process.
    pub init: bool,
    pub io: Io,
    /// Usually [`IdMaps::for_current_user`].
    pub maps: IdMaps,
    /// `-p`: host sockets already bound ([`ports::bind`]); the monitor forwards them.
    pub ports: Vec<ports::Bound>,
    /// The private network's way out ([`netns::choose`]); `Loopback` for none.
    pub outbound: netns::Outbound,
    /// Fake ids (for build's RUN in single-id mode): chown, fchown, lchown, fchownat, the
    /// set*id calls and setgroups succeed without effect (a seccomp filter, as
    /// Charliecloud's `--seccomp`), so package managers that chown files or drop privileges
    /// work where only one id is mapped. `exec` into the container gets the filter too.
    pub fake_ids: bool,
}

/// Why running a container failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("creating the run directory {path}: {source}")]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the monitor of container {id}: {source}")]
    Fork { id: String, source: nix::Error },
    #[error("mapping ids for container {id}: {source}")]
    Userns {
        id: String,
        source: userns::UsernsError,
    },
    #[error("setting up container {id}: {message}")]
    Setup { id: String, message: String },
    /// The process could not be started (126, 127) or the set-up inside failed (125).
    #[error("{}", .0.message)]
    Process(Failure),
    #[error("the monitor of container {id} ended without saying why")]
    MonitorLost { id: String },
    #[error("container {what} is not running")]
    NotRunning { what: String },
    #[error("talking to the monitor at {path}: {source}")]
    Control {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the monitor at {path} refused {request:?}: {reply}")]
    Refused {
        path: PathBuf,
        request: String,
        reply: String,
    },
    #[error("entering container {what}: {source}")]
    Enter { what: String, source: nix::Error },
    #[error("terminal: {source}")]
    Terminal { source: nix::Error },
}

impl RuntimeError {
    /// The exit code the CLI should use: 126/127 when the command cannot be run, else 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::Process(f) => f.code,
            _ => 125,
        }
    }

    /// `NotRunning` for the container whose run dir is `run_dir` (named by the dir's name).
    pub(crate) fn not_running(run_dir: &Path) -> RuntimeError {
        RuntimeError::NotRunning {
            what: run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}
