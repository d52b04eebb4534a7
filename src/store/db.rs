//! `images.json`: tags and image records, replaced atomically under the `lock` flock, and
//! the rules that turn a user's word into an image.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Write};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::{Result, Store, StoreError, publish, wait_for_lock};
use crate::digest::Digest;
use crate::reference::Reference;

/// The image list: what `images.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDb {
    /// Full normalised reference `registry/repository:tag` -> manifest digest.
    #[serde(default)]
    pub tags: BTreeMap<String, Digest>,
    /// Manifest digest -> the image it describes. A record no tag points at is a dangling
    /// image (`<none>`), kept until `rmi` or prune removes it.
    #[serde(default)]
    pub images: BTreeMap<Digest, ImageRecord>,
}

/// One stored image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest: the image ID.
    pub config: Digest,
    /// `registry/repository@sha256:...` names it was pulled by (docker's RepoDigests).
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// When it entered the store, seconds since the epoch.
    #[serde(default)]
    pub added: u64,
}

/// What a user's word named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub manifest: Digest,
    /// The image ID (config digest).
    pub id: Digest,
    /// The full reference, when the word named a tag.
    pub tag: Option<String>,
}

/// Held while changing `images.json` (or collecting garbage); released on drop.
pub struct DbLock {
    _lock: Flock<File>,
}

/// Seconds since the epoch, for [`ImageRecord::added`].
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ImageDb {
    /// Records (or refreshes) the image of `manifest`, adding `repo_digest` if new.
    pub fn add_image(&mut self, manifest: &Digest, config: &Digest, repo_digest: Option<&str>) {
        let rec = self
            .images
            .entry(manifest.clone())
            .or_insert_with(|| ImageRecord {
                config: config.clone(),
                repo_digests: Vec::new(),
                added: now(),
            });
        if let Some(rd) = repo_digest
            && !rec.repo_digests.iter().any(|r| r == rd)
        {
            rec.repo_digests.push(rd.to_owned());
        }
    }

    /// Points the full reference `name` at `manifest` (which must be recorded); returns
    /// the manifest it pointed at before. That one stays listed, dangling if untagged.
    pub fn tag(&mut self, name: &str, manifest: &Digest) -> Option<Digest> {
        self.tags.insert(name.to_owned(), manifest.clone())
    }

    pub fn untag(&mut self, name: &str) -> Option<Digest> {
        self.tags.remove(name)
    }

    /// Forgets an image record and every tag pointing at it; returns those tags.
    pub fn remove_image(&mut self, manifest: &Digest) -> Vec<String> {
        self.images.remove(manifest);
        let tags = self.tags_of(manifest);
        for t in &tags {
            self.tags.remove(t);
        }
        tags
    }

    /// The tags pointing at `manifest`, sorted.
    pub fn tags_of(&self, manifest: &Digest) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, m)| *m == manifest)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The manifests recorded for image ID `id` (usually one).
    pub fn manifests_of(&self, id: &Digest) -> Vec<Digest> {
        self.images
            .iter()
            .filter(|(_, r)| r.config == *id)
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Records no tag points at.
    pub fn dangling(&self) -> Vec<Digest> {
        let tagged: BTreeSet<&Digest> = self.tags.values().collect();
        self.images
            .keys()
            .filter(|m| !tagged.contains(m))
            .cloned()
            .collect()
    }

    /// Turns a user's word into an image, as docker does: a full 64-hex or `sha256:` form is
    /// an ID (or ID prefix); otherwise the word is first a reference (`busybox`,
    /// `docker.io/library/busybox:latest`, `name@sha256:...`), then, if it is hex, an ID
    /// prefix. An ID prefix matching several images is an error listing them.
    pub fn resolve(&self, word: &str) -> Result<Resolved> {
        if let Some(hex) = word.strip_prefix("sha256:") {
            return match is_hex(hex, 1) {
                true => self.by_id_prefix(word, hex),
                false => Err(StoreError::NoSuchImage(word.to_owned())),
            };
        }
        if is_hex(word, 64) {
            return self.by_id_prefix(word, word);
        }
        match Reference::parse(word) {
            Ok(r) => {
                if let Some(found) = self.by_reference(&r) {
                    return Ok(found);
                }
            }
            Err(source) if !is_hex(word, 1) => {
                return Err(StoreError::BadReference {
                    word: word.to_owned(),
                    source,
                });
            }
            Err(_) => {}
        }
        if is_hex(word, 1) {
            return self.by_id_prefix(word, word);
        }
        Err(StoreError::NoSuchImage(word.to_owned()))
    }

    fn by_reference(&self, r: &Reference) -> Option<Resolved> {
        if let Some(d) = &r.digest {
            let rec = self.images.get(d)?;
            return Some(Resolved {
                manifest: d.clone(),
                id: rec.config.clone(),
                tag: None,
            });
        }
        let name = r.to_string();
        let manifest = self.tags.get(&name)?;
        let rec = self.images.get(manifest)?;
        Some(Resolved {
            manifest: manifest.clone(),
            id: rec.config.clone(),
            tag: Some(name),
        })
    }

    fn by_id_prefix(&self, word: &str, hex: &str) -> Result<Resolved> {
        let ids: BTreeSet<&Digest> = self
            .images
            .values()
            .map(|r| &r.config)
            .filter(|id| id.hex().starts_with(hex))
            .collect();
        let id = match ids.len() {
            0 => return Err(StoreError::NoSuchImage(word.to_owned())),
            1 => ids.into_iter().next().cloned(),
            _ => {
                return Err(StoreError::AmbiguousId {
                    prefix: word.to_owned(),
                    candidates: ids.iter().map(|d| d.short().to_owned()).collect(),
                });
            }
        };
        let Some(id) = id else {
            return Err(StoreError::NoSuchImage(word.to_owned()));
        };
        // several manifests of one image: prefer a tagged one, then the newest
        let tagged: BTreeSet<&Digest> = self.tags.values().collect();
        let manifest = self
            .images
            .iter()
            .filter(|(_, r)| r.config == id)
            .max_by_key(|(m, r)| (tagged.contains(m), r.added))
            .map(|(m, _)| m.clone())
            .ok_or_else(|| StoreError::NoSuchImage(word.to_owned()))?;
        Ok(Resolved {
            manifest,
            id,
            tag: None,
        })
    }
}

/// `s` is lowercase hex, `min..=64` digits.
fn is_hex(s: &str, min: usize) -> bool {
    (min..=64).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Store {
    /// The image list as it is now (no lock: the file is only ever replaced whole).
    pub fn images(&self) -> Result<ImageDb> {
        let path = self.paths.images_json();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::ParseDb { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ImageDb::default()),
            Err(source) => Err(StoreError::ReadDb { path, source }),
        }
    }

    /// [`ImageDb::resolve`] on the current image list.
    pub fn resolve(&self, word: &str) -> Result<Resolved> {
        self.images()?.resolve(word)
    }

    /// Takes the store's exclusive lock (blocks until other writers of `images.json` are done).
    pub fn lock(&self) -> Result<DbLock> {
        let lock = wait_for_lock(&self.paths.lock_file(), FlockArg::LockExclusive)?;
        Ok(DbLock { _lock: lock })
    }

    /// Read-modify-write of `images.json` under the lock: `f` changes the list; if it
    /// returns `Ok` and changed something, the new list replaces the old atomically. An
    /// error from `f` leaves the file untouched.
    pub fn update<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut ImageDb) -> Result<T, E>,
    ) -> Result<T, E> {
        let _lock = self.lock()?;
        let mut db = self.images()?;
        let before = db.clone();
        let out = f(&mut db)?;
        if db != before {
            self.write_db(&db)?;
        }
        Ok(out)
    }

    fn write_db(&self, db: &ImageDb) -> Result<()> {
        let path = self.paths.images_json();
        let err = |source| StoreError::WriteDb {
            path: path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec_pretty(db).map_err(|e| err(e.into()))?;
        bytes.push(b'\n');
        let (mut file, tmp) = self.tmp_file("images")?;
        let res = file
            .write_all(&bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| publish(&tmp, &path));
        if let Err(source) = res {
            let _ = fs::remove_file(&tmp);
            return Err(err(source));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::store;
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    /// Two images whose IDs share no first digit, plus one whose ID shares a prefix.
    fn db() -> (ImageDb, Digest, Digest) {
        let mut db = ImageDb::default();
        let (m1, c1) = (d("m1"), d("c1"));
        let (m2, c2) = (d("m2"), d("c2"));
        db.add_image(&m1, &c1, Some("docker.io/library/busybox@sha256:00"));
        db.add_image(&m2, &c2, None);
        db.tag("docker.io/library/busybox:latest", &m1);
        db.tag("127.0.0.1:5000/app:v1", &m2);
        (db, c1, c2)
    }

    #[test]
    fn resolves_names_ids_and_prefixes() {
        let (db, c1, c2) = db();
        for word in [
            "busybox",
            "busybox:latest",
            "library/busybox",
            "docker.io/library/busybox:latest",
        ] {
            let r = db.resolve(word).unwrap();
            assert_eq!(r.id, c1, "{word}");
            assert_eq!(r.tag.as_deref(), Some("docker.io/library/busybox:latest"));
        }
        assert_eq!(db.resolve("127.0.0.1:5000/app:v1").unwrap().id, c2);
        assert!(matches!(
            db.resolve("127.0.0.1:5000/app"),
            Err(StoreError::NoSuchImage(_))
        ));
        // IDs: full, short, with sha256:, and a manifest digest after @
        for word in [
            c2.hex().to_owned(),
            c2.short().to_owned(),
            c2.hex()[..3].to_owned(),
            c2.to_string(),
            format!("sha256:{}", &c2.hex()[..5]),
        ] {
            assert_eq!(db.resolve(&word).unwrap().id, c2, "{word}");
        }
        let r = db
            .resolve(&format!("127.0.0.1:5000/app@{}", d("m2")))
            .unwrap();
        assert_eq!((r.manifest, r.id), (d("m2"), c2));
        assert!(matches!(
            db.resolve("nothere"),
            Err(StoreError::NoSuchImage(w)) if w == "nothere"
        ));
        assert!(matches!(
            db.resolve("Bad_Name!"),
            Err(StoreError::BadReference { .. })
        ));
    }

    #[test]
    fn ambiguous_prefix_lists_candidates() {
        let mut db = ImageDb::default();
        // find two configs whose IDs share a first hex digit
        let mut by_first: BTreeMap<u8, Digest> = BTreeMap::new();
        let mut pair = None;
        for i in 0..100 {
            let c = d(&format!("c{i}"));
            let first = c.hex().as_bytes()[0];
            if let Some(other) = by_first.insert(first, c.clone()) {
                pair = Some((other, c));
                break;
            }
        }
        let (a, b) = pair.unwrap();
        db.add_image(&d("ma"), &a, None);
        db.add_image(&d("mb"), &b, None);
        let prefix = &a.hex()[..1];
        // a one-hex-digit word is no valid name only if it is not a tag: it is, but untagged
        let err = db.resolve(prefix).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::AmbiguousId { .. }), "{msg}");
        assert!(msg.contains(a.short()) && msg.contains(b.short()), "{msg}");
        // one image under two manifests is not ambiguous
        db.add_image(&d("ma2"), &a, None);
        assert_eq!(db.resolve(&a.hex()[..12]).unwrap().id, a);
    }

    #[test]
    fn retag_leaves_the_old_image_dangling() {
        let (mut db, c1, _) = db();
        let (m3, c3) = (d("m3"), d("c3"));
        db.add_image(&m3, &c3, None);
        let old = db.tag("docker.io/library/busybox:latest", &m3);
        assert_eq!(old, Some(d("m1")));
        assert_eq!(db.dangling(), vec![d("m1")]);
        assert_eq!(db.resolve(c1.short()).unwrap().manifest, d("m1"));
        assert_eq!(
            db.remove_image(&m3),
            vec!["docker.io/library/busybox:latest"]
        );
        assert!(db.resolve("busybox").is_err());
    }

    #[test]
    fn concurrent_updates_never_lose_a_tag() {
        let (_t, s) = store();
        let m = s.put_blob(b"manifest").unwrap();
        std::thread::scope(|scope| {
            for i in 0..16 {
                let s = s.clone();
                let m = m.clone();
                scope.spawn(move || {
                    s.update(|db| {
                        db.add_image(&m, &Digest::of(b"config"), None);
                        db.tag(&format!("docker.io/library/t:{i}"), &m);
                        Ok::<_, StoreError>(())
                    })
                    .unwrap()
                });
            }
        });
        let db = s.images().unwrap();
        assert_eq!(db.tags.len(), 16);
        assert_eq!(fs::read_dir(s.paths().tmp_dir()).unwrap().count(), 0);
        // an error inside update changes nothing
        let r: Result<()> = s.update(|db| {
            db.tags.clear();
            Err(StoreError::EmptyChain)
        });
        assert!(r.is_err());
        assert_eq!(s.images().unwrap().tags.len(), 16);
    }
}
