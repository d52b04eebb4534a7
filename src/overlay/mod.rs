//! The FUSE overlay filesystem: a container's root served from image layers that are
//! never unpacked.
//!
//! The lower view is the merged chain index (mmapped) with file bytes sliced from the
//! mmapped layer tars; writes go to an upper directory on the host, where deletions are
//! OCI whiteouts and container-side ownership is an xattr or a side table, so the upper
//! dir is already a layer diff. Kernel overlayfs is the oracle for behaviour.
//! Never imports the store, registries or images: it is handed paths. Invariant: the
//! server never panics on a request; every failure is an errno reply.
//!
//! Files: `lower` (index + tars), `node` (inode table), `upper` (host files reached
//! only through dir fds, never by a joined path, and their attributes), `whiteout` (OCI markers), `copyup`, `mapping` (ownership), `fds` (upper files by inode), `fs` (the
//! FUSE operations), `mount` (mount/unmount), `sys` (all unsafe).

mod copyup;
mod fds;
mod fs;
mod lower;
pub mod mapping;
pub mod mount;
mod node;
mod sys;
mod upper;
mod whiteout;

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, RwLock};
use std::thread::JoinHandle;

use fuser::{Config, Session, SessionACL};

use crate::tarindex::IndexError;

pub use fds::MAX_OPEN as MAX_KEPT_FDS;
pub use mapping::Own;

/// What to serve.
#[derive(Clone, Debug)]
pub struct Options {
    /// The merged lower index of the layer chain (`chains/<id>/idx`).
    pub lower_index: PathBuf,
    /// The layer tars, bottom first; entry `layer` fields index into this list.
    pub layer_tars: Vec<PathBuf>,
    /// The writable upper dir (exists).
    pub upper: PathBuf,
    /// A scratch dir on the upper's filesystem, for copy-ups before they are renamed in.
    pub work: PathBuf,
    /// Where the ownership side table lives (used for symlinks, and for everything when
    /// the upper's filesystem has no user xattrs); its journal is beside it
    /// (`<side_table>.journal`).
    pub side_table: PathBuf,
    /// Worker threads (0: one per CPU, at least 2).
    pub threads: usize,
    /// Let every process of the mount's user namespace in (a container's root); false
    /// admits only the mounting user's processes, also from outside the namespace.
    pub allow_other: bool,
    /// Single-id mode (one host id mapped): owners the mount's user namespace does not map
    /// are shown as its root instead of the overflow id, so the container's root can read
    /// and write them as it could with a range (fuse-overlayfs's `squash_to_root`). The
    /// recorded owners stay as they are: a layer made of the upper dir keeps them.
    pub squash_unmapped: bool,
}

impl Options {
    /// The usual layout inside a container dir: `upper/`, `work/`, `ownership.json`.
    pub fn in_dir(dir: &Path, lower_index: PathBuf, layer_tars: Vec<PathBuf>) -> Options {
        Options {
            lower_index,
            layer_tars,
            upper: dir.join("upper"),
            work: dir.join("work"),
            side_table: dir.join("ownership.json"),
            threads: 0,
            allow_other: true,
            squash_unmapped: false,
        }
    }
}

/// Why the overlay could not be set up or served.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("opening lower layer file {path}: {source}")]
    OpenLower { path: PathBuf, source: io::Error },
    #[error("reading merged lower index {path}: {source}")]
    BadIndex { path: PathBuf, source: IndexError },
    #[error(
        "lower index entry {path:?} points outside the tar of layer {layer}; rebuild the chain index"
    )]
    DataOutsideTar { path: String, layer: u16 },
    #[error("preparing upper dir {path}: {source}")]
    Upper { path: PathBuf, source: io::Error },
    #[error("ownership side table {path}: {source}")]
    SideTable { path: PathBuf, source: io::Error },
    #[error("opening /dev/fuse: {source} (is the fuse module loaded and /dev/fuse readable?)")]
    OpenFuse { source: io::Error },
    #[error("mounting the overlay on {path}: {source}")]
    Mount { path: PathBuf, source: io::Error },
    #[error("unmounting {path}: {source}")]
    Unmount { path: PathBuf, source: io::Error },
    #[error("serving the overlay on {path}: {source}")]
    Serve { path: PathBuf, source: io::Error },
}

/// The filesystem state shared by all worker threads.
pub(crate) struct Overlay {
    lower: lower::Lower,
    upper: upper::Upper,
    nodes: RwLock<node::Nodes>,
    /// Merged directory listings by inode, while a readdir pass goes through them.
    dirs: Mutex<HashMap<u64, std::sync::Arc<Vec<fs::DirEnt>>>>,
    /// Numbers the temporary names of copy-ups in the work dir.
    next_tmp: AtomicU64,
    /// Serialises operations that change names in the upper dir (create, copy-up,
    /// unlink, rename): they check then act, and must not interleave.
    names: Mutex<()>,
    /// Upper files by inode, for reads and writes that name no handle.
    fds: fds::Fds,
    /// With [`Options::squash_unmapped`]: the uid and gid ranges (first, count) of the
    /// mounting process's user namespace; ids outside them are shown as 0.
    squash: Option<(IdRanges, IdRanges)>,
}

/// (first inside id, count) ranges of an id map.
type IdRanges = Vec<(u32, u32)>;

/// The ranges of a `/proc/self/{uid,gid}_map`.
fn map_ranges(text: &str) -> IdRanges {
    text.lines()
        .filter_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            (f.len() == 3).then(|| (f[0], f[2]))
        })
        .collect()
}

impl Overlay {
    fn open(opts: &Options) -> Result<Overlay, OverlayError> {
        let lower = lower::Lower::open(&opts.lower_index, &opts.layer_tars)?;
        let upper = upper::Upper::open(&opts.upper, &opts.work, opts.side_table.clone())?;
        let nodes = node::Nodes::new(lower.index.len());
        Ok(Overlay {
            lower,
            upper,
            nodes: RwLock::new(nodes),
            dirs: Mutex::new(HashMap::new()),
            next_tmp: AtomicU64::new(1),
            names: Mutex::new(()),
            fds: fds::Fds::default(),
            squash: opts.squash_unmapped.then(|| {
                let read = |f| std::fs::read_to_string(f).unwrap_or_default();
                (
                    map_ranges(&read("/proc/self/uid_map")),
                    map_ranges(&read("/proc/self/gid_map")),
                )
            }),
        })
    }

    /// The attributes as the kernel is told them: unmapped owners as root when squashing.
    fn shown(&self, a: &fuser::FileAttr) -> fuser::FileAttr {
        let mut a = *a;
        if let Some((uids, gids)) = &self.squash {
            let mapped = |r: &[(u32, u32)], id: u32| r.iter().any(|&(f, n)| id >= f && id - f < n);
            if !mapped(uids, a.uid) {
                a.uid = 0;
            }
            if !mapped(gids, a.gid) {
                a.gid = 0;
            }
        }
        a
    }
}

/// A mounted overlay being served on worker threads.
pub struct Mounted {
    mountpoint: PathBuf,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Mounted {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts (lazily) and waits for the workers to finish.
    pub fn unmount(mut self) -> Result<(), OverlayError> {
        mount::unmount(&self.mountpoint)?;
        self.join()
    }

    /// Serves until someone else unmounts the mount point.
    pub fn wait(mut self) -> Result<(), OverlayError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), OverlayError> {
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        let res = t
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a worker panicked")));
        match res {
            Err(e) if !mount::is_disconnect(&e) => Err(OverlayError::Serve {
                path: self.mountpoint.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = mount::unmount(&self.mountpoint);
            let _ = self.join();
        }
    }
}

/// Mounts the overlay described by `opts` on `mountpoint` and serves it on worker
/// threads until [`Mounted::unmount`] (or an outside unmount). Call as root, or as root
/// of a user namespace that owns the current mount namespace.
pub fn mount(opts: &Options, mountpoint: &Path) -> Result<Mounted, OverlayError> {
    let fs = Overlay::open(opts)?;
    mount::detach_stale(mountpoint)?;
    let fd: OwnedFd = mount::mount(mountpoint, opts.allow_other)?;
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2)
    } else {
        opts.threads
    };
    let mut config = Config::default();
    config.n_threads = Some(threads);
    config.clone_fd = true;
    let serve_err = |source| OverlayError::Serve {
        path: mountpoint.to_path_buf(),
        source,
    };
    let acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.acl = acl;
    let session = match Session::from_fd(fs, fd, acl, config) {
        Ok(s) => s,
        Err(e) => {
            let _ = mount::unmount(mountpoint);
            return Err(serve_err(e));
        }
    };
    let thread = std::thread::Builder::new()
        .name("camada-overlay".into())
        .spawn(move || session.run())
        .map_err(serve_err)?;
    Ok(Mounted {
        mountpoint: mountpoint.to_path_buf(),
        thread: Some(thread),
    })
}

/// Mounts and serves until the mount point is unmounted from outside or the process
/// gets SIGTERM, SIGINT or SIGHUP (then it unmounts cleanly and returns Ok). Installs
/// process-wide handlers for those signals.
pub fn serve(opts: &Options, mountpoint: &Path) -> Result<(), OverlayError> {
    let serve_err = |source| OverlayError::Serve {
        path: mountpoint.to_path_buf(),
        source,
    };
    let mut pipe = sys::signal_pipe().map_err(serve_err)?;
    let m = mount(opts, mountpoint)?;
    let mp = mountpoint.to_path_buf();
    std::thread::Builder::new()
        .name("camada-overlay-signals".into())
        .spawn(move || {
            let mut b = [0u8; 1];
            if io::Read::read(&mut pipe, &mut b).is_ok_and(|n| n == 1) {
                let _ = mount::unmount(&mp);
            }
        })
        .map_err(serve_err)?;
    m.wait()
}
