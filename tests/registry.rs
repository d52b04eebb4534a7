//! The distribution client against a real registry (Debian's docker-registry), real peers
//! (skopeo, umoci) and real faults (a proxy of our own in front of the registry).
//! These drive `camada::registry` directly, through a file sink that does what the store
//! does (append to a partial blob, verify, rename); the CLI-level tests are in
//! tests/registry_cli.rs.

#[path = "common/registry.rs"]
mod reg;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use camada::digest::{Digest, Hasher};
use camada::registry::transport::RetryPolicy;
use camada::registry::{
    BlobRef, BlobSink, Client, ClientConfig, Credentials, LayerEvent, Progress, PushOutcome, Scope,
    pull_blobs, push_blobs,
};
use reg::{
    Auth, Bearer, Fault, FaultProxy, Image, OCI_MANIFEST, Registry, make_image, pseudo_random,
};

/// What the store does for a pull: append to `partial/<hex>`, verify the whole blob,
/// rename into `blobs/<hex>`; a mismatch drops the partial.
struct FileSink {
    dir: PathBuf,
}

impl FileSink {
    fn new(dir: &Path) -> FileSink {
        fs::create_dir_all(dir.join("partial")).unwrap();
        fs::create_dir_all(dir.join("blobs")).unwrap();
        FileSink {
            dir: dir.to_owned(),
        }
    }
    fn partial(&self, d: &Digest) -> PathBuf {
        self.dir.join("partial").join(d.hex())
    }
    fn blob(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs").join(d.hex())
    }
    fn names(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl BlobSink for FileSink {
    fn has(&self, blob: &BlobRef) -> bool {
        self.blob(&blob.digest).exists()
    }
    fn kept(&self, blob: &BlobRef) -> u64 {
        fs::metadata(self.partial(&blob.digest)).map_or(0, |m| m.len())
    }
    fn receive(
        &self,
        blob: &BlobRef,
        offset: u64,
        body: &mut dyn Read,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let p = self.partial(&blob.digest);
        let mut f = fs::OpenOptions::new().create(true).append(true).open(&p)?;
        if offset == 0 {
            f.set_len(0)?;
        }
        assert_eq!(f.metadata()?.len(), offset, "offset is what was kept");
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = body.read(&mut buf)?;
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n])?;
        }
        f.sync_all()?;
        let mut h = Hasher::new();
        h.update(&fs::read(&p)?);
        let got = h.finish();
        if got != blob.digest {
            fs::remove_file(&p)?;
            return Err(format!("digest mismatch: got {got}").into());
        }
        fs::rename(&p, self.blob(&blob.digest))?;
        Ok(())
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<(Digest, LayerEvent)>>);

impl Progress for Events {
    fn layer(&self, d: &Digest, e: LayerEvent) {
        if !matches!(e, LayerEvent::Downloading { .. }) {
            self.0.lock().unwrap().push((d.clone(), e));
        }
    }
}

impl Events {
    fn has(&self, d: &Digest, e: LayerEvent) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|(x, y)| x == d && *y == e)
    }
}

fn config(addr: &str) -> ClientConfig {
    let mut c = ClientConfig::new(addr, addr, true, true);
    c.retry = RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(20),
        max_wait: Duration::from_secs(2),
    };
    c
}

fn client(addr: &str, scopes: &[Scope]) -> Client {
    Client::connect(config(addr), scopes).unwrap()
}

fn push(addr: &str, repo: &str, tag: &str, img: &Image) -> Vec<PushOutcome> {
    reg::push_image(&client(addr, &[Scope::Push(repo.into())]), repo, tag, img)
}

fn pull_into(
    c: &Client,
    repo: &str,
    img: &Image,
    sink: &FileSink,
    ev: &dyn Progress,
) -> Result<(), camada::registry::RegistryError> {
    pull_blobs(c, repo, &img.all(), sink, 3, ev, &AtomicBool::new(false))
}

fn assert_pulled(sink: &FileSink, img: &Image) {
    for b in img.all() {
        assert_eq!(
            fs::read(sink.blob(&b.digest)).unwrap(),
            img.blobs[&b.digest]
        );
    }
    assert!(sink.names("partial").is_empty());
}

fn skopeo_out(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .args(args)
        .output()
        .expect("running skopeo")
}

#[test]
fn push_is_read_by_skopeo_and_unpacked_by_umoci() {
    let r = Registry::start(Auth::None);
    let img = make_image(1);
    let out = push(&r.addr(), "camada/app", "v1", &img);
    assert_eq!(out, vec![PushOutcome::Uploaded; 3]);
    let url = format!("docker://{}/camada/app:v1", r.addr());
    let o = skopeo_out(&["inspect", "--tls-verify=false", "--raw", &url]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, img.manifest);
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("oci");
    let o = skopeo_out(&[
        "copy",
        "--src-tls-verify=false",
        &url,
        &format!("oci:{}:v1", layout.display()),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bundle = d.path().join("bundle");
    let o = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/etc/hello")).unwrap(),
        "hello 1\n"
    );
    assert_eq!(
        fs::read(bundle.join("rootfs/big.bin")).unwrap(),
        pseudo_random(1, 3 << 20)
    );
}

#[test]
fn skopeo_push_then_pull_by_tag_and_digest() {
    let r = Registry::start(Auth::None);
    let img = make_image(2);
    // pushed by skopeo from an OCI layout of our image
    reg::skopeo_push(&img, &format!("{}/peer/img:v2", r.addr()));
    let md = Digest::of(&img.manifest);

    let c = client(&r.addr(), &[Scope::Pull("peer/img".into())]);
    let m = c.get_manifest("peer/img", "v2", "peer/img:v2").unwrap();
    assert_eq!(m.digest, md);
    assert_eq!(m.media_type.as_deref(), Some(OCI_MANIFEST));
    let by_digest = c
        .get_manifest("peer/img", &md.to_string(), "peer/img@..")
        .unwrap();
    assert_eq!(by_digest.bytes, img.manifest);
    let sd = tempfile::tempdir().unwrap();
    let sink = FileSink::new(sd.path());
    let ev = Events::default();
    pull_into(&c, "peer/img", &img, &sink, &ev).unwrap();
    assert_pulled(&sink, &img);
    // again: everything is already there
    let ev = Events::default();
    pull_into(&c, "peer/img", &img, &sink, &ev).unwrap();
    for b in img.all() {
        assert!(ev.has(&b.digest, LayerEvent::AlreadyExists));
    }
}

#[test]
fn repush_sends_only_heads_and_mount_falls_back() {
    let r = Registry::start(Auth::None);
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    let img = make_image(3);
    push(&p.addr, "one/app", "v1", &img);
    p.clear_seen();
    let c = client(&p.addr, &[Scope::Push("one/app".into())]);
    let out = push_blobs(&c, "one/app", &img.push_list(&[]), &img, 3, &()).unwrap();
    assert_eq!(out, vec![PushOutcome::Existed; 3]);
    assert_eq!(
        c.manifest_digest("one/app", "v1").unwrap(),
        Some(Digest::of(&img.manifest))
    );
    let methods: Vec<String> = p
        .seen()
        .into_iter()
        .filter(|s| s.path != "/v2/")
        .map(|s| s.method)
        .collect();
    assert!(methods.iter().all(|m| m == "HEAD"), "{methods:?}");
    assert_eq!(methods.len(), 4);

    // cross-repository mount: known in one/app
    let c2 = client(
        &p.addr,
        &[Scope::Push("two/app".into()), Scope::Pull("one/app".into())],
    );
    let out = push_blobs(&c2, "two/app", &img.push_list(&["one/app"]), &img, 3, &()).unwrap();
    assert_eq!(out, vec![PushOutcome::MountedFrom("one/app".into()); 3]);
    // a mount from a repository without the blob: the registry opens an upload instead
    let img4 = make_image(4);
    let c3 = client(&p.addr, &[Scope::Push("three/app".into())]);
    let out = push_blobs(
        &c3,
        "three/app",
        &img4.push_list(&["one/app"]),
        &img4,
        3,
        &(),
    )
    .unwrap();
    assert_eq!(out, vec![PushOutcome::Uploaded; 3]);
    c3.put_manifest("three/app", "v1", OCI_MANIFEST, &img4.manifest)
        .unwrap();
    let o = skopeo_out(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/three/app:v1", r.addr()),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn missing_tag_unreachable_registry_and_big_manifest() {
    let r = Registry::start(Auth::None);
    let c = client(&r.addr(), &[Scope::Pull("x/y".into())]);
    let e = c
        .get_manifest("x/y", "nosuch", "127.0.0.1:1/x/y:nosuch")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "manifest for 127.0.0.1:1/x/y:nosuch not found"
    );

    let port = reg::free_port();
    let e = Client::connect(config(&format!("127.0.0.1:{port}")), &[])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("connection refused") && e.contains(&port.to_string()),
        "{e}"
    );

    // a manifest over 4 MiB, served by the proxy in place of the registry's answer
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    let big = format!(r#"{{"schemaVersion":2,"x":"{}"}}"#, "a".repeat(4 << 20));
    p.add(
        "GET",
        "/manifests/huge",
        Fault::Body {
            status: 200,
            content_type: OCI_MANIFEST.into(),
            body: big.into_bytes(),
            chunked: false,
        },
        1,
    );
    let c = client(&p.addr, &[]);
    let e = c
        .get_manifest("x/y", "huge", "x/y:huge")
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than 4194304 bytes"), "{e}");
    // the same without Content-Length: counted while read
    let big = format!(r#"{{"schemaVersion":2,"x":"{}"}}"#, "a".repeat(4 << 20));
    p.add(
        "GET",
        "/manifests/huge2",
        Fault::Body {
            status: 200,
            content_type: OCI_MANIFEST.into(),
            body: big.into_bytes(),
            chunked: true,
        },
        1,
    );
    let e = c
        .get_manifest("x/y", "huge2", "x/y:huge2")
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than 4194304 bytes"), "{e}");
}

#[test]
fn basic_auth_login_and_unauthorized() {
    let r = Registry::start(Auth::Htpasswd {
        user: "alice".into(),
        password: "s3cret".into(),
    });
    let addr = r.addr();
    let img = make_image(5);
    // no credentials
    let c = client(&addr, &[Scope::Pull("priv/app".into())]);
    let e = c
        .get_manifest("priv/app", "v1", "x")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!("pulling {addr}/priv/app: unauthorized: run camada login {addr}")
    );
    // wrong password
    let mut cfg = config(&addr);
    cfg.credentials = Some(Credentials {
        username: "alice".into(),
        password: "nope".into(),
    });
    let c = Client::connect(cfg, &[]).unwrap();
    assert_eq!(
        c.verify_login().unwrap_err().to_string(),
        format!("login to {addr} failed: unauthorized")
    );
    // right one
    let mut cfg = config(&addr);
    cfg.credentials = Some(Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
    });
    let c = Client::connect(cfg, &[Scope::Push("priv/app".into())]).unwrap();
    c.verify_login().unwrap();
    reg::push_image(&c, "priv/app", "v1", &img);
    let sd = tempfile::tempdir().unwrap();
    let sink = FileSink::new(sd.path());
    pull_into(&c, "priv/app", &img, &sink, &()).unwrap();
    assert_pulled(&sink, &img);
}

#[test]
fn bearer_tokens_anonymous_and_with_credentials_and_redirect_drops_auth() {
    let r = Registry::start(Auth::None);
    let img = make_image(6);
    push(&r.addr(), "tok/app", "v1", &img);
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    p.bearer(Bearer {
        token: "t0k".into(),
        creds: None,
    });
    // anonymous token
    let c = client(&p.addr, &[Scope::Pull("tok/app".into())]);
    let m = c.get_manifest("tok/app", "v1", "tok/app:v1").unwrap();
    assert_eq!(m.bytes, img.manifest);
    let token_req = p
        .seen()
        .into_iter()
        .find(|s| s.path.starts_with("/token"))
        .unwrap();
    assert!(
        token_req
            .path
            .contains("scope=repository%3Atok%2Fapp%3Apull"),
        "{}",
        token_req.path
    );
    assert!(token_req.path.contains("service=camada-test"));
    assert!(token_req.authorization.is_none());

    // blobs redirected to another origin (a "CDN"): no Authorization goes there
    let cdn = FaultProxy::start("localhost", &r.addr());
    p.add(
        "GET",
        "/blobs/",
        Fault::Redirect {
            to: format!("http://{}", cdn.addr),
        },
        100,
    );
    let sd = tempfile::tempdir().unwrap();
    let sink = FileSink::new(sd.path());
    pull_into(&c, "tok/app", &img, &sink, &()).unwrap();
    assert_pulled(&sink, &img);
    let at_cdn = cdn.seen();
    assert_eq!(at_cdn.len(), 3);
    assert!(
        at_cdn.iter().all(|s| s.authorization.is_none()),
        "{at_cdn:?}"
    );
    let at_reg: Vec<_> = p
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("/blobs/"))
        .collect();
    assert!(
        at_reg
            .iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer t0k"))
    );

    // a token server that wants credentials
    let p2 = FaultProxy::start("127.0.0.1", &r.addr());
    p2.bearer(Bearer {
        token: "t1".into(),
        creds: Some(("bob".into(), "pw".into())),
    });
    let e = Client::connect(config(&p2.addr), &[])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("getting a token") && e.contains("unauthorized"),
        "{e}"
    );
    let mut cfg = config(&p2.addr);
    cfg.credentials = Some(Credentials {
        username: "bob".into(),
        password: "bad".into(),
    });
    let e = Client::connect(cfg, &[]).err().unwrap().to_string();
    assert_eq!(e, format!("login to {} failed: unauthorized", p2.addr));
    let mut cfg = config(&p2.addr);
    cfg.credentials = Some(Credentials {
        username: "bob".into(),
        password: "pw".into(),
    });
    let c = Client::connect(cfg, &[Scope::Pull("tok/app".into())]).unwrap();
    c.verify_login().unwrap();
    assert_eq!(
        c.get_manifest("tok/app", "v1", "x").unwrap().bytes,
        img.manifest
    );
}

#[test]
fn server_errors_and_429_are_retried() {
    let r = Registry::start(Auth::None);
    let img = make_image(7);
    push(&r.addr(), "flaky/app", "v1", &img);
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    p.add(
        "GET",
        "/manifests/v1",
        Fault::Status {
            code: 500,
            retry_after: None,
        },
        2,
    );
    p.add(
        "GET",
        "/blobs/",
        Fault::Status {
            code: 429,
            retry_after: Some(1),
        },
        1,
    );
    let c = client(&p.addr, &[]);
    let m = c.get_manifest("flaky/app", "v1", "flaky/app:v1").unwrap();
    assert_eq!(m.bytes, img.manifest);
    let started = std::time::Instant::now();
    let sd = tempfile::tempdir().unwrap();
    let sink = FileSink::new(sd.path());
    pull_into(&c, "flaky/app", &img, &sink, &()).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was honoured"
    );
    assert_pulled(&sink, &img);
    let manifest_gets = p
        .seen()
        .iter()
        .filter(|s| s.path.ends_with("/manifests/v1"))
        .count();
    assert_eq!(manifest_gets, 3);

    // bounded: a registry that keeps failing gives up with the status
    p.add(
        "GET",
        "/manifests/v1",
        Fault::Status {
            code: 503,
            retry_after: None,
        },
        100,
    );
    let e = c
        .get_manifest("flaky/app", "v1", "flaky/app:v1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("503"), "{e}");
    let gets = p
        .seen()
        .iter()
        .filter(|s| s.path.ends_with("/manifests/v1"))
        .count();
    assert_eq!(gets, 3 + 4);
}

#[test]
fn a_cut_download_resumes_with_range() {
    let r = Registry::start(Auth::None);
    let img = make_image(8);
    push(&r.addr(), "cut/app", "v1", &img);
    let big = img.layers[0].clone();
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    // within one pull: cut, then the retry resumes where the bytes stopped
    p.add(
        "GET",
        &format!("/blobs/{}", big.digest),
        Fault::CutAfter { bytes: 1_000_000 },
        1,
    );
    let c = client(&p.addr, &[]);
    let sd = tempfile::tempdir().unwrap();
    let sink = FileSink::new(sd.path());
    let ev = Events::default();
    pull_into(&c, "cut/app", &img, &sink, &ev).unwrap();
    assert_pulled(&sink, &img);
    let ranges: Vec<_> = p.seen().into_iter().filter_map(|s| s.range).collect();
    assert_eq!(ranges, vec!["bytes=1000000-".to_string()]);
    assert!(ev.has(&big.digest, LayerEvent::Resuming(1_000_000)));

    // across pulls: no retries left, the error names the layer, the next pull resumes
    let mut cfg = config(&p.addr);
    cfg.retry.attempts = 1;
    let c1 = Client::connect(cfg, &[]).unwrap();
    let sd = tempfile::tempdir().unwrap();
    let sink = FileSink::new(sd.path());
    p.clear_seen();
    p.add(
        "GET",
        &format!("/blobs/{}", big.digest),
        Fault::CutAfter { bytes: 700_000 },
        1,
    );
    let e = pull_into(&c1, "cut/app", &img, &sink, &())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&big.digest.to_string()) && e.contains("interrupted"),
        "{e}"
    );
    assert_eq!(
        fs::metadata(sink.partial(&big.digest)).unwrap().len(),
        700_000
    );
    pull_into(&c1, "cut/app", &img, &sink, &()).unwrap();
    assert_pulled(&sink, &img);
    assert!(
        p.seen()
            .iter()
            .any(|s| s.range.as_deref() == Some("bytes=700000-"))
    );
}

#[test]
fn registry_stopped_mid_pull_then_resumed() {
    let mut r = Registry::start(Auth::None);
    let img = make_image(9);
    push(&r.addr(), "stop/app", "v1", &img);
    let big = img.layers[0].clone();
    let sd = tempfile::tempdir().unwrap();
    let sink = FileSink::new(sd.path());
    // keep a partial as a kill -9 of an earlier pull would
    fs::write(
        sink.partial(&big.digest),
        &img.blobs[&big.digest][..123_456],
    )
    .unwrap();
    r.stop();
    let c = Client::connect(config(&r.addr()), &[]);
    assert!(c.is_err());
    r.restart();
    let c = client(&r.addr(), &[]);
    let ev = Events::default();
    pull_into(&c, "stop/app", &img, &sink, &ev).unwrap();
    assert!(ev.has(&big.digest, LayerEvent::Resuming(123_456)));
    assert_pulled(&sink, &img);
}

#[test]
fn a_tampered_blob_is_refused_and_nothing_kept() {
    let r = Registry::start(Auth::None);
    let img = make_image(10);
    push(&r.addr(), "bad/app", "v1", &img);
    let small = img.layers[1].clone();
    let path = r.blob_path(small.digest.hex());
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let c = client(&r.addr(), &[]);
    let sd = tempfile::tempdir().unwrap();
    let sink = FileSink::new(sd.path());
    let e = pull_into(&c, "bad/app", &img, &sink, &())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&small.digest.to_string()) && e.contains("digest mismatch"),
        "{e}"
    );
    assert!(!sink.blob(&small.digest).exists());
    assert!(sink.names("partial").is_empty());
}

#[test]
fn catalog_follows_link_pagination() {
    let r = Registry::start(Auth::None);
    let img = make_image(11);
    for repo in ["aa/web", "bb/web", "cc/db", "dd/web", "ee/cache"] {
        push(&r.addr(), repo, "v1", &img);
    }
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    let c = client(&p.addr, &[Scope::Catalog]);
    let rows = camada::registry::catalog(&c, "web", 2, 100).unwrap();
    let names: Vec<_> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["aa/web", "bb/web", "dd/web"]);
    let pages = p
        .seen()
        .iter()
        .filter(|s| s.path.starts_with("/v2/_catalog"))
        .count();
    assert_eq!(pages, 3);
    let rows = camada::registry::catalog(&c, "", 2, 4).unwrap();
    assert_eq!(rows.len(), 4);
}

#[test]
fn token_auth_of_the_real_registry() {
    let r = Registry::start(Auth::Token {
        user: "carol".into(),
        password: "tokpw".into(),
    });
    let addr = r.addr();
    let img = make_image(12);
    // anonymous: a pull token, so pushing is unauthorized
    let c = client(&addr, &[Scope::Push("tk/app".into())]);
    let e = push_blobs(&c, "tk/app", &img.push_list(&[]), &img, 3, &())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!("pushing to {addr}/tk/app: unauthorized: run camada login {addr}")
    );
    // wrong password: the token server refuses
    let mut cfg = config(&addr);
    cfg.credentials = Some(Credentials {
        username: "carol".into(),
        password: "x".into(),
    });
    let e = Client::connect(cfg, &[]).err().unwrap().to_string();
    assert_eq!(e, format!("login to {addr} failed: unauthorized"));
    // with credentials: push, then an anonymous pull
    let mut cfg = config(&addr);
    cfg.credentials = Some(Credentials {
        username: "carol".into(),
        password: "tokpw".into(),
    });
    let c = Client::connect(cfg, &[Scope::Push("tk/app".into())]).unwrap();
    c.verify_login().unwrap();
    reg::push_image(&c, "tk/app", "v1", &img);
    let anon = client(&addr, &[Scope::Pull("tk/app".into())]);
    let m = anon.get_manifest("tk/app", "v1", "tk/app:v1").unwrap();
    assert_eq!(m.bytes, img.manifest);
    let sd = tempfile::tempdir().unwrap();
    let sink = FileSink::new(sd.path());
    pull_into(&anon, "tk/app", &img, &sink, &()).unwrap();
    assert_pulled(&sink, &img);
}
