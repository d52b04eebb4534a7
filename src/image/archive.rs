//! Image archives' metadata files: docker-archive's `manifest.json` and `repositories`,
//! and an OCI layout's `oci-layout` (its `index.json` is an [`Index`](super::Index)).
//! Paths named in `manifest.json` are checked to stay inside the archive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Descriptor, ImageError, from_json, null_default, to_json};
use crate::digest::Digest;

/// `org.opencontainers.image.ref.name` on an `index.json` entry: the tag (or, as skopeo
/// and docker write it, a whole reference).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// `io.containerd.image.name` on an `index.json` entry: the full image name (docker 25+).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The layout version we read and write.
pub const OCI_LAYOUT_VERSION: &str = "1.0.0";

/// One image of a docker-archive's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveManifestEntry {
    /// Path of the config JSON inside the archive (`<hex>.json` or `blobs/sha256/<hex>`).
    #[serde(rename = "Config")]
    pub config: String,
    /// Familiar references (`busybox:latest`); may be empty.
    #[serde(rename = "RepoTags", default, deserialize_with = "null_default")]
    pub repo_tags: Vec<String>,
    /// Paths of the layer tars inside the archive, bottom first.
    #[serde(rename = "Layers", default, deserialize_with = "null_default")]
    pub layers: Vec<String>,
    #[serde(rename = "Parent", default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Descriptors of foreign layers (docker writes them for Windows images).
    #[serde(
        rename = "LayerSources",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub layer_sources: BTreeMap<Digest, Descriptor>,
}

/// `repositories`: repository -> tag -> the top layer's v1 ID (hex).
pub type Repositories = BTreeMap<String, BTreeMap<String, String>>;

/// A relative path that stays inside the archive (no `..`, not absolute, not empty).
fn path_inside(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\0')
        && p.split('/').all(|c| c != "..")
        && p.split('/').any(|c| !c.is_empty() && c != ".")
}

/// Parses `manifest.json`; every path it names must stay inside the archive.
pub fn parse_archive_manifest(bytes: &[u8]) -> Result<Vec<ArchiveManifestEntry>, ImageError> {
    let entries: Vec<ArchiveManifestEntry> = from_json("docker-archive manifest.json", bytes)?;
    if entries.is_empty() {
        return Err(ImageError::ArchiveEmpty);
    }
    for e in &entries {
        for p in std::iter::once(&e.config).chain(&e.layers) {
            if !path_inside(p) {
                return Err(ImageError::ArchivePath(p.clone()));
            }
        }
    }
    Ok(entries)
}

pub fn archive_manifest_json(entries: &[ArchiveManifestEntry]) -> Result<Vec<u8>, ImageError> {
    to_json("docker-archive manifest.json", &entries)
}

pub fn parse_repositories(bytes: &[u8]) -> Result<Repositories, ImageError> {
    from_json("docker-archive repositories", bytes)
}

pub fn repositories_json(r: &Repositories) -> Result<Vec<u8>, ImageError> {
    to_json("docker-archive repositories", r)
}

#[derive(Serialize, Deserialize)]
struct OciLayout {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: String,
}

/// Checks an `oci-layout` file: version 1.0.x.
pub fn parse_oci_layout(bytes: &[u8]) -> Result<(), ImageError> {
    let l: OciLayout = from_json("oci-layout", bytes)?;
    let ok = l
        .image_layout_version
        .strip_prefix("1.0.")
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(ImageError::LayoutVersion(l.image_layout_version))
    }
}

/// The `oci-layout` file we write.
pub fn oci_layout_json() -> Vec<u8> {
    format!("{{\"imageLayoutVersion\":\"{OCI_LAYOUT_VERSION}\"}}").into_bytes()
}
