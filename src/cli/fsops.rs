//! `diff`, `commit`, `mount`, `umount`, `unshare` and `cp`: argh structs to engine calls,
//! and docker's (podman's, for mount/umount/unshare) output lines.

use std::io::{self, Write};

use argh::FromArgs;

use super::CliError;
use crate::engine::Engine;
use crate::engine::commit::CommitRequest;
use crate::engine::cp::{CpPath, CpRequest};

/// Inspect changes to files or directories on a container's filesystem (also: container
/// diff).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "diff", help_triggers("--help"))]
pub struct Diff {
    /// the container (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub container: String,
}

/// Create a new image from a container's changes (also: container commit).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "commit", help_triggers("--help"))]
pub struct Commit {
    /// author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[argh(option, short = 'a')]
    pub author: Option<String>,
    /// apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)
    #[argh(option, short = 'c')]
    pub change: Vec<String>,
    /// commit message
    #[argh(option, short = 'm')]
    pub message: Option<String>,
    /// pause the container while committing (docker's default; camada always does)
    #[argh(switch, short = 'p')]
    pub pause: bool,
    /// the container, then REPOSITORY[:TAG]
    #[argh(positional, arg_name = "CONTAINER [REPOSITORY[:TAG]]")]
    pub args: Vec<String>,
}

/// Mount a container's root filesystem and print where your own processes can reach it
/// (a running container's root is reachable from camada unshare --container NAME).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "mount", help_triggers("--help"))]
pub struct Mount {
    /// the containers (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Unmount a container's root filesystem mounted by camada mount.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "umount", help_triggers("--help"))]
pub struct Umount {
    /// the containers (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Run a command as root of a user and mount namespace with your id mappings (default
/// $SHELL), or inside a running container's user namespace.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "unshare", help_triggers("--help"))]
pub struct Unshare {
    /// join this running container's user namespace (where its mount is reachable)
    #[argh(option)]
    pub container: Option<String>,
    /// the command and its arguments
    #[argh(positional, greedy, arg_name = "COMMAND [ARG...]")]
    pub command: Vec<String>,
}

/// Copy files/folders between a container and the local filesystem (also: container cp).
/// CONTAINER:SRC_PATH DEST_PATH|- or SRC_PATH|- CONTAINER:DEST_PATH; `-` is a tar stream.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "cp", help_triggers("--help"))]
pub struct Cp {
    /// archive mode (copy all uid/gid information)
    #[argh(switch, short = 'a')]
    pub archive: bool,
    /// always follow symbol link in SRC_PATH
    #[argh(switch, short = 'L')]
    pub follow_link: bool,
    /// suppress progress output (camada prints none)
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// the source: CONTAINER:SRC_PATH, a local path, or - (a tar on stdin)
    #[argh(positional, arg_name = "SRC")]
    pub src: String,
    /// the destination: CONTAINER:DEST_PATH, a local path, or - (a tar on stdout)
    #[argh(positional, arg_name = "DEST")]
    pub dst: String,
}

pub fn cp(engine: &Engine, a: &Cp) -> Result<(), CliError> {
    let _quiet = a.quiet;
    engine.copy(&CpRequest {
        src: CpPath::parse(&a.src),
        dst: CpPath::parse(&a.dst),
        archive: a.archive,
        follow: a.follow_link,
    })?;
    Ok(())
}

pub fn diff(engine: &Engine, a: &Diff) -> Result<(), CliError> {
    let changes = engine.diff_container(&a.container)?;
    let mut out = io::stdout().lock();
    for c in changes {
        writeln!(out, "{} {}", c.kind.letter(), c.path)?;
    }
    Ok(())
}

pub fn commit(engine: &Engine, a: &Commit) -> Result<(), CliError> {
    // -p is docker's default, and camada always pauses (see Engine::commit_container)
    let _pause = a.pause;
    let (container, reference) = match a.args.as_slice() {
        [c] => (c, None),
        [c, r] => (c, Some(r.clone())),
        _ => {
            return Err(CliError::usage(
                "\"camada commit\" requires at least 1 and at most 2 arguments: CONTAINER [REPOSITORY[:TAG]]",
                "commit",
            ));
        }
    };
    let id = engine.commit_container(
        container,
        &CommitRequest {
            reference,
            message: a.message.clone(),
            author: a.author.clone(),
            changes: a.change.clone(),
        },
    )?;
    writeln!(io::stdout().lock(), "{id}")?;
    Ok(())
}

pub fn mount(engine: &Engine, a: &Mount) -> Result<(), CliError> {
    if a.containers.is_empty() {
        return Err(CliError::usage(
            "\"camada mount\" requires at least 1 argument: CONTAINER",
            "mount",
        ));
    }
    for c in &a.containers {
        let m = engine.mount_container(c)?;
        writeln!(io::stdout().lock(), "{}", m.path().display())?;
    }
    Ok(())
}

pub fn umount(engine: &Engine, a: &Umount) -> Result<(), CliError> {
    if a.containers.is_empty() {
        return Err(CliError::usage(
            "\"camada umount\" requires at least 1 argument: CONTAINER",
            "umount",
        ));
    }
    for c in &a.containers {
        let id = engine.unmount_container(c)?;
        writeln!(io::stdout().lock(), "{id}")?;
    }
    Ok(())
}

pub fn unshare(engine: &Engine, a: &Unshare) -> Result<(), CliError> {
    let argv = if a.command.is_empty() {
        vec![std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into())]
    } else {
        a.command.clone()
    };
    match engine.unshare(a.container.as_deref(), &argv)? {
        0 => Ok(()),
        code => Err(CliError::Exit(code)),
    }
}
