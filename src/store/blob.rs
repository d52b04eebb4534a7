//! Blobs: `blobs/sha256/<hex>`, written through a temp file, hashed while written, verified,
//! fsynced and renamed; and partial downloads in `partial/<hex>`, kept for resuming.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};

use super::{Result, Store, StoreError, publish};
use crate::digest::{Digest, Hasher};

/// The most [`Store::read_blob`] reads into memory (manifests and configs are far smaller).
const READ_LIMIT: u64 = 64 << 20;

/// Writes one blob: bytes go to a temp file and a hasher; [`BlobWriter::commit`] checks
/// and publishes it. Dropped without commit, it removes its temp file.
pub struct BlobWriter {
    file: BufWriter<File>,
    tmp: PathBuf,
    blobs_dir: PathBuf,
    hasher: Hasher,
    expected: Option<Digest>,
    expected_size: Option<u64>,
    committed: bool,
}

impl Store {
    /// A writer for a new blob. With `expected`, commit refuses other content; with
    /// `expected_size`, any other length.
    pub fn blob_writer(
        &self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<BlobWriter> {
        let (file, tmp) = self.tmp_file("blob")?;
        Ok(BlobWriter {
            file: BufWriter::with_capacity(256 << 10, file),
            tmp,
            blobs_dir: self.paths.blobs_dir(),
            hasher: Hasher::new(),
            expected: expected.cloned(),
            expected_size,
            committed: false,
        })
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let mut w = self.blob_writer(None, Some(bytes.len() as u64))?;
        w.write_all(bytes).map_err(|source| StoreError::WriteTemp {
            path: w.tmp.clone(),
            source,
        })?;
        w.commit()
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.paths.blob(d).is_file()
    }

    /// Opens a stored blob for reading (not verified: the caller hashes what it streams).
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.paths.blob(d)).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => StoreError::BlobMissing(d.clone()),
            _ => StoreError::ReadBlob {
                digest: d.clone(),
                source,
            },
        })
    }

    pub fn blob_size(&self, d: &Digest) -> Result<u64> {
        Ok(self
            .open_blob(d)?
            .metadata()
            .map_err(|source| StoreError::ReadBlob {
                digest: d.clone(),
                source,
            })?
            .len())
    }

    /// Reads a small blob (manifest, config) whole and verifies its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let file = self.open_blob(d)?;
        let err = |source| StoreError::ReadBlob {
            digest: d.clone(),
            source,
        };
        let size = file.metadata().map_err(err)?.len();
        if size > READ_LIMIT {
            return Err(StoreError::BlobTooBig {
                digest: d.clone(),
                size,
                limit: READ_LIMIT,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(READ_LIMIT).read_to_end(&mut bytes).map_err(err)?;
        let actual = Digest::of(&bytes);
        if actual != *d {
            return Err(StoreError::BlobCorrupt {
                digest: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// `system prune`: removes the kept parts of interrupted downloads, except those a
    /// running pull holds (it has them locked). Returns (files removed, bytes freed).
    pub fn prune_partials(&self) -> Result<(usize, u64)> {
        let dir = self.paths.partials_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(source) => return Err(StoreError::Remove { path: dir, source }),
        };
        let (mut files, mut bytes) = (0, 0);
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(file) = File::open(&path) else {
                continue; // committed or pruned meanwhile
            };
            // held by a download in progress: leave it
            let Ok(_held) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
                continue;
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path).map_err(|source| StoreError::Remove {
                path: path.clone(),
                source,
            })?;
            files += 1;
            bytes += size;
        }
        Ok((files, bytes))
    }

    /// The kept part of a download of `d`, to resume it: [`PartialBlob::kept`] bytes are
    /// already there, writes append. If another command is downloading the same blob
    /// right now, this one gets a private temp file starting at 0 instead.
    pub fn partial(&self, d: &Digest) -> Result<PartialBlob> {
        let err = |source| StoreError::Partial {
            digest: d.clone(),
            source,
        };
        let path = self.paths.partial_blob(d);
        let (file, locked) = loop {
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&path)
                .map_err(err)?;
            let lock_fd = file.try_clone().map_err(err)?;
            let locked = Flock::lock(lock_fd, FlockArg::LockExclusiveNonblock);
            // the holder we waited for may have committed (renamed) this very file: never
            // append to a published blob; open the path again
            let same = match (&locked, fs::metadata(&path), file.metadata()) {
                (Ok(_), Ok(at_path), Ok(ours)) => at_path.ino() == ours.ino(),
                (Ok(_), ..) => false,
                (Err(_), ..) => true,
            };
            if same {
                break (file, locked);
            }
        };
        match locked {
            Ok(lock) => {
                let mut p = PartialBlob {
                    file,
                    path,
                    resumable: true,
                    _lock: Some(lock),
                    digest: d.clone(),
                    dest: self.paths.blob(d),
                    hasher: Hasher::new(),
                    committed: false,
                };
                // hash what is kept, so the final digest covers the whole blob
                let mut reader = &p.file;
                reader.seek(SeekFrom::Start(0)).map_err(err)?;
                io::copy(&mut reader, &mut p.hasher).map_err(err)?;
                Ok(p)
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                let (file, tmp) = self.tmp_file("partial")?;
                Ok(PartialBlob {
                    file,
                    path: tmp,
                    resumable: false,
                    _lock: None,
                    digest: d.clone(),
                    dest: self.paths.blob(d),
                    hasher: Hasher::new(),
                    committed: false,
                })
            }
            Err((_, errno)) => Err(err(io::Error::from(errno))),
        }
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.len()
    }

    /// Syncs, verifies (digest and size if expected) and publishes the blob under its
    /// digest. A blob that is already stored is kept as is.
    pub fn commit(mut self) -> Result<Digest> {
        let tmp = self.tmp.clone();
        let werr = |source| StoreError::WriteTemp {
            path: tmp.clone(),
            source,
        };
        self.file.flush().map_err(werr)?;
        self.file.get_ref().sync_all().map_err(werr)?;
        let size = self.hasher.len();
        let actual = std::mem::take(&mut self.hasher).finish();
        if let Some(expected) = &self.expected
            && *expected != actual
        {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
                size,
            });
        }
        if let Some(expected) = self.expected_size
            && expected != size
        {
            return Err(StoreError::SizeMismatch {
                digest: actual,
                expected,
                actual: size,
            });
        }
        let dest = self.blobs_dir.join(actual.hex());
        let res = if dest.is_file() {
            fs::remove_file(&self.tmp)
        } else {
            publish(&self.tmp, &dest)
        };
        res.map_err(|source| StoreError::CommitBlob {
            digest: actual.clone(),
            source,
        })?;
        self.committed = true;
        Ok(actual)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A resumable download of one blob (see [`Store::partial`]). Writes append to the kept
/// bytes; dropped without commit, the bytes stay for the next attempt.
pub struct PartialBlob {
    file: File,
    path: PathBuf,
    /// false: a private temp file (the partial was busy), removed on drop.
    resumable: bool,
    _lock: Option<Flock<File>>,
    digest: Digest,
    dest: PathBuf,
    hasher: Hasher,
    committed: bool,
}

impl PartialBlob {
    /// How many bytes are already kept (ask the server for `Range: bytes=KEPT-`).
    pub fn kept(&self) -> u64 {
        self.hasher.len()
    }

    /// The digest this download must have.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Drops the kept bytes (the server ignored the Range request: start again).
    pub fn restart(&mut self) -> Result<()> {
        self.file.set_len(0).map_err(|source| StoreError::Partial {
            digest: self.digest.clone(),
            source,
        })?;
        self.hasher = Hasher::new();
        Ok(())
    }

    /// Syncs and verifies the whole blob (and its size, if known), then publishes it in
    /// `blobs/`. On a mismatch the kept bytes are discarded: they can never become right.
    pub fn commit(mut self, expected_size: Option<u64>) -> Result<Digest> {
        let digest = self.digest.clone();
        let perr = |source| StoreError::Partial {
            digest: digest.clone(),
            source,
        };
        self.file.sync_all().map_err(perr)?;
        let size = self.hasher.len();
        let actual = std::mem::take(&mut self.hasher).finish();
        let bad = if actual != self.digest {
            Some(StoreError::DigestMismatch {
                expected: self.digest.clone(),
                actual,
                size,
            })
        } else if expected_size.is_some_and(|e| e != size) {
            Some(StoreError::SizeMismatch {
                digest: self.digest.clone(),
                expected: expected_size.unwrap_or(0),
                actual: size,
            })
        } else {
            None
        };
        if let Some(e) = bad {
            let _ = fs::remove_file(&self.path);
            self.committed = true;
            return Err(e);
        }
        publish(&self.path, &self.dest).map_err(|source| StoreError::CommitBlob {
            digest: self.digest.clone(),
            source,
        })?;
        self.committed = true;
        Ok(self.digest.clone())
    }
}

impl Write for PartialBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for PartialBlob {
    fn drop(&mut self) {
        if !self.committed && !self.resumable {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::store;
    use super::*;

    #[test]
    fn put_read_and_verify() {
        let (_t, s) = store();
        let d = s.put_blob(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert!(s.has_blob(&d));
        assert_eq!(s.blob_size(&d).unwrap(), 5);
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
        // a blob changed on disk is caught on read
        fs::write(s.paths().blob(&d), b"HELLO").unwrap();
        assert!(matches!(
            s.read_blob(&d),
            Err(StoreError::BlobCorrupt { .. })
        ));
        let missing = Digest::of(b"nope");
        assert!(matches!(
            s.read_blob(&missing),
            Err(StoreError::BlobMissing(_))
        ));
    }

    #[test]
    fn wrong_digest_or_size_publishes_nothing() {
        let (_t, s) = store();
        let want = Digest::of(b"abc");
        let mut w = s.blob_writer(Some(&want), None).unwrap();
        w.write_all(b"abd").unwrap();
        assert!(matches!(w.commit(), Err(StoreError::DigestMismatch { .. })));
        let mut w = s.blob_writer(Some(&want), Some(4)).unwrap();
        w.write_all(b"abc").unwrap();
        assert!(matches!(w.commit(), Err(StoreError::SizeMismatch { .. })));
        assert!(!s.has_blob(&want));
        assert_eq!(fs::read_dir(s.paths().blobs_dir()).unwrap().count(), 0);
        assert_eq!(fs::read_dir(s.paths().tmp_dir()).unwrap().count(), 0);
        // dropped without commit: nothing left
        let mut w = s.blob_writer(None, None).unwrap();
        w.write_all(b"x").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(s.paths().tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn partial_resumes_and_verifies() {
        let (_t, s) = store();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let d = Digest::of(&data);
        let mut p = s.partial(&d).unwrap();
        assert_eq!(p.kept(), 0);
        p.write_all(&data[..30_000]).unwrap();
        drop(p); // connection lost
        assert!(!s.has_blob(&d));
        let mut p = s.partial(&d).unwrap();
        assert_eq!(p.kept(), 30_000);
        // a second download of the same blob meanwhile gets its own file
        let other = s.partial(&d).unwrap();
        assert_eq!(other.kept(), 0);
        drop(other);
        p.write_all(&data[30_000..]).unwrap();
        assert_eq!(p.commit(Some(data.len() as u64)).unwrap(), d);
        assert_eq!(s.read_blob(&d).unwrap(), data);
        assert!(!s.paths().partial_blob(&d).exists());
        assert_eq!(fs::read_dir(s.paths().tmp_dir()).unwrap().count(), 0);

        // wrong bytes: error, and the partial is gone so the next try starts clean
        let d2 = Digest::of(b"right");
        let mut p = s.partial(&d2).unwrap();
        p.write_all(b"wrong").unwrap();
        assert!(matches!(
            p.commit(None),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert_eq!(s.partial(&d2).unwrap().kept(), 0);
        // restart drops kept bytes
        let mut p = s.partial(&d2).unwrap();
        p.write_all(b"ri").unwrap();
        p.restart().unwrap();
        p.write_all(b"right").unwrap();
        assert_eq!(p.commit(Some(5)).unwrap(), d2);
    }

    #[test]
    fn prune_partials_keeps_a_download_in_progress() {
        let (_t, s) = store();
        let (a, b) = (Digest::of(b"aaaa"), Digest::of(b"bbbb"));
        let mut p = s.partial(&a).unwrap();
        p.write_all(b"aa").unwrap();
        drop(p); // interrupted: kept
        let mut busy = s.partial(&b).unwrap();
        busy.write_all(b"bbb").unwrap();
        assert_eq!(s.prune_partials().unwrap(), (1, 2));
        assert!(!s.paths().partial_blob(&a).exists());
        assert!(s.paths().partial_blob(&b).exists());
        busy.write_all(b"b").unwrap();
        assert_eq!(busy.commit(Some(4)).unwrap(), b);
        assert_eq!(s.prune_partials().unwrap(), (0, 0));
    }
}
