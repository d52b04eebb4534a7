//! Registry access for the engine's verbs: where credentials live, how a client for a
//! reference is made (plain HTTP for loopback registries, stored credentials), and the
//! verbs that need nothing more: `login`, `logout`, `search`.
//!
//! It wires `registry` to `paths`; it never formats output. Invariant: `login` saves
//! credentials only after the registry accepted them.

use std::path::PathBuf;

use crate::paths::Paths;
use crate::reference::Reference;
use crate::registry::{Client, ClientConfig, CredentialStore, RegistryError, Scope, SearchResult};

pub use crate::registry::Credentials;

/// Why a login, logout or search failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("invalid registry {0:?}")]
    BadRegistry(String),
    #[error("invalid search term {term:?}: {reason}")]
    BadTerm { term: String, reason: String },
    #[error("not logged in to {0}")]
    NotLoggedIn(String),
}

/// The credential files: `auth.json` in the config dir, and docker's
/// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` (read only).
pub fn credential_store(paths: &Paths) -> CredentialStore {
    let docker_config = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|d| d.join("config.json"));
    CredentialStore {
        auth_json: paths.auth_json(),
        docker_config,
    }
}

/// The registry as a user names it on `login`/`logout` (`docker.io` when omitted):
/// `https://host/v2/` and `host` are the same registry.
pub fn registry_name(arg: Option<&str>) -> Result<String, LoginError> {
    let Some(arg) = arg.filter(|a| !a.is_empty()) else {
        return Ok("docker.io".to_owned());
    };
    let name = crate::registry::credentials::normalize_key(arg);
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(LoginError::BadRegistry(arg.to_owned()));
    }
    Ok(name)
}

/// Whether camada speaks plain HTTP to `registry` by default (loopback, as docker).
fn plain_http_default(registry: &str) -> bool {
    Reference::parse(&format!("{registry}/x"))
        .map(|r| r.plain_http_default())
        .unwrap_or(false)
}

fn api_host(registry: &str) -> String {
    if registry == "docker.io" {
        "registry-1.docker.io".to_owned()
    } else {
        registry.to_owned()
    }
}

/// A client for `registry` with the stored credentials (if any) and `scopes`.
pub fn connect(
    paths: &Paths,
    registry: &str,
    tls_verify: bool,
    scopes: &[Scope],
) -> Result<Client, RegistryError> {
    let mut cfg = ClientConfig::new(
        registry,
        &api_host(registry),
        plain_http_default(registry),
        tls_verify,
    );
    cfg.credentials = credential_store(paths).get(registry)?;
    Client::connect(cfg, scopes)
}

/// Checks `creds` against `registry`'s `/v2/` and saves them only if accepted.
pub fn login(
    paths: &Paths,
    registry: &str,
    creds: Credentials,
    tls_verify: bool,
) -> Result<(), LoginError> {
    let mut cfg = ClientConfig::new(
        registry,
        &api_host(registry),
        plain_http_default(registry),
        tls_verify,
    );
    cfg.credentials = Some(creds.clone());
    let client = Client::connect(cfg, &[])?;
    client.verify_login()?;
    credential_store(paths).save(registry, &creds)?;
    Ok(())
}

/// Removes the stored credentials of `registry`.
pub fn logout(paths: &Paths, registry: &str) -> Result<(), LoginError> {
    if credential_store(paths).remove(registry)? {
        Ok(())
    } else {
        Err(LoginError::NotLoggedIn(registry.to_owned()))
    }
}

/// `search REGISTRY/TERM` (or a bare TERM on Docker Hub): repositories whose name
/// contains TERM, at most `limit`.
pub fn search(
    paths: &Paths,
    query: &str,
    limit: usize,
    tls_verify: bool,
) -> Result<Vec<SearchResult>, LoginError> {
    let (registry, term) = split_search(query)?;
    if registry == "docker.io" {
        let t = crate::registry::transport::Transport::new(tls_verify);
        return Ok(crate::registry::hub_search(&t, &term, limit)?);
    }
    let client = connect(paths, &registry, tls_verify, &[Scope::Catalog])?;
    Ok(crate::registry::catalog(&client, &term, 100, limit)?)
}

/// `127.0.0.1:5000/web` -> (`127.0.0.1:5000`, `web`); `busybox` -> (`docker.io`,
/// `busybox`); `localhost/` -> (`localhost`, ``) lists everything.
pub fn split_search(query: &str) -> Result<(String, String), LoginError> {
    let bad = |reason: &str| LoginError::BadTerm {
        term: query.to_owned(),
        reason: reason.to_owned(),
    };
    if query.is_empty() {
        return Err(bad("empty"));
    }
    match query.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            Ok((registry_name(Some(first))?, rest.to_owned()))
        }
        _ if query.contains(char::is_whitespace) => Err(bad("spaces are not allowed")),
        _ => Ok(("docker.io".to_owned(), query.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_queries() {
        assert_eq!(
            split_search("127.0.0.1:5000/web").unwrap(),
            ("127.0.0.1:5000".into(), "web".into())
        );
        assert_eq!(
            split_search("localhost/").unwrap(),
            ("localhost".into(), "".into())
        );
        assert_eq!(
            split_search("busybox").unwrap(),
            ("docker.io".into(), "busybox".into())
        );
        assert_eq!(
            split_search("user/app").unwrap(),
            ("docker.io".into(), "user/app".into())
        );
        assert!(split_search("").is_err());
    }

    #[test]
    fn registry_names() {
        assert_eq!(registry_name(None).unwrap(), "docker.io");
        assert_eq!(
            registry_name(Some("https://index.docker.io/v1/")).unwrap(),
            "docker.io"
        );
        assert_eq!(
            registry_name(Some("http://127.0.0.1:5000")).unwrap(),
            "127.0.0.1:5000"
        );
        assert!(plain_http_default("127.0.0.1:5000"));
        assert!(plain_http_default("localhost:5000"));
        assert!(!plain_http_default("quay.io"));
    }
}
