//! The store across processes: concurrent `images.json` updates from separate processes,
//! kill -9 in the middle of writes, and the cleanup of a dead command's temp files.
//!
//! The worker processes are this test binary run again with `CAMADA_STORE_WORKER` set: the
//! `worker` test does the work in the child and nothing in a normal run.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use std::{fs, thread};

use camada::digest::Digest;
use camada::store::{Store, StoreError};
use common::{paths_in, store_in};

/// Runs this binary's `worker` test in a child process doing `job` on the store at `root`.
fn spawn_worker(root: &Path, job: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["worker", "--exact", "--nocapture", "--test-threads=1"])
        .env("CAMADA_STORE_WORKER", job)
        .env("CAMADA_STORE_WORKER_ROOT", root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
fn worker() {
    let Ok(job) = std::env::var("CAMADA_STORE_WORKER") else {
        return;
    };
    let root = PathBuf::from(std::env::var("CAMADA_STORE_WORKER_ROOT").unwrap());
    let store = store_in(&root);
    let manifest = Digest::of(b"manifest");
    let config = Digest::of(b"config");
    let mut parts = job.splitn(2, ':');
    match (parts.next().unwrap(), parts.next()) {
        // tag:<name>:<count> — add <count> tags, one update each
        ("tag", Some(rest)) => {
            let (name, count) = rest.split_once(':').unwrap();
            for i in 0..count.parse::<u32>().unwrap() {
                store
                    .update(|db| {
                        db.add_image(&manifest, &config, None);
                        db.tag(&format!("docker.io/library/{name}:{i}"), &manifest);
                        Ok::<_, StoreError>(())
                    })
                    .unwrap();
            }
        }
        // forever: update and write blobs until killed (or 30 s, if the test died)
        ("forever", _) => {
            println!("ready");
            std::io::stdout().flush().unwrap();
            let start = std::time::Instant::now();
            for i in 0u64.. {
                if start.elapsed() > Duration::from_secs(30) {
                    break;
                }
                store
                    .update(|db| {
                        db.add_image(&manifest, &config, None);
                        db.tag(&format!("docker.io/library/f:{}", i % 50), &manifest);
                        Ok::<_, StoreError>(())
                    })
                    .unwrap();
                let mut w = store.blob_writer(None, None).unwrap();
                w.write_all(&vec![i as u8; 200_000]).unwrap();
                if i % 2 == 0 {
                    w.commit().unwrap();
                }
            }
        }
        // hold: start a blob and a staged layer, then wait to be killed
        ("hold", _) => {
            let mut w = store.blob_writer(None, None).unwrap();
            w.write_all(b"half a blob").unwrap();
            w.flush().unwrap();
            let stage = store.stage_layer().unwrap();
            stage.create_files().unwrap();
            println!("ready");
            std::io::stdout().flush().unwrap();
            thread::sleep(Duration::from_secs(30));
            drop((w, stage));
        }
        _ => panic!("unknown job {job}"),
    }
}

/// Waits for the child to print "ready".
fn wait_ready(child: &mut Child) {
    use std::io::BufRead;
    let out = child.stdout.as_mut().unwrap();
    let mut reader = std::io::BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "worker exited");
        if line.trim_end().ends_with("ready") {
            return;
        }
    }
}

fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn concurrent_processes_never_lose_a_tag() {
    let t = tempfile::tempdir().unwrap();
    store_in(t.path());
    let mut children: Vec<Child> = (0..6)
        .map(|n| spawn_worker(t.path(), &format!("tag:p{n}:15")))
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let store = store_in(t.path());
    let db = store.images().unwrap();
    assert_eq!(db.tags.len(), 6 * 15, "{:?}", db.tags.keys());
    assert_eq!(fs::read_dir(store.paths().tmp_dir()).unwrap().count(), 0);
}

#[test]
fn kill_9_mid_write_leaves_a_usable_store() {
    let t = tempfile::tempdir().unwrap();
    let p = paths_in(t.path());
    Store::open(&p).unwrap();
    for round in 0..4 {
        let mut child = spawn_worker(t.path(), "forever");
        wait_ready(&mut child);
        thread::sleep(Duration::from_millis(50 + 37 * round));
        kill9(&mut child);
        // the next command: opens, cleans, reads and writes normally
        let store = Store::open(&p).unwrap();
        let db = store.images().unwrap();
        // only what was written whole: the worker's f:0..49 and this loop's after:kill
        // (a fast worker reaches all 50 before the kill: 51 tags is the most there can be)
        let expected = |t: &str| {
            t == "docker.io/library/after:kill"
                || t.strip_prefix("docker.io/library/f:")
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n < 50)
        };
        assert!(
            db.tags.keys().all(|t| expected(t)),
            "round {round}: unexpected tags {:?}",
            db.tags.keys().collect::<Vec<_>>()
        );
        assert!(round == 0 || db.tags.contains_key("docker.io/library/after:kill"));
        assert_eq!(
            fs::read_dir(p.tmp_dir()).unwrap().count(),
            0,
            "round {round}: leftovers not cleaned"
        );
        // every published blob is whole
        for e in fs::read_dir(p.blobs_dir()).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            let d = Digest::from_hex(&name).unwrap();
            store.read_blob(&d).unwrap();
        }
        store
            .update(|db| {
                db.tag("docker.io/library/after:kill", &Digest::of(b"manifest"));
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
}

#[test]
fn open_keeps_a_live_commands_temp_files_and_removes_a_dead_ones() {
    let t = tempfile::tempdir().unwrap();
    let p = paths_in(t.path());
    Store::open(&p).unwrap();
    let mut child = spawn_worker(t.path(), "hold");
    wait_ready(&mut child);
    let count = || fs::read_dir(p.tmp_dir()).unwrap().count();
    assert_eq!(count(), 2);
    Store::open(&p).unwrap();
    assert_eq!(count(), 2, "a live command's temp files were removed");
    kill9(&mut child);
    Store::open(&p).unwrap();
    assert_eq!(count(), 0);
    // no half layer or blob became visible
    assert_eq!(fs::read_dir(p.layers_dir()).unwrap().count(), 0);
    assert_eq!(fs::read_dir(p.blobs_dir()).unwrap().count(), 0);
}

#[test]
fn a_slow_update_does_not_lose_a_concurrent_one() {
    // one thread holds the lock inside update while another process writes
    let t = tempfile::tempdir().unwrap();
    let p = paths_in(t.path());
    let store = Store::open(&p).unwrap();
    let m = Digest::of(b"m");
    let mut child = None;
    store
        .update(|db| {
            db.add_image(&m, &Digest::of(b"c"), None);
            db.tag("docker.io/library/slow:1", &m);
            child = Some(spawn_worker(t.path(), "tag:quick:1"));
            thread::sleep(Duration::from_millis(300));
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert!(child.unwrap().wait().unwrap().success());
    let db = store.images().unwrap();
    assert!(db.tags.contains_key("docker.io/library/slow:1"));
    assert!(db.tags.contains_key("docker.io/library/quick:0"));
}

/// An imported one-layer image tagged `base` in the store of `c` (made as root, then
/// handed to `c`'s user).
fn store_with_image(c: &common::Camada) -> Digest {
    let store = c.store();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    b.append_data(&mut h, "hi", &b"hi"[..]).unwrap();
    let tarball = c.dir().join("rootfs.tar");
    fs::write(&tarball, b.into_inner().unwrap()).unwrap();
    let id = camada::engine::archive::import(
        &store,
        camada::engine::Input::File(tarball),
        &camada::engine::ImportRequest {
            reference: Some("base".into()),
            ..Default::default()
        },
    )
    .unwrap();
    if let Some(u) = c.user() {
        u.chown_tree(&c.root());
    }
    id
}

/// `camada tag` run N times at once (the real binary, separate processes).
fn parallel_tags(c: &common::Camada) {
    let id = store_with_image(c);
    let n = 8;
    let children: Vec<Child> = (0..n)
        .map(|i| {
            c.cmd(["tag", "base", &format!("t{i}:v{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "camada tag failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let db: camada::store::ImageDb =
        serde_json::from_slice(&fs::read(c.root().join("images.json")).unwrap()).unwrap();
    for i in 0..n {
        let name = format!("docker.io/library/t{i}:v{i}");
        let m = db
            .tags
            .get(&name)
            .unwrap_or_else(|| panic!("{name} was lost"));
        assert_eq!(db.images[m].config, id);
    }
    assert_eq!(db.tags.len(), n + 1);
    assert_eq!(fs::read_dir(c.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn parallel_camada_tag_never_loses_a_tag() {
    parallel_tags(&common::Camada::new());
}

#[test]
fn parallel_camada_tag_as_the_unprivileged_user() {
    let Some(c) = common::Camada::as_user() else {
        return;
    };
    parallel_tags(&c);
}

/// Ingests a tar of `files` (path, content; `.wh.` names are whiteouts) as a layer.
fn layer(store: &Store, files: &[(&str, &[u8])]) -> camada::digest::DiffId {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, *data).unwrap();
    }
    let bytes = b.into_inner().unwrap();
    let stage = store.stage_layer().unwrap();
    let (tar, idx) = stage.create_files().unwrap();
    let got = camada::layer::ingest(&bytes[..], tar, idx).unwrap();
    stage.commit(&got.diff_id).unwrap();
    got.diff_id
}

#[test]
fn chain_index_is_merged_once_and_cached() {
    let t = tempfile::tempdir().unwrap();
    let store = store_in(t.path());
    let l0 = layer(&store, &[("etc/a", b"a0"), ("etc/b", b"b0")]);
    let l1 = layer(&store, &[("etc/a", b"a1"), ("etc/.wh.b", b"")]);
    let chain = [l0.clone(), l1.clone()];
    // several commands (threads) want it at once: all get the same complete file
    let results: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| store.chain_index(&chain).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (id, path) = results[0].clone();
    assert!(results.iter().all(|r| *r == (id.clone(), path.clone())));
    assert_eq!(Some(id.clone()), camada::digest::chain_id(&chain));
    assert_eq!(path, store.paths().chain_index(&id));
    let bytes = fs::read(&path).unwrap();
    let index = camada::tarindex::Index::open(&bytes[..]).unwrap();
    let a = index.lookup(b"etc/a").expect("etc/a");
    assert_eq!(index.get(a).unwrap().layer(), 1, "the upper etc/a wins");
    assert!(index.lookup(b"etc/b").is_none(), "the whiteout hides etc/b");
    assert_eq!(fs::read_dir(store.paths().tmp_dir()).unwrap().count(), 0);
    // cached: the file is not rebuilt
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    thread::sleep(Duration::from_millis(20));
    store.chain_index(&chain).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    // a single layer is a chain too (its hardlinks resolved by the merge)
    let (single, _) = store.chain_index(std::slice::from_ref(&l0)).unwrap();
    assert_eq!(single.0, l0.0);
}
