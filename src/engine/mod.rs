//! The engine: camada's verbs (images, tag, rmi, inspect, history, prune, df, info, tree,
//! save/load/import, pull/push/login; later run...) wired over the service modules.
//!
//! Owns the `Engine` (paths + store) and the plain data each verb returns: rows, reports,
//! trees. It decides everything docker decides (which tag to untag, when an image may be
//! deleted, what counts as dangling), and never prints or reads the terminal: the CLI
//! prints what it returns, and tests call it directly. Services (`store`, `layer`, ...)
//! never import each other; this module is where they meet.

pub mod archive;
mod build;
pub mod commit;
pub mod containers;
pub mod cp;
pub mod fsops;
mod images;
pub mod login;
pub mod network;
mod procfs;
pub mod pull;
pub mod push;
pub mod stats;
mod system;
mod tree;
pub mod volumes;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{DiffId, Digest};
use crate::paths::{Env, Paths, PathsError};
use crate::store::{Store, StoreError};

pub use crate::build::{Built, Progress as BuildProgress, StepInfo};
pub use build::BuildRequest;
pub use system::{
    Check, CheckStatus, DiskUsage, Probe, SystemInfo, UsageLine, VersionInfo, version,
};
pub use tree::{ImageTree, TreeLayer, TreeStep};

/// Why a verb failed. The message is complete (cause inline) and names the object.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Paths(#[from] PathsError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("invalid reference format: {word:?}: {why}")]
    BadReference { word: String, why: String },
    #[error(
        "conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories"
    )]
    MultipleRepositories { id: String },
    #[error(
        "conflict: unable to remove repository reference {name:?} (must force) - container {container} is using its referenced image {id}"
    )]
    UsedByContainerTag {
        name: String,
        container: String,
        id: String,
    },
    #[error(
        "conflict: unable to delete {id} (must be forced) - image is being used by container {container}"
    )]
    UsedByContainer { id: String, container: String },
    #[error("reading the config of image {id}: {why}")]
    BadConfig { id: String, why: String },
    #[error("reading the index of layer {diff_id}: {why}")]
    LayerIndex { diff_id: DiffId, why: String },
    #[error("{0}")]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    Pull(#[from] pull::PullError),
    #[error(transparent)]
    Push(#[from] push::PushError),
    #[error(transparent)]
    Login(#[from] login::LoginError),
    #[error("{0}")]
    Containers(#[from] containers::ContainersError),
    #[error("{0}")]
    Build(#[from] crate::build::BuildError),
    #[error("{0}")]
    BadBuildFlag(String),
    #[error("{0}")]
    Commit(#[from] commit::CommitError),
    #[error("{0}")]
    Volumes(#[from] volumes::VolumesError),
    #[error("{0}")]
    Fsops(#[from] fsops::FsopsError),
    #[error("{0}")]
    Stats(#[from] stats::StatsError),
}

/// The engine: where things are, and the store.
pub struct Engine {
    paths: Paths,
    store: Store,
}

impl Engine {
    /// Opens the store chosen by the flags, else by the environment (cli.md "Global").
    pub fn open(root: Option<&Path>, runroot: Option<&Path>) -> Result<Engine, EngineError> {
        let paths = Paths::resolve(root, runroot, &Env::from_process())?;
        let store = Store::open(&paths)?;
        Ok(Engine { paths, store })
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `save`: the images named (each resolved first, so an unknown name fails before
    /// anything is written) as one archive on `out`.
    pub fn save(
        &self,
        names: &[String],
        format: SaveFormat,
        out: &mut dyn Write,
    ) -> Result<(), EngineError> {
        let db = self.store.images()?;
        let images = names
            .iter()
            .map(|n| db.resolve(n))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(archive::save(&self.store, &images, format, out)?)
    }

    /// `load`: every image of a docker-archive or OCI archive.
    pub fn load(&self, input: Input) -> Result<Vec<LoadedImage>, EngineError> {
        Ok(archive::load(&self.store, input)?)
    }

    /// `import`: a rootfs tarball as a one-layer image; returns its ID.
    pub fn import(&self, input: Input, req: &ImportRequest) -> Result<Digest, EngineError> {
        Ok(archive::import(&self.store, input, req)?)
    }
}

/// Which images `images` lists.
#[derive(Debug, Clone, Default)]
pub struct ListImages {
    /// Also intermediate images (build parents); dangling images are always listed.
    pub all: bool,
    /// `REPO` or `REPO:TAG` as the user typed it.
    pub reference: Option<String>,
    /// `--filter dangling=true|false`: only untagged images, or only tagged ones.
    pub dangling: Option<bool>,
    /// `--filter reference=PATTERN`: the familiar `name` or `name:tag` matches the glob
    /// (`*`, `?`); several patterns: any of them.
    pub patterns: Vec<String>,
}

/// One row of `images`: an image under one of its names (or `<none>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub id: Digest,
    /// The familiar repository name (`busybox`, `127.0.0.1:5000/app`); `None` = `<none>`.
    pub repository: Option<String>,
    pub tag: Option<String>,
    /// The repo digest (manifest digest in that repository), when known.
    pub digest: Option<Digest>,
    /// Seconds since the epoch, from the image config.
    pub created: Option<i64>,
    /// Bytes of content in the image's layers.
    pub size: u64,
}

/// What `rmi` and `prune` did, in order, as docker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A name (`busybox:latest`, `busybox@sha256:...`) no longer points at the image.
    Untagged(String),
    /// The image (or a layer) is gone.
    Deleted(Digest),
}

/// One row of `history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The image this step produced, when it is an image camada has (the top row).
    pub id: Option<Digest>,
    pub created: Option<i64>,
    pub created_by: String,
    /// Bytes of content the step's layer holds; 0 for a step that made no layer.
    pub size: u64,
    pub comment: String,
    pub empty_layer: bool,
}

/// What a prune removed and how much space it gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: Vec<Removed>,
    pub reclaimed: u64,
}

/// The archive format `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveFormat {
    /// docker-archive (docker 25+ layout: also an OCI layout).
    #[default]
    DockerArchive,
    OciArchive,
}

/// An image `load` brought in: its name if the archive had one, else its ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadedImage {
    Named(String),
    Id(Digest),
}

/// Where `load` and `import` read from.
#[derive(Debug, Clone)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

/// `import` options.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    pub reference: Option<String>,
    /// Dockerfile instructions (`CMD ["sh"]`, `ENV A=1`...) applied to the config.
    pub changes: Vec<String>,
    pub message: Option<String>,
}

/// 64 hex digits from the kernel's randomness (`/dev/urandom`): a new container's ID, an
/// anonymous volume's name.
pub(crate) fn random_hex_id() -> io::Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Reads from `inner`, appending everything read to `copy` (a blob being written while a
/// layer is ingested from the same bytes). It remembers which side failed, so a caller can
/// tell the source (network, archive) from the store (a full disk) in what it keeps.
pub(crate) struct Tee<R, W> {
    pub(crate) inner: R,
    pub(crate) copy: W,
    pub(crate) read_failed: bool,
    pub(crate) write_failed: bool,
}

impl<R: Read, W: Write> Tee<R, W> {
    pub(crate) fn new(inner: R, copy: W) -> Tee<R, W> {
        Tee {
            inner,
            copy,
            read_failed: false,
            write_failed: false,
        }
    }
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|_| self.read_failed = true)?;
        self.copy
            .write_all(&buf[..n])
            .inspect_err(|_| self.write_failed = true)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tee_tests {
    use super::Tee;
    use std::io::{self, Read, Write};

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Cut;
    impl Read for Cut {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::ConnectionReset))
        }
    }

    #[test]
    fn copies_what_it_reads_and_names_the_side_that_failed() {
        let mut copy = Vec::new();
        let mut t = Tee::new(&b"layer bytes"[..], &mut copy);
        let mut out = Vec::new();
        t.read_to_end(&mut out).unwrap();
        assert!(!t.read_failed && !t.write_failed);
        assert_eq!(
            (out.as_slice(), copy.as_slice()),
            (&b"layer bytes"[..], &b"layer bytes"[..])
        );

        // a full disk is the store's failure, not the source's: a pull keeps its partial
        let mut t = Tee::new(&b"x"[..], Full);
        assert!(t.read(&mut [0; 8]).is_err());
        assert!(t.write_failed && !t.read_failed);

        let mut t = Tee::new(Cut, Vec::new());
        assert!(t.read(&mut [0; 8]).is_err());
        assert!(t.read_failed && !t.write_failed);
    }
}
