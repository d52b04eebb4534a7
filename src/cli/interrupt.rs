//! Ctrl-C (SIGINT) and SIGTERM during a transfer: the transfer stops cleanly, with what it
//! already has kept, and the user reads one line saying so (exit code 130).
//!
//! Owns: blocking SIGINT/SIGTERM in the calling (main) thread before any thread starts, so
//! every thread the transfer spawns inherits the block and no signal kills the process
//! half-way; a watcher thread reading them from a signalfd and setting the cancel flag the
//! transfer takes; restoring the mask when done. Never used around `runtime::start` or
//! `exec`: the guard's thread is joined (on drop) before the caller may fork a container.
//! Invariant: after the first signal the transfer has [`GRACE`] to return; if it is stuck
//! (a stalled read), the watcher prints the line and exits 130 itself; the store's writes
//! are crash-safe, so the partial download stays usable either way.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The exit code after an interrupt (128 + SIGINT), as docker's.
pub const EXIT_INTERRUPTED: i32 = 130;

/// How long a cancelled transfer may take to return before the process exits anyway.
const GRACE: Duration = Duration::from_secs(2);

/// What the user reads after an interrupted pull.
pub const PULL_INTERRUPTED: &str =
    "pull interrupted; the partial download is kept and the next pull resumes";

/// Runs a pull with a cancel flag that Ctrl-C (or SIGTERM) sets; once interrupted, prints
/// [`PULL_INTERRUPTED`] and gives `Exit(130)` whatever the pull returned. The watcher thread
/// is joined before this returns.
pub fn cancellable_pull<T>(pull: impl FnOnce(&AtomicBool) -> T) -> Result<T, super::CliError> {
    let fallback = AtomicBool::new(false);
    let interrupts = Interrupts::catch(PULL_INTERRUPTED);
    let result = pull(interrupts.as_ref().map_or(&fallback, Interrupts::flag));
    if interrupts.as_ref().is_some_and(Interrupts::interrupted) {
        eprintln!("{PULL_INTERRUPTED}");
        return Err(super::CliError::Exit(EXIT_INTERRUPTED));
    }
    Ok(result)
}

/// SIGINT and SIGTERM held for a transfer; see the module doc.
pub struct Interrupts {
    cancel: Arc<AtomicBool>,
    /// Written (then closed) to stop the watcher.
    stop: Option<File>,
    watcher: Option<JoinHandle<()>>,
    old_mask: SigSet,
}

fn signals() -> SigSet {
    let mut s = SigSet::empty();
    s.add(Signal::SIGINT);
    s.add(Signal::SIGTERM);
    s
}

impl Interrupts {
    /// Starts catching; `message` is what the watcher prints if it must exit by itself.
    /// Call before the transfer starts any thread. None when the signals cannot be held
    /// (then Ctrl-C keeps its default action: the process dies, the partial stays).
    pub fn catch(message: &'static str) -> Option<Interrupts> {
        let old_mask = signals().thread_swap_mask(SigmaskHow::SIG_BLOCK).ok()?;
        let restore = || {
            let _ = old_mask.thread_set_mask();
        };
        let Ok(sigfd) = SignalFd::with_flags(&signals(), SfdFlags::SFD_CLOEXEC) else {
            restore();
            return None;
        };
        let Ok((stop_r, stop_w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
            restore();
            return None;
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let watcher = std::thread::spawn(move || {
            let mut stop_r = File::from(stop_r);
            let mut since: Option<Instant> = None;
            loop {
                let timeout = match since {
                    None => PollTimeout::NONE,
                    Some(t) => {
                        let left = GRACE.saturating_sub(t.elapsed()).as_millis();
                        PollTimeout::try_from(left.min(60_000) as i32).unwrap_or(PollTimeout::ZERO)
                    }
                };
                let (sig, stop) = {
                    let mut fds = [
                        PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
                        PollFd::new(stop_r.as_fd(), PollFlags::POLLIN),
                    ];
                    match poll(&mut fds, timeout) {
                        Ok(_) => {}
                        Err(nix::Error::EINTR) => continue,
                        Err(_) => return,
                    }
                    let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                    (ready(&fds[0]), ready(&fds[1]))
                };
                if stop {
                    let _ = stop_r.read(&mut [0u8; 1]);
                    return;
                }
                if sig {
                    let _ = sigfd.read_signal();
                    flag.store(true, Ordering::SeqCst);
                    since.get_or_insert_with(Instant::now);
                } else if since.is_some_and(|t| t.elapsed() >= GRACE) {
                    // the transfer did not notice (a read that hangs): leave now
                    eprintln!("{message}");
                    std::process::exit(EXIT_INTERRUPTED);
                }
            }
        });
        Some(Interrupts {
            cancel,
            stop: Some(File::from(stop_w)),
            watcher: Some(watcher),
            old_mask,
        })
    }

    /// The flag the transfer polls.
    pub fn flag(&self) -> &AtomicBool {
        &self.cancel
    }

    /// True once SIGINT or SIGTERM arrived.
    pub fn interrupted(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        if let Some(mut stop) = self.stop.take() {
            let _ = stop.write_all(b"s");
        }
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        let _ = self.old_mask.thread_set_mask();
    }
}
