//! `build`: wires the executor (`build`) to the store, pull and the layer/image writers.
//! The executor calls back through [`crate::build::Backend`], implemented here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Engine, EngineError, commit};
use crate::build::{self, Backend, BuildError, Built, NewLayer, Progress, Request};
use crate::digest::Digest;
use crate::image::{ImageConfig, ManifestFormat, Platform, uncompressed_layer};

use crate::overlay;
use crate::reference::Reference;
use crate::store::{Store, StoreError, WriteGuard};

/// `build` options as typed (the CLI reads the Dockerfile and parses the flags).
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub context: PathBuf,
    /// `-f FILE` (relative to the current directory, as docker), `-` for stdin's bytes
    /// (given in `stdin_dockerfile`); `None`: `CONTEXT/Dockerfile`.
    pub file: Option<PathBuf>,
    pub stdin_dockerfile: Option<Vec<u8>>,
    pub tags: Vec<String>,
    pub build_args: Vec<String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub labels: Vec<String>,
    pub network: Option<String>,
    pub quiet: bool,
    /// `--compression gzip|zstd`: how push compresses the new image's layers.
    pub compression: Option<String>,
    /// `--secret id=ID[,src=FILE|env=VAR]`, checked by the build.
    pub secrets: Vec<String>,
}

impl Engine {
    /// `build`: the image the Dockerfile describes; tags move only when every step
    /// succeeded.
    pub fn build(
        &self,
        req: &BuildRequest,
        progress: &mut dyn Progress,
    ) -> Result<Built, EngineError> {
        let dockerfile_path = match (&req.stdin_dockerfile, &req.file) {
            (Some(_), _) => None,
            (None, Some(f)) => Some(f.clone()),
            (None, None) => Some(req.context.join("Dockerfile")),
        };
        let (dockerfile, name) = match (&req.stdin_dockerfile, &req.file) {
            (Some(bytes), _) => (bytes.clone(), "Dockerfile".to_owned()),
            (None, file) => {
                let path = file
                    .clone()
                    .unwrap_or_else(|| req.context.join("Dockerfile"));
                let bytes = std::fs::read(&path).map_err(|source| {
                    EngineError::Build(BuildError::ReadDockerfile {
                        path: path.clone(),
                        source,
                    })
                })?;
                let name = file.as_ref().map_or("Dockerfile".to_owned(), |f| {
                    f.file_name().map_or(f.display().to_string(), |n| {
                        n.to_string_lossy().into_owned()
                    })
                });
                (bytes, name)
            }
        };
        let mut tags = Vec::new();
        for t in &req.tags {
            let r = Reference::parse(t).map_err(|e| EngineError::BadReference {
                word: t.clone(),
                why: e.to_string(),
            })?;
            tags.push(r.to_string());
        }
        let pairs =
            |list: &[String], what: &str| -> Result<BTreeMap<String, String>, EngineError> {
                list.iter()
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                        // `--build-arg K` takes K from the environment, as docker
                        None if what == "build-arg" && !kv.is_empty() => {
                            Ok((kv.clone(), std::env::var(kv).unwrap_or_default()))
                        }
                        _ => Err(EngineError::BadBuildFlag(format!(
                            "invalid --{what} {kv:?}: use KEY=VALUE"
                        ))),
                    })
                    .collect()
            };
        let network = match &req.network {
            Some(n) => n.parse().map_err(EngineError::BadBuildFlag)?,
            None => crate::runtime::Network::default(),
        };
        let request = Request {
            dockerfile,
            dockerfile_name: name,
            context: req.context.clone(),
            dockerfile_path,
            tags,
            build_args: pairs(&req.build_args, "build-arg")?,
            target: req.target.clone(),
            no_cache: req.no_cache,
            labels: pairs(&req.labels, "label")?,
            network,
            quiet: req.quiet,
            secrets: req.secrets.clone(),
        };
        // new layers and configs exist before any image names them: the cache does,
        // step by step, and GC must not sweep them in between
        let writing = self.store.writing()?;
        let backend = StoreBackend {
            store: &self.store,
            writing: &writing,
            compression: match req.compression.as_deref() {
                None | Some("gzip") => None,
                Some("zstd") => Some("zstd".to_owned()),
                Some(other) => {
                    return Err(EngineError::BadBuildFlag(format!(
                        "unknown --compression {other:?}: use gzip or zstd"
                    )));
                }
            },
        };
        Ok(build::build(&self.store, &backend, &request, progress)?)
    }
}

struct StoreBackend<'a> {
    store: &'a Store,
    writing: &'a WriteGuard,
    /// `--compression` other than the default gzip, recorded for push.
    compression: Option<String>,
}

impl Backend for StoreBackend<'_> {
    fn base(&self, name: &str, platform: Option<&str>) -> Result<(Digest, ImageConfig), String> {
        let found = match self.store.resolve(name) {
            Ok(f) => f,
            Err(StoreError::NoSuchImage(_)) => {
                let reference = Reference::parse(name).map_err(|e| e.to_string())?;
                let opts = super::pull::PullOptions {
                    platform: platform
                        .map(|p| Platform::parse(p).map_err(|e| e.to_string()))
                        .transpose()?,
                    ..Default::default()
                };
                let cancel = std::sync::atomic::AtomicBool::new(false);
                super::pull::pull(self.store, &reference, &opts, &(), &cancel)
                    .map_err(|e| e.to_string())?;
                self.store.resolve(name).map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        let bytes = self.store.read_blob(&found.id).map_err(|e| e.to_string())?;
        let config = ImageConfig::parse(&bytes).map_err(|e| e.to_string())?;
        Ok((found.id, config))
    }

    fn layer_from_upper(&self, opts: &overlay::Options) -> Result<Option<NewLayer>, String> {
        let owners =
            commit::upper_owners(&opts.upper, &opts.side_table).map_err(|e| e.to_string())?;
        commit::layer_from_upper(self.store, self.writing, &opts.upper, &owners)
            .map(|l| l.map(new_layer))
            .map_err(|e| e.to_string())
    }

    fn layer_from_tar(&self, tar: &mut dyn std::io::Read) -> Result<NewLayer, String> {
        commit::layer_from_tar(self.store, self.writing, tar, "the COPY layer")
            .map(new_layer)
            .map_err(|e| e.to_string())
    }

    fn write_image(&self, config: &ImageConfig, tags: &[String]) -> Result<Digest, String> {
        let err = |e: StoreError| e.to_string();
        let mut layers = Vec::new();
        for d in &config.rootfs.diff_ids {
            self.store.link_layer_blob(d).map_err(err)?;
            let size = self.store.layer_size(d).map_err(err)?;
            layers.push(uncompressed_layer(ManifestFormat::Oci, d, size));
        }
        let tags = tags
            .iter()
            .map(|t| Reference::parse(t).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut annotations = BTreeMap::new();
        if let Some(c) = &self.compression {
            annotations.insert(super::push::COMPRESSION_ANNOTATION.to_owned(), c.clone());
        }
        commit::record_image(self.store, config, &layers, &tags, &annotations)
            .map_err(|e| e.to_string())
    }
}

fn new_layer(l: commit::NewLayer) -> NewLayer {
    NewLayer {
        diff_id: l.diff_id,
        size: l.size,
    }
}
