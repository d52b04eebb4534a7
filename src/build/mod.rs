//! The build executor: a parsed Dockerfile becomes an image, step by step, with a cache.
//!
//! It owns the order of stages (the target and the stages it needs, others skipped),
//! the config each instruction changes (with an empty-layer history entry, as docker),
//! RUN (a container of the current state on the FUSE overlay with a fresh upper dir,
//! which becomes the layer), the cache ([`cache`]), and the events the CLI prints
//! ([`output`]). It never parses (the `dockerfile` module does), never prints, and never
//! reaches into the engine: pulling a base and turning an upper dir or a tar into a
//! stored layer and a config into a tagged image come through [`Backend`], which the
//! engine implements (so import, commit and build share one path).
//!
//! The context side (the context dir, `.dockerignore`, COPY/ADD planning and the layers
//! they write) is in `context`, `ignore`, `glob`, `copy`, `archive`, `imagefs`, `view`,
//! `memo`; what a RUN mounts (`RUN --mount`, `--secret`) is in `runmount`. A base image's
//! ONBUILD triggers run right after its FROM, and the child's config drops them.
//!
//! Invariant: nothing a build makes is named before the whole build succeeded: layers
//! and configs are content-addressed and kept alive by the cache, tags move only at the
//! end, so a failing step leaves every tag where it was.

pub mod archive;
pub mod cache;
pub mod context;
pub mod copy;
pub mod exec;
pub mod glob;
pub mod ignore;
pub mod imagefs;
pub mod memo;
pub mod output;
pub mod runmount;
pub mod view;

#[cfg(test)]
mod context_tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::digest::{DiffId, Digest};
use crate::image::ImageConfig;
use crate::runtime::{Network, RuntimeError};
use crate::store::StoreError;

pub use exec::build;
pub use output::{Progress, StepInfo};

/// What `camada build` was asked.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The Dockerfile's bytes (read from `-f FILE`, `-f -` or `CONTEXT/Dockerfile`).
    pub dockerfile: Vec<u8>,
    /// How errors name it (`Dockerfile`, or the `-f` argument).
    pub dockerfile_name: String,
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile's host path (its `NAME.dockerignore` beside it wins), `None` from
    /// stdin.
    pub dockerfile_path: Option<PathBuf>,
    /// `-t`, each a full reference.
    pub tags: Vec<String>,
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// `--label K=V`, applied to the final image.
    pub labels: BTreeMap<String, String>,
    /// The network RUN gets (`run`'s default unless `--network`).
    pub network: Network,
    /// Capture RUN output instead of streaming it (shown only when a step fails).
    pub quiet: bool,
    /// `--secret id=ID[,src=FILE|env=VAR]`, as given: what `RUN --mount=type=secret` sees.
    pub secrets: Vec<String>,
}

/// A finished build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The image ID (config digest).
    pub id: Digest,
    /// The names now pointing at it, as given.
    pub tags: Vec<String>,
}

/// A layer a step made, stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayer {
    pub diff_id: DiffId,
    /// Bytes of the uncompressed tar.
    pub size: u64,
}

/// What the executor needs from the engine. Errors are the engine's, as their messages.
/// `Sync`: a COPY layer is stored on a second thread while the first writes it.
pub trait Backend: Sync {
    /// The image `name` (`busybox`, `sha256:...`, an ID prefix), pulled when not stored:
    /// its ID and config.
    fn base(&self, name: &str, platform: Option<&str>) -> Result<(Digest, ImageConfig), String>;
    /// The upper dir of a RUN (ownership from the overlay's records) as a stored layer;
    /// `None` when the step changed nothing.
    fn layer_from_upper(
        &self,
        overlay: &crate::overlay::Options,
    ) -> Result<Option<NewLayer>, String>;
    /// An uncompressed layer tar as a stored layer.
    fn layer_from_tar(&self, tar: &mut dyn std::io::Read) -> Result<NewLayer, String>;
    /// Stores `config` (its layers stored) as an image and points `tags` at it.
    fn write_image(&self, config: &ImageConfig, tags: &[String]) -> Result<Digest, String>;
}

/// Why a build failed. One line, cause inline; Dockerfile errors name file and line.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Parse(#[from] crate::dockerfile::Error),
    #[error("failed to read the Dockerfile {path}: {source}")]
    ReadDockerfile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("target stage {0:?} could not be found")]
    NoTarget(String),
    #[error("{file}:{line}: {what}: {why}")]
    Step {
        file: String,
        line: usize,
        what: String,
        why: String,
    },
    #[error("{file}:{line}: {source}")]
    Copy {
        file: String,
        line: usize,
        source: context::ContextError,
    },
    #[error("{0}")]
    Context(#[from] context::ContextError),
    #[error("{0}")]
    Secret(#[from] runmount::RunMountError),
    #[error("RUN {command} exited with code {code}")]
    RunFailed { command: String, code: i32 },
    #[error("RUN {command}: {source}")]
    Run {
        command: String,
        source: RuntimeError,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("writing the build cache: {0}")]
    CacheWrite(String),
    #[error("{0}")]
    Backend(String),
}
