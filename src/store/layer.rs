//! Layers (`layers/<diffid>/{tar,idx}`) staged in `tmp/` and committed by renaming the
//! whole directory; merged chain indexes (`chains/<chainid>/idx`) built once, atomically.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::{Result, Store, StoreError, publish, sync_dir};
use crate::digest::{ChainId, DiffId, Digest, chain_id};
use crate::tarindex::{Index, merge};

/// A layer being written: a directory in `tmp/` holding `tar` and `idx`, which the caller
/// fills (with `layer::ingest`). [`LayerStage::commit`] makes it `layers/<diffid>`; dropped
/// uncommitted, it is removed.
pub struct LayerStage {
    dir: PathBuf,
    layers_dir: PathBuf,
    done: bool,
}

impl Store {
    /// A new, empty staging directory for one layer.
    pub fn stage_layer(&self) -> Result<LayerStage> {
        let dir = self.tmp_path("layer");
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| StoreError::WriteTemp {
                path: dir.clone(),
                source,
            })?;
        Ok(LayerStage {
            dir,
            layers_dir: self.paths.layers_dir(),
            done: false,
        })
    }

    pub fn has_layer(&self, d: &DiffId) -> bool {
        let dir = self.paths.layer_dir(d);
        dir.join("tar").is_file() && dir.join("idx").is_file()
    }

    /// The layer's uncompressed tar (it is in the store: see [`Store::has_layer`]).
    pub fn layer_tar(&self, d: &DiffId) -> PathBuf {
        self.paths.layer_tar(d)
    }

    pub fn layer_index(&self, d: &DiffId) -> PathBuf {
        self.paths.layer_index(d)
    }

    /// The size of the layer's uncompressed tar.
    pub fn layer_size(&self, d: &DiffId) -> Result<u64> {
        match fs::metadata(self.paths.layer_tar(d)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::LayerMissing(d.clone()))
            }
            Err(source) => Err(StoreError::Measure {
                path: self.paths.layer_tar(d),
                source,
            }),
        }
    }

    /// Makes the layer's uncompressed tar also the blob of digest `d` (a hardlink, no
    /// second copy): for layers stored uncompressed in a manifest (import, commit, load).
    pub fn link_layer_blob(&self, d: &DiffId) -> Result<Digest> {
        let blob = self.paths.blob(d.digest());
        if blob.is_file() {
            return Ok(d.digest().clone());
        }
        let err = |source| StoreError::CommitBlob {
            digest: d.digest().clone(),
            source,
        };
        if !self.has_layer(d) {
            return Err(StoreError::LayerMissing(d.clone()));
        }
        match fs::hard_link(self.paths.layer_tar(d), &blob) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(err(source)),
        }
        sync_dir(&self.paths.blobs_dir()).map_err(err)?;
        Ok(d.digest().clone())
    }

    /// The merged lower index of the layer chain `diff_ids` (bottom first): built from the
    /// layer indexes once, then cached at `chains/<chainid>/idx`.
    pub fn chain_index(&self, diff_ids: &[DiffId]) -> Result<(ChainId, PathBuf)> {
        let chain = chain_id(diff_ids).ok_or(StoreError::EmptyChain)?;
        let path = self.paths.chain_index(&chain);
        if path.is_file() {
            return Ok((chain, path));
        }
        let mut indexes = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let bytes = match fs::read(self.paths.layer_index(d)) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(StoreError::LayerMissing(d.clone()));
                }
                Err(source) => {
                    return Err(StoreError::ReadLayerIndex {
                        diff_id: d.clone(),
                        source,
                    });
                }
            };
            let index = Index::open(bytes).map_err(|source| StoreError::LayerIndex {
                diff_id: d.clone(),
                source,
            })?;
            indexes.push(index);
        }
        let refs: Vec<&Index<Vec<u8>>> = indexes.iter().collect();
        let merged = merge(&refs).map_err(|source| StoreError::MergeChain {
            chain_id: chain.clone(),
            source,
        })?;
        let werr = |source| StoreError::WriteChain {
            chain_id: chain.clone(),
            source,
        };
        let tmp = self.tmp_path("chain");
        let write = || -> io::Result<()> {
            DirBuilder::new().mode(0o700).create(&tmp)?;
            let mut f = File::create(tmp.join("idx"))?;
            f.write_all(&merged)?;
            f.sync_all()?;
            sync_dir(&tmp)
        };
        if let Err(source) = write() {
            let _ = fs::remove_dir_all(&tmp);
            return Err(werr(source));
        }
        let dest = path.parent().unwrap_or(&path).to_path_buf();
        match publish(&tmp, &dest) {
            Ok(()) => {}
            // built by a concurrent command meanwhile: same bytes, keep theirs
            Err(_) if path.is_file() => {
                let _ = fs::remove_dir_all(&tmp);
            }
            Err(source) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(werr(source));
            }
        }
        Ok((chain, path))
    }
}

impl LayerStage {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Where the uncompressed tar goes.
    pub fn tar_path(&self) -> PathBuf {
        self.dir.join("tar")
    }
    /// Where the index goes.
    pub fn idx_path(&self) -> PathBuf {
        self.dir.join("idx")
    }

    /// Creates the `tar` and `idx` files, for `layer::ingest(input, tar, idx)`.
    pub fn create_files(&self) -> Result<(File, File)> {
        let create = |p: PathBuf| {
            File::create(&p).map_err(|source| StoreError::WriteTemp { path: p, source })
        };
        Ok((create(self.tar_path())?, create(self.idx_path())?))
    }

    /// Syncs the staged files and makes them `layers/<diff_id>` (the caller computed
    /// `diff_id` over exactly the tar it wrote). If the layer is already stored, the
    /// staging is discarded.
    pub fn commit(mut self, diff_id: &DiffId) -> Result<()> {
        let err = |source| StoreError::CommitLayer {
            diff_id: diff_id.clone(),
            source,
        };
        let dest = self.layers_dir.join(diff_id.hex());
        if dest.join("tar").is_file() && dest.join("idx").is_file() {
            return Ok(()); // Drop removes the staging
        }
        for f in [self.tar_path(), self.idx_path()] {
            File::open(&f).and_then(|f| f.sync_all()).map_err(err)?;
        }
        sync_dir(&self.dir).map_err(err)?;
        match publish(&self.dir, &dest) {
            Ok(()) => {}
            Err(_) if dest.join("idx").is_file() => return Ok(()), // a concurrent commit won
            Err(source) => return Err(err(source)),
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for LayerStage {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::store;
    use super::*;

    #[test]
    fn staged_layer_appears_only_on_commit() {
        let (_t, s) = store();
        let d = DiffId(Digest::of(b"tar bytes"));
        let stage = s.stage_layer().unwrap();
        let (mut tar, mut idx) = stage.create_files().unwrap();
        tar.write_all(b"tar bytes").unwrap();
        idx.write_all(b"idx").unwrap();
        assert!(!s.has_layer(&d));
        stage.commit(&d).unwrap();
        assert!(s.has_layer(&d));
        assert_eq!(s.layer_size(&d).unwrap(), 9);
        // the same layer again: the staging is discarded, the stored one kept
        let stage = s.stage_layer().unwrap();
        let (mut tar, _) = stage.create_files().unwrap();
        tar.write_all(b"other").unwrap();
        stage.commit(&d).unwrap();
        assert_eq!(fs::read(s.layer_tar(&d)).unwrap(), b"tar bytes");
        // dropped uncommitted: gone
        let stage = s.stage_layer().unwrap();
        stage.create_files().unwrap();
        drop(stage);
        assert_eq!(fs::read_dir(s.paths().tmp_dir()).unwrap().count(), 0);
        // the tar doubles as a blob, by hardlink
        let blob = s.link_layer_blob(&d).unwrap();
        assert_eq!(blob, d.0);
        assert_eq!(s.read_blob(&blob).unwrap(), b"tar bytes");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(s.paths().blob(&blob)).unwrap().ino(),
            fs::metadata(s.layer_tar(&d)).unwrap().ino()
        );
    }

    #[test]
    fn chain_of_missing_layer_is_an_error() {
        let (_t, s) = store();
        let d = DiffId(Digest::of(b"none"));
        assert!(matches!(
            s.chain_index(std::slice::from_ref(&d)),
            Err(StoreError::LayerMissing(_))
        ));
        assert!(matches!(s.chain_index(&[]), Err(StoreError::EmptyChain)));
    }
}
