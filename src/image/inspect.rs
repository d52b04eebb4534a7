//! `docker image inspect`'s JSON for one image: the fields and order docker prints, with
//! `null` where docker has `null` (so `--format '{{.Config.Cmd}}'` behaves the same).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ImageConfig;
use crate::digest::{DiffId, Digest};

/// What inspect shows that the config does not hold: the store's facts about the image.
#[derive(Debug, Clone, Copy)]
pub struct InspectFacts<'a> {
    /// The image ID (the config's digest).
    pub id: &'a Digest,
    /// Familiar tags (`busybox:latest`).
    pub repo_tags: &'a [String],
    /// Familiar digests (`busybox@sha256:...`): where the image was pulled from or pushed to.
    pub repo_digests: &'a [String],
    /// The image it was built or committed from, when known locally.
    pub parent: Option<&'a Digest>,
    pub config: &'a ImageConfig,
    /// Bytes of the uncompressed layers.
    pub size: u64,
    /// RFC 3339 time of the last tag (`None`: never tagged here).
    pub last_tag_time: Option<&'a str>,
}

/// One image as `docker image inspect` prints it: serialise it with serde_json (docker
/// indents with four spaces) for docker's key order, or make a `Value` of it for templates.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    pub docker_version: String,
    pub author: String,
    pub config: Option<InspectConfig>,
    pub architecture: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
    pub os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    pub size: u64,
    #[serde(rename = "RootFS")]
    pub root_fs: InspectRootFs,
    pub metadata: InspectMetadata,
}

/// docker's container config as inspect shows it for an image.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, EmptyObject>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    pub image: String,
    pub volumes: Option<BTreeMap<String, EmptyObject>>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// `{}`: the value side of Go's `map[string]struct{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EmptyObject {}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectRootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<DiffId>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMetadata {
    pub last_tag_time: String,
}

/// Go's zero time, which docker prints for "never".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn set_map(s: &BTreeSet<String>) -> Option<BTreeMap<String, EmptyObject>> {
    (!s.is_empty()).then(|| s.iter().map(|k| (k.clone(), EmptyObject {})).collect())
}

fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// docker's inspect object for one image.
pub fn inspect_json(f: &InspectFacts<'_>) -> ImageInspect {
    let c = f.config;
    let config = c.config.as_ref().map(|rc| InspectConfig {
        hostname: String::new(),
        domainname: String::new(),
        user: rc.user.clone(),
        attach_stdin: false,
        attach_stdout: false,
        attach_stderr: false,
        exposed_ports: set_map(&rc.exposed_ports),
        tty: false,
        open_stdin: false,
        stdin_once: false,
        env: non_empty(&rc.env),
        cmd: rc.cmd.clone(),
        healthcheck: rc.healthcheck.clone(),
        args_escaped: rc.args_escaped.filter(|b| *b),
        image: String::new(),
        volumes: set_map(&rc.volumes),
        working_dir: rc.working_dir.clone(),
        entrypoint: rc.entrypoint.clone(),
        on_build: non_empty(&rc.on_build),
        labels: (!rc.labels.is_empty()).then(|| rc.labels.clone()),
        stop_signal: rc.stop_signal.clone(),
        stop_timeout: rc.stop_timeout,
        shell: rc.shell.clone(),
    });
    ImageInspect {
        id: f.id.to_string(),
        repo_tags: f.repo_tags.to_vec(),
        repo_digests: f.repo_digests.to_vec(),
        parent: f.parent.map(|p| p.to_string()).unwrap_or_default(),
        comment: c.comment.clone().unwrap_or_default(),
        created: c.created.clone().unwrap_or_default(),
        docker_version: c.docker_version.clone().unwrap_or_default(),
        author: c.author.clone().unwrap_or_default(),
        config,
        architecture: c.architecture.clone(),
        variant: c.variant.clone().unwrap_or_default(),
        os: c.os.clone(),
        os_version: c.os_version.clone().unwrap_or_default(),
        size: f.size,
        root_fs: InspectRootFs {
            kind: if c.rootfs.kind.is_empty() {
                "layers".to_owned()
            } else {
                c.rootfs.kind.clone()
            },
            layers: c.rootfs.diff_ids.clone(),
        },
        metadata: InspectMetadata {
            last_tag_time: f.last_tag_time.unwrap_or(ZERO_TIME).to_owned(),
        },
    }
}
