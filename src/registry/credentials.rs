//! Stored registry credentials: camada's `auth.json` (in the config dir, 0600, the format
//! podman and skopeo use: `{"auths": {"HOST": {"auth": base64(user:pass)}}}`), and
//! docker's `~/.docker/config.json`, read only.
//!
//! It never talks to a registry (login verifies before calling [`CredentialStore::save`]).
//! Invariant: `auth.json` is replaced only by rename of a complete, fsynced 0600 file,
//! under an exclusive flock of `auth.json.lock` held across the read-modify-write, so two
//! `login`s at once both land; fields camada does not know are kept.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde_json::{Map, Value};

use super::RegistryError;
use super::auth::Credentials;

/// The credential files of one user.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    /// camada's own, read and written.
    pub auth_json: PathBuf,
    /// docker's `~/.docker/config.json`, read only (if set).
    pub docker_config: Option<PathBuf>,
}

/// The registry a credentials key names: `https://index.docker.io/v1/` -> `docker.io`,
/// `http://h:5000/v2/` -> `h:5000`.
pub fn normalize_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        h => h.to_owned(),
    }
}

impl CredentialStore {
    fn err(path: &Path, reason: impl std::fmt::Display) -> RegistryError {
        RegistryError::Credentials {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn read_json(path: &Path) -> Result<Option<Value>, RegistryError> {
        match fs::read(path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(None),
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Self::err(path, format!("invalid JSON: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::err(path, e)),
        }
    }

    fn lookup(doc: &Value, registry: &str) -> Option<Credentials> {
        let auths = doc.get("auths")?.as_object()?;
        auths
            .iter()
            .filter(|(k, _)| normalize_key(k) == registry)
            .find_map(|(_, v)| {
                if let Some(a) = v.get("auth").and_then(Value::as_str) {
                    return Credentials::decode(a);
                }
                let u = v.get("username")?.as_str()?;
                let p = v.get("password")?.as_str()?;
                Some(Credentials {
                    username: u.to_owned(),
                    password: p.to_owned(),
                })
            })
    }

    /// Credentials for `registry` (as the user names it): camada's file first, then
    /// docker's.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        let registry = normalize_key(registry);
        if let Some(doc) = Self::read_json(&self.auth_json)?
            && let Some(c) = Self::lookup(&doc, &registry)
        {
            return Ok(Some(c));
        }
        if let Some(p) = &self.docker_config {
            // docker's file is not ours: a broken one is skipped, not fatal
            if let Ok(Some(doc)) = Self::read_json(p) {
                return Ok(Self::lookup(&doc, &registry));
            }
        }
        Ok(None)
    }

    /// Stores credentials for `registry` in `auth.json`.
    pub fn save(&self, registry: &str, creds: &Credentials) -> Result<(), RegistryError> {
        let registry = normalize_key(registry);
        let _lock = self.lock()?;
        let mut doc = Self::read_json(&self.auth_json)?.unwrap_or(Value::Object(Map::new()));
        let path = &self.auth_json;
        let root = doc
            .as_object_mut()
            .ok_or_else(|| Self::err(path, "not a JSON object"))?;
        let auths = root
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| Self::err(path, "\"auths\" is not an object"))?;
        auths.retain(|k, _| normalize_key(k) != registry);
        let mut entry = Map::new();
        entry.insert("auth".into(), Value::String(creds.encoded()));
        auths.insert(registry, Value::Object(entry));
        self.write(&doc)
    }

    /// Removes the credentials for `registry` from `auth.json`; whether there were any.
    pub fn remove(&self, registry: &str) -> Result<bool, RegistryError> {
        let registry = normalize_key(registry);
        let _lock = self.lock()?;
        let Some(mut doc) = Self::read_json(&self.auth_json)? else {
            return Ok(false);
        };
        let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) else {
            return Ok(false);
        };
        let before = auths.len();
        auths.retain(|k, _| normalize_key(k) != registry);
        if auths.len() == before {
            return Ok(false);
        }
        self.write(&doc)?;
        Ok(true)
    }

    /// The config dir (0700), created if missing.
    fn dir(&self) -> Result<&Path, RegistryError> {
        let path = &self.auth_json;
        let dir = path
            .parent()
            .ok_or_else(|| Self::err(path, "no parent directory"))?;
        fs::create_dir_all(dir).map_err(|e| Self::err(path, e))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        Ok(dir)
    }

    /// Waits for the exclusive lock that serialises writers of `auth.json`.
    fn lock(&self) -> Result<Flock<fs::File>, RegistryError> {
        let mut name = self.auth_json.file_name().unwrap_or_default().to_owned();
        name.push(".lock");
        let path = self.dir()?.join(name);
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Self::err(&path, e))?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| Self::err(&path, e))
    }

    /// Temp file beside `auth.json` (same filesystem), 0600, fsync, rename, fsync dir.
    fn write(&self, doc: &Value) -> Result<(), RegistryError> {
        let path = &self.auth_json;
        let dir = self.dir()?;
        let tmp = dir.join(format!(".auth.json.{}.tmp", std::process::id()));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            let mut text = serde_json::to_vec_pretty(doc).map_err(std::io::Error::other)?;
            text.push(b'\n');
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            fs::File::open(dir)?.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(Self::err(path, e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn keys_normalise() {
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(normalize_key("quay.io"), "quay.io");
    }

    #[test]
    fn save_get_remove_keeps_other_fields() {
        let d = tempfile::tempdir().unwrap();
        let auth = d.path().join("cfg/auth.json");
        fs::create_dir_all(auth.parent().unwrap()).unwrap();
        fs::write(
            &auth,
            r#"{"auths":{"other:1":{"auth":"YTpi"}},"credHelpers":{"x":"y"}}"#,
        )
        .unwrap();
        let docker = d.path().join("config.json");
        fs::write(
            &docker,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
                creds("hub", "pw").encoded()
            ),
        )
        .unwrap();
        let s = CredentialStore {
            auth_json: auth.clone(),
            docker_config: Some(docker),
        };
        assert_eq!(s.get("docker.io").unwrap(), Some(creds("hub", "pw")));
        assert_eq!(s.get("127.0.0.1:5000").unwrap(), None);
        s.save("127.0.0.1:5000", &creds("u", "p")).unwrap();
        assert_eq!(s.get("127.0.0.1:5000").unwrap(), Some(creds("u", "p")));
        assert_eq!(s.get("other:1").unwrap(), Some(creds("a", "b")));
        let mode = fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&auth).unwrap();
        assert!(text.contains("credHelpers"));
        assert!(s.remove("127.0.0.1:5000").unwrap());
        assert!(!s.remove("127.0.0.1:5000").unwrap());
        assert_eq!(s.get("127.0.0.1:5000").unwrap(), None);
        // leftover temp files: none (the lock file stays, empty, as flock needs)
        let mut names: Vec<_> = fs::read_dir(auth.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["auth.json", "auth.json.lock"]);
    }

    #[test]
    fn concurrent_saves_all_land() {
        let d = tempfile::tempdir().unwrap();
        let s = CredentialStore {
            auth_json: d.path().join("auth.json"),
            docker_config: None,
        };
        std::thread::scope(|scope| {
            for t in 0..4 {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..10 {
                        s.save(&format!("r{t}-{i}:5000"), &creds("u", "p")).unwrap();
                    }
                });
            }
        });
        for t in 0..4 {
            for i in 0..10 {
                assert!(
                    s.get(&format!("r{t}-{i}:5000")).unwrap().is_some(),
                    "r{t}-{i}"
                );
            }
        }
    }

    #[test]
    fn broken_auth_json_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let auth = d.path().join("auth.json");
        fs::write(&auth, "{nope").unwrap();
        let s = CredentialStore {
            auth_json: auth,
            docker_config: None,
        };
        let e = s.get("x").unwrap_err().to_string();
        assert!(e.contains("auth.json") && e.contains("invalid JSON"), "{e}");
    }
}
