//! Container records: what a container is (`config.json`), where it stands (`state.json`),
//! its name, and its log, all under `containers/<id>/`.
//!
//! Owns the record files and their status machine ([`Status`]: created, running, exited,
//! removing; `can_start()`-style questions instead of string comparisons), names (`--name`
//! or a generated `adjective_surname`, unique), looking a container up by ID, name or unique
//! ID prefix, and reading the json-file log ([`log`]). Never touches namespaces, mounts or
//! processes: whether a "running" record's monitor is still alive is the engine's question
//! (it asks the runtime), and the engine records the answer here.
//!
//! Invariants: a record directory appears in `containers/` only complete (built under a
//! dot-name, then renamed under the lock that also guards names), and `state.json` is only
//! ever replaced by rename of a fsynced temp file, so a reader sees the old state or the
//! new, never half of one. `config.json` keeps naming the image ID in `Image`
//! (`sha256:...`): the store's `containers_using` reads it so `rmi` can refuse.

pub mod log;
mod names;

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use names::{generate_name, valid_name};

/// Where a container stands (docker's `State.Status` words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made by `create`, never started.
    #[default]
    Created,
    /// Its monitor runs it.
    Running,
    /// Stopped; `start` runs it again.
    Exited,
    /// Being removed by `rm`.
    Removing,
}

impl Status {
    /// `start` may run it (a created or exited container).
    pub fn can_start(self) -> bool {
        matches!(self, Status::Created | Status::Exited)
    }
    /// Something runs that `stop`, `kill`, `exec` and `attach` can reach.
    pub fn is_running(self) -> bool {
        self == Status::Running
    }
    /// `rm` without `-f` may remove it.
    pub fn can_remove(self) -> bool {
        !self.is_running()
    }
    /// `container prune` removes it.
    pub fn is_stopped(self) -> bool {
        matches!(self, Status::Created | Status::Exited)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Removing => "removing",
        })
    }
}

/// `state.json`: docker's `State` object, as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: Status,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    /// Host pid of the container's first process while it runs, else 0.
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    /// RFC 3339; `0001-01-01T00:00:00Z` when never started (docker's zero time).
    pub started_at: String,
    pub finished_at: String,
}

/// docker's zero time, for a container never started or never finished.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl State {
    pub fn created() -> State {
        State {
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            ..State::default()
        }
    }

    /// The state of a container whose process was just started at `now`.
    pub fn running(&self, now: &str) -> State {
        State {
            status: Status::Running,
            running: true,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: now.into(),
            finished_at: ZERO_TIME.into(),
            ..self.clone()
        }
    }

    /// The state after the process ended with `code` at `now` (`error` when it never ran
    /// or its monitor was lost).
    pub fn exited(&self, code: i32, error: &str, now: &str) -> State {
        State {
            status: Status::Exited,
            running: false,
            pid: 0,
            exit_code: code,
            error: error.into(),
            finished_at: now.into(),
            ..self.clone()
        }
    }
}

/// `config.json`'s `Config`: what runs, as docker's inspect shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    pub hostname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// The ports it exposes (the image's EXPOSE, `--expose`, `-p`): docker's
    /// `{"80/tcp": {}}`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub exposed_ports: std::collections::BTreeMap<String, serde_json::Value>,
    pub tty: bool,
    pub open_stdin: bool,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    /// The image name as the user typed it.
    pub image: String,
    pub working_dir: String,
    pub entrypoint: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// `config.json`'s `HostConfig`: how it runs on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// `-v SRC:DST[:ro]`.
    pub binds: Vec<String>,
    /// `host`, `none` or `private`.
    pub network_mode: String,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--init`.
    pub init: bool,
    /// `-p`: docker's map from `CTR/PROTO` to the host sides asked for (an empty
    /// `HostPort` is a port chosen at each start).
    #[serde(default)]
    pub port_bindings: std::collections::BTreeMap<String, Vec<PortBinding>>,
    /// `-P`: every exposed port without a binding gets a free host port at each start.
    #[serde(default)]
    pub publish_all_ports: bool,
}

/// One host side of a published port, docker's `{"HostIp": "", "HostPort": "18081"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// Empty: every address.
    pub host_ip: String,
    /// Empty: any free port.
    pub host_port: String,
}

/// `config.json`: everything about a container that does not change while it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    /// 64 hex digits.
    pub id: String,
    /// RFC 3339.
    pub created: String,
    /// `argv[0]` and the rest, after docker's ENTRYPOINT/CMD rules.
    pub path: String,
    pub args: Vec<String>,
    /// The image ID, `sha256:<hex>` (the store's `containers_using` reads this key).
    pub image: String,
    /// Without docker's leading `/`.
    pub name: String,
    pub config: RunConfig,
    pub host_config: HostConfig,
    /// What is mounted into it: `-v` binds and volumes, and the image's VOLUMEs
    /// (absent in records written before volumes existed).
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
}

/// Whether a mount is a host path or a volume of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    #[default]
    Bind,
    Volume,
}

/// One mount of a container, decided at `create` (docker's `MountPoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub kind: MountKind,
    /// The volume's name (empty for a bind).
    pub name: String,
    /// The host path mounted (a volume's `_data`).
    pub source: PathBuf,
    /// Where the container sees it (absolute).
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    /// A volume made for this container alone (an image VOLUME or `-v /path`): `rm -v`
    /// and `run --rm` remove it.
    pub anonymous: bool,
    /// `-v NAME:/path:nocopy`: the image's content is not copied into the volume.
    #[serde(default)]
    pub no_copy: bool,
}

impl Record {
    /// The first 12 hex digits of the ID.
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }
    /// The full command line (`Path` then `Args`).
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![self.path.clone()];
        v.extend(self.args.iter().cloned());
        v
    }
}

/// A container as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub record: Record,
    pub state: State,
}

/// Why a record could not be read, written or found.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("creating the container directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("container record {path} is damaged: {source}; remove it with: camada rm -f {id}")]
    Damaged {
        path: PathBuf,
        id: String,
        source: serde_json::Error,
    },
    #[error("locking {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("removing container {id} ({path}): {source}")]
    Remove {
        id: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("multiple containers match the ID prefix {0:?}; give more digits")]
    Ambiguous(String),
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse { name: String, id: String },
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
}

type Result<T> = std::result::Result<T, StateError>;

/// The container records under one `containers/` directory.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
}

/// An exclusive lock on the records: held while a container is added (names stay unique)
/// and while a state transition is read and written.
pub struct RecordsLock {
    _lock: nix::fcntl::Flock<File>,
}

impl Records {
    /// The records kept in `dir` (`$CAMADA_ROOT/containers`), made 0700 if missing.
    pub fn open(dir: &Path) -> Result<Records> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StateError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Records {
            dir: dir.to_path_buf(),
        })
    }

    /// `containers/<id>/`.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }
    /// `containers/<id>/ctr.log`, the detached container's json-file log.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir_of(id).join("ctr.log")
    }
    /// `containers/<id>/upper/`, the writable layer.
    pub fn upper_dir(&self, id: &str) -> PathBuf {
        self.dir_of(id).join("upper")
    }

    /// Takes the records' lock (released on drop).
    pub fn lock(&self) -> Result<RecordsLock> {
        let path = self.dir.join(".lock");
        let err = |source| StateError::Lock {
            path: path.clone(),
            source,
        };
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err)?;
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| err(io::Error::from(e)))?;
        Ok(RecordsLock { _lock: lock })
    }

    /// Adds a container: its directory (with `upper/`, `work/`), `config.json` and a
    /// `created` state appear together. An empty `record.name` gets a generated one.
    /// Returns the record as written (with its name).
    pub fn create(&self, mut record: Record) -> Result<Record> {
        if !record.name.is_empty() && !valid_name(&record.name) {
            return Err(StateError::InvalidName(record.name));
        }
        let staging = self.dir.join(format!(".new-{}", record.id));
        let _ = fs::remove_dir_all(&staging);
        let mk = |p: &Path, mode: u32| {
            fs::DirBuilder::new()
                .mode(mode)
                .create(p)
                .map_err(|source| StateError::CreateDir {
                    path: p.to_path_buf(),
                    source,
                })
        };
        mk(&staging, 0o700)?;
        let result = (|| {
            // the upper dir's mode is the container's `/` (the record dir keeps it private)
            mk(&staging.join("upper"), 0o755)?;
            mk(&staging.join("work"), 0o700)?;
            let _lock = self.lock()?;
            let taken = self.names()?;
            if record.name.is_empty() {
                record.name = generate_name(|n| taken.iter().any(|(name, _)| name == n));
            } else if let Some((_, id)) = taken.iter().find(|(n, _)| *n == record.name) {
                return Err(StateError::NameInUse {
                    name: record.name.clone(),
                    id: id.clone(),
                });
            }
            write_json(&staging.join("config.json"), &record)?;
            write_json(&staging.join("state.json"), &State::created())?;
            let dest = self.dir_of(&record.id);
            fs::rename(&staging, &dest).map_err(|source| StateError::Write { path: dest, source })
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result.map(|()| record)
    }

    /// (name, id) of every container.
    fn names(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .ids()?
            .into_iter()
            .filter_map(|id| {
                let r: Record = read_json(&self.dir_of(&id).join("config.json"), &id).ok()?;
                Some((r.name, id))
            })
            .collect())
    }

    /// The IDs of every complete record.
    pub fn ids(&self) -> Result<Vec<String>> {
        let err = |source| StateError::Read {
            path: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads one container by full ID.
    pub fn load(&self, id: &str) -> Result<Container> {
        let dir = self.dir_of(id);
        let record: Record = read_json(&dir.join("config.json"), id)?;
        let state = match read_json(&dir.join("state.json"), id) {
            Ok(s) => s,
            Err(StateError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                State::created()
            }
            Err(e) => return Err(e),
        };
        Ok(Container { record, state })
    }

    /// Every container, newest first (as `ps` lists them). Records vanishing meanwhile
    /// (removed by another command) are skipped.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        for id in self.ids()? {
            match self.load(&id) {
                Ok(c) => out.push(c),
                Err(StateError::Read { source, .. })
                    if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| b.record.created.cmp(&a.record.created));
        Ok(out)
    }

    /// The full ID of the container `word` names: a full ID, a name (with or without
    /// docker's leading `/`), or a unique ID prefix, in that order.
    pub fn resolve(&self, word: &str) -> Result<String> {
        let ids = self.ids()?;
        if ids.iter().any(|i| i == word) {
            return Ok(word.to_string());
        }
        let name = word.strip_prefix('/').unwrap_or(word);
        if let Some((_, id)) = self.names()?.into_iter().find(|(n, _)| n == name) {
            return Ok(id);
        }
        let lower = word.to_ascii_lowercase();
        let mut hits = ids.iter().filter(|i| {
            !lower.is_empty()
                && lower.bytes().all(|b| b.is_ascii_hexdigit())
                && i.starts_with(&lower)
        });
        match (hits.next(), hits.next()) {
            (Some(id), None) => Ok(id.clone()),
            (Some(_), Some(_)) => Err(StateError::Ambiguous(word.to_string())),
            _ => Err(StateError::NoSuchContainer(word.to_string())),
        }
    }

    /// Replaces `state.json` (temp file, fsync, rename). A record removed meanwhile is
    /// left removed (`NoSuchContainer`), never half re-created.
    pub fn write_state(&self, id: &str, state: &State) -> Result<()> {
        let dir = self.dir_of(id);
        if !dir.join("config.json").exists() {
            return Err(StateError::NoSuchContainer(id.to_string()));
        }
        write_json(&dir.join("state.json"), state)
    }

    /// Removes the container's directory (record, writable layer, log). First renamed
    /// aside, so it disappears from `ps` at once and a crash mid-way leaves no record.
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir_of(id);
        let aside = self.dir.join(format!(".rm-{id}-{}", std::process::id()));
        match fs::rename(&dir, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(StateError::Remove {
                    id: id.to_string(),
                    path: dir,
                    source,
                });
            }
        }
        remove_tree(&aside).map_err(|source| StateError::Remove {
            id: id.to_string(),
            path: aside.clone(),
            source,
        })
    }

    /// Removes what a crashed `create` or `rm` left (`.new-*`, `.rm-*` directories whose
    /// process is gone).
    pub fn clean_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = match name.strip_prefix(".rm-") {
                Some(rest) => rest
                    .rsplit_once('-')
                    .and_then(|(_, pid)| pid.parse::<i32>().ok())
                    .is_none_or(|pid| !Path::new(&format!("/proc/{pid}")).exists()),
                None => false,
            };
            if stale {
                let _ = remove_tree(&entry.path());
            }
        }
    }
}

/// `remove_dir_all`, first making directories writable (a container may leave a 0500 dir
/// in its writable layer).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(first) => {
            use std::os::unix::fs::PermissionsExt;
            fn open_up(p: &Path) {
                if let Ok(m) = fs::symlink_metadata(p)
                    && m.is_dir()
                {
                    let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
                    if let Ok(rd) = fs::read_dir(p) {
                        for e in rd.flatten() {
                            open_up(&e.path());
                        }
                    }
                }
            }
            open_up(path);
            fs::remove_dir_all(path).map_err(|_| first)
        }
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let err = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| err(io::Error::other(e)))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(err)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, id: &str) -> Result<T> {
    let bytes = fs::read(path).map_err(|source| StateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| StateError::Damaged {
        path: path.to_path_buf(),
        id: id.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests;
