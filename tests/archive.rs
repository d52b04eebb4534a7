//! save / load / import: round trips, peers (skopeo, umoci) reading what we write and
//! writing what we read, and bad archives — each refused with one clear error and nothing
//! left in the store.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use camada::digest::{DiffId, Digest};
use camada::engine::archive::{self, ArchiveError};
use camada::engine::{ImportRequest, Input, LoadedImage, SaveFormat};
use camada::image::ImageConfig;
use camada::store::Store;
use common::store_in;

/// A small rootfs tar: a directory, files, a symlink pointing outside (kept as a symlink),
/// and `extra` bytes of incompressible data in `big`.
fn rootfs_tar(extra: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_700_000_000);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        b.append_data(&mut h, path, data).unwrap();
    };
    add("etc/", tar::EntryType::Directory, b"", None);
    add(
        "etc/passwd",
        tar::EntryType::Regular,
        b"root:x:0:0:root:/root:/bin/sh\n",
        None,
    );
    add(
        "etc/hostfile",
        tar::EntryType::Symlink,
        b"",
        Some("/../../etc/shadow"),
    );
    add("bin/", tar::EntryType::Directory, b"", None);
    add(
        "bin/hello",
        tar::EntryType::Regular,
        b"#!/bin/sh\necho hello\n",
        None,
    );
    if extra > 0 {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let data: Vec<u8> = (0..extra)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        add("big", tar::EntryType::Regular, &data, None);
    }
    b.into_inner().unwrap()
}

fn import_bytes(store: &Store, dir: &Path, bytes: &[u8], name: Option<&str>) -> Digest {
    let f = dir.join(format!("import-{}.tar", Digest::of(bytes).short()));
    fs::write(&f, bytes).unwrap();
    archive::import(
        store,
        Input::File(f),
        &ImportRequest {
            reference: name.map(str::to_owned),
            changes: vec!["CMD [\"/bin/hello\"]".into(), "ENV A=1".into()],
            message: None,
        },
    )
    .unwrap()
}

fn save_to(store: &Store, words: &[&str], format: SaveFormat, out: &Path) {
    let images: Vec<_> = words.iter().map(|w| store.resolve(w).unwrap()).collect();
    let mut f = fs::File::create(out).unwrap();
    archive::save(store, &images, format, &mut f).unwrap();
    f.sync_all().unwrap();
}

fn diff_ids(store: &Store, id: &Digest) -> Vec<DiffId> {
    ImageConfig::parse(&store.read_blob(id).unwrap())
        .unwrap()
        .rootfs
        .diff_ids
}

/// Every path under the store root except the lock files and the (empty) skeleton dirs.
fn contents(store: &Store) -> BTreeSet<PathBuf> {
    let root = &store.paths().root;
    let mut out = BTreeSet::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let skeleton = [
                "blobs",
                "blobs/sha256",
                "layers",
                "chains",
                "tmp",
                "partial",
            ];
            if !skeleton.iter().any(|s| rel == Path::new(s))
                && rel != Path::new("lock")
                && rel != Path::new("gc.lock")
            {
                out.insert(rel);
            }
        }
    }
    out
}

#[test]
fn import_save_load_round_trips_in_both_formats() {
    let t = tempfile::tempdir().unwrap();
    let a = store_in(&t.path().join("a"));
    let id = import_bytes(&a, t.path(), &rootfs_tar(1000), Some("example/app:v1"));
    let config = ImageConfig::parse(&a.read_blob(&id).unwrap()).unwrap();
    let run = config.config.unwrap();
    assert_eq!(run.cmd.as_deref(), Some(&["/bin/hello".to_string()][..]));
    assert_eq!(run.env_value("A"), Some("1"));
    assert_eq!(a.resolve("example/app:v1").unwrap().id, id);
    let layers = diff_ids(&a, &id);
    assert_eq!(layers.len(), 1);

    for (n, format) in [SaveFormat::DockerArchive, SaveFormat::OciArchive]
        .into_iter()
        .enumerate()
    {
        let file = t.path().join(format!("saved-{n}.tar"));
        save_to(&a, &["example/app:v1"], format, &file);
        let b = store_in(&t.path().join(format!("b{n}")));
        let loaded = archive::load(&b, Input::File(file.clone())).unwrap();
        assert_eq!(
            loaded,
            vec![LoadedImage::Named("example/app:v1".into())],
            "{format:?}"
        );
        let r = b.resolve("docker.io/example/app:v1").unwrap();
        assert_eq!(r.id, id, "{format:?}: the image ID survives");
        assert_eq!(diff_ids(&b, &r.id), layers);
        assert!(b.has_layer(&layers[0]));
        // the same archive again: nothing new, same answer
        let before = contents(&b);
        archive::load(&b, Input::File(file)).unwrap();
        assert_eq!(contents(&b), before);
    }
}

#[test]
fn loads_compressed_archives_and_untagged_images() {
    let t = tempfile::tempdir().unwrap();
    let a = store_in(&t.path().join("a"));
    let id = import_bytes(&a, t.path(), &rootfs_tar(50_000), None);
    let plain = t.path().join("plain.tar");
    save_to(&a, &[id.short()], SaveFormat::DockerArchive, &plain);
    let bytes = fs::read(&plain).unwrap();
    let gz = t.path().join("a.tar.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&bytes).unwrap();
    fs::write(&gz, e.finish().unwrap()).unwrap();
    let zst = t.path().join("a.tar.zst");
    fs::write(&zst, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
    for (n, f) in [gz, zst].into_iter().enumerate() {
        let b = store_in(&t.path().join(format!("b{n}")));
        let loaded = archive::load(&b, Input::File(f)).unwrap();
        assert_eq!(loaded, vec![LoadedImage::Id(id.clone())]);
        assert_eq!(b.resolve(&id.hex()[..6]).unwrap().id, id);
        // the spool is gone
        assert_eq!(fs::read_dir(b.paths().tmp_dir()).unwrap().count(), 0);
    }
}

/// An archive in the old docker layout (`<id>/layer.tar`, the second layer a symlink to
/// the first, gzip layers); the config lists `claimed` as both diff_ids (default: right).
fn old_archive(claimed: Option<Digest>) -> (Vec<u8>, Digest, Digest) {
    let layer_tar = rootfs_tar(10);
    let diff = Digest::of(&layer_tar);
    let claimed = claimed.unwrap_or(diff.clone());
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&layer_tar).unwrap();
    let layer_gz = e.finish().unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{claimed}","{claimed}"]}}}}"#
    );
    let cid = Digest::of(config.as_bytes());
    let manifest = format!(
        r#"[{{"Config":"{}.json","RepoTags":["old:one"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}}]"#,
        cid.hex()
    );
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    };
    add(&format!("{}.json", cid.hex()), config.as_bytes());
    add("aaa/layer.tar", &layer_gz);
    add("manifest.json", manifest.as_bytes());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
        .unwrap();
    (b.into_inner().unwrap(), cid, diff)
}

#[test]
fn loads_the_old_docker_archive_layout_with_gzip_layers() {
    let t = tempfile::tempdir().unwrap();
    let (bytes, cid, diff) = old_archive(None);
    let file = t.path().join("old.tar");
    fs::write(&file, bytes).unwrap();
    let s = store_in(&t.path().join("s"));
    let loaded = archive::load(&s, Input::File(file)).unwrap();
    assert_eq!(loaded, vec![LoadedImage::Named("old:one".into())]);
    let r = s.resolve("old:one").unwrap();
    assert_eq!(r.id, cid);
    assert!(s.has_layer(&DiffId(diff)));
    // the gzip blob was kept as sent and the manifest names it
    let m: serde_json::Value = serde_json::from_slice(&s.read_blob(&r.manifest).unwrap()).unwrap();
    let blob: Digest = m["layers"][0]["digest"].as_str().unwrap().parse().unwrap();
    assert!(
        m["layers"][0]["mediaType"]
            .as_str()
            .unwrap()
            .ends_with("gzip")
    );
    assert!(s.has_blob(&blob));
    // GC keeps all of it while the image is there, and removes all of it after
    let before = contents(&s);
    let r0 = s.gc().unwrap();
    assert_eq!((r0.blobs, r0.layers), (0, 0));
    assert_eq!(contents(&s), before);
    s.update(|db| {
        db.remove_image(&r.manifest);
        Ok::<_, camada::store::StoreError>(())
    })
    .unwrap();
    s.gc().unwrap();
    let left: Vec<_> = contents(&s)
        .into_iter()
        .filter(|p| p != Path::new("images.json"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Loads `bytes` as an archive into a fresh store that already holds one image; the load
/// must fail with an error whose text contains `want`, and leave the store as it was.
fn refused(bytes: &[u8], want: &str) {
    let t = tempfile::tempdir().unwrap();
    let s = store_in(&t.path().join("s"));
    import_bytes(&s, t.path(), &rootfs_tar(0), Some("keep:me"));
    let before = contents(&s);
    let before_db = s.images().unwrap();
    let f = t.path().join("bad.tar");
    fs::write(&f, bytes).unwrap();
    let err = archive::load(&s, Input::File(f)).unwrap_err().to_string();
    assert!(err.contains(want), "error {err:?} does not say {want:?}");
    assert!(!err.contains('\n'), "one line: {err:?}");
    assert_eq!(contents(&s), before, "the failed load left something");
    assert_eq!(s.images().unwrap(), before_db);
}

fn saved_archive(format: SaveFormat) -> (Vec<u8>, DiffId) {
    let t = tempfile::tempdir().unwrap();
    let a = store_in(&t.path().join("a"));
    let id = import_bytes(&a, t.path(), &rootfs_tar(100_000), Some("victim:1"));
    let f = t.path().join("x.tar");
    save_to(&a, &["victim:1"], format, &f);
    (fs::read(f).unwrap(), diff_ids(&a, &id).remove(0))
}

/// The offset of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle")
}

#[test]
fn bad_archives_are_refused_and_leave_nothing() {
    refused(b"", "empty");
    refused(&[7u8; 3000], "corrupt archive");
    let mut not_image = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    not_image
        .append_data(&mut h, "hello.txt", &b"hi"[..])
        .unwrap();
    refused(&not_image.into_inner().unwrap(), "not an image archive");

    for format in [SaveFormat::DockerArchive, SaveFormat::OciArchive] {
        let (good, _) = saved_archive(format);
        // cut inside the big layer: the member runs past the end
        refused(&good[..good.len() / 2], "truncated archive");
        // cut between members, before the metadata files written last
        let at = find(&good, b"index.json") / 512 * 512;
        refused(&good[..at], "truncated archive");
        // one byte of the layer's data changed: it no longer has the config's diff_id
        let mut bad = good.clone();
        let at = find(&bad, b"echo hello");
        bad[at] = b'E';
        refused(&bad, "but the image config says");
        // a config changed: its digest no longer matches its name
        let mut bad = good.clone();
        let at = find(&bad, b"\"Env\":[\"A=1");
        bad[at + 10] = b'2';
        refused(&bad, "but the archive names it");
    }
    // a config whose diff_ids are not the layer's (its name is its true digest)
    let (bytes, _, _) = old_archive(Some(Digest::of(b"another layer")));
    refused(&bytes, "but the image config says");
    // a compressed archive (`docker save | gzip`) whose compressed stream is cut
    let (good, _) = saved_archive(SaveFormat::DockerArchive);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&good).unwrap();
    let gz = gz.finish().unwrap();
    refused(&gz[..gz.len() / 2], "decompressing the archive (gzip): ");
    let zst = zstd::encode_all(&good[..], 3).unwrap();
    refused(&zst[..zst.len() / 2], "decompressing the archive (zstd): ");
}

#[test]
fn import_refuses_non_tars_and_hostile_links() {
    let t = tempfile::tempdir().unwrap();
    let s = store_in(&t.path().join("s"));
    let before = contents(&s);
    let check = |bytes: &[u8], want: &str| {
        let f = t.path().join("in");
        fs::write(&f, bytes).unwrap();
        let err = archive::import(&s, Input::File(f), &ImportRequest::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err:?} does not say {want:?}");
        assert_eq!(contents(&s), before, "{want}: something was left");
    };
    check(b"", "is empty");
    check(
        b"this is a text file, not a tarball\n",
        "is not a tar archive",
    );
    // a hardlink to a path not in the layer
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "etc/passwd", "../../../etc/shadow")
        .unwrap();
    check(&b.into_inner().unwrap(), "is not a tar archive");
    let err = archive::import(
        &s,
        Input::File(t.path().join("in")),
        &ImportRequest {
            changes: vec!["RUN rm -rf /".into()],
            ..ImportRequest::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ArchiveError::BadChange { .. }), "{err}");
}

#[test]
fn import_normalises_dot_dot_and_absolute_paths_inside_the_root() {
    let t = tempfile::tempdir().unwrap();
    let s = store_in(&t.path().join("s"));
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [("/abs/file", &b"a"[..]), ("../../up/file", b"b")] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        // write the raw name: the builder refuses `..` itself
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    let f = t.path().join("hostile.tar");
    fs::write(&f, b.into_inner().unwrap()).unwrap();
    let id = archive::import(&s, Input::File(f), &ImportRequest::default()).unwrap();
    let d = diff_ids(&s, &id).remove(0);
    let idx = fs::read(s.layer_index(&d)).unwrap();
    let index = camada::tarindex::Index::open(&idx[..]).unwrap();
    assert!(index.lookup(b"abs/file").is_some());
    assert!(index.lookup(b"up/file").is_some());
    // nothing was written outside the store
    assert!(!t.path().join("up").exists() && !Path::new("/abs/file").exists());
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Tars the contents of `dir` (an OCI layout) into `out`.
fn tar_dir(dir: &Path, out: &Path) {
    run(Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg("."));
}

#[test]
fn skopeo_reads_our_docker_archive_and_we_load_its_oci_layout() {
    if !have("skopeo") {
        eprintln!("skipped: skopeo not installed");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let a = store_in(&t.path().join("a"));
    let id = import_bytes(&a, t.path(), &rootfs_tar(20_000), Some("peer/app:v1"));
    let saved = t.path().join("saved.tar");
    save_to(&a, &["peer/app:v1"], SaveFormat::DockerArchive, &saved);
    let inspect = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", saved.display())));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{inspect}");
    assert_eq!(v["Env"][0], "A=1", "{inspect}");

    let layout = t.path().join("layout");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("docker-archive:{}", saved.display()))
        .arg(format!("oci:{}:v1", layout.display())));
    let layout_tar = t.path().join("layout.tar");
    tar_dir(&layout, &layout_tar);
    // skopeo converts the config to OCI (a new image ID): what we load must keep its ID
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: Digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let manifest_json = fs::read(layout.join("blobs/sha256").join(manifest.hex())).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&manifest_json).unwrap();
    let skopeo_id: Digest = m["config"]["digest"].as_str().unwrap().parse().unwrap();
    let b = store_in(&t.path().join("b"));
    let loaded = archive::load(&b, Input::File(layout_tar)).unwrap();
    // skopeo names the entry `v1` only: no image name, so docker reports the ID
    assert_eq!(loaded, vec![LoadedImage::Id(skopeo_id.clone())]);
    let r = b.resolve(skopeo_id.hex()).unwrap();
    assert_eq!(
        r.manifest, manifest,
        "the manifest is kept as skopeo wrote it"
    );
    assert_eq!(diff_ids(&b, &skopeo_id), diff_ids(&a, &id), "same layers");

    // and skopeo's own OCI archive of our oci-archive keeps our image ID exactly
    let oci = t.path().join("ours-oci.tar");
    save_to(&a, &["peer/app:v1"], SaveFormat::OciArchive, &oci);
    let layout2 = t.path().join("layout2");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}:v1", oci.display()))
        .arg(format!("oci:{}:v1", layout2.display())));
    let layout2_tar = t.path().join("layout2.tar");
    tar_dir(&layout2, &layout2_tar);
    let c = store_in(&t.path().join("c"));
    assert_eq!(
        archive::load(&c, Input::File(layout2_tar)).unwrap(),
        vec![LoadedImage::Id(id.clone())]
    );
    assert_eq!(diff_ids(&c, &id), diff_ids(&a, &id));
}

#[test]
fn umoci_unpacks_our_oci_archive_rootless() {
    if !have("umoci") {
        eprintln!("skipped: umoci not installed");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let a = store_in(&t.path().join("a"));
    import_bytes(&a, t.path(), &rootfs_tar(0), Some("peer/app:v2"));
    let saved = t.path().join("oci.tar");
    save_to(&a, &["peer/app:v2"], SaveFormat::OciArchive, &saved);
    let layout = t.path().join("layout");
    fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-xf")
        .arg(&saved));
    let bundle = t.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--rootless")
        .arg("--image")
        .arg(format!("{}:v2", layout.display()))
        .arg(&bundle));
    assert_eq!(
        fs::read(bundle.join("rootfs/bin/hello")).unwrap(),
        b"#!/bin/sh\necho hello\n"
    );
    assert_eq!(
        fs::read_link(bundle.join("rootfs/etc/hostfile")).unwrap(),
        Path::new("/../../etc/shadow")
    );
}

// ---- kill -9 in the middle of a large load (a worker process: this binary again) ----

#[test]
fn worker() {
    let (Ok(root), Ok(file)) = (
        std::env::var("CAMADA_ARCHIVE_WORKER_ROOT"),
        std::env::var("CAMADA_ARCHIVE_WORKER_FILE"),
    ) else {
        return;
    };
    let s = store_in(Path::new(&root));
    println!("ready");
    std::io::stdout().flush().unwrap();
    archive::load(&s, Input::File(file.into())).unwrap();
}

fn wait_ready(child: &mut Child) {
    use std::io::BufRead;
    let mut r = std::io::BufReader::new(child.stdout.as_mut().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "worker exited");
        if line.trim_end().ends_with("ready") {
            return;
        }
    }
}

#[test]
fn kill_9_during_a_large_load_leaves_a_usable_store() {
    let t = tempfile::tempdir().unwrap();
    let a = store_in(&t.path().join("a"));
    let big = import_bytes(&a, t.path(), &rootfs_tar(40 << 20), Some("big:1"));
    let saved = t.path().join("big.tar");
    save_to(&a, &["big:1"], SaveFormat::OciArchive, &saved);
    let gz = t.path().join("big.tar.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&fs::read(&saved).unwrap()).unwrap();
    fs::write(&gz, e.finish().unwrap()).unwrap();

    let root = t.path().join("b");
    for (round, delay) in [30u64, 150, 400].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["worker", "--exact", "--nocapture", "--test-threads=1"])
            .env("CAMADA_ARCHIVE_WORKER_ROOT", &root)
            .env("CAMADA_ARCHIVE_WORKER_FILE", &gz)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_ready(&mut child);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        // the next command works: no half layer or blob, no image without its layers
        let s = store_in(&root);
        assert_eq!(fs::read_dir(s.paths().tmp_dir()).unwrap().count(), 0);
        for e in fs::read_dir(s.paths().layers_dir()).unwrap() {
            let d = DiffId(Digest::from_hex(e.unwrap().file_name().to_str().unwrap()).unwrap());
            assert!(s.has_layer(&d), "round {round}: half layer {d}");
            assert_eq!(
                Digest::of(&fs::read(s.layer_tar(&d)).unwrap()),
                d.0,
                "round {round}"
            );
        }
        for e in fs::read_dir(s.paths().blobs_dir()).unwrap() {
            let d = Digest::from_hex(e.unwrap().file_name().to_str().unwrap()).unwrap();
            let mut f = s.open_blob(&d).unwrap();
            let mut h = camada::digest::Hasher::new();
            std::io::copy(&mut f, &mut h).unwrap();
            assert_eq!(h.finish(), d, "round {round}: a blob is not whole");
        }
        let db = s.images().unwrap();
        if round == 0 {
            // 30 ms into a 40 MiB load: killed before its commit, nothing recorded
            assert!(db.images.is_empty(), "the load was not interrupted");
        }
        for rec in db.images.values() {
            for d in diff_ids(&s, &rec.config) {
                assert!(s.has_layer(&d), "round {round}: an image lacks a layer");
            }
        }
    }
    // and a load to the end still works
    let s = store_in(&root);
    archive::load(&s, Input::File(gz)).unwrap();
    assert_eq!(s.resolve("big:1").unwrap().id, big);
}

// ---- the same through the real binary: one `Error:` line, exit 125, nothing left ----

fn bad_input_through_the_binary(c: &common::Camada) {
    let src = tempfile::tempdir().unwrap();
    let tarball = src.path().join("rootfs.tar");
    fs::write(&tarball, rootfs_tar(100_000)).unwrap();
    let tarball = c.give(&tarball);
    let out = c.ok([
        "import",
        "-c",
        "CMD [\"/bin/hello\"]",
        tarball.to_str().unwrap(),
        "good:1",
    ]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    c.ok(["save", "-o", "saved.tar", "good:1"]);
    let good = fs::read(c.work().join("saved.tar")).unwrap();
    let before = contents(&c.store());

    let mut cut_digest = good.clone();
    let at = find(&cut_digest, b"echo hello");
    cut_digest[at] = b'E';
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.tar", Vec::new(), "empty"),
        ("noise.tar", vec![7u8; 3000], "corrupt archive"),
        (
            "cut.tar",
            good[..good.len() / 2].to_vec(),
            "truncated archive",
        ),
        ("digest.tar", cut_digest, "but the image config says"),
    ];
    for (name, bytes, want) in cases {
        let f = src.path().join(name);
        fs::write(&f, bytes).unwrap();
        let f = c.give(&f);
        c.run(["load", "-i", f.to_str().unwrap()])
            .engine_error()
            .stderr_has(want);
        assert_eq!(contents(&c.store()), before, "{name} left something");
    }
    let text = src.path().join("notes.txt");
    fs::write(&text, "not a tarball\n").unwrap();
    let text = c.give(&text);
    c.run(["import", text.to_str().unwrap(), "bad:1"])
        .engine_error()
        .stderr_has("is not a tar archive");
    assert_eq!(contents(&c.store()), before, "import left something");
    // and the store still works: a gzip archive through stdin
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&good).unwrap();
    c.run(["rmi", "good:1"]).success();
    c.run_stdin(["load"], &e.finish().unwrap())
        .success()
        .stdout_is("Loaded image: good:1\n");
}

#[test]
fn bad_archives_through_the_binary() {
    bad_input_through_the_binary(&common::Camada::new());
}

#[test]
fn bad_archives_through_the_binary_as_the_unprivileged_user() {
    let Some(c) = common::Camada::as_user() else {
        return;
    };
    bad_input_through_the_binary(&c);
}

#[test]
fn kill_9_during_camada_load_as_the_unprivileged_user() {
    let Some(c) = common::Camada::as_user() else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let tarball = src.path().join("rootfs.tar");
    fs::write(&tarball, rootfs_tar(40 << 20)).unwrap();
    let tarball = c.give(&tarball);
    c.ok(["import", tarball.to_str().unwrap(), "big:1"]);
    c.ok(["save", "-o", "big.tar", "big:1"]);
    c.ok(["rmi", "big:1"]);
    let archive = c.work().join("big.tar");
    for delay in [30u64, 200] {
        let mut child = c
            .cmd(["load", "-i", archive.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        // every command works, the next one cleans up, nothing half made is listed
        c.run(["images", "-q"]).success();
        assert_eq!(fs::read_dir(c.root().join("tmp")).unwrap().count(), 0);
        let s = c.store();
        for e in fs::read_dir(s.paths().layers_dir()).unwrap() {
            let d = DiffId(Digest::from_hex(e.unwrap().file_name().to_str().unwrap()).unwrap());
            assert!(s.has_layer(&d), "half layer {d}");
        }
        for rec in s.images().unwrap().images.values() {
            for d in diff_ids(&s, &rec.config) {
                assert!(s.has_layer(&d), "an image lacks a layer");
            }
        }
    }
    c.run(["load", "-i", archive.to_str().unwrap()])
        .success()
        .stdout_is("Loaded image: big:1\n");
}

#[test]
fn images_sharing_a_layer_save_and_load_together() {
    let t = tempfile::tempdir().unwrap();
    let a = store_in(&t.path().join("a"));
    let rootfs = rootfs_tar(5000);
    let one = import_bytes(&a, t.path(), &rootfs, Some("pair:one"));
    let f = t.path().join("same.tar");
    fs::write(&f, &rootfs).unwrap();
    let two = archive::import(
        &a,
        Input::File(f),
        &ImportRequest {
            reference: Some("pair:two".into()),
            changes: vec!["USER 1000".into()],
            message: Some("second".into()),
        },
    )
    .unwrap();
    assert_ne!(one, two);
    assert_eq!(diff_ids(&a, &one), diff_ids(&a, &two));
    for format in [SaveFormat::DockerArchive, SaveFormat::OciArchive] {
        let out = t.path().join(format!("{format:?}.tar"));
        save_to(&a, &["pair:one", "pair:two", &one.hex()[..8]], format, &out);
        let tar_bytes = fs::read(&out).unwrap();
        // the shared layer is in the archive once
        let layer_name = format!("blobs/sha256/{}", diff_ids(&a, &one)[0].hex());
        let entries = tar::Archive::new(&tar_bytes[..])
            .entries()
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().unwrap().to_str() == Some(layer_name.as_str()))
            .count();
        assert_eq!(entries, 1, "{format:?}");
        let b = store_in(&t.path().join(format!("b-{format:?}")));
        let mut loaded = archive::load(&b, Input::File(out)).unwrap();
        loaded.sort_by_key(|l| format!("{l:?}"));
        assert_eq!(
            loaded,
            vec![
                LoadedImage::Named("pair:one".into()),
                LoadedImage::Named("pair:two".into())
            ],
            "{format:?}"
        );
        assert_eq!(b.resolve("pair:one").unwrap().id, one);
        assert_eq!(b.resolve("pair:two").unwrap().id, two);
        assert_eq!(fs::read_dir(b.paths().layers_dir()).unwrap().count(), 1);
    }
}
