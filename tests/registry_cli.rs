//! `camada pull/push/login/logout/search` through the binary, against a real registry:
//! docker's output, the one-line errors, kill -9 in the middle of a pull and the resume,
//! and a pull by an unprivileged user.

mod common;
#[path = "common/registry.rs"]
mod reg;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use camada::digest::Digest;
use camada::registry::Credentials;
use common::Camada;
use reg::{Auth, Fault, FaultProxy, OCI_MANIFEST, Registry, make_image, upload};

#[test]
fn pull_images_push_as_docker_prints_them() {
    let r = Registry::start(Auth::None);
    let img = make_image(31);
    reg::skopeo_push(&img, &format!("{}/peer/app:latest", r.addr()));
    let e = Camada::new();
    let name = format!("{}/peer/app", r.addr());
    let out = e.ok(["pull", &name]);
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
    let images = e.ok(["images"]);
    let id = img.config.digest.short().to_owned();
    assert!(
        images
            .lines()
            .any(|l| l.starts_with(&name) && l.contains("latest") && l.contains(&id)),
        "{images}"
    );
    let again = e.ok(["image", "pull", &format!("{name}:latest")]);
    assert!(again.contains(&format!("{big}: Already exists")), "{again}");
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}:latest")),
        "{again}"
    );
    assert_eq!(e.ok(["pull", "-q", &name]), format!("{name}:latest\n"));

    // push under another name of the same registry: mounted, then already there
    let dst = format!("{}/mine/app:v1", r.addr());
    e.ok(["tag", &name, &dst]);
    let out = e.ok(["push", &dst]);
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
    let out = e.ok(["push", &dst]);
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
    assert_eq!(e.ok(["push", "-q", &dst]), format!("{dst}\n"));
}

#[test]
fn errors_are_one_line() {
    let r = Registry::start(Auth::None);
    let e = Camada::new();
    e.run(["pull", &format!("{}/no/such:tag", r.addr())])
        .engine_error()
        .stderr_is(&format!(
            "Error: manifest for {}/no/such:tag not found\n",
            r.addr()
        ));
    let port = reg::free_port();
    let err = e
        .run(["pull", &format!("127.0.0.1:{port}/x")])
        .engine_error()
        .stderr();
    assert!(
        err.starts_with("Error: connecting to http://127.0.0.1:")
            && err.contains("connection refused"),
        "{err}"
    );
    e.run(["push", &format!("{}/not/here:v1", r.addr())])
        .engine_error()
        .stderr_has("No such image");
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    let img = make_image(32);
    upload(&r.addr(), "big/app", "v1", &img, None);
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
    e.run(["pull", &format!("{}/big/app:huge", p.addr)])
        .engine_error()
        .stderr_is(&format!(
            "Error: manifest for {}/big/app:huge is larger than 4194304 bytes; refused\n",
            p.addr
        ));
}

#[test]
fn login_logout_and_a_private_repository() {
    let r = Registry::start(Auth::Htpasswd {
        user: "erin".into(),
        password: "pw2".into(),
    });
    let addr = r.addr();
    let e = Camada::new();
    e.run(["pull", &format!("{addr}/priv/app:v1")])
        .engine_error()
        .stderr_is(&format!(
            "Error: pulling {addr}/priv/app: unauthorized: run camada login {addr}\n"
        ));
    let login = ["login", "-u", "erin", "--password-stdin", &addr];
    e.run_stdin(login, b"wrong\n")
        .engine_error()
        .stderr_is(&format!("Error: login to {addr} failed: unauthorized\n"));
    let auth_json = e.config().join("auth.json");
    assert!(!auth_json.exists(), "nothing saved");
    e.run_stdin(login, b"pw2\n")
        .success()
        .stdout_is("Login Succeeded\n");
    let mode = fs::metadata(&auth_json).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // push an image there with the saved login, then pull it
    let img = make_image(33);
    let erin = Credentials {
        username: "erin".into(),
        password: "pw2".into(),
    };
    upload(&addr, "priv/app", "v1", &img, Some(erin));
    e.ok(["pull", "-q", &format!("{addr}/priv/app:v1")]);
    assert_eq!(
        e.ok(["logout", &addr]),
        format!("Removing login credentials for {addr}\n")
    );
    assert_eq!(
        e.ok(["logout", &addr]),
        format!("Not logged in to {addr}\n")
    );
    e.run(["pull", &format!("{addr}/priv/app:v1")])
        .engine_error()
        .stderr_has("unauthorized: run camada login");
    // docker's config.json is read too
    let home_docker = e.home().join(".docker");
    fs::create_dir_all(&home_docker).unwrap();
    fs::write(
        home_docker.join("config.json"),
        format!(r#"{{"auths":{{"http://{addr}/v2/":{{"auth":"ZXJpbjpwdzI="}}}}}}"#),
    )
    .unwrap();
    e.ok(["pull", "-q", &format!("{addr}/priv/app:v1")]);
}

#[test]
fn search_lists_the_catalog() {
    let r = Registry::start(Auth::None);
    let img = make_image(34);
    for repo in ["team/web", "team/db", "other/webapp"] {
        upload(&r.addr(), repo, "v1", &img, None);
    }
    let e = Camada::new();
    let out = e.ok(["search", &format!("{}/web", r.addr())]);
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.lines().next().unwrap().contains("DESCRIPTION"));
    assert_eq!(names, ["other/webapp", "team/web"]);
    let out = e.ok(["search", "--limit", "1", &format!("{}/", r.addr())]);
    assert_eq!(out.lines().count(), 2, "{out}");
}

/// Waits (a minute at most: a hang guard) until the partial download `path` holds `bytes`.
fn wait_for_partial(path: &Path, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while fs::metadata(path).map_or(0, |m| m.len()) < bytes {
        assert!(
            Instant::now() < deadline,
            "the pull never got its {bytes} bytes into {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_mid_pull_then_the_next_pull_resumes() {
    let r = Registry::start(Auth::None);
    let img = make_image(35);
    upload(&r.addr(), "slow/app", "v1", &img, None);
    let big = img.layers[0].digest.clone();
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    p.add(
        "GET",
        &format!("/blobs/{big}"),
        Fault::StallAfter { bytes: 1_500_000 },
        1,
    );
    let e = Camada::new();
    let name = format!("{}/slow/app:v1", p.addr);
    let mut child = e
        .cmd(["pull", &name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = e.root().join("partial").join(big.hex());
    wait_for_partial(&partial, 1_500_000);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    p.clear_seen();
    let out = e.ok(["pull", &name]);
    assert!(
        out.contains(&format!("{}: Resuming from byte 1500000", big.short())),
        "{out}"
    );
    let ranges: Vec<_> = p.seen().into_iter().filter_map(|s| s.range).collect();
    assert_eq!(ranges, vec!["bytes=1500000-".to_string()]);
    assert!(e.ok(["images"]).contains(img.config.digest.short()));
    assert_eq!(fs::read_dir(e.root().join("partial")).unwrap().count(), 0);
}

#[test]
fn ctrl_c_mid_pull_and_mid_run_keeps_the_partial_and_says_so() {
    let r = Registry::start(Auth::None);
    let img = make_image(37);
    upload(&r.addr(), "slow/app", "v1", &img, None);
    let big = img.layers[0].digest.clone();
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    let e = Camada::new();
    let name = format!("{}/slow/app:v1", p.addr);
    let partial = e.root().join("partial").join(big.hex());
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
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_partial(&partial, bytes);
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
        assert_eq!(fs::metadata(&partial).unwrap().len(), bytes);
    }
    p.clear_seen();
    let out = e.ok(["pull", &name]);
    assert!(
        out.contains(&format!("{}: Resuming from byte 1500000", big.short())),
        "{out}"
    );
}

#[test]
fn an_unprivileged_user_pulls() {
    // the test user with a store it owns: a pull needs no root and no subuid range
    let r = Registry::start(Auth::None);
    let img = make_image(36);
    upload(&r.addr(), "user/app", "v1", &img, None);
    let Some(e) = Camada::as_user() else {
        return;
    };
    e.ok(["pull", &format!("{}/user/app:v1", r.addr())]);
    let blob = e
        .root()
        .join("blobs/sha256")
        .join(img.layers[0].digest.hex());
    assert_eq!(fs::metadata(&blob).unwrap().uid(), e.uid());
}

/// Regression: progress lines were printed with `println!` from the transfer threads, so
/// `camada pull x | head -1` panicked once the reader was gone. The pull must finish.
#[test]
fn a_pull_whose_reader_went_away_still_completes() {
    let r = Registry::start(Auth::None);
    let img = make_image(37);
    upload(&r.addr(), "gone/reader", "latest", &img, None);
    let e = Camada::new();
    let name = format!("{}/gone/reader", r.addr());
    let mut child = e
        .cmd(["pull", &name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first line
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let listed = e.ok(["images", "--format", "{{.Repository}}"]);
    assert!(listed.contains("gone/reader"), "{listed}");
}
