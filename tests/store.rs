//! The store across processes: concurrent `images.json` updates from separate processes,
//! kill -9 in the middle of writes, and the cleanup of a dead command's temp files.
//!
//! The worker processes are this test binary run again with `CAMADA_STORE_WORKER` set: the
//! `worker` test does the work in the child and nothing in a normal run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use std::{fs, thread};

use camada::digest::Digest;
use camada::paths::{Env, Paths};
use camada::store::{Store, StoreError};

fn paths(root: &Path) -> Paths {
    let env = Env {
        home: Some(root.to_path_buf()),
        ..Env::default()
    };
    Paths::resolve(Some(&root.join("root")), Some(&root.join("run")), &env).unwrap()
}

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
    let store = Store::open(&paths(&root)).unwrap();
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
    Store::open(&paths(t.path())).unwrap();
    let mut children: Vec<Child> = (0..6)
        .map(|n| spawn_worker(t.path(), &format!("tag:p{n}:15")))
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let store = Store::open(&paths(t.path())).unwrap();
    let db = store.images().unwrap();
    assert_eq!(db.tags.len(), 6 * 15, "{:?}", db.tags.keys());
    assert_eq!(fs::read_dir(store.paths().tmp_dir()).unwrap().count(), 0);
}

#[test]
fn kill_9_mid_write_leaves_a_usable_store() {
    let t = tempfile::tempdir().unwrap();
    let p = paths(t.path());
    Store::open(&p).unwrap();
    for round in 0..4 {
        let mut child = spawn_worker(t.path(), "forever");
        wait_ready(&mut child);
        thread::sleep(Duration::from_millis(50 + 37 * round));
        kill9(&mut child);
        // the next command: opens, cleans, reads and writes normally
        let store = Store::open(&p).unwrap();
        let db = store.images().unwrap();
        assert!(db.tags.len() <= 50);
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
    let p = paths(t.path());
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
    let p = paths(t.path());
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
