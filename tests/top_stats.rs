//! `top` and `stats` through the real binary, as root, as `camadatest` and in single-id
//! mode: the container's processes by name and host pid, ps options passed to the host's
//! ps, and a `stats --no-stream` row with memory and the process count; a stopped
//! container shows zeros.

mod common;

use std::time::Duration;

use common::Camada;
use common::engines::{ALL, engines};

/// Starts container `name` running two `sleep`s (and its shell); its full id.
fn two_sleepers(c: &Camada, name: &str) -> String {
    let id = c.ok([
        "run",
        "-d",
        "--name",
        name,
        "base",
        "sh",
        "-c",
        "sleep 1000 & sleep 999 & wait",
    ]);
    id.trim().to_string()
}

/// `top`'s rows once the container's shell has started both sleeps (bounded wait: the
/// detached container is still starting them when `run -d` returns).
fn top_rows(c: &Camada, id: &str) -> Vec<Vec<String>> {
    for _ in 0..100 {
        let out = c.ok(["top", id]);
        let rows: Vec<Vec<String>> = out
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect();
        if rows
            .iter()
            .filter(|r| r.get(7).is_some_and(|c| c == "sleep"))
            .count()
            == 2
        {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("top never showed both sleeps: {}", c.ok(["top", id]));
}

#[test]
fn top_shows_the_processes_by_name_and_host_pid() {
    for (who, c) in engines(ALL) {
        let id = &two_sleepers(&c, "toptest");
        let header = c.ok(["top", "toptest"]);
        let header = header.lines().next().unwrap();
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        );
        let rows = top_rows(&c, id);
        assert_eq!(rows.len(), 3, "{who:?}: {rows:?}");
        let sleeper = rows
            .iter()
            .find(|r| r[7..] == ["sleep", "1000"])
            .unwrap_or_else(|| panic!("{who:?}: no sleep 1000 in {rows:?}"));
        // a host pid: the host's /proc says it is that sleep
        let pid: i32 = sleeper[1].parse().unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert_eq!(cmdline, b"sleep\x001000\x00");
        // the container's root is the user who runs camada
        let me = nix::unistd::User::from_uid(c.uid().into())
            .unwrap()
            .unwrap()
            .name;
        assert_eq!(sleeper[0], me, "{who:?}");
        let shell = rows.iter().find(|r| r[7] == "sh").unwrap();
        assert_eq!(sleeper[2], shell[1], "the sleep's parent is the shell");
        // options go to the host's ps; its rows are kept by PID
        let out = c.ok(["top", id, "-o", "pid,comm"]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["PID", "COMMAND"]
        );
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines.iter().any(|l| l.split_whitespace().collect::<Vec<_>>() == [sleeper[1].as_str(), "sleep"]), "{out}");
        c.run(["top", id, "-o", "comm"])
            .engine_error()
            .stderr_has("PID");
        c.run(["kill", id]).success();
        c.run(["top", id])
            .engine_error()
            .stderr_has("is not running");
        eprintln!("{who:?}: ok");
    }
}

#[test]
fn stats_no_stream_prints_memory_and_pids() {
    for (who, c) in engines(ALL) {
        let id = &two_sleepers(&c, "statstest");
        top_rows(&c, id);
        let stopped = c.ok(["create", "--name", "idle", "base", "true"]);
        let out = c.ok(["stats", "--no-stream"]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{who:?}: only the running one: {out}");
        let cols: Vec<&str> = lines[0]
            .split("  ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(
            cols,
            [
                "CONTAINER ID",
                "NAME",
                "CPU %",
                "MEM USAGE / LIMIT",
                "MEM %",
                "NET I/O",
                "BLOCK I/O",
                "PIDS"
            ]
        );
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        // id name cpu% usage / limit mem% rx / tx read / write pids
        assert_eq!(cells.len(), 14, "{out}");
        assert_eq!(cells[0], &id[..12]);
        assert_eq!(cells[1], "statstest");
        assert!(cells[2].ends_with('%'));
        assert!(
            cells[3] != "0B" && cells[3].ends_with("iB"),
            "memory in use: {out}"
        );
        assert!(
            cells[5].ends_with("iB") && cells[5] != "0B",
            "a limit: {out}"
        );
        assert_eq!(cells[13], "3", "{who:?}: sh and two sleeps: {out}");
        // a stopped container named (or listed with -a) shows zeros
        let out = c.ok(["stats", "--no-stream", "--no-trunc", "idle"]);
        let cells: Vec<String> = out
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(
            cells,
            [
                stopped.trim(),
                "idle",
                "0.00%",
                "0B",
                "/",
                "0B",
                "0.00%",
                "0B",
                "/",
                "0B",
                "0B",
                "/",
                "0B",
                "0"
            ]
        );
        assert_eq!(c.ok(["stats", "--no-stream", "-a"]).lines().count(), 3);
        c.run(["stats", "--no-stream", "nosuch"])
            .engine_error()
            .stderr_has("No such container: nosuch");
        eprintln!("{who:?}: ok");
    }
}

#[test]
fn stats_format_prints_the_fields_asked_for() {
    for (who, c) in engines(ALL) {
        let id = &two_sleepers(&c, "fmt");
        top_rows(&c, id);
        let out = c.ok([
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        ]);
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words.len(), 5, "{who:?}: {out}");
        assert_eq!(words[..2], ["fmt", "3"], "{who:?}: {out}");
        assert!(
            words[2].ends_with("iB") && words[2] != "0B" && words[3] == "/",
            "{who:?}: {out}"
        );
        // a table: the header from docker's names; Container is the word typed
        let out = c.ok([
            "stats",
            "--no-stream",
            "--format",
            "table {{.Container}}\t{{.ID}}\t{{.CPUPerc}}",
            "fmt",
        ]);
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| {
                l.split("   ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(lines.len(), 2, "{who:?}: {out}");
        assert_eq!(lines[0], ["CONTAINER", "CONTAINER ID", "CPU %"], "{out}");
        assert_eq!(lines[1][..2], ["fmt", &id[..12]], "{out}");
        assert!(lines[1][2].ends_with('%'), "{out}");
        let json = c.ok(["stats", "--no-stream", "--format", "json", "fmt"]);
        assert!(
            json.starts_with('{')
                && json.contains("\"Name\":\"fmt\"")
                && json.contains("\"PIDs\":\"3\""),
            "{who:?}: {json}"
        );
        c.run(["stats", "--no-stream", "--format", "{{.Name", "fmt"])
            .engine_error();
        eprintln!("{who:?}: ok");
    }
}

#[test]
fn stats_without_no_stream_redraws_until_interrupted() {
    use std::io::Read;
    use std::process::Stdio;
    for (who, c) in engines(&[common::engines::Who::Root, common::engines::Who::User]) {
        let id = c.ok(["run", "-d", "--name", "live", "base", "sleep", "1000"]);
        let mut child = c
            .cmd(["stats", "live"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // a hang guard, not a speed check: stats must not outlive a broken test
        let (done, wait_done) = std::sync::mpsc::channel::<()>();
        let guard = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                wait_done.recv_timeout(Duration::from_secs(120))
            {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        });
        let mut out = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let clear = b"\x1b[2J\x1b[H";
        let frames = |s: &[u8]| s.windows(clear.len()).filter(|w| w == clear).count();
        while frames(&seen) < 3 {
            let n = out.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "{who:?}: stats ended: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let status = child.wait().unwrap();
        drop(done);
        guard.join().unwrap();
        assert!(!status.success(), "Ctrl-C ends it");
        let text = String::from_utf8_lossy(&seen);
        // each frame is a whole table with the container's row
        let last = text.rsplit("\x1b[2J\x1b[H").next().unwrap();
        assert!(last.starts_with("CONTAINER ID   NAME"), "{text}");
        assert!(
            last.contains(&id.trim()[..12]) && last.contains(" live "),
            "{text}"
        );
        eprintln!("{who:?}: ok");
    }
}
