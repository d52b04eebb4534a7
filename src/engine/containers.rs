//! The container verbs: create, run, start, stop, kill, restart, rm, ps, exec, logs,
//! attach, wait, container inspect and prune.
//!
//! Owns docker's rules for what runs (ENTRYPOINT/CMD and the arguments, `--entrypoint`,
//! the env merge image -> `--env-file` -> `-e`, `--hostname` defaulting to the short ID),
//! turning a record (`state`) and an image (`store`) into a [`runtime::Container`] with the
//! FUSE overlay as its root, and keeping the record's status true: the monitor's exit hook
//! writes the exit, and a record that says "running" whose monitor is gone (killed, or the
//! machine rebooted) is read as exited. Never prints: the CLI does.
//!
//! Invariants: state transitions are written under the records' lock (the exit hook takes it
//! too), so a fast exit is never overwritten by a late "running"; `runtime::start` is called
//! with no lock held (the monitor is a fork and would keep it).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;

use super::{Engine, EngineError};
use crate::digest::Digest;
use crate::image::{self, ImageConfig};
use crate::overlay;
use crate::runtime::{self, Bind, IdMaps, Io, Network, ProcessSpec, RootFs, RuntimeError};
use crate::state::{self, Container, MountKind, MountPoint, Records, StateError};

use super::volumes;

/// What the CLI shows of a record: its status and state, and the log's lines.
pub use crate::state::log::{LogLine, Stream};
pub use crate::state::{State, Status};

/// Why a container verb failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainersError {
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    #[error("image {0:?} not found locally; pull it with: camada pull {0}")]
    ImageNotFound(String),
    #[error("reading the config of image {id}: {why}")]
    ImageConfig { id: String, why: String },
    #[error(
        "no command specified: image {0} has no CMD or ENTRYPOINT; give a command after the image name"
    )]
    NoCommand(String),
    #[error("reading env file {path}: {source}")]
    EnvFile { path: PathBuf, source: io::Error },
    #[error("invalid environment variable {0:?}: a name must not contain whitespace")]
    BadEnv(String),
    #[error("{0}")]
    Volumes(#[from] super::volumes::VolumesError),
    #[error("creating the volume source {path}: {source}")]
    VolumeSource { path: PathBuf, source: io::Error },
    #[error("{0}")]
    BadNetwork(String),
    #[error("{0}")]
    Ports(#[from] crate::runtime::ports::PortsError),
    #[error("invalid signal: {0}")]
    BadSignal(String),
    #[error("invalid --expose {0:?}: give PORT[/tcp|udp] or FIRST-LAST[/tcp|udp]")]
    BadExpose(String),
    #[error(
        "cannot remove container {name}: container is running: stop the container before removing or force remove (rm -f)"
    )]
    RemoveRunning { name: String },
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("Cannot kill container: {0}: container is not running")]
    KillNotRunning(String),
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error(
        "container {0} is mounted (camada mount): its writable layer is being served; run camada umount {0} first"
    )]
    Mounted(String),
    #[error("reading container {id}'s log {path}: {source}")]
    Log {
        id: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("writing logs: {0}")]
    Output(io::Error),
    #[error("making a container ID: {0}")]
    Random(io::Error),
}

impl ContainersError {
    /// The exit code docker gives this failure: 126/127 when the command cannot be run,
    /// else 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            ContainersError::Runtime(e) => e.exit_code(),
            _ => 125,
        }
    }
}

type Result<T> = std::result::Result<T, ContainersError>;

/// `create` / `run` options, as typed.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub image: String,
    /// The arguments after the image.
    pub command: Vec<String>,
    pub name: Option<String>,
    /// `-e K=V` or `-e K` (then taken from this process's environment, if set).
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `--entrypoint`: `Some("")` clears the image's.
    pub entrypoint: Option<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub auto_remove: bool,
    pub network: Option<String>,
    /// `-p` as typed.
    pub publish: Vec<String>,
    /// `-P`: every exposed port published on a free host port.
    pub publish_all: bool,
    /// `--expose PORT[/PROTO]` or `FIRST-LAST[/PROTO]`, as typed.
    pub expose: Vec<String>,
    pub volumes: Vec<String>,
    /// `--mount type=bind|volume,...`.
    pub mounts: Vec<String>,
    pub init: bool,
}

/// How `start` connects the caller to the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// `run -d`, `start`, `restart`: output to the log.
    Detached,
    /// `run` without `-d`: the caller's stdio (stdin only with `-i`).
    Foreground,
    /// `start -a [-i]`: the caller's stdio, as `run` (stdin with `-i` when the container
    /// was created with `-i`); a running container is attached to through its monitor.
    Attach { stdin: bool },
}

/// A start whose checks passed ([`Engine::prepare_start`]); nothing runs until
/// [`PreparedStart::run`].
#[must_use = "a prepared start does nothing until it is run"]
pub struct PreparedStart<'e> {
    engine: &'e Engine,
    records: Records,
    c: Container,
    mode: StartMode,
    ready: Ready,
}

enum Ready {
    /// `start -a` of a running container: attach to it.
    Attach { stdin: bool },
    /// A created or exited container, ready to run (its host ports bound).
    Run {
        container: Box<runtime::Container>,
        warning: Option<String>,
    },
}

impl PreparedStart<'_> {
    /// What to tell the user (once, before the container runs): its private network stays
    /// loopback only, and what to install or change for outbound network.
    pub fn warning(&self) -> Option<&str> {
        match &self.ready {
            Ready::Run { warning, .. } => warning.as_deref(),
            Ready::Attach { .. } => None,
        }
    }

    /// Starts the container. Returns the exit code in the foreground and attached modes,
    /// `None` detached.
    pub fn run(self) -> std::result::Result<Option<i32>, EngineError> {
        let engine = self.engine;
        Ok(engine.launch(self)?)
    }
}

/// `exec` options.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub interactive: bool,
    pub tty: bool,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

/// `logs` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogsRequest {
    pub follow: bool,
    pub tail: Option<usize>,
}

/// One row of `ps`.
#[derive(Debug, Clone)]
pub struct ContainerRow {
    pub id: String,
    /// The image as the user named it.
    pub image: String,
    pub command: Vec<String>,
    /// Seconds since the epoch.
    pub created: i64,
    pub state: State,
    /// `StartedAt`/`FinishedAt` in seconds, when set.
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub name: String,
    /// (writable layer bytes, image bytes) for `ps -s`.
    pub size: Option<(u64, u64)>,
    /// What it publishes while it runs.
    pub ports: Vec<runtime::ports::Published>,
}

/// `container prune`: what went and the space it gave back.
#[derive(Debug, Clone, Default)]
pub struct ContainerPrune {
    pub removed: Vec<String>,
    pub reclaimed: u64,
}

/// docker's ENTRYPOINT/CMD rules: the image's entrypoint unless `--entrypoint` replaces it
/// (an empty one clears it); the arguments after the image replace the image's CMD, and a
/// new entrypoint drops the image's CMD too. Returns (entrypoint, cmd).
pub fn command_line(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint_flag: Option<&str>,
    args: &[String],
) -> (Vec<String>, Vec<String>) {
    let given = |fallback: &[String]| {
        if args.is_empty() {
            fallback.to_vec()
        } else {
            args.to_vec()
        }
    };
    match entrypoint_flag {
        Some("") => (Vec::new(), given(image_cmd)),
        Some(e) => (vec![e.to_string()], args.to_vec()),
        None => (image_entrypoint.to_vec(), given(image_cmd)),
    }
}

/// `K=V` entries merged as docker does: a later entry replaces an earlier one of the same
/// name in place; new names are appended.
pub fn merge_env(base: &mut Vec<String>, more: impl IntoIterator<Item = String>) {
    for e in more {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k).to_string();
        match base
            .iter_mut()
            .find(|b| b.split_once('=').map_or(b.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = e,
            None => base.push(e),
        }
    }
}

/// `-e K=V` as given; `-e K` takes K from `lookup` (this process's environment) and is
/// dropped when unset, as docker does.
pub fn expand_env(
    entries: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in entries {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(ContainersError::BadEnv(e.clone()));
        }
        if e.contains('=') {
            out.push(e.clone());
        } else if let Some(v) = lookup(key) {
            out.push(format!("{key}={v}"));
        }
    }
    Ok(out)
}

/// The entries of an `--env-file` text: `K=V` lines, `K` alone from the environment;
/// blank lines and `#` comments skipped.
pub fn parse_env_file(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_start().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    expand_env(&lines, lookup)
}

/// `PORT[/PROTO]` or `FIRST-LAST[/PROTO]` as docker's `CTR/PROTO` keys (`None`: not that).
fn port_keys(word: &str) -> Option<Vec<String>> {
    let (ports, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto: runtime::ports::Proto = proto.to_ascii_lowercase().parse().ok()?;
    let (first, last) = ports.split_once('-').unwrap_or((ports, ports));
    let (first, last): (u16, u16) = (first.parse().ok()?, last.parse().ok()?);
    if first == 0 || last < first {
        return None;
    }
    Some((first..=last).map(|p| format!("{p}/{proto}")).collect())
}

/// docker's `ExposedPorts` of a new container: the image's (`80` read as `80/tcp`; an entry
/// that is no port is left out), every port of each `--expose`, and each `-p`'s container
/// port.
pub fn exposed_ports(
    image: &BTreeSet<String>,
    expose: &[String],
    bindings: &BTreeMap<String, Vec<state::PortBinding>>,
) -> Result<BTreeMap<String, serde_json::Value>> {
    let mut keys: BTreeSet<String> = image
        .iter()
        .filter_map(|p| port_keys(p))
        .flatten()
        .collect();
    for e in expose {
        keys.extend(port_keys(e).ok_or_else(|| ContainersError::BadExpose(e.clone()))?);
    }
    keys.extend(bindings.keys().cloned());
    Ok(keys
        .into_iter()
        .map(|k| (k, serde_json::Value::Object(serde_json::Map::new())))
        .collect())
}

/// What a start of record `r` publishes: its `-p` bindings and, with `-P` on the private
/// network, a free host port on every address for each exposed port that has no binding
/// (docker's rule; the record keeps only the `-p` ones, so each start picks anew).
pub fn start_bindings(r: &state::Record) -> state::HostConfig {
    let mut host = r.host_config.clone();
    if host.publish_all_ports && host.network_mode.parse::<Network>() == Ok(Network::Private) {
        for port in r.config.exposed_ports.keys() {
            host.port_bindings
                .entry(port.clone())
                .or_insert_with(|| vec![state::PortBinding::default()]);
        }
    }
    host
}

fn host_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// The mounts of a record: decided at create, or, for a record written before volumes
/// existed, its `-v` binds.
fn mounts_of(r: &state::Record) -> Vec<MountPoint> {
    if !r.mounts.is_empty() {
        return r.mounts.clone();
    }
    let cwd = Path::new("/");
    r.host_config
        .binds
        .iter()
        .filter_map(|v| match volumes::parse_volume_spec(v, cwd).ok()? {
            volumes::VolumeSpec::Bind {
                source,
                destination,
                readonly,
            } => Some(MountPoint {
                kind: MountKind::Bind,
                source,
                destination,
                rw: !readonly,
                ..MountPoint::default()
            }),
            _ => None,
        })
        .collect()
}

/// A signal by name (`KILL`, `SIGKILL`, `kill`) or number.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || ContainersError::BadSignal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

/// Whether process `pid` exists and has not exited (a zombie has).
fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| !st.contains(") Z "))
}

fn now() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}

fn now_rfc3339() -> String {
    let (s, n) = now();
    image::format_rfc3339(s, n)
}

fn time_of(s: &str) -> Option<(i64, u32)> {
    if s == state::ZERO_TIME {
        return None;
    }
    image::parse_rfc3339(s)
}

fn new_id() -> Result<String> {
    super::random_hex_id().map_err(ContainersError::Random)
}

/// Bytes under `path` (files' lengths), not following links: what `ps -s`, `container
/// prune` and `volume prune` report.
pub(super) fn tree_size(path: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

impl Engine {
    /// The container records of this store.
    pub fn records(&self) -> std::result::Result<Records, EngineError> {
        let r = Records::open(&self.paths.containers_dir())
            .map_err(|e| EngineError::Containers(e.into()))?;
        Ok(r)
    }

    pub(super) fn run_dir(&self, id: &str) -> PathBuf {
        self.paths.run_dir(id)
    }

    /// Whether the monitor of a record that says "running" is still there. The monitor's
    /// pid decides when it is known: the control socket alone can still accept a
    /// connection for a moment after a `kill -9` of the monitor (the dying container
    /// process may hold the listening fd). The socket decides only before the pid is written.
    fn monitor_alive(&self, id: &str) -> bool {
        match self.monitor_pid(id) {
            Some(pid) => pid_alive(pid),
            None => runtime::is_running(&self.run_dir(id)),
        }
    }

    /// The pid its run directory gives for container `id`'s monitor.
    fn monitor_pid(&self, id: &str) -> Option<i32> {
        std::fs::read_to_string(self.run_dir(id).join("monitor.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|&pid| pid > 0)
    }

    /// After a `wait` answered: until the monitor has recorded the exit and gone (its
    /// answer can come before the exit hook when the wait connected late). Bounded.
    fn settle(&self, id: &str, limit: Duration) {
        let Ok(records) = self.records() else { return };
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            let running = records.load(id).is_ok_and(|c| c.state.status.is_running());
            if !running || !self.monitor_alive(id) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads a container and makes its status true: "running" with no monitor becomes
    /// exited (137: the monitor's death takes the process with it), recorded.
    fn current(&self, records: &Records, id: &str) -> Result<Container> {
        let mut c = records.load(id)?;
        if c.state.status.is_running() {
            if self.monitor_alive(id) {
                c.state.pid = std::fs::read_to_string(self.run_dir(id).join("init.pid"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(c.state.pid);
            } else {
                let _lock = records.lock()?;
                let fresh = records.load(id)?;
                if fresh.state.status.is_running() {
                    c.state = fresh.state.exited(
                        137,
                        "the container's monitor is gone (killed, or the machine restarted)",
                        &now_rfc3339(),
                    );
                    let _ = records.write_state(id, &c.state);
                    let _ = std::fs::remove_dir_all(self.run_dir(id));
                } else {
                    c.state = fresh.state;
                }
            }
        }
        Ok(c)
    }

    pub(super) fn find(&self, word: &str) -> Result<(Records, Container)> {
        let records = self.records().map_err(engine_to_containers)?;
        let id = records.resolve(word)?;
        let c = self.current(&records, &id)?;
        Ok((records, c))
    }

    pub(super) fn image_config(&self, id: &Digest) -> Result<ImageConfig> {
        let bytes = self
            .store
            .read_blob(id)
            .map_err(|e| ContainersError::ImageConfig {
                id: id.short().to_string(),
                why: e.to_string(),
            })?;
        ImageConfig::parse(&bytes).map_err(|e| ContainersError::ImageConfig {
            id: id.short().to_string(),
            why: e.to_string(),
        })
    }

    /// `create`: a new container record for `req.image`; returns its full ID.
    pub fn create_container(
        &self,
        req: &CreateRequest,
    ) -> std::result::Result<String, EngineError> {
        Ok(self.create_inner(req)?)
    }

    fn create_inner(&self, req: &CreateRequest) -> Result<String> {
        // the flags first: a bad one is told before the image is looked up or pulled
        let network = req.network.clone().unwrap_or_else(|| "private".into());
        let port_bindings = super::network::port_bindings(
            &req.publish,
            network
                .parse::<Network>()
                .map_err(ContainersError::BadNetwork)?,
        )?;
        let mount_flags = volumes::mount_flags(&req.volumes, &req.mounts)?;
        // checked here too; the image's EXPOSE joins below
        exposed_ports(&BTreeSet::new(), &req.expose, &port_bindings)?;
        let mut flag_env = Vec::new();
        for f in &req.env_files {
            let text = std::fs::read_to_string(f).map_err(|source| ContainersError::EnvFile {
                path: f.clone(),
                source,
            })?;
            merge_env(&mut flag_env, parse_env_file(&text, host_env)?);
        }
        merge_env(&mut flag_env, expand_env(&req.env, host_env)?);
        let db = self
            .store
            .images()
            .map_err(|e| ContainersError::ImageConfig {
                id: req.image.clone(),
                why: e.to_string(),
            })?;
        let found = db
            .resolve(&req.image)
            .map_err(|_| ContainersError::ImageNotFound(req.image.clone()))?;
        let config = self.image_config(&found.id)?;
        let rc = config.config.clone().unwrap_or_default();
        let (entrypoint, cmd) = command_line(
            rc.entrypoint.as_deref().unwrap_or(&[]),
            rc.cmd.as_deref().unwrap_or(&[]),
            req.entrypoint.as_deref(),
            &req.command,
        );
        let mut argv: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
        if argv.is_empty() {
            return Err(ContainersError::NoCommand(req.image.clone()));
        }
        let mut env = rc.env.clone();
        merge_env(&mut env, flag_env);
        let exposed_ports = exposed_ports(&rc.exposed_ports, &req.expose, &port_bindings)?;
        let mounts = self.container_mounts(mount_flags, &rc.volumes)?;
        let id = new_id()?;
        let short: String = id.chars().take(12).collect();
        let path = argv.remove(0);
        let record = state::Record {
            id: id.clone(),
            created: now_rfc3339(),
            path,
            args: argv,
            image: found.id.to_string(),
            name: req.name.clone().unwrap_or_default(),
            config: state::RunConfig {
                hostname: req.hostname.clone().unwrap_or(short),
                user: req.user.clone().unwrap_or(rc.user.clone()),
                attach_stdin: req.interactive,
                attach_stdout: true,
                attach_stderr: true,
                exposed_ports,
                tty: req.tty,
                open_stdin: req.interactive,
                env,
                cmd,
                image: req.image.clone(),
                working_dir: req.workdir.clone().unwrap_or(rc.working_dir.clone()),
                entrypoint,
                labels: rc.labels.clone(),
                stop_signal: rc.stop_signal.clone(),
            },
            host_config: state::HostConfig {
                binds: req.volumes.clone(),
                network_mode: network,
                auto_remove: req.auto_remove,
                init: req.init,
                port_bindings,
                publish_all_ports: req.publish_all,
            },
            mounts,
        };
        let records = self.records().map_err(engine_to_containers)?;
        records.clean_leftovers();
        let mounts = record.mounts.clone();
        match records.create(record) {
            Ok(record) => Ok(record.id),
            Err(e) => {
                volumes::remove_anonymous(&self.paths, &records, &mounts);
                Err(e.into())
            }
        }
    }

    /// `run`/`create` of an image not stored: pulls it (quietly, default platform) and
    /// returns the name as docker prints it (`busybox:latest`).
    /// `cancel` stops it (Ctrl-C), keeping the partial download.
    pub fn pull_for_run(
        &self,
        word: &str,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> std::result::Result<String, EngineError> {
        let reference =
            crate::reference::Reference::parse(word).map_err(|e| EngineError::BadReference {
                word: word.to_string(),
                why: e.to_string(),
            })?;
        super::pull::pull(
            &self.store,
            &reference,
            &super::pull::PullOptions::default(),
            &(),
            cancel,
        )?;
        Ok(reference.familiar())
    }

    /// Readies a created or exited container to start (`start -a` of a running one: to
    /// attach to it): every check that can fail before it runs is done here (its record, a
    /// mount server, volumes, host ports bound), and what the user should be told first
    /// comes with it ([`PreparedStart::warning`]). [`PreparedStart::run`] starts it.
    pub fn prepare_start(
        &self,
        word: &str,
        mode: StartMode,
    ) -> std::result::Result<PreparedStart<'_>, EngineError> {
        Ok(self.prepare_inner(word, mode)?)
    }

    fn prepare_inner(&self, word: &str, mode: StartMode) -> Result<PreparedStart<'_>> {
        let (records, c) = self.find(word)?;
        let id = c.record.id.clone();
        let ready = if c.state.status.can_start() {
            if runtime::mountsrv::server_pid(&self.paths.mount_dir(&id)).is_some() {
                return Err(ContainersError::Mounted(c.record.name.clone()));
            }
            let (container, warning) = self.runtime_container(&records, &c, mode)?;
            Ready::Run {
                container: Box::new(container),
                warning,
            }
        } else {
            match mode {
                StartMode::Attach { stdin } => Ready::Attach { stdin },
                _ => return Err(ContainersError::AlreadyRunning(c.record.name.clone())),
            }
        };
        Ok(PreparedStart {
            engine: self,
            records,
            c,
            mode,
            ready,
        })
    }

    /// Runs a prepared start. Returns the exit code in the foreground and attached modes,
    /// `None` detached.
    fn launch(&self, start: PreparedStart<'_>) -> Result<Option<i32>> {
        let PreparedStart {
            records,
            c,
            mode,
            ready,
            ..
        } = start;
        let id = c.record.id.clone();
        let container = match ready {
            Ready::Attach { stdin } => {
                return Ok(Some(runtime::attach(
                    &self.run_dir(&id),
                    stdin,
                    c.record.config.tty,
                )?));
            }
            Ready::Run { container, .. } => *container,
        };
        let started_at = now();
        let auto_remove = c.record.host_config.auto_remove;
        let hook_records = records.clone();
        let hook_id = id.clone();
        let hook_paths = self.paths.clone();
        let hook_mounts = c.record.mounts.clone();
        let hook: runtime::OnExit = Box::new(move |info: &runtime::ExitInfo| {
            if auto_remove {
                let _ = hook_records.remove(&hook_id);
                volumes::remove_anonymous(&hook_paths, &hook_records, &hook_mounts);
                return;
            }
            let Ok(_lock) = hook_records.lock() else {
                return;
            };
            if let Ok(c) = hook_records.load(&hook_id) {
                let s = c.state.exited(
                    info.code,
                    info.failure.as_deref().unwrap_or(""),
                    &now_rfc3339(),
                );
                let _ = hook_records.write_state(&hook_id, &s);
            }
        });
        let started = match runtime::start(container, Some(hook)) {
            Ok(s) => s,
            Err(e) => {
                if auto_remove {
                    let _ = records.remove(&id);
                    volumes::remove_anonymous(&self.paths, &records, &c.record.mounts);
                    let _ = std::fs::remove_dir_all(self.run_dir(&id));
                } else {
                    self.record_start(&records, &id, started_at, None, Some(&e));
                }
                return Err(e.into());
            }
        };
        self.record_start(&records, &id, started_at, Some(started.init_pid), None);
        match mode {
            StartMode::Detached => {
                started.detach();
                Ok(None)
            }
            StartMode::Foreground | StartMode::Attach { .. } => Ok(Some(started.wait()?)),
        }
    }

    /// Records a start (or a failure to start) unless the exit hook already recorded a
    /// later exit.
    fn record_start(
        &self,
        records: &Records,
        id: &str,
        started_at: (i64, u32),
        pid: Option<i32>,
        failed: Option<&RuntimeError>,
    ) {
        let Ok(_lock) = records.lock() else { return };
        let Ok(c) = records.load(id) else { return };
        let hook_ran = c.state.status == Status::Exited
            && time_of(&c.state.finished_at).is_some_and(|t| t >= started_at);
        if hook_ran {
            return;
        }
        let at = image::format_rfc3339(started_at.0, started_at.1);
        let s = match (pid, failed) {
            (_, Some(e)) => {
                c.state
                    .running(&at)
                    .exited(e.exit_code(), &e.to_string(), &now_rfc3339())
            }
            (Some(pid), None) => State {
                pid,
                ..c.state.running(&at)
            },
            (None, None) => return,
        };
        let _ = records.write_state(id, &s);
    }

    /// What the overlay serves as the container's root: its image's layers under its
    /// writable layer.
    pub(super) fn overlay_options(
        &self,
        records: &Records,
        c: &Container,
        maps: &IdMaps,
    ) -> Result<overlay::Options> {
        let r = &c.record;
        let image_id: Digest = r.image.parse().map_err(|_| ContainersError::ImageConfig {
            id: r.image.clone(),
            why: "the record does not name an image ID".into(),
        })?;
        let store_err = |e: crate::store::StoreError| ContainersError::ImageConfig {
            id: image_id.short().to_string(),
            why: e.to_string(),
        };
        let diff_ids = self.store.image_layers(&image_id).map_err(store_err)?;
        let (_, lower_index) = self.store.chain_index(&diff_ids).map_err(store_err)?;
        let tars = diff_ids.iter().map(|d| self.store.layer_tar(d)).collect();
        let mut opts = overlay::Options::in_dir(&records.dir_of(&r.id), lower_index, tars);
        // one id mapped: files of other owners must stay usable by the container's root
        opts.squash_unmapped = maps.single().is_some();
        Ok(opts)
    }

    /// The host side of a record's mounts, made ready to bind: a volume gone missing made
    /// again, a missing bind source made a directory (as docker's `-v` does).
    pub(super) fn binds_of(&self, r: &state::Record) -> Result<Vec<Bind>> {
        let mut binds = Vec::new();
        for m in mounts_of(r) {
            self.ensure_mount_volume(&m)?;
            // docker makes a missing bind source a directory
            if !m.source.exists() {
                std::fs::create_dir_all(&m.source).map_err(|source| {
                    ContainersError::VolumeSource {
                        path: m.source.clone(),
                        source,
                    }
                })?;
            }
            binds.push(Bind {
                fill: m.kind == MountKind::Volume && !m.no_copy,
                source: m.source,
                destination: m.destination,
                readonly: !m.rw,
                tmpfs: None,
            });
        }
        Ok(binds)
    }

    /// The runtime's container for record `c`, and the warning to show before it runs
    /// (its private network stays loopback only: [`runtime::netns::choose`]).
    fn runtime_container(
        &self,
        records: &Records,
        c: &Container,
        mode: StartMode,
    ) -> Result<(runtime::Container, Option<String>)> {
        let r = &c.record;
        let maps = IdMaps::for_current_user();
        let opts = self.overlay_options(records, c, &maps)?;
        let mount: runtime::MountFn = Box::new(move |mp: &Path| {
            overlay::mount(&opts, mp)
                .map(|m| Box::new(m) as Box<dyn std::any::Any>)
                .map_err(|e| e.to_string())
        });
        let binds = self.binds_of(r)?;
        let stdin = r.config.open_stdin;
        // the foreground modes also log (docker's `logs` works after them), except with
        // --rm, where no one could read it
        let foreground = |stdin| match r.host_config.auto_remove {
            true => Io::Inherit { stdin },
            false => Io::InheritAndLog {
                stdin,
                log: records.log_path(&r.id),
            },
        };
        let io = match mode {
            StartMode::Foreground => foreground(stdin),
            // the caller's own stdio, so no output is lost before an attach could connect
            StartMode::Attach { stdin: attach } => foreground(stdin && attach),
            StartMode::Detached => Io::Log {
                path: records.log_path(&r.id),
                stdin,
            },
        };
        let network: Network = r
            .host_config
            .network_mode
            .parse()
            .map_err(ContainersError::BadNetwork)?;
        let (outbound, warning) = runtime::netns::choose(network);
        let container = runtime::Container {
            id: r.id.clone(),
            rootfs: RootFs::Mount(mount),
            run_dir: self.run_dir(&r.id),
            process: ProcessSpec {
                args: r.argv(),
                env: r.config.env.clone(),
                cwd: r.config.working_dir.clone(),
                user: r.config.user.clone(),
                tty: r.config.tty,
            },
            hostname: r.config.hostname.clone(),
            network,
            binds,
            init: r.host_config.init,
            io,
            maps,
            fake_ids: false,
            ports: super::network::bind_ports(&start_bindings(r))?,
            outbound,
        };
        Ok((container, warning))
    }

    /// `stop`: the stop signal (SIGTERM unless the image says otherwise), then SIGKILL
    /// after `timeout`. A container not running is left as it is. Returns its name.
    pub fn stop_container(
        &self,
        word: &str,
        timeout: Duration,
    ) -> std::result::Result<(), EngineError> {
        let (_, c) = self.find(word)?;
        if !c.state.status.is_running() {
            return Ok(());
        }
        let dir = self.run_dir(&c.record.id);
        let sig = c
            .record
            .config
            .stop_signal
            .as_deref()
            .and_then(|s| parse_signal(s).ok())
            .unwrap_or(Signal::SIGTERM);
        let monitor = self.monitor_pid(&c.record.id);
        let result = self.stop_running(&dir, sig, timeout);
        self.settle(&c.record.id, Duration::from_secs(10));
        // and until the monitor has removed its run directory, which the next start of
        // this container makes anew (`restart`, `stop && start`). Bounded.
        let since = std::time::Instant::now();
        while monitor.is_some_and(pid_alive) && since.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        result
    }

    fn stop_running(
        &self,
        dir: &Path,
        sig: Signal,
        timeout: Duration,
    ) -> std::result::Result<(), EngineError> {
        let dir = dir.to_path_buf();
        let gone = |e: &RuntimeError| matches!(e, RuntimeError::NotRunning { .. });
        match runtime::signal(&dir, sig) {
            Err(e) if gone(&e) => return Ok(()),
            r => r.map_err(ContainersError::from)?,
        }
        match runtime::wait(&dir, Some(timeout)) {
            Ok(Some(_)) => return Ok(()),
            Err(e) if gone(&e) => return Ok(()),
            Ok(None) => {}
            Err(e) => return Err(ContainersError::from(e).into()),
        }
        match runtime::signal(&dir, Signal::SIGKILL) {
            Err(e) if gone(&e) => return Ok(()),
            r => r.map_err(ContainersError::from)?,
        }
        match runtime::wait(&dir, None) {
            Err(e) if !gone(&e) => Err(ContainersError::from(e).into()),
            _ => Ok(()),
        }
    }

    /// `kill -s SIGNAL`: sends it; for SIGKILL also waits until the container is gone, so
    /// the next command sees it exited.
    pub fn kill_container(&self, word: &str, signal: &str) -> std::result::Result<(), EngineError> {
        let sig = parse_signal(signal)?;
        let (_, c) = self.find(word)?;
        if !c.state.status.is_running() {
            return Err(ContainersError::KillNotRunning(word.to_string()).into());
        }
        let dir = self.run_dir(&c.record.id);
        runtime::signal(&dir, sig).map_err(ContainersError::from)?;
        if sig == Signal::SIGKILL {
            let _ = runtime::wait(&dir, Some(Duration::from_secs(10)));
            self.settle(&c.record.id, Duration::from_secs(10));
        }
        Ok(())
    }

    /// `restart`: stops it (if running), then readies its detached start.
    pub fn restart_container(
        &self,
        word: &str,
        timeout: Duration,
    ) -> std::result::Result<PreparedStart<'_>, EngineError> {
        self.stop_container(word, timeout)?;
        self.prepare_start(word, StartMode::Detached)
    }

    /// `wait`: blocks until the container stops; its exit code.
    pub fn wait_container(&self, word: &str) -> std::result::Result<i32, EngineError> {
        let (records, c) = self.find(word)?;
        if c.state.status.is_running() {
            match runtime::wait(&self.run_dir(&c.record.id), None) {
                Ok(Some(code)) => return Ok(code),
                Ok(None) | Err(RuntimeError::NotRunning { .. }) => {}
                Err(e) => return Err(ContainersError::from(e).into()),
            }
            // the monitor was closing: its exit hook records the code
            self.settle(&c.record.id, Duration::from_secs(10));
            return Ok(self.current(&records, &c.record.id)?.state.exit_code);
        }
        Ok(c.state.exit_code)
    }

    /// `rm [-f] [-v]`: removes the record, writable layer and log (`force` kills a running
    /// one first; `volumes` also removes its anonymous volumes).
    pub fn remove_container(
        &self,
        word: &str,
        force: bool,
        volumes: bool,
    ) -> std::result::Result<(), EngineError> {
        let (records, c) = self.find(word)?;
        let id = &c.record.id;
        if c.state.status.is_running() {
            if !force {
                return Err(ContainersError::RemoveRunning {
                    name: word.to_string(),
                }
                .into());
            }
            let dir = self.run_dir(id);
            let _ = runtime::signal(&dir, Signal::SIGKILL);
            let _ = runtime::wait(&dir, Some(Duration::from_secs(30)));
            self.settle(id, Duration::from_secs(10));
        }
        self.stop_mount_server(id);
        records.remove(id).map_err(ContainersError::from)?;
        let _ = std::fs::remove_dir_all(self.run_dir(id));
        if volumes {
            volumes::remove_anonymous(&self.paths, &records, &c.record.mounts);
        }
        Ok(())
    }

    /// `ps`: every container (only running ones unless `all`), newest first.
    pub fn list_containers(
        &self,
        all: bool,
        size: bool,
    ) -> std::result::Result<Vec<ContainerRow>, EngineError> {
        let records = self.records()?;
        let mut rows = Vec::new();
        for c in records.list().map_err(ContainersError::from)? {
            let c = match self.current(&records, &c.record.id) {
                Ok(c) => c,
                Err(ContainersError::State(StateError::Read { .. })) => continue,
                Err(e) => return Err(e.into()),
            };
            if !all && !c.state.status.is_running() {
                continue;
            }
            let size = size.then(|| {
                let image = c
                    .record
                    .image
                    .parse::<Digest>()
                    .ok()
                    .and_then(|d| self.store.image_size(&d).ok())
                    .unwrap_or(0);
                (tree_size(&records.upper_dir(&c.record.id)), image)
            });
            rows.push(ContainerRow {
                ports: self.published(&c),
                id: c.record.id.clone(),
                image: c.record.config.image.clone(),
                command: c.record.argv(),
                created: time_of(&c.record.created).map_or(0, |t| t.0),
                started: time_of(&c.state.started_at).map(|t| t.0),
                finished: time_of(&c.state.finished_at).map(|t| t.0),
                name: c.record.name.clone(),
                state: c.state,
                size,
            });
        }
        Ok(rows)
    }

    /// `exec`: runs a command in a running container; its exit code.
    pub fn exec_container(
        &self,
        word: &str,
        req: &ExecRequest,
    ) -> std::result::Result<i32, EngineError> {
        let (_, c) = self.find(word)?;
        if !c.state.status.is_running() {
            return Err(ContainersError::NotRunning(word.to_string()).into());
        }
        let mut env = c.record.config.env.clone();
        merge_env(&mut env, expand_env(&req.env, host_env)?);
        let spec = ProcessSpec {
            args: req.command.clone(),
            env,
            cwd: req
                .workdir
                .clone()
                .unwrap_or(c.record.config.working_dir.clone()),
            user: req.user.clone().unwrap_or(c.record.config.user.clone()),
            tty: req.tty,
        };
        let dir = self.run_dir(&c.record.id);
        let started = runtime::exec(&dir, &spec, req.interactive).map_err(ContainersError::from)?;
        Ok(started.wait().map_err(ContainersError::from)?)
    }

    /// `attach`: the caller's terminal joined to a running container; its exit code.
    pub fn attach_container(
        &self,
        word: &str,
        stdin: bool,
    ) -> std::result::Result<i32, EngineError> {
        let (_, c) = self.find(word)?;
        if !c.state.status.is_running() {
            return Err(ContainersError::NotRunning(word.to_string()).into());
        }
        let dir = self.run_dir(&c.record.id);
        Ok(runtime::attach(
            &dir,
            stdin && c.record.config.open_stdin,
            c.record.config.tty,
        )
        .map_err(ContainersError::from)?)
    }

    /// `logs`: hands each line to `sink`; with `follow`, keeps reading until the container
    /// stops.
    pub fn container_logs(
        &self,
        word: &str,
        req: LogsRequest,
        sink: &mut dyn FnMut(&LogLine) -> io::Result<()>,
    ) -> std::result::Result<(), EngineError> {
        let (records, c) = self.find(word)?;
        let id = c.record.id.clone();
        let path = records.log_path(&id);
        let log_err = |source| ContainersError::Log {
            id: id.clone(),
            path: path.clone(),
            source,
        };
        let (lines, mut offset) = state::log::read_from(&path, 0).map_err(log_err)?;
        for l in state::log::tail(lines, req.tail) {
            sink(&l).map_err(ContainersError::Output)?;
        }
        if !req.follow {
            return Ok(());
        }
        loop {
            let running = records.load(&id).is_ok_and(|c| c.state.status.is_running())
                && self.monitor_alive(&id);
            let (lines, next) = state::log::read_from(&path, offset).map_err(log_err)?;
            offset = next;
            for l in &lines {
                sink(l).map_err(ContainersError::Output)?;
            }
            if !running {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `container inspect`: docker's JSON shape.
    pub fn inspect_container(
        &self,
        word: &str,
    ) -> std::result::Result<ContainerInspect, EngineError> {
        let (records, c) = self.find(word)?;
        let network_settings = super::network::NetworkSettings::of(&self.published(&c));
        let r = c.record;
        let dir = records.dir_of(&r.id);
        let run = self.run_dir(&r.id);
        let mounts = mounts_of(&r)
            .into_iter()
            .map(|m| {
                let volume = m.kind == MountKind::Volume;
                MountInspect {
                    kind: if volume { "volume" } else { "bind" }.into(),
                    name: volume.then(|| m.name.clone()),
                    source: m.source.display().to_string(),
                    destination: m.destination,
                    driver: volume.then(|| "local".to_string()),
                    mode: match (volume, m.rw) {
                        (_, false) => "ro".into(),
                        (true, true) => "z".into(),
                        (false, true) => String::new(),
                    },
                    rw: m.rw,
                    propagation: if volume { "" } else { "rprivate" }.into(),
                }
            })
            .collect();
        Ok(ContainerInspect {
            id: r.id.clone(),
            created: r.created.clone(),
            path: r.path.clone(),
            args: r.args.clone(),
            state: c.state,
            image: r.image.clone(),
            resolv_conf_path: run.join("resolv.conf").display().to_string(),
            hostname_path: run.join("hostname").display().to_string(),
            hosts_path: run.join("hosts").display().to_string(),
            log_path: records.log_path(&r.id).display().to_string(),
            name: format!("/{}", r.name),
            restart_count: 0,
            driver: "camada-overlay".into(),
            platform: "linux".into(),
            host_config: r.host_config,
            network_settings,
            graph_driver: GraphDriver {
                name: "camada-overlay".into(),
                data: GraphData {
                    upper_dir: dir.join("upper").display().to_string(),
                    work_dir: dir.join("work").display().to_string(),
                },
            },
            mounts,
            config: r.config,
        })
    }

    /// `container prune`: removes every stopped container.
    pub fn prune_containers(&self) -> std::result::Result<ContainerPrune, EngineError> {
        let records = self.records()?;
        let mut report = ContainerPrune::default();
        for c in records.list().map_err(ContainersError::from)? {
            let Ok(c) = self.current(&records, &c.record.id) else {
                continue;
            };
            if !c.state.status.is_stopped() {
                continue;
            }
            let size = tree_size(&records.dir_of(&c.record.id));
            self.stop_mount_server(&c.record.id);
            records
                .remove(&c.record.id)
                .map_err(ContainersError::from)?;
            report.reclaimed += size;
            report.removed.push(c.record.id);
        }
        Ok(report)
    }
}

fn engine_to_containers(e: EngineError) -> ContainersError {
    match e {
        EngineError::Containers(c) => c,
        other => ContainersError::ImageConfig {
            id: String::new(),
            why: other.to_string(),
        },
    }
}

/// `inspect` of a container, in docker's key order.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub image: String,
    pub resolv_conf_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub log_path: String,
    pub name: String,
    pub restart_count: u32,
    pub driver: String,
    pub platform: String,
    pub host_config: state::HostConfig,
    pub network_settings: super::network::NetworkSettings,
    pub graph_driver: GraphDriver,
    pub mounts: Vec<MountInspect>,
    pub config: state::RunConfig,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: GraphData,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphData {
    pub upper_dir: String,
    pub work_dir: String,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountInspect {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn entrypoint_and_cmd_follow_docker() {
        let ep = v(&["/entry", "-x"]);
        let cmd = v(&["default"]);
        // image entrypoint + image cmd
        assert_eq!(
            command_line(&ep, &cmd, None, &[]),
            (ep.clone(), cmd.clone())
        );
        // arguments replace the cmd only
        assert_eq!(
            command_line(&ep, &cmd, None, &v(&["a", "b"])),
            (ep.clone(), v(&["a", "b"]))
        );
        // --entrypoint drops the image's cmd
        assert_eq!(
            command_line(&ep, &cmd, Some("sh"), &[]),
            (v(&["sh"]), vec![])
        );
        assert_eq!(
            command_line(&ep, &cmd, Some("sh"), &v(&["-c", "x"])),
            (v(&["sh"]), v(&["-c", "x"]))
        );
        // --entrypoint "" clears it
        assert_eq!(
            command_line(&ep, &cmd, Some(""), &[]),
            (vec![], cmd.clone())
        );
        assert_eq!(
            command_line(&[], &v(&["/bin/sh", "-c", "echo hi"]), None, &[]),
            (vec![], v(&["/bin/sh", "-c", "echo hi"]))
        );
    }

    #[test]
    fn env_merges_in_dockers_order() {
        let lookup = |k: &str| (k == "HOSTVAR").then(|| "from-host".to_string());
        let mut env = v(&["PATH=/bin", "A=image", "B=image"]);
        let file =
            parse_env_file("# comment\n\n  A=file\nC=file\nHOSTVAR\nUNSET\n", lookup).unwrap();
        assert_eq!(file, v(&["A=file", "C=file", "HOSTVAR=from-host"]));
        merge_env(&mut env, file);
        merge_env(
            &mut env,
            expand_env(&v(&["C=flag", "D=", "HOSTVAR"]), lookup).unwrap(),
        );
        assert_eq!(
            env,
            v(&[
                "PATH=/bin",
                "A=file",
                "B=image",
                "C=flag",
                "HOSTVAR=from-host",
                "D="
            ])
        );
        assert!(matches!(
            expand_env(&v(&["A B=1"]), lookup),
            Err(ContainersError::BadEnv(_))
        ));
    }

    #[test]
    fn exposed_ports_join_the_image_expose_and_p() {
        let image: BTreeSet<String> = ["80".into(), "53/UDP".into(), "nonsense".into()].into();
        let bindings =
            super::super::network::port_bindings(&v(&["18080:8080"]), Network::Private).unwrap();
        let got = exposed_ports(&image, &v(&["7000-7002/udp", "443"]), &bindings).unwrap();
        assert_eq!(
            got.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "443/tcp", "53/udp", "7000/udp", "7001/udp", "7002/udp", "80/tcp", "8080/tcp"
            ]
        );
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            r#"{"443/tcp":{},"53/udp":{},"7000/udp":{},"7001/udp":{},"7002/udp":{},"80/tcp":{},"8080/tcp":{}}"#
        );
        for bad in ["0", "80-70", "x", "80/sctp", "70000", "1-"] {
            assert!(
                matches!(
                    exposed_ports(&BTreeSet::new(), &v(&[bad]), &BTreeMap::new()),
                    Err(ContainersError::BadExpose(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn publish_all_adds_a_free_port_for_each_exposed_port_without_one() {
        let mut r = state::Record::default();
        r.config.exposed_ports = exposed_ports(
            &["80/tcp".to_string(), "53/udp".into()].into(),
            &[],
            &BTreeMap::new(),
        )
        .unwrap();
        r.host_config.network_mode = "private".into();
        r.host_config.port_bindings =
            super::super::network::port_bindings(&v(&["127.0.0.1:18080:80"]), Network::Private)
                .unwrap();
        // without -P: only -p
        assert_eq!(start_bindings(&r).port_bindings.len(), 1);
        r.host_config.publish_all_ports = true;
        let host = start_bindings(&r);
        assert_eq!(
            serde_json::to_string(&host.port_bindings).unwrap(),
            r#"{"53/udp":[{"HostIp":"","HostPort":""}],"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18080"}]}"#
        );
        // the record keeps only -p
        assert_eq!(r.host_config.port_bindings.len(), 1);
        // nothing to publish off the private network
        r.host_config.network_mode = "host".into();
        assert_eq!(
            start_bindings(&r).port_bindings,
            r.host_config.port_bindings
        );
    }

    #[test]
    fn signals_parse() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err() && parse_signal("99").is_err());
    }
}
