//! The engines a container test runs against: as the current user (root on CI), as the
//! unprivileged `camadatest` with its /etc/subuid range, and as that user without
//! newuidmap on PATH (single-id mode). Each comes with the base image loaded, and removes
//! every container it made when it goes, also when the test panics.

use super::{Camada, fuse_usable, is_root, require};

/// Who runs the engine in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Root,
    User,
    SingleId,
}

/// A Camada whose containers are all removed when it goes, also when the test panics (a
/// detached container must never outlive its test).
pub struct Engine(pub Camada);

impl std::ops::Deref for Engine {
    type Target = Camada;
    fn deref(&self) -> &Camada {
        &self.0
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        cleanup(&self.0);
    }
}

/// The engines a test runs against, each with the base image loaded. Rootless ones need
/// FUSE and user namespaces (a loud SKIP off CI when missing).
pub fn engines(who: &[Who]) -> Vec<(Who, Engine)> {
    let mut out = Vec::new();
    for &w in who {
        let c = match w {
            Who::Root => {
                if !is_root() {
                    continue;
                }
                Camada::new()
            }
            Who::User | Who::SingleId => {
                let Some(mut c) = Camada::as_user() else {
                    continue;
                };
                if !require("FUSE", fuse_usable()) || !require("user namespaces", c.userns_usable())
                {
                    continue;
                }
                if w == Who::SingleId {
                    // the single mapping (camadatest has a range: PATH alone no longer
                    // hides newuidmap, the standard directories are searched too)
                    c.env("CAMADA_SINGLE_ID", "1");
                }
                c
            }
        };
        c.load_base();
        out.push((w, Engine(c)));
    }
    out
}

pub const ALL: &[Who] = &[Who::Root, Who::User, Who::SingleId];

/// Removes every container of `c` (a Camada's temp dir goes when dropped; a running
/// container must not outlive the test).
pub fn cleanup(c: &Camada) {
    let ids = c.run(["ps", "-aq", "--no-trunc"]).stdout();
    for id in ids.lines().filter(|l| !l.is_empty()) {
        c.run(["rm", "-f", id]);
    }
}
