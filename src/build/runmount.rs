//! `RUN --mount=...` (BuildKit's syntax) and `build --secret`: what a RUN sees besides the
//! stage's files, for that RUN only.
//!
//! It owns parsing a mount spec (pure: [`RunMount::parse`], [`parse_secret_flag`]), the
//! text a mount adds to the step's cache key ([`RunMount::key_text`]: the options, never
//! a secret's bytes), the host side of each kind (a persistent cache directory under
//! `cachemounts/` with its `sharing` lock, a copy of the bind source from the context or
//! a stage, a copy of the secret file) as `runtime::Bind`s, and removing the mount points
//! the runtime had to create from the RUN's upper dir. It never runs the container and
//! never plans which files a bind reads (that is `copy`, through the executor).
//!
//! Invariant: nothing mounted is ever part of the layer: writes under a mount land in the
//! mount (cache, tmpfs, a discarded copy), and an empty mount point made only for the RUN
//! is removed from the upper dir before the layer is taken.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::exec::join_path;
use crate::paths::Paths;
use crate::runtime::{Bind, IdMaps};

/// Why a mount spec or a `--secret` flag cannot be used; names the option.
#[derive(Debug, thiserror::Error)]
pub enum RunMountError {
    #[error("--mount={spec}: unexpected key {key:?} (for type={kind})")]
    UnknownKey {
        spec: String,
        key: String,
        kind: String,
    },
    #[error("--mount={spec}: unknown mount type {kind:?}: use bind, cache, tmpfs or secret")]
    UnknownType { spec: String, kind: String },
    #[error(
        "--mount={spec}: type=ssh is not supported (camada forwards no SSH agent); use a secret"
    )]
    Ssh { spec: String },
    #[error("--mount={spec}: invalid value {value:?} for {key}: {why}")]
    BadValue {
        spec: String,
        key: String,
        value: String,
        why: &'static str,
    },
    #[error("--mount={spec}: the mount needs a target (target=PATH)")]
    NoTarget { spec: String },
    #[error("--mount={spec}: the target cannot be / (the stage's own root)")]
    RootTarget { spec: String },
    #[error("--mount={spec}: a secret mount needs an id or a target")]
    NoSecretId { spec: String },
    #[error("--mount={spec}: an unclosed quote")]
    Quote { spec: String },
    #[error("secret {id:?} is required but was not given: add --secret id={id},src=FILE")]
    SecretMissing { id: String },
    #[error("invalid --secret {flag:?}: {why}")]
    SecretFlag { flag: String, why: String },
    #[error("reading the secret {id:?} from {from}: {source}")]
    SecretRead {
        id: String,
        from: String,
        source: io::Error,
    },
    #[error("preparing the cache mount {id:?} at {path}: {source}")]
    CacheDir {
        id: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("preparing the {kind} mount at {target}: {source}")]
    Prepare {
        kind: &'static str,
        target: String,
        source: io::Error,
    },
}

type Result<T, E = RunMountError> = std::result::Result<T, E>;

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Every build uses the directory at once (the default).
    Shared,
    /// A build that finds it in use gets a fresh directory, discarded after the RUN.
    Private,
    /// A build waits until no other uses it.
    Locked,
}

/// What kind of mount, with its kind's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Files of the context (`from` none) or of a stage or image, read-only unless `rw`
    /// (then writes are discarded).
    Bind {
        source: String,
        from: Option<String>,
        rw: bool,
    },
    /// A directory kept between builds, under the store; when `from` names a stage or
    /// an image, a new cache starts as a copy of its `source` (else empty).
    Cache {
        id: String,
        from: Option<String>,
        source: String,
        sharing: Sharing,
        readonly: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// An empty tmpfs; `size` in bytes when given.
    Tmpfs { size: Option<u64> },
    /// A `--secret` of the build, as a file at the target (when `env` is none or a target
    /// was given) and/or in the environment variable `env`.
    Secret {
        id: String,
        required: bool,
        env: Option<String>,
        file: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// One `--mount` of a RUN (after variable expansion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    /// Absolute path in the container (a relative target is against the working dir).
    pub target: String,
    pub kind: Kind,
}

/// Splits `spec` on commas as Go's CSV reader does (`"a,b"` quotes a comma, `""` a quote).
fn csv_fields(spec: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = spec.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(RunMountError::Quote {
            spec: spec.to_owned(),
        });
    }
    out.push(cur);
    Ok(out)
}

impl RunMount {
    /// Parses one `--mount` value; relative targets are against `workdir`.
    pub fn parse(spec: &str, workdir: &str) -> Result<RunMount> {
        let mut kind = "bind".to_owned();
        let mut opts: Vec<(String, Option<String>)> = Vec::new();
        for field in csv_fields(spec)? {
            let field = field.trim();
            if field.is_empty() {
                continue;
            }
            let (k, v) = match field.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_owned())),
                None => (field.to_ascii_lowercase(), None),
            };
            if k == "type" {
                kind = v.unwrap_or_default().to_ascii_lowercase();
            } else {
                opts.push((k, v));
            }
        }
        let bad = |key: &str, value: &str, why: &'static str| RunMountError::BadValue {
            spec: spec.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
            why,
        };
        let flag = |key: &str, v: &Option<String>| match v.as_deref() {
            None => Ok(true),
            Some(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => Ok(true),
                "false" | "0" | "f" => Ok(false),
                _ => Err(bad(key, s, "expected true or false")),
            },
        };
        let value = |key: &str, v: &Option<String>| {
            v.clone().ok_or_else(|| bad(key, "", "expected KEY=VALUE"))
        };
        let number = |key: &str, v: &Option<String>, radix: u32| {
            let s = value(key, v)?;
            u32::from_str_radix(&s, radix).map_err(|_| {
                bad(
                    key,
                    &s,
                    if radix == 8 {
                        "expected octal permission bits"
                    } else {
                        "expected a number"
                    },
                )
            })
        };
        let unknown = |key: &str| RunMountError::UnknownKey {
            spec: spec.to_owned(),
            key: key.to_owned(),
            kind: kind.clone(),
        };
        let mut target: Option<String> = None;
        let mut source: Option<String> = None;
        let mut from: Option<String> = None;
        let mut id: Option<String> = None;
        let mut readonly: Option<bool> = None;
        let mut sharing = Sharing::Shared;
        let mut mode: Option<u32> = None;
        let (mut uid, mut gid) = (0, 0);
        let mut size = None;
        let mut required = false;
        let mut env = None;
        for (k, v) in &opts {
            match (k.as_str(), kind.as_str()) {
                ("target" | "dst" | "destination", _) => target = Some(value(k, v)?),
                ("source" | "src", "bind" | "cache") => source = Some(value(k, v)?),
                ("from", "bind" | "cache") => from = Some(value(k, v)?),
                ("readonly" | "ro", "bind" | "cache") => readonly = Some(flag(k, v)?),
                ("readwrite" | "rw", "bind" | "cache") => readonly = Some(!flag(k, v)?),
                ("id", "cache" | "secret" | "ssh") => id = Some(value(k, v)?),
                ("sharing", "cache") => {
                    let s = value(k, v)?;
                    sharing = match s.as_str() {
                        "shared" => Sharing::Shared,
                        "private" => Sharing::Private,
                        "locked" => Sharing::Locked,
                        _ => return Err(bad(k, &s, "expected shared, private or locked")),
                    };
                }
                ("mode", "cache" | "secret" | "ssh") => {
                    let m = number(k, v, 8)?;
                    if m > 0o7777 {
                        return Err(bad(k, &value(k, v)?, "expected octal permission bits"));
                    }
                    mode = Some(m);
                }
                ("uid", "cache" | "secret" | "ssh") => uid = number(k, v, 10)?,
                ("gid", "cache" | "secret" | "ssh") => gid = number(k, v, 10)?,
                ("size", "tmpfs") => {
                    let s = value(k, v)?;
                    size = Some(parse_size(&s).ok_or_else(|| bad(k, &s, "expected bytes"))?);
                }
                ("required", "secret" | "ssh") => required = flag(k, v)?,
                ("env", "secret") => env = Some(value(k, v)?),
                _ => {
                    if matches!(kind.as_str(), "bind" | "cache" | "tmpfs" | "secret") {
                        return Err(unknown(k));
                    }
                }
            }
        }
        let no_target = || RunMountError::NoTarget {
            spec: spec.to_owned(),
        };
        let kind = match kind.as_str() {
            "bind" => Kind::Bind {
                source: source.unwrap_or_default(),
                from,
                rw: readonly == Some(false),
            },
            "cache" => {
                let t = target.clone().ok_or_else(no_target)?;
                Kind::Cache {
                    id: id.unwrap_or_else(|| join_path(workdir, &t)),
                    from,
                    source: source.unwrap_or_default(),
                    sharing,
                    readonly: readonly.unwrap_or(false),
                    mode: mode.unwrap_or(0o755),
                    uid,
                    gid,
                }
            }
            "tmpfs" => Kind::Tmpfs { size },
            "secret" => {
                let id = match (id, &target) {
                    (Some(id), _) => id,
                    (None, Some(t)) => t.rsplit('/').next().unwrap_or_default().to_owned(),
                    (None, None) => String::new(),
                };
                if id.is_empty() {
                    return Err(RunMountError::NoSecretId {
                        spec: spec.to_owned(),
                    });
                }
                // with env= alone the secret is only a variable (BuildKit)
                let file = env.is_none() || target.is_some();
                if target.is_none() {
                    target = Some(format!("/run/secrets/{id}"));
                }
                Kind::Secret {
                    id,
                    required,
                    env,
                    file,
                    mode: mode.unwrap_or(0o400),
                    uid,
                    gid,
                }
            }
            "ssh" => {
                return Err(RunMountError::Ssh {
                    spec: spec.to_owned(),
                });
            }
            other => {
                return Err(RunMountError::UnknownType {
                    spec: spec.to_owned(),
                    kind: other.to_owned(),
                });
            }
        };
        let target = target.ok_or_else(no_target)?;
        if target.is_empty() {
            return Err(no_target());
        }
        let target = join_path(workdir, &target);
        if target == "/" {
            return Err(RunMountError::RootTarget {
                spec: spec.to_owned(),
            });
        }
        Ok(RunMount { target, kind })
    }

    /// What this mount adds to the step's cache key: every option (a secret's id and
    /// where it goes, never its bytes). A bind's content hash is added by the executor.
    pub fn key_text(&self) -> String {
        format!("{:?}", self)
    }
}

/// `size=` of a tmpfs: bytes, with an optional k/m/g suffix (`64m`, `1g`, `512kb`, `1MiB`).
fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let n: u64 = digits.parse().ok()?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// Where a `--secret` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// `build --secret id=ID[,src=FILE|env=VAR][,type=file|env]` (docker's flag). Without
/// `src` or `env`, the variable named `ID` is read.
pub fn parse_secret_flag(flag: &str) -> Result<(String, SecretSource)> {
    let err = |why: String| RunMountError::SecretFlag {
        flag: flag.to_owned(),
        why,
    };
    let mut id = None;
    let mut src = None;
    let mut env = None;
    let mut ty = None;
    for field in csv_fields(flag).map_err(|_| err("an unclosed quote".into()))? {
        let Some((k, v)) = field.split_once('=') else {
            return Err(err(format!("{field:?} is not KEY=VALUE")));
        };
        match k.trim() {
            "id" => id = Some(v.to_owned()),
            "src" | "source" => src = Some(v.to_owned()),
            "env" => env = Some(v.to_owned()),
            "type" if v == "file" || v == "env" => ty = Some(v.to_owned()),
            other => return Err(err(format!("unexpected key {other:?}"))),
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| err("it needs id=ID".into()))?;
    let source = match (src, env, ty.as_deref()) {
        (Some(_), Some(_), _) => return Err(err("give src= or env=, not both".into())),
        (Some(s), None, Some("env")) | (None, Some(s), _) => SecretSource::Env(s),
        (Some(s), None, _) => SecretSource::File(PathBuf::from(s)),
        (None, None, Some("file")) => SecretSource::File(PathBuf::from(&id)),
        (None, None, _) => SecretSource::Env(id.clone()),
    };
    Ok((id, source))
}

/// The bytes of a secret.
pub fn read_secret(id: &str, source: &SecretSource) -> Result<Vec<u8>> {
    match source {
        SecretSource::File(p) => std::fs::read(p).map_err(|source| RunMountError::SecretRead {
            id: id.to_owned(),
            from: p.display().to_string(),
            source,
        }),
        SecretSource::Env(v) => std::env::var_os(v)
            .map(|s| std::os::unix::ffi::OsStrExt::as_bytes(s.as_os_str()).to_vec())
            .ok_or_else(|| RunMountError::SecretRead {
                id: id.to_owned(),
                from: format!("the environment variable {v}"),
                source: io::Error::from(io::ErrorKind::NotFound),
            }),
    }
}

/// What the host keeps for a RUN's mounts while it runs: its binds, the variables that
/// secrets with `env=` add, the cache locks and the secrets' copies (released and
/// removed on drop).
#[derive(Default)]
pub struct Prepared {
    pub binds: Vec<Bind>,
    pub env: BTreeMap<String, String>,
    _locks: Vec<Flock<File>>,
    secret_dir: Option<PathBuf>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(dir) = &self.secret_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The host side of one cache mount: its directory, locked as `sharing` says. A private
/// mount in use elsewhere gets `fresh` (an empty directory the caller discards).
fn cache_dir(
    paths: &Paths,
    maps: &IdMaps,
    m: &RunMount,
    fresh: &Path,
    prepared: &mut Prepared,
    seed: &mut dyn FnMut() -> std::result::Result<Option<PathBuf>, String>,
) -> Result<PathBuf> {
    let Kind::Cache {
        id,
        sharing,
        mode,
        uid,
        gid,
        ..
    } = &m.kind
    else {
        return Err(RunMountError::Prepare {
            kind: "cache",
            target: m.target.clone(),
            source: io::Error::other("not a cache mount"),
        });
    };
    let dir = paths.cache_mount(id);
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunMountError::CacheDir {
            id: id.clone(),
            path,
            source,
        }
    };
    let parent = paths.cache_mounts_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(err(&parent))?;
    let lock_path = dir.with_extension("lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(err(&lock_path))?;
    let arg = match sharing {
        Sharing::Shared => FlockArg::LockShared,
        Sharing::Locked => FlockArg::LockExclusive,
        Sharing::Private => FlockArg::LockExclusiveNonblock,
    };
    let dir = match Flock::lock(lock_file, arg) {
        Ok(lock) => {
            prepared._locks.push(lock);
            dir
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) if *sharing == Sharing::Private => {
            fresh.to_path_buf()
        }
        Err((_, e)) => return Err(err(&lock_path)(io::Error::from(e))),
    };
    if !dir.exists() {
        // made aside (empty, or a copy of its `from`) with its mode and owner, then
        // renamed: never seen half-made
        let tmp = parent.join(format!(".new-{}", std::process::id()));
        let _ = crate::state::remove_tree(&tmp);
        match seed().map_err(|why| err(&dir)(io::Error::other(why)))? {
            Some(copy) => std::fs::rename(&copy, &tmp).map_err(err(&tmp))?,
            None => std::fs::create_dir(&tmp).map_err(err(&tmp))?,
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(*mode))
            .map_err(err(&tmp))?;
        if (*uid, *gid) != (0, 0) && maps.has_ranges() {
            let (u, g) = (*uid, *gid);
            crate::runtime::unshared::as_mapped_root(maps, &tmp, move |p: &Path| {
                std::os::unix::fs::chown(p, Some(u), Some(g))
            })
            .map_err(err(&tmp))?;
        }
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = crate::state::remove_tree(&tmp);
            if !dir.is_dir() {
                return Err(err(&dir)(e));
            }
        }
    }
    Ok(dir)
}

/// A secret as a file in `secrets` (mode, and owner where the id maps allow) to bind.
fn secret_file(
    secrets: &Path,
    maps: &IdMaps,
    id: &str,
    bytes: &[u8],
    mode: u32,
    owner: (u32, u32),
) -> Result<PathBuf> {
    let err = |source| RunMountError::Prepare {
        kind: "secret",
        target: id.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(secrets)
        .map_err(err)?;
    let path = secrets.join(crate::digest::Digest::of(id.as_bytes()).hex());
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(err)?;
        f.write_all(bytes).map_err(err)?;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    if owner != (0, 0) && maps.has_ranges() {
        crate::runtime::unshared::as_mapped_root(maps, &path, move |p: &Path| {
            std::os::unix::fs::chown(p, Some(owner.0), Some(owner.1))
        })
        .map_err(err)?;
    }
    Ok(path)
}

/// Prepares the host side of `mounts` for one RUN: `dir` is the RUN's own temp dir in
/// the store (private caches in use go there and go with it), `secret_dir` a fresh path
/// in the runroot (usually memory, never the store) where secrets are copied for the RUN
/// and removed when the [`Prepared`] goes; `bind_dir(i)` gives the materialised source
/// of the bind mount `i`, or of the cache mount `i`'s `from` when it is first made (the
/// executor copies it under `dir`, on the store's filesystem).
pub fn prepare(
    paths: &Paths,
    maps: &IdMaps,
    mounts: &[RunMount],
    secrets: &BTreeMap<String, SecretSource>,
    dir: &Path,
    secret_dir: &Path,
    bind_dir: &mut dyn FnMut(usize, &RunMount) -> std::result::Result<PathBuf, String>,
) -> std::result::Result<Prepared, String> {
    let mut prepared = Prepared::default();
    for (i, m) in mounts.iter().enumerate() {
        let bind = |source: PathBuf, readonly: bool| Bind {
            source,
            destination: m.target.clone(),
            readonly,
            fill: false,
            tmpfs: None,
        };
        match &m.kind {
            Kind::Bind { rw, .. } => {
                let source = bind_dir(i, m)?;
                prepared.binds.push(bind(source, !rw));
            }
            Kind::Cache { readonly, from, .. } => {
                let fresh = dir.join(format!("cache-{i}"));
                std::fs::create_dir_all(&fresh).map_err(|e| e.to_string())?;
                let mut seed = || match from {
                    Some(_) => bind_dir(i, m).map(Some),
                    None => Ok(None),
                };
                let d = cache_dir(paths, maps, m, &fresh, &mut prepared, &mut seed)
                    .map_err(|e| e.to_string())?;
                prepared.binds.push(bind(d, *readonly));
            }
            Kind::Tmpfs { size } => {
                let mut b = bind(PathBuf::new(), false);
                b.tmpfs = Some(size.map(|s| format!("size={s}")).unwrap_or_default());
                prepared.binds.push(b);
            }
            Kind::Secret {
                id,
                required,
                env,
                file,
                mode,
                uid,
                gid,
            } => {
                let Some(source) = secrets.get(id) else {
                    if *required {
                        return Err(RunMountError::SecretMissing { id: id.clone() }.to_string());
                    }
                    continue; // BuildKit skips a secret not given unless required
                };
                let bytes = read_secret(id, source).map_err(|e| e.to_string())?;
                if let Some(var) = env {
                    prepared
                        .env
                        .insert(var.clone(), String::from_utf8_lossy(&bytes).into_owned());
                }
                if *file {
                    prepared.secret_dir = Some(secret_dir.to_path_buf());
                    let path = secret_file(secret_dir, maps, id, &bytes, *mode, (*uid, *gid))
                        .map_err(|e| e.to_string())?;
                    prepared.binds.push(bind(path, true));
                }
            }
        }
    }
    Ok(prepared)
}

/// Removes from a RUN's upper dir the mount points the runtime made for `targets` (empty
/// files or directories the stage did not have, and parents left empty), so the layer
/// holds none of them. `lower_has(rel)` says whether the stage already had `rel`.
pub fn drop_mount_points(upper: &Path, targets: &[String], lower_has: &dyn Fn(&str) -> bool) {
    // deepest first, so a mount point under another is gone before its parent is looked at
    let mut rels: Vec<&str> = targets
        .iter()
        .map(|t| t.trim_start_matches('/'))
        .filter(|r| !r.is_empty())
        .collect();
    rels.sort_by_key(|r| std::cmp::Reverse(r.len()));
    for rel in rels {
        let mut cur = Some(Path::new(rel));
        while let Some(r) = cur.filter(|r| !r.as_os_str().is_empty()) {
            let s = r.to_string_lossy();
            if lower_has(&s) {
                break;
            }
            let p = upper.join(r);
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                cur = r.parent();
                continue;
            };
            let gone = if meta.is_dir() {
                std::fs::remove_dir(&p).is_ok()
            } else {
                meta.is_file() && meta.len() == 0 && std::fs::remove_file(&p).is_ok()
            };
            if !gone {
                break;
            }
            cur = r.parent();
        }
    }
}

/// Removes every cache mount (`system prune`); returns how many there were. Files a RUN
/// made there under other ids (subordinate ids on the host) are removed as the
/// container's root.
pub fn prune_cache_mounts(paths: &Paths) -> io::Result<usize> {
    let dir = paths.cache_mounts_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some() {
            // a lock file goes with its directory, or alone when that was never made
            let dir = path.with_extension("");
            if !dir.exists()
                && let Ok(f) = File::open(&path)
                && let Ok(_held) = Flock::lock(f, FlockArg::LockExclusiveNonblock)
            {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        let Ok(lock) = File::open(path.with_extension("lock")) else {
            remove_mapped(&path)?;
            n += 1;
            continue;
        };
        // a build using the cache now keeps it
        let Ok(_held) = Flock::lock(lock, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        remove_mapped(&path)?;
        let _ = std::fs::remove_file(path.with_extension("lock"));
        n += 1;
    }
    Ok(n)
}

/// The bytes under every cache mount, for `system df`.
pub fn cache_mounts_size(paths: &Paths) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if !meta.is_dir() {
            return meta.len();
        }
        std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| walk(&e.path())).sum())
            .unwrap_or(0)
    }
    walk(&paths.cache_mounts_dir())
}

fn remove_mapped(path: &Path) -> io::Result<()> {
    crate::state::remove_tree(path).or_else(|_| {
        let maps = IdMaps::for_current_user();
        crate::runtime::unshared::as_mapped_root(&maps, path, crate::state::remove_tree)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RunMount> {
        RunMount::parse(s, "/work")
    }

    #[test]
    fn mounts_parse_as_buildkits() {
        assert_eq!(
            parse("type=cache,target=/root/.cache,sharing=locked,mode=0700,uid=10").unwrap(),
            RunMount {
                target: "/root/.cache".into(),
                kind: Kind::Cache {
                    id: "/root/.cache".into(),
                    from: None,
                    source: String::new(),
                    sharing: Sharing::Locked,
                    readonly: false,
                    mode: 0o700,
                    uid: 10,
                    gid: 0,
                },
            }
        );
        // bind is the default type, read-only unless rw; relative targets use WORKDIR
        assert_eq!(
            parse("source=src,target=out,from=builder,rw").unwrap(),
            RunMount {
                target: "/work/out".into(),
                kind: Kind::Bind {
                    source: "src".into(),
                    from: Some("builder".into()),
                    rw: true,
                },
            }
        );
        assert_eq!(
            parse("type=bind,target=/x,ro=true").unwrap().kind,
            Kind::Bind {
                source: String::new(),
                from: None,
                rw: false
            }
        );
        let secret = parse("type=secret,id=tok,required").unwrap();
        assert_eq!(secret.target, "/run/secrets/tok");
        assert!(matches!(
            secret.kind,
            Kind::Secret {
                required: true,
                mode: 0o400,
                file: true,
                ..
            }
        ));
        // the id defaults to the target's name; env= alone makes no file
        let s = parse("type=secret,target=/etc/key").unwrap();
        assert!(matches!(&s.kind, Kind::Secret { id, .. } if id == "key"));
        let e = parse("type=secret,id=t,env=TOKEN").unwrap();
        assert!(matches!(&e.kind, Kind::Secret { file: false, env: Some(v), .. } if v == "TOKEN"));
        assert_eq!(
            parse("type=tmpfs,target=/t,size=64m").unwrap().kind,
            Kind::Tmpfs {
                size: Some(64 << 20)
            }
        );
        // a quoted comma is part of the value
        assert_eq!(
            parse("type=bind,\"source=a,b\",target=/x").unwrap().kind,
            Kind::Bind {
                source: "a,b".into(),
                from: None,
                rw: false
            }
        );
    }

    #[test]
    fn bad_mounts_name_the_option() {
        for (spec, says) in [
            (
                "type=cache,target=/c,colour=red",
                "unexpected key \"colour\"",
            ),
            ("type=nfs,target=/c", "unknown mount type \"nfs\""),
            ("type=cache", "needs a target"),
            ("type=cache,target=/c,sharing=sometimes", "sharing"),
            ("type=cache,target=/c,mode=999", "mode"),
            ("type=tmpfs,target=/t,size=lots", "size"),
            ("type=ssh", "type=ssh is not supported"),
            ("type=secret", "needs an id"),
            ("type=tmpfs,target=/t,id=x", "unexpected key \"id\""),
            ("type=bind,target=/t,\"source=x", "unclosed quote"),
        ] {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn key_text_names_options_not_secret_bytes() {
        let a = parse("type=cache,target=/c").unwrap().key_text();
        assert_ne!(a, parse("type=cache,target=/c,id=x").unwrap().key_text());
        assert_ne!(a, parse("type=cache,target=/d").unwrap().key_text());
    }

    #[test]
    fn secret_flags_parse_as_dockers() {
        assert_eq!(
            parse_secret_flag("id=tok,src=/tmp/t").unwrap(),
            ("tok".into(), SecretSource::File("/tmp/t".into()))
        );
        assert_eq!(
            parse_secret_flag("id=tok,env=TOKEN").unwrap(),
            ("tok".into(), SecretSource::Env("TOKEN".into()))
        );
        assert_eq!(
            parse_secret_flag("id=TOKEN").unwrap(),
            ("TOKEN".into(), SecretSource::Env("TOKEN".into()))
        );
        assert!(parse_secret_flag("src=/x").is_err());
        assert!(parse_secret_flag("id=a,colour=red").is_err());
    }

    #[test]
    fn cache_dirs_persist_and_private_ones_in_use_are_fresh() {
        let (t, store) = crate::store::tests_support::store();
        let maps = IdMaps::for_current_user();
        let fresh = t.path().join("fresh");
        let private = parse("type=cache,target=/c,id=p,sharing=private,mode=0750").unwrap();
        let mut first = Prepared::default();
        let dir = cache_dir(
            store.paths(),
            &maps,
            &private,
            &fresh,
            &mut first,
            &mut || Ok(None),
        )
        .unwrap();
        assert_eq!(dir, store.paths().cache_mount("p"));
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o750);
        std::fs::write(dir.join("kept"), b"x").unwrap();
        // while the first user holds it, a private user gets the fresh dir...
        let mut second = Prepared::default();
        let other = cache_dir(
            store.paths(),
            &maps,
            &private,
            &fresh,
            &mut second,
            &mut || Ok(None),
        )
        .unwrap();
        assert_eq!(other, fresh);
        // ...and once it is released, the kept one again
        drop(first);
        let mut third = Prepared::default();
        let again = cache_dir(
            store.paths(),
            &maps,
            &private,
            &fresh,
            &mut third,
            &mut || Ok(None),
        )
        .unwrap();
        assert_eq!(again, dir);
        assert!(again.join("kept").exists());
        drop(third);
        // system prune: gone, lock file too (also one whose directory was never made)
        std::fs::write(
            store.paths().cache_mount("orphan").with_extension("lock"),
            b"",
        )
        .unwrap();
        assert_eq!(prune_cache_mounts(store.paths()).unwrap(), 1);
        assert_eq!(
            std::fs::read_dir(store.paths().cache_mounts_dir())
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn mount_points_made_for_a_run_leave_the_upper_dir() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path();
        std::fs::create_dir_all(up.join("run/secrets")).unwrap();
        std::fs::write(up.join("run/secrets/tok"), b"").unwrap();
        std::fs::create_dir_all(up.join("var/cache/x")).unwrap();
        std::fs::create_dir_all(up.join("srv/data")).unwrap();
        std::fs::write(up.join("srv/data/kept"), b"written by the RUN").unwrap();
        let lower_has = |r: &str| r == "var" || r == "var/cache";
        drop_mount_points(
            up,
            &[
                "/run/secrets/tok".into(),
                "/var/cache/x".into(),
                "/srv/data".into(),
            ],
            &lower_has,
        );
        assert!(!up.join("run").exists());
        // the stage had var/cache: its copy-up stays (removing an upper dir the stage has
        // could drop an opaque marker and bring deleted files back)
        assert!(!up.join("var/cache/x").exists());
        assert!(up.join("var/cache").exists());
        assert!(up.join("srv/data/kept").exists());
    }
}
