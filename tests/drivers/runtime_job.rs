//! The job the runtime tests hand their driver (tests/drivers/runtime_run.rs) as JSON in
//! `CAMADA_RT_DRIVER`: one definition, included by both sides with `#[path]`.

use std::path::PathBuf;

use camada::runtime::{Bind, Network, ProcessSpec};

/// One thing to do.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone)]
#[serde(default)]
pub struct Job {
    /// `run` (foreground), `start` (detached: prints the first process's pid), `exec`,
    /// `signal`, `wait`, `attach`.
    pub verb: String,
    pub id: String,
    pub rootfs: PathBuf,
    pub run_dir: PathBuf,
    pub process: ProcessSpec,
    pub hostname: String,
    pub network: Option<Network>,
    pub binds: Vec<Bind>,
    pub init: bool,
    pub stdin: bool,
    /// The json-file log: instead of the caller's stdio for `start`, besides it for `run`.
    pub log: Option<PathBuf>,
    /// Map only the caller's own id, as for a user without /etc/subuid ranges.
    pub single_id: bool,
    /// `Container::fake_ids`.
    pub fake_ids: bool,
    /// The exit hook writes `CODE FAILURE` here.
    pub exit_file: Option<PathBuf>,
    pub signal: i32,
}
