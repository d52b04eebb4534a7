//! Container-side ownership of files in the upper dir.
//!
//! The server runs as one host user, so the uid, gid and full mode (file type
//! included, so a device node can be a plain host file) that the container sees are
//! kept in the `user.camada.own` xattr of the host file, or, where the host filesystem
//! has no user xattrs (NFS, some tmpfs) and always for symlinks, fifos, sockets and
//! device nodes (Linux allows user xattrs only on files and dirs), in a side table keyed by the path relative to the upper dir and
//! saved next to it. Never touches the lower view. Invariant: a host file without a
//! record shows as owned by the server's own ids with its host mode.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{OverlayError, sys};

/// The xattr holding `uid:gid:mode:rdev` (mode in octal with the type bits).
pub const OWN_XATTR: &[u8] = b"user.camada.own";
/// Prefix of the xattrs this server keeps for itself; hidden from the container.
pub const PRIVATE_PREFIX: &[u8] = b"user.camada.";

/// What the container sees as owner and mode of an upper file.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Own {
    pub uid: u32,
    pub gid: u32,
    /// Full st_mode: type bits and permission bits.
    pub mode: u32,
    /// Device number (kernel encoding) for device nodes kept as plain files.
    pub rdev: u32,
}

impl Own {
    pub fn encode(&self) -> Vec<u8> {
        format!("{}:{}:{:o}:{}", self.uid, self.gid, self.mode, self.rdev).into_bytes()
    }
    pub fn decode(b: &[u8]) -> Option<Own> {
        let s = std::str::from_utf8(b).ok()?;
        let mut it = s.split(':');
        let uid = it.next()?.parse().ok()?;
        let gid = it.next()?.parse().ok()?;
        let mode = u32::from_str_radix(it.next()?, 8).ok()?;
        let rdev = it.next().map_or(Some(0), |r| r.parse().ok())?;
        Some(Own {
            uid,
            gid,
            mode,
            rdev,
        })
    }
}

/// Where ownership records live.
pub struct Ownership {
    xattrs: bool,
    table: Mutex<HashMap<Vec<u8>, Own>>,
    table_path: PathBuf,
}

impl Ownership {
    /// Probes whether `upper` takes user xattrs and loads the side table at `table_path`.
    pub fn open(upper: &Path, table_path: PathBuf) -> Result<Ownership, OverlayError> {
        let probe = sys::lsetxattr(upper, b"user.camada.probe", b"1", 0)
            .and_then(|()| sys::lremovexattr(upper, b"user.camada.probe"));
        let xattrs = probe.is_ok();
        let table = match fs::read(&table_path) {
            Ok(bytes) => {
                let v: Vec<(Vec<u8>, Own)> =
                    serde_json::from_slice(&bytes).map_err(|e| OverlayError::SideTable {
                        path: table_path.clone(),
                        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    })?;
                v.into_iter().collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(source) => {
                return Err(OverlayError::SideTable {
                    path: table_path,
                    source,
                });
            }
        };
        Ok(Ownership {
            xattrs,
            table: Mutex::new(table),
            table_path,
        })
    }

    /// Whether records go into host xattrs (else all into the side table).
    pub fn uses_xattrs(&self) -> bool {
        self.xattrs
    }

    /// Linux takes user xattrs only on regular files and directories.
    fn in_table(&self, mode: u32) -> bool {
        let t = mode & libc::S_IFMT;
        !self.xattrs || (t != libc::S_IFREG && t != libc::S_IFDIR)
    }

    pub fn get(&self, host: &Path, rel: &[u8], host_mode: u32) -> Option<Own> {
        if self.in_table(host_mode) {
            return self.table.lock().ok()?.get(rel).copied();
        }
        Own::decode(&sys::lgetxattr(host, OWN_XATTR).ok()?)
    }

    pub fn set(&self, host: &Path, rel: &[u8], host_mode: u32, own: Own) -> std::io::Result<()> {
        if self.in_table(host_mode) {
            if let Ok(mut t) = self.table.lock() {
                t.insert(rel.to_vec(), own);
            }
            return Ok(());
        }
        sys::lsetxattr(host, OWN_XATTR, &own.encode(), 0)
    }

    /// A name was removed from the upper dir: drop its record and those below it.
    pub fn remove(&self, rel: &[u8]) {
        if let Ok(mut t) = self.table.lock() {
            if t.is_empty() {
                return;
            }
            t.retain(|k, _| !is_under(k, rel));
        }
    }

    /// A name moved: move its record and those below it.
    pub fn rename(&self, from: &[u8], to: &[u8]) {
        if let Ok(mut t) = self.table.lock() {
            if t.is_empty() {
                return;
            }
            t.retain(|k, _| !is_under(k, to));
            let moved: Vec<(Vec<u8>, Own)> = t
                .iter()
                .filter(|(k, _)| is_under(k, from))
                .map(|(k, v)| {
                    let mut n = to.to_vec();
                    n.extend_from_slice(&k[from.len()..]);
                    (n, *v)
                })
                .collect();
            t.retain(|k, _| !is_under(k, from));
            t.extend(moved);
        }
    }

    /// A new hardlink shares its target's record.
    pub fn link(&self, from: &[u8], to: &[u8]) {
        if let Ok(mut t) = self.table.lock()
            && let Some(o) = t.get(from).copied()
        {
            t.insert(to.to_vec(), o);
        }
    }

    /// Writes the side table (temp file, fsync, rename). Nothing to do when empty and absent.
    pub fn save(&self) -> Result<(), OverlayError> {
        let t = match self.table.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if t.is_empty() && !self.table_path.exists() {
            return Ok(());
        }
        let mut v: Vec<(&Vec<u8>, &Own)> = t.iter().collect();
        v.sort();
        let err = |source| OverlayError::SideTable {
            path: self.table_path.clone(),
            source,
        };
        let bytes = serde_json::to_vec(&v)
            .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let mut tmp = self.table_path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = fs::File::create(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, &self.table_path).map_err(err)
    }
}

/// The xattrs the container set on an upper file (`user.*` other than this server's own
/// records, and `security.capability`; never the host's `security.selinux` and the like),
/// sorted by name: what a layer made of the upper dir records. Empty when unreadable.
pub fn container_xattrs(host: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(names) = sys::llistxattr(host) else {
        return Vec::new();
    };
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = names
        .split(|&b| b == 0)
        .filter(|n| {
            (n.starts_with(b"user.") && !n.starts_with(PRIVATE_PREFIX))
                || *n == b"security.capability"
        })
        .filter_map(|n| Some((n.to_vec(), sys::lgetxattr(host, n).ok()?)))
        .collect();
    out.sort();
    out
}

/// `k` is `dir` or a path below it.
fn is_under(k: &[u8], dir: &[u8]) -> bool {
    k == dir || (k.len() > dir.len() && k.starts_with(dir) && k[dir.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_round_trips_and_rejects_garbage() {
        let o = Own {
            uid: 1000,
            gid: 5,
            mode: libc::S_IFCHR | 0o620,
            rdev: 0x0501,
        };
        assert_eq!(Own::decode(&o.encode()), Some(o));
        assert_eq!(Own::decode(b"1:2"), None);
        assert_eq!(Own::decode(b"x:2:755:0"), None);
        assert_eq!(Own::decode(b"1:2:9:0"), None);
    }

    #[test]
    fn side_table_follows_renames_and_survives_saving() {
        let d = tempfile::tempdir().unwrap();
        let table = d.path().join("own.json");
        let o = Ownership::open(d.path(), table.clone()).unwrap();
        let rec = Own {
            uid: 7,
            gid: 8,
            mode: libc::S_IFLNK | 0o777,
            rdev: 0,
        };
        let host = d.path().join("x");
        o.set(&host, b"a/b/l", libc::S_IFLNK, rec).unwrap();
        o.set(&host, b"ab/l", libc::S_IFLNK, rec).unwrap();
        o.rename(b"a", b"c");
        assert_eq!(o.get(&host, b"c/b/l", libc::S_IFLNK), Some(rec));
        assert_eq!(o.get(&host, b"a/b/l", libc::S_IFLNK), None);
        assert_eq!(o.get(&host, b"ab/l", libc::S_IFLNK), Some(rec));
        o.save().unwrap();
        let again = Ownership::open(d.path(), table).unwrap();
        assert_eq!(again.get(&host, b"c/b/l", libc::S_IFLNK), Some(rec));
        again.remove(b"c");
        assert_eq!(again.get(&host, b"c/b/l", libc::S_IFLNK), None);
    }
}
