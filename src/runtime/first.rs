//! The container's first process: from the fork in the monitor to the exec.
//!
//! Owns: waiting for the rootfs, its own mount namespace, the mounts ([`super::mounts`]),
//! the pty made in the container's devpts and handed to the monitor, stdio, pivot_root,
//! then the exec ([`super::process`]) or, with `--init`, a reaper that forwards signals.
//! Never returns to the monitor's code: it exits. Invariant: every failure is reported as
//! `CODE MESSAGE` on the error pipe before exiting with CODE; success closes that pipe
//! (close-on-exec) without a byte.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::monitor::{LogPipes, dup_or_null, forwarded_set};
use super::process::{self, Failure};
use super::userns::MapWriter;
use super::{Container, mounts, pty, sys};

fn send_fd(tx: &OwnedFd, fd: &OwnedFd) -> nix::Result<()> {
    let fds = [fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"m")];
    sendmsg::<()>(
        tx.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(drop)
}

/// Runs in the first process (pid 1 of the new pid namespace): waits for the rootfs, sets up
/// the mounts and stdio, pivots and execs. Returns an exit code only on failure, after
/// writing `CODE MESSAGE` on `err_w`.
pub(crate) fn first_process(
    c: &Container,
    rootfs: &Path,
    go: OwnedFd,
    err_w: OwnedFd,
    log_pipes: Option<LogPipes>,
    pty_tx: Option<OwnedFd>,
) -> i32 {
    let err_w = File::from(err_w);
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut b = [0u8; 1];
    if File::from(go).read(&mut b).unwrap_or(0) == 0 {
        return 125;
    }
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWNS) {
        return report(
            &err_w,
            Failure::engine(format!("creating the mount namespace: {e}")),
        );
    }
    let files: Vec<(String, PathBuf)> = ["hosts", "hostname", "resolv.conf"]
        .iter()
        .map(|f| (format!("/etc/{f}"), c.run_dir.join(f)))
        .collect();
    let setup = mounts::Setup {
        rootfs,
        network: c.network,
        files: &files,
        binds: &c.binds,
    };
    if let Err(e) = mounts::prepare(&setup) {
        return report(&err_w, Failure::engine(e.to_string()));
    }
    if let Some(tx) = pty_tx {
        let pair = pty::open_pair(&rootfs.join("dev/pts/ptmx"));
        let (master, slave) = match pair {
            Ok(p) => p,
            Err(e) => return report(&err_w, Failure::engine(format!("opening a pty: {e}"))),
        };
        if let Err(e) = mounts::bind_console(rootfs, &slave) {
            return report(&err_w, Failure::engine(e.to_string()));
        }
        if let Err(e) = send_fd(&tx, &master) {
            return report(
                &err_w,
                Failure::engine(format!("passing the pty to the monitor: {e}")),
            );
        }
        drop(master);
        if let Err(e) = pty::become_session_leader_on(&slave) {
            return report(
                &err_w,
                Failure::engine(format!("making the pty the terminal: {e}")),
            );
        }
    } else if let Some(p) = &log_pipes {
        match &p.stdin {
            Some((r, _)) => {
                let _ = nix::unistd::dup2_stdin(r);
            }
            // the foreground with -i: the caller's stdin, as inherited
            None if c.io.foreground() && c.io.stdin() => {}
            None => {
                let _ = nix::unistd::dup2_stdin(dup_or_null());
            }
        }
        let _ = nix::unistd::dup2_stdout(&p.out.1);
        let _ = nix::unistd::dup2_stderr(&p.err.1);
    } else if c.io.foreground() && !c.io.stdin() {
        let _ = nix::unistd::dup2_stdin(dup_or_null());
    }
    drop(log_pipes);
    // before the pivot: the host's /etc/passwd names the host user
    let host_user = host_user_name(&c.maps);
    if let Err(e) = mounts::pivot(rootfs) {
        return report(&err_w, Failure::engine(e.to_string()));
    }
    let ids = process::Ids {
        can_setgroups: c.maps.writer != MapWriter::Single,
        single: c.maps.single(),
        host_user,
        fake_ids: c.fake_ids,
    };
    if c.init {
        return match sys::fork() {
            Err(e) => report(
                &err_w,
                Failure::engine(format!("forking under --init: {e}")),
            ),
            Ok(ForkResult::Child) => {
                sys::close_fds_from(3, &[err_w.as_raw_fd()]);
                let f = process::become_and_exec(&c.process, &c.hostname, &ids);
                report(&err_w, f)
            }
            Ok(ForkResult::Parent { child }) => {
                drop(err_w);
                reap_as_init(child)
            }
        };
    }
    sys::close_fds_from(3, &[err_w.as_raw_fd()]);
    let f = process::become_and_exec(&c.process, &c.hostname, &ids);
    report(&err_w, f)
}

/// The host user's name in single-id mode (for the fix a refused `-u` gives), else empty.
fn host_user_name(maps: &super::IdMaps) -> String {
    match maps.uid.first() {
        Some(r) if maps.single().is_some() => nix::unistd::User::from_uid(r.outside.into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Writes `CODE MESSAGE` for the monitor and returns the code.
fn report(mut err_w: &File, f: Failure) -> i32 {
    let _ = err_w.write_all(format!("{} {}", f.code, f.message).as_bytes());
    f.code
}

/// `--init`: reaps every child, forwards signals to `child`, exits with its status.
fn reap_as_init(child: Pid) -> i32 {
    let mut mask = forwarded_set();
    mask.add(Signal::SIGCHLD);
    let Ok(sigfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC) else {
        return 125;
    };
    loop {
        let Ok(Some(info)) = sigfd.read_signal() else {
            continue;
        };
        if info.ssi_signo as i32 == libc::SIGCHLD {
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == child => return code,
                    Ok(WaitStatus::Signaled(p, sig, _)) if p == child => return 128 + sig as i32,
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        } else if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
            let _ = kill(child, sig);
        }
    }
}
