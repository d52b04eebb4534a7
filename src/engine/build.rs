//! `build`: wires the executor (`build`) to the store, pull and the layer/image writers.
//! The executor calls back through [`crate::build::Backend`], implemented here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Engine, EngineError};
use crate::build::{self, Backend, BuildError, Built, NewLayer, Progress, Request};
use crate::digest::Digest;
use crate::image::{ImageConfig, ManifestFormat, Platform, build_image, uncompressed_layer};
use crate::layer::{self, diff::Owner};
use crate::overlay::{self, mapping::Ownership};
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
        };
        // new layers and configs exist before any image names them: the cache does,
        // step by step, and GC must not sweep them in between
        let writing = self.store.writing()?;
        let backend = StoreBackend {
            store: &self.store,
            _writing: &writing,
        };
        Ok(build::build(&self.store, &backend, &request, progress)?)
    }
}

struct StoreBackend<'a> {
    store: &'a Store,
    _writing: &'a WriteGuard,
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
        layer_from_upper(self.store, &opts.upper, &opts.side_table).map_err(|e| e.to_string())
    }

    fn layer_from_tar(&self, tar: &mut dyn std::io::Read) -> Result<NewLayer, String> {
        layer_from_tar(self.store, tar).map_err(|e| e.to_string())
    }

    fn write_image(&self, config: &ImageConfig, tags: &[String]) -> Result<Digest, String> {
        write_image(self.store, config, tags).map_err(|e| e.to_string())
    }
}

fn layer_from_upper(
    store: &Store,
    upper: &Path,
    side_table: &Path,
) -> Result<Option<NewLayer>, EngineError> {
    let empty = std::fs::read_dir(upper)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    if empty {
        return Ok(None);
    }
    let owners = Ownership::open(upper, side_table.to_path_buf())
        .map_err(|e| EngineError::Build(BuildError::Backend(e.to_string())))?;
    let owner = |rel: &[u8], meta: &std::fs::Metadata| -> Option<Owner> {
        use std::os::unix::fs::MetadataExt;
        owners
            .get(
                &upper.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(rel)),
                rel,
                meta.mode(),
            )
            .map(|o| Owner {
                uid: o.uid,
                gid: o.gid,
                mode: o.mode,
                rdev: u64::from(o.rdev),
                xattrs: Vec::new(),
            })
    };
    let tmp = store.temp_file("build-layer")?;
    let werr = |e: std::io::Error| EngineError::Build(BuildError::Backend(e.to_string()));
    layer::diff::diff(upper, &owner, std::io::BufWriter::new(tmp.file()))
        .map_err(|e| EngineError::Build(BuildError::Backend(e.to_string())))?;
    let mut f = std::fs::File::open(tmp.path()).map_err(werr)?;
    layer_from_tar(store, &mut f).map(Some)
}

fn layer_from_tar(store: &Store, tar: &mut dyn std::io::Read) -> Result<NewLayer, EngineError> {
    let stage = store.stage_layer()?;
    let (t, idx) = stage.create_files()?;
    let ingested = layer::ingest(tar, std::io::BufWriter::with_capacity(256 << 10, t), idx)
        .map_err(|e| EngineError::Build(BuildError::Backend(e.to_string())))?;
    let diff_id = ingested.diff_id.clone();
    stage.commit(&diff_id)?;
    store.link_layer_blob(&diff_id)?;
    Ok(NewLayer {
        diff_id,
        size: ingested.tar_size,
    })
}

fn write_image(
    store: &Store,
    config: &ImageConfig,
    tags: &[String],
) -> Result<Digest, EngineError> {
    let mut layers = Vec::new();
    for d in &config.rootfs.diff_ids {
        store.link_layer_blob(d)?;
        layers.push(uncompressed_layer(
            ManifestFormat::Oci,
            d,
            store.layer_size(d)?,
        ));
    }
    let built = build_image(config, &layers, ManifestFormat::Oci)
        .map_err(|e| EngineError::Build(BuildError::Backend(e.to_string())))?;
    store.put_blob(&built.config_json)?;
    store.put_blob(&built.manifest_json)?;
    let id = built.config.digest.clone();
    store.update(|db| {
        db.add_image(&built.manifest.digest, &id, None);
        for t in tags {
            db.tag(t, &built.manifest.digest);
        }
        Ok::<_, StoreError>(())
    })?;
    Ok(id)
}
