//! Container-side ownership of files in the upper dir.
//!
//! The server runs as one host user, so the uid, gid and full mode (file type
//! included, so a device node can be a plain host file) that the container sees are
//! kept in the `user.camada.own` xattr of the host file, or, where the host filesystem
//! has no user xattrs (NFS, some tmpfs) and always for symlinks, fifos, sockets and
//! device nodes (Linux allows user xattrs only on files and dirs), in a side table keyed
//! by the path relative to the upper dir, kept next to it with a journal of every change.
//! Never touches the lower view. Invariant: a host file without a record shows as owned
//! by the server's own ids with its host mode; a change is in the journal before the
//! operation that made it returns.

use std::collections::BTreeMap;
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

/// One change of the side table, as the journal records it: absolute, so replaying a
/// journal over a table that already holds its effect changes nothing.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Rec {
    /// `rel` is owned so.
    Set(Vec<u8>, Own),
    /// Every record at or below `rel` is gone.
    Remove(Vec<u8>),
}

/// A journal longer than this is folded into the table while serving.
const JOURNAL_MAX: u64 = 8 << 20;

/// The side table: the records, the journal file appended to, its length.
struct Table {
    map: Map,
    journal: Option<fs::File>,
    journal_len: u64,
}

/// Where ownership records live.
///
/// The side table is a JSON file rewritten whole (temp, fsync, rename) and an
/// append-only journal beside it (`TABLE.journal`): every change is one line, written
/// with one `write(2)` before the operation returns, so a server killed outright loses
/// nothing. A torn last line (the machine crashed mid-write) is ignored. Opening
/// replays the journal; [`Ownership::compact`] folds it into the table.
pub struct Ownership {
    xattrs: bool,
    table: Mutex<Table>,
    table_path: PathBuf,
}

impl Ownership {
    /// Probes whether `upper` takes user xattrs and loads the side table at
    /// `table_path` with its journal replayed. Writes nothing.
    pub fn open(upper: &Path, table_path: PathBuf) -> Result<Ownership, OverlayError> {
        let probe = sys::lsetxattr(upper, b"user.camada.probe", b"1", 0)
            .and_then(|()| sys::lremovexattr(upper, b"user.camada.probe"));
        let xattrs = probe.is_ok();
        let err = |source| OverlayError::SideTable {
            path: table_path.clone(),
            source,
        };
        let bad = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let mut map: Map = match fs::read(&table_path) {
            Ok(bytes) => {
                let v: Vec<(Vec<u8>, Own)> =
                    serde_json::from_slice(&bytes).map_err(|e| err(bad(e)))?;
                v.into_iter().collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => return Err(err(source)),
        };
        let journal = journal_path(&table_path);
        let (recs, journal_len) = match fs::read(&journal) {
            Ok(bytes) => (parse_journal(&bytes), bytes.len() as u64),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 0),
            Err(source) => {
                return Err(OverlayError::SideTable {
                    path: journal,
                    source,
                });
            }
        };
        for r in &recs {
            apply(&mut map, r);
        }
        Ok(Ownership {
            xattrs,
            table: Mutex::new(Table {
                map,
                journal: None,
                journal_len,
            }),
            table_path,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
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
            return self.lock().map.get(rel).copied();
        }
        Own::decode(&sys::lgetxattr(host, OWN_XATTR).ok()?)
    }

    pub fn set(&self, host: &Path, rel: &[u8], host_mode: u32, own: Own) -> std::io::Result<()> {
        if self.in_table(host_mode) {
            let mut t = self.lock();
            if t.map.get(rel) == Some(&own) {
                return Ok(());
            }
            return self.commit(&mut t, vec![Rec::Set(rel.to_vec(), own)]);
        }
        sys::lsetxattr(host, OWN_XATTR, &own.encode(), 0)
    }

    /// A name was removed from the upper dir: drop its record and those below it.
    pub fn remove(&self, rel: &[u8]) -> std::io::Result<()> {
        let mut t = self.lock();
        if keys_under(&t.map, rel).next().is_none() {
            return Ok(());
        }
        self.commit(&mut t, vec![Rec::Remove(rel.to_vec())])
    }

    /// A name moved: move its record and those below it (replacing those at `to`).
    pub fn rename(&self, from: &[u8], to: &[u8]) -> std::io::Result<()> {
        let mut t = self.lock();
        let recs = moved(&t.map, from, to);
        if recs.is_empty() {
            return Ok(());
        }
        self.commit(&mut t, recs)
    }

    /// Two names swapped places (RENAME_EXCHANGE), in one journal line.
    pub fn exchange(&self, a: &[u8], b: &[u8]) -> std::io::Result<()> {
        let mut t = self.lock();
        let (ra, rb) = (under(&t.map, a, b), under(&t.map, b, a));
        if ra.is_empty() && rb.is_empty() {
            return Ok(());
        }
        let mut recs = vec![Rec::Remove(a.to_vec()), Rec::Remove(b.to_vec())];
        recs.extend(ra);
        recs.extend(rb);
        self.commit(&mut t, recs)
    }

    /// A new hardlink shares its target's record.
    pub fn link(&self, from: &[u8], to: &[u8]) -> std::io::Result<()> {
        let mut t = self.lock();
        match t.map.get(from).copied() {
            Some(o) => self.commit(&mut t, vec![Rec::Set(to.to_vec(), o)]),
            None => Ok(()),
        }
    }

    /// Appends `recs` to the journal as one line (one write), then applies them.
    fn commit(&self, t: &mut Table, recs: Vec<Rec>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&recs)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        line.push(b'\n');
        if t.journal.is_none() {
            t.journal = Some(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(journal_path(&self.table_path))?,
            );
        }
        if let Some(j) = t.journal.as_mut() {
            j.write_all(&line)?;
        }
        t.journal_len += line.len() as u64;
        for r in &recs {
            apply(&mut t.map, r);
        }
        if t.journal_len > JOURNAL_MAX {
            self.fold(t).map_err(|e| match e {
                OverlayError::SideTable { source, .. } => source,
                other => std::io::Error::other(other.to_string()),
            })?;
        }
        Ok(())
    }

    /// Folds the journal into the table: the table rewritten (temp, fsync, rename),
    /// then the journal emptied. A crash in between replays a journal whose effect the
    /// table already holds, which changes nothing.
    pub fn compact(&self) -> Result<(), OverlayError> {
        let mut t = self.lock();
        self.fold(&mut t)
    }

    /// Writes the side table and empties the journal. Kept for callers of the
    /// unmount-time save: the journal already made every change durable.
    pub fn save(&self) -> Result<(), OverlayError> {
        self.compact()
    }

    fn fold(&self, t: &mut Table) -> Result<(), OverlayError> {
        let err = |source| OverlayError::SideTable {
            path: self.table_path.clone(),
            source,
        };
        let journal = journal_path(&self.table_path);
        // Every change since the table was written is in the journal.
        if t.journal_len == 0 && (t.map.is_empty() || self.table_path.exists()) {
            return Ok(());
        }
        let v: Vec<(&Vec<u8>, &Own)> = t.map.iter().collect();
        let bytes = serde_json::to_vec(&v)
            .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let mut tmp = self.table_path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = fs::File::create(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, &self.table_path).map_err(err)?;
        t.journal = None;
        match fs::remove_file(&journal) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(OverlayError::SideTable {
                    path: journal,
                    source,
                });
            }
        }
        t.journal_len = 0;
        Ok(())
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

/// `TABLE.journal`.
fn journal_path(table: &Path) -> PathBuf {
    let mut p = table.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

/// The complete lines of a journal, in order; a torn or garbled line is skipped.
fn parse_journal(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        if let Ok(recs) = serde_json::from_slice::<Vec<Rec>>(&rest[..i]) {
            out.extend(recs);
        }
        rest = &rest[i + 1..];
    }
    out
}

/// The records by path; sorted, so the records at or below a path are two ranges.
type Map = BTreeMap<Vec<u8>, Own>;

/// The keys of `map` equal to `dir` or below it (`dir/...`), in order.
fn keys_under<'a>(map: &'a Map, dir: &[u8]) -> impl Iterator<Item = &'a Vec<u8>> + 'a {
    let mut lo = dir.to_vec();
    lo.push(b'/');
    let mut hi = dir.to_vec();
    hi.push(b'/' + 1);
    let exact = map.get_key_value(dir).map(|(k, _)| k);
    exact.into_iter().chain(map.range(lo..hi).map(|(k, _)| k))
}

fn apply(map: &mut Map, r: &Rec) {
    match r {
        Rec::Set(k, o) => {
            map.insert(k.clone(), *o);
        }
        Rec::Remove(p) => {
            if !map.is_empty() {
                let gone: Vec<Vec<u8>> = keys_under(map, p).cloned().collect();
                for k in gone {
                    map.remove(&k);
                }
            }
        }
    }
}

/// The records at or below `from`, re-keyed below `to`, as `Set`s.
fn under(map: &Map, from: &[u8], to: &[u8]) -> Vec<Rec> {
    keys_under(map, from)
        .filter_map(|k| Some((k, map.get(k)?)))
        .map(|(k, v)| {
            let mut n = to.to_vec();
            n.extend_from_slice(&k[from.len()..]);
            Rec::Set(n, *v)
        })
        .collect()
}

/// What moving `from` to `to` does to the table: clear `to`, set the moved records,
/// clear `from`. Empty if neither has a record.
fn moved(map: &Map, from: &[u8], to: &[u8]) -> Vec<Rec> {
    let sets = under(map, from, to);
    if sets.is_empty() && keys_under(map, to).next().is_none() {
        return Vec::new();
    }
    let mut recs = vec![Rec::Remove(to.to_vec())];
    recs.extend(sets);
    recs.push(Rec::Remove(from.to_vec()));
    recs
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
        o.rename(b"a", b"c").unwrap();
        assert_eq!(o.get(&host, b"c/b/l", libc::S_IFLNK), Some(rec));
        assert_eq!(o.get(&host, b"a/b/l", libc::S_IFLNK), None);
        assert_eq!(o.get(&host, b"ab/l", libc::S_IFLNK), Some(rec));
        o.save().unwrap();
        let again = Ownership::open(d.path(), table).unwrap();
        assert_eq!(again.get(&host, b"c/b/l", libc::S_IFLNK), Some(rec));
        again.remove(b"c").unwrap();
        assert_eq!(again.get(&host, b"c/b/l", libc::S_IFLNK), None);
    }

    #[test]
    fn journal_keeps_every_change_without_a_save_and_replays_idempotently() {
        let d = tempfile::tempdir().unwrap();
        let table = d.path().join("own.json");
        let journal = journal_path(&table);
        let host = d.path().join("x");
        let r = |uid| Own {
            uid,
            gid: 1,
            mode: libc::S_IFLNK | 0o777,
            rdev: 0,
        };
        let o = Ownership::open(d.path(), table.clone()).unwrap();
        o.set(&host, b"a/l", libc::S_IFLNK, r(1)).unwrap();
        o.set(&host, b"b/l", libc::S_IFLNK, r(2)).unwrap();
        o.rename(b"a", b"c").unwrap();
        o.exchange(b"c", b"b").unwrap();
        o.link(b"b/l", b"x").unwrap();
        o.set(&host, b"gone/l", libc::S_IFLNK, r(3)).unwrap();
        o.remove(b"gone").unwrap();
        // Killed: no save, no compaction.
        drop(o);
        assert!(!table.exists());
        let logged = fs::read(&journal).unwrap();
        let want = |o: &Ownership| {
            let g = |k: &[u8]| o.get(&host, k, libc::S_IFLNK).map(|x| x.uid);
            assert_eq!(
                [g(b"b/l"), g(b"c/l"), g(b"x"), g(b"a/l"), g(b"gone/l")],
                [Some(1), Some(2), Some(1), None, None]
            );
        };
        want(&Ownership::open(d.path(), table.clone()).unwrap());
        // A torn last line (a crash mid-write) is ignored.
        let mut torn = logged.clone();
        torn.extend_from_slice(br#"[{"Set":[[97],{"uid":9"#);
        fs::write(&journal, &torn).unwrap();
        let again = Ownership::open(d.path(), table.clone()).unwrap();
        want(&again);
        again.compact().unwrap();
        assert!(table.exists() && !journal.exists());
        want(&Ownership::open(d.path(), table.clone()).unwrap());
        // A crash between writing the table and removing the journal: replaying the
        // journal over the table changes nothing.
        fs::write(&journal, &logged).unwrap();
        want(&Ownership::open(d.path(), table.clone()).unwrap());
    }
}
