//! The image config (OCI image-spec `config.md`, docker's image JSON): what a container
//! of the image runs, and the layer list (`rootfs.diff_ids`) that names its content.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ImageError, Platform, from_json, null_default, to_json};
use crate::digest::DiffId;

/// An image config. The image ID is the digest of its bytes as stored, so parse what
/// others wrote and keep their bytes; [`ImageConfig::to_json`] is for images we make.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// RFC 3339 time the image was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// What a container runs (`None` for a bare import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
    /// docker's top-level comment (`docker import -m`, `docker commit -m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
}

/// `rootfs`: the layers, bottom first, by diff_id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<DiffId>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

/// One step of the image's history; `empty_layer` steps made no layer (ENV, CMD...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub empty_layer: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `config`: the defaults of a container of this image. Docker's extra fields are kept
/// (Healthcheck, Shell, OnBuild, ArgsEscaped, StopTimeout) so a docker image round-trips.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub user: String,
    #[serde(
        default,
        deserialize_with = "set_from_map",
        serialize_with = "set_as_map",
        skip_serializing_if = "BTreeSet::is_empty"
    )]
    pub exposed_ports: BTreeSet<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// `None`: not set (inherit); `Some([])`: explicitly empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "set_from_map",
        serialize_with = "set_as_map",
        skip_serializing_if = "BTreeSet::is_empty"
    )]
    pub volumes: BTreeSet<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
}

impl RunConfig {
    /// The value of `key` in `Env` (the last one wins, as in a process environment).
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find_map(|kv| match kv.split_once('=') {
                Some((k, v)) if k == key => Some(v),
                None if kv == key => Some(""),
                _ => None,
            })
    }

    /// Sets `key=value` in `Env`, replacing an earlier value in place.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let kv = format!("{key}={value}");
        match self
            .env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = kv,
            None => self.env.push(kv),
        }
    }
}

/// Go's `map[string]struct{}` (`{"80/tcp": {}}`), `null` included, as a set of keys.
fn set_from_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<String>, D::Error> {
    let m: Option<BTreeMap<String, serde::de::IgnoredAny>> = Option::deserialize(d)?;
    Ok(m.map(|m| m.into_keys().collect()).unwrap_or_default())
}

fn set_as_map<S: Serializer>(set: &BTreeSet<String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(set.len()))?;
    for k in set {
        m.serialize_entry(k, &serde_json::Map::new())?;
    }
    m.end()
}

impl ImageConfig {
    /// An empty config for `platform` made at `created` (RFC 3339), with an empty
    /// `config` section (docker writes one even for `import`).
    pub fn new(platform: &Platform, created: &str) -> ImageConfig {
        ImageConfig {
            created: Some(created.to_owned()),
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            config: Some(RunConfig::default()),
            ..ImageConfig::default()
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ImageError> {
        from_json("image config", bytes)
    }

    /// The bytes we store for a config we made (compact, stable key order).
    pub fn to_json(&self) -> Result<Vec<u8>, ImageError> {
        to_json("image config", self)
    }

    /// The platform this image is for.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
            os_version: self.os_version.clone(),
            ..Platform::default()
        }
    }

    /// Adds a layer on top, with the history entry that made it.
    pub fn push_layer(&mut self, diff_id: DiffId, mut history: History) {
        history.empty_layer = false;
        self.rootfs.diff_ids.push(diff_id);
        self.history.push(history);
    }

    /// Adds a history entry that made no layer (ENV, CMD, LABEL...).
    pub fn push_empty_step(&mut self, mut history: History) {
        history.empty_layer = true;
        self.history.push(history);
    }

    /// Each history entry with the diff_id of the layer it made (`None` for empty steps),
    /// as `docker history` pairs them; layers without history get a blank entry.
    pub fn history_with_layers(&self) -> Vec<(History, Option<DiffId>)> {
        let mut layers = self.rootfs.diff_ids.iter();
        let mut out: Vec<(History, Option<DiffId>)> = self
            .history
            .iter()
            .map(|h| {
                let layer = if h.empty_layer {
                    None
                } else {
                    layers.next().cloned()
                };
                (h.clone(), layer)
            })
            .collect();
        out.extend(layers.map(|d| (History::default(), Some(d.clone()))));
        out
    }
}
