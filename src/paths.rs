//! Where camada's files go, given the environment (cli.md "Global", design.md "On disk").
//!
//! Pure: the caller reads the environment into [`Env`]; this module only decides paths.
//! Every path under the store root is named here and nowhere else, so the on-disk layout
//! can be read in one place.

use std::path::{Path, PathBuf};

use crate::digest::{ChainId, DiffId, Digest};

/// The environment variables and facts that decide the paths.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub camada_root: Option<PathBuf>,
    pub camada_runroot: Option<PathBuf>,
    pub camada_config: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub uid: u32,
}

impl Env {
    /// Reads the process environment (the only impure helper here, kept trivial).
    pub fn from_process() -> Env {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Env {
            camada_root: var("CAMADA_ROOT"),
            camada_runroot: var("CAMADA_RUNROOT"),
            camada_config: var("CAMADA_CONFIG"),
            xdg_data_home: var("XDG_DATA_HOME"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
            uid: nix::unistd::getuid().as_raw(),
        }
    }
}

/// Why the paths cannot be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathsError {
    #[error(
        "cannot tell where to keep images: set HOME, XDG_DATA_HOME or CAMADA_ROOT, or pass --root DIR"
    )]
    NoRoot,
    #[error(
        "cannot tell where the config directory is: set HOME, XDG_CONFIG_HOME or CAMADA_CONFIG"
    )]
    NoConfig,
    #[error("{what} must be an absolute path, got {path:?}")]
    Relative { what: &'static str, path: PathBuf },
}

/// The three places camada writes: the persistent store, the runtime state, the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `--root` / `CAMADA_ROOT`: images, blobs, layers, containers.
    pub root: PathBuf,
    /// `--runroot` / `CAMADA_RUNROOT`: mounts, sockets, pids (may vanish at reboot).
    pub runroot: PathBuf,
    /// `CAMADA_CONFIG`: registry credentials (`auth.json`).
    pub config: PathBuf,
}

impl Paths {
    /// Decides the paths: flags first, then `CAMADA_*`, then the XDG defaults (cli.md).
    pub fn resolve(
        root_flag: Option<&Path>,
        runroot_flag: Option<&Path>,
        env: &Env,
    ) -> Result<Paths, PathsError> {
        let home = env.home.as_deref();
        let root = match (root_flag, &env.camada_root, &env.xdg_data_home, home) {
            (Some(p), ..) => p.to_path_buf(),
            (None, Some(p), ..) => p.clone(),
            (None, None, Some(x), _) => x.join("camada"),
            (None, None, None, Some(h)) => h.join(".local/share/camada"),
            (None, None, None, None) => return Err(PathsError::NoRoot),
        };
        let runroot = match (runroot_flag, &env.camada_runroot, &env.xdg_runtime_dir) {
            (Some(p), ..) => p.to_path_buf(),
            (None, Some(p), _) => p.clone(),
            (None, None, Some(x)) => x.join("camada"),
            (None, None, None) => PathBuf::from(format!("/tmp/camada-{}", env.uid)),
        };
        let config = match (&env.camada_config, &env.xdg_config_home, home) {
            (Some(p), ..) => p.clone(),
            (None, Some(x), _) => x.join("camada"),
            (None, None, Some(h)) => h.join(".config/camada"),
            (None, None, None) => return Err(PathsError::NoConfig),
        };
        for (what, path) in [
            ("the store root", &root),
            ("the runroot", &runroot),
            ("the config directory", &config),
        ] {
            if !path.is_absolute() {
                return Err(PathsError::Relative {
                    what,
                    path: path.clone(),
                });
            }
        }
        Ok(Paths {
            root,
            runroot,
            config,
        })
    }

    /// `blobs/sha256/`: every blob as received or produced.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }
    pub fn blob(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }
    /// `layers/`: uncompressed layers with their indexes.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }
    pub fn layer_dir(&self, d: &DiffId) -> PathBuf {
        self.layers_dir().join(d.hex())
    }
    pub fn layer_tar(&self, d: &DiffId) -> PathBuf {
        self.layer_dir(d).join("tar")
    }
    pub fn layer_index(&self, d: &DiffId) -> PathBuf {
        self.layer_dir(d).join("idx")
    }
    /// `chains/`: merged lower views, a cache that can be rebuilt from `layers/`.
    pub fn chains_dir(&self) -> PathBuf {
        self.root.join("chains")
    }
    pub fn chain_index(&self, c: &ChainId) -> PathBuf {
        self.chains_dir().join(c.hex()).join("idx")
    }
    /// `images.json`: name:tag -> manifest digest, replaced atomically under [`Paths::lock_file`].
    pub fn images_json(&self) -> PathBuf {
        self.root.join("images.json")
    }
    /// The lock serialising read-modify-write of the store's JSON files.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }
    /// Held shared by commands adding content not yet recorded in `images.json`, and
    /// exclusively by garbage collection.
    pub fn gc_lock_file(&self) -> PathBuf {
        self.root.join("gc.lock")
    }
    /// `tmp/`: staging for writes that become visible by rename (same filesystem as
    /// the store); anything left here belongs to a crashed command and is removed.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
    /// `partial/`: downloads kept for resuming (by HTTP Range); left alone by tmp cleanup
    /// and GC, committed into `blobs/` only after verification.
    pub fn partials_dir(&self) -> PathBuf {
        self.root.join("partial")
    }
    pub fn partial_blob(&self, d: &Digest) -> PathBuf {
        self.partials_dir().join(d.hex())
    }
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }
    /// `volumes/`: named and anonymous volumes, docker's layout.
    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }
    /// `volumes/<name>/`: the volume's record (`volume.json`) and its `_data`.
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.volumes_dir().join(name)
    }
    /// `volumes/<name>/_data`: what containers see.
    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }
    pub fn buildcache_json(&self) -> PathBuf {
        self.root.join("buildcache.json")
    }
    /// Content digests of build-context files by host path and lstat (a rebuild with
    /// unchanged files reads none of them); only ever saves work.
    pub fn build_memo_json(&self) -> PathBuf {
        self.root.join("buildmemo.json")
    }
    /// `cachemounts/`: the directories of build's `RUN --mount=type=cache` (`system
    /// prune` removes them).
    pub fn cache_mounts_dir(&self) -> PathBuf {
        self.root.join("cachemounts")
    }
    /// `cachemounts/<sha256 of id>/`: the cache mount called `id` (any string, hence the
    /// hash); `<hex>.lock` beside it serialises `sharing=locked|private` users.
    pub fn cache_mount(&self, id: &str) -> PathBuf {
        self.cache_mounts_dir()
            .join(Digest::of(id.as_bytes()).hex())
    }
    /// `$CAMADA_RUNROOT/<id>/`: monitor pid, control socket, mount point.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.runroot.join(id)
    }
    /// `$CAMADA_RUNROOT/mounts/<id>/`: the `camada mount` server of a stopped container
    /// (its pid, its mount point).
    pub fn mount_dir(&self, id: &str) -> PathBuf {
        self.runroot.join("mounts").join(id)
    }
    /// Registry credentials, 0600.
    pub fn auth_json(&self) -> PathBuf {
        self.config.join("auth.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            home: Some("/home/ana".into()),
            uid: 1000,
            ..Env::default()
        }
    }

    #[test]
    fn defaults_follow_xdg_and_home() {
        let p = Paths::resolve(None, None, &env()).unwrap();
        assert_eq!(p.root, Path::new("/home/ana/.local/share/camada"));
        assert_eq!(p.runroot, Path::new("/tmp/camada-1000"));
        assert_eq!(p.config, Path::new("/home/ana/.config/camada"));
        let e = Env {
            xdg_data_home: Some("/d".into()),
            xdg_runtime_dir: Some("/run/user/1000".into()),
            xdg_config_home: Some("/c".into()),
            ..env()
        };
        let p = Paths::resolve(None, None, &e).unwrap();
        assert_eq!(
            (p.root.as_path(), p.runroot.as_path()),
            (Path::new("/d/camada"), Path::new("/run/user/1000/camada"))
        );
        assert_eq!(p.auth_json(), Path::new("/c/camada/auth.json"));
    }

    #[test]
    fn flags_beat_variables_beat_xdg() {
        let e = Env {
            camada_root: Some("/v/root".into()),
            camada_runroot: Some("/v/run".into()),
            xdg_data_home: Some("/d".into()),
            ..env()
        };
        let p = Paths::resolve(None, None, &e).unwrap();
        assert_eq!(
            (p.root.as_path(), p.runroot.as_path()),
            (Path::new("/v/root"), Path::new("/v/run"))
        );
        let p = Paths::resolve(Some(Path::new("/f/root")), Some(Path::new("/f/run")), &e).unwrap();
        assert_eq!(
            (p.root.as_path(), p.runroot.as_path()),
            (Path::new("/f/root"), Path::new("/f/run"))
        );
    }

    #[test]
    fn refuses_what_it_cannot_decide() {
        assert_eq!(
            Paths::resolve(None, None, &Env::default()),
            Err(PathsError::NoRoot)
        );
        let err = Paths::resolve(Some(Path::new("rel")), None, &env()).unwrap_err();
        assert!(matches!(
            err,
            PathsError::Relative {
                what: "the store root",
                ..
            }
        ));
    }

    #[test]
    fn layout_names() {
        let p = Paths::resolve(Some(Path::new("/r")), None, &env()).unwrap();
        let d = Digest::of(b"x");
        assert_eq!(p.blob(&d), Path::new("/r/blobs/sha256").join(d.hex()));
        assert_eq!(
            p.layer_tar(&DiffId(d.clone())),
            Path::new("/r/layers").join(d.hex()).join("tar")
        );
        assert_eq!(
            p.chain_index(&ChainId(d.clone())),
            Path::new("/r/chains").join(d.hex()).join("idx")
        );
        assert_eq!(
            p.cache_mount("go-build"),
            Path::new("/r/cachemounts").join(Digest::of(b"go-build").hex())
        );
    }
}
