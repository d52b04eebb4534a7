//! Writable layer -> image: the one path by which `import`, `commit` and `build` make
//! layers and images.
//!
//! [`layer_from_upper`] turns an overlay upper dir (whiteouts already in OCI form, owners in
//! the overlay's records) into a stored layer; [`layer_from_tar`] stores a layer tar read
//! from a stream; [`write_image`] puts new layers on a base image (or none), writes the
//! config and manifest blobs and records and tags the image. Never touches a container's
//! record or a mount: callers hand it paths and configs. Invariant: every layer and blob
//! is complete before it is visible (staged in `tmp/`, renamed), and the caller holds
//! [`Store::writing`] from the first new layer until `write_image` has recorded the image,
//! so a concurrent GC never sweeps a layer no image names yet (the guard is a parameter of
//! each function, so this cannot be forgotten).

use std::fs;
use std::io::{self, BufWriter, Read};
use std::path::Path;

use nix::sys::stat::SFlag;

use super::archive::apply_change;
use super::{Engine, EngineError};
use crate::digest::{DiffId, Digest};
use crate::image::{
    Descriptor, History, ImageConfig, ImageError, Manifest, ManifestFormat, Platform, RunConfig,
    build_image, format_rfc3339, parse_manifest, uncompressed_layer,
};
use crate::layer::{self, Entry, LayerError, Owner, ingest};
use crate::overlay::mapping::{self, Ownership};
use crate::reference::Reference;
use crate::store::{Store, StoreError, WriteGuard, now};

/// Why a layer or an image could not be made. Each message names what it was made from.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("layer {what:?}: {source}")]
    ReadLayer { what: String, source: LayerError },
    #[error("{what} is not a tar archive ({source})")]
    NotTar { what: String, source: LayerError },
    #[error("{0} is empty: a tar archive is needed")]
    EmptyTar(String),
    #[error("making a layer of the writable layer {path}: {source}")]
    Diff {
        path: std::path::PathBuf,
        source: LayerError,
    },
    #[error("reading the ownership records of {path}: {why}")]
    Ownership {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("reading base image {id}: {why}")]
    Base { id: String, why: String },
    #[error("writing image: {0}")]
    Image(ImageError),
}

pub type Result<T, E = CommitError> = std::result::Result<T, E>;

/// A layer just stored (`layers/<diff_id>`, also the uncompressed blob of that digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayer {
    pub diff_id: DiffId,
    /// Bytes of the uncompressed tar.
    pub size: u64,
}

/// The container-side owners of an upper dir as the overlay recorded them (xattrs, or the
/// side table saved next to the upper dir at `side_table`).
pub fn upper_owners(upper: &Path, side_table: &Path) -> Result<Ownership> {
    Ownership::open(upper, side_table.to_path_buf()).map_err(|e| CommitError::Ownership {
        path: upper.to_path_buf(),
        why: e.to_string(),
    })
}

/// The overlay upper dir `upper` as a stored layer; `None` when it holds nothing (docker
/// then records the step as an empty layer: `History::empty_layer`, no diff_id).
pub fn layer_from_upper(
    store: &Store,
    _writing: &WriteGuard,
    upper: &Path,
    owners: &Ownership,
) -> Result<Option<NewLayer>> {
    // owners and xattrs are read through the walk's dir fds (`Entry::at`), never by a
    // path from the upper dir down
    let owner = |e: &Entry<'_>| -> Option<Owner> {
        let at = e.at();
        let own = owners.get(&at, e.rel, e.stat.st_mode);
        let xattrs = if e.is(SFlag::S_IFLNK) {
            Vec::new()
        } else {
            mapping::container_xattrs(&at)
        };
        Some(match own {
            Some(o) => Owner {
                uid: o.uid,
                gid: o.gid,
                mode: o.mode,
                rdev: u64::from(o.rdev),
                xattrs,
            },
            None => Owner {
                uid: 0,
                gid: 0,
                mode: e.stat.st_mode,
                rdev: e.stat.st_rdev,
                xattrs,
            },
        })
    };
    let diff_err = |source| CommitError::Diff {
        path: upper.to_path_buf(),
        source,
    };
    let stage = store.stage_layer()?;
    let (tar, idx) = stage.create_files()?;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map(|(r, w)| (fs::File::from(r), fs::File::from(w)))
        .map_err(|e| diff_err(LayerError::WriteTar(e.into())))?;
    let keep = |e: &Entry<'_>| !runtime_mount_point(e);
    let (entries, ingested) = std::thread::scope(|s| {
        let writer = s.spawn(move || layer::diff_with(upper, &owner, &keep, BufWriter::new(w)));
        let ingested = ingest(r, BufWriter::with_capacity(256 << 10, tar), idx);
        let entries = writer
            .join()
            .unwrap_or_else(|_| Err(LayerError::WriteTar(io::Error::other("the walk panicked"))));
        (entries, ingested)
    });
    // the walk's error is the cause when both failed (ingest then saw a cut stream)
    let entries = entries.map_err(diff_err)?;
    let ingested = ingested.map_err(diff_err)?;
    if entries == 0 {
        return Ok(None); // the staging is dropped
    }
    stage.commit(&ingested.diff_id)?;
    store.link_layer_blob(&ingested.diff_id)?;
    Ok(Some(NewLayer {
        diff_id: ingested.diff_id,
        size: ingested.tar_size,
    }))
}

/// An entry of an upper dir that the runtime made as a mount point where the image had
/// none (docker keeps these in its init layer, out of `diff` and `commit`): an empty
/// `/etc/hostname`, `/etc/hosts` or `/etc/resolv.conf`, or an empty `/proc`, `/sys`,
/// `/dev`, `/dev/pts`, `/dev/shm`. Where the image has them, the runtime mounts over them
/// and the upper dir never holds them.
pub fn runtime_mount_point(e: &Entry<'_>) -> bool {
    match e.rel {
        b"etc/hostname" | b"etc/hosts" | b"etc/resolv.conf" => {
            e.is(SFlag::S_IFREG) && e.stat.st_size == 0
        }
        b"proc" | b"sys" | b"dev" | b"dev/pts" | b"dev/shm" => e.dir.is_empty_dir(e.name, e.stat),
        _ => false,
    }
}

/// A layer tar (plain, gzip or zstd) read from `reader` as a stored layer, uncompressed.
/// `what` names the source in errors (a file name, `-`).
pub fn layer_from_tar(
    store: &Store,
    _writing: &WriteGuard,
    reader: impl Read,
    what: &str,
) -> Result<NewLayer> {
    let stage = store.stage_layer()?;
    let (tar, idx) = stage.create_files()?;
    let ingested = ingest(reader, BufWriter::with_capacity(256 << 10, tar), idx).map_err(
        |source| match source {
            LayerError::Read { .. } | LayerError::WriteTar(_) | LayerError::WriteIndex(_) => {
                CommitError::ReadLayer {
                    what: what.to_owned(),
                    source,
                }
            }
            source => CommitError::NotTar {
                what: what.to_owned(),
                source,
            },
        },
    )?;
    if ingested.compressed_size == 0 {
        return Err(CommitError::EmptyTar(what.to_owned()));
    }
    stage.commit(&ingested.diff_id)?;
    store.link_layer_blob(&ingested.diff_id)?;
    Ok(NewLayer {
        diff_id: ingested.diff_id,
        size: ingested.tar_size,
    })
}

/// One step of a new image: the layer it made (`None`: an empty step such as ENV, or a
/// RUN that changed nothing) and its history entry (`created` is filled in when unset).
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub layer: Option<NewLayer>,
    pub history: History,
}

/// What [`write_image`] makes.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// The image ID of the base (`None`: from scratch).
    pub base: Option<Digest>,
    /// New steps, bottom first, on top of the base's.
    pub steps: Vec<Step>,
    /// The new image's run config (`None`: the base's, or an empty one).
    pub run: Option<RunConfig>,
    /// docker's top-level `comment` and `author` (`commit -m`, `-a`; `import -m`).
    pub comment: Option<String>,
    pub author: Option<String>,
    /// Names to point at the new image (full references).
    pub tags: Vec<Reference>,
}

/// Makes and records the image `spec` describes; returns its ID (the config digest). The
/// base's layers keep the blobs its manifest names when the store has them; other layers
/// are stored uncompressed (the layer tar is the blob).
pub fn write_image(store: &Store, _writing: &WriteGuard, spec: &ImageSpec) -> Result<Digest> {
    let created = format_rfc3339(i64::try_from(now()).unwrap_or(0), 0);
    let (mut config, mut layers) = match &spec.base {
        Some(id) => base_of(store, id)?,
        None => (ImageConfig::new(&Platform::host(), &created), Vec::new()),
    };
    config.created = Some(created.clone());
    config.comment = spec.comment.clone();
    config.author = spec.author.clone();
    if let Some(run) = &spec.run {
        config.config = Some(run.clone());
    }
    for step in &spec.steps {
        let mut history = step.history.clone();
        history.created.get_or_insert_with(|| created.clone());
        match &step.layer {
            Some(l) => {
                layers.push(uncompressed_layer(ManifestFormat::Oci, &l.diff_id, l.size));
                config.push_layer(l.diff_id.clone(), history);
            }
            None => config.push_empty_step(history),
        }
    }
    record_image(store, &config, &layers, &spec.tags, &Default::default())
}

/// Stores `config` exactly as given with a manifest over `layers` (stored blobs, one per
/// diff_id), records the image and points `tags` at it; returns its ID. What
/// [`write_image`] ends with, and what `build` calls with the config its cache kept (and
/// the manifest `annotations` push reads, e.g. the layer compression).
pub fn record_image(
    store: &Store,
    config: &ImageConfig,
    layers: &[Descriptor],
    tags: &[Reference],
    annotations: &std::collections::BTreeMap<String, String>,
) -> Result<Digest> {
    let mut built = build_image(config, layers, ManifestFormat::Oci).map_err(CommitError::Image)?;
    if !annotations.is_empty() {
        let mut m = crate::image::ImageManifest::new(
            ManifestFormat::Oci,
            built.config.clone(),
            layers.to_vec(),
        );
        m.annotations = annotations.clone();
        built.manifest_json = m.to_json().map_err(CommitError::Image)?;
        built.manifest = Descriptor::of(&built.manifest.media_type, &built.manifest_json);
    }
    store.put_blob(&built.config_json)?;
    store.put_blob(&built.manifest_json)?;
    let id = built.config.digest.clone();
    store.update(|db| {
        db.add_image(&built.manifest.digest, &id, None);
        for t in tags {
            db.tag(&t.to_string(), &built.manifest.digest);
        }
        Ok::<_, StoreError>(())
    })?;
    Ok(id)
}

/// The base image's config and its layers' descriptors, in OCI media types.
fn base_of(store: &Store, id: &Digest) -> Result<(ImageConfig, Vec<Descriptor>)> {
    let bad = |why: String| CommitError::Base {
        id: id.short().to_string(),
        why,
    };
    let config = ImageConfig::parse(&store.read_blob(id)?).map_err(|e| bad(e.to_string()))?;
    let db = store.images()?;
    let from_manifest = db.manifests_of(id).into_iter().find_map(|m| {
        let bytes = store.read_blob(&m).ok()?;
        let Ok(Manifest::Image(man)) = parse_manifest(&bytes, None) else {
            return None;
        };
        let ok = man.layers.len() == config.rootfs.diff_ids.len()
            && man.layers.iter().all(|l| store.has_blob(&l.digest));
        ok.then_some(man.layers)
    });
    let layers = match from_manifest {
        Some(ls) => ls
            .into_iter()
            .map(|l| {
                let c = l.layer_compression().map_err(|e| bad(e.to_string()))?;
                Ok(Descriptor::new(
                    ManifestFormat::Oci.layer_media_type(c),
                    l.digest,
                    l.size,
                ))
            })
            .collect::<Result<Vec<_>>>()?,
        None => config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| {
                store.link_layer_blob(d)?;
                Ok(uncompressed_layer(
                    ManifestFormat::Oci,
                    d,
                    store.layer_size(d)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?,
    };
    Ok((config, layers))
}

/// `commit` options.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// `REPOSITORY[:TAG]` to name the image.
    pub reference: Option<String>,
    /// `-m`: the commit message (history comment and the config's `comment`).
    pub message: Option<String>,
    /// `-a`: the author.
    pub author: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config, as `import --change`.
    pub changes: Vec<String>,
}

impl Engine {
    /// `commit CONTAINER [REF]`: the container's writable layer as a new layer on its
    /// image, with the container's run config (and `changes`); returns the image ID. A
    /// running container's processes are stopped while the layer is read (docker's
    /// default `--pause`), so nothing inside can change or swap a path under the walk;
    /// the ownership side table is read with its journal, as current as the overlay's.
    pub fn commit_container(
        &self,
        word: &str,
        req: &CommitRequest,
    ) -> std::result::Result<Digest, EngineError> {
        let name = match &req.reference {
            Some(r) => Some(Reference::parse(r).map_err(|e| EngineError::BadReference {
                word: r.clone(),
                why: e.to_string(),
            })?),
            None => None,
        };
        let (records, c) = self.find(word)?;
        let image: Digest = c.record.image.parse().map_err(|_| CommitError::Base {
            id: c.record.image.clone(),
            why: "the container's record does not name an image ID".into(),
        })?;
        let base = self.image_config(&image)?;
        let mut run = container_run_config(base.config.clone().unwrap_or_default(), &c.record);
        for change in &req.changes {
            apply_change(&mut run, change)?;
        }
        let id = &c.record.id;
        let upper = records.upper_dir(id);
        let writing = self.store.writing()?;
        let _paused = (c.state.status.is_running() && c.state.pid > 0)
            .then(|| super::procfs::pause(c.state.pid));
        let layer = if upper.exists() {
            let owners = upper_owners(&upper, &records.dir_of(id).join("ownership.json"))?;
            layer_from_upper(&self.store, &writing, &upper, &owners)?
        } else {
            None
        };
        let cmd = if c.record.config.cmd.is_empty() {
            c.record.argv()
        } else {
            c.record.config.cmd.clone()
        };
        let spec = ImageSpec {
            base: Some(image),
            steps: vec![Step {
                layer,
                history: History {
                    created_by: Some(cmd.join(" ")),
                    author: req.author.clone(),
                    comment: req.message.clone(),
                    ..History::default()
                },
            }],
            run: Some(run),
            comment: req.message.clone(),
            author: req.author.clone(),
            tags: name.into_iter().collect(),
        };
        Ok(write_image(&self.store, &writing, &spec)?)
    }
}

/// The image's run config with what the container runs (docker commits the container's
/// config: its command, env, user, workdir, labels, exposed ports).
fn container_run_config(mut run: RunConfig, r: &crate::state::Record) -> RunConfig {
    let c = &r.config;
    run.exposed_ports.extend(c.exposed_ports.keys().cloned());
    run.env = c.env.clone();
    run.cmd = Some(c.cmd.clone()).filter(|v| !v.is_empty());
    if !c.entrypoint.is_empty() {
        run.entrypoint = Some(c.entrypoint.clone());
    }
    run.user = c.user.clone();
    run.working_dir = c.working_dir.clone();
    run.labels = c.labels.clone();
    if c.stop_signal.is_some() {
        run.stop_signal = c.stop_signal.clone();
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::store;
    use crate::tarindex::{Index, Kind};

    #[test]
    fn an_upper_dir_becomes_a_layer_under_an_image_and_empty_is_none() {
        let (d, store) = store();
        let up = d.path().join("upper");
        fs::create_dir_all(up.join("etc")).unwrap();
        let owners = upper_owners(&up, &d.path().join("own.json")).unwrap();
        let w = store.writing().unwrap();
        assert_eq!(
            layer_from_upper(&store, &w, &up.join("etc"), &owners).unwrap(),
            None
        );

        fs::write(up.join("etc/hostname"), b"box\n").unwrap();
        fs::write(up.join("etc/.wh.motd"), b"").unwrap();
        fs::write(up.join("etc/hosts"), b"").unwrap(); // a runtime's mount point: left out
        owners
            .set(
                &up.join("etc/hostname"),
                b"etc/hostname",
                libc::S_IFREG,
                mapping::Own {
                    uid: 7,
                    gid: 8,
                    mode: libc::S_IFREG | 0o640,
                    rdev: 0,
                },
            )
            .unwrap();
        let l = layer_from_upper(&store, &w, &up, &owners).unwrap().unwrap();
        assert!(store.has_layer(&l.diff_id) && store.has_blob(l.diff_id.digest()));
        let idx = Index::open(fs::read(store.layer_index(&l.diff_id)).unwrap()).unwrap();
        let get = |p: &str| idx.get(idx.lookup(p.as_bytes()).unwrap()).unwrap();
        let h = get("etc/hostname");
        assert_eq!((h.uid(), h.gid(), h.mode()), (7, 8, 0o640));
        assert_eq!(get("etc/motd").kind(), Kind::Whiteout);
        assert_eq!(idx.lookup(b"etc/hosts"), None);

        let base = write_image(
            &store,
            &w,
            &ImageSpec {
                steps: vec![Step {
                    layer: Some(l.clone()),
                    history: History::default(),
                }],
                tags: vec![Reference::parse("base:1").unwrap()],
                ..ImageSpec::default()
            },
        )
        .unwrap();
        let run = RunConfig {
            cmd: Some(vec!["sh".into()]),
            ..RunConfig::default()
        };
        let child = write_image(
            &store,
            &w,
            &ImageSpec {
                base: Some(base.clone()),
                steps: vec![
                    Step {
                        layer: None,
                        history: History {
                            created_by: Some("nothing".into()),
                            ..History::default()
                        },
                    },
                    Step {
                        layer: Some(l.clone()),
                        history: History::default(),
                    },
                ],
                run: Some(run.clone()),
                comment: Some("msg".into()),
                author: Some("me".into()),
                tags: vec![Reference::parse("child").unwrap()],
            },
        )
        .unwrap();
        let c = ImageConfig::parse(&store.read_blob(&child).unwrap()).unwrap();
        assert_eq!(
            c.rootfs.diff_ids,
            vec![l.diff_id.clone(), l.diff_id.clone()]
        );
        assert_eq!(c.history.len(), 3);
        assert!(c.history[1].empty_layer && !c.history[2].empty_layer);
        assert_eq!(c.config, Some(run));
        assert_eq!(
            (c.comment.as_deref(), c.author.as_deref()),
            (Some("msg"), Some("me"))
        );
        assert_eq!(store.resolve("child:latest").unwrap().id, child);
        assert_eq!(store.image_layers(&child).unwrap().len(), 2);
    }

    #[test]
    fn a_tar_stream_becomes_a_layer_and_junk_is_named() {
        let (_d, store) = store();
        let w = store.writing().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        let l = layer_from_tar(&store, &w, &b.into_inner().unwrap()[..], "x.tar").unwrap();
        assert!(store.has_layer(&l.diff_id));
        let e = layer_from_tar(&store, &w, &b"not a tar at all"[..], "junk").unwrap_err();
        assert!(e.to_string().contains("junk is not a tar archive"), "{e}");
        let e = layer_from_tar(&store, &w, &b""[..], "nothing").unwrap_err();
        assert!(e.to_string().contains("nothing is empty"), "{e}");
    }
}
