//! `save`, `load` and `import`: images to and from archive files.
//!
//! `save` writes docker 25's layout, which is at once a docker-archive (`manifest.json`,
//! `repositories`) and an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/`), with
//! uncompressed layers; `--format oci-archive` writes an OCI layout of the blobs exactly as
//! stored. `load` reads both docker-archive layouts (old `<id>/layer.tar` and new) and OCI
//! archives, the outer file plain, gzip or zstd, layers plain, gzip or zstd. `import` turns
//! one rootfs tarball into a one-layer image.
//!
//! The invariant: **a load or import is all or nothing.** Every layer is staged in the
//! store's `tmp/` and every digest (config, blobs, diff_ids) verified before anything is
//! committed; any error drops the staging, so nothing of a bad archive stays. The commit
//! holds [`Store::writing`](crate::store::Store::writing) so a concurrent GC never sweeps what is being recorded. This
//! module never prints; the CLI turns its results into docker's lines.

mod import;
mod load;
mod save;

pub use import::{apply_change, import};
pub use load::load;
pub use save::save;

use std::io;

use crate::digest::{DiffId, Digest};
use crate::image::ImageError;
use crate::layer::LayerError;
use crate::reference::ReferenceError;
use crate::store::StoreError;

/// Why save, load or import failed. Each message names the archive member or image.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("opening {path}: {source}")]
    OpenInput {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error("reading the archive: {0}")]
    ReadInput(io::Error),
    #[error("decompressing the archive ({compression}): {source}")]
    Decompress {
        compression: crate::image::Compression,
        source: io::Error,
    },
    #[error("the archive is empty")]
    Empty,
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    #[error(
        "truncated archive: {member:?} needs bytes up to {needed} but the archive ends at byte {len}"
    )]
    Truncated {
        member: String,
        needed: u64,
        len: u64,
    },
    #[error(
        "not an image archive: no manifest.json (docker-archive) or index.json (OCI archive) in it"
    )]
    NotAnArchive,
    #[error("archive member {0:?} is missing")]
    MissingMember(String),
    #[error("archive member {member:?} is {size} bytes, too big for a JSON file")]
    TooBig { member: String, size: u64 },
    #[error("archive member {member:?}: {source}")]
    BadJson { member: String, source: ImageError },
    #[error("archive member {member:?} has digest {actual}, but the archive names it {expected}")]
    WrongDigest {
        member: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "layer {index} ({member:?}) has diff_id {actual}, but the image config says {expected}"
    )]
    WrongDiffId {
        member: String,
        index: usize,
        expected: DiffId,
        actual: DiffId,
    },
    #[error("image {config} lists {diff_ids} diff_ids but {layers} layers")]
    LayerCount {
        config: String,
        diff_ids: usize,
        layers: usize,
    },
    #[error("layer {member:?}: {source}")]
    Layer { member: String, source: LayerError },
    #[error("invalid image name {name:?} in the archive: {source}")]
    BadName {
        name: String,
        source: ReferenceError,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("image {id}: {source}")]
    Image { id: String, source: ImageError },
    #[error("layer {0} of the image is not in the store; pull the image again")]
    LayerMissing(DiffId),
    #[error("writing the archive: {0}")]
    Write(io::Error),
    #[error("{what} is not a tar archive ({source})")]
    NotTar { what: String, source: LayerError },
    #[error("{0} is empty: a rootfs tarball is needed")]
    EmptyImport(String),
    #[error("invalid reference format {name:?}: {source}")]
    BadReference {
        name: String,
        source: ReferenceError,
    },
    #[error("--change {change:?}: {why}")]
    BadChange { change: String, why: String },
    #[error("{0}")]
    Commit(Box<crate::engine::commit::CommitError>),
}

pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;
