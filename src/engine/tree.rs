//! `image tree`: an image's layer stack with what each layer adds, changes and deletes
//! relative to the layers below it, computed from the layer indexes (never the tars).
//!
//! A path in layer N is *added* when the merged view of layers 1..N-1 lacks it, *changed*
//! when that view has it (for a directory over a directory: only if its mode or owner
//! differ), and *deleted* when layer N whites it out, or makes its parent opaque without
//! bringing it back. The merged views are the store's cached chain indexes.

use std::fs;

use super::images::familiar;
use super::{Engine, EngineError};
use crate::digest::{DiffId, Digest};
use crate::image::parse_rfc3339;
use crate::tarindex::{Index, Kind};

/// The picture `image tree` draws, bottom layer first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTree {
    /// The name the image was asked by (familiar form when it was a tag).
    pub name: String,
    pub id: Digest,
    /// Bytes of all layers.
    pub size: u64,
    /// History order: bottom first, metadata-only steps between the layers they follow.
    pub steps: Vec<TreeStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeStep {
    Layer(TreeLayer),
    /// A history entry that made no layer (ENV, CMD, LABEL...).
    Empty {
        created_by: String,
        created: Option<i64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeLayer {
    /// 1 for the bottom layer.
    pub number: usize,
    pub diff_id: DiffId,
    /// Bytes of the layer (its uncompressed tar).
    pub size: u64,
    /// Entries that are not directories (files, links, devices).
    pub files: u64,
    pub created_by: Option<String>,
    pub created: Option<i64>,
    /// Paths relative to the root; directories end in `/`.
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub deleted: Vec<String>,
}

fn read_index(path: &std::path::Path, diff_id: &DiffId) -> Result<Index<Vec<u8>>, EngineError> {
    let bytes = fs::read(path).map_err(|e| EngineError::LayerIndex {
        diff_id: diff_id.clone(),
        why: format!("{}: {e}", path.display()),
    })?;
    Index::open(bytes).map_err(|e| EngineError::LayerIndex {
        diff_id: diff_id.clone(),
        why: e.to_string(),
    })
}

fn show(path: &[u8], dir: bool) -> String {
    let mut s = String::from_utf8_lossy(path).into_owned();
    if dir {
        s.push('/');
    }
    s
}

/// What `layer` does to the view `below` (None for the bottom layer).
pub fn layer_changes<B: AsRef<[u8]>, C: AsRef<[u8]>>(
    layer: &Index<B>,
    below: Option<&Index<C>>,
) -> (Vec<String>, Vec<String>, Vec<String>, u64) {
    let (mut added, mut changed, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
    let mut files = 0;
    for id in 1..layer.len() {
        let Some(e) = layer.get(id) else { continue };
        let path = layer.path(id);
        let under = below.and_then(|b| b.lookup(&path).and_then(|i| b.get(i)));
        match e.kind() {
            Kind::Whiteout => {
                if let Some(u) = under {
                    deleted.push(show(&path, u.kind() == Kind::Dir));
                }
                continue;
            }
            Kind::Dir => {}
            _ => files += 1,
        }
        let is_dir = e.kind() == Kind::Dir;
        match under {
            None => added.push(show(&path, is_dir)),
            Some(u) if is_dir && u.kind() == Kind::Dir => {
                let differs = (e.mode(), e.uid(), e.gid()) != (u.mode(), u.uid(), u.gid());
                if differs && !e.implicit() {
                    changed.push(show(&path, true));
                }
            }
            Some(_) => changed.push(show(&path, is_dir)),
        }
        // an opaque directory hides what was below it, unless this layer brings it back
        if let (true, Some(b), Some(u)) = (e.opaque(), below, under)
            && u.kind() == Kind::Dir
        {
            for child in b.children(u.id()) {
                let Some(c) = b.get(child) else { continue };
                if layer.lookup_child(id, c.name()).is_none() {
                    let mut p = path.clone();
                    p.push(b'/');
                    p.extend_from_slice(c.name());
                    deleted.push(show(&p, c.kind() == Kind::Dir));
                }
            }
        }
    }
    (added, changed, deleted, files)
}

impl Engine {
    pub fn image_tree(&self, word: &str) -> Result<ImageTree, EngineError> {
        let found = self.store.resolve(word)?;
        let config = super::images::config(&self.store, &found.id)?;
        let diff_ids = &config.rootfs.diff_ids;
        let mut steps = Vec::new();
        let mut number = 0;
        for (h, layer) in config.history_with_layers() {
            let created = h.created.as_deref().and_then(parse_rfc3339).map(|(s, _)| s);
            let Some(d) = layer else {
                steps.push(TreeStep::Empty {
                    created_by: h.created_by.unwrap_or_default(),
                    created,
                });
                continue;
            };
            let index = read_index(&self.store.layer_index(&d), &d)?;
            let below = if number == 0 {
                None
            } else {
                let lower = &diff_ids[..number];
                let (_, path) = self.store.chain_index(lower)?;
                Some(read_index(&path, &lower[number - 1])?)
            };
            number += 1;
            let (added, changed, deleted, files) = layer_changes(&index, below.as_ref());
            steps.push(TreeStep::Layer(TreeLayer {
                number,
                size: self.store.layer_size(&d)?,
                diff_id: d,
                files,
                // an imported layer has no command, only a comment ("Imported from x")
                created_by: h.created_by.filter(|c| !c.trim().is_empty()).or(h.comment),
                created,
                added,
                changed,
                deleted,
            }));
        }
        // named by ID: show its first tag, as a reader knows it by name
        let name = match &found.tag {
            Some(t) => familiar(t),
            None => {
                let db = self.store.images()?;
                super::images::tags_of_id(&db, &found.id)
                    .first()
                    .map_or_else(|| found.id.short().to_string(), |t| familiar(t))
            }
        };
        Ok(ImageTree {
            name,
            size: self.store.image_size(&found.id)?,
            id: found.id,
            steps,
        })
    }
}
