//! The OCI / docker image model: manifests, indexes, image configs, platforms, the
//! docker-archive `manifest.json` and OCI layout files, and `docker image inspect`'s JSON.
//!
//! Pure: bytes in, types out, and types to bytes; no files, network or clock (callers pass
//! times in as RFC 3339 strings). It never touches the store or a registry and never imports
//! another module of its row (`reference` included: repo tags here are plain strings).
//! Invariants: every digest in these types is a verified-form [`Digest`] (sha256 only), and
//! what we serialise is deterministic (struct order, `BTreeMap`s), because an image's ID is
//! the digest of its config bytes and a manifest's digest names it in a registry.
//!
//! Why our own serde structs rather than `oci_spec::image`'s: docker's media types and
//! docker-only config fields (Healthcheck, Shell, OnBuild...), `null` where a list is
//! expected (docker and older buildah write it), our [`Digest`] type, and stable key order.
//! The tests use `oci-spec` as an independent reader of what we write.

mod archive;
mod config;
mod inspect;
mod platform;
mod time;

pub use archive::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, ArchiveManifestEntry, OCI_LAYOUT_VERSION,
    Repositories, archive_manifest_json, oci_layout_json, parse_archive_manifest, parse_oci_layout,
    parse_repositories, repositories_json,
};
pub use config::{History, ImageConfig, RootFs, RunConfig};
pub use inspect::{
    EmptyObject, ImageInspect, InspectConfig, InspectFacts, InspectMetadata, InspectRootFs,
    inspect_json,
};
pub use platform::Platform;
pub use time::{format_rfc3339, parse_rfc3339};

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::{DiffId, Digest};

/// Media types of manifests, configs and layers.
pub mod media_type {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";

    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
    pub const DOCKER_LAYER_FOREIGN: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_NONDIST_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const OCI_LAYER_NONDIST_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

    /// What a registry client sends as `Accept` for a manifest, best first.
    pub const MANIFEST_ACCEPT: &[&str] = &[
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST,
    ];
}

/// Why image metadata cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("parsing {what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("encoding {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error(
        "docker schema 1 manifests are not supported (docker dropped them in 2019); re-push the image with a current docker, podman or skopeo"
    )]
    Schema1,
    #[error("unsupported manifest schemaVersion {0}: expected 2")]
    SchemaVersion(u64),
    #[error(
        "unsupported manifest media type {0:?}: expected an OCI or docker v2 image manifest or index"
    )]
    ManifestMediaType(String),
    #[error(
        "cannot tell the manifest's kind: it has no mediaType and no \"manifests\" or \"config\" field"
    )]
    ManifestKind,
    #[error("the manifest is announced as {0} but has no \"manifests\" list")]
    NotAnIndex(String),
    #[error(
        "not a container image: its config has media type {0:?} (an OCI artifact, not something camada can run)"
    )]
    ConfigMediaType(String),
    #[error(
        "layer {digest} is a foreign or non-distributable layer ({media_type}): camada only uses layers stored in the registry itself"
    )]
    ForeignLayer { digest: Digest, media_type: String },
    #[error("layer {digest} has unsupported media type {media_type:?}")]
    LayerMediaType { digest: Digest, media_type: String },
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm/v7")]
    PlatformSyntax(String),
    #[error(
        "no matching manifest for {wanted} in the manifest list entries (it offers: {offered}); choose one with --platform"
    )]
    NoMatchingPlatform { wanted: String, offered: String },
    #[error(
        "image config lists {diff_ids} layer(s) in rootfs.diff_ids but {layers} layer descriptor(s) were given"
    )]
    LayerCount { diff_ids: usize, layers: usize },
    #[error(
        "docker-archive manifest.json names {0:?}: paths must be relative and stay inside the archive"
    )]
    ArchivePath(String),
    #[error("docker-archive manifest.json lists no image")]
    ArchiveEmpty,
    #[error("unsupported OCI layout version {0:?} in oci-layout: expected 1.0.0")]
    LayoutVersion(String),
}

/// How a layer blob is compressed: what its media type says
/// ([`Descriptor::layer_compression`]), or what its first bytes say ([`Compression::detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Tells the compression from the first bytes of a blob (4 are enough; fewer, or none,
    /// read as uncompressed). Err names a compression no OCI layer uses (`xz`, `bzip2`), for
    /// the caller's error to say so.
    pub fn detect(head: &[u8]) -> Result<Compression, &'static str> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Compression::Zstd)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
            Err("xz")
        } else if head.starts_with(b"BZh") {
            Err("bzip2")
        } else {
            Ok(Compression::None)
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// Which media type family a manifest we write uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ManifestFormat {
    /// OCI image-spec media types (buildah, podman, containerd-backed docker).
    #[default]
    Oci,
    /// docker's schema 2 (classic `docker save` and `docker push`).
    Docker,
}

impl ManifestFormat {
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media_type::OCI_MANIFEST,
            ManifestFormat::Docker => media_type::DOCKER_MANIFEST,
        }
    }
    pub fn config_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media_type::OCI_CONFIG,
            ManifestFormat::Docker => media_type::DOCKER_CONFIG,
        }
    }
    /// The media type of a layer blob compressed as `c`.
    pub fn layer_media_type(self, c: Compression) -> &'static str {
        use media_type::*;
        match (self, c) {
            (ManifestFormat::Oci, Compression::None) => OCI_LAYER,
            (ManifestFormat::Oci, Compression::Gzip) => OCI_LAYER_GZIP,
            (ManifestFormat::Oci, Compression::Zstd) => OCI_LAYER_ZSTD,
            (ManifestFormat::Docker, Compression::None) => DOCKER_LAYER,
            (ManifestFormat::Docker, Compression::Gzip) => DOCKER_LAYER_GZIP,
            (ManifestFormat::Docker, Compression::Zstd) => DOCKER_LAYER_ZSTD,
        }
    }
}

/// Reads `null` as the default value (docker writes `null` for empty lists and maps).
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A content descriptor: what a manifest or index says about a blob it points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub urls: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        }
    }

    /// The descriptor of `bytes` as a blob of `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// How this layer blob is compressed; foreign, non-distributable and unknown layer
    /// media types are errors naming the layer.
    pub fn layer_compression(&self) -> Result<Compression, ImageError> {
        use media_type::*;
        match self.media_type.as_str() {
            OCI_LAYER | DOCKER_LAYER => Ok(Compression::None),
            OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => Ok(Compression::Gzip),
            OCI_LAYER_ZSTD | DOCKER_LAYER_ZSTD => Ok(Compression::Zstd),
            DOCKER_LAYER_FOREIGN
            | OCI_LAYER_NONDIST
            | OCI_LAYER_NONDIST_GZIP
            | OCI_LAYER_NONDIST_ZSTD => Err(ImageError::ForeignLayer {
                digest: self.digest.clone(),
                media_type: self.media_type.clone(),
            }),
            other => Err(ImageError::LayerMediaType {
                digest: self.digest.clone(),
                media_type: other.to_owned(),
            }),
        }
    }
}

/// An image manifest (OCI or docker schema 2: the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default, deserialize_with = "null_default")]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// A schema 2 manifest of `format` for a config and layers.
    pub fn new(format: ManifestFormat, config: Descriptor, layers: Vec<Descriptor>) -> Self {
        ImageManifest {
            schema_version: 2,
            media_type: Some(format.manifest_media_type().to_owned()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The manifest's bytes as we write them (compact, stable key order).
    pub fn to_json(&self) -> Result<Vec<u8>, ImageError> {
        to_json("image manifest", self)
    }

    /// Each layer's compression, in order; the first foreign or unknown layer is an error.
    pub fn layer_compressions(&self) -> Result<Vec<Compression>, ImageError> {
        self.layers
            .iter()
            .map(Descriptor::layer_compression)
            .collect()
    }
}

/// An image index (OCI) or manifest list (docker): one manifest per platform. Also the
/// shape of an OCI layout's `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// An OCI index of `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    pub fn to_json(&self) -> Result<Vec<u8>, ImageError> {
        to_json("image index", self)
    }

    /// Parses an OCI layout's `index.json` (an index without the manifest-kind checks).
    pub fn parse(bytes: &[u8]) -> Result<Index, ImageError> {
        let index: Index = from_json("image index", bytes)?;
        if index.schema_version != 2 {
            return Err(ImageError::SchemaVersion(index.schema_version));
        }
        Ok(index)
    }

    /// The entry to use for `want` (docker's rules: exact os/arch, the variant when asked,
    /// compatible older arm variants; attestation and `unknown/unknown` entries skipped).
    /// An error lists the platforms on offer. The entry may itself be an index.
    pub fn select(&self, want: &Platform) -> Result<&Descriptor, ImageError> {
        platform::select(&self.manifests, want).ok_or_else(|| ImageError::NoMatchingPlatform {
            wanted: want.to_string(),
            offered: platform::offered(&self.manifests),
        })
    }
}

/// A manifest as fetched: one image, or an index of per-platform images.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per pull, matched at once: boxing buys nothing
pub enum Manifest {
    Image(ImageManifest),
    Index(Index),
}

/// Parses a manifest, telling its kind from its `mediaType` field, else from the HTTP
/// `Content-Type`, else from its shape. Docker schema 1 and unknown kinds are refused, and
/// so is an image whose config is not an image config (an OCI artifact).
pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ImageError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        schema_version: Option<u64>,
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    let probe: Probe = from_json("manifest", bytes)?;
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "text/plain");
    let kind = probe
        .media_type
        .as_deref()
        .filter(|m| !m.is_empty())
        .or(content_type);
    use media_type::*;
    let is_index = match kind {
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED) => return Err(ImageError::Schema1),
        Some(other) => return Err(ImageError::ManifestMediaType(other.to_owned())),
        None if probe.schema_version == Some(1) => return Err(ImageError::Schema1),
        None if probe.manifests.is_some() => true,
        None if probe.config.is_some() => false,
        None => return Err(ImageError::ManifestKind),
    };
    match probe.schema_version {
        Some(1) => return Err(ImageError::Schema1),
        Some(2) => {}
        Some(v) => return Err(ImageError::SchemaVersion(v)),
        None => return Err(ImageError::SchemaVersion(0)),
    }
    if is_index && probe.manifests.is_none() {
        return Err(ImageError::NotAnIndex(
            kind.unwrap_or("an index").to_owned(),
        ));
    }
    if is_index {
        return Ok(Manifest::Index(from_json("image index", bytes)?));
    }
    let m: ImageManifest = from_json("image manifest", bytes)?;
    match m.config.media_type.as_str() {
        OCI_CONFIG | DOCKER_CONFIG => Ok(Manifest::Image(m)),
        other => Err(ImageError::ConfigMediaType(other.to_owned())),
    }
}

/// A new image's config and manifest, serialised, with their descriptors. The image ID
/// is `config.digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub config: Descriptor,
    pub config_json: Vec<u8>,
    pub manifest: Descriptor,
    pub manifest_json: Vec<u8>,
}

/// Serialises `config` and makes a manifest over `layers` (one per `rootfs.diff_ids`,
/// same order, bottom first): what import, commit and build store.
pub fn build_image(
    config: &ImageConfig,
    layers: &[Descriptor],
    format: ManifestFormat,
) -> Result<BuiltImage, ImageError> {
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(ImageError::LayerCount {
            diff_ids: config.rootfs.diff_ids.len(),
            layers: layers.len(),
        });
    }
    for l in layers {
        l.layer_compression()?;
    }
    let config_json = config.to_json()?;
    let config_desc = Descriptor::of(format.config_media_type(), &config_json);
    let manifest = ImageManifest::new(format, config_desc.clone(), layers.to_vec());
    let manifest_json = manifest.to_json()?;
    Ok(BuiltImage {
        config: config_desc,
        manifest: Descriptor::of(format.manifest_media_type(), &manifest_json),
        config_json,
        manifest_json,
    })
}

/// The descriptor of an uncompressed layer tar of `format` (import and commit store
/// layers uncompressed; `diff_id` is then also the blob digest).
pub fn uncompressed_layer(format: ManifestFormat, diff_id: &DiffId, size: u64) -> Descriptor {
    Descriptor::new(
        format.layer_media_type(Compression::None),
        diff_id.0.clone(),
        size,
    )
}

pub(crate) fn from_json<'a, T: Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json { what, source })
}

pub(crate) fn to_json<T: Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, ImageError> {
    serde_json::to_vec(v).map_err(|source| ImageError::Encode { what, source })
}

#[cfg(test)]
mod tests;
