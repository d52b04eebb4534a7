//! `top` and `stats`: a running container's processes and what they use, read from the
//! host's /proc (`procfs`); never from cgroups, which are v1, hybrid or not delegated on
//! many machines (a delegated cgroup v2's memory limit is used when there is one).
//!
//! `top` without options is our own `ps -ef` over the container's processes; with options
//! it runs the host's `ps` with them and keeps the rows whose PID is the container's, as
//! docker does. `stats` takes samples of cumulative counters ([`StatsSample`]); two
//! samples make a row ([`stats_row`]): CPU % is the CPU time used between them over the
//! wall time between them. Never prints.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use super::containers::ContainersError;
use super::procfs;
use super::{Engine, EngineError};

/// Why `top` or `stats` failed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error(
        "running ps {args}: {source} (top with ps options needs the host's ps: apt-get install procps)"
    )]
    Ps {
        args: String,
        source: std::io::Error,
    },
    #[error("ps {args} failed: {stderr}")]
    PsFailed { args: String, stderr: String },
    #[error("Couldn't find PID field in ps output (ps {args})")]
    NoPidColumn { args: String },
}

/// `top`'s answer: column titles and one row per process (docker's `ContainerTopOKBody`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopTable {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// Cumulative counters of one container at one moment.
#[derive(Debug, Clone)]
pub struct StatsSample {
    pub id: String,
    /// Without docker's leading `/`.
    pub name: String,
    pub running: bool,
    pub at: Instant,
    /// user + system CPU time of its processes, in clock ticks.
    pub cpu_ticks: u64,
    pub memory: u64,
    pub memory_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    /// Tasks (threads), as docker's `pids.current` counts them.
    pub pids: u64,
}

/// One row of `stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRow {
    pub id: String,
    pub name: String,
    pub cpu_percent: f64,
    pub memory: u64,
    pub memory_limit: u64,
    pub memory_percent: f64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

/// The row two samples of one container make (`prev` taken first; without one, or for a
/// container not running, CPU % is 0 as docker shows it).
pub fn stats_row(prev: Option<&StatsSample>, cur: &StatsSample, ticks_per_second: u64) -> StatsRow {
    let cpu_percent = match prev {
        Some(p) if cur.running && p.running => {
            let wall = cur.at.duration_since(p.at).as_secs_f64();
            let used = cur.cpu_ticks.saturating_sub(p.cpu_ticks) as f64 / ticks_per_second as f64;
            if wall > 0.0 { used / wall * 100.0 } else { 0.0 }
        }
        _ => 0.0,
    };
    let memory_percent = if cur.memory_limit > 0 {
        cur.memory as f64 / cur.memory_limit as f64 * 100.0
    } else {
        0.0
    };
    StatsRow {
        id: cur.id.clone(),
        name: cur.name.clone(),
        cpu_percent,
        memory: cur.memory,
        memory_limit: cur.memory_limit,
        memory_percent,
        net_rx: cur.net_rx,
        net_tx: cur.net_tx,
        block_read: cur.block_read,
        block_write: cur.block_write,
        pids: cur.pids,
    }
}

/// `ps`'s TIME: `[DD-]HH:MM:SS` of CPU seconds.
pub fn cpu_time(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// `ps`'s STIME for a start at `start` seconds since the epoch, seen at `now` (UTC):
/// `HH:MM` within a day, `MonDD` within a year, else the year.
pub fn start_time(start: i64, now: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let stamp = crate::image::format_rfc3339(start, 0);
    // YYYY-MM-DDTHH:MM:SSZ
    let field = |a: usize, b: usize| stamp.get(a..b).unwrap_or("");
    let age = now - start;
    if age < 86_400 {
        field(11, 16).to_string()
    } else if age < 365 * 86_400 {
        let month = field(5, 7).parse::<usize>().unwrap_or(1).clamp(1, 12);
        format!("{}{}", MONTHS[month - 1], field(8, 10))
    } else {
        field(0, 4).to_string()
    }
}

/// Rows of a `ps` output whose PID column names one of `pids` (docker's parsePSOutput:
/// the last column takes the rest of the line).
pub fn filter_ps_output(
    output: &str,
    pids: &BTreeSet<i32>,
    args: &str,
) -> Result<TopTable, StatsError> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let pid_col =
        titles
            .iter()
            .position(|t| t == "PID")
            .ok_or_else(|| StatsError::NoPidColumn {
                args: args.to_string(),
            })?;
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let last = titles.len() - 1;
        let mut row: Vec<String> = fields[..last].iter().map(|s| s.to_string()).collect();
        row.push(fields[last..].join(" "));
        processes.push(row);
    }
    Ok(TopTable { titles, processes })
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// Our `ps -ef` over `pids`.
fn ps_ef(pids: &[i32]) -> TopTable {
    let titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        .map(String::from)
        .to_vec();
    let hz = procfs::clock_ticks();
    let (uptime, boot) = procfs::uptime_and_boot();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut processes = Vec::new();
    for &pid in pids {
        let Some(st) = procfs::stat(pid) else {
            continue;
        };
        let ticks = st.utime + st.stime;
        let started = st.starttime as f64 / hz as f64;
        let elapsed = uptime - started;
        let c = if elapsed > 0.0 {
            ((ticks as f64 / hz as f64) / elapsed * 100.0).min(99.0) as u64
        } else {
            0
        };
        let cmd = match procfs::cmdline(pid) {
            c if c.is_empty() => format!("[{}]", st.comm),
            c => c,
        };
        processes.push(vec![
            procfs::uid(pid).map_or_else(|| "?".into(), user_name),
            pid.to_string(),
            st.ppid.to_string(),
            c.to_string(),
            start_time(boot + started as i64, now),
            procfs::tty_name(st.tty_nr),
            cpu_time(ticks / hz),
            cmd,
        ]);
    }
    TopTable { titles, processes }
}

impl Engine {
    /// The host pid of a running container's first process, and its ID and name.
    fn running_init(&self, word: &str) -> Result<(i32, String, String), EngineError> {
        let c = self.inspect_container(word)?;
        if !c.state.running || c.state.pid <= 0 {
            return Err(StatsError::NotRunning(word.to_string()).into());
        }
        Ok((
            c.state.pid,
            c.id,
            c.name.trim_start_matches('/').to_string(),
        ))
    }

    /// `top CONTAINER [ps OPTIONS]`: the container's processes, by host pid.
    pub fn top_container(&self, word: &str, ps_args: &[String]) -> Result<TopTable, EngineError> {
        let (init, _, _) = self.running_init(word)?;
        let pids = procfs::namespace_pids(init);
        if ps_args.is_empty() {
            return Ok(ps_ef(&pids));
        }
        let args = ps_args.join(" ");
        // the host's ps on PATH, else where Debian puts it (PATH may be bare)
        let run = |program: &str| std::process::Command::new(program).args(ps_args).output();
        let out = run("ps")
            .or_else(|e| {
                ["/usr/bin/ps", "/bin/ps"]
                    .iter()
                    .find(|p| Path::new(p).is_file())
                    .map_or(Err(e), |p| run(p))
            })
            .map_err(|source| StatsError::Ps {
                args: args.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(StatsError::PsFailed {
                args,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }
            .into());
        }
        let set: BTreeSet<i32> = pids.into_iter().collect();
        Ok(filter_ps_output(
            &String::from_utf8_lossy(&out.stdout),
            &set,
            &args,
        )?)
    }

    /// One sample of each container named (or, with none named, of every running one, or
    /// every one with `all`). A container not running gives zeros.
    pub fn stats_sample(
        &self,
        words: &[String],
        all: bool,
    ) -> Result<Vec<StatsSample>, EngineError> {
        let mut targets = Vec::new();
        if words.is_empty() {
            for row in self.list_containers(all, false)? {
                targets.push(row.id);
            }
        } else {
            targets.extend(words.iter().cloned());
        }
        let mut out = Vec::new();
        for word in &targets {
            let c = match self.inspect_container(word) {
                Ok(c) => c,
                // removed between the listing and now
                Err(EngineError::Containers(ContainersError::State(_))) if words.is_empty() => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            out.push(sample(
                c.id,
                c.name.trim_start_matches('/').to_string(),
                (c.state.running && c.state.pid > 0).then_some(c.state.pid),
                c.host_config.network_mode == "host",
            ));
        }
        Ok(out)
    }
}

/// Reads the counters of the processes in `init`'s pid namespace.
fn sample(id: String, name: String, init: Option<i32>, host_network: bool) -> StatsSample {
    let mut s = StatsSample {
        id,
        name,
        running: false,
        at: Instant::now(),
        cpu_ticks: 0,
        memory: 0,
        memory_limit: 0,
        net_rx: 0,
        net_tx: 0,
        block_read: 0,
        block_write: 0,
        pids: 0,
    };
    let Some(init) = init else { return s };
    let pids = procfs::namespace_pids(init);
    if pids.is_empty() {
        return s;
    }
    s.running = true;
    for &pid in &pids {
        let Some(st) = procfs::stat(pid) else {
            continue;
        };
        s.cpu_ticks += st.utime + st.stime;
        s.pids += st.num_threads.max(1);
        s.memory += procfs::memory(pid);
        let (r, w) = procfs::block_io(pid);
        s.block_read += r;
        s.block_write += w;
    }
    s.memory_limit = procfs::memory_limit(init);
    if !host_network {
        (s.net_rx, s.net_tx) = procfs::net_io(init);
    }
    s
}

/// Clock ticks per second, for [`stats_row`].
pub fn ticks_per_second() -> u64 {
    procfs::clock_ticks()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn s(at: Instant, ticks: u64, running: bool) -> StatsSample {
        StatsSample {
            id: "a".repeat(64),
            name: "x".into(),
            running,
            at,
            cpu_ticks: ticks,
            memory: 1024 * 1024,
            memory_limit: 4 * 1024 * 1024,
            net_rx: 0,
            net_tx: 0,
            block_read: 0,
            block_write: 0,
            pids: 2,
        }
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let row = stats_row(Some(&s(t0, 100, true)), &s(t1, 250, true), 100);
        assert!((row.cpu_percent - 75.0).abs() < 1e-9, "{row:?}");
        assert!((row.memory_percent - 25.0).abs() < 1e-9);
        assert_eq!(row.pids, 2);
        assert_eq!(stats_row(None, &s(t1, 250, true), 100).cpu_percent, 0.0);
        assert_eq!(
            stats_row(Some(&s(t0, 100, true)), &s(t1, 0, false), 100).cpu_percent,
            0.0
        );
    }

    #[test]
    fn ps_times_read_as_ps_writes_them() {
        assert_eq!(cpu_time(0), "00:00:00");
        assert_eq!(cpu_time(3725), "01:02:05");
        assert_eq!(cpu_time(90_061), "1-01:01:01");
        // 2024-01-02T03:04:05Z
        let t = 1_704_164_645;
        assert_eq!(start_time(t, t + 10), "03:04");
        assert_eq!(start_time(t, t + 2 * 86_400), "Jan02");
        assert_eq!(start_time(t, t + 400 * 86_400), "2024");
    }

    #[test]
    fn ps_output_is_filtered_by_pid_column() {
        let out = "USER         PID %CPU COMMAND\n\
                   root           1  0.0 /sbin/init splash\n\
                   bob         4242  1.5 sleep 1000\n\
                   bob         4243  0.0 sh -c x y\n";
        let pids = BTreeSet::from([4242, 4243]);
        let t = filter_ps_output(out, &pids, "aux").unwrap();
        assert_eq!(t.titles, ["USER", "PID", "%CPU", "COMMAND"]);
        assert_eq!(
            t.processes,
            vec![
                vec!["bob", "4242", "1.5", "sleep 1000"],
                vec!["bob", "4243", "0.0", "sh -c x y"]
            ]
        );
        assert!(matches!(
            filter_ps_output("USER CMD\nx y\n", &pids, "-o user,cmd"),
            Err(StatsError::NoPidColumn { .. })
        ));
    }
}
