//! `engine::pull` / `engine::push` / `engine::login` with the real store against a real
//! registry: layers streamed into blobs + tar + index, platform selection, resume after
//! a cut across pulls, a tampered blob, push with cross-repository mount, login files.

mod common;
#[path = "common/registry.rs"]
mod reg;

use std::fs;
use std::sync::atomic::AtomicBool;

use camada::digest::Digest;
use camada::engine::pull::{PullOptions, pull};
use camada::engine::push::push;
use camada::engine::{login, pull::Pulled};
use camada::reference::Reference;
use camada::registry::{Client, ClientConfig, Credentials, PushOutcome};
use camada::store::Store;
use common::store_in;
use reg::{Auth, Fault, FaultProxy, Image, OCI_MANIFEST, Registry, make_image, upload};

fn do_pull(s: &Store, r: &str) -> Result<Pulled, camada::engine::pull::PullError> {
    pull(
        s,
        &Reference::parse(r).unwrap(),
        &PullOptions::default(),
        &(),
        &AtomicBool::new(false),
    )
}

fn diff_ids(img: &Image) -> Vec<camada::digest::DiffId> {
    let cfg: serde_json::Value = serde_json::from_slice(&img.blobs[&img.config.digest]).unwrap();
    cfg["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| camada::digest::DiffId(d.as_str().unwrap().parse().unwrap()))
        .collect()
}

fn assert_stored(s: &Store, img: &Image) {
    for b in img.all() {
        assert!(s.has_blob(&b.digest), "blob {}", b.digest);
    }
    for d in diff_ids(img) {
        assert!(s.has_layer(&d), "layer {d}");
        let idx = fs::read(s.layer_index(&d)).unwrap();
        let index = camada::tarindex::Index::open(&idx).unwrap();
        assert_ne!(index.len(), 0);
    }
    let partial = s.paths().partials_dir();
    let left: Vec<_> = fs::read_dir(&partial)
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(
        left.iter().all(|n| *n == 0),
        "partials left in {}",
        partial.display()
    );
}

#[test]
fn pull_stores_blobs_layers_and_tag_then_is_up_to_date() {
    let r = Registry::start(Auth::None);
    let img = make_image(21);
    // pushed by skopeo from an OCI layout
    reg::skopeo_push(&img, &format!("{}/peer/app:v1", r.addr()));
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    let name = format!("{}/peer/app:v1", r.addr());
    let p = do_pull(&s, &name).unwrap();
    assert_eq!(p.digest, Digest::of(&img.manifest));
    assert_eq!(p.id, img.config.digest);
    assert!(!p.up_to_date);
    assert_stored(&s, &img);
    let res = s.resolve(&name).unwrap();
    assert_eq!(res.id, img.config.digest);
    let db = s.images().unwrap();
    assert_eq!(
        db.images[&p.manifest].repo_digests,
        vec![format!("{}/peer/app@{}", r.addr(), p.digest)]
    );
    let again = do_pull(&s, &name).unwrap();
    assert!(again.up_to_date);
    // by digest
    let by_digest = do_pull(&s, &format!("{}/peer/app@{}", r.addr(), p.digest)).unwrap();
    assert_eq!(by_digest.id, p.id);
}

#[test]
fn pull_picks_the_platform_of_an_index() {
    let r = Registry::start(Auth::None);
    let host = make_image(22);
    let other = make_image(23);
    upload(
        &r.addr(),
        "multi/app",
        &Digest::of(&host.manifest).to_string(),
        &host,
        None,
    );
    upload(
        &r.addr(),
        "multi/app",
        &Digest::of(&other.manifest).to_string(),
        &other,
        None,
    );
    let host_p = camada::image::Platform::host();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": Digest::of(&other.manifest).to_string(),
             "size": other.manifest.len(), "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": OCI_MANIFEST, "digest": Digest::of(&host.manifest).to_string(),
             "size": host.manifest.len(),
             "platform": {"os": host_p.os, "architecture": host_p.architecture}},
        ]
    });
    let index = serde_json::to_vec(&index).unwrap();
    let c = Client::connect(ClientConfig::new(&r.addr(), &r.addr(), true, true), &[]).unwrap();
    c.put_manifest(
        "multi/app",
        "v1",
        "application/vnd.oci.image.index.v1+json",
        &index,
    )
    .unwrap();
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    let name = Reference::parse(&format!("{}/multi/app:v1", r.addr())).unwrap();
    let p = do_pull(&s, &name.to_string()).unwrap();
    assert_eq!(p.digest, Digest::of(&index));
    assert_eq!(p.manifest, Digest::of(&host.manifest));
    assert_eq!(p.id, host.config.digest);
    let opts = PullOptions {
        platform: Some("linux/s390x".parse().unwrap()),
        ..Default::default()
    };
    let p = pull(&s, &name, &opts, &(), &AtomicBool::new(false)).unwrap();
    assert_eq!(p.id, other.config.digest);
    let opts = PullOptions {
        platform: Some("linux/mips64le".parse().unwrap()),
        ..Default::default()
    };
    let e = pull(&s, &name, &opts, &(), &AtomicBool::new(false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("linux/s390x") && e.contains("mips64le"), "{e}");
}

#[test]
fn a_pull_cut_for_good_resumes_on_the_next_pull() {
    let r = Registry::start(Auth::None);
    let img = make_image(24);
    upload(&r.addr(), "cut/app", "v1", &img, None);
    let big = img.layers[0].digest.clone();
    let p = FaultProxy::start("127.0.0.1", &r.addr());
    // more cuts than the retry policy's attempts: this pull fails
    p.add(
        "GET",
        &format!("/blobs/{big}"),
        Fault::CutAfter { bytes: 100_000 },
        4,
    );
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    let name = format!("{}/cut/app:v1", p.addr);
    let e = do_pull(&s, &name).unwrap_err().to_string();
    assert!(e.contains(&big.to_string()), "{e}");
    assert!(s.resolve(&name).is_err(), "nothing recorded");
    let kept = fs::metadata(s.paths().partial_blob(&big)).unwrap().len();
    assert_eq!(kept, 400_000, "four cuts of 100000 bytes, each resumed");
    p.clear_seen();
    do_pull(&s, &name).unwrap();
    assert_stored(&s, &img);
    let ranges: Vec<_> = p.seen().into_iter().filter_map(|x| x.range).collect();
    assert_eq!(ranges, vec![format!("bytes={kept}-")]);
}

#[test]
fn a_tampered_layer_is_refused_and_nothing_kept() {
    let r = Registry::start(Auth::None);
    let img = make_image(25);
    upload(&r.addr(), "bad/app", "v1", &img, None);
    let small = img.layers[1].digest.clone();
    let path = r.blob_path(small.hex());
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x55;
    fs::write(&path, &bytes).unwrap();
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    let name = format!("{}/bad/app:v1", r.addr());
    let e = do_pull(&s, &name).unwrap_err().to_string();
    assert!(e.contains(&small.to_string()), "{e}");
    assert!(!s.has_blob(&small));
    assert!(s.resolve(&name).is_err());
    let kept = fs::metadata(s.paths().partial_blob(&small)).map_or(0, |m| m.len());
    assert_eq!(kept, 0, "a wrong blob is not kept for resuming");
}

#[test]
fn push_mounts_from_a_known_repository_and_repush_changes_nothing() {
    let r = Registry::start(Auth::None);
    let img = make_image(26);
    upload(&r.addr(), "src/app", "v1", &img, None);
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    do_pull(&s, &format!("{}/src/app:v1", r.addr())).unwrap();
    // tag it into another repository of the same registry, then push
    let dst = Reference::parse(&format!("{}/dst/app:v2", r.addr())).unwrap();
    let m = Digest::of(&img.manifest);
    s.update(|db| {
        db.tag(&dst.to_string(), &m);
        Ok::<(), camada::store::StoreError>(())
    })
    .unwrap();
    let pushed = push(&s, &dst, true, 3, &()).unwrap();
    assert_eq!(pushed.digest, m, "blobs and manifest sent as stored");
    assert_eq!(pushed.size, img.manifest.len() as u64);
    assert!(
        pushed
            .blobs
            .iter()
            .all(|(_, o)| *o == PushOutcome::MountedFrom("src/app".into())),
        "{:?}",
        pushed.blobs
    );
    let again = push(&s, &dst, true, 3, &()).unwrap();
    assert!(again.blobs.iter().all(|(_, o)| *o == PushOutcome::Existed));
    let raw = reg::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/dst/app:v2", r.addr()),
    ]);
    assert_eq!(raw, img.manifest);
}

#[test]
fn login_saves_only_good_credentials_and_logout_removes_them() {
    let r = Registry::start(Auth::Htpasswd {
        user: "dora".into(),
        password: "pw1".into(),
    });
    let addr = r.addr();
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    let paths = s.paths().clone();
    let bad = Credentials {
        username: "dora".into(),
        password: "nope".into(),
    };
    let e = login::login(&paths, &addr, bad, true)
        .unwrap_err()
        .to_string();
    assert_eq!(e, format!("login to {addr} failed: unauthorized"));
    assert!(!paths.auth_json().exists());
    let img = make_image(27);
    let name = format!("{addr}/priv/app:v1");
    let e = push(&s, &Reference::parse(&name).unwrap(), true, 3, &())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("No such image") || e.contains("not found") || e.contains("no such"),
        "{e}"
    );
    let e = do_pull(&s, &name).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("pulling {addr}/priv/app: unauthorized: run camada login {addr}")
    );
    let good = Credentials {
        username: "dora".into(),
        password: "pw1".into(),
    };
    login::login(&paths, &addr, good.clone(), true).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(paths.auth_json())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // the stored credentials are used
    upload(&addr, "priv/app", "v1", &img, Some(good));
    do_pull(&s, &name).unwrap();
    login::logout(&paths, &addr).unwrap();
    assert!(login::logout(&paths, &addr).is_err());
    let e = do_pull(&s, &name).unwrap_err().to_string();
    assert!(e.contains("unauthorized"), "{e}");
}
