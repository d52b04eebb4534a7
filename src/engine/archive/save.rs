//! `save`: images into a docker-archive (docker 25 layout, also an OCI layout, layers
//! uncompressed) or an OCI archive (the blobs exactly as stored).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

use super::{ArchiveError, Result};
use crate::digest::{DiffId, Digest};
use crate::engine::SaveFormat;
use crate::image::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, ArchiveManifestEntry, Descriptor, ImageConfig,
    ImageManifest, Index, Manifest, ManifestFormat, Repositories, archive_manifest_json,
    media_type, oci_layout_json, parse_manifest, repositories_json, uncompressed_layer,
};
use crate::reference::Reference;
use crate::store::{Resolved, Store};

/// One image to save, read from the store.
struct Source {
    id: Digest,
    manifest_digest: Digest,
    manifest_json: Vec<u8>,
    manifest: ImageManifest,
    config_json: Vec<u8>,
    diff_ids: Vec<DiffId>,
    /// The names it is saved under (may be none: saved by ID).
    names: Vec<Reference>,
}

/// Writes `images` to `out` as a tar archive of `format`. The same image named twice is
/// written once, with both names.
pub fn save(
    store: &Store,
    images: &[Resolved],
    format: SaveFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let mut sources: Vec<Source> = Vec::new();
    for r in images {
        let name = match &r.tag {
            Some(t) => Some(
                Reference::parse(t).map_err(|source| ArchiveError::BadReference {
                    name: t.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let same = match format {
            SaveFormat::DockerArchive => sources.iter_mut().find(|s| s.id == r.id),
            SaveFormat::OciArchive => sources.iter_mut().find(|s| s.manifest_digest == r.manifest),
        };
        if let Some(s) = same {
            s.names.extend(name.filter(|n| !s.names.contains(n)));
            continue;
        }
        sources.push(read_source(store, r, name)?);
    }
    let mut tar = Tar {
        builder: tar::Builder::new(out),
        written: BTreeSet::new(),
    };
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;
    match format {
        SaveFormat::DockerArchive => docker_archive(store, &sources, &mut tar)?,
        SaveFormat::OciArchive => oci_archive(store, &sources, &mut tar)?,
    }
    tar.bytes("oci-layout", &oci_layout_json())?;
    tar.builder.into_inner().map_err(ArchiveError::Write)?;
    Ok(())
}

fn read_source(store: &Store, r: &Resolved, name: Option<Reference>) -> Result<Source> {
    let image_err = |source| ArchiveError::Image {
        id: r.id.to_string(),
        source,
    };
    let manifest_json = store.read_blob(&r.manifest)?;
    let manifest = match parse_manifest(&manifest_json, None).map_err(image_err)? {
        Manifest::Image(m) => m,
        Manifest::Index(_) => {
            return Err(ArchiveError::Corrupt(format!(
                "image {} is recorded with an index, not a manifest",
                r.id
            )));
        }
    };
    let config_json = store.read_blob(&r.id)?;
    let diff_ids = ImageConfig::parse(&config_json)
        .map_err(image_err)?
        .rootfs
        .diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(ArchiveError::LayerCount {
            config: r.id.to_string(),
            diff_ids: diff_ids.len(),
            layers: manifest.layers.len(),
        });
    }
    Ok(Source {
        id: r.id.clone(),
        manifest_digest: r.manifest.clone(),
        manifest_json,
        manifest,
        config_json,
        diff_ids,
        names: name.into_iter().collect(),
    })
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// The index.json entries for one manifest: one per name (docker's annotations), or one
/// bare entry for an image saved by ID.
fn index_entries(desc: Descriptor, names: &[Reference]) -> Vec<Descriptor> {
    if names.is_empty() {
        return vec![desc];
    }
    names
        .iter()
        .map(|n| {
            let mut d = desc.clone();
            d.annotations
                .insert(ANNOTATION_CONTAINERD_NAME.into(), n.to_string());
            if let Some(tag) = &n.tag {
                d.annotations
                    .insert(ANNOTATION_REF_NAME.into(), tag.clone());
            }
            d
        })
        .collect()
}

fn docker_archive(store: &Store, sources: &[Source], tar: &mut Tar<'_>) -> Result<()> {
    let mut entries = Vec::new();
    let mut index = Vec::new();
    let mut repositories = Repositories::new();
    for s in sources {
        let mut layers = Vec::new();
        for d in &s.diff_ids {
            if !store.has_layer(d) {
                return Err(ArchiveError::LayerMissing(d.clone()));
            }
            let size = store.layer_size(d)?;
            tar.file(&blob_path(d.digest()), &store.layer_tar(d), size)?;
            layers.push(uncompressed_layer(ManifestFormat::Oci, d, size));
        }
        tar.bytes(&blob_path(&s.id), &s.config_json)?;
        let config = Descriptor::new(
            media_type::OCI_CONFIG,
            s.id.clone(),
            s.config_json.len() as u64,
        );
        let manifest = ImageManifest::new(ManifestFormat::Oci, config, layers)
            .to_json()
            .map_err(|source| ArchiveError::Image {
                id: s.id.to_string(),
                source,
            })?;
        let desc = Descriptor::of(media_type::OCI_MANIFEST, &manifest);
        tar.bytes(&blob_path(&desc.digest), &manifest)?;
        index.extend(index_entries(desc, &s.names));
        for n in &s.names {
            if let (Some(tag), Some(top)) = (&n.tag, s.diff_ids.last()) {
                repositories
                    .entry(n.familiar_name())
                    .or_default()
                    .insert(tag.clone(), top.hex().to_owned());
            }
        }
        entries.push(ArchiveManifestEntry {
            config: blob_path(&s.id),
            repo_tags: s.names.iter().map(Reference::familiar).collect(),
            layers: s.diff_ids.iter().map(|d| blob_path(d.digest())).collect(),
            parent: None,
            layer_sources: BTreeMap::new(),
        });
    }
    let json_err = |source| ArchiveError::Image {
        id: "archive".into(),
        source,
    };
    tar.bytes(
        "index.json",
        &Index::new(index).to_json().map_err(json_err)?,
    )?;
    tar.bytes(
        "manifest.json",
        &archive_manifest_json(&entries).map_err(json_err)?,
    )?;
    if !repositories.is_empty() {
        tar.bytes(
            "repositories",
            &repositories_json(&repositories).map_err(json_err)?,
        )?;
    }
    Ok(())
}

fn oci_archive(store: &Store, sources: &[Source], tar: &mut Tar<'_>) -> Result<()> {
    let mut index = Vec::new();
    for s in sources {
        for (layer, d) in s.manifest.layers.iter().zip(&s.diff_ids) {
            if store.has_blob(&layer.digest) {
                let size = store.blob_size(&layer.digest)?;
                tar.file(
                    &blob_path(&layer.digest),
                    &store.paths().blob(&layer.digest),
                    size,
                )?;
            } else if layer.digest == d.0 && store.has_layer(d) {
                tar.file(&blob_path(&layer.digest), &store.layer_tar(d), layer.size)?;
            } else {
                return Err(ArchiveError::LayerMissing(d.clone()));
            }
        }
        tar.bytes(&blob_path(&s.id), &s.config_json)?;
        tar.bytes(&blob_path(&s.manifest_digest), &s.manifest_json)?;
        let media = s
            .manifest
            .media_type
            .clone()
            .unwrap_or_else(|| media_type::OCI_MANIFEST.to_owned());
        let desc = Descriptor::new(
            &media,
            s.manifest_digest.clone(),
            s.manifest_json.len() as u64,
        );
        index.extend(index_entries(desc, &s.names));
    }
    let json = Index::new(index)
        .to_json()
        .map_err(|source| ArchiveError::Image {
            id: "archive".into(),
            source,
        })?;
    tar.bytes("index.json", &json)
}

/// The output tar: each blob written once.
struct Tar<'w> {
    builder: tar::Builder<&'w mut dyn Write>,
    written: BTreeSet<String>,
}

impl Tar<'_> {
    fn header(path: &str, size: u64, kind: tar::EntryType) -> Result<tar::Header> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).map_err(ArchiveError::Write)?;
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        Ok(h)
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        let h = Self::header(path, 0, tar::EntryType::Directory)?;
        self.builder
            .append(&h, io::empty())
            .map_err(ArchiveError::Write)
    }

    fn bytes(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        if !self.written.insert(path.to_owned()) {
            return Ok(());
        }
        let h = Self::header(path, bytes.len() as u64, tar::EntryType::Regular)?;
        self.builder.append(&h, bytes).map_err(ArchiveError::Write)
    }

    /// A stored file of `size` bytes (blobs and layer tars never change once stored).
    fn file(&mut self, path: &str, from: &std::path::Path, size: u64) -> Result<()> {
        if !self.written.insert(path.to_owned()) {
            return Ok(());
        }
        let f = std::fs::File::open(from).map_err(|source| ArchiveError::OpenInput {
            path: from.to_path_buf(),
            source,
        })?;
        let h = Self::header(path, size, tar::EntryType::Regular)?;
        self.builder
            .append(&h, f.take(size))
            .map_err(ArchiveError::Write)
    }
}
