//! Terminals: the container's pty (made in the container's own devpts instance) and the
//! user's terminal in raw mode while attached.
//!
//! Owns: opening a pty pair from a `ptmx` path, putting a terminal in raw mode and back
//! ([`RawMode`], restored on drop), copying window sizes. Never reads or writes the data
//! flowing through (the monitor relays). Invariant: a terminal put in raw mode is restored
//! on every path out, including errors.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::termios::{self, SetArg, Termios};

use super::sys::{self, WinSize};

/// Opens a new pty pair through `ptmx` (e.g. `<rootfs>/dev/pts/ptmx`): (master, slave).
pub fn open_pair(ptmx: &Path) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let master = nix::fcntl::open(
        ptmx,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let slave = sys::open_pty_peer(master.as_fd())?;
    Ok((master, slave))
}

/// Makes `slave` the controlling terminal of a new session and the stdio of this process.
pub(crate) fn become_session_leader_on(slave: &OwnedFd) -> std::io::Result<()> {
    nix::unistd::setsid()?;
    sys::set_controlling_tty(slave.as_fd())?;
    nix::unistd::dup2_stdin(slave)?;
    nix::unistd::dup2_stdout(slave)?;
    nix::unistd::dup2_stderr(slave)?;
    Ok(())
}

/// True when `fd` is a terminal.
pub fn is_tty(fd: BorrowedFd<'_>) -> bool {
    termios::tcgetattr(fd).is_ok()
}

/// The window size of terminal `fd`, if it is one.
pub fn size_of(fd: BorrowedFd<'_>) -> Option<WinSize> {
    sys::window_size(fd).ok()
}

/// Sets the window size of terminal `fd`.
pub fn set_size(fd: BorrowedFd<'_>, size: WinSize) -> std::io::Result<()> {
    sys::set_window_size(fd, size)
}

/// A terminal in raw mode; the old settings come back on drop.
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Puts terminal `fd` in raw mode (None when it is not a terminal).
    pub fn enter(fd: BorrowedFd<'_>) -> nix::Result<Option<RawMode>> {
        let Ok(saved) = termios::tcgetattr(fd) else {
            return Ok(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(Some(RawMode {
            fd: fd
                .try_clone_to_owned()
                .map_err(|e| nix::Error::try_from(e).unwrap_or(nix::Error::EBADF))?,
            saved,
        }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}
