//! A container's files from outside it: `diff`, `mount`, `umount` and `unshare` (and
//! `cp` in [`super::cp`]).
//!
//! `diff` reads the writable layer (the upper dir, OCI whiteouts) against the image's merged
//! lower index, running or not. `mount` of a stopped container starts a detached mount
//! server (`runtime::mountsrv`) serving the same overlay an owner-only FUSE mount, with the
//! container's volumes and binds mounted where the container has them, which the user's
//! own processes reach at `/proc/<server pid>/root/<mount point>`; a running
//! container is served by its monitor, reachable as root of its user namespace (`unshare
//! --container`). Never writes the writable layer itself. Invariant: at most one server
//! serves a writable layer: `start` refuses a mounted container, `mount` reuses a live
//! server and refuses nothing it cannot see.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::SFlag;

use super::commit::{runtime_mount_point, upper_owners};
use super::{Engine, EngineError};
use crate::digest::Digest;
use crate::layer::{Entry, UpperDir};
use crate::overlay;
use crate::overlay::mapping::Ownership;
use crate::runtime::{self, IdMaps, mountsrv};
use crate::state::{Container, Records};
use crate::tarindex::Index;

/// Why a diff, mount, umount or unshare failed.
#[derive(Debug, thiserror::Error)]
pub enum FsopsError {
    #[error("reading the writable layer of container {id} at {path}: {source}")]
    ReadUpper {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the image layers of container {id}: {why}")]
    Lower { id: String, why: String },
    #[error("{0}")]
    Runtime(#[from] runtime::RuntimeError),
    #[error("{0}")]
    Cp(#[from] super::cp::CpError),
    #[error("creating {path}: {source}")]
    MountDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One line of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    /// docker's letter.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute path in the container.
    pub path: String,
}

/// Where `mount` serves a container's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mounted {
    /// A stopped container's mount server: the path works for the user's own processes.
    Server { path: PathBuf, pid: i32 },
    /// A running container: the path works as root of its user namespace
    /// (`camada unshare --container NAME`), as the kernel admits only processes of that
    /// namespace to the container's own mount.
    Running { path: PathBuf, pid: i32 },
}

impl Mounted {
    pub fn path(&self) -> &Path {
        match self {
            Mounted::Server { path, .. } | Mounted::Running { path, .. } => path,
        }
    }
}

/// `diff`: the changes in `upper` (a writable layer) over the lower view `lower`, sorted by
/// path as docker prints them. As docker's overlay driver: a whiteout is deleted; an
/// opaque directory is deleted (and what it holds now added); a name no lower layer has is
/// added; anything else is changed, except a directory that is only there because
/// something below it was copied up: that one is changed only when it directly gains or
/// loses a name, or its owner or mode changed. The runtime's own mount points are not
/// changes (docker keeps them in its init layer).
pub fn changes(
    upper: &Path,
    lower: &Index<impl AsRef<[u8]>>,
    owners: &Ownership,
) -> std::io::Result<Vec<Change>> {
    let mut out = Vec::new();
    walk_changes(&UpperDir::open(upper)?, lower, owners, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The changes below directory `dir` (reached through its parents' fds, as the layer diff
/// walks: never through a symlink); true when names were added to or deleted from it.
fn walk_changes(
    dir: &UpperDir,
    lower: &Index<impl AsRef<[u8]>>,
    owners: &Ownership,
    out: &mut Vec<Change>,
) -> std::io::Result<bool> {
    use overlay_names::*;
    let mut direct = false;
    for name in dir.names()? {
        let name = name.as_os_str();
        let bytes = name.as_bytes();
        if bytes == OPAQUE {
            continue;
        }
        let child = dir.child_rel(bytes.strip_prefix(PREFIX).unwrap_or(bytes));
        let path = format!("/{}", String::from_utf8_lossy(&child));
        let push = |kind| out.push(Change { kind, path });
        if bytes.starts_with(PREFIX) {
            push(ChangeKind::Deleted);
            direct = true;
            continue;
        }
        let st = dir.stat(name)?;
        let entry = Entry {
            dir,
            name,
            rel: &child,
            stat: &st,
        };
        if runtime_mount_point(&entry) {
            continue;
        }
        let below = lower.lookup(&child).and_then(|id| lower.get(id));
        if !entry.is(SFlag::S_IFDIR) {
            direct |= below.is_none();
            push(match below {
                None => ChangeKind::Added,
                Some(_) => ChangeKind::Changed,
            });
            continue;
        }
        let sub = dir.open_dir(name, &st)?;
        let opaque = sub.stat(OsStr::from_bytes(OPAQUE)).is_ok();
        let gained_or_lost = walk_changes(&sub, lower, owners, out)?;
        let kind = match below {
            None => Some(ChangeKind::Added),
            Some(_) if opaque => Some(ChangeKind::Deleted),
            Some(l) => {
                let own = owners.get(&entry.at(), &child, st.st_mode);
                let attrs = own.is_some_and(|o| {
                    (o.mode & 0o7777, o.uid, o.gid) != (l.mode(), l.uid(), l.gid())
                });
                (gained_or_lost || attrs).then_some(ChangeKind::Changed)
            }
        };
        if let Some(kind) = kind {
            direct |= kind != ChangeKind::Changed;
            out.push(Change {
                kind,
                path: format!("/{}", String::from_utf8_lossy(&child)),
            });
        }
    }
    Ok(direct)
}

/// The whiteout names of the OCI layout (the overlay writes them so in the upper dir).
mod overlay_names {
    pub const PREFIX: &[u8] = b".wh.";
    pub const OPAQUE: &[u8] = b".wh..wh..opq";
}

impl Engine {
    /// `diff CONTAINER`: what its writable layer added, changed and deleted.
    pub fn diff_container(&self, word: &str) -> Result<Vec<Change>, EngineError> {
        let (records, c) = self.find(word)?;
        let id = &c.record.id;
        let upper = records.upper_dir(id);
        if !upper.exists() {
            return Ok(Vec::new()); // never started: nothing written
        }
        let lower = self.lower_index(&c)?;
        let owners = upper_owners(&upper, &records.dir_of(id).join("ownership.json"))?;
        Ok(
            changes(&upper, &lower, &owners).map_err(|source| FsopsError::ReadUpper {
                id: c.record.short_id().to_string(),
                path: upper.clone(),
                source,
            })?,
        )
    }

    /// The merged lower index of a container's image.
    fn lower_index(&self, c: &Container) -> Result<Index<Vec<u8>>, FsopsError> {
        let err = |why: String| FsopsError::Lower {
            id: c.record.short_id().to_string(),
            why,
        };
        let image: Digest = c
            .record
            .image
            .parse()
            .map_err(|_| err("no image ID".into()))?;
        let diff_ids = self
            .store
            .image_layers(&image)
            .map_err(|e| err(e.to_string()))?;
        let (_, path) = self
            .store
            .chain_index(&diff_ids)
            .map_err(|e| err(e.to_string()))?;
        let bytes = fs::read(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        Index::open(bytes).map_err(|e| err(e.to_string()))
    }

    /// `mount CONTAINER`: serves the container's root and says where.
    pub fn mount_container(&self, word: &str) -> Result<Mounted, EngineError> {
        let (records, c) = self.find(word)?;
        self.mount_found(&records, &c)
    }

    pub(super) fn mount_found(
        &self,
        records: &Records,
        c: &Container,
    ) -> Result<Mounted, EngineError> {
        let id = &c.record.id;
        if c.state.status.is_running()
            && let Some(pid) = fs::read_to_string(self.run_dir(id).join("init.pid"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
        {
            return Ok(Mounted::Running {
                path: PathBuf::from(format!("/proc/{pid}/root")),
                pid,
            });
        }
        let dir = self.paths.mount_dir(id);
        if let Some(pid) = mountsrv::server_pid(&dir) {
            return Ok(Mounted::Server {
                path: mountsrv::server_path(&dir, pid),
                pid,
            });
        }
        fs::create_dir_all(&dir).map_err(|source| FsopsError::MountDir {
            path: dir.clone(),
            source,
        })?;
        let maps = IdMaps::for_current_user();
        let mut opts = self.overlay_options(records, c, &maps)?;
        // owner-only: the user's own processes, from any namespace, and nobody else
        opts.allow_other = false;
        // its volumes and binds where the container has them, so that what is copied to
        // or from a volume's path lands in the volume (docker's cp of a stopped container)
        let binds = self.binds_of(&c.record)?;
        let mount: runtime::MountFn = Box::new(move |mp: &Path| {
            let root = overlay::mount(&opts, mp).map_err(|e| e.to_string())?;
            runtime::mounts::bind_user_mounts(mp, &binds).map_err(|e| e.to_string())?;
            Ok(Box::new(root) as Box<dyn std::any::Any>)
        });
        let pid = mountsrv::serve_detached(c.record.short_id(), &dir, &maps, mount)
            .map_err(FsopsError::from)?;
        Ok(Mounted::Server {
            path: mountsrv::server_path(&dir, pid),
            pid,
        })
    }

    /// `umount CONTAINER`: stops its mount server (unmounting); a container without one is
    /// left as it is. Returns the full ID.
    pub fn unmount_container(&self, word: &str) -> Result<String, EngineError> {
        let (_, c) = self.find(word)?;
        self.stop_mount_server(&c.record.id);
        Ok(c.record.id.clone())
    }

    /// Stops the mount server of container `id` if it has one, and removes its directory
    /// (`umount`, `rm`, `container prune`, the end of a `cp`).
    pub(super) fn stop_mount_server(&self, id: &str) {
        let dir = self.paths.mount_dir(id);
        mountsrv::stop_server(&dir, std::time::Duration::from_secs(10));
        let _ = fs::remove_dir(dir.join(mountsrv::MOUNT_POINT));
        let _ = fs::remove_dir(&dir);
    }

    /// `unshare [--container C] [CMD...]`: runs CMD as root of a new user and mount
    /// namespace with the user's id maps, or of the running container's user namespace.
    pub fn unshare(&self, container: Option<&str>, argv: &[String]) -> Result<i32, EngineError> {
        let join = match container {
            None => None,
            Some(word) => {
                let (_, c) = self.find(word)?;
                let pid = fs::read_to_string(self.run_dir(&c.record.id).join("init.pid"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .filter(|_| c.state.status.is_running());
                match pid {
                    Some(p) => Some(p),
                    None => {
                        return Err(super::containers::ContainersError::NotRunning(
                            c.record.name.clone(),
                        )
                        .into());
                    }
                }
            }
        };
        Ok(mountsrv::unshare(&IdMaps::for_current_user(), join, argv).map_err(FsopsError::from)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::ingest;
    use crate::tarindex::merge;

    #[test]
    fn changes_are_docker_s_a_c_d_lines_sorted_by_path() {
        let d = tempfile::tempdir().unwrap();
        // the lower view: /etc/{passwd,motd,ssl/cert}, /bin/sh, /empty/
        let mut b = tar::Builder::new(Vec::new());
        for (p, dir) in [
            ("etc/", true),
            ("etc/passwd", false),
            ("etc/motd", false),
            ("etc/ssl/", true),
            ("etc/ssl/cert", false),
            ("bin/", true),
            ("bin/sh", false),
            ("empty/", true),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(if dir {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, p, std::io::empty()).unwrap();
        }
        let (mut t, mut i) = (Vec::new(), Vec::new());
        ingest(&b.into_inner().unwrap()[..], &mut t, &mut i).unwrap();
        let one = Index::open(i).unwrap();
        let lower = Index::open(merge(&[&one]).unwrap()).unwrap();

        let up = d.path().join("upper");
        fs::create_dir_all(up.join("etc/ssl")).unwrap();
        fs::create_dir_all(up.join("new/deep")).unwrap();
        fs::create_dir_all(up.join("bin")).unwrap();
        fs::write(up.join("bin/sh"), b"patched").unwrap(); // /bin only holds a copy-up
        fs::write(up.join("etc/passwd"), b"x").unwrap();
        fs::write(up.join("etc/.wh.motd"), b"").unwrap();
        fs::write(up.join("etc/ssl/.wh..wh..opq"), b"").unwrap();
        fs::write(up.join("etc/ssl/mine"), b"").unwrap();
        fs::write(up.join("new/deep/f"), b"").unwrap();
        let owners = Ownership::open(&up, d.path().join("own.json")).unwrap();
        let got: Vec<String> = changes(&up, &lower, &owners)
            .unwrap()
            .iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path))
            .collect();
        assert_eq!(
            got,
            [
                "C /bin/sh",
                "C /etc",
                "D /etc/motd",
                "C /etc/passwd",
                "D /etc/ssl",
                "A /etc/ssl/mine",
                "A /new",
                "A /new/deep",
                "A /new/deep/f",
            ]
        );
    }
}
