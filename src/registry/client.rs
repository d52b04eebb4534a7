//! A registry client: one registry, the scopes a command needs, the authentication state
//! shared by its threads, and one method per protocol request.
//!
//! It speaks only the distribution API: `/v2/` ping, manifests, blobs (with `Range`),
//! uploads, mounts, the catalog. It never decides what to fetch (pull.rs, push.rs and the
//! engine do). Invariant: every request goes through [`Client::send`], which applies the
//! retry policy to replayable requests and re-authenticates once on a 401.

use std::sync::Mutex;
use std::thread;
use std::time::Instant;

use ureq::http::Method;

use super::auth::{self, Challenge, Credentials};
use super::transport::{self, ReqBody, Response, RetryPolicy, Transport};
use super::{MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, RegistryError};
use crate::digest::Digest;

/// How to reach one registry.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The registry as the user names it (`docker.io`, `127.0.0.1:5000`): used in
    /// messages (`camada login HOST`).
    pub registry: String,
    /// The host:port to talk to (`registry-1.docker.io` for `docker.io`).
    pub api_host: String,
    /// Speak plain HTTP (local registries, as docker does).
    pub plain_http: bool,
    /// `false` with `--tls-verify=false`: accept any certificate, and fall back to plain
    /// HTTP when the registry does not speak TLS.
    pub tls_verify: bool,
    pub credentials: Option<Credentials>,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// A config with the default retry policy and no credentials.
    pub fn new(registry: &str, api_host: &str, plain_http: bool, tls_verify: bool) -> Self {
        ClientConfig {
            registry: registry.to_owned(),
            api_host: api_host.to_owned(),
            plain_http,
            tls_verify,
            credentials: None,
            retry: RetryPolicy::default(),
        }
    }
}

/// An access a command asks the token server for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Pull(String),
    /// Pull and push: what a push to this repository needs.
    Push(String),
    Catalog,
}

impl Scope {
    fn as_token_scope(&self) -> String {
        match self {
            Scope::Pull(r) => format!("repository:{r}:pull"),
            Scope::Push(r) => format!("repository:{r}:pull,push"),
            Scope::Catalog => "registry:catalog:*".to_owned(),
        }
    }
}

/// A manifest as fetched: its bytes (at most [`MAX_MANIFEST_SIZE`]), its media type as
/// the registry sent it, and the digest of the bytes.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: Option<String>,
    pub digest: Digest,
}

/// What a mount request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mounted {
    Yes,
    /// The registry refused the mount and opened an upload session instead.
    Upload(String),
}

#[derive(Default)]
struct AuthState {
    header: Option<String>,
    expires: Option<Instant>,
    challenge: Option<Challenge>,
}

/// A client for one registry, shared by the threads of one command.
pub struct Client {
    cfg: ClientConfig,
    transport: Transport,
    base: String,
    scopes: Vec<String>,
    auth: Mutex<AuthState>,
}

impl Client {
    /// Connects: pings `/v2/` (choosing the scheme) and, when the registry asks,
    /// authenticates for `scopes` up front, as docker does.
    pub fn connect(cfg: ClientConfig, scopes: &[Scope]) -> Result<Client, RegistryError> {
        let transport = Transport::new(cfg.tls_verify);
        let scheme = if cfg.plain_http { "http" } else { "https" };
        let mut client = Client {
            base: format!("{scheme}://{}", cfg.api_host),
            scopes: scopes.iter().map(Scope::as_token_scope).collect(),
            cfg,
            transport,
            auth: Mutex::new(AuthState::default()),
        };
        match client.ping() {
            Err(RegistryError::Connect { .. }) if !client.cfg.tls_verify && scheme == "https" => {
                client.base = format!("http://{}", client.cfg.api_host);
                client.ping()?;
            }
            other => other?,
        }
        Ok(client)
    }

    /// `/v2/`: a 401 with a challenge authenticates (with credentials if configured).
    fn ping(&self) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base);
        let mut resp = self.raw(&Method::GET, &url, &[], None, ReqBody::Empty)?;
        if resp.status == 401 {
            self.authenticate(&resp)?;
            return Ok(());
        }
        if resp.status >= 400 {
            return Err(status_error("pinging", &url, &mut resp));
        }
        Ok(())
    }

    /// Checks credentials against `/v2/` (login): `Ok` only if the registry accepts
    /// them (or needs none).
    pub fn verify_login(&self) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base);
        let mut resp = self.send("logging in to", &Method::GET, &url, &[], ReqBody::Empty)?;
        match resp.status {
            200..=299 => Ok(()),
            401 | 403 => Err(RegistryError::LoginFailed {
                host: self.cfg.registry.clone(),
            }),
            _ => Err(status_error("logging in to", &url, &mut resp)),
        }
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.cfg.retry
    }

    /// The registry as the user names it.
    pub fn registry(&self) -> &str {
        &self.cfg.registry
    }

    /// `scheme://host[:port]` actually spoken to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One request without retries or authentication handling: used for the ping.
    fn raw(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, String)],
        auth: Option<&str>,
        body: ReqBody<'_>,
    ) -> Result<Response, RegistryError> {
        self.transport
            .send(method, url, headers, auth, body)
            .map_err(|e| RegistryError::Connect {
                url: url.to_owned(),
                reason: e.to_string(),
            })
    }

    /// The `Authorization` value to send now, refreshing an expired token first.
    fn current_auth(&self) -> Result<Option<String>, RegistryError> {
        let (expired, challenge) = {
            let st = self.lock();
            let expired = st.expires.is_some_and(|e| Instant::now() >= e);
            if !expired {
                return Ok(st.header.clone());
            }
            (expired, st.challenge.clone())
        };
        if let (true, Some(c)) = (expired, challenge) {
            self.auth_with(&c, &[])?;
        }
        Ok(self.lock().header.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        // A thread that panicked while holding the lock left a valid AuthState (every
        // write is a whole-field assignment), so the poison can be ignored.
        self.auth.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers a 401: from its challenge, get the header for the next attempt.
    fn authenticate(&self, resp: &Response) -> Result<(), RegistryError> {
        let Some(challenge) = resp
            .headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(auth::parse_challenge)
            .max_by_key(|c| matches!(c, Challenge::Bearer { .. }))
        else {
            return Err(RegistryError::Protocol {
                what: format!("registry {}", self.cfg.registry),
                reason: "401 without a usable WWW-Authenticate challenge".into(),
            });
        };
        let extra: Vec<String> = match &challenge {
            Challenge::Bearer { scope: Some(s), .. } => s.split(' ').map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        self.auth_with(&challenge, &extra)
    }

    fn auth_with(&self, challenge: &Challenge, extra: &[String]) -> Result<(), RegistryError> {
        match challenge {
            Challenge::Basic { .. } => {
                let Some(c) = &self.cfg.credentials else {
                    let mut st = self.lock();
                    st.challenge = Some(challenge.clone());
                    st.header = None;
                    return Ok(());
                };
                let mut st = self.lock();
                st.header = Some(c.basic_header());
                st.expires = None;
                st.challenge = Some(challenge.clone());
                Ok(())
            }
            Challenge::Bearer { realm, service, .. } => {
                let mut scopes = self.scopes.clone();
                for s in extra {
                    if !s.is_empty() && !scopes.contains(s) {
                        scopes.push(s.clone());
                    }
                }
                let url = auth::token_url(realm, service.as_deref(), &scopes);
                let basic = self.cfg.credentials.as_ref().map(Credentials::basic_header);
                let token_err = |reason: String| RegistryError::Token {
                    realm: realm.clone(),
                    reason,
                };
                let mut attempt = 1;
                let mut resp = loop {
                    let r = self.transport.send(
                        &Method::GET,
                        &url,
                        &[],
                        basic.as_deref(),
                        ReqBody::Empty,
                    );
                    let retry_after = match &r {
                        Ok(r) if RetryPolicy::retry_status(r.status) => {
                            r.header("retry-after").map(str::to_owned)
                        }
                        Err(e) if e.retryable() => None,
                        _ => break r.map_err(|e| token_err(e.to_string()))?,
                    };
                    match self.cfg.retry.wait(attempt, retry_after.as_deref()) {
                        Some(w) => thread::sleep(w),
                        None => break r.map_err(|e| token_err(e.to_string()))?,
                    }
                    attempt += 1;
                };
                if resp.status == 401 || resp.status == 403 {
                    if self.cfg.credentials.is_some() {
                        return Err(RegistryError::LoginFailed {
                            host: self.cfg.registry.clone(),
                        });
                    }
                    return Err(token_err("unauthorized".into()));
                }
                if resp.status != 200 {
                    let detail = resp.text(512);
                    return Err(token_err(format!(
                        "status {}: {}",
                        resp.status,
                        detail.trim()
                    )));
                }
                let mut body = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(resp.body.as_reader(), 1 << 20),
                    &mut body,
                )
                .map_err(|e| token_err(e.to_string()))?;
                let token = auth::parse_token(&body).map_err(token_err)?;
                let mut st = self.lock();
                st.header = Some(format!("Bearer {}", token.value));
                // renew a little before the server's deadline
                st.expires = token
                    .expires_in
                    .map(|d| Instant::now() + d.saturating_sub(std::time::Duration::from_secs(5)));
                st.challenge = Some(challenge.clone());
                Ok(())
            }
        }
    }

    /// Sends a request with authentication and the retry policy. A 401 triggers one
    /// re-authentication; 429/5xx and network failures are retried with backoff when
    /// the body can be replayed. Statuses are returned, not mapped to errors.
    pub fn send(
        &self,
        what: &str,
        method: &Method,
        url: &str,
        headers: &[(&str, String)],
        mut body: ReqBody<'_>,
    ) -> Result<Response, RegistryError> {
        let mut attempt = 1;
        let mut reauthed = false;
        loop {
            let replayable = !matches!(body, ReqBody::Stream(_));
            let auth = self.current_auth()?;
            let this_body = match &mut body {
                ReqBody::Empty => ReqBody::Empty,
                ReqBody::Bytes(b) => ReqBody::Bytes(b),
                ReqBody::Stream(r) => ReqBody::Stream(&mut **r),
            };
            let result = self
                .transport
                .send(method, url, headers, auth.as_deref(), this_body);
            match result {
                Ok(resp) if resp.status == 401 && !reauthed && replayable => {
                    reauthed = true;
                    let before = auth;
                    self.authenticate(&resp)?;
                    if self.lock().header == before {
                        return Ok(resp); // nothing new to offer: the caller maps the 401
                    }
                }
                Ok(resp) if RetryPolicy::retry_status(resp.status) && replayable => {
                    match self.cfg.retry.wait(attempt, resp.header("retry-after")) {
                        Some(w) => thread::sleep(w),
                        None => return Ok(resp),
                    }
                    attempt += 1;
                }
                Ok(resp) => return Ok(resp),
                Err(e) if e.retryable() && replayable => {
                    match self.cfg.retry.wait(attempt, None) {
                        Some(w) => thread::sleep(w),
                        None => {
                            return Err(RegistryError::Connect {
                                url: url.to_owned(),
                                reason: format!("{e} ({what})"),
                            });
                        }
                    }
                    attempt += 1;
                }
                Err(e) => {
                    return Err(RegistryError::Connect {
                        url: url.to_owned(),
                        reason: format!("{e} ({what})"),
                    });
                }
            }
        }
    }

    /// Maps a failed answer to the error a user should see, for `repository`.
    pub fn fail(&self, what: &'static str, repository: &str, resp: &mut Response) -> RegistryError {
        match resp.status {
            401 => RegistryError::Unauthorized {
                what,
                host: self.cfg.registry.clone(),
                repository: repository.to_owned(),
            },
            403 => RegistryError::Denied {
                what,
                host: self.cfg.registry.clone(),
                repository: repository.to_owned(),
                detail: error_detail(&resp.text(4096)).unwrap_or_else(|| "forbidden".into()),
            },
            _ => {
                let url = resp.url.clone();
                status_error(what, &url, resp)
            }
        }
    }

    fn repo_url(&self, repository: &str, rest: &str) -> String {
        format!("{}/v2/{repository}/{rest}", self.base)
    }

    /// GET a manifest by tag or digest (`reference` is the part after `:` or `@`).
    /// `display` names it in errors (`127.0.0.1:5000/app:v1`). The size limit and, for a
    /// digest, the digest itself are checked.
    pub fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
        display: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = self.repo_url(repository, &format!("manifests/{reference}"));
        let headers = [("Accept", MANIFEST_ACCEPT.to_owned())];
        let mut resp = self.send("pulling", &Method::GET, &url, &headers, ReqBody::Empty)?;
        if resp.status == 404 {
            return Err(RegistryError::ManifestNotFound {
                reference: display.to_owned(),
            });
        }
        if resp.status != 200 {
            return Err(self.fail("pulling", repository, &mut resp));
        }
        let too_large = || RegistryError::ManifestTooLarge {
            reference: display.to_owned(),
            limit: MAX_MANIFEST_SIZE,
        };
        let declared = resp
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_MANIFEST_SIZE) {
            return Err(too_large());
        }
        let media_type = resp
            .header("content-type")
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(resp.body.as_reader(), MAX_MANIFEST_SIZE + 1),
            &mut bytes,
        )
        .map_err(|e| RegistryError::Body {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(too_large());
        }
        let digest = Digest::of(&bytes);
        if let Ok(expected) = reference.parse::<Digest>()
            && expected != digest
        {
            return Err(RegistryError::ManifestDigest {
                reference: display.to_owned(),
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// HEAD a manifest: its digest (from `Docker-Content-Digest`) if the registry has it.
    pub fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let url = self.repo_url(repository, &format!("manifests/{reference}"));
        let headers = [("Accept", MANIFEST_ACCEPT.to_owned())];
        let mut resp = self.send("pushing to", &Method::HEAD, &url, &headers, ReqBody::Empty)?;
        match resp.status {
            200 => Ok(resp
                .header("docker-content-digest")
                .and_then(|d| d.trim().parse().ok())),
            404 => Ok(None),
            _ => Err(self.fail("pushing to", repository, &mut resp)),
        }
    }

    /// GET a blob from byte `offset` on. Returns where the body really starts (0 when the
    /// registry ignored the `Range`) and the answer to read.
    pub fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<(u64, Response), RegistryError> {
        let url = self.repo_url(repository, &format!("blobs/{digest}"));
        let mut headers = Vec::new();
        if offset > 0 {
            headers.push(("Range", format!("bytes={offset}-")));
        }
        let mut resp = self.send("pulling", &Method::GET, &url, &headers, ReqBody::Empty)?;
        match resp.status {
            200 => Ok((0, resp)),
            206 => {
                let start = resp
                    .header("content-range")
                    .and_then(content_range_start)
                    .ok_or_else(|| RegistryError::Blob {
                        digest: digest.clone(),
                        reason: "206 answer without a valid Content-Range".into(),
                    })?;
                if start != offset {
                    return Err(RegistryError::Blob {
                        digest: digest.clone(),
                        reason: format!("asked for bytes from {offset}, got from {start}"),
                    });
                }
                Ok((start, resp))
            }
            416 if offset > 0 => self.get_blob(repository, digest, 0),
            404 => Err(RegistryError::Blob {
                digest: digest.clone(),
                reason: format!("not found in {}/{repository}", self.cfg.registry),
            }),
            _ => Err(self.fail("pulling", repository, &mut resp)),
        }
    }

    /// HEAD a blob: whether the repository has it.
    pub fn has_blob(&self, repository: &str, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.repo_url(repository, &format!("blobs/{digest}"));
        let mut resp = self.send("pushing to", &Method::HEAD, &url, &[], ReqBody::Empty)?;
        match resp.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.fail("pushing to", repository, &mut resp)),
        }
    }

    /// POST `?mount=DIGEST&from=REPO`: 201 is a mount; 202 opens an upload instead.
    pub fn mount_blob(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<Mounted, RegistryError> {
        let url = self.repo_url(repository, "blobs/uploads/");
        let url = transport::append_query(&url, "mount", &digest.to_string());
        let url = transport::append_query(&url, "from", from);
        let headers = [("Content-Length", "0".to_owned())];
        let mut resp = self.send("pushing to", &Method::POST, &url, &headers, ReqBody::Empty)?;
        match resp.status {
            201 => Ok(Mounted::Yes),
            202 => Ok(Mounted::Upload(self.location(&resp)?)),
            _ => Err(self.fail("pushing to", repository, &mut resp)),
        }
    }

    /// POST an upload session: the URL to send the bytes to (`Location`, resolved).
    pub fn start_upload(&self, repository: &str) -> Result<String, RegistryError> {
        let url = self.repo_url(repository, "blobs/uploads/");
        let headers = [("Content-Length", "0".to_owned())];
        let mut resp = self.send("pushing to", &Method::POST, &url, &headers, ReqBody::Empty)?;
        if resp.status != 202 {
            return Err(self.fail("pushing to", repository, &mut resp));
        }
        self.location(&resp)
    }

    /// `Location` of an answer, resolved against the URL that was asked.
    pub fn location(&self, resp: &Response) -> Result<String, RegistryError> {
        let loc = resp.header("location").unwrap_or("");
        transport::resolve_location(&resp.url, loc).ok_or_else(|| RegistryError::Location {
            host: self.cfg.registry.clone(),
            url: resp.url.clone(),
            location: loc.to_owned(),
        })
    }

    /// PUT a manifest under a tag or digest; returns the digest of the bytes.
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let url = self.repo_url(repository, &format!("manifests/{reference}"));
        let headers = [("Content-Type", media_type.to_owned())];
        let mut resp = self.send(
            "pushing to",
            &Method::PUT,
            &url,
            &headers,
            ReqBody::Bytes(bytes),
        )?;
        if resp.status != 201 && resp.status != 200 {
            return Err(self.fail("pushing to", repository, &mut resp));
        }
        Ok(Digest::of(bytes))
    }

    /// GET any URL on this registry with authentication (catalog pages).
    pub fn get(&self, what: &str, url: &str) -> Result<Response, RegistryError> {
        self.send(what, &Method::GET, url, &[], ReqBody::Empty)
    }
}

/// `bytes START-END/TOTAL` -> START.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// The first `message` (or `code`) of a distribution error body.
fn error_detail(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<E>,
    }
    let errs: Errors = serde_json::from_str(body).ok()?;
    let e = errs.errors.into_iter().next()?;
    let text = match (e.code.is_empty(), e.message.is_empty()) {
        (false, false) => format!("{}: {}", e.code.to_lowercase(), e.message),
        (false, true) => e.code.to_lowercase(),
        (true, false) => e.message,
        (true, true) => return None,
    };
    Some(text)
}

fn status_error(what: &str, url: &str, resp: &mut Response) -> RegistryError {
    let body = resp.text(4096);
    let detail = error_detail(&body)
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    RegistryError::Status {
        what: what.to_owned(),
        url: url.to_owned(),
        status: resp.status,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
        assert_eq!(content_range_start("bytes x-1/2"), None);
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_detail(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#)
                .unwrap(),
            "manifest_unknown: manifest unknown"
        );
        assert_eq!(error_detail(r#"{"errors":[]}"#), None);
        assert_eq!(error_detail("not json"), None);
    }

    #[test]
    fn scopes() {
        assert_eq!(
            Scope::Push("a/b".into()).as_token_scope(),
            "repository:a/b:pull,push"
        );
        assert_eq!(
            Scope::Pull("x".into()).as_token_scope(),
            "repository:x:pull"
        );
        assert_eq!(Scope::Catalog.as_token_scope(), "registry:catalog:*");
    }
}
