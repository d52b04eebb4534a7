//! The content-addressed store under `$CAMADA_ROOT` (design.md "On disk").
//!
//! Owns every file under the root except `containers/` (which it only reads, to know which
//! images containers use): `blobs/sha256/`, `layers/<diffid>/{tar,idx}`, `chains/<chainid>/idx`,
//! `images.json`, the `lock` file, `tmp/` and `partial/`. It never touches the network or
//! namespaces, and never parses a layer tar (the caller fills a staged layer with
//! `layer::ingest`; the store only names, commits and deletes it).
//!
//! The invariant: **a thing is visible under its name only when it is complete and verified.**
//! Every write goes to an entry in `tmp/` (named `<pid>-<starttime>-<kind>-<n>`, so a later
//! command can tell whether its owner still runs), is fsynced, checked, then renamed into
//! place and the directory fsynced. A crash at any point leaves at worst a dead entry in
//! `tmp/` (removed by the next [`Store::open`], never one of a live command) or a resumable
//! download in `partial/` (left alone by cleanup and GC, committed only after verification).
//! `images.json` is read without a lock (it is only ever replaced by rename) and changed only
//! through [`Store::update`], which holds an exclusive `flock` on `lock` across
//! read-modify-write, so concurrent commands never lose each other's tags.
//!
//! A layer blob that is the uncompressed tar itself (import, commit, docker-archive load) is
//! a **hardlink** of `layers/<diffid>/tar` into `blobs/sha256/<diffid>`: one copy on disk
//! (nothing ever writes a stored file in place, so sharing the inode is safe; [`Store::du`]
//! counts each inode once).
//!
//! Containers name their image in `containers/<id>/config.json` (field `image_id`, or
//! docker's `Image`, an image ID `sha256:...`): such images are roots for [`Store::gc`] and
//! [`Store::containers_using`] lets `rmi` refuse them unless forced.

mod blob;
mod db;
mod gc;
mod layer;

pub use blob::{BlobWriter, PartialBlob};
pub use db::{DbLock, ImageDb, ImageRecord, Resolved, now};
pub use gc::{DiskUsage, GcReport, WriteGuard};
pub use layer::LayerStage;

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};

use crate::digest::{ChainId, DiffId, Digest};
use crate::paths::Paths;

/// Why a store operation failed. Each message names the object and includes its cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("creating store directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cleaning leftovers in {path}: {source}")]
    Cleanup { path: PathBuf, source: io::Error },
    #[error("writing temporary file {path}: {source}")]
    WriteTemp { path: PathBuf, source: io::Error },
    #[error("storing blob {digest}: {source}")]
    CommitBlob { digest: Digest, source: io::Error },
    #[error("blob digest mismatch: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("blob {digest} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {0} is not in the store")]
    BlobMissing(Digest),
    #[error("reading blob {digest}: {source}")]
    ReadBlob { digest: Digest, source: io::Error },
    #[error(
        "blob {digest} is corrupt on disk (its content hashes to {actual}); remove the image and pull or load it again"
    )]
    BlobCorrupt { digest: Digest, actual: Digest },
    #[error("blob {digest} is {size} bytes, too big to read into memory (limit {limit})")]
    BlobTooBig {
        digest: Digest,
        size: u64,
        limit: u64,
    },
    #[error("keeping partial download of {digest}: {source}")]
    Partial { digest: Digest, source: io::Error },
    #[error("committing layer {diff_id}: {source}")]
    CommitLayer { diff_id: DiffId, source: io::Error },
    #[error("layer {0} is not in the store")]
    LayerMissing(DiffId),
    #[error("reading layer index of {diff_id}: {source}")]
    ReadLayerIndex { diff_id: DiffId, source: io::Error },
    #[error("layer index of {diff_id} is unusable: {source}")]
    LayerIndex {
        diff_id: DiffId,
        source: crate::tarindex::IndexError,
    },
    #[error("merging the layer chain {chain_id}: {source}")]
    MergeChain {
        chain_id: ChainId,
        source: crate::tarindex::IndexError,
    },
    #[error("writing the chain index of {chain_id}: {source}")]
    WriteChain {
        chain_id: ChainId,
        source: io::Error,
    },
    #[error("an image needs at least one layer")]
    EmptyChain,
    #[error("locking {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("reading {path}: {source}")]
    ReadDb { path: PathBuf, source: io::Error },
    #[error("{path} is corrupt ({source}); move it away to start with an empty image list")]
    ParseDb {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing {path}: {source}")]
    WriteDb { path: PathBuf, source: io::Error },
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("image ID prefix {prefix:?} is ambiguous: it matches {}", .candidates.join(", "))]
    AmbiguousId {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("invalid image name {word:?}: {source}")]
    BadReference {
        word: String,
        source: crate::reference::ReferenceError,
    },
    #[error("blob {digest} is not a valid {what}: {source}")]
    ParseJson {
        digest: Digest,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("reading container records in {path}: {source}")]
    ReadContainers { path: PathBuf, source: io::Error },
    #[error("garbage collection: removing {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("measuring {path}: {source}")]
    Measure { path: PathBuf, source: io::Error },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store: paths plus the process-wide facts needed to name temp entries.
#[derive(Debug, Clone)]
pub struct Store {
    paths: Paths,
    /// `<pid>-<starttime>`: the prefix of this process's `tmp/` entries.
    owner: String,
}

/// Counter making this process's temp names unique.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Opens (creating, 0700) the store at `paths.root` and removes the `tmp/` leftovers of
    /// commands that are no longer running.
    pub fn open(paths: &Paths) -> Result<Store> {
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for dir in [
            paths.root.clone(),
            paths.blobs_dir(),
            paths.layers_dir(),
            paths.chains_dir(),
            paths.tmp_dir(),
            paths.partials_dir(),
        ] {
            builder
                .create(&dir)
                .map_err(|source| StoreError::CreateDir { path: dir, source })?;
        }
        let pid = std::process::id();
        let store = Store {
            paths: paths.clone(),
            owner: format!("{pid}-{}", start_time(pid).unwrap_or(0)),
        };
        store.clean_tmp()?;
        Ok(store)
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// A fresh, unused path in `tmp/` for an entry of `kind` owned by this process.
    fn tmp_path(&self, kind: &str) -> PathBuf {
        let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        self.paths
            .tmp_dir()
            .join(format!("{}-{kind}-{n}", self.owner))
    }

    /// Creates a new empty temp file in `tmp/`; the caller renames or removes it.
    fn tmp_file(&self, kind: &str) -> Result<(File, PathBuf)> {
        let path = self.tmp_path(kind);
        let file = fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| StoreError::WriteTemp {
                path: path.clone(),
                source,
            })?;
        Ok((file, path))
    }

    /// A scratch file in `tmp/` (e.g. a spooled archive), removed when dropped and, after a
    /// crash, by the next [`Store::open`].
    pub fn temp_file(&self, kind: &str) -> Result<TempFile> {
        let (file, path) = self.tmp_file(kind)?;
        Ok(TempFile { file, path })
    }

    /// A scratch directory in `tmp/` (0700; e.g. a build step's upper dir), removed with
    /// its contents when dropped and, after a crash, by the next [`Store::open`].
    pub fn temp_dir(&self, kind: &str) -> Result<TempDir> {
        let path = self.tmp_path(kind);
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| StoreError::WriteTemp {
                path: path.clone(),
                source,
            })?;
        Ok(TempDir { path })
    }

    /// Replaces the file at `dest` (inside the root) with `bytes`: written to `tmp/`,
    /// fsynced, renamed. Callers serialise writers with [`Store::lock`].
    pub fn replace_file(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let (mut file, tmp) = self.tmp_file("replace")?;
        let werr = |source| StoreError::WriteTemp {
            path: tmp.clone(),
            source,
        };
        io::Write::write_all(&mut file, bytes).map_err(werr)?;
        file.sync_all().map_err(werr)?;
        publish(&tmp, dest).map_err(|source| {
            let _ = fs::remove_file(&tmp);
            StoreError::WriteTemp {
                path: dest.to_path_buf(),
                source,
            }
        })
    }

    /// Removes the entries of `tmp/` whose owning command is gone. Entries with a name
    /// this store does not make are left alone.
    fn clean_tmp(&self) -> Result<()> {
        let dir = self.paths.tmp_dir();
        let err = |source| StoreError::Cleanup {
            path: dir.clone(),
            source,
        };
        for entry in fs::read_dir(&dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name();
            let Some((pid, start)) = name.to_str().and_then(parse_owner) else {
                continue;
            };
            if owner_alive(pid, start) {
                continue;
            }
            let path = entry.path();
            let res = if entry.file_type().map_err(err)?.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match res {
                Ok(()) => {}
                // another command cleaning at the same time
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Cleanup { path, source }),
            }
        }
        Ok(())
    }
}

/// A scratch file in `tmp/`, removed on drop.
pub struct TempFile {
    file: File,
    path: PathBuf,
}

impl TempFile {
    pub fn file(&self) -> &File {
        &self.file
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A scratch directory in `tmp/`, removed (with its contents) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// `<pid>-<starttime>-...` -> (pid, starttime).
fn parse_owner(name: &str) -> Option<(u32, u64)> {
    let mut parts = name.splitn(3, '-');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((pid, start))
}

/// The start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) is in parentheses and may hold spaces
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that made a temp entry still runs: same pid, same start time (a
/// recycled pid is another process). Without /proc, any live pid counts as the owner.
fn owner_alive(pid: u32, start: u64) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Err(nix::errno::Errno::ESRCH) => false,
        _ => match start_time(pid) {
            Some(now) => start == 0 || now == start,
            None => !Path::new("/proc/self/stat").exists(),
        },
    }
}

/// fsyncs a directory, so that a rename or link in it survives a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renames a complete, synced temp entry to its final name and syncs the directory.
fn publish(tmp: &Path, dest: &Path) -> io::Result<()> {
    fs::rename(tmp, dest)?;
    match dest.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Opens (making it if needed) the lock file `path` and takes `how` on it; `None` when a
/// non-blocking `how` finds it held. The lock goes with the returned handle.
fn lock_file(path: &Path, how: FlockArg) -> Result<Option<Flock<File>>> {
    let err = |source| StoreError::Lock {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(err)?;
    match Flock::lock(file, how) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(err(io::Error::from(errno))),
    }
}

/// [`lock_file`] with a blocking `how` (shared or exclusive): waits for the lock.
fn wait_for_lock(path: &Path, how: FlockArg) -> Result<Flock<File>> {
    lock_file(path, how)?.ok_or_else(|| StoreError::Lock {
        path: path.to_path_buf(),
        source: io::Error::from(io::ErrorKind::WouldBlock),
    })
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A fresh store in a temp dir (keep the guard alive).
    pub fn store() -> (tempfile::TempDir, Store) {
        let t = tempfile::tempdir().unwrap();
        let env = crate::paths::Env {
            home: Some(t.path().to_path_buf()),
            ..Default::default()
        };
        let paths = Paths::resolve(
            Some(&t.path().join("root")),
            Some(&t.path().join("run")),
            &env,
        )
        .unwrap();
        let s = Store::open(&paths).unwrap();
        (t, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_round_trip() {
        assert_eq!(parse_owner("12-3456-blob-7"), Some((12, 3456)));
        assert_eq!(parse_owner("12-3456"), None);
        assert_eq!(parse_owner("x-1-blob-1"), None);
        let me = std::process::id();
        let start = start_time(me).unwrap();
        assert!(owner_alive(me, start));
        assert!(
            !owner_alive(me, start + 1),
            "a recycled pid is not the owner"
        );
    }

    #[test]
    fn open_removes_only_dead_commands_leftovers() {
        let (_t, s) = tests_support::store();
        let tmp = s.paths().tmp_dir();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dead_file = tmp.join(format!("{dead}-1-blob-0"));
        let dead_dir = tmp.join(format!("{dead}-1-layer-3"));
        fs::write(&dead_file, b"half").unwrap();
        fs::create_dir(&dead_dir).unwrap();
        fs::write(dead_dir.join("tar"), b"half").unwrap();
        let (mine, _) = s.tmp_file("blob").unwrap();
        drop(mine);
        let foreign = tmp.join("not-ours");
        fs::write(&foreign, b"x").unwrap();
        Store::open(s.paths()).unwrap();
        let left: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().any(|n| n.starts_with(&s.owner)), "{left:?}");
        assert!(left.iter().any(|n| n == "not-ours"), "{left:?}");
    }

    #[test]
    fn dirs_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_t, s) = tests_support::store();
        for d in [
            s.paths().root.clone(),
            s.paths().blobs_dir(),
            s.paths().tmp_dir(),
        ] {
            assert_eq!(
                fs::metadata(&d).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
    }
}
