//! `load`: a docker-archive (old `<id>/layer.tar` or docker 25 layout) or an OCI archive,
//! plain or gzip/zstd, into the store — all verified and staged before anything is committed.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use super::{ArchiveError, Result};
use crate::digest::{DiffId, Digest};
use crate::engine::Tee;
use crate::engine::{Input, LoadedImage};
use crate::image::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Compression, Descriptor, ImageConfig,
    ImageManifest, Index, Manifest, ManifestFormat, Platform, media_type, parse_archive_manifest,
    parse_manifest, parse_oci_layout, uncompressed_layer,
};
use crate::layer::{decoder, ingest};
use crate::reference::Reference;
use crate::store::{BlobWriter, LayerStage, Store, StoreError, TempFile};

/// The most a JSON member (manifest, config, index) may weigh.
const JSON_LIMIT: u64 = 64 << 20;

/// Loads every image of the archive; returns them as docker reports them (each name, or
/// the ID of an image without one).
pub fn load(store: &Store, input: Input) -> Result<Vec<LoadedImage>> {
    let (file, _spool) = open_archive(store, input)?;
    let members = Members::scan(&file)?;
    // from the first "already stored, skip it" decision to the record: no GC sweep
    let _writing = store.writing()?;
    let mut loader = Loader {
        store,
        members: &members,
        staged: BTreeMap::new(),
        images: Vec::new(),
    };
    if members.has("manifest.json") {
        loader.docker_archive()?;
    } else if members.has("index.json") {
        loader.oci_archive()?;
    } else if !members.ends_cleanly()? {
        // the metadata files come last: a cut between members loses them
        return Err(ArchiveError::Truncated {
            member: "the end-of-archive blocks".into(),
            needed: members.len + 1024,
            len: members.len,
        });
    } else {
        return Err(ArchiveError::NotAnArchive);
    }
    loader.commit()
}

/// The archive as a seekable file: the input itself when it is a plain file, else its
/// decompressed bytes spooled into the store's `tmp/` (removed when dropped).
fn open_archive(store: &Store, input: Input) -> Result<(File, Option<TempFile>)> {
    match input {
        Input::File(path) => {
            let file = File::open(&path).map_err(|source| ArchiveError::OpenInput {
                path: path.clone(),
                source,
            })?;
            let mut head = [0u8; 8];
            let n = file
                .read_at(&mut head, 0)
                .map_err(ArchiveError::ReadInput)?;
            if n == 0 {
                return Err(ArchiveError::Empty);
            }
            let compression = Compression::detect(&head[..n]).unwrap_or(Compression::None);
            let regular = file.metadata().is_ok_and(|m| m.is_file());
            if compression == Compression::None && regular {
                return Ok((file, None));
            }
            spool(store, Box::new(file), compression)
        }
        Input::Stdin => {
            let mut stdin = io::stdin().lock();
            let mut head = Vec::with_capacity(8);
            (&mut stdin)
                .take(8)
                .read_to_end(&mut head)
                .map_err(ArchiveError::ReadInput)?;
            if head.is_empty() {
                return Err(ArchiveError::Empty);
            }
            let compression = Compression::detect(&head).unwrap_or(Compression::None);
            spool(
                store,
                Box::new(io::Cursor::new(head).chain(stdin)),
                compression,
            )
        }
    }
}

fn spool(
    store: &Store,
    input: Box<dyn Read + '_>,
    compression: Compression,
) -> Result<(File, Option<TempFile>)> {
    let tmp = store.temp_file("load")?;
    let mut out = BufWriter::with_capacity(256 << 10, tmp.file());
    let res = decoder(compression, io::BufReader::new(input))
        .and_then(|mut d| io::copy(&mut d, &mut out));
    match res {
        Ok(_) => {}
        Err(source) if compression == Compression::None => {
            return Err(ArchiveError::ReadInput(source));
        }
        Err(source) => {
            return Err(ArchiveError::Decompress {
                compression,
                source,
            });
        }
    }
    io::Write::flush(&mut out).map_err(|e| {
        ArchiveError::Store(StoreError::WriteTemp {
            path: tmp.path().to_path_buf(),
            source: e,
        })
    })?;
    drop(out);
    let file = tmp.file().try_clone().map_err(ArchiveError::ReadInput)?;
    Ok((file, Some(tmp)))
}

/// Where a member's bytes are, or which member it links to.
#[derive(Debug, Clone)]
enum Member {
    Data { offset: u64, size: u64 },
    Link(String),
}

/// The members of the (outer) archive tar, by normalised path.
struct Members<'f> {
    file: &'f File,
    len: u64,
    map: HashMap<String, Member>,
}

/// `./a//b/` -> `a/b`; `None` for paths leaving the archive or naming its root.
fn normalise(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?.to_owned()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl<'f> Members<'f> {
    fn scan(file: &'f File) -> Result<Members<'f>> {
        let len = file.metadata().map_err(ArchiveError::ReadInput)?.len();
        if len == 0 {
            return Err(ArchiveError::Empty);
        }
        let corrupt = |e: io::Error| ArchiveError::Corrupt(e.to_string());
        let mut map = HashMap::new();
        // a spooled file shares its offset with the writer that filled it
        (&mut &*file)
            .seek(SeekFrom::Start(0))
            .map_err(ArchiveError::ReadInput)?;
        let mut archive = tar::Archive::new(file);
        for entry in archive.entries_with_seek().map_err(corrupt)? {
            let entry = entry.map_err(corrupt)?;
            let path = entry.path().map_err(corrupt)?.into_owned();
            let Some(name) = normalise(&path) else {
                continue;
            };
            let kind = entry.header().entry_type();
            let member = if kind.is_file() || kind == tar::EntryType::Continuous {
                let offset = entry.raw_file_position();
                let size = entry.size();
                if offset.saturating_add(size) > len {
                    return Err(ArchiveError::Truncated {
                        member: name,
                        needed: offset.saturating_add(size),
                        len,
                    });
                }
                Member::Data { offset, size }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Some(target) = entry.link_name().map_err(corrupt)? else {
                    continue;
                };
                let joined = if kind.is_symlink() && !target.is_absolute() {
                    path.parent().unwrap_or(Path::new("")).join(&target)
                } else {
                    PathBuf::from(&*target)
                };
                let Some(target) = normalise(&joined) else {
                    continue;
                };
                Member::Link(target)
            } else {
                continue;
            };
            map.insert(name, member);
        }
        // a tar whose last header block is cut short ends the iteration quietly: a real
        // archive ends with two zero blocks after its last member
        Ok(Members { file, len, map })
    }

    /// Whether the file ends with the two zero blocks every tar writer puts last.
    fn ends_cleanly(&self) -> Result<bool> {
        if self.len < 1024 {
            return Ok(false);
        }
        let mut tail = [0u8; 1024];
        self.file
            .read_exact_at(&mut tail, self.len - 1024)
            .map_err(ArchiveError::ReadInput)?;
        Ok(tail.iter().all(|&b| b == 0))
    }

    fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Offset and size of a member's data, following links (a few hops at most).
    fn locate(&self, name: &str) -> Result<(u64, u64)> {
        let mut name = name.to_owned();
        for _ in 0..16 {
            match normalise(Path::new(&name)).and_then(|n| self.map.get(&n)) {
                Some(Member::Data { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(target)) => name = target.clone(),
                None => break,
            }
        }
        Err(ArchiveError::MissingMember(name))
    }

    fn reader(&self, name: &str) -> Result<Section<'f>> {
        let (offset, size) = self.locate(name)?;
        Ok(Section {
            file: self.file,
            pos: offset,
            end: offset + size,
        })
    }

    /// A small member, whole.
    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let (_, size) = self.locate(name)?;
        if size > JSON_LIMIT {
            return Err(ArchiveError::TooBig {
                member: name.to_owned(),
                size,
            });
        }
        let mut out = Vec::with_capacity(size as usize);
        self.reader(name)?
            .read_to_end(&mut out)
            .map_err(ArchiveError::ReadInput)?;
        Ok(out)
    }

    /// `blobs/sha256/<hex>` of an OCI layout, read whole and checked against `desc`.
    fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let name = blob_member(&desc.digest);
        let bytes = self.read(&name)?;
        let actual = Digest::of(&bytes);
        if actual != desc.digest || bytes.len() as u64 != desc.size {
            return Err(ArchiveError::WrongDigest {
                member: name,
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }
}

fn blob_member(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// The digest a member's name claims (`blobs/sha256/<hex>`, `<hex>.json`), if any.
fn named_digest(member: &str) -> Option<Digest> {
    let base = member.rsplit('/').next()?;
    let hex = base.strip_suffix(".json").unwrap_or(base);
    Digest::from_hex(hex).ok()
}

/// A member's bytes, read by position (no shared file offset).
struct Section<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside this member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A layer verified and staged, waiting for the commit.
struct Staged {
    /// `None`: the layer is already stored.
    stage: Option<LayerStage>,
    /// The compressed blob, when the archive had one and the store does not.
    blob: Option<BlobWriter>,
    /// Make the uncompressed tar the layer blob (hardlink) at commit.
    link: bool,
    desc: Descriptor,
}

/// An image verified and ready to record.
struct Pending {
    config_json: Vec<u8>,
    config: Digest,
    manifest_json: Vec<u8>,
    manifest: Digest,
    names: Vec<Reference>,
}

struct Loader<'a, 'f> {
    store: &'a Store,
    members: &'a Members<'f>,
    /// By diff_id and the blob the manifest names (the diff_id itself for docker-archive
    /// layers): one layer may come as two blobs (gzip in one image, plain in another).
    staged: BTreeMap<(DiffId, Digest), Staged>,
    images: Vec<Pending>,
}

impl Loader<'_, '_> {
    fn docker_archive(&mut self) -> Result<()> {
        let bad = |member: &str| {
            let member = member.to_owned();
            move |source| ArchiveError::BadJson { member, source }
        };
        let entries = parse_archive_manifest(&self.members.read("manifest.json")?)
            .map_err(bad("manifest.json"))?;
        for e in entries {
            let config_json = self.members.read(&e.config)?;
            let config = Digest::of(&config_json);
            if let Some(named) = named_digest(&e.config)
                && named != config
            {
                return Err(ArchiveError::WrongDigest {
                    member: e.config.clone(),
                    expected: named,
                    actual: config,
                });
            }
            let parsed = ImageConfig::parse(&config_json).map_err(bad(&e.config))?;
            let diff_ids = &parsed.rootfs.diff_ids;
            if diff_ids.len() != e.layers.len() {
                return Err(ArchiveError::LayerCount {
                    config: e.config.clone(),
                    diff_ids: diff_ids.len(),
                    layers: e.layers.len(),
                });
            }
            let mut layers = Vec::new();
            for (i, (member, diff_id)) in e.layers.iter().zip(diff_ids).enumerate() {
                layers.push(self.stage(member, i, diff_id, None)?);
            }
            let config_desc = Descriptor::new(
                media_type::OCI_CONFIG,
                config.clone(),
                config_json.len() as u64,
            );
            let manifest_json = ImageManifest::new(ManifestFormat::Oci, config_desc, layers)
                .to_json()
                .map_err(|source| ArchiveError::Image {
                    id: config.to_string(),
                    source,
                })?;
            let mut names = Vec::new();
            for tag in &e.repo_tags {
                names.push(
                    Reference::parse(tag).map_err(|source| ArchiveError::BadName {
                        name: tag.clone(),
                        source,
                    })?,
                );
            }
            self.images.push(Pending {
                manifest: Digest::of(&manifest_json),
                manifest_json,
                config,
                config_json,
                names,
            });
        }
        Ok(())
    }

    fn oci_archive(&mut self) -> Result<()> {
        if self.members.has("oci-layout") {
            parse_oci_layout(&self.members.read("oci-layout")?).map_err(|source| {
                ArchiveError::BadJson {
                    member: "oci-layout".into(),
                    source,
                }
            })?;
        }
        let index = Index::parse(&self.members.read("index.json")?).map_err(|source| {
            ArchiveError::BadJson {
                member: "index.json".into(),
                source,
            }
        })?;
        if index.manifests.is_empty() {
            return Err(ArchiveError::Corrupt("index.json lists no image".into()));
        }
        for desc in &index.manifests {
            let mut names = Vec::new();
            if let Some(n) = desc.annotations.get(ANNOTATION_CONTAINERD_NAME) {
                names.push(Reference::parse(n).map_err(|source| ArchiveError::BadName {
                    name: n.clone(),
                    source,
                })?);
            } else if let Some(n) = desc.annotations.get(ANNOTATION_REF_NAME)
                && n.contains(['/', ':'])
                && let Ok(r) = Reference::parse(n)
            {
                // a bare tag (`latest`, as umoci writes) names no image
                names.push(r);
            }
            self.oci_manifest(desc, names, 0)?;
        }
        Ok(())
    }

    fn oci_manifest(&mut self, desc: &Descriptor, names: Vec<Reference>, depth: u8) -> Result<()> {
        let member = blob_member(&desc.digest);
        let bytes = self.members.read_blob(desc)?;
        let bad = |source| ArchiveError::BadJson {
            member: member.clone(),
            source,
        };
        let m = match parse_manifest(&bytes, Some(&desc.media_type)).map_err(bad)? {
            Manifest::Index(index) if depth < 2 => {
                let sub = index.select(&Platform::host()).map_err(bad)?.clone();
                return self.oci_manifest(&sub, names, depth + 1);
            }
            Manifest::Index(_) => {
                return Err(ArchiveError::Corrupt(format!(
                    "{member}: image indexes nested too deep"
                )));
            }
            Manifest::Image(m) => m,
        };
        let config_json = self.members.read_blob(&m.config)?;
        let parsed = ImageConfig::parse(&config_json).map_err(|source| ArchiveError::BadJson {
            member: blob_member(&m.config.digest),
            source,
        })?;
        let diff_ids = &parsed.rootfs.diff_ids;
        if diff_ids.len() != m.layers.len() {
            return Err(ArchiveError::LayerCount {
                config: blob_member(&m.config.digest),
                diff_ids: diff_ids.len(),
                layers: m.layers.len(),
            });
        }
        for (i, (layer, diff_id)) in m.layers.iter().zip(diff_ids).enumerate() {
            layer
                .layer_compression()
                .map_err(|source| ArchiveError::Image {
                    id: m.config.digest.to_string(),
                    source,
                })?;
            self.stage(&blob_member(&layer.digest), i, diff_id, Some(layer))?;
        }
        self.images.push(Pending {
            config: m.config.digest.clone(),
            config_json,
            manifest: desc.digest.clone(),
            manifest_json: bytes,
            names,
        });
        Ok(())
    }

    /// Verifies and stages layer `index` of an image, read from `member`; `blob` is the
    /// descriptor an OCI manifest gives it. Returns the descriptor the manifest uses.
    fn stage(
        &mut self,
        member: &str,
        index: usize,
        diff_id: &DiffId,
        blob: Option<&Descriptor>,
    ) -> Result<Descriptor> {
        let key = (
            diff_id.clone(),
            blob.map_or_else(|| diff_id.0.clone(), |b| b.digest.clone()),
        );
        if let Some(s) = self.staged.get(&key) {
            return Ok(s.desc.clone());
        }
        let store = self.store;
        let (offset, _) = self.members.locate(member)?;
        let mut head = [0u8; 8];
        let n = self
            .members
            .file
            .read_at(&mut head, offset)
            .map_err(ArchiveError::ReadInput)?;
        let compression = Compression::detect(&head[..n]).unwrap_or(Compression::None);
        let section = self.members.reader(member)?;
        let layer_err = |source| ArchiveError::Layer {
            member: member.to_owned(),
            source,
        };
        // already stored (layer and blob): the archive's copy is still verified, not kept
        let present = store.has_layer(diff_id)
            && blob.is_none_or(|b| store.has_blob(&b.digest) || b.digest == diff_id.0);
        let (ingested, stage, blob_writer) = if present {
            let got = ingest(section, io::sink(), io::sink()).map_err(layer_err)?;
            (got, None, None)
        } else {
            let stage = store.stage_layer()?;
            let (tar, idx) = stage.create_files()?;
            let tar = BufWriter::with_capacity(256 << 10, tar);
            if compression == Compression::None {
                let got = ingest(section, tar, idx).map_err(layer_err)?;
                (got, Some(stage), None)
            } else {
                let mut w = store.blob_writer(blob.map(|b| &b.digest), blob.map(|b| b.size))?;
                let got = ingest(Tee::new(section, &mut w), tar, idx).map_err(layer_err)?;
                (got, Some(stage), Some(w))
            }
        };
        if ingested.diff_id != *diff_id {
            return Err(ArchiveError::WrongDiffId {
                member: member.to_owned(),
                index,
                expected: diff_id.clone(),
                actual: ingested.diff_id,
            });
        }
        let claimed = blob
            .map(|b| b.digest.clone())
            .or_else(|| named_digest(member));
        if let Some(expected) = claimed
            && expected != ingested.compressed
        {
            return Err(ArchiveError::WrongDigest {
                member: member.to_owned(),
                expected,
                actual: ingested.compressed,
            });
        }
        if present {
            let desc = match blob {
                Some(b) => b.clone(),
                None => uncompressed_layer(ManifestFormat::Oci, diff_id, ingested.tar_size),
            };
            self.staged.insert(
                key,
                Staged {
                    stage: None,
                    blob: None,
                    link: blob.is_none_or(|b| b.digest == diff_id.0),
                    desc: desc.clone(),
                },
            );
            return Ok(desc);
        }
        let desc = match blob {
            Some(b) => b.clone(),
            None if compression == Compression::None => {
                uncompressed_layer(ManifestFormat::Oci, diff_id, ingested.tar_size)
            }
            None => Descriptor::new(
                ManifestFormat::Oci.layer_media_type(compression),
                ingested.compressed.clone(),
                ingested.compressed_size,
            ),
        };
        self.staged.insert(
            key,
            Staged {
                stage,
                link: blob_writer.is_none(),
                blob: blob_writer,
                desc: desc.clone(),
            },
        );
        Ok(desc)
    }

    /// Everything verified: commit layers and blobs, then record the images and names.
    fn commit(self) -> Result<Vec<LoadedImage>> {
        let store = self.store;
        for ((diff_id, _), s) in self.staged {
            if let Some(stage) = s.stage {
                stage.commit(&diff_id)?;
            }
            if let Some(blob) = s.blob {
                blob.commit()?;
            }
            if s.link {
                store.link_layer_blob(&diff_id)?;
            }
        }
        for p in &self.images {
            store.put_blob(&p.config_json)?;
            store.put_blob(&p.manifest_json)?;
        }
        let images = self.images;
        store.update(|db| {
            for p in &images {
                db.add_image(&p.manifest, &p.config, None);
                for name in &p.names {
                    db.tag(&name.to_string(), &p.manifest);
                }
            }
            Ok::<_, StoreError>(())
        })?;
        let mut loaded = Vec::new();
        for p in images {
            if p.names.is_empty() {
                loaded.push(LoadedImage::Id(p.config));
            }
            for name in p.names {
                loaded.push(LoadedImage::Named(name.familiar()));
            }
        }
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_stay_inside() {
        assert_eq!(normalise(Path::new("./a//b/")).as_deref(), Some("a/b"));
        assert_eq!(normalise(Path::new("/blobs/x")).as_deref(), Some("blobs/x"));
        assert_eq!(normalise(Path::new("a/../b")).as_deref(), Some("b"));
        assert_eq!(normalise(Path::new("../x")), None);
        assert_eq!(normalise(Path::new("./")), None);
        let d = Digest::of(b"x");
        assert_eq!(named_digest(&blob_member(&d)), Some(d.clone()));
        assert_eq!(named_digest(&format!("{}.json", d.hex())), Some(d));
        assert_eq!(named_digest("abc/layer.tar"), None);
    }
}
