//! Garbage collection (blobs, layers and chains no image or container needs), the
//! "images used by containers" check, and disk usage for `system df`.
//!
//! Writers that add content before recording it (pull, load, import, commit, build) hold
//! [`Store::writing`] (a shared `flock` on `gc.lock`) from their first blob to their
//! `images.json` update; GC takes that lock exclusively and skips its sweep while any writer
//! runs, so it never removes content an image is about to name.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::Deserialize;

use super::{Result, Store, StoreError, lock_file, wait_for_lock};
use crate::digest::{ChainId, DiffId, Digest, chain_id};

/// Held by a command that writes blobs/layers before recording them; see [`Store::writing`].
pub struct WriteGuard {
    _lock: Flock<File>,
}

/// What [`Store::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// A writer was running: nothing was swept (the next GC will).
    pub skipped: bool,
    pub blobs: usize,
    pub layers: usize,
    pub chains: usize,
    /// Bytes freed (each inode counted once).
    pub bytes: u64,
}

/// Figures for `system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Distinct image IDs.
    pub images: usize,
    /// Of those, images some container uses.
    pub images_active: usize,
    /// Bytes of blobs, layers and chain indexes (each inode once).
    pub images_size: u64,
    /// Bytes only images no container uses need.
    pub images_reclaimable: u64,
    pub containers: usize,
    pub containers_size: u64,
    /// Leftovers of running commands and kept partial downloads.
    pub tmp_size: u64,
    pub partial_size: u64,
}

/// Just the references a manifest makes (reachability only; the model is in `image`).
#[derive(Deserialize)]
struct ManifestRefs {
    config: Desc,
    #[serde(default)]
    layers: Vec<Desc>,
}

#[derive(Deserialize)]
struct Desc {
    digest: Digest,
}

#[derive(Deserialize)]
struct ConfigRefs {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<DiffId>,
}

/// What must survive a GC.
#[derive(Default)]
struct Live {
    blobs: HashSet<String>,
    layers: HashSet<String>,
    chains: HashSet<String>,
}

impl Live {
    fn add_config(&mut self, store: &Store, config: &Digest) {
        self.blobs.insert(config.hex().to_owned());
        if let Ok(diff_ids) = store.image_layers(config) {
            for d in &diff_ids {
                self.layers.insert(d.hex().to_owned());
                // an uncompressed layer blob is named by its diff_id
                self.blobs.insert(d.hex().to_owned());
            }
            for n in 1..=diff_ids.len() {
                if let Some(c) = chain_id(&diff_ids[..n]) {
                    self.chains.insert(c.hex().to_owned());
                }
            }
        }
    }
}

impl Store {
    /// Taken (shared) by a command from its first new blob or layer until the image
    /// naming them is recorded; blocks only while a GC sweeps.
    pub fn writing(&self) -> Result<WriteGuard> {
        let lock = wait_for_lock(&self.paths.gc_lock_file(), FlockArg::LockShared)?;
        Ok(WriteGuard { _lock: lock })
    }

    /// The diff_ids of the image whose config is `config`, bottom first.
    pub fn image_layers(&self, config: &Digest) -> Result<Vec<DiffId>> {
        let bytes = self.read_blob(config)?;
        let c: ConfigRefs =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::ParseJson {
                digest: config.clone(),
                what: "image config",
                source,
            })?;
        Ok(c.rootfs.diff_ids)
    }

    /// The uncompressed size of an image: the sum of its layer tars.
    pub fn image_size(&self, config: &Digest) -> Result<u64> {
        let mut total = 0;
        for d in self.image_layers(config)? {
            total += self.layer_size(&d)?;
        }
        Ok(total)
    }

    /// Image ID -> IDs of the containers whose `config.json` names it.
    pub fn container_images(&self) -> Result<BTreeMap<Digest, Vec<String>>> {
        let dir = self.paths.containers_dir();
        let err = |source| StoreError::ReadContainers {
            path: dir.clone(),
            source,
        };
        let mut out: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(source) => return Err(err(source)),
        };
        for entry in entries {
            let entry = entry.map_err(err)?;
            let Ok(bytes) = fs::read(entry.path().join("config.json")) else {
                continue; // being created or removed
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            let id = ["image_id", "ImageId", "Image"]
                .iter()
                .filter_map(|k| v.get(k)?.as_str()?.parse::<Digest>().ok())
                .next();
            if let Some(id) = id {
                out.entry(id)
                    .or_default()
                    .push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(out)
    }

    /// The containers using image `id` (rmi refuses the image unless forced).
    pub fn containers_using(&self, id: &Digest) -> Result<Vec<String>> {
        Ok(self.container_images()?.remove(id).unwrap_or_default())
    }

    /// The image configs the build cache (`buildcache.json`, written by `build`) names.
    fn build_cache_configs(&self) -> Vec<Digest> {
        #[derive(Deserialize)]
        struct Cache {
            #[serde(default)]
            entries: BTreeMap<String, Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            config: Digest,
        }
        fs::read(self.paths.buildcache_json())
            .ok()
            .and_then(|b| serde_json::from_slice::<Cache>(&b).ok())
            .map(|c| c.entries.into_values().map(|e| e.config).collect())
            .unwrap_or_default()
    }

    fn live_set(&self) -> Result<Live> {
        let db = self.images()?;
        let mut live = Live::default();
        for (manifest, rec) in &db.images {
            live.blobs.insert(manifest.hex().to_owned());
            // a repo digest names what the registry serves: the manifest, or the
            // multi-platform index pull kept beside it
            for rd in &rec.repo_digests {
                if let Some((_, d)) = rd.rsplit_once('@')
                    && let Ok(d) = d.parse::<Digest>()
                {
                    live.blobs.insert(d.hex().to_owned());
                }
            }
            if let Ok(bytes) = self.read_blob(manifest)
                && let Ok(m) = serde_json::from_slice::<ManifestRefs>(&bytes)
            {
                live.blobs.insert(m.config.digest.hex().to_owned());
                for l in &m.layers {
                    live.blobs.insert(l.digest.hex().to_owned());
                }
            }
            live.add_config(self, &rec.config);
        }
        for id in self.container_images()?.keys() {
            live.add_config(self, id);
        }
        // the build cache's step results (BuildKit's cache outlives `image prune`; only
        // `system prune` drops it, by removing buildcache.json first)
        for id in self.build_cache_configs() {
            live.add_config(self, &id);
        }
        Ok(live)
    }

    /// Removes blobs, layers and chain indexes no image record or container needs. Runs
    /// under the store lock; skips the sweep while a writer holds [`Store::writing`].
    pub fn gc(&self) -> Result<GcReport> {
        let Some(_gc) = lock_file(&self.paths.gc_lock_file(), FlockArg::LockExclusiveNonblock)?
        else {
            return Ok(GcReport {
                skipped: true,
                ..GcReport::default()
            });
        };
        let _db = self.lock()?;
        let live = self.live_set()?;
        let mut report = GcReport::default();
        // a layer or chain directory is renamed into tmp/ first, so a crash mid-removal
        // never leaves half of one under its name
        for (dir, keep, count, is_dir) in [
            (self.paths.layers_dir(), &live.layers, 0usize, true),
            (self.paths.chains_dir(), &live.chains, 1, true),
            (self.paths.blobs_dir(), &live.blobs, 2, false),
        ] {
            let entries = fs::read_dir(&dir).map_err(|source| StoreError::Remove {
                path: dir.clone(),
                source,
            })?;
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if Digest::from_hex(name).is_err() || keep.contains(name) {
                    continue;
                }
                let path = entry.path();
                let rm = |source| StoreError::Remove {
                    path: path.clone(),
                    source,
                };
                report.bytes += unique_bytes(&path, &mut HashSet::new()).map_err(rm)?;
                if is_dir {
                    let doomed = self.tmp_path("gc");
                    fs::rename(&path, &doomed).map_err(rm)?;
                    fs::remove_dir_all(&doomed).map_err(rm)?;
                } else {
                    fs::remove_file(&path).map_err(rm)?;
                }
                match count {
                    0 => report.layers += 1,
                    1 => report.chains += 1,
                    _ => report.blobs += 1,
                }
            }
        }
        Ok(report)
    }

    /// Space used, for `system df`.
    pub fn du(&self) -> Result<DiskUsage> {
        let db = self.images()?;
        let used = self.container_images()?;
        let ids: BTreeSet<&Digest> = db.images.values().map(|r| &r.config).collect();
        let measure = |p: &Path, seen: &mut HashSet<(u64, u64)>| {
            unique_bytes(p, seen).map_err(|source| StoreError::Measure {
                path: p.to_path_buf(),
                source,
            })
        };
        let mut seen = HashSet::new();
        let mut images_size = 0;
        for dir in [
            self.paths.blobs_dir(),
            self.paths.layers_dir(),
            self.paths.chains_dir(),
        ] {
            images_size += measure(&dir, &mut seen)?;
        }
        // reclaimable: layers no container's image needs
        let mut needed = HashSet::new();
        for id in used.keys() {
            needed.extend(self.image_layers(id).unwrap_or_default());
        }
        let mut reclaim_seen = HashSet::new();
        let mut images_reclaimable = 0;
        for id in &ids {
            for d in self.image_layers(id).unwrap_or_default() {
                if !needed.contains(&d) {
                    images_reclaimable +=
                        measure(&self.paths.layer_dir(&d), &mut reclaim_seen).unwrap_or(0);
                }
            }
        }
        let containers = match fs::read_dir(self.paths.containers_dir()) {
            Ok(e) => e.count(),
            Err(_) => 0,
        };
        Ok(DiskUsage {
            images: ids.len(),
            images_active: ids.iter().filter(|id| used.contains_key(**id)).count(),
            images_size,
            images_reclaimable,
            containers,
            containers_size: measure(&self.paths.containers_dir(), &mut seen)?,
            tmp_size: measure(&self.paths.tmp_dir(), &mut seen)?,
            partial_size: measure(&self.paths.partials_dir(), &mut seen)?,
        })
    }

    /// The chain IDs of every prefix of an image's layers (what its containers mount).
    pub fn image_chains(&self, config: &Digest) -> Result<Vec<ChainId>> {
        let d = self.image_layers(config)?;
        Ok((1..=d.len()).filter_map(|n| chain_id(&d[..n])).collect())
    }
}

/// Bytes under `path` (a file or a tree), counting each inode once across calls sharing
/// `seen`. A missing path counts 0.
fn unique_bytes(path: &Path, seen: &mut HashSet<(u64, u64)>) -> io::Result<u64> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0;
    if seen.insert((meta.dev(), meta.ino())) && !meta.is_dir() {
        total += meta.len();
    }
    if meta.is_dir() {
        let mut stack: Vec<PathBuf> = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let m = entry.metadata()?;
                if m.is_dir() {
                    stack.push(entry.path());
                } else if seen.insert((m.dev(), m.ino())) {
                    total += m.len();
                }
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::store;
    use super::*;
    use std::io::Write;

    /// Stores an image of two uncompressed layers and records it; returns (manifest, config).
    fn image(s: &Store, tag: &str, layers: &[&[u8]]) -> (Digest, Digest) {
        let mut diff_ids = Vec::new();
        for bytes in layers {
            let d = DiffId(Digest::of(bytes));
            let stage = s.stage_layer().unwrap();
            let (mut t, mut i) = stage.create_files().unwrap();
            t.write_all(bytes).unwrap();
            i.write_all(b"idx").unwrap();
            stage.commit(&d).unwrap();
            s.link_layer_blob(&d).unwrap();
            diff_ids.push(d);
        }
        let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let config = s.put_blob(config.to_string().as_bytes()).unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "config": {"digest": config, "size": 1},
            "layers": diff_ids.iter().map(|d| serde_json::json!({"digest": d, "size": 1})).collect::<Vec<_>>(),
        });
        let manifest = s.put_blob(manifest.to_string().as_bytes()).unwrap();
        s.update(|db| {
            db.add_image(&manifest, &config, None);
            db.tag(tag, &manifest);
            Ok::<_, StoreError>(())
        })
        .unwrap();
        (manifest, config)
    }

    fn names(dir: &Path) -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn gc_keeps_what_images_and_containers_need() {
        let (_t, s) = store();
        let (m1, c1) = image(&s, "docker.io/library/a:latest", &[b"base", b"one"]);
        let (m2, c2) = image(&s, "docker.io/library/b:latest", &[b"base", b"two"]);
        let stray = s.put_blob(b"stray").unwrap();
        let before = names(&s.paths().blobs_dir());
        assert_eq!(s.gc().unwrap().blobs, 1);
        assert!(!s.has_blob(&stray));
        assert_eq!(names(&s.paths().blobs_dir()).len(), before.len() - 1);

        // a container uses b; b's record goes (rmi -f): its content stays
        let cdir = s.paths().container_dir("c0ffee");
        fs::create_dir_all(&cdir).unwrap();
        fs::write(
            cdir.join("config.json"),
            format!("{{\"image_id\":\"{c2}\"}}"),
        )
        .unwrap();
        assert_eq!(s.containers_using(&c2).unwrap(), vec!["c0ffee"]);
        assert!(s.containers_using(&c1).unwrap().is_empty());
        s.update(|db| {
            db.remove_image(&m2);
            db.remove_image(&m1);
            Ok::<_, StoreError>(())
        })
        .unwrap();
        let r = s.gc().unwrap();
        // a's config, its manifest, b's manifest and layer "one" (blob + dir) go
        assert_eq!((r.layers, r.blobs), (1, 4), "{r:?}");
        assert!(s.has_layer(&DiffId(Digest::of(b"two"))));
        assert!(s.has_layer(&DiffId(Digest::of(b"base"))));
        assert!(!s.has_layer(&DiffId(Digest::of(b"one"))));
        assert!(s.has_blob(&c2));
        // no container: everything goes
        fs::remove_dir_all(&cdir).unwrap();
        s.gc().unwrap();
        assert!(names(&s.paths().blobs_dir()).is_empty());
        assert!(names(&s.paths().layers_dir()).is_empty());
        assert!(names(&s.paths().tmp_dir()).is_empty());
    }

    #[test]
    fn gc_keeps_the_index_a_repo_digest_names() {
        let (_t, s) = store();
        let (m, c) = image(&s, "docker.io/library/a:latest", &[b"base"]);
        let index = s.put_blob(b"{\"manifests\":[]}").unwrap();
        s.update(|db| {
            db.add_image(&m, &c, Some(&format!("docker.io/library/a@{index}")));
            Ok::<_, StoreError>(())
        })
        .unwrap();
        assert_eq!(s.gc().unwrap().blobs, 0);
        assert!(s.has_blob(&index));
        s.update(|db| {
            db.remove_image(&m);
            Ok::<_, StoreError>(())
        })
        .unwrap();
        s.gc().unwrap();
        assert!(!s.has_blob(&index));
    }

    #[test]
    fn gc_waits_for_writers() {
        let (_t, s) = store();
        let stray = s.put_blob(b"stray").unwrap();
        let guard = s.writing().unwrap();
        assert!(s.gc().unwrap().skipped);
        assert!(s.has_blob(&stray));
        drop(guard);
        assert_eq!(s.gc().unwrap().blobs, 1);
    }

    #[test]
    fn du_counts_hardlinked_layers_once() {
        let (_t, s) = store();
        let big = vec![7u8; 100_000];
        let (_, c) = image(&s, "docker.io/library/a:latest", &[&big]);
        let du = s.du().unwrap();
        assert_eq!(du.images, 1);
        assert_eq!(du.images_active, 0);
        assert!(
            du.images_size >= 100_000 && du.images_size < 110_000,
            "{du:?}"
        );
        assert_eq!(du.images_reclaimable, 100_003);
        assert_eq!(s.image_size(&c).unwrap(), 100_000);
    }
}
