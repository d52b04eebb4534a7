//! The client side of a monitor's control socket (`<run_dir>/ctl.sock`).
//!
//! Owns: [`is_running`], [`signal`], [`resize`], [`wait`], [`attach`]. Never touches the
//! container's processes directly: everything goes through the monitor, which is alive
//! exactly while the socket answers. Invariant: the caller's terminal, put in raw mode by
//! `attach`, is restored on every path out.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::RuntimeError;
use super::pty::{self, RawMode};

fn control(run_dir: &Path) -> Result<UnixStream, RuntimeError> {
    let path = run_dir.join("ctl.sock");
    UnixStream::connect(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            RuntimeError::not_running(run_dir)
        }
        _ => RuntimeError::Control { path, source },
    })
}

/// An error on an accepted connection: the monitor went away before it answered (it
/// exits with connections still in its backlog, which are then reset) or something else.
fn lost(run_dir: &Path, source: std::io::Error) -> RuntimeError {
    match source.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
            RuntimeError::not_running(run_dir)
        }
        _ => RuntimeError::Control {
            path: run_dir.join("ctl.sock"),
            source,
        },
    }
}

fn request(run_dir: &Path, line: &str) -> Result<String, RuntimeError> {
    let path = run_dir.join("ctl.sock");
    let mut s = control(run_dir)?;
    let io = |source| lost(run_dir, source);
    s.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).map_err(io)?;
    let reply = reply.trim().to_string();
    if reply.starts_with("error") || reply.is_empty() {
        if reply.is_empty() {
            return Err(RuntimeError::not_running(run_dir));
        }
        return Err(RuntimeError::Refused {
            path,
            request: line.to_string(),
            reply,
        });
    }
    Ok(reply)
}

/// True while the container's monitor answers on its control socket.
pub fn is_running(run_dir: &Path) -> bool {
    UnixStream::connect(run_dir.join("ctl.sock")).is_ok()
}

/// Sends signal `sig` to the container's first process.
pub fn signal(run_dir: &Path, sig: Signal) -> Result<(), RuntimeError> {
    request(run_dir, &format!("signal {}", sig as i32)).map(drop)
}

/// Sets the container's terminal size.
pub fn resize(run_dir: &Path, size: super::WinSize) -> Result<(), RuntimeError> {
    request(run_dir, &format!("resize {} {}", size.rows, size.cols)).map(drop)
}

/// Waits until the container exits (at most `timeout`, when given) and returns its exit
/// code; `Ok(None)` on timeout. A container that is not running gives `NotRunning`.
pub fn wait(run_dir: &Path, timeout: Option<Duration>) -> Result<Option<i32>, RuntimeError> {
    let mut s = control(run_dir)?;
    let io = |source| lost(run_dir, source);
    s.write_all(b"wait\n").map_err(io)?;
    // a zero timeout (`stop -t 0`) is refused by SO_RCVTIMEO: the shortest one instead
    s.set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))
        .map_err(io)?;
    let mut reply = String::new();
    match BufReader::new(&s).read_line(&mut reply) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(lost(run_dir, e)),
    }
    // An empty reply: the monitor died without answering (killed); the code is unknown.
    Ok(Some(
        reply
            .trim()
            .strip_prefix("exit ")
            .and_then(|c| c.parse().ok())
            .unwrap_or(137),
    ))
}

/// Attaches the caller's stdio to the container until it exits (or the caller's stdin
/// ends, when `stdin` is false never reads it) and returns the exit code. With `tty` the
/// caller's terminal goes raw and its size is passed on.
pub fn attach(run_dir: &Path, stdin: bool, tty: bool) -> Result<i32, RuntimeError> {
    let path = run_dir.join("ctl.sock");
    let mut s = control(run_dir)?;
    let io = |source| RuntimeError::Control {
        path: path.clone(),
        source,
    };
    if tty && let Some(size) = pty::size_of(std::io::stdin().as_fd()) {
        let _ = resize(run_dir, size);
    }
    s.write_all(b"attach\n").map_err(io)?;
    let _raw = if tty && stdin {
        RawMode::enter(std::io::stdin().as_fd())
            .map_err(|source| RuntimeError::Terminal { source })?
    } else {
        None
    };
    if stdin {
        let mut w = s.try_clone().map_err(io)?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut input = std::io::stdin();
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if w.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = w.shutdown(std::net::Shutdown::Write);
        });
    }
    let mut r = BufReader::new(s);
    loop {
        let mut head = [0u8; 8];
        if r.read_exact(&mut head).is_err() {
            return Ok(137);
        }
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let mut data = vec![0u8; len];
        r.read_exact(&mut data).map_err(io)?;
        match head[0] {
            1 => {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(&data);
                let _ = o.flush();
            }
            2 => {
                let _ = std::io::stderr().lock().write_all(&data);
            }
            255 => {
                return Ok(String::from_utf8_lossy(&data).parse().unwrap_or(125));
            }
            _ => {}
        }
    }
}
