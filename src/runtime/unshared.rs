//! Work on host files as the container's root: a short-lived child process in a fresh user
//! namespace with the container's id maps ([`IdMaps`]), so that files a container made
//! under its own ids (host subordinate ids, which the user cannot touch directly) can be
//! removed, as `podman unshare rm -rf` does.
//!
//! Never enters a container's other namespaces and never execs: the child runs the given
//! function and exits. Invariant: like [`super::start`], call it from a process whose only
//! work after the fork is fork-safe (the CLI, or a monitor's exit hook).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::ForkResult;

use super::sys;
use super::userns::IdMaps;

/// Runs `work(path)` as root of a new user namespace mapped by `maps`; its error comes
/// back as text.
pub fn as_mapped_root(
    maps: &IdMaps,
    path: &Path,
    work: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let (ready_r, ready_w) = nix::unistd::pipe()?;
    let (go_r, go_w) = nix::unistd::pipe()?;
    let (err_r, err_w) = nix::unistd::pipe()?;
    match sys::fork()? {
        ForkResult::Child => {
            drop((ready_r, go_w, err_r));
            let mut err = File::from(err_w);
            let outcome = (|| {
                nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(io::Error::from)?;
                File::from(ready_w).write_all(b"U")?;
                let mut b = [0u8; 1];
                if File::from(go_r).read(&mut b)? == 0 {
                    return Err(io::Error::other("the id maps were not written"));
                }
                work(path)
            })();
            let code = match outcome {
                Ok(()) => 0,
                Err(e) => {
                    let _ = err.write_all(e.to_string().as_bytes());
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            drop((ready_w, go_r, err_w));
            let mut b = [0u8; 1];
            let ready = File::from(ready_r).read(&mut b).unwrap_or(0) == 1;
            let mapped = if ready {
                maps.apply(child.as_raw())
                    .map_err(|e| io::Error::other(e.to_string()))
            } else {
                Err(io::Error::other("could not create a user namespace"))
            };
            if mapped.is_ok() {
                let _ = File::from(go_w).write_all(b"G");
            } else {
                drop(go_w);
            }
            let mut why = String::new();
            let _ = File::from(err_r).read_to_string(&mut why);
            let status = waitpid(child, None)?;
            mapped?;
            match status {
                WaitStatus::Exited(_, 0) => Ok(()),
                _ if !why.is_empty() => Err(io::Error::other(why)),
                other => Err(io::Error::other(format!("the helper ended: {other:?}"))),
            }
        }
    }
}
