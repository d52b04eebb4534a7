//! The image verbs: list, tag, remove, inspect, history, prune — docker's rules for
//! which name goes and when an image may be deleted, over the store's image list.
//!
//! Every change to the image list happens inside one [`Store::update`] (under the store
//! lock), so a concurrent `tag` or `pull` is never lost; freeing content is the store's GC.

use std::collections::{BTreeSet, HashMap};

use super::{Engine, EngineError, HistoryRow, ImageRow, ListImages, PruneReport, Removed};
use crate::digest::{Digest, chain_id};
use crate::image::{ImageConfig, ImageInspect, InspectFacts, inspect_json, parse_rfc3339};
use crate::reference::Reference;
use crate::store::{ImageDb, Store};

/// `docker.io/library/busybox:latest` -> `busybox:latest` (as docker prints names).
pub(super) fn familiar(full: &str) -> String {
    Reference::parse(full).map_or_else(|_| full.to_string(), |r| r.familiar())
}

/// The config of image `id`, parsed.
pub(super) fn config(store: &Store, id: &Digest) -> Result<ImageConfig, EngineError> {
    let bytes = store.read_blob(id)?;
    ImageConfig::parse(&bytes).map_err(|e| EngineError::BadConfig {
        id: id.short().to_string(),
        why: e.to_string(),
    })
}

fn created(c: &ImageConfig) -> Option<i64> {
    c.created.as_deref().and_then(parse_rfc3339).map(|(s, _)| s)
}

/// The tags (full references) of image `id`, over all its manifests, sorted.
pub(super) fn tags_of_id(db: &ImageDb, id: &Digest) -> Vec<String> {
    let mut tags: Vec<String> = db
        .manifests_of(id)
        .iter()
        .flat_map(|m| db.tags_of(m))
        .collect();
    tags.sort();
    tags
}

/// The repo digests (`name@sha256:...`) recorded for image `id`.
fn repo_digests_of_id(db: &ImageDb, id: &Digest) -> Vec<String> {
    let mut out: Vec<String> = db
        .images
        .values()
        .filter(|r| &r.config == id)
        .flat_map(|r| r.repo_digests.iter().cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

impl Engine {
    /// `images`: one row per tag, plus `<none>` rows for dangling images; newest first.
    pub fn images(&self, req: &ListImages) -> Result<Vec<ImageRow>, EngineError> {
        let db = self.store.images()?;
        let filter = match &req.reference {
            Some(word) => {
                Some(
                    Reference::parse_named(word).map_err(|e| EngineError::BadReference {
                        word: word.clone(),
                        why: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        let mut facts: HashMap<Digest, (Option<i64>, u64)> = HashMap::new();
        let mut fact = |id: &Digest| -> Result<(Option<i64>, u64), EngineError> {
            if let Some(f) = facts.get(id) {
                return Ok(*f);
            }
            // a damaged image is still listed (so that it can be removed), without date
            // or size; inspect and history name what is wrong with it
            let f = (
                config(&self.store, id).ok().as_ref().and_then(created),
                self.store.image_size(id).unwrap_or(0),
            );
            facts.insert(id.clone(), f);
            Ok(f)
        };
        let mut rows = Vec::new();
        for (name, manifest) in &db.tags {
            let Some(rec) = db.images.get(manifest) else {
                continue;
            };
            let Ok(r) = Reference::parse(name) else {
                continue;
            };
            if let Some(f) = &filter
                && (f.name() != r.name() || (f.tag.is_some() && f.tag != r.tag))
            {
                continue;
            }
            if req.dangling == Some(true) {
                continue;
            }
            if !req.patterns.is_empty() {
                let name = r.familiar_name();
                let with_tag = format!("{name}:{}", r.tag.as_deref().unwrap_or(""));
                if !req
                    .patterns
                    .iter()
                    .any(|p| glob(p, &name) || glob(p, &with_tag))
                {
                    continue;
                }
            }
            let digest = rec.repo_digests.iter().find_map(|rd| {
                let (n, d) = rd.rsplit_once('@')?;
                (Reference::parse_named(n).ok()?.name() == r.name())
                    .then(|| d.parse().ok())
                    .flatten()
            });
            let (created, size) = fact(&rec.config)?;
            rows.push(ImageRow {
                id: rec.config.clone(),
                repository: Some(r.familiar_name()),
                tag: r.tag.clone(),
                digest,
                created,
                size,
            });
        }
        if filter.is_none() && req.patterns.is_empty() && req.dangling != Some(false) {
            let mut seen = BTreeSet::new();
            for manifest in db.dangling() {
                let Some(rec) = db.images.get(&manifest) else {
                    continue;
                };
                // an image with a tag under another manifest is not dangling
                if !tags_of_id(&db, &rec.config).is_empty() || !seen.insert(rec.config.clone()) {
                    continue;
                }
                let (created, size) = fact(&rec.config)?;
                rows.push(ImageRow {
                    id: rec.config.clone(),
                    repository: None,
                    tag: None,
                    digest: None,
                    created,
                    size,
                });
            }
        }
        rows.sort_by(|a, b| {
            b.created
                .cmp(&a.created)
                .then_with(|| a.repository.is_none().cmp(&b.repository.is_none()))
                .then_with(|| a.repository.cmp(&b.repository))
                .then_with(|| a.tag.cmp(&b.tag))
        });
        Ok(rows)
    }

    /// `tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &str) -> Result<(), EngineError> {
        let target_ref = Reference::parse(target).map_err(|e| EngineError::BadReference {
            word: target.to_string(),
            why: e.to_string(),
        })?;
        if target_ref.digest.is_some() {
            return Err(EngineError::BadReference {
                word: target.to_string(),
                why: "refusing to create a tag with a digest reference".into(),
            });
        }
        self.store.update(|db| {
            let found = db.resolve(source)?;
            db.tag(&target_ref.to_string(), &found.manifest);
            Ok::<_, EngineError>(())
        })
    }

    /// `rmi [-f] NAME`: docker's rules. A name of an image with other names only loses
    /// that name; the last name, or an ID, deletes the image (by ID, an image with several
    /// tags needs `force`); an image a container uses is kept unless `force`.
    pub fn remove_image(&self, word: &str, force: bool) -> Result<Vec<Removed>, EngineError> {
        let store = &self.store;
        let removed = store.update(|db| {
            let found = db.resolve(word)?;
            let id = found.id.clone();
            let tags = tags_of_id(db, &id);
            let users = store.containers_using(&id)?;
            let mut out = Vec::new();
            if let Some(tag) = &found.tag {
                if tags.len() > 1 {
                    db.untag(tag);
                    out.push(Removed::Untagged(familiar(tag)));
                    return Ok(out);
                }
                if let (Some(c), false) = (users.first(), force) {
                    return Err(EngineError::UsedByContainerTag {
                        name: word.to_string(),
                        container: short(c),
                        id: id.short().to_string(),
                    });
                }
            } else {
                if tags.len() > 1 && !force {
                    return Err(EngineError::MultipleRepositories {
                        id: id.short().to_string(),
                    });
                }
                if let (Some(c), false) = (users.first(), force) {
                    return Err(EngineError::UsedByContainer {
                        id: id.short().to_string(),
                        container: short(c),
                    });
                }
            }
            out.extend(delete_image(store, db, &id)?);
            Ok::<_, EngineError>(out)
        })?;
        store.gc()?;
        Ok(removed)
    }

    /// `inspect` of one image: docker's JSON shape.
    pub fn inspect_image(&self, word: &str) -> Result<ImageInspect, EngineError> {
        let db = self.store.images()?;
        let found = db.resolve(word)?;
        let config = config(&self.store, &found.id)?;
        let repo_tags: Vec<String> = tags_of_id(&db, &found.id)
            .iter()
            .map(|t| familiar(t))
            .collect();
        let repo_digests: Vec<String> = repo_digests_of_id(&db, &found.id)
            .iter()
            .map(|t| familiar(t))
            .collect();
        let size = self.store.image_size(&found.id)?;
        Ok(inspect_json(&InspectFacts {
            id: &found.id,
            repo_tags: &repo_tags,
            repo_digests: &repo_digests,
            parent: None,
            config: &config,
            size,
            last_tag_time: None,
        }))
    }

    /// `history`: one row per history entry, newest first; the top row carries the ID.
    pub fn history(&self, word: &str) -> Result<Vec<HistoryRow>, EngineError> {
        let found = self.store.resolve(word)?;
        let config = config(&self.store, &found.id)?;
        let mut rows = Vec::new();
        for (h, layer) in config.history_with_layers() {
            let size = match &layer {
                Some(d) => self.store.layer_size(d)?,
                None => 0,
            };
            rows.push(HistoryRow {
                id: None,
                created: h
                    .created
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .map(|(s, _)| s)
                    .or_else(|| created(&config)),
                created_by: h.created_by.clone().unwrap_or_default(),
                size,
                comment: h.comment.clone().unwrap_or_default(),
                empty_layer: layer.is_none(),
            });
        }
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top.id = Some(found.id.clone());
        }
        Ok(rows)
    }

    /// `image prune`: dangling images, or with `all` every image no container uses.
    pub fn prune_images(&self, all: bool) -> Result<PruneReport, EngineError> {
        let store = &self.store;
        let removed = store.update(|db| {
            let used = store.container_images()?;
            let mut doomed: BTreeSet<Digest> = BTreeSet::new();
            let tagged_ids: BTreeSet<Digest> = db
                .tags
                .values()
                .filter_map(|m| db.images.get(m).map(|r| r.config.clone()))
                .collect();
            for rec in db.images.values() {
                let unused = !used.contains_key(&rec.config);
                if unused && (all || !tagged_ids.contains(&rec.config)) {
                    doomed.insert(rec.config.clone());
                }
            }
            let mut out = Vec::new();
            for id in &doomed {
                out.extend(delete_image(store, db, id)?);
            }
            Ok::<_, EngineError>(out)
        })?;
        let report = store.gc()?;
        Ok(PruneReport {
            removed,
            reclaimed: report.bytes,
        })
    }

    /// `system prune`: stopped containers, then dangling (with `all`, unused) images, then
    /// the kept parts of interrupted downloads (those a running pull holds stay).
    pub fn prune_system(&self, all: bool) -> Result<SystemPrune, EngineError> {
        let containers = self.prune_containers()?;
        // the build cache goes first, so the image GC frees the layers only it kept
        let build_cache = crate::build::cache::clear(&self.store)?;
        let images = self.prune_images(all)?;
        let (_, partial_bytes) = self.store.prune_partials()?;
        Ok(SystemPrune {
            reclaimed: containers.reclaimed + images.reclaimed + partial_bytes,
            containers: containers.removed,
            images: images.removed,
            build_cache,
        })
    }
}

/// What [`Engine::prune_system`] removed.
#[derive(Debug, Clone, Default)]
pub struct SystemPrune {
    /// Full IDs of the containers removed.
    pub containers: Vec<String>,
    pub images: Vec<Removed>,
    /// Build cache entries dropped.
    pub build_cache: usize,
    /// Bytes freed in all.
    pub reclaimed: u64,
}

/// Shell-style matching of `*` (any run of characters but `/`) and `?`, as Go's
/// `path.Match` that docker's reference filter uses.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // classic two-pointer match with backtracking to the last `*`
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == n[ni] || (c == '?' && n[ni] != '/') => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) if n[sn] != '/' => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                _ => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn short(container: &str) -> String {
    container.chars().take(12).collect()
}

/// Removes image `id` from `db` (every tag, repo digest and manifest record) and says so
/// as docker does: `Untagged:` each name, `Deleted:` the ID, then the chain IDs of the
/// layers no remaining image shares (top first). The content goes at the next GC.
fn delete_image(store: &Store, db: &mut ImageDb, id: &Digest) -> Result<Vec<Removed>, EngineError> {
    let mut out = Vec::new();
    for t in tags_of_id(db, id) {
        db.untag(&t);
        out.push(Removed::Untagged(familiar(&t)));
    }
    for rd in repo_digests_of_id(db, id) {
        out.push(Removed::Untagged(familiar(&rd)));
    }
    for m in db.manifests_of(id) {
        db.remove_image(&m);
    }
    out.push(Removed::Deleted(id.clone()));
    let users = store.container_images()?;
    if users.contains_key(id) {
        // forced past a container: its layers stay for that container
        return Ok(out);
    }
    let mut kept: BTreeSet<Digest> = BTreeSet::new();
    let others: BTreeSet<Digest> = db
        .images
        .values()
        .map(|r| r.config.clone())
        .chain(users.into_keys())
        .collect();
    for other in &others {
        if other == id {
            continue;
        }
        if let Ok(chains) = store.image_chains(other) {
            kept.extend(chains.into_iter().map(|c| c.0));
        }
    }
    if let Ok(layers) = store.image_layers(id) {
        for n in (1..=layers.len()).rev() {
            if let Some(c) = chain_id(&layers[..n])
                && !kept.contains(&c.0)
            {
                out.push(Removed::Deleted(c.0));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_like_path_match() {
        assert!(glob("busybox", "busybox"));
        assert!(glob("busy*", "busybox"));
        assert!(glob("*:1.*", "app:1.36"));
        assert!(glob("a?p", "app"));
        assert!(!glob("busy*", "alpine"));
        assert!(!glob("*", "user/app"), "* does not cross /");
        assert!(glob("*/*", "user/app"));
        assert!(glob("", ""));
        assert!(!glob("", "x"));
    }
}
