//! `pull`: a reference's manifest (a platform chosen from an index), its config, then its
//! layers in parallel, each streamed once from the network through `layer::ingest` into
//! the store while its compressed bytes are appended to the kept partial blob, so an
//! interrupted pull resumes where it stopped.
//!
//! It wires `registry` (the wire) to `store` (the disk) and `image` (what the bytes
//! mean); it prints nothing. Invariant: an image is recorded in `images.json` only after
//! its manifest, config and every layer (blob, tar and index) are stored and verified:
//! compressed digest and size against the manifest, diff_id against the config.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use super::Tee;
use crate::digest::{DiffId, Digest};
use crate::image::{self, ImageConfig, Manifest, Platform};
use crate::paths::Paths;
use crate::reference::Reference;
use crate::registry::{self, BlobRef, BlobSink, Progress, RegistryError, Scope};
use crate::store::{PartialBlob, Store, StoreError};

pub use crate::registry::{LayerEvent, Progress as PullProgress};

/// Default number of layers transferred at once.
pub const DEFAULT_THREADS: usize = 3;

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{reference}: {source}")]
    Image {
        reference: String,
        source: image::ImageError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{reference}: an index entry is itself an index; camada reads one level")]
    NestedIndex { reference: String },
    #[error("{reference}: the manifest lists {layers} layers but the config {diff_ids} diff_ids")]
    LayerCount {
        reference: String,
        layers: usize,
        diff_ids: usize,
    },
}

/// What `pull` was asked.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub platform: Option<Platform>,
    pub tls_verify: bool,
    pub threads: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            tls_verify: true,
            threads: DEFAULT_THREADS,
        }
    }
}

/// What `pull` did: docker prints `Digest: {digest}` and `Status: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The digest the registry names the reference by (the index's, for a multi-platform
    /// image), as `docker pull` prints it.
    pub digest: Digest,
    /// The platform manifest stored.
    pub manifest: Digest,
    /// The image ID (config digest).
    pub id: Digest,
    /// Nothing new: every blob was already here and the tag already pointed at it.
    pub up_to_date: bool,
    /// Layer blobs, bottom first (what the progress lines were about).
    pub layers: Vec<Digest>,
}

/// Pulls `reference` into `store`. `progress` gets per-layer events (`Waiting`, then
/// `AlreadyExists` or `Downloading`...`Complete`); `cancel` stops it early (Ctrl-C),
/// keeping partial blobs for the next pull.
pub fn pull(
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Pulled, PullError> {
    pull_with(store, store.paths(), reference, opts, progress, cancel)
}

fn pull_with(
    store: &Store,
    paths: &Paths,
    reference: &Reference,
    opts: &PullOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Pulled, PullError> {
    // Blobs and layers land before the image record does: a concurrent rmi or prune must
    // not sweep them in between (GC skips its sweep while any writer holds this).
    let _writing = store.writing()?;
    let display = reference.familiar();
    let img_err = |source| PullError::Image {
        reference: display.clone(),
        source,
    };
    let repo = reference.repository.clone();
    let client = super::login::connect(
        paths,
        &reference.registry,
        opts.tls_verify,
        &[Scope::Pull(repo.clone())],
    )?;
    let top = client.get_manifest(&repo, &reference.manifest_reference(), &display)?;
    let top_digest = top.digest.clone();
    let mut index_bytes = None;
    let (manifest_bytes, manifest) =
        match image::parse_manifest(&top.bytes, top.media_type.as_deref()).map_err(img_err)? {
            Manifest::Image(m) => (top.bytes, m),
            Manifest::Index(index) => {
                index_bytes = Some(top.bytes.clone());
                let want = opts.platform.clone().unwrap_or_else(Platform::host);
                let entry = index.select(&want).map_err(img_err)?;
                let sub = client.get_manifest(&repo, &entry.digest.to_string(), &display)?;
                match image::parse_manifest(&sub.bytes, sub.media_type.as_deref())
                    .map_err(img_err)?
                {
                    Manifest::Image(m) => (sub.bytes, m),
                    Manifest::Index(_) => {
                        return Err(PullError::NestedIndex { reference: display });
                    }
                }
            }
        };
    manifest.layer_compressions().map_err(img_err)?;
    let manifest_digest = Digest::of(&manifest_bytes);

    // the config first: it names the diff_ids the layers must have
    let config_ref = BlobRef {
        digest: manifest.config.digest.clone(),
        size: manifest.config.size,
        media_type: manifest.config.media_type.clone(),
    };
    let had_config = store.has_blob(&config_ref.digest);
    let plain = StoreSink::new(store, HashMap::new());
    registry::pull_blobs(
        &client,
        &repo,
        std::slice::from_ref(&config_ref),
        &plain,
        1,
        &(),
        cancel,
    )?;
    let config = ImageConfig::parse(&store.read_blob(&config_ref.digest)?).map_err(img_err)?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(PullError::LayerCount {
            reference: display,
            layers: manifest.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let layers: Vec<BlobRef> = manifest
        .layers
        .iter()
        .map(|l| BlobRef {
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
        })
        .collect();
    let expect: HashMap<Digest, DiffId> = layers
        .iter()
        .zip(diff_ids)
        .map(|(l, d)| (l.digest.clone(), d.clone()))
        .collect();
    let sink = StoreSink::new(store, expect);
    let all_there = had_config && layers.iter().all(|l| sink.has(l));
    registry::pull_blobs(
        &client,
        &repo,
        &layers,
        &sink,
        opts.threads,
        progress,
        cancel,
    )?;

    if let Some(b) = &index_bytes {
        store.put_blob(b)?;
    }
    store.put_blob(&manifest_bytes)?;
    let repo_digest = format!("{}@{top_digest}", reference.name());
    let tag = reference.digest.is_none().then(|| reference.to_string());
    let id = config_ref.digest.clone();
    let retagged = store.update(|db| {
        let known = db.images.contains_key(&manifest_digest)
            && db.images[&manifest_digest]
                .repo_digests
                .contains(&repo_digest);
        db.add_image(&manifest_digest, &id, Some(&repo_digest));
        let moved = match &tag {
            Some(t) => db.tag(t, &manifest_digest).as_ref() != Some(&manifest_digest),
            None => false,
        };
        Ok::<bool, StoreError>(moved || !known)
    })?;
    Ok(Pulled {
        digest: top_digest,
        manifest: manifest_digest,
        id,
        up_to_date: all_there && !retagged,
        layers: layers.into_iter().map(|l| l.digest).collect(),
    })
}

/// The store as a pull's sink: a layer's bytes go through `layer::ingest` into a staged
/// layer while being appended to the blob's partial file; other blobs (the config) are
/// only appended and verified.
struct StoreSink<'a> {
    store: &'a Store,
    /// Layer blob -> the diff_id the config promises.
    expect: HashMap<Digest, DiffId>,
    /// Partials opened by `kept`, taken by `receive` (one lock holder per blob).
    open: Mutex<HashMap<Digest, PartialBlob>>,
}

impl<'a> StoreSink<'a> {
    fn new(store: &'a Store, expect: HashMap<Digest, DiffId>) -> Self {
        StoreSink {
            store,
            expect,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn take_partial(&self, d: &Digest) -> Result<PartialBlob, StoreError> {
        let kept = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(d);
        match kept {
            Some(p) => Ok(p),
            None => self.store.partial(d),
        }
    }
}

type SinkResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

impl BlobSink for StoreSink<'_> {
    fn has(&self, blob: &BlobRef) -> bool {
        self.store.has_blob(&blob.digest)
            && self
                .expect
                .get(&blob.digest)
                .is_none_or(|d| self.store.has_layer(d))
    }

    fn kept(&self, blob: &BlobRef) -> u64 {
        match self.store.partial(&blob.digest) {
            Ok(p) => {
                let k = p.kept();
                self.open
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(blob.digest.clone(), p);
                k
            }
            Err(_) => 0,
        }
    }

    fn receive(&self, blob: &BlobRef, offset: u64, body: &mut dyn Read) -> SinkResult {
        let mut part = self.take_partial(&blob.digest)?;
        if offset == 0 && part.kept() > 0 {
            part.restart()?;
        }
        if part.kept() != offset {
            // another command took the partial meanwhile: start over next attempt
            return Err(format!(
                "kept {} bytes but the registry resumed at {offset}",
                part.kept()
            )
            .into());
        }
        let Some(expected) = self.expect.get(&blob.digest) else {
            let mut tee = Tee::new(body, &mut part);
            io::copy(&mut tee, &mut io::sink())?;
            part.commit(Some(blob.size))?;
            return Ok(());
        };
        let prefix: Box<dyn Read> = if offset > 0 {
            let path = self.store.paths().partial_blob(&blob.digest);
            Box::new(File::open(&path)?.take(offset))
        } else {
            Box::new(io::empty())
        };
        let stage = self.store.stage_layer()?;
        let (tar, idx) = stage.create_files()?;
        let mut tee = Tee::new(body, &mut part);
        let result = crate::layer::ingest(
            prefix.chain(&mut tee),
            BufWriter::with_capacity(1 << 20, tar),
            BufWriter::new(idx),
        );
        let (read_failed, write_failed) = (tee.read_failed, tee.write_failed);
        let ingested = match result {
            Ok(i) => i,
            Err(e) => {
                if !read_failed && !write_failed {
                    // neither the network nor the disk: the bytes themselves are bad, so
                    // what is kept cannot be trusted to resume from (a full disk keeps them)
                    part.restart()?;
                }
                return Err(e.into());
            }
        };
        if ingested.compressed != blob.digest || ingested.compressed_size != blob.size {
            // commit verifies again, and drops the kept bytes as wrong
            part.commit(Some(blob.size))?;
            return Err(format!(
                "digest mismatch: got {} ({} bytes)",
                ingested.compressed, ingested.compressed_size
            )
            .into());
        }
        if ingested.diff_id != *expected {
            return Err(format!(
                "diff_id mismatch: the config says {expected}, the layer is {}",
                ingested.diff_id
            )
            .into());
        }
        part.commit(Some(blob.size))?;
        stage.commit(&ingested.diff_id)?;
        Ok(())
    }
}
