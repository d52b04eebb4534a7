//! The host's /proc as `top` and `stats` read it: which processes belong to a container
//! (those in its init's pid namespace: the `/proc/PID/ns/pid` links compared, no cgroups
//! needed), and each one's stat, status, cmdline, smaps_rollup and io files, the network
//! namespace's net/dev, the memory total and, where a cgroup v2 is delegated, its limit.
//!
//! Also [`pause`]: `commit` stops a running container's processes while it reads.
//!
//! The parsers are pure (text in, numbers out) and tested on samples; the readers around
//! them only open files. A process that vanishes between the listing and the read is
//! skipped, never an error: a container's processes come and go while we look.

use std::path::{Path, PathBuf};

/// The fields of `/proc/PID/stat` that top and stats use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    /// The command name (`comm`), without its parentheses.
    pub comm: String,
    pub ppid: i32,
    /// The controlling terminal, as the kernel encodes it (0: none).
    pub tty_nr: u32,
    /// CPU time in clock ticks, user and system.
    pub utime: u64,
    pub stime: u64,
    pub num_threads: u64,
    /// Start time in clock ticks after boot.
    pub starttime: u64,
}

/// Parses `/proc/PID/stat` (the command name may hold spaces and parentheses: the fields
/// after it start at the last `)`).
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state)
    let field = |n: usize| rest.get(n - 3).and_then(|s| s.parse::<u64>().ok());
    Some(ProcStat {
        pid,
        comm,
        ppid: rest.get(1)?.parse().ok()?,
        tty_nr: u32::try_from(field(7)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        num_threads: field(20)?,
        starttime: field(22)?,
    })
}

/// The effective uid in a `/proc/PID/status` text.
pub fn parse_status_uid(text: &str) -> Option<u32> {
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A `KEY: N kB` line's value in bytes (meminfo, smaps_rollup).
pub fn kb_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(key))?;
    let n: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(n * 1024)
}

/// (read_bytes, write_bytes) of a `/proc/PID/io` text: what reached the block layer.
pub fn parse_io(text: &str) -> (u64, u64) {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("read_bytes:"), get("write_bytes:"))
}

/// (received, transmitted) bytes over every interface but loopback in a `net/dev` text.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

/// The terminal name `ps` shows for a `tty_nr` (`pts/3`, `tty1`, or `?`).
pub fn tty_name(tty_nr: u32) -> String {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        0 => "?".into(),
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => "?".into(),
    }
}

fn proc_path(pid: i32, file: &str) -> PathBuf {
    Path::new("/proc").join(pid.to_string()).join(file)
}

fn read(pid: i32, file: &str) -> Option<String> {
    std::fs::read_to_string(proc_path(pid, file)).ok()
}

/// The `/proc/PID/stat` of a live process.
pub fn stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&read(pid, "stat")?)
}

/// Every host pid in the pid namespace of `init` (itself included), ascending.
pub fn namespace_pids(init: i32) -> Vec<i32> {
    let Ok(ns) = std::fs::read_link(proc_path(init, "ns/pid")) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| std::fs::read_link(proc_path(pid, "ns/pid")).is_ok_and(|l| l == ns))
        .collect();
    pids.sort_unstable();
    pids
}

/// The processes of a container stopped by [`pause`]; dropping it continues them.
pub struct Paused(Vec<i32>);

/// Stops (SIGSTOP) every process in the pid namespace of `init`, also those forked while
/// it works, as docker's `commit` pauses a container: nothing inside can change its
/// writable layer while that is read. The user owns the container's user namespace, so
/// the signals are allowed; a process gone meanwhile is skipped.
pub fn pause(init: i32) -> Paused {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let mut tried: Vec<i32> = Vec::new();
    let mut stopped = Vec::new();
    loop {
        let new: Vec<i32> = namespace_pids(init)
            .into_iter()
            .filter(|p| !tried.contains(p))
            .collect();
        if new.is_empty() {
            return Paused(stopped);
        }
        for p in new {
            tried.push(p);
            if kill(Pid::from_raw(p), Signal::SIGSTOP).is_ok() {
                stopped.push(p);
            }
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        for &p in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
    }
}

/// The effective uid of a process.
pub fn uid(pid: i32) -> Option<u32> {
    parse_status_uid(&read(pid, "status")?)
}

/// The command line, its arguments joined by spaces (empty for a kernel thread or zombie).
pub fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(proc_path(pid, "cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Memory the process accounts for: its proportional set size (shared pages divided
/// among their users), else its resident set.
pub fn memory(pid: i32) -> u64 {
    if let Some(pss) = read(pid, "smaps_rollup").and_then(|t| kb_field(&t, "Pss")) {
        return pss;
    }
    read(pid, "statm")
        .and_then(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page_size())
}

/// (read, written) block I/O bytes of a process.
pub fn block_io(pid: i32) -> (u64, u64) {
    read(pid, "io").map_or((0, 0), |t| parse_io(&t))
}

/// (received, transmitted) bytes of the network namespace `pid` is in, loopback aside.
pub fn net_io(pid: i32) -> (u64, u64) {
    read(pid, "net/dev").map_or((0, 0), |t| parse_net_dev(&t))
}

/// The host's memory, or the memory.max of `pid`'s cgroup when a cgroup v2 hierarchy is
/// mounted at /sys/fs/cgroup and sets a lower one.
pub fn memory_limit(pid: i32) -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| kb_field(&t, "MemTotal"))
        .unwrap_or(0);
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let limit = unified
        .then(|| read(pid, "cgroup"))
        .flatten()
        .and_then(|t| {
            let path = t.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
            let file = Path::new("/sys/fs/cgroup")
                .join(path.trim_start_matches('/'))
                .join("memory.max");
            std::fs::read_to_string(file)
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        });
    match limit {
        Some(l) if total == 0 || l < total => l,
        _ => total,
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0)
        .unwrap_or(100)
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(4096)
}

/// Seconds since boot (`/proc/uptime`) and the boot time in seconds since the epoch
/// (`btime` of `/proc/stat`).
pub fn uptime_and_boot() -> (f64, i64) {
    let up = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("btime "))?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0);
    (up, boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let text = "4242 (my (odd) cmd) S 4200 4242 4242 34817 4242 4194560 120 0 0 0 \
                    7 3 0 0 20 0 2 0 123456 4620288 210 18446744073709551615";
        let s = parse_stat(text).unwrap();
        assert_eq!(
            s,
            ProcStat {
                pid: 4242,
                comm: "my (odd) cmd".into(),
                ppid: 4200,
                tty_nr: 34817,
                utime: 7,
                stime: 3,
                num_threads: 2,
                starttime: 123456,
            }
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 0"), None);
    }

    #[test]
    fn terminals_are_named_as_ps_names_them() {
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name(34817), "pts/1");
        assert_eq!(tty_name((137 << 8) | 2), "pts/258");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
    }

    #[test]
    fn status_meminfo_io_and_net_dev_parse() {
        let status = "Name:\tsleep\nUid:\t1000\t200000\t200000\t200000\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_status_uid(status), Some(200000));
        let meminfo = "MemTotal:       16303400 kB\nMemFree:         1234 kB\n";
        assert_eq!(kb_field(meminfo, "MemTotal"), Some(16303400 * 1024));
        assert_eq!(kb_field(meminfo, "Mem"), None);
        let io = "rchar: 6976\nwchar: 0\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_io(io), (4096, 8192));
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n\
                   \x20   lo:  500 5 0 0 0 0 0 0  500 5 0 0 0 0 0 0\n\
                   \x20 eth0: 1200 9 0 0 0 0 0 0  300 3 0 0 0 0 0 0\n\
                   \x20 tap0:   34 1 0 0 0 0 0 0   66 1 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(dev), (1234, 366));
    }

    #[test]
    fn this_process_is_in_its_own_namespace_listing() {
        let me = std::process::id() as i32;
        assert!(namespace_pids(me).contains(&me));
        let s = stat(me).unwrap();
        assert_eq!(s.pid, me);
        assert!(s.num_threads >= 1);
        assert!(memory(me) > 0);
        assert!(cmdline(me).contains("camada"));
        assert!(memory_limit(me) > 0);
    }
}
