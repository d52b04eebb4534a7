//! `camada pull/push/login/logout/search` through the binary, against a real registry:
//! docker's output, the one-line errors, kill -9 in the middle of a pull and the resume,
//! and a pull by an unprivileged user.

#[path = "common/registry.rs"]
mod reg;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use camada::digest::Digest;
use camada::registry::{Client, ClientConfig, Scope, push_blobs};
use reg::{Auth, Fault, FaultProxy, Image, OCI_MANIFEST, Registry, make_image};

const BIN: &str = env!("CARGO_BIN_EXE_camada");

/// A throwaway store, config and HOME for the binary.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        let d = self.path();
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", d.join("home"))
            .env("CAMADA_ROOT", d.join("root"))
            .env("CAMADA_RUNROOT", d.join("run"))
            .env("CAMADA_CONFIG", d.join("config"))
            .stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "camada {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.status.code(), Some(125), "camada {args:?} should fail");
        let e = String::from_utf8(o.stderr).unwrap();
        assert_eq!(e.lines().count(), 1, "one error line: {e}");
        e.trim_end().to_owned()
    }
    fn auth_json(&self) -> PathBuf {
        self.path().join("config/auth.json")
    }
}

fn upload(addr: &str, repo: &str, tag: &str, img: &Image) {
    let c = Client::connect(
        ClientConfig::new(addr, addr, true, true),
        &[Scope::Push(repo.into())],
    )
    .unwrap();
    push_blobs(&c, repo, &img.push_list(&[]), img, 3, &()).unwrap();
    c.put_manifest(repo, tag, OCI_MANIFEST, &img.manifest)
        .unwrap();
}

#[test]
fn pull_images_push_as_docker_prints_them() {
    let r = Registry::start(Auth::None);
    let img = make_image(31);
    let d = tempfile::tempdir().unwrap();
    reg::write_layout(&img, &d.path().join("oci"), "latest");
    reg::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", d.path().join("oci").display()),
        &format!("docker://{}/peer/app:latest", r.addr()),
    ]);
    let e = Env::new();
    let name = format!("{}/peer/app", r.addr());
    let out = e.ok(&["pull", &name]);
    let digest = Digest::of(&img.manifest);
    let short = |d: &Digest| d.short().to_owned();
    let big = short(&img.layers[0].digest);
    let small = short(&img.layers[1].digest);
    assert!(
        out.starts_with("Using default tag: latest\nlatest: Pulling from peer/app\n"),
        "{out}"
    );
    for l in [&big, &small] {
        assert!(out.contains(&format!("{l}: Pulling fs layer\n")), "{out}");
        assert!(out.contains(&format!("{l}: Pull complete\n")), "{out}");
    }
    assert!(
        out.ends_with(&format!(
            "Digest: {digest}\nStatus: Downloaded newer image for {name}:latest\n{name}:latest\n"
        )),
        "{out}"
    );
    let images = e.ok(&["images"]);
    let id = img.config.digest.short().to_owned();
    assert!(
        images
            .lines()
            .any(|l| l.starts_with(&name) && l.contains("latest") && l.contains(&id)),
        "{images}"
    );
    let again = e.ok(&["image", "pull", &format!("{name}:latest")]);
    assert!(again.contains(&format!("{big}: Already exists")), "{again}");
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}:latest")),
        "{again}"
    );
    assert_eq!(e.ok(&["pull", "-q", &name]), format!("{name}:latest\n"));

    // push under another name of the same registry: mounted, then already there
    let dst = format!("{}/mine/app:v1", r.addr());
    e.ok(&["tag", &name, &dst]);
    let out = e.ok(&["push", &dst]);
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}/mine/app]\n",
            r.addr()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("{big}: Mounted from peer/app")),
        "{out}"
    );
    assert!(!out.contains(&id), "no line for the config: {out}");
    assert!(
        out.ends_with(&format!(
            "v1: digest: {digest} size: {}\n",
            img.manifest.len()
        )),
        "{out}"
    );
    let out = e.ok(&["push", &dst]);
    assert!(
        out.contains(&format!("{big}: Layer already exists")),
        "{out}"
    );
    // the peer reads it
    let raw = reg::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{dst}"),
    ]);
    assert_eq!(raw, img.manifest);
    assert_eq!(e.ok(&["push", "-q", &dst]), format!("{dst}\n"));
}

#[test]
fn errors_are_one_line() {
    let r = Registry::start(Auth::None);
    let e = Env::new();
    let err = e.fails(&["pull", &format!("{}/no/such:tag", r.addr())]);
    assert_eq!(
        err,
        format!("Error: manifest for {}/no/such:tag not found", r.addr())
    );
    let port = reg::free_port();
    let err = e.fails(&["pull", &format!("127.0.0.1:{port}/x")]);
    assert!(
        err.starts_with("Error: connecting to http://127.0.0.1:")
            && err.contains("connection refused"),
        "{err}"
    );
    let err = e.fails(&["push", &format!("{}/not/here:v1", r.addr())]);
    assert!(err.contains("No such image"), "{err}");
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    let img = make_image(32);
    upload(&r.addr(), "big/app", "v1", &img);
    let big = format!(r#"{{"schemaVersion":2,"pad":"{}"}}"#, "x".repeat(5 << 20));
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
    let err = e.fails(&["pull", &format!("{}/big/app:huge", p.addr)]);
    assert_eq!(
        err,
        format!(
            "Error: manifest for {}/big/app:huge is larger than 4194304 bytes; refused",
            p.addr
        )
    );
}

#[test]
fn login_logout_and_a_private_repository() {
    let r = Registry::start(Auth::Htpasswd {
        user: "erin".into(),
        password: "pw2".into(),
    });
    let addr = r.addr();
    let e = Env::new();
    let err = e.fails(&["pull", &format!("{addr}/priv/app:v1")]);
    assert_eq!(
        err,
        format!("Error: pulling {addr}/priv/app: unauthorized: run camada login {addr}")
    );
    let o = e
        .cmd(&["login", "-u", "erin", "--password-stdin", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"wrong\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim_end(),
        format!("Error: login to {addr} failed: unauthorized")
    );
    assert!(!e.auth_json().exists(), "nothing saved");
    let o = e
        .cmd(&["login", "-u", "erin", "--password-stdin", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"pw2\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Login Succeeded\n");
    let mode = fs::metadata(e.auth_json()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // push an image there with the saved login, then pull it
    let img = make_image(33);
    let mut cfg = ClientConfig::new(&addr, &addr, true, true);
    cfg.credentials = Some(camada::registry::Credentials {
        username: "erin".into(),
        password: "pw2".into(),
    });
    let c = Client::connect(cfg, &[Scope::Push("priv/app".into())]).unwrap();
    push_blobs(&c, "priv/app", &img.push_list(&[]), &img, 3, &()).unwrap();
    c.put_manifest("priv/app", "v1", OCI_MANIFEST, &img.manifest)
        .unwrap();
    e.ok(&["pull", "-q", &format!("{addr}/priv/app:v1")]);
    assert_eq!(
        e.ok(&["logout", &addr]),
        format!("Removing login credentials for {addr}\n")
    );
    assert_eq!(
        e.ok(&["logout", &addr]),
        format!("Not logged in to {addr}\n")
    );
    let err = e.fails(&["pull", &format!("{addr}/priv/app:v1")]);
    assert!(err.contains("unauthorized: run camada login"), "{err}");
    // docker's config.json is read too
    let home_docker = e.path().join("home/.docker");
    fs::create_dir_all(&home_docker).unwrap();
    fs::write(
        home_docker.join("config.json"),
        format!(r#"{{"auths":{{"http://{addr}/v2/":{{"auth":"ZXJpbjpwdzI="}}}}}}"#),
    )
    .unwrap();
    e.ok(&["pull", "-q", &format!("{addr}/priv/app:v1")]);
}

#[test]
fn search_lists_the_catalog() {
    let r = Registry::start(Auth::None);
    let img = make_image(34);
    for repo in ["team/web", "team/db", "other/webapp"] {
        upload(&r.addr(), repo, "v1", &img);
    }
    let e = Env::new();
    let out = e.ok(&["search", &format!("{}/web", r.addr())]);
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.lines().next().unwrap().contains("DESCRIPTION"));
    assert_eq!(names, ["other/webapp", "team/web"]);
    let out = e.ok(&["search", "--limit", "1", &format!("{}/", r.addr())]);
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn kill_9_mid_pull_then_the_next_pull_resumes() {
    let r = Registry::start(Auth::None);
    let img = make_image(35);
    upload(&r.addr(), "slow/app", "v1", &img);
    let big = img.layers[0].digest.clone();
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    p.add(
        "GET",
        &format!("/blobs/{big}"),
        Fault::StallAfter { bytes: 1_500_000 },
        1,
    );
    let e = Env::new();
    let name = format!("{}/slow/app:v1", p.addr);
    let mut child = e
        .cmd(&["pull", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = e.path().join("root/partial").join(big.hex());
    let deadline = Instant::now() + Duration::from_secs(60);
    while fs::metadata(&partial).map_or(0, |m| m.len()) < 1_500_000 {
        assert!(Instant::now() < deadline, "the pull never got its 1.5 MB");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    p.clear_seen();
    let out = e.ok(&["pull", &name]);
    assert!(
        out.contains(&format!("{}: Resuming from byte 1500000", big.short())),
        "{out}"
    );
    let ranges: Vec<_> = p.seen().into_iter().filter_map(|s| s.range).collect();
    assert_eq!(ranges, vec!["bytes=1500000-".to_string()]);
    assert!(e.ok(&["images"]).contains(img.config.digest.short()));
    assert_eq!(
        fs::read_dir(e.path().join("root/partial")).unwrap().count(),
        0
    );
}

#[test]
fn ctrl_c_mid_pull_and_mid_run_keeps_the_partial_and_says_so() {
    let r = Registry::start(Auth::None);
    let img = make_image(37);
    upload(&r.addr(), "slow/app", "v1", &img);
    let big = img.layers[0].digest.clone();
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    let e = Env::new();
    let name = format!("{}/slow/app:v1", p.addr);
    let partial = e.path().join("root/partial").join(big.hex());
    // the stalled read never returns: the watcher gives up waiting and exits by itself;
    // `run`'s pull of a missing image stops the same way (its request resumes: the stall
    // counts the bytes of that response)
    for (stall, bytes, args) in [
        (1_000_000, 1_000_000, vec!["pull", name.as_str()]),
        (
            500_000,
            1_500_000,
            vec!["run", "--rm", name.as_str(), "true"],
        ),
    ] {
        p.add(
            "GET",
            &format!("/blobs/{big}"),
            Fault::StallAfter { bytes: stall },
            1,
        );
        let child = e
            .cmd(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while fs::metadata(&partial).map_or(0, |m| m.len()) < bytes as u64 {
            assert!(Instant::now() < deadline, "the pull never got its bytes");
            std::thread::sleep(Duration::from_millis(20));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{args:?}: {err}");
        assert!(
            err.trim_end().ends_with(
                "pull interrupted; the partial download is kept and the next pull resumes"
            ),
            "{args:?}: {err}"
        );
        assert_eq!(fs::metadata(&partial).unwrap().len(), bytes as u64);
    }
    p.clear_seen();
    let out = e.ok(&["pull", &name]);
    assert!(
        out.contains(&format!("{}: Resuming from byte 1500000", big.short())),
        "{out}"
    );
}

#[test]
fn an_unprivileged_user_pulls() {
    // uid/gid 65534 (nobody) with a store it owns: no root, no subuid range needed
    let r = Registry::start(Auth::None);
    let img = make_image(36);
    upload(&r.addr(), "user/app", "v1", &img);
    let e = Env::new();
    fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for sub in ["home", "root", "run", "config"] {
        fs::create_dir_all(e.path().join(sub)).unwrap();
        std::os::unix::fs::chown(e.path().join(sub), Some(65534), Some(65534)).unwrap();
    }
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        BIN,
        "pull",
        &format!("{}/user/app:v1", r.addr()),
    ])
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .env("HOME", e.path().join("home"))
    .env("CAMADA_ROOT", e.path().join("root"))
    .env("CAMADA_RUNROOT", e.path().join("run"))
    .env("CAMADA_CONFIG", e.path().join("config"));
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let blob = e
        .path()
        .join("root/blobs/sha256")
        .join(img.layers[0].digest.hex());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&blob).unwrap().uid(), 65534);
}

/// Regression: progress lines were printed with `println!` from the transfer threads, so
/// `camada pull x | head -1` panicked once the reader was gone. The pull must finish.
#[test]
fn a_pull_whose_reader_went_away_still_completes() {
    let r = Registry::start(Auth::None);
    let img = make_image(37);
    upload(&r.addr(), "gone/reader", "latest", &img);
    let e = Env::new();
    let name = format!("{}/gone/reader", r.addr());
    let mut child = e
        .cmd(&["pull", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first line
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let listed = e.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(listed.contains("gone/reader"), "{listed}");
}
