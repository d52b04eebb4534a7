//! The build cache: `$CAMADA_ROOT/buildcache.json`, step key -> the image config (a blob)
//! the step produced.
//!
//! A key chains the parent's key, the instruction after expansion and what else the step
//! reads (build args in effect for RUN, the content hash of the files COPY/ADD read), so
//! a hit reproduces the exact config of the first build and an unchanged rebuild gives
//! the same image ID with no new layer. The store's GC keeps the configs (and their
//! layers) named here alive; `system prune` removes the file. Invariant: the file is
//! only ever replaced whole (temp, fsync, rename) under the store lock, and an entry is
//! used only when its config blob and every layer it names are still stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::BuildError;
use crate::digest::{Digest, Hasher};
use crate::image::ImageConfig;
use crate::store::{Store, now};

/// One cached step result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The image config after the step (stored as a blob).
    pub config: Digest,
    /// Seconds since the epoch when the entry was written.
    pub created: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    entries: BTreeMap<String, Entry>,
}

/// The cache as read at the start of a build.
pub struct Cache {
    entries: BTreeMap<String, Entry>,
}

/// The key of a step: `parent` (the previous step's key, or the base's) plus the words
/// that decide its result. Hex of SHA-256 over length-prefixed parts (no ambiguity).
pub fn key(parent: &str, parts: &[&str]) -> String {
    let mut h = Hasher::new();
    for p in std::iter::once(&parent).chain(parts) {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finish().hex().to_owned()
}

impl Cache {
    /// Reads the cache; a missing or unreadable file is an empty cache (it is only a cache).
    pub fn load(store: &Store) -> Cache {
        Cache {
            entries: read(store).entries,
        }
    }

    /// The config a step with `key` produced, when it and all its layers are still stored.
    pub fn get(&self, store: &Store, key: &str) -> Option<(Digest, ImageConfig)> {
        let e = self.entries.get(key)?;
        let bytes = store.read_blob(&e.config).ok()?;
        let config = ImageConfig::parse(&bytes).ok()?;
        config
            .rootfs
            .diff_ids
            .iter()
            .all(|d| store.has_layer(d))
            .then(|| (e.config.clone(), config))
    }

    /// Records `key -> config` (already stored as a blob), re-reading the file under the
    /// store lock so concurrent builds keep each other's entries.
    pub fn put(&mut self, store: &Store, key: &str, config: &Digest) -> Result<(), BuildError> {
        let entry = Entry {
            config: config.clone(),
            created: now(),
        };
        let _lock = store.lock()?;
        let mut file = read(store);
        file.entries.insert(key.to_owned(), entry.clone());
        let bytes = serde_json::to_vec(&file).map_err(|e| BuildError::CacheWrite(e.to_string()))?;
        store.replace_file(&store.paths().buildcache_json(), &bytes)?;
        self.entries.insert(key.to_owned(), entry);
        Ok(())
    }
}

fn read(store: &Store) -> File {
    std::fs::read(store.paths().buildcache_json())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Entries of the build cache and the bytes of the layers only they keep plus those of
/// the cache mounts (what `system prune` would free), for `system df`.
pub fn usage(store: &Store) -> (usize, u64) {
    let file = read(store);
    let mut in_images = std::collections::HashSet::new();
    if let Ok(db) = store.images() {
        for rec in db.images.values() {
            in_images.extend(store.image_layers(&rec.config).unwrap_or_default());
        }
    }
    let mut counted = std::collections::HashSet::new();
    let mut bytes = 0;
    for e in file.entries.values() {
        for d in store.image_layers(&e.config).unwrap_or_default() {
            if !in_images.contains(&d) && counted.insert(d.clone()) {
                bytes += store.layer_size(&d).unwrap_or(0);
            }
        }
    }
    let mounts = super::runmount::cache_mounts_size(store.paths());
    (file.entries.len(), bytes + mounts)
}

/// Forgets every entry and removes the `RUN --mount=type=cache` directories not in use
/// (`system prune`); the next GC then frees what only the entries kept. Returns how many
/// entries and cache mounts went.
pub fn clear(store: &Store) -> Result<usize, BuildError> {
    let mounts = super::runmount::prune_cache_mounts(store.paths()).map_err(|e| {
        BuildError::CacheWrite(format!(
            "removing the cache mounts in {}: {e}",
            store.paths().cache_mounts_dir().display()
        ))
    })?;
    let _lock = store.lock()?;
    let n = read(store).entries.len();
    match std::fs::remove_file(store.paths().buildcache_json()) {
        Ok(()) => Ok(n + mounts),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(mounts),
        Err(e) => Err(BuildError::CacheWrite(format!(
            "removing {}: {e}",
            store.paths().buildcache_json().display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_chain_and_do_not_collide() {
        let a = key("p", &["RUN a", ""]);
        assert_eq!(a, key("p", &["RUN a", ""]));
        assert_ne!(a, key("q", &["RUN a", ""]));
        // length prefixes: moving a boundary changes the key
        assert_ne!(key("p", &["ab", "c"]), key("p", &["a", "bc"]));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn entries_survive_reload_and_need_their_blobs() {
        let (_t, store) = crate::store::tests_support::store();
        let mut cache = Cache::load(&store);
        let cfg = ImageConfig::new(&crate::image::Platform::host(), "2026-01-01T00:00:00Z");
        let id = store.put_blob(&cfg.to_json().unwrap()).unwrap();
        cache.put(&store, "k1", &id).unwrap();
        let again = Cache::load(&store);
        assert_eq!(again.get(&store, "k1").map(|(d, _)| d), Some(id));
        assert!(again.get(&store, "k2").is_none());
        // a config naming a layer that is gone is no hit
        let mut gone = cfg.clone();
        gone.push_layer(crate::digest::DiffId(Digest::of(b"x")), Default::default());
        let gid = store.put_blob(&gone.to_json().unwrap()).unwrap();
        cache.put(&store, "k3", &gid).unwrap();
        assert!(Cache::load(&store).get(&store, "k3").is_none());
        assert_eq!(usage(&store).0, 2);
        assert_eq!(clear(&store).unwrap(), 2);
        assert!(Cache::load(&store).get(&store, "k1").is_none());
    }
}
