//! `push`: an image of the store to a registry: its blobs exactly as stored (so their
//! digests never change), each skipped when the registry has it, mounted from another
//! repository of the same registry when the store knows one holds it, else uploaded;
//! then its manifest, unless the registry already has that very manifest under the tag.
//!
//! It wires `store` (the bytes, and which repositories hold what) to `registry`; it
//! prints nothing. Invariant: the manifest is sent only after every blob it names is in
//! the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use crate::digest::Digest;
use crate::image::{self, Manifest, media_type};
use crate::reference::Reference;
use crate::registry::{self, BlobSource, Progress, PushBlob, PushOutcome, RegistryError, Scope};
use crate::store::{Store, StoreError};

pub use crate::registry::PushOutcome as Outcome;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("image {reference}: {source}")]
    Image {
        reference: String,
        source: image::ImageError,
    },
    #[error("image {reference} is a multi-platform index; camada pushes single images")]
    Index { reference: String },
    #[error("image {reference}: compressing a layer for the registry: {source}")]
    Compress {
        reference: String,
        source: io::Error,
    },
    #[error("image {reference}: blob {digest} is missing from the store; pull the image again")]
    MissingBlob { reference: String, digest: Digest },
}

/// What `push` did: docker prints `TAG: digest: sha256:... size: N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The tag (or digest) pushed to.
    pub tag: String,
    pub digest: Digest,
    pub size: u64,
    /// Per blob (layers bottom first, then the config): existed, mounted or uploaded.
    pub blobs: Vec<(Digest, PushOutcome)>,
}

/// Pushes the stored image `reference` names to its registry.
pub fn push(
    store: &Store,
    reference: &Reference,
    tls_verify: bool,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Pushed, PushError> {
    let display = reference.familiar();
    let resolved = store.resolve(&reference.to_string())?;
    let bytes = store.read_blob(&resolved.manifest)?;
    let img_err = |source| PushError::Image {
        reference: display.clone(),
        source,
    };
    let manifest = match image::parse_manifest(&bytes, None).map_err(img_err)? {
        Manifest::Image(m) => m,
        Manifest::Index(_) => return Err(PushError::Index { reference: display }),
    };
    // layers stored uncompressed (import, commit, build) go out compressed, as docker's
    // push sends them: gzip, or zstd when `build --compression zstd` said so
    let _writing = store.writing()?;
    let (manifest, bytes) = compress_layers(store, manifest, bytes).map_err(|e| match e {
        Compress::Store(e) => PushError::Store(e),
        Compress::Image(source) => PushError::Image {
            reference: display.clone(),
            source,
        },
        Compress::Io(source) => PushError::Compress {
            reference: display.clone(),
            source,
        },
    })?;
    let mut blobs: Vec<(Digest, u64)> = manifest
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size))
        .collect();
    blobs.push((manifest.config.digest.clone(), manifest.config.size));
    for (d, _) in &blobs {
        if !store.has_blob(d) {
            return Err(PushError::MissingBlob {
                reference: display,
                digest: d.clone(),
            });
        }
    }
    let sources = mount_sources(store, reference)?;
    let push_list: Vec<PushBlob> = blobs
        .iter()
        .map(|(d, size)| PushBlob {
            digest: d.clone(),
            size: *size,
            mount_from: sources
                .get(d)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
        })
        .collect();
    let mut scopes = vec![Scope::Push(reference.repository.clone())];
    let from: BTreeSet<&String> = push_list.iter().flat_map(|b| &b.mount_from).collect();
    scopes.extend(from.into_iter().map(|r| Scope::Pull(r.clone())));
    let client = super::login::connect(store.paths(), &reference.registry, tls_verify, &scopes)?;
    let repo = &reference.repository;
    let layers_only = LayersOnly {
        config: &manifest.config.digest,
        inner: progress,
    };
    let outcomes = registry::push_blobs(
        &client,
        repo,
        &push_list,
        &StoreSource(store),
        threads,
        &layers_only,
    )?;
    let tag = reference.manifest_reference();
    let digest = Digest::of(&bytes);
    if client.manifest_digest(repo, &tag)?.as_ref() != Some(&digest) {
        let mt = manifest.media_type.clone().unwrap_or_else(|| {
            if manifest.config.media_type == media_type::DOCKER_CONFIG {
                media_type::DOCKER_MANIFEST.to_owned()
            } else {
                media_type::OCI_MANIFEST.to_owned()
            }
        });
        client.put_manifest(repo, &tag, &mt, &bytes)?;
    }
    let repo_digest = format!("{}@{digest}", reference.name());
    store.update(|db| {
        db.add_image(&resolved.manifest, &resolved.id, Some(&repo_digest));
        Ok::<(), StoreError>(())
    })?;
    Ok(Pushed {
        tag,
        digest,
        size: bytes.len() as u64,
        blobs: blobs.into_iter().map(|(d, _)| d).zip(outcomes).collect(),
    })
}

/// The manifest annotation `build --compression` leaves: how push compresses the image's
/// uncompressed layers (`gzip`, the default, or `zstd`).
pub const COMPRESSION_ANNOTATION: &str = "io.camada.push.compression";

enum Compress {
    Store(StoreError),
    Image(image::ImageError),
    Io(io::Error),
}

/// The manifest to send: each uncompressed layer replaced by a compressed blob (stored, so
/// the upload reads it like any blob; deterministic, so pushing again sends the same
/// bytes). A manifest with no uncompressed layer is sent as stored.
fn compress_layers(
    store: &Store,
    mut m: image::ImageManifest,
    bytes: Vec<u8>,
) -> Result<(image::ImageManifest, Vec<u8>), Compress> {
    use image::{Compression, Descriptor, ManifestFormat};
    let want = match m
        .annotations
        .get(COMPRESSION_ANNOTATION)
        .map(String::as_str)
    {
        Some("zstd") => Compression::Zstd,
        _ => Compression::Gzip,
    };
    let format = if m.config.media_type == media_type::DOCKER_CONFIG {
        ManifestFormat::Docker
    } else {
        ManifestFormat::Oci
    };
    let mut changed = false;
    for l in &mut m.layers {
        if l.layer_compression().map_err(Compress::Image)? != Compression::None {
            continue;
        }
        let mut src = store.open_blob(&l.digest).map_err(Compress::Store)?;
        let mut w = store.blob_writer(None, None).map_err(Compress::Store)?;
        match want {
            Compression::Zstd => {
                zstd::stream::copy_encode(&mut src, &mut w, 3).map_err(Compress::Io)?;
            }
            _ => {
                let mut gz = flate2::write::GzEncoder::new(&mut w, flate2::Compression::default());
                io::copy(&mut src, &mut gz).map_err(Compress::Io)?;
                gz.finish().map_err(Compress::Io)?;
            }
        }
        let size = w.written();
        let digest = w.commit().map_err(Compress::Store)?;
        *l = Descriptor::new(format.layer_media_type(want), digest, size);
        changed = true;
    }
    if !changed {
        return Ok((m, bytes));
    }
    let bytes = m.to_json().map_err(Compress::Image)?;
    Ok((m, bytes))
}

/// Blob -> repositories of the same registry that hold it, from the repo digests of
/// stored images (an image pulled from or pushed to `R@digest` has all its blobs in R).
fn mount_sources(
    store: &Store,
    reference: &Reference,
) -> Result<BTreeMap<Digest, BTreeSet<String>>, PushError> {
    let db = store.images()?;
    let prefix = format!("{}/", reference.registry);
    let mut out: BTreeMap<Digest, BTreeSet<String>> = BTreeMap::new();
    for (manifest, rec) in &db.images {
        let repos: Vec<String> = rec
            .repo_digests
            .iter()
            .filter_map(|rd| rd.strip_prefix(&prefix))
            .filter_map(|rest| rest.split_once('@').map(|(r, _)| r.to_owned()))
            .filter(|r| *r != reference.repository)
            .collect();
        if repos.is_empty() {
            continue;
        }
        let Ok(bytes) = store.read_blob(manifest) else {
            continue;
        };
        let Ok(Manifest::Image(m)) = image::parse_manifest(&bytes, None) else {
            continue;
        };
        for d in m.layers.iter().map(|l| &l.digest).chain([&m.config.digest]) {
            out.entry(d.clone())
                .or_default()
                .extend(repos.iter().cloned());
        }
    }
    Ok(out)
}

/// docker shows layers only: the config's events are dropped.
struct LayersOnly<'a> {
    config: &'a Digest,
    inner: &'a dyn Progress,
}

impl Progress for LayersOnly<'_> {
    fn layer(&self, d: &Digest, e: registry::LayerEvent) {
        if d != self.config {
            self.inner.layer(d, e);
        }
    }
}

struct StoreSource<'a>(&'a Store);

impl BlobSource for StoreSource<'_> {
    fn open(&self, digest: &Digest) -> io::Result<Box<dyn Read + Send>> {
        let f = self.0.open_blob(digest).map_err(io::Error::other)?;
        Ok(Box::new(io::BufReader::with_capacity(1 << 20, f)))
    }
}
