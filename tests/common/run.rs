//! A finished command and the assertions tests make on it.
//!
//! Owns: running a `Command` to completion with a hang guard (stdin fed, stdout and stderr
//! read on threads so no pipe fills up), and [`Run`]'s assertions, each of which fails with
//! the command line, its exit status, its stdout and stderr, and for comparisons a line diff.
//! Never retries and never measures time: the guard only turns a hang into a failure.

use std::ffi::OsStr;
use std::fmt;
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How the engine's warning starts when a container's private network stays loopback only.
pub const NO_OUTBOUND: &str = "WARNING: no outbound network for this container";

/// How long the output pipes may stay open after the command exited: longer means a process
/// it left behind holds them (a detached monitor must not keep the caller's stdio).
const PIPE_GRACE: Duration = Duration::from_secs(10);

/// A command that ran to completion.
pub struct Run {
    /// The command line, shell-quoted, for messages.
    pub cmdline: String,
    pub status: ExitStatus,
    pub stdout_bytes: Vec<u8>,
    pub stderr_bytes: Vec<u8>,
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![quote(cmd.get_program())];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

impl Run {
    /// Runs `cmd` (stdin: `stdin` or nothing), killing it after `timeout`.
    pub fn exec(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Run {
        let cmdline = describe(&cmd);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{cmdline}`: {e}"));

        let (tx, rx) = mpsc::channel::<(u8, Vec<u8>)>();
        let pipes: [(u8, Option<Box<dyn Read + Send>>); 2] = [
            (1, child.stdout.take().map(|p| Box::new(p) as _)),
            (2, child.stderr.take().map(|p| Box::new(p) as _)),
        ];
        for (fd, pipe) in pipes {
            let Some(mut pipe) = pipe else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                let _ = tx.send((fd, buf));
            });
        }
        drop(tx);
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let input = input.to_vec();
            // Writing may fail (EPIPE) when the command does not read all of it: not our error.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }

        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_millis(1);
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    timed_out = true;
                    break child
                        .wait()
                        .unwrap_or_else(|e| panic!("waiting for `{cmdline}`: {e}"));
                }
                Ok(None) => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_millis(20));
                }
                Err(e) => panic!("waiting for `{cmdline}`: {e}"),
            }
        };

        let mut run = Run {
            cmdline,
            status,
            stdout_bytes: Vec::new(),
            stderr_bytes: Vec::new(),
        };
        let mut open = 2;
        while open > 0 {
            match rx.recv_timeout(PIPE_GRACE) {
                Ok((1, b)) => run.stdout_bytes = b,
                Ok((_, b)) => run.stderr_bytes = b,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => run.fail(&format!(
                    "the command exited ({status}) but its stdout/stderr stayed open for {}s: \
                     a process it left behind still holds them",
                    PIPE_GRACE.as_secs()
                )),
            }
            open -= 1;
        }
        if timed_out {
            run.fail(&format!(
                "killed after {}s (hang guard; CAMADA_TEST_TIMEOUT=SECONDS changes it)",
                timeout.as_secs()
            ));
        }
        run
    }

    /// Stdout as text (lossy UTF-8).
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout_bytes).into_owned()
    }
    /// Stderr as text (lossy UTF-8).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr_bytes).into_owned()
    }
    /// Stderr without the machine's note that a private network stays loopback only
    /// ([`NO_OUTBOUND`]: /dev/net/tun not usable by the test user, or no pasta), which
    /// `stderr_is` does not count; tests/network.rs checks it. (A start that fails shows
    /// no such note, so `engine_error` and `error_line` count every line.)
    fn stderr_checked(&self) -> String {
        self.stderr()
            .split_inclusive('\n')
            .filter(|l| !l.starts_with(NO_OUTBOUND))
            .collect()
    }
    /// Stdout's lines.
    pub fn lines(&self) -> Vec<String> {
        self.stdout().lines().map(str::to_owned).collect()
    }
    /// The exit code (None when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Fails the test with `what` and the whole record of the command.
    #[track_caller]
    pub fn fail(&self, what: &str) -> ! {
        panic!("{what}\n{self}")
    }

    /// Exit code 0.
    #[track_caller]
    pub fn success(&self) -> &Self {
        if !self.status.success() {
            self.fail("expected success");
        }
        self
    }

    /// Exit code `code`.
    #[track_caller]
    pub fn exit(&self, code: i32) -> &Self {
        if self.code() != Some(code) {
            self.fail(&format!("expected exit code {code}"));
        }
        self
    }

    /// An engine error as cli.md has it: exit 125 and stderr exactly one line `Error: ...`.
    #[track_caller]
    pub fn engine_error(&self) -> &Self {
        self.exit(125);
        let err = self.stderr();
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() != 1 || !lines[0].starts_with("Error: ") {
            self.fail("expected stderr to be exactly one line starting \"Error: \"");
        }
        self
    }

    /// Any error as cli.md has it: exit 125, one line `Error: ...` on stderr and, for a usage
    /// error, the hint `See 'camada CMD --help'.` after it; nothing else. Returns the
    /// `Error: ` line (without its newline).
    #[track_caller]
    pub fn error_line(&self) -> String {
        self.exit(125);
        let err = self.stderr();
        let lines: Vec<&str> = err.lines().collect();
        let hint = |l: &str| l.starts_with("See 'camada") && l.ends_with(" --help'.");
        match lines[..] {
            [e] | [e, _] if e.starts_with("Error: ") && lines[1..].iter().all(|l| hint(l)) => {
                e.to_owned()
            }
            _ => self.fail(
                "expected stderr to be one line starting \"Error: \" (and for a usage error \
                 the hint \"See 'camada CMD --help'.\")",
            ),
        }
    }

    /// Stdout equals `expected` exactly (a line diff on failure).
    #[track_caller]
    pub fn stdout_is(&self, expected: &str) -> &Self {
        let got = self.stdout();
        if got != expected {
            self.fail(&format!(
                "stdout differs (- expected, + got):\n{}",
                diff_lines(expected, &got)
            ));
        }
        self
    }

    /// Stderr equals `expected` exactly (a line diff on failure).
    #[track_caller]
    pub fn stderr_is(&self, expected: &str) -> &Self {
        let got = self.stderr_checked();
        if got != expected {
            self.fail(&format!(
                "stderr differs (- expected, + got):\n{}",
                diff_lines(expected, &got)
            ));
        }
        self
    }

    /// Stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        if !self.stdout().contains(needle) {
            self.fail(&format!("expected stdout to contain {needle:?}"));
        }
        self
    }

    /// Stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        if !self.stderr().contains(needle) {
            self.fail(&format!("expected stderr to contain {needle:?}"));
        }
        self
    }

    /// Stdout does not contain `needle`.
    #[track_caller]
    pub fn stdout_lacks(&self, needle: &str) -> &Self {
        if self.stdout().contains(needle) {
            self.fail(&format!("expected stdout NOT to contain {needle:?}"));
        }
        self
    }

    /// Stderr does not contain `needle`.
    #[track_caller]
    pub fn stderr_lacks(&self, needle: &str) -> &Self {
        if self.stderr().contains(needle) {
            self.fail(&format!("expected stderr NOT to contain {needle:?}"));
        }
        self
    }
}

/// Shows at most this much of a stream in a failure message (its head and its tail).
const SHOW: usize = 8000;

fn clip(s: &str) -> String {
    if s.len() <= SHOW {
        return s.to_owned();
    }
    let mut head = SHOW / 2;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - SHOW / 2;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n[... {} bytes left out ...]\n{}",
        &s[..head],
        tail - head,
        &s[tail..]
    )
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.cmdline)?;
        writeln!(f, "exit: {}", self.status)?;
        for (name, text) in [("stdout", self.stdout()), ("stderr", self.stderr())] {
            if text.is_empty() {
                writeln!(f, "--- {name}: (empty)")?;
            } else {
                writeln!(f, "--- {name}:")?;
                write!(f, "{}", clip(&text))?;
                if !text.ends_with('\n') {
                    writeln!(f, "\n[no newline at end]")?;
                }
            }
        }
        Ok(())
    }
}

/// A unified-style line diff: `  ` same, `- ` only in `expected`, `+ ` only in `got`.
/// Trailing spaces are shown as `·` on changed lines, so an invisible difference is visible.
pub fn diff_lines(expected: &str, got: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    // Longest common subsequence table, from the ends (small inputs: tests' outputs).
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let show = |l: &str| {
        let t = l.trim_end_matches(' ');
        format!("{t}{}", "·".repeat(l.len() - t.len()))
    };
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", show(b[j])));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", show(a[i])));
            i += 1;
        }
    }
    let (ea, eb) = (expected.ends_with('\n'), got.ends_with('\n'));
    if ea != eb {
        out.push_str(&format!(
            "(expected {} a final newline, got {})\n",
            if ea { "with" } else { "without" },
            if eb { "one" } else { "none" }
        ));
    }
    out
}
