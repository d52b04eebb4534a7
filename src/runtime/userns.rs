//! The user namespace's id maps: which host ids the container's ids stand for.
//!
//! Owns: parsing /etc/subuid and /etc/subgid, choosing the maps ([`IdMaps::plan`], pure),
//! and writing them for a process that has just unshared its user namespace
//! ([`IdMaps::apply`]: newuidmap/newgidmap for subordinate ranges, direct writes otherwise).
//! Never creates namespaces itself. Invariant: container root is always the invoking user
//! (root on the host maps the whole id space onto itself); without subordinate ranges only
//! that one id is mapped and `setgroups` is denied, as the kernel requires.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// The environment variable that asks for single-id mode (`CAMADA_SINGLE_ID=1`).
pub const SINGLE_ID_ENV: &str = "CAMADA_SINGLE_ID";

/// One line of a uid_map/gid_map: `count` ids from `inside` map to host ids from `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// How the maps get written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapWriter {
    /// The caller is root on the host: writes /proc/PID/{uid,gid}_map itself.
    Direct,
    /// Subordinate ranges through the setuid helpers (paths of newuidmap, newgidmap).
    Helpers {
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
    /// One id each: setgroups denied, then a single-line map written directly.
    Single,
}

/// The maps of one container's user namespace and how to write them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    pub uid: Vec<IdRange>,
    pub gid: Vec<IdRange>,
    pub writer: MapWriter,
}

/// Why the maps could not be written.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("writing {path}: {source}")]
    WriteMap {
        path: String,
        source: std::io::Error,
    },
    #[error("running {helper}: {source} (install it with: apt-get install uidmap)")]
    SpawnHelper {
        helper: String,
        source: std::io::Error,
    },
    #[error(
        "{helper} refused the map {args}: {stderr} (check the ranges in /etc/subuid and /etc/subgid, and that {helper} is setuid root)"
    )]
    Helper {
        helper: String,
        args: String,
        stderr: String,
    },
}

/// The ranges of one user in a /etc/subuid or /etc/subgid text (`name_or_id:start:count`
/// lines; comments and malformed lines are skipped, as shadow-utils does).
pub fn parse_subids(text: &str, name: &str, id: u32) -> Vec<(u32, u32)> {
    let id_text = id.to_string();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split(':');
        let (Some(who), Some(start), Some(count), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if who != name && who != id_text {
            continue;
        }
        if let (Ok(start), Ok(count)) = (start.parse::<u32>(), count.parse::<u32>())
            && count > 0
        {
            out.push((start, count));
        }
    }
    out
}

/// Container id 0 -> `own`, then container ids 1.. -> the subordinate ranges in order.
fn ranges(own: u32, subs: &[(u32, u32)]) -> Vec<IdRange> {
    let mut v = vec![IdRange {
        inside: 0,
        outside: own,
        count: 1,
    }];
    let mut next = 1u32;
    for &(start, count) in subs {
        let count = count.min(u32::MAX - next);
        if count == 0 {
            break;
        }
        v.push(IdRange {
            inside: next,
            outside: start,
            count,
        });
        next += count;
    }
    v
}

impl IdMaps {
    /// Decides the maps for a user (pure: the caller reads the files and finds the helpers).
    pub fn plan(
        uid: u32,
        gid: u32,
        name: &str,
        subuid: &str,
        subgid: &str,
        helpers: Option<(PathBuf, PathBuf)>,
    ) -> IdMaps {
        if uid == 0 {
            let all = vec![IdRange {
                inside: 0,
                outside: 0,
                count: u32::MAX,
            }];
            return IdMaps {
                uid: all.clone(),
                gid: all,
                writer: MapWriter::Direct,
            };
        }
        let su = parse_subids(subuid, name, uid);
        let sg = parse_subids(subgid, name, gid);
        match helpers {
            Some((newuidmap, newgidmap)) if !su.is_empty() && !sg.is_empty() => IdMaps {
                uid: ranges(uid, &su),
                gid: ranges(gid, &sg),
                writer: MapWriter::Helpers {
                    newuidmap,
                    newgidmap,
                },
            },
            _ => IdMaps {
                uid: ranges(uid, &[]),
                gid: ranges(gid, &[]),
                writer: MapWriter::Single,
            },
        }
    }

    /// The maps for the user running this process, from /etc/subuid, /etc/subgid and PATH;
    /// with [`SINGLE_ID_ENV`]`=1` in the environment, single-id mode even when ranges exist
    /// (a broken newuidmap; and the tests of single-id mode for a user who has ranges).
    pub fn for_current_user() -> IdMaps {
        let maps = IdMaps::for_current_user_from_files();
        if std::env::var_os(SINGLE_ID_ENV).is_some_and(|v| v == "1")
            && maps.writer != MapWriter::Direct
        {
            let uid = nix::unistd::geteuid().as_raw();
            let gid = nix::unistd::getegid().as_raw();
            return IdMaps::plan(uid, gid, "", "", "", None);
        }
        maps
    }

    fn for_current_user_from_files() -> IdMaps {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let name = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let helpers = match (find_program("newuidmap"), find_program("newgidmap")) {
            (Some(u), Some(g)) => Some((u, g)),
            _ => None,
        };
        IdMaps::plan(
            uid,
            gid,
            &name,
            &read("/etc/subuid"),
            &read("/etc/subgid"),
            helpers,
        )
    }

    /// True when more than container root is mapped (so `-u 1000` can work).
    pub fn has_ranges(&self) -> bool {
        self.uid.iter().map(|r| u64::from(r.count)).sum::<u64>() > 1
    }

    /// Single-id mode: the container (uid, gid) the one host id stands for.
    pub fn single(&self) -> Option<(u32, u32)> {
        match (&self.writer, self.uid.as_slice(), self.gid.as_slice()) {
            (MapWriter::Single, [u], [g]) => Some((u.inside, g.inside)),
            _ => None,
        }
    }

    /// Host uid that container uid `id` stands for, if mapped.
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        lookup(&self.uid, id)
    }

    /// Host gid that container gid `id` stands for, if mapped.
    pub fn host_gid(&self, id: u32) -> Option<u32> {
        lookup(&self.gid, id)
    }

    /// Writes the maps of process `pid`, which has just unshared its user namespace.
    pub fn apply(&self, pid: i32) -> Result<(), UsernsError> {
        match &self.writer {
            MapWriter::Direct => {
                write_proc(pid, "uid_map", &map_text(&self.uid))?;
                write_proc(pid, "gid_map", &map_text(&self.gid))
            }
            MapWriter::Single => {
                write_proc(pid, "setgroups", "deny")?;
                write_proc(pid, "uid_map", &map_text(&self.uid))?;
                write_proc(pid, "gid_map", &map_text(&self.gid))
            }
            MapWriter::Helpers {
                newuidmap,
                newgidmap,
            } => {
                run_helper(newuidmap, pid, &self.uid)?;
                run_helper(newgidmap, pid, &self.gid)
            }
        }
    }
}

fn lookup(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(r.inside)?;
        (off < r.count).then(|| r.outside + off)
    })
}

/// From the texts of /proc/PID/uid_map and gid_map: the (uid, gid) of a single-id
/// namespace (one line each, one id), else None.
pub fn single_mapping(uid_map: &str, gid_map: &str) -> Option<(u32, u32)> {
    let one = |text: &str| {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let line = lines.next()?;
        if lines.next().is_some() {
            return None;
        }
        let f: Vec<u32> = line
            .split_whitespace()
            .map(|w| w.parse().ok())
            .collect::<Option<_>>()?;
        matches!(f.as_slice(), [_, _, 1]).then(|| f[0])
    };
    Some((one(uid_map)?, one(gid_map)?))
}

/// The text of a uid_map/gid_map file.
pub fn map_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

fn write_proc(pid: i32, file: &str, text: &str) -> Result<(), UsernsError> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| UsernsError::WriteMap { path, source })
}

fn run_helper(helper: &std::path::Path, pid: i32, ranges: &[IdRange]) -> Result<(), UsernsError> {
    let mut args = vec![pid.to_string()];
    for r in ranges {
        args.extend([r.inside, r.outside, r.count].map(|n| n.to_string()));
    }
    let out = Command::new(helper)
        .args(&args)
        .output()
        .map_err(|source| UsernsError::SpawnHelper {
            helper: helper.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(UsernsError::Helper {
            helper: helper.display().to_string(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Why newuidmap/newgidmap may write other users' ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperPrivilege {
    /// Setuid root.
    Setuid,
    /// File capabilities (`security.capability`: cap_setuid/cap_setgid), as Fedora ships.
    FileCaps,
    /// Neither: the helper will refuse every range.
    None,
}

/// How the helper at `path` gets its privilege.
pub fn helper_privilege(path: &std::path::Path) -> HelperPrivilege {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) if m.uid() == 0 && m.mode() & 0o4000 != 0 => HelperPrivilege::Setuid,
        _ if super::sys::has_xattr(path, "security.capability") => HelperPrivilege::FileCaps,
        _ => HelperPrivilege::None,
    }
}

/// The executable `name` on PATH, else in the standard Debian directories (a `sudo` or
/// `env -i` environment may have a short PATH while newuidmap sits in /usr/bin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBUID: &str = "# comment\nana:100000:65536\nbad line\n1001:300000:10\nbo:200000:0\n";

    #[test]
    fn subids_match_name_or_number() {
        assert_eq!(parse_subids(SUBUID, "ana", 1000), vec![(100000, 65536)]);
        assert_eq!(parse_subids(SUBUID, "cy", 1001), vec![(300000, 10)]);
        assert_eq!(parse_subids(SUBUID, "bo", 1002), vec![]);
    }

    #[test]
    fn ranges_put_the_user_at_zero_then_the_subordinates() {
        let h = Some(("/u".into(), "/g".into()));
        let m = IdMaps::plan(1000, 1000, "ana", SUBUID, SUBUID, h.clone());
        assert_eq!(map_text(&m.uid), "0 1000 1\n1 100000 65536\n");
        assert!(m.has_ranges());
        assert_eq!(m.host_uid(0), Some(1000));
        assert_eq!(m.host_uid(1), Some(100000));
        assert_eq!(m.host_uid(65536), Some(165535));
        assert_eq!(m.host_uid(65537), None);
        assert!(matches!(m.writer, MapWriter::Helpers { .. }));
    }

    #[test]
    fn without_ranges_or_helpers_one_id_is_mapped() {
        let m = IdMaps::plan(
            1002,
            1002,
            "bo",
            SUBUID,
            SUBUID,
            Some(("/u".into(), "/g".into())),
        );
        assert_eq!(m.writer, MapWriter::Single);
        assert_eq!(map_text(&m.gid), "0 1002 1\n");
        assert!(!m.has_ranges());
        let m = IdMaps::plan(1000, 1000, "ana", SUBUID, SUBUID, None);
        assert_eq!(m.writer, MapWriter::Single);
    }

    #[test]
    fn single_id_mode_is_recognised() {
        let m = IdMaps::plan(1002, 1003, "bo", "", "", None);
        assert_eq!(m.single(), Some((0, 0)));
        let h = Some(("/u".into(), "/g".into()));
        let ranged = IdMaps::plan(1000, 1000, "ana", SUBUID, SUBUID, h);
        assert_eq!(ranged.single(), None);
        assert_eq!(
            single_mapping("      1000       1002          1\n", "0 1003 1\n"),
            Some((1000, 0))
        );
        assert_eq!(single_mapping("0 0 4294967295\n", "0 0 4294967295\n"), None);
        assert_eq!(
            single_mapping("0 1000 1\n1 100000 65536\n", "0 1 1\n"),
            None
        );
    }

    #[test]
    fn root_maps_everything_onto_itself() {
        let m = IdMaps::plan(0, 0, "root", "", "", None);
        assert_eq!(m.writer, MapWriter::Direct);
        assert_eq!(map_text(&m.uid), "0 0 4294967295\n");
        assert_eq!(m.host_gid(1234), Some(1234));
    }
}
