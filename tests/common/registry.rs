//! A real registry for the tests: Debian's `docker-registry` (CNCF distribution 2.8) on a
//! free 127.0.0.1 port with a temp config and storage, without auth or with htpasswd basic
//! auth; and [`FaultProxy`], a small HTTP/1.1 proxy of our own in front of it that injects
//! faults (a status N times, `Retry-After`, a body cut after N bytes, a redirect of blob
//! GETs to another origin), logs every request, and can play a bearer-token server.
//!
//! Owns only its temp dirs and the processes it starts; both go away on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How the registry authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// htpasswd basic auth with one user.
    Htpasswd {
        user: String,
        password: String,
    },
    /// distribution's `auth: token` with a token server of our own ([`TokenServer`]):
    /// anyone may pull, `user` with `password` may also push.
    Token {
        user: String,
        password: String,
    },
}

/// A running `docker-registry`; stopped and deleted on drop.
pub struct Registry {
    child: Option<Child>,
    token_server: Option<TokenServer>,
    dir: tempfile::TempDir,
    pub port: u16,
    pub auth: Auth,
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("local addr").port()
}

/// Whether `docker-registry` is installed (the tests need it; .ci/run installs it).
pub fn available() -> Result<(), String> {
    if Path::new("/usr/bin/docker-registry").exists() {
        Ok(())
    } else {
        Err("docker-registry (apt-get install docker-registry)".into())
    }
}

impl Registry {
    /// Starts a registry; waits until `/v2/` answers.
    pub fn start(auth: Auth) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("camada-registry-")
            .tempdir()
            .expect("temp dir");
        let mut r = Registry {
            child: None,
            token_server: None,
            dir,
            port: free_port(),
            auth,
        };
        if let Auth::Token { user, password } = &r.auth {
            r.token_server = Some(TokenServer::start(r.dir.path(), user, password));
        }
        r.write_config();
        r.spawn();
        r
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry keeps its blobs and repositories.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The data file of a blob on the registry's disk (to tamper with it).
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{}\n",
            self.storage().display(),
            self.port
        );
        if let Auth::Htpasswd { user, password } = &self.auth {
            let pw = d.join("htpasswd");
            let st = Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(&pw)
                .args([user, password])
                .stderr(Stdio::null())
                .status()
                .expect("running htpasswd (apt-get install apache2-utils)");
            assert!(st.success(), "htpasswd failed");
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: camada-test\n    path: {}\n",
                pw.display()
            ));
        }
        if let Some(t) = &self.token_server {
            cfg.push_str(&format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: {SERVICE}\n    \
                 issuer: {ISSUER}\n    rootcertbundle: {}\n",
                t.addr,
                t.cert.display()
            ));
        }
        std::fs::write(d.join("config.yml"), cfg).expect("writing registry config");
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("registry.log")).expect("log file");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry (apt-get install docker-registry)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = http_status(&self.addr(), "/v2/")
                && (status == 200 || status == 401)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start; log:\n{}",
                std::fs::read_to_string(d.join("registry.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(30));
        }
    }

    /// Stops the registry (kill + wait); storage stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The status of `GET path` on `addr`, or None if nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A fault the proxy injects into the requests a rule matches.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` if given) instead of forwarding.
    Status { code: u16, retry_after: Option<u32> },
    /// Forward, but send only the first `bytes` of the body, then close.
    CutAfter { bytes: usize },
    /// Forward, send the first `bytes` of the body, then hang (until the client goes).
    StallAfter { bytes: usize },
    /// Answer 307 to `to` + the request's path and query.
    Redirect { to: String },
    /// Answer with this body (chunked: without a Content-Length).
    Body {
        status: u16,
        content_type: String,
        body: Vec<u8>,
        chunked: bool,
    },
}

/// A rule: requests whose method is `method` (or any, if empty) and whose path contains
/// `path` get `fault`, `times` times.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: String,
    pub path: String,
    pub fault: Fault,
    pub times: usize,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub range: Option<String>,
}

/// A bearer-token server played by the proxy: every request to the upstream needs
/// `Authorization: Bearer TOKEN`; `/token` hands TOKEN out (only to `creds`, when set).
#[derive(Debug, Clone)]
pub struct Bearer {
    pub token: String,
    pub creds: Option<(String, String)>,
}

#[derive(Default)]
struct ProxyState {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
    bearer: Option<Bearer>,
}

/// An HTTP proxy in front of `upstream` (one request per connection), on its own port.
pub struct FaultProxy {
    pub addr: String,
    state: Arc<Mutex<ProxyState>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on `host` (e.g. `127.0.0.1` or `localhost`) at a free port.
    pub fn start(host: &str, upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind(format!("{host}:0")).expect("proxy bind");
        let port = listener.local_addr().expect("addr").port();
        let addr = format!("{host}:{port}");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, up, me) = (
            state.clone(),
            stop.clone(),
            upstream.to_owned(),
            addr.clone(),
        );
        listener.set_nonblocking(true).expect("nonblocking");
        let thread = thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (st, up, me) = (st.clone(), up.clone(), me.clone());
                        thread::spawn(move || {
                            let _ = serve(conn, &st, &up, &me);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn add(&self, method: &str, path: &str, fault: Fault, times: usize) {
        self.lock().rules.push(Rule {
            method: method.into(),
            path: path.into(),
            fault,
            times,
        });
    }

    pub fn bearer(&self, b: Bearer) {
        self.lock().bearer = Some(b);
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    pub fn clear_seen(&self) {
        self.lock().seen.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProxyState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Req> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut req = Req {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; n];
        r.read_exact(&mut body)?;
        req.body = body;
    } else if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            req.body.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(req)
}

fn respond(conn: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &[u8]) {
    let mut out = format!(
        "HTTP/1.1 {status} Fault\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = conn.write_all(out.as_bytes());
    let _ = conn.write_all(body);
}

fn serve(
    mut conn: TcpStream,
    state: &Mutex<ProxyState>,
    upstream: &str,
    me: &str,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let req = read_request(&mut reader)?;
    let (fault, bearer) = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.seen.push(Seen {
            method: req.method.clone(),
            path: req.path.clone(),
            authorization: req.header("authorization").map(str::to_owned),
            range: req.header("range").map(str::to_owned),
        });
        let fault = st
            .rules
            .iter_mut()
            .find(|r| {
                r.times > 0
                    && (r.method.is_empty() || r.method == req.method)
                    && req.path.contains(&r.path)
            })
            .map(|r| {
                r.times -= 1;
                r.fault.clone()
            });
        (fault, st.bearer.clone())
    };
    if let Some(b) = &bearer {
        if req.path.starts_with("/token") {
            let ok = match &b.creds {
                None => true,
                Some((u, p)) => {
                    let want = format!("Basic {}", base64_encode(format!("{u}:{p}").as_bytes()));
                    req.header("authorization") == Some(want.as_str())
                }
            };
            if ok {
                let body = format!(r#"{{"access_token":"{}","expires_in":300}}"#, b.token);
                respond(
                    &mut conn,
                    200,
                    &[("Content-Type", "application/json".into())],
                    body.as_bytes(),
                );
            } else {
                respond(&mut conn, 401, &[], b"");
            }
            return Ok(());
        }
        if req.header("authorization") != Some(format!("Bearer {}", b.token).as_str()) {
            let chal = format!(
                r#"Bearer realm="http://{me}/token",service="camada-test",scope="repository:x:pull""#
            );
            respond(
                &mut conn,
                401,
                &[
                    ("WWW-Authenticate", chal),
                    ("Content-Type", "application/json".into()),
                ],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
            return Ok(());
        }
    }
    let mut cut = None;
    match fault {
        Some(Fault::Status { code, retry_after }) => {
            let mut h = Vec::new();
            if let Some(s) = retry_after {
                h.push(("Retry-After", s.to_string()));
            }
            respond(&mut conn, code, &h, b"");
            return Ok(());
        }
        Some(Fault::Redirect { to }) => {
            respond(
                &mut conn,
                307,
                &[("Location", format!("{to}{}", req.path))],
                b"",
            );
            return Ok(());
        }
        Some(Fault::Body {
            status,
            content_type,
            body,
            chunked,
        }) => {
            if chunked {
                let head = format!(
                    "HTTP/1.1 {status} OK\r\nConnection: close\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
                );
                conn.write_all(head.as_bytes())?;
                for c in body.chunks(64 * 1024) {
                    conn.write_all(format!("{:x}\r\n", c.len()).as_bytes())?;
                    conn.write_all(c)?;
                    conn.write_all(b"\r\n")?;
                }
                conn.write_all(b"0\r\n\r\n")?;
            } else {
                respond(&mut conn, status, &[("Content-Type", content_type)], &body);
            }
            return Ok(());
        }
        Some(Fault::CutAfter { bytes }) => cut = Some((bytes, false)),
        Some(Fault::StallAfter { bytes }) => cut = Some((bytes, true)),
        None => {}
    }
    let mut up = TcpStream::connect(upstream)?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        let lk = k.to_ascii_lowercase();
        if lk == "connection" || lk == "transfer-encoding" || lk == "content-length" {
            continue;
        }
        // keep Host: the registry builds Location URLs from it, so they point back here
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let has_body = !req.body.is_empty() || matches!(req.method.as_str(), "PUT" | "PATCH" | "POST");
    if has_body {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(&req.body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    match cut {
        None => conn.write_all(&answer)?,
        Some((n, stall)) => {
            let body_start = answer
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(answer.len(), |i| i + 4);
            let end = (body_start + n).min(answer.len());
            conn.write_all(&answer[..end])?;
            conn.flush()?;
            if stall {
                // hold the connection open until the client goes away (or 60 s)
                let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
                let mut sink = [0u8; 1];
                let _ = conn.read(&mut sink);
            }
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
    Ok(())
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const SERVICE: &str = "camada-test-registry";
const ISSUER: &str = "camada-test-issuer";

/// A token server for distribution's `auth: token`: RS256 JWTs signed (with the openssl
/// command) by a self-signed test certificate that the registry trusts (`x5c` header).
pub struct TokenServer {
    pub addr: String,
    cert: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let st = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=camada-token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .expect("running openssl");
        assert!(st.success(), "openssl req failed");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("openssl x509");
        assert!(der.status.success());
        let x5c = base64_encode(&der.stdout);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = format!("127.0.0.1:{}", listener.local_addr().expect("addr").port());
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let sp = stop.clone();
        let basic = format!(
            "Basic {}",
            base64_encode(format!("{user}:{password}").as_bytes())
        );
        let thread = thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = serve_token(conn, &key, &x5c, &basic);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TokenServer {
            addr,
            cert,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn b64url(data: &[u8]) -> String {
    base64_encode(data)
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_owned()
}

fn serve_token(conn: TcpStream, key: &Path, x5c: &str, basic: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let req = read_request(&mut reader)?;
    let mut conn = conn;
    let authed = match req.header("authorization") {
        None => false,
        Some(a) if a == basic => true,
        Some(_) => {
            respond(&mut conn, 401, &[], b"");
            return Ok(());
        }
    };
    let query = req.path.split_once('?').map_or("", |(_, q)| q);
    let mut access = Vec::new();
    for pair in query.split('&') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        if k != "scope" {
            continue;
        }
        let scope = percent_decode(v);
        // type:name:actions (the name may hold a port colon: split from both ends)
        let Some((typ, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|a| authed || *a == "pull")
            .collect();
        access.push(serde_json::json!({"type": typ, "name": name, "actions": granted}));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": if authed { "user" } else { "" }, "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("stdin"))?
        .write_all(signing_input.as_bytes())?;
    let out = child.wait_with_output()?;
    let jwt = format!("{signing_input}.{}", b64url(&out.stdout));
    let body =
        serde_json::json!({"token": jwt, "expires_in": 300, "issued_at": "2026-01-01T00:00:00Z"});
    respond(
        &mut conn,
        200,
        &[("Content-Type", "application/json".into())],
        body.to_string().as_bytes(),
    );
    Ok(())
}

// ---- test images, made here ----

use camada::digest::Digest;
use camada::registry::{
    BlobRef, BlobSource, Client, ClientConfig, Credentials, PushBlob, PushOutcome, Scope,
    push_blobs,
};
use std::collections::HashMap;
use std::io;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A small image made here: blobs by digest, the manifest bytes.
pub struct Image {
    pub blobs: HashMap<Digest, Vec<u8>>,
    pub config: BlobRef,
    pub layers: Vec<BlobRef>,
    pub manifest: Vec<u8>,
}

pub fn pseudo_random(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn gz_layer(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        t.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap()
}

/// Two layers: a big one (streamed PATCH on push, several reads on pull), a small one.
pub fn make_image(seed: u64) -> Image {
    let big = gz_layer(&[("big.bin", pseudo_random(seed, 3 << 20))]);
    let small = gz_layer(&[("etc/hello", format!("hello {seed}\n").into_bytes())]);
    let mut blobs = HashMap::new();
    let mut layers = Vec::new();
    for l in [big, small] {
        let d = Digest::of(&l);
        layers.push(BlobRef {
            digest: d.clone(),
            size: l.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        });
        blobs.insert(d, l);
    }
    let diff_ids: Vec<String> = blobs_in_order(&blobs, &layers)
        .iter()
        .map(|b| {
            let mut d = flate2::read::GzDecoder::new(b.as_slice());
            let mut raw = Vec::new();
            d.read_to_end(&mut raw).unwrap();
            Digest::of(&raw).to_string()
        })
        .collect();
    let config = serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cd = Digest::of(&config);
    let config_ref = BlobRef {
        digest: cd.clone(),
        size: config.len() as u64,
        media_type: "application/vnd.oci.image.config.v1+json".into(),
    };
    blobs.insert(cd, config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_ref.media_type, "digest": config_ref.digest.to_string(), "size": config_ref.size},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size})).collect::<Vec<_>>(),
    });
    Image {
        blobs,
        config: config_ref,
        layers,
        manifest: serde_json::to_vec(&manifest).unwrap(),
    }
}

pub fn blobs_in_order<'a>(
    blobs: &'a HashMap<Digest, Vec<u8>>,
    refs: &[BlobRef],
) -> Vec<&'a Vec<u8>> {
    refs.iter().map(|r| &blobs[&r.digest]).collect()
}

impl Image {
    pub fn all(&self) -> Vec<BlobRef> {
        let mut v = self.layers.clone();
        v.push(self.config.clone());
        v
    }
    pub fn push_list(&self, mount_from: &[&str]) -> Vec<PushBlob> {
        self.all()
            .into_iter()
            .map(|b| PushBlob {
                digest: b.digest,
                size: b.size,
                mount_from: mount_from.iter().map(|s| s.to_string()).collect(),
            })
            .collect()
    }
}

impl BlobSource for Image {
    fn open(&self, digest: &Digest) -> io::Result<Box<dyn Read + Send>> {
        let b = self
            .blobs
            .get(digest)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, digest.to_string()))?;
        Ok(Box::new(io::Cursor::new(b.clone())))
    }
}

/// Pushes `img` as `repo:tag` through `c`: its blobs (3 at a time), then its manifest.
/// Returns what became of each blob.
pub fn push_image(c: &Client, repo: &str, tag: &str, img: &Image) -> Vec<PushOutcome> {
    let out = push_blobs(c, repo, &img.push_list(&[]), img, 3, &()).unwrap();
    c.put_manifest(repo, tag, OCI_MANIFEST, &img.manifest)
        .unwrap();
    out
}

/// Puts `img` on the registry at `addr` (plain HTTP) as `repo:tag`, logged in with
/// `credentials` when given.
pub fn upload(addr: &str, repo: &str, tag: &str, img: &Image, credentials: Option<Credentials>) {
    let mut cfg = ClientConfig::new(addr, addr, true, true);
    cfg.credentials = credentials;
    let c = Client::connect(cfg, &[Scope::Push(repo.into())]).unwrap();
    push_image(&c, repo, tag, img);
}

/// Writes `img` as an OCI image layout at `dir` (what skopeo and umoci read), tagged `tag`.
pub fn write_layout(img: &Image, dir: &Path, tag: &str) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let md = Digest::of(&img.manifest);
    for (dg, b) in img.blobs.iter().chain([(&md, &img.manifest)]) {
        std::fs::write(dir.join("blobs/sha256").join(dg.hex()), b).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": md.to_string(), "size": img.manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Puts `img` on a registry as a peer does: written as an OCI layout in a temp dir, then
/// `skopeo copy oci:LAYOUT docker://DEST` over plain HTTP (`dest`: `HOST:PORT/REPO:TAG`).
pub fn skopeo_push(img: &Image, dest: &str) {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("oci");
    write_layout(img, &layout, "latest");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{dest}"),
    ]);
}

/// `skopeo ARGS...`, asserting success; its stdout.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let o = Command::new("skopeo")
        .args(args)
        .output()
        .expect("running skopeo");
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}
