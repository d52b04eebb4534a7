//! camada's archives against real peers: skopeo reads and copies what `camada save` writes,
//! umoci unpacks its OCI archives (as root and as the unprivileged user), and archives made
//! by skopeo load into camada with the very same image ID and layers.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use camada::digest::Digest;
use common::{BaseImage, Camada, base_image, tool};
use serde_json::Value;

/// `skopeo ARGS` as `c`'s user; must succeed; returns stdout.
fn skopeo<S: AsRef<OsStr>>(c: &Camada, args: &[S]) -> String {
    let mut cmd = c.command(tool("skopeo"));
    cmd.args(args);
    c.exec(cmd).success().stdout()
}

/// The image ID skopeo sees at `source`: the digest of the raw config.
fn skopeo_image_id(c: &Camada, source: &str) -> Digest {
    Digest::of(skopeo(c, &["inspect", "--config", "--raw", source]).as_bytes())
}

/// The config's rootfs.diff_ids as skopeo reads them at `source`.
fn skopeo_diff_ids(c: &Camada, source: &str) -> Vec<String> {
    let config: Value =
        serde_json::from_str(&skopeo(c, &["inspect", "--config", "--raw", source])).unwrap();
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("{source}: no rootfs.diff_ids in {config}"))
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// `camada save ARGS -o work/NAME base`; returns the archive's path.
fn save(c: &Camada, name: &str, extra: &[&str]) -> PathBuf {
    let out = c.work().join(name);
    let mut args: Vec<&OsStr> = vec!["save".as_ref()];
    args.extend(extra.iter().map(OsStr::new));
    args.extend(["-o".as_ref(), out.as_os_str(), "base".as_ref()]);
    c.run(args).success();
    assert!(out.is_file(), "save -o {} wrote nothing", out.display());
    out
}

/// Unpacks the tar `archive` into the directory `into` as `c`'s user.
fn untar(c: &Camada, archive: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    if let Some(u) = c.user() {
        u.chown_tree(into);
    }
    let mut cmd = c.command("tar");
    cmd.arg("-C").arg(into).arg("-xf").arg(archive);
    c.exec(cmd).success();
}

/// The image `c` holds under the ID `id` has exactly the base image's layers.
fn has_base_image(c: &Camada, id: &Digest) {
    let base = base_image();
    assert_eq!(id, &base.image_id);
    c.run(["inspect", "--format", "{{.Id}}", id.hex()])
        .success()
        .stdout_is(&format!("{id}\n"));
    c.run(["inspect", "--format", "{{.RootFS.Layers}}", id.hex()])
        .success()
        .stdout_is(&format!("[{}]\n", base.diff_id));
}

#[test]
fn save_is_read_by_skopeo() {
    let c = Camada::new();
    let base = c.load_base();
    let archive = save(&c, "base-docker.tar", &[]);
    let source = format!("docker-archive:{}", archive.display());
    let info: Value = serde_json::from_str(&skopeo(&c, &["inspect", &source])).unwrap();
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1), "{info:#}");
    assert_eq!(skopeo_image_id(&c, &source), base.image_id);
    assert_eq!(skopeo_diff_ids(&c, &source), [base.diff_id.to_string()]);
    // The tag travels with the image: skopeo finds it by name in the archive.
    let tagged = format!("{source}:{}", BaseImage::FULL_NAME);
    assert_eq!(skopeo_image_id(&c, &tagged), base.image_id);
}

#[test]
fn save_is_copied_by_skopeo_into_an_oci_layout() {
    let c = Camada::new();
    let base = c.load_base();
    let archive = save(&c, "base-docker.tar", &[]);
    let dest = format!("oci:{}:copied", c.work().join("layout").display());
    skopeo(
        &c,
        &[
            "copy",
            "-q",
            &format!("docker-archive:{}", archive.display()),
            &dest,
        ],
    );
    // Converting a docker manifest to OCI, skopeo re-serialises the config (its keys come out
    // in another order), so the copy's ID differs; its content and layers must not.
    let config = |source: &str| -> Value {
        serde_json::from_str(&skopeo(&c, &["inspect", "--config", "--raw", source])).unwrap()
    };
    let original: Value = serde_json::from_slice(
        &fs::read(base.oci_dir.join("blobs/sha256").join(base.image_id.hex())).unwrap(),
    )
    .unwrap();
    assert_eq!(config(&dest), original);
    assert_eq!(skopeo_diff_ids(&c, &dest), [base.diff_id.to_string()]);
}

/// `camada save --format oci-archive`, read by skopeo and unpacked by umoci, as `c`'s user.
fn oci_archive_unpacks_with_umoci(c: &Camada) {
    let base = c.load_base();
    let archive = save(c, "base-oci.tar", &["--format", "oci-archive"]);
    let source = format!("oci-archive:{}", archive.display());
    assert_eq!(skopeo_image_id(c, &source), base.image_id);

    let layout = c.work().join("layout");
    untar(c, &archive, &layout);
    let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap())
        .unwrap_or_else(|e| panic!("index.json of the saved archive: {e}"));
    let refname = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap_or_else(|| {
            panic!("the saved index.json names no org.opencontainers.image.ref.name: {index:#}")
        })
        .to_string();
    let mut cmd = c.command(tool("umoci"));
    cmd.args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{refname}", layout.display()))
        .arg("bundle");
    c.exec(cmd).success();
    let rootfs = c.work().join("bundle/rootfs");
    assert_eq!(
        Digest::of(&fs::read(rootfs.join("bin/busybox")).unwrap()),
        Digest::of(&fs::read(tool("busybox")).unwrap()),
        "the unpacked busybox is the one packed"
    );
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
}

#[test]
fn saved_oci_archive_unpacks_with_umoci() {
    oci_archive_unpacks_with_umoci(&Camada::new());
}

#[test]
fn saved_oci_archive_unpacks_with_umoci_as_the_unprivileged_user() {
    let Some(c) = Camada::as_user() else { return };
    oci_archive_unpacks_with_umoci(&c);
}

/// Archives of the base image written by skopeo, in the forms users meet: an oci-archive
/// (gzip layers), an OCI layout tarred by hand with zstd layers, an old-style docker-archive.
fn skopeo_archives(c: &Camada) -> Vec<(&'static str, PathBuf)> {
    let base = base_image();
    let layout = c.give(&base.oci_dir);
    let src = format!("oci:{}:{}", layout.display(), BaseImage::REF_NAME);
    let w = c.work();

    let oci_archive = w.join("skopeo-oci.tar");
    skopeo(
        c,
        &[
            "copy",
            "-q",
            &src,
            &format!("oci-archive:{}:latest", oci_archive.display()),
        ],
    );

    let zstd_dir = w.join("skopeo-zstd");
    let zstd_ref = format!("oci:{}:latest", zstd_dir.display());
    skopeo(
        c,
        &[
            "copy",
            "-q",
            "--dest-compress",
            "--dest-compress-format",
            "zstd",
            &src,
            &zstd_ref,
        ],
    );
    let raw: Value = serde_json::from_str(&skopeo(c, &["inspect", "--raw", &zstd_ref])).unwrap();
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let zstd_tar = w.join("skopeo-zstd.tar");
    let mut cmd = c.command("tar");
    cmd.arg("-C")
        .arg(&zstd_dir)
        .arg("-cf")
        .arg(&zstd_tar)
        .arg(".");
    c.exec(cmd).success();

    let docker_archive = w.join("skopeo-docker.tar");
    skopeo(
        c,
        &[
            "copy",
            "-q",
            &src,
            &format!("docker-archive:{}:base:skopeo", docker_archive.display()),
        ],
    );
    vec![
        ("oci-archive, gzip layers", oci_archive),
        ("OCI layout tarred with ./ names, zstd layers", zstd_tar),
        ("docker-archive (old layout)", docker_archive),
    ]
}

fn skopeo_archives_load(c: &Camada) {
    let base = base_image();
    for (what, archive) in skopeo_archives(c) {
        // A fresh store for each, so nothing is found already there.
        let fresh = if c.user().is_some() {
            Camada::as_user().unwrap()
        } else {
            Camada::new()
        };
        let archive = fresh.give(&archive);
        let load = fresh.run(["load".as_ref(), "-i".as_ref(), archive.as_os_str()]);
        load.success();
        if !load.stdout().contains(base.image_id.hex()) && !load.stdout().contains("Loaded image:")
        {
            load.fail(&format!(
                "{what}: load printed neither the image nor its ID"
            ));
        }
        has_base_image(&fresh, &base.image_id);
    }
}

#[test]
fn archives_made_by_skopeo_load_with_the_same_id_and_layers() {
    skopeo_archives_load(&Camada::new());
}

#[test]
fn archives_made_by_skopeo_load_as_the_unprivileged_user() {
    let Some(c) = Camada::as_user() else { return };
    skopeo_archives_load(&c);
}

#[test]
fn save_then_load_keeps_the_image_id() {
    let c = Camada::new();
    let base = c.load_base();
    for (name, format) in [
        ("d.tar", &[][..]),
        ("o.tar", &["--format", "oci-archive"][..]),
    ] {
        let archive = save(&c, name, format);
        let fresh = Camada::new();
        fresh
            .run(["load".as_ref(), "-i".as_ref(), archive.as_os_str()])
            .success();
        has_base_image(&fresh, &base.image_id);
        fresh
            .run(["inspect", "--format", "{{.Id}}", "base"])
            .success()
            .stdout_is(&format!("{}\n", base.image_id));
    }
}
