//! fixtures/mkbase makes a valid, deterministic base image: checked byte by byte here, by
//! skopeo and umoci (as root and as the unprivileged test user), and by camada itself
//! (load, images, history, import).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use camada::digest::Digest;
use common::{BaseImage, Camada, base_image, tool};
use serde_json::Value;

/// The OCI architecture name of this machine (what mkbase must write).
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "arm" => "arm",
        other => panic!("no OCI architecture known for {other}"),
    }
}

fn json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

fn blob(layout: &Path, digest: &str) -> std::path::PathBuf {
    let d: Digest = digest
        .parse()
        .unwrap_or_else(|e| panic!("{digest:?} is not a digest: {e}"));
    layout.join("blobs/sha256").join(d.hex())
}

fn digest_of_file(path: &Path) -> Digest {
    Digest::of(&fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn mkbase_is_deterministic() {
    let base = base_image();
    let tmp = tempfile::tempdir().unwrap();
    for run in ["a", "b"] {
        let out = tmp.path().join(run);
        run_ok(
            Command::new(common::fixtures_dir().join("mkbase"))
                .arg(&out)
                .env("BUSYBOX", tool("busybox")),
        );
        for f in ["base.tar", "rootfs.tar", "image-id", "diff-id"] {
            let (ours, cached) = (
                fs::read(out.join(f)).unwrap(),
                fs::read(base.dir.join(f)).unwrap(),
            );
            assert!(ours == cached, "{f} differs between two runs of mkbase");
        }
    }
    // Nothing but the outputs is left in the output directory.
    let mut names: Vec<String> = fs::read_dir(tmp.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["base.tar", "diff-id", "image-id", "oci", "rootfs.tar"]
    );
}

#[test]
fn the_oci_layout_is_complete_and_every_digest_matches() {
    let base = base_image();
    let l = &base.oci_dir;
    assert_eq!(
        json(&l.join("oci-layout")),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    // Every blob is named by its content.
    for e in fs::read_dir(l.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            digest_of_file(&p).hex(),
            name,
            "blob {} does not match its name",
            p.display()
        );
    }

    let index = json(&l.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index:#}");
    let m = &manifests[0];
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["annotations"]["io.containerd.image.name"],
        BaseImage::FULL_NAME
    );
    assert_eq!(
        m["annotations"]["org.opencontainers.image.ref.name"],
        BaseImage::REF_NAME
    );
    let mpath = blob(l, m["digest"].as_str().unwrap());
    assert_eq!(
        m["size"].as_u64().unwrap(),
        fs::metadata(&mpath).unwrap().len()
    );

    let manifest = json(&mpath);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(
        config_digest,
        base.image_id.to_string(),
        "image-id is the config digest"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let layer_path = blob(l, layers[0]["digest"].as_str().unwrap());
    assert_eq!(
        layers[0]["size"].as_u64().unwrap(),
        fs::metadata(&layer_path).unwrap().len()
    );

    // The layer is rootfs.tar gzipped: its diff_id is rootfs.tar's digest.
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(&layer_path).unwrap())
        .read_to_end(&mut unpacked)
        .unwrap();
    assert_eq!(Digest::of(&unpacked), base.diff_id);
    assert_eq!(digest_of_file(&base.rootfs_tar), base.diff_id);

    let config = json(&blob(l, config_digest));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], host_arch());
    assert_eq!(config["config"]["Cmd"], serde_json::json!(BaseImage::CMD));
    let env = config["config"]["Env"].as_array().unwrap();
    assert!(
        env.iter().any(|e| e.as_str().unwrap().starts_with("PATH=")),
        "{env:?}"
    );
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([base.diff_id.to_string()])
    );
    let history = config["history"].as_array().unwrap();
    let real: Vec<_> = history
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .collect();
    assert_eq!(real.len(), 1, "one history entry per layer: {history:?}");
    assert!(
        history
            .iter()
            .any(|h| h["created_by"] == "CMD [\"sh\"]" && h["empty_layer"] == true)
    );

    // base.tar holds exactly the layout.
    let mut archive = tar::Archive::new(fs::File::open(&base.oci_tar).unwrap());
    let mut in_tar = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        in_tar.insert(path, bytes);
    }
    for f in ["oci-layout", "index.json"] {
        assert_eq!(in_tar[f], fs::read(l.join(f)).unwrap(), "{f} in base.tar");
    }
    for e in fs::read_dir(l.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let key = format!("blobs/sha256/{}", p.file_name().unwrap().to_string_lossy());
        assert_eq!(in_tar[&key], fs::read(&p).unwrap(), "{key} in base.tar");
    }
}

#[test]
fn the_rootfs_has_busybox_its_applets_users_and_the_usual_dirs() {
    let base = base_image();
    let applets = run_ok(Command::new(tool("busybox")).arg("--list-full"));
    let mut archive = tar::Archive::new(fs::File::open(&base.rootfs_tar).unwrap());
    let mut entries = BTreeMap::new();
    let mut order = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        assert!(
            !path.starts_with('/') && !path.starts_with("./"),
            "entry {path:?}"
        );
        assert_eq!(
            (h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()),
            (0, 0, 0),
            "{path}"
        );
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        order.push(path.clone());
        entries.insert(path, (h.entry_type(), h.mode().unwrap(), link, data));
    }
    let (kind, mode, _, data) = &entries["bin/busybox"];
    assert!(kind.is_file() && mode & 0o777 == 0o755);
    assert_eq!(Digest::of(data), digest_of_file(&tool("busybox")));
    let mut n = 0;
    for applet in applets
        .lines()
        .filter(|a| !a.is_empty() && *a != "bin/busybox")
    {
        let (kind, _, link, _) = entries
            .get(applet)
            .unwrap_or_else(|| panic!("applet {applet} missing"));
        assert!(kind.is_symlink(), "{applet}");
        assert_eq!(link.as_deref(), Some("/bin/busybox"), "{applet}");
        n += 1;
    }
    assert!(n > 100, "only {n} applets");
    for (dir, want) in [
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home", 0o755),
        ("etc", 0o755),
    ] {
        let (kind, mode, _, _) = &entries[dir];
        assert!(kind.is_dir(), "{dir}");
        assert_eq!(mode & 0o7777, want, "mode of /{dir}");
    }
    for dir in ["proc", "sys", "dev", "usr/bin", "sbin"] {
        assert!(entries[dir].0.is_dir(), "{dir}");
    }
    let text = |p: &str| String::from_utf8(entries[p].3.clone()).unwrap();
    let passwd = text("etc/passwd");
    assert!(
        passwd.lines().any(|l| l.starts_with("root:x:0:0:")),
        "{passwd}"
    );
    assert!(
        passwd.lines().any(|l| l.split(':').nth(2) == Some("1000")),
        "{passwd}"
    );
    let group = text("etc/group");
    assert!(group.lines().any(|l| l.starts_with("root:x:0:")), "{group}");
    assert!(
        group.lines().any(|l| l.split(':').nth(2) == Some("1000")),
        "{group}"
    );
    // Parents come before their children (GNU tar --sort=name within each directory).
    for (i, p) in order.iter().enumerate() {
        if let Some((parent, _)) = p.rsplit_once('/') {
            assert!(
                order[..i].iter().any(|q| q == parent),
                "{p} before its directory"
            );
        }
    }
}

#[test]
fn skopeo_reads_the_archive_and_the_layout() {
    let base = base_image();
    let skopeo = tool("skopeo");
    let manifest_digest = {
        let index = json(&base.oci_dir.join("index.json"));
        index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for source in [
        format!("oci-archive:{}", base.oci_tar.display()),
        format!("oci:{}:{}", base.oci_dir.display(), BaseImage::REF_NAME),
    ] {
        let info: Value =
            serde_json::from_str(&run_ok(Command::new(&skopeo).args(["inspect", &source])))
                .unwrap();
        assert_eq!(info["Digest"], manifest_digest.as_str(), "{source}");
        assert_eq!(info["Architecture"], host_arch());
        assert_eq!(info["Os"], "linux");
        assert_eq!(info["Layers"].as_array().unwrap().len(), 1);
        let config = run_ok(Command::new(&skopeo).args(["inspect", "--config", "--raw", &source]));
        assert_eq!(
            Digest::of(config.as_bytes()),
            base.image_id,
            "{source}: config digest"
        );
    }
}

/// `umoci unpack --rootless` of the layout, by `c`'s user; checks the bundle's rootfs.
fn umoci_unpacks(c: &Camada) {
    let base = base_image();
    let layout = c.give(&base.oci_dir);
    let image = format!("{}:{}", layout.display(), BaseImage::REF_NAME);
    let mut cmd = c.command(tool("umoci"));
    cmd.args(["unpack", "--rootless", "--image", &image, "bundle"]);
    c.exec(cmd).success();
    let rootfs = c.work().join("bundle/rootfs");
    let busybox = rootfs.join("bin/busybox");
    assert!(fs::metadata(&busybox).unwrap().is_file());
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let tmp_mode = fs::metadata(rootfs.join("tmp"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(tmp_mode & 0o7777, 0o1777);
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains(":1000:1000:"), "{passwd}");
    // Rootless unpacking leaves the files to the user who unpacked them.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(rootfs.join("etc/passwd")).unwrap().uid(),
        c.uid()
    );
    // The unpacked busybox is the host's, and it runs (it is static).
    let mut cmd = c.command(&busybox);
    cmd.args(["echo", "hello from the fixture"]);
    c.exec(cmd).success().stdout_is("hello from the fixture\n");
}

#[test]
fn umoci_unpacks_it_rootless() {
    umoci_unpacks(&Camada::new());
}

#[test]
fn umoci_unpacks_it_as_the_unprivileged_user() {
    let Some(c) = Camada::as_user() else { return };
    assert!(c.unprivileged());
    umoci_unpacks(&c);
}

/// Loads the base image into `c`; it lists under its name with its ID and two history rows.
fn loads_and_lists(c: &Camada) {
    let base = c.load_base();
    let short = base.short_id();
    let images = c.run(["images"]).success().lines();
    assert!(
        images.iter().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() >= 3 && cols[0] == "base" && cols[1] == "latest" && cols[2] == short
        }),
        "no `base latest {short}` row in:\n{}",
        images.join("\n")
    );
    c.run(["images", "-q"])
        .success()
        .stdout_is(&format!("{short}\n"));
    c.run(["inspect", "--format", "{{.Id}}", "base"])
        .success()
        .stdout_is(&format!("{}\n", base.image_id));
    let history = c.run(["history", "base"]).success().lines();
    assert_eq!(history.len(), 3, "header + 2 rows:\n{}", history.join("\n"));
    assert!(
        history[1].contains("CMD [\"sh\"]") && history[1].contains("0B"),
        "{history:?}"
    );
}

#[test]
fn the_base_image_loads_and_lists() {
    loads_and_lists(&Camada::new());
}

#[test]
fn the_base_image_loads_and_lists_as_the_unprivileged_user() {
    let Some(c) = Camada::as_user() else { return };
    loads_and_lists(&c);
}

#[test]
fn the_rootfs_tar_imports_as_one_layer() {
    let c = Camada::new();
    let base = base_image();
    c.run([
        "import".as_ref(),
        base.rootfs_tar.as_os_str(),
        "imported:1".as_ref(),
    ])
    .success();
    // import adds no config of its own beyond the layer: the diff_id is the rootfs tar's.
    c.run(["inspect", "--format", "{{.RootFS.Layers}}", "imported:1"])
        .success()
        .stdout_is(&format!("[{}]\n", base.diff_id));
}

// --- the harness itself (tests/common) ------------------------------------------------------

#[test]
fn commands_run_in_a_sandbox_of_their_own() {
    for c in [Some(Camada::new()), Camada::as_user()]
        .into_iter()
        .flatten()
    {
        let mut cmd = c.command("sh");
        cmd.args([
            "-c",
            "id -u; pwd; echo $HOME; echo $CAMADA_ROOT; echo $CAMADA_RUNROOT; echo $CAMADA_CONFIG; \
             touch made-here",
        ]);
        let want = format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n",
            c.uid(),
            c.work().display(),
            c.home().display(),
            c.root().display(),
            c.runroot().display(),
            c.config().display()
        );
        c.exec(cmd).success().stdout_is(&want);
        assert!(c.work().join("made-here").is_file());
        assert!(c.dir().starts_with(std::env::temp_dir()));
    }
}

#[test]
fn as_user_runs_unprivileged_with_its_subid_range() {
    let Some(c) = Camada::as_user() else { return };
    let mut cmd = c.command("id");
    cmd.arg("-u");
    let uid = c.exec(cmd).success().stdout();
    assert_ne!(uid.trim(), "0");
    assert_eq!(uid.trim(), c.uid().to_string());
    if let Some(u) = c.user() {
        for f in ["/etc/subuid", "/etc/subgid"] {
            let text = fs::read_to_string(f).unwrap();
            let ours: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("camadatest:"))
                .collect();
            assert_eq!(
                ours,
                [format!("camadatest:{}:{}", u.subid_start, u.subid_count)],
                "{f}"
            );
        }
        // Rootless runs need /dev/fuse usable by others (the harness chmods it as root).
        let mode = fs::metadata("/dev/fuse").unwrap().permissions().mode();
        assert_eq!(mode & 0o006, 0o006, "/dev/fuse is {mode:o}");
    }
}

#[test]
fn a_failing_command_is_reported_with_its_output_and_a_diff() {
    let c = Camada::new();
    let mut cmd = c.command("sh");
    cmd.args([
        "-c",
        "printf 'one\\ntwo \\nthree\\n'; echo oops >&2; exit 3",
    ]);
    let run = c.exec(cmd);
    run.exit(3).stderr_is("oops\n");
    let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run.stdout_is("one\ntwo\nthree\n");
    }))
    .expect_err("stdout_is must fail on a difference");
    let msg = report.downcast_ref::<String>().unwrap();
    for part in [
        "$ sh -c",
        "exit: exit status: 3",
        "- two\n",
        "+ two·\n",
        "  three\n",
        "oops",
    ] {
        assert!(msg.contains(part), "{part:?} missing from:\n{msg}");
    }
    assert_eq!(
        common::diff_lines("a\nb\n", "a\nc\nb"),
        "  a\n+ c\n  b\n(expected with a final newline, got none)\n"
    );
}

/// `sh -c SCRIPT` in `c`'s sandbox.
fn sh(c: &Camada, script: &str) -> common::Run {
    let mut cmd = c.command("sh");
    cmd.args(["-c", script]);
    c.exec(cmd)
}

#[test]
fn engine_error_wants_exit_125_and_one_error_line() {
    let c = Camada::new();
    let ok = |script: &str| {
        let run = sh(&c, script);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run.engine_error();
        }))
        .is_ok()
    };
    assert!(ok("echo 'Error: no such image: x' >&2; exit 125"));
    assert!(!ok("echo 'Error: no such image: x' >&2; exit 1"));
    assert!(!ok("echo 'Error: a' >&2; echo 'Error: b' >&2; exit 125"));
    assert!(!ok("echo 'no such image' >&2; exit 125"));
}

#[test]
fn error_line_allows_only_the_usage_hint_beside_the_error() {
    let c = Camada::new();
    let line = |script: &str| {
        let run = sh(&c, script);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.error_line())).ok()
    };
    assert_eq!(
        line("echo 'Error: no such image: x' >&2; exit 125").as_deref(),
        Some("Error: no such image: x")
    );
    assert_eq!(
        line(
            "echo 'Error: unknown flag: -x' >&2; echo \"See 'camada images --help'.\" >&2; exit 125"
        )
        .as_deref(),
        Some("Error: unknown flag: -x")
    );
    for bad in [
        "echo 'Error: x' >&2; exit 1",
        "echo 'Error: a' >&2; echo 'Error: b' >&2; exit 125",
        "echo 'Error: a' >&2; echo 'warning: b' >&2; exit 125",
        "echo \"See 'camada images --help'.\" >&2; echo 'Error: a' >&2; exit 125",
        "echo 'Error: a' >&2; echo >&2; exit 125",
        "exit 125",
    ] {
        assert_eq!(line(bad), None, "{bad}");
    }
}

#[test]
fn a_program_the_user_cannot_reach_is_run_from_a_copy() {
    let Some(c) = Camada::as_user() else { return };
    if c.user().is_none() {
        return; // not root: the current user can run what it built
    }
    // A directory only root can enter, like a clone under /root.
    let private = tempfile::tempdir().unwrap();
    fs::set_permissions(private.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let echo = private.path().join("echo-helper");
    fs::copy(tool("echo"), &echo).unwrap();
    let runnable = c.executable(&echo);
    assert_ne!(runnable, echo);
    let mut cmd = c.command(&runnable);
    cmd.arg("reached");
    c.exec(cmd).success().stdout_is("reached\n");
    if let Some(dir) = runnable.parent() {
        let _ = fs::remove_dir_all(dir); // the copy is keyed by mtime: never reused
    }
}

#[test]
fn the_unprivileged_user_can_make_a_user_namespace() {
    let Some(c) = Camada::as_user() else { return };
    if common::require("unprivileged user namespaces", c.userns_usable()) {
        let mut cmd = c.command("unshare");
        cmd.args(["--user", "--map-root-user", "id", "-u"]);
        c.exec(cmd).success().stdout_is("0\n");
    }
}

#[test]
fn the_scripts_parse_and_are_executable() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    for script in [
        "fixtures/mkbase",
        "fixtures/demo",
        "tests/run",
        ".ci/run",
        "fixtures/lib.sh",
    ] {
        let path = top.join(script);
        let mode = fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{script}: {e}"))
            .permissions()
            .mode();
        if script != "fixtures/lib.sh" {
            assert_eq!(mode & 0o111, 0o111, "{script} is not executable ({mode:o})");
        }
        run_ok(Command::new("bash").arg("-n").arg(&path));
    }
    // Every package the scripts install is a real line; the tools the tests call are listed.
    let packages = fs::read_to_string(top.join("fixtures/apt-packages")).unwrap();
    let listed: Vec<&str> = packages
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    for p in [
        "busybox-static",
        "skopeo",
        "umoci",
        "uidmap",
        "fuse3",
        "docker-registry",
        "zstd",
    ] {
        assert!(
            listed.contains(&p),
            "{p} missing from fixtures/apt-packages"
        );
    }
}
