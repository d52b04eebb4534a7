//! The monitor's event loop while the container runs.
//!
//! Owns: reaping the first process, passing signals on, copying output to the json-file log
//! (docker's format, one object per line) and to attached clients (framed), the terminal
//! relay in the foreground, and serving control requests (`signal`, `resize`, `wait`,
//! `attach`). Never blocks on one client for long (writes time out after 5 s). Invariant:
//! it returns only once the first process has exited and its output is drained.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::monitor::ExitInfo;
use super::pty;

/// docker's json-file log: one JSON object per line of output.
pub(crate) struct LogWriter {
    file: File,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub(crate) fn new(file: File) -> LogWriter {
        LogWriter {
            file,
            partial: [Vec::new(), Vec::new()],
        }
    }

    fn record(&mut self, stream: usize, bytes: &[u8]) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let time = crate::image::format_rfc3339(now.as_secs() as i64, now.subsec_nanos());
        let name = if stream == 0 { "stdout" } else { "stderr" };
        let line = serde_json::json!({
            "log": String::from_utf8_lossy(bytes),
            "stream": name,
            "time": time,
        });
        let _ = writeln!(self.file, "{line}");
    }

    fn write(&mut self, stream: usize, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.partial[stream]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
            self.record(stream, &buf[start..start + i + 1]);
            start += i + 1;
        }
        self.partial[stream] = buf[start..].to_vec();
    }

    fn flush(&mut self) {
        for s in 0..2 {
            let rest = std::mem::take(&mut self.partial[s]);
            if !rest.is_empty() {
                self.record(s, &rest);
            }
        }
    }
}

pub(crate) enum ClientState {
    Request(Vec<u8>),
    Attached {
        input_open: bool,
    },
    Waiting,
    /// Answered or gone: dropped after this round.
    Closed,
}

pub(crate) struct Client {
    stream: UnixStream,
    state: ClientState,
}

pub(crate) struct EventLoop {
    pub(crate) init: Pid,
    pub(crate) sigfd: SignalFd,
    pub(crate) listener: UnixListener,
    pub(crate) clients: Vec<Client>,
    pub(crate) out: Option<File>,
    pub(crate) err: Option<File>,
    pub(crate) stdin_w: Option<File>,
    pub(crate) master: Option<File>,
    pub(crate) term_in: bool,
    pub(crate) inherit_tty: bool,
    /// Foreground: output read here goes on to the monitor's own stdout and stderr.
    pub(crate) echo: bool,
    pub(crate) log: Option<LogWriter>,
    pub(crate) exit: Option<ExitInfo>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Signal,
    Listener,
    Client(usize),
    Out,
    Err,
    Master,
    TermIn,
    /// Nothing came for a while after the exit: the output still open is abandoned.
    Drained,
}

pub(crate) fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + data.len());
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

impl EventLoop {
    pub(crate) fn run(&mut self) -> ExitInfo {
        loop {
            if let Some(e) = &self.exit
                && self.out.is_none()
                && self.err.is_none()
                && self.master.is_none()
            {
                return e.clone();
            }
            let ready = self.poll_once();
            for tag in ready {
                self.handle(tag);
            }
            // Only now: the ready list names clients by index, so none may move before
            // the whole list is handled.
            self.clients
                .retain(|c| !matches!(c.state, ClientState::Closed));
        }
    }

    fn poll_once(&self) -> Vec<Tag> {
        let stdin = std::io::stdin();
        let mut wanted: Vec<(Tag, std::os::fd::BorrowedFd<'_>)> = Vec::new();
        let mut add = |tag: Tag, fd| wanted.push((tag, fd));
        add(Tag::Signal, self.sigfd.as_fd());
        add(Tag::Listener, self.listener.as_fd());
        for (i, c) in self.clients.iter().enumerate() {
            let reading = match c.state {
                ClientState::Request(_) => true,
                ClientState::Attached { input_open } => input_open,
                ClientState::Waiting => true,
                ClientState::Closed => false,
            };
            if reading {
                add(Tag::Client(i), c.stream.as_fd());
            }
        }
        if let Some(f) = &self.out {
            add(Tag::Out, f.as_fd());
        }
        if let Some(f) = &self.err {
            add(Tag::Err, f.as_fd());
        }
        if let Some(f) = &self.master {
            add(Tag::Master, f.as_fd());
        }
        if self.term_in && self.master.is_some() && self.exit.is_none() {
            add(Tag::TermIn, stdin.as_fd());
        }
        let tags: Vec<Tag> = wanted.iter().map(|w| w.0).collect();
        let mut fds: Vec<PollFd<'_>> = wanted
            .iter()
            .map(|w| PollFd::new(w.1, PollFlags::POLLIN))
            .collect();
        // After the exit, wait briefly for the output still in flight.
        let timeout = if self.exit.is_some() {
            PollTimeout::from(200u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => {
                // timed out after the exit: output is done
                return vec![Tag::Drained];
            }
            Ok(_) => {}
            Err(_) => return Vec::new(),
        }
        tags.into_iter()
            .zip(fds.iter())
            .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(t, _)| t)
            .collect()
    }

    fn handle(&mut self, tag: Tag) {
        match tag {
            Tag::Signal => self.on_signal(),
            Tag::Listener => {
                while let Ok((stream, _)) = self.listener.accept() {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
                    self.clients.push(Client {
                        stream,
                        state: ClientState::Request(Vec::new()),
                    });
                }
            }
            Tag::Client(i) => self.on_client(i),
            Tag::Drained => {
                self.out = None;
                self.err = None;
                self.master = None;
            }
            Tag::Out | Tag::Err | Tag::Master => {
                let (file, stream) = match tag {
                    Tag::Out => (&mut self.out, 1u8),
                    Tag::Err => (&mut self.err, 2u8),
                    _ => (&mut self.master, 1u8),
                };
                let Some(f) = file else { return };
                let mut buf = [0u8; 16384];
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => *file = None,
                    Ok(n) => self.output(stream, &buf[..n]),
                }
            }
            Tag::TermIn => {
                let mut buf = [0u8; 4096];
                match std::io::stdin().lock().read(&mut buf) {
                    Ok(0) | Err(_) => self.term_in = false,
                    Ok(n) => {
                        if let Some(m) = &mut self.master {
                            let _ = m.write_all(&buf[..n]);
                        }
                    }
                }
            }
        }
    }

    fn output(&mut self, stream: u8, data: &[u8]) {
        if self.echo {
            if stream == 2 {
                let _ = std::io::stderr().lock().write_all(data);
            } else {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(data);
                let _ = out.flush();
            }
        }
        if let Some(log) = &mut self.log {
            log.write(usize::from(stream - 1), data);
        }
        let framed = frame(stream, data);
        for c in &mut self.clients {
            if matches!(c.state, ClientState::Attached { .. })
                && c.stream.write_all(&framed).is_err()
            {
                c.state = ClientState::Closed;
            }
        }
    }

    fn on_signal(&mut self) {
        while let Ok(Some(info)) = self.sigfd.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo == libc::SIGCHLD {
                self.reap();
            } else if signo == libc::SIGWINCH && self.inherit_tty {
                if let (Some(m), Some(size)) =
                    (&self.master, pty::size_of(std::io::stdin().as_fd()))
                {
                    let _ = pty::set_size(m.as_fd(), size);
                }
            } else if let Ok(sig) = Signal::try_from(signo) {
                let _ = kill(self.init, sig);
            }
        }
    }

    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == self.init => {
                    self.exit = Some(ExitInfo {
                        code,
                        signal: None,
                        failure: None,
                    });
                }
                Ok(WaitStatus::Signaled(p, sig, _)) if p == self.init => {
                    self.exit = Some(ExitInfo {
                        code: 128 + sig as i32,
                        signal: Some(sig as i32),
                        failure: None,
                    });
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn on_client(&mut self, i: usize) {
        let mut buf = [0u8; 4096];
        let n: usize = self.clients[i].stream.read(&mut buf).unwrap_or_default();
        let client = &mut self.clients[i];
        match &mut client.state {
            ClientState::Request(req) => {
                if n == 0 {
                    client.state = ClientState::Closed;
                    return;
                }
                req.extend_from_slice(&buf[..n]);
                let Some(nl) = req.iter().position(|&b| b == b'\n') else {
                    return;
                };
                let line = String::from_utf8_lossy(&req[..nl]).trim().to_string();
                let rest = req[nl + 1..].to_vec();
                self.request(i, &line, &rest);
            }
            ClientState::Attached { input_open } => {
                if n == 0 {
                    *input_open = false;
                    if self.master.is_none() {
                        self.stdin_w = None; // the client closed its stdin: so does the container's
                    }
                    return;
                }
                self.input(&buf[..n]);
            }
            ClientState::Closed => {}
            ClientState::Waiting => {
                if n == 0 {
                    client.state = ClientState::Closed;
                }
            }
        }
    }

    fn input(&mut self, data: &[u8]) {
        if let Some(m) = &mut self.master {
            let _ = m.write_all(data);
        } else if let Some(w) = &mut self.stdin_w {
            let _ = w.write_all(data);
        }
    }

    fn request(&mut self, i: usize, line: &str, rest: &[u8]) {
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next(), words.next()) {
            (Some("signal"), Some(n), None) => match n.parse::<i32>().map(Signal::try_from) {
                Ok(Ok(sig)) => match kill(self.init, sig) {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("error {e}"),
                },
                _ => format!("error bad signal {n:?}"),
            },
            (Some("resize"), Some(r), Some(c)) => match (&self.master, r.parse(), c.parse()) {
                (Some(m), Ok(rows), Ok(cols)) => {
                    let _ = pty::set_size(m.as_fd(), super::WinSize { rows, cols });
                    "ok".to_string()
                }
                (None, ..) => "error no terminal".to_string(),
                _ => "error bad size".to_string(),
            },
            (Some("wait"), None, None) => {
                self.clients[i].state = ClientState::Waiting;
                return;
            }
            (Some("attach"), None, None) => {
                self.clients[i].state = ClientState::Attached { input_open: true };
                if !rest.is_empty() {
                    self.input(rest);
                }
                return;
            }
            _ => format!("error unknown request {line:?}"),
        };
        let client = &mut self.clients[i];
        let _ = client.stream.write_all(format!("{reply}\n").as_bytes());
        client.state = ClientState::Closed;
    }

    /// After the exit: flushes the log, tells attached clients, returns the waiters.
    pub(crate) fn finish(&mut self, exit: &ExitInfo) -> Vec<UnixStream> {
        if let Some(log) = &mut self.log {
            log.flush();
        }
        let mut waiters = Vec::new();
        for mut c in self.clients.drain(..) {
            match c.state {
                ClientState::Attached { .. } => {
                    let _ = c
                        .stream
                        .write_all(&frame(255, exit.code.to_string().as_bytes()));
                }
                ClientState::Waiting => waiters.push(c.stream),
                ClientState::Request(_) | ClientState::Closed => {}
            }
        }
        // Late `wait` requests while the hook runs still get an answer: refuse new ones.
        waiters
    }
}
