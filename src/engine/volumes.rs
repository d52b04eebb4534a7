//! Volumes: `-v` specifications, the store's volumes under `volumes/<name>/` (docker's
//! layout: the content in `_data`, the record beside it in `volume.json`), and the
//! `volume create|ls|inspect|rm|prune` verbs.
//!
//! Owns docker's rules for a `-v` word (`/host:/ctr[:ro]` is a bind, `name:/ctr` a named
//! volume, `/ctr` alone an anonymous one, options `ro`/`rw`/`nocopy`/`z`...), volume names
//! (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`), which volumes a container gets (its `-v` words plus the
//! image's VOLUME entries, each of those an anonymous volume unless a `-v` covers its
//! path), and when a volume may go (no container record names it). Copying the image's
//! content into a fresh volume happens at mount time in the runtime ([`Bind::fill`]), as
//! the container's root, so the copy's owners are the image's. Never prints.
//!
//! Invariants: a volume directory appears in `volumes/` only complete (built under a
//! dot-name, then renamed), and disappears by rename to a dot-name before its tree is
//! removed, so `volume ls` never shows half a volume. A volume named by a container
//! record is never removed.
//!
//! [`Bind::fill`]: crate::runtime::Bind

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};

use super::system::UsageLine;
use super::{Engine, EngineError};
use crate::paths::Paths;
// A local volume name follows docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
use crate::state::valid_name;
use crate::state::{self, MountKind, MountPoint, Records};

/// docker's label on the volumes it makes for one container (`-v /path`, image VOLUMEs).
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// Why a volume verb failed.
#[derive(Debug, thiserror::Error)]
pub enum VolumesError {
    #[error(
        "create {0}: {0:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )]
    BadName(String),
    #[error(
        "invalid volume specification: {0:?}: use -v /HOST/PATH:/CONTAINER/PATH[:ro], -v NAME:/CONTAINER/PATH[:ro] or -v /CONTAINER/PATH"
    )]
    BadSpec(String),
    #[error(
        "invalid volume specification: {0:?}: the destination must be an absolute path other than /"
    )]
    BadDestination(String),
    #[error(
        "invalid volume specification: {spec:?}: unknown option {option:?} (use ro, rw, nocopy, z or Z)"
    )]
    BadOption { spec: String, option: String },
    #[error(
        "invalid --mount {0:?}: use type=bind,source=/HOST/PATH,target=/PATH[,readonly] or type=volume[,source=NAME],target=/PATH[,readonly]"
    )]
    BadMount(String),
    #[error("invalid mount config for type \"bind\": bind source path does not exist: {0}")]
    MissingBindSource(PathBuf),
    #[error("invalid volume specification: {0:?}: duplicate mount point")]
    Duplicate(String),
    #[error("invalid label {0:?}: use KEY=VALUE")]
    BadLabel(String),
    #[error("creating volume {name} in {path}: {source}")]
    Create {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("reading volume {name} ({path}): {source}")]
    Read {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("No such volume: {0}")]
    NoSuchVolume(String),
    #[error("remove {name}: volume is in use - [{containers}]")]
    InUse { name: String, containers: String },
    #[error("removing volume {name} ({path}): {source}")]
    Remove {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("reading the container records to see which volumes are used: {0}")]
    Records(String),
    #[error("making a volume name: {0}")]
    Random(io::Error),
}

type Result<T> = std::result::Result<T, VolumesError>;

/// One `-v` word, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSpec {
    /// `/host:/ctr`: the host path as given (absolute).
    Bind {
        source: PathBuf,
        destination: String,
        readonly: bool,
    },
    /// `name:/ctr`.
    Named {
        name: String,
        destination: String,
        readonly: bool,
        nocopy: bool,
    },
    /// `/ctr` alone: a volume for this container.
    Anonymous { destination: String },
}

impl VolumeSpec {
    pub fn destination(&self) -> &str {
        match self {
            VolumeSpec::Bind { destination, .. }
            | VolumeSpec::Named { destination, .. }
            | VolumeSpec::Anonymous { destination } => destination,
        }
    }
}

/// `/a/./b/` -> `/a/b` (no `..` resolution beyond the root: `/..` is `/`).
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str().unwrap_or("")),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// Parses a `-v` word as docker does on Linux. A relative host path (`./dir`, `../dir`,
/// `.`) is made absolute against `cwd`, as docker's CLI does.
pub fn parse_volume_spec(spec: &str, cwd: &Path) -> Result<VolumeSpec> {
    let bad = || VolumesError::BadSpec(spec.to_string());
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, dest, options) = match parts.as_slice() {
        [d] => (None, *d, ""),
        [_, d] if is_mode(d) => return Err(bad()),
        [s, d] => (Some(*s), *d, ""),
        [s, d, o] => (Some(*s), *d, *o),
        _ => return Err(bad()),
    };
    if !dest.starts_with('/') || clean(dest) == "/" {
        return Err(VolumesError::BadDestination(spec.to_string()));
    }
    let destination = clean(dest);
    let (mut readonly, mut rw, mut nocopy) = (false, false, false);
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => rw = true,
            "nocopy" => nocopy = true,
            o if is_mode(o) => {}
            _ => {
                return Err(VolumesError::BadOption {
                    spec: spec.to_string(),
                    option: o.to_string(),
                });
            }
        }
    }
    if readonly && rw {
        return Err(bad());
    }
    let Some(source) = source else {
        return Ok(VolumeSpec::Anonymous { destination });
    };
    if source.is_empty() {
        return Err(bad());
    }
    let relative =
        source == "." || source.starts_with("./") || source.starts_with("../") || source == "..";
    if source.starts_with('/') || relative {
        let path = if relative {
            cwd.join(source)
        } else {
            PathBuf::from(source)
        };
        if nocopy {
            return Err(VolumesError::BadOption {
                spec: spec.to_string(),
                option: "nocopy".into(),
            });
        }
        return Ok(VolumeSpec::Bind {
            source: PathBuf::from(clean(&path.to_string_lossy())),
            destination,
            readonly,
        });
    }
    if !valid_name(source) {
        return Err(VolumesError::BadName(source.to_string()));
    }
    Ok(VolumeSpec::Named {
        name: source.to_string(),
        destination,
        readonly,
        nocopy,
    })
}

/// Parses a `--mount type=bind|volume,source=...,target=...[,readonly][,volume-nocopy]`
/// word as docker does (`src`, `dst`/`destination`, `ro` also; a relative bind source is
/// made absolute against `cwd`; a volume without a source is anonymous).
pub fn parse_mount_spec(spec: &str, cwd: &Path) -> Result<VolumeSpec> {
    let bad = || VolumesError::BadMount(spec.to_string());
    let (mut kind, mut source, mut target) = ("volume", None, None);
    let (mut readonly, mut nocopy) = (false, false);
    for field in spec.split(',') {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        let flag = || match value {
            None | Some("1" | "true") => Ok(true),
            Some("0" | "false") => Ok(false),
            Some(_) => Err(bad()),
        };
        match (key, value) {
            ("type", Some(t @ ("bind" | "volume"))) => kind = t,
            ("source" | "src", Some(v)) => source = Some(v),
            ("target" | "destination" | "dst", Some(v)) => target = Some(v),
            ("readonly" | "ro", _) => readonly = flag()?,
            ("volume-nocopy", _) => nocopy = flag()?,
            ("bind-propagation" | "consistency", Some(_)) => {}
            _ => return Err(bad()),
        }
    }
    let target = target.ok_or_else(bad)?;
    if !target.starts_with('/') || clean(target) == "/" {
        return Err(VolumesError::BadDestination(spec.to_string()));
    }
    let destination = clean(target);
    match (kind, source) {
        ("bind", Some(src)) if !src.is_empty() => Ok(VolumeSpec::Bind {
            source: PathBuf::from(clean(&cwd.join(src).to_string_lossy())),
            destination,
            readonly,
        }),
        ("volume", None | Some("")) => Ok(VolumeSpec::Anonymous { destination }),
        ("volume", Some(name)) if valid_name(name) => Ok(VolumeSpec::Named {
            name: name.to_string(),
            destination,
            readonly,
            nocopy,
        }),
        ("volume", Some(name)) => Err(VolumesError::BadName(name.to_string())),
        _ => Err(bad()),
    }
}

/// The option words docker accepts after the destination besides ro/rw/nocopy.
fn is_mode(word: &str) -> bool {
    word.split(',').all(|w| {
        matches!(
            w,
            "ro" | "rw"
                | "z"
                | "Z"
                | "nocopy"
                | "private"
                | "rprivate"
                | "shared"
                | "rshared"
                | "slave"
                | "rslave"
                | "consistent"
                | "cached"
                | "delegated"
        )
    })
}

/// `volume.json`: what docker's volume store keeps about a local volume.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct VolumeRecord {
    created_at: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// `volume inspect` (and a row of `volume ls`), in docker's key order.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInspect {
    pub created_at: String,
    pub driver: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub mountpoint: String,
    pub name: String,
    pub options: Option<BTreeMap<String, String>>,
    pub scope: String,
}

impl VolumeInspect {
    /// Made for one container (so `rm -v`, `run --rm` and a plain `volume prune` remove it).
    pub fn is_anonymous(&self) -> bool {
        self.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(ANONYMOUS_LABEL))
    }
}

/// `volume ls --filter`s, as docker's: every given kind must match; within a kind, any.
#[derive(Debug, Clone, Default)]
pub struct VolumeFilter {
    /// `dangling=true|false`: no container names it (or one does).
    pub dangling: Option<bool>,
    /// `name=PART`: the name contains PART.
    pub names: Vec<String>,
    /// `label=KEY` or `label=KEY=VALUE`.
    pub labels: Vec<String>,
}

impl VolumeFilter {
    fn matches(&self, v: &VolumeInspect, used: bool) -> bool {
        let labels = v.labels.clone().unwrap_or_default();
        self.dangling.is_none_or(|d| d != used)
            && (self.names.is_empty() || self.names.iter().any(|n| v.name.contains(n.as_str())))
            && (self.labels.is_empty()
                || self.labels.iter().any(|l| match l.split_once('=') {
                    Some((k, want)) => labels.get(k).is_some_and(|got| got == want),
                    None => labels.contains_key(l),
                }))
    }
}

/// `volume prune`: what went and the space it gave back.
#[derive(Debug, Clone, Default)]
pub struct VolumePrune {
    pub removed: Vec<String>,
    pub reclaimed: u64,
}

fn random_name() -> Result<String> {
    super::random_hex_id().map_err(VolumesError::Random)
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    crate::image::format_rfc3339(secs, 0)
}

/// A new container's `-v` and `--mount` words, parsed and checked (a `--mount` bind source
/// must exist; no two mounts on one path), before its image is looked up or pulled.
pub fn mount_flags(specs: &[String], mount_specs: &[String]) -> Result<Vec<VolumeSpec>> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut parsed = specs
        .iter()
        .map(|s| parse_volume_spec(s, &cwd))
        .collect::<Result<Vec<_>>>()?;
    for m in mount_specs {
        let spec = parse_mount_spec(m, &cwd)?;
        // unlike -v, --mount never makes a missing bind source
        if let VolumeSpec::Bind { source, .. } = &spec
            && !source.exists()
        {
            return Err(VolumesError::MissingBindSource(source.clone()));
        }
        parsed.push(spec);
    }
    let words: Vec<&String> = specs.iter().chain(mount_specs).collect();
    let mut seen = BTreeSet::new();
    for (p, s) in parsed.iter().zip(words) {
        if !seen.insert(p.destination().to_string()) {
            return Err(VolumesError::Duplicate(s.clone()));
        }
    }
    Ok(parsed)
}

impl Engine {
    /// `volume create [NAME] [--label K=V]...`: makes the volume (a 64-hex name when none
    /// is given); an existing one is left as it is, as docker does. Returns its name.
    pub fn create_volume(
        &self,
        name: Option<&str>,
        labels: &[String],
    ) -> std::result::Result<String, EngineError> {
        let mut map = BTreeMap::new();
        for l in labels {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            if k.is_empty() {
                return Err(VolumesError::BadLabel(l.clone()).into());
            }
            map.insert(k.to_string(), v.to_string());
        }
        let name = match name {
            Some(n) => n.to_string(),
            None => random_name()?,
        };
        self.ensure_volume(&name, map)?;
        Ok(name)
    }

    /// The volume `name`, made with `labels` if it does not exist yet.
    fn ensure_volume(&self, name: &str, labels: BTreeMap<String, String>) -> Result<()> {
        if !valid_name(name) {
            return Err(VolumesError::BadName(name.to_string()));
        }
        let dir = self.paths.volume_dir(name);
        if dir.join("volume.json").is_file() {
            return Ok(());
        }
        let parent = self.paths.volumes_dir();
        let staging = parent.join(format!(".new-{name}-{}", std::process::id()));
        let err = |path: &Path, source| VolumesError::Create {
            name: name.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let result = (|| {
            std::fs::create_dir_all(&parent).map_err(|e| err(&parent, e))?;
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir(&staging).map_err(|e| err(&staging, e))?;
            let data = staging.join("_data");
            std::fs::create_dir(&data).map_err(|e| err(&data, e))?;
            let record = VolumeRecord {
                created_at: now_rfc3339(),
                labels,
            };
            let json = staging.join("volume.json");
            let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
            write_synced(&json, &bytes).map_err(|e| err(&json, e))?;
            match std::fs::rename(&staging, &dir) {
                Ok(()) => Ok(()),
                // made meanwhile by another command: that one is the volume
                Err(_) if dir.join("volume.json").is_file() => Ok(()),
                Err(e) => Err(err(&dir, e)),
            }
        })();
        let _ = std::fs::remove_dir_all(&staging);
        result
    }

    /// A container's volume made again if it went missing (a prune that ran between its
    /// `create` and its record), so that `start` mounts a listed volume.
    pub(super) fn ensure_mount_volume(&self, m: &MountPoint) -> Result<()> {
        if m.kind != MountKind::Volume
            || self.paths.volume_dir(&m.name).join("volume.json").is_file()
        {
            return Ok(());
        }
        let labels = if m.anonymous {
            BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())])
        } else {
            BTreeMap::new()
        };
        self.ensure_volume(&m.name, labels)
    }

    fn read_volume(&self, name: &str) -> Result<VolumeInspect> {
        if !valid_name(name) {
            return Err(VolumesError::NoSuchVolume(name.to_string()));
        }
        let path = self.paths.volume_dir(name).join("volume.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VolumesError::NoSuchVolume(name.to_string()));
            }
            Err(source) => {
                return Err(VolumesError::Read {
                    name: name.to_string(),
                    path,
                    source,
                });
            }
        };
        let r: VolumeRecord = serde_json::from_slice(&bytes).map_err(|e| VolumesError::Read {
            name: name.to_string(),
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        Ok(VolumeInspect {
            created_at: r.created_at,
            driver: "local".into(),
            labels: (!r.labels.is_empty()).then_some(r.labels),
            mountpoint: self.paths.volume_data(name).display().to_string(),
            name: name.to_string(),
            options: None,
            scope: "local".into(),
        })
    }

    /// `volume inspect NAME`.
    pub fn inspect_volume(&self, name: &str) -> std::result::Result<VolumeInspect, EngineError> {
        Ok(self.read_volume(name)?)
    }

    /// `volume ls`: every complete volume, by name.
    pub fn list_volumes(&self) -> std::result::Result<Vec<VolumeInspect>, EngineError> {
        let dir = self.paths.volumes_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(VolumesError::Read {
                    name: String::new(),
                    path: dir,
                    source,
                }
                .into());
            }
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| valid_name(n))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            match self.read_volume(&n) {
                Ok(v) => out.push(v),
                Err(VolumesError::NoSuchVolume(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// `volume ls --filter ...`: the volumes `filter` keeps, by name.
    pub fn list_volumes_filtered(
        &self,
        filter: &VolumeFilter,
    ) -> std::result::Result<Vec<VolumeInspect>, EngineError> {
        let users = if filter.dangling.is_some() {
            self.volume_users()?
        } else {
            BTreeMap::new()
        };
        Ok(self
            .list_volumes()?
            .into_iter()
            .filter(|v| filter.matches(v, users.contains_key(&v.name)))
            .collect())
    }

    fn volume_users(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let records = self
            .records()
            .map_err(|e| VolumesError::Records(e.to_string()))?;
        volume_users(&records)
    }

    /// `system df`'s volumes: how many, how many a container (running or not) names, the
    /// bytes of their content, and the bytes of those none names (what `volume prune -a`
    /// would give back).
    pub(super) fn volumes_usage(&self) -> std::result::Result<UsageLine, EngineError> {
        let users = self.volume_users()?;
        let mut u = UsageLine::default();
        for v in self.list_volumes()? {
            let size = super::containers::tree_size(&self.paths.volume_data(&v.name));
            u.total += 1;
            u.size += size;
            if users.contains_key(&v.name) {
                u.active += 1;
            } else {
                u.reclaimable += size;
            }
        }
        Ok(u)
    }

    /// `volume rm NAME`: refused while a container (running or not) names it.
    pub fn remove_volume(&self, name: &str) -> std::result::Result<(), EngineError> {
        self.read_volume(name)?;
        let records = self.records()?;
        let _lock = records
            .lock()
            .map_err(|e| VolumesError::Records(e.to_string()))?;
        if let Some(ids) = self.volume_users()?.get(name) {
            return Err(VolumesError::InUse {
                name: name.to_string(),
                containers: ids.join(", "),
            }
            .into());
        }
        Ok(self.delete_volume(name)?)
    }

    fn delete_volume(&self, name: &str) -> Result<()> {
        delete_volume(&self.paths, name)
    }

    /// `volume prune [-a]`: removes the volumes no container names: anonymous ones, or
    /// every one with `all` (docker 23's rule).
    pub fn prune_volumes(&self, all: bool) -> std::result::Result<VolumePrune, EngineError> {
        let records = self.records()?;
        let _lock = records
            .lock()
            .map_err(|e| VolumesError::Records(e.to_string()))?;
        let users = self.volume_users()?;
        clean_leftovers(&self.paths);
        let mut report = VolumePrune::default();
        for v in self.list_volumes()? {
            if users.contains_key(&v.name) || !(all || v.is_anonymous()) {
                continue;
            }
            let size = super::containers::tree_size(&self.paths.volume_data(&v.name));
            self.delete_volume(&v.name)?;
            report.reclaimed += size;
            report.removed.push(v.name);
        }
        Ok(report)
    }

    /// The mounts a new container gets: its parsed `-v`/`--mount` words ([`mount_flags`];
    /// volumes made when missing) and an anonymous volume for each image VOLUME path none
    /// of them covers.
    pub(crate) fn container_mounts(
        &self,
        parsed: Vec<VolumeSpec>,
        image_volumes: &BTreeSet<String>,
    ) -> Result<Vec<MountPoint>> {
        let mut seen: BTreeSet<String> =
            parsed.iter().map(|p| p.destination().to_string()).collect();
        let mut wanted = parsed;
        for v in image_volumes {
            let d = clean(v);
            if d != "/" && seen.insert(d.clone()) {
                wanted.push(VolumeSpec::Anonymous { destination: d });
            }
        }
        let mut out = Vec::new();
        for spec in wanted {
            let m = match spec {
                VolumeSpec::Bind {
                    source,
                    destination,
                    readonly,
                } => MountPoint {
                    kind: MountKind::Bind,
                    source,
                    destination,
                    rw: !readonly,
                    ..MountPoint::default()
                },
                VolumeSpec::Named {
                    name,
                    destination,
                    readonly,
                    nocopy,
                } => {
                    self.ensure_volume(&name, BTreeMap::new())?;
                    MountPoint {
                        kind: MountKind::Volume,
                        source: self.paths.volume_data(&name),
                        name,
                        destination,
                        rw: !readonly,
                        anonymous: false,
                        no_copy: nocopy,
                    }
                }
                VolumeSpec::Anonymous { destination } => {
                    let name = random_name()?;
                    let labels = BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]);
                    self.ensure_volume(&name, labels)?;
                    MountPoint {
                        kind: MountKind::Volume,
                        source: self.paths.volume_data(&name),
                        name,
                        destination,
                        rw: true,
                        anonymous: true,
                        no_copy: false,
                    }
                }
            };
            out.push(m);
        }
        Ok(out)
    }
}

/// Volume name -> the IDs of the containers whose records name it.
fn volume_users(records: &Records) -> Result<BTreeMap<String, Vec<String>>> {
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let list = records
        .list()
        .map_err(|e| VolumesError::Records(e.to_string()))?;
    for c in list {
        for m in &c.record.mounts {
            if m.kind == MountKind::Volume {
                users
                    .entry(m.name.clone())
                    .or_default()
                    .push(c.record.id.clone());
            }
        }
    }
    Ok(users)
}

/// Removes what a crashed create or rm left in `volumes/` (`.new-NAME-PID`,
/// `.rm-NAME-PID` whose process is gone).
fn clean_leftovers(paths: &Paths) {
    let Ok(entries) = std::fs::read_dir(paths.volumes_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(".new-")
            .or_else(|| name.strip_prefix(".rm-"))
        else {
            continue;
        };
        let alive = rest
            .rsplit_once('-')
            .and_then(|(_, pid)| pid.parse::<i32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = remove_tree_mapped(&e.path());
        }
    }
}

/// `remove_dir_all` of a volume tree; files the container made under its other ids (the
/// subordinate ids' on the host) are removed as the container's root.
fn remove_tree_mapped(path: &Path) -> io::Result<()> {
    state::remove_tree(path).or_else(|_| {
        let maps = crate::runtime::IdMaps::for_current_user();
        crate::runtime::unshared::as_mapped_root(&maps, path, state::remove_tree)
    })
}

/// Removes a volume's directory (renamed aside first, so it leaves `ls` at once).
fn delete_volume(paths: &Paths, name: &str) -> Result<()> {
    let dir = paths.volume_dir(name);
    let aside = paths
        .volumes_dir()
        .join(format!(".rm-{name}-{}", std::process::id()));
    match std::fs::rename(&dir, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(VolumesError::Remove {
                name: name.to_string(),
                path: dir,
                source,
            });
        }
    }
    remove_tree_mapped(&aside).map_err(|source| VolumesError::Remove {
        name: name.to_string(),
        path: aside,
        source,
    })
}

/// Removes the anonymous volumes among `mounts` that no container record names any more
/// (`rm -v`, `run --rm`; call it after the container's record is gone). Best effort: a
/// volume that cannot go is left for `volume prune`.
pub(crate) fn remove_anonymous(paths: &Paths, records: &Records, mounts: &[MountPoint]) {
    if !mounts.iter().any(|m| m.anonymous) {
        return;
    }
    let Ok(_lock) = records.lock() else { return };
    let users = volume_users(records).unwrap_or_default();
    for m in mounts {
        if m.kind == MountKind::Volume && m.anonymous && !users.contains_key(&m.name) {
            let _ = delete_volume(paths, &m.name);
        }
    }
}

/// Writes `bytes` to a new file at `path` and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<VolumeSpec> {
        parse_volume_spec(s, Path::new("/work"))
    }

    #[test]
    fn volume_words_parse_as_dockers() {
        assert_eq!(
            parse("/h:/c:ro").unwrap(),
            VolumeSpec::Bind {
                source: "/h".into(),
                destination: "/c".into(),
                readonly: true
            }
        );
        assert_eq!(
            parse("./d:/c/").unwrap(),
            VolumeSpec::Bind {
                source: "/work/d".into(),
                destination: "/c".into(),
                readonly: false
            }
        );
        assert_eq!(
            parse("data:/var/lib/x:rw,z").unwrap(),
            VolumeSpec::Named {
                name: "data".into(),
                destination: "/var/lib/x".into(),
                readonly: false,
                nocopy: false
            }
        );
        assert!(matches!(
            parse("data:/x:ro,nocopy").unwrap(),
            VolumeSpec::Named {
                readonly: true,
                nocopy: true,
                ..
            }
        ));
        assert_eq!(
            parse("/data").unwrap(),
            VolumeSpec::Anonymous {
                destination: "/data".into()
            }
        );
        for bad in [
            "/h:rel",
            "/h:/",
            "rel",
            "/h:/c:zz",
            "/c:ro",
            "/h:/c:ro,rw",
            "a:/c",
            "-x:/c",
            "/a:/b:/c:d",
            ":/c",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(parse("a b:/c"), Err(VolumesError::BadName(_))));
    }

    #[test]
    fn mount_words_parse_as_dockers() {
        let m = |s: &str| parse_mount_spec(s, Path::new("/work"));
        assert_eq!(
            m("type=bind,src=/h,dst=/c,readonly").unwrap(),
            VolumeSpec::Bind {
                source: "/h".into(),
                destination: "/c".into(),
                readonly: true
            }
        );
        assert_eq!(
            m("type=bind,source=rel,target=/c,ro=false").unwrap(),
            VolumeSpec::Bind {
                source: "/work/rel".into(),
                destination: "/c".into(),
                readonly: false
            }
        );
        assert_eq!(
            m("source=data,target=/d,volume-nocopy").unwrap(),
            VolumeSpec::Named {
                name: "data".into(),
                destination: "/d".into(),
                readonly: false,
                nocopy: true
            }
        );
        assert_eq!(
            m("type=volume,dst=/d").unwrap(),
            VolumeSpec::Anonymous {
                destination: "/d".into()
            }
        );
        for bad in [
            "type=tmpfs,dst=/t",
            "type=bind,dst=/c",
            "type=bind,src=/h",
            "src=/h,dst=rel",
            "type=bind,src=/h,dst=/c,readonly=maybe",
            "type=bind,src=/h,dst=/c,bogus=1",
        ] {
            assert!(m(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_follow_dockers_rule() {
        for good in ["ab", "my_vol.1-x", "0a", &"f".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["a", "", "_a", ".a", "a/b", "a:b", "..", "a b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
