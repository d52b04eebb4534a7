//! Bind mounts and volumes through the real binary, as root, as `camadatest` with its subuid
//! range, and in single-id mode: `-v HOST:CTR[:ro]` (files, dirs, read-only really
//! read-only, no more rights than the user), named volumes (filled from the image, kept
//! across containers, listed, refused to `volume rm` while used), anonymous volumes (image
//! VOLUMEs, `-v /path`; gone with `rm -v` and `run --rm`, kept by a plain `rm`).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::engines::{ALL, Who, engines};
use common::{Camada, base_image};

/// The names `volume ls -q` lists.
fn volumes(c: &Camada) -> Vec<String> {
    c.ok(["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect()
}

/// `volimg`: the base image plus `/app` (owned 1000:1000, its file 0640) with
/// `VOLUME /etc /data /app`.
fn volume_image(c: &Camada) {
    let rootfs = std::fs::read(&base_image().rootfs_tar).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(rootfs.as_slice());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        b.append(&h, &mut e).unwrap();
    }
    for (path, dir, mode, data) in [
        ("app/", true, 0o750, &b""[..]),
        ("app/owned", false, 0o640, &b"app data\n"[..]),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, data).unwrap();
    }
    let tar = c.work().join("volimg.tar");
    std::fs::write(&tar, b.into_inner().unwrap()).unwrap();
    if let Some(u) = c.user() {
        u.chown_tree(&tar);
    }
    c.run([
        "import",
        "-c",
        "VOLUME /etc /data /app",
        tar.to_str().unwrap(),
        "volimg",
    ])
    .success();
}

#[test]
fn bind_mounts_rw_ro_files_and_host_rights() {
    for (who, c) in engines(ALL) {
        let dir = c.work().join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("in"), "from host\n").unwrap();
        std::fs::write(c.work().join("single"), "one file\n").unwrap();
        if let Some(u) = c.user() {
            u.chown_tree(&c.work());
        }
        let rw = format!("{}:/data", dir.display());
        let ro = format!("{}:/ro:ro", dir.display());
        let file = format!("{}:/etc/single:ro", c.work().join("single").display());
        c.run([
            "run",
            "--rm",
            "-v",
            &rw,
            "-v",
            &ro,
            "-v",
            &file,
            "base",
            "sh",
            "-c",
            "cat /data/in /etc/single && echo back > /data/out && cat /ro/out",
        ])
        .success()
        .stdout_is("from host\none file\nback\n");
        assert_eq!(std::fs::read_to_string(dir.join("out")).unwrap(), "back\n");
        // read-only is the kernel's answer, for a new file and an existing one
        c.run([
            "run",
            "--rm",
            "-v",
            &ro,
            "base",
            "sh",
            "-c",
            "touch /ro/new; echo x >> /ro/in",
        ])
        .exit(1)
        .stderr_has("Read-only file system");
        assert_eq!(
            std::fs::read_to_string(dir.join("in")).unwrap(),
            "from host\n"
        );
        // a read-only bind over /etc: the user's files, no generated /etc/hosts in them
        c.run([
            "run",
            "--rm",
            "-v",
            &format!("{}:/etc:ro", dir.display()),
            "base",
            "cat",
            "/etc/in",
        ])
        .success()
        .stdout_is("from host\n");
        assert!(!dir.join("hosts").exists());
        // a relative host path is the caller's directory's; a missing one becomes a dir
        c.run([
            "run",
            "--rm",
            "-v",
            "./shared:/rel",
            "base",
            "cat",
            "/rel/in",
        ])
        .success()
        .stdout_is("from host\n");
        let missing = c.work().join("made/by/run");
        c.run([
            "run",
            "--rm",
            "-v",
            &format!("{}:/m", missing.display()),
            "base",
            "true",
        ])
        .success();
        assert!(missing.is_dir(), "{who:?}: missing bind source made");
        if c.unprivileged() {
            // a root-owned 0600 host file stays unreadable: the container's root is the user
            let secret = c.dir().join("secret");
            std::fs::write(&secret, "root only\n").unwrap();
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
            c.run([
                "run",
                "--rm",
                "-v",
                &format!("{}:/s", secret.display()),
                "base",
                "cat",
                "/s",
            ])
            .exit(1)
            .stderr_has("Permission denied")
            .stdout_lacks("root only");
        }
        // --mount: the same binds and volumes, but a missing bind source is an error
        let mount = format!("type=bind,src={},dst=/m,readonly", dir.display());
        c.run([
            "run",
            "--rm",
            "--mount",
            &mount,
            "--mount",
            "type=volume,src=mv,dst=/v",
            "base",
            "sh",
            "-c",
            "cat /m/in; echo v > /v/f; touch /m/new",
        ])
        .exit(1)
        .stdout_is("from host\n")
        .stderr_has("Read-only file system");
        assert!(c.root().join("volumes/mv/_data/f").is_file());
        c.run([
            "run",
            "--rm",
            "--mount",
            "type=bind,src=/no/such/dir,dst=/m",
            "base",
            "true",
        ])
        .engine_error()
        .stderr_has("bind source path does not exist: /no/such/dir");
        let id = c.ok(["create", "-v", &ro, "base", "true"]);
        let json = c.ok(["inspect", id.trim()]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let m = &v[0]["Mounts"][0];
        assert_eq!(m["Type"], "bind", "{json}");
        assert_eq!(m["Source"], dir.display().to_string());
        assert_eq!(m["Destination"], "/ro");
        assert_eq!(m["RW"], false);
        eprintln!("{who:?}: ok");
    }
}

#[test]
fn named_volume_is_filled_kept_listed_and_refused_while_used() {
    for (who, c) in engines(ALL) {
        // filled from the image's /etc on first use, owned as in the image
        c.run([
            "run",
            "--rm",
            "-v",
            "cfg:/etc",
            "base",
            "sh",
            "-c",
            "grep -c root /etc/passwd && echo kept > /etc/note",
        ])
        .success()
        .stdout_is("1\n");
        let data = c.root().join("volumes/cfg/_data");
        let meta = std::fs::metadata(data.join("passwd")).unwrap();
        assert_eq!(
            meta.uid(),
            c.uid(),
            "{who:?}: the copy is the container root's"
        );
        // kept for the next container, wherever it is mounted
        c.run([
            "run",
            "--rm",
            "-v",
            "cfg:/mnt:ro",
            "base",
            "cat",
            "/mnt/note",
        ])
        .success()
        .stdout_is("kept\n");
        c.run(["volume", "ls"])
            .success()
            .stdout_is("DRIVER    VOLUME NAME\nlocal     cfg\n");
        let json = c.ok(["volume", "inspect", "cfg"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["Name"], "cfg");
        assert_eq!(v[0]["Driver"], "local");
        assert_eq!(v[0]["Scope"], "local");
        assert_eq!(v[0]["Mountpoint"], data.display().to_string());
        assert!(v[0]["CreatedAt"].as_str().unwrap().ends_with('Z'), "{json}");
        // plain inspect finds volumes too (images first, as docker)
        c.run(["inspect", "-f", "{{.Mountpoint}}", "cfg"])
            .success()
            .stdout_is(&format!("{}\n", data.display()));
        c.run(["inspect", "--type", "volume", "-f", "{{.Driver}}", "cfg"])
            .success()
            .stdout_is("local\n");
        // a stopped container still uses it
        let id = c.ok(["create", "-v", "cfg:/cfg", "base", "true"]);
        let id = id.trim();
        c.run(["start", "-a", id]).success();
        c.run(["volume", "rm", "cfg"])
            .engine_error()
            .stderr_has("volume is in use")
            .stderr_has(id);
        let json = c.ok(["inspect", id]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let m = &v[0]["Mounts"][0];
        assert_eq!(
            (m["Type"].as_str(), m["Name"].as_str()),
            (Some("volume"), Some("cfg"))
        );
        // a named volume outlives rm -v
        c.run(["rm", "-v", id]).success();
        assert_eq!(volumes(&c), ["cfg"]);
        c.run(["volume", "rm", "cfg"]).success().stdout_is("cfg\n");
        assert!(volumes(&c).is_empty());
        assert!(!c.root().join("volumes/cfg").exists());
        c.run(["volume", "rm", "cfg"])
            .engine_error()
            .stderr_has("No such volume: cfg");
        c.run(["run", "--rm", "-v", "a:b:/x", "base", "true"])
            .engine_error();
        c.run(["run", "--rm", "-v", "bad name:/x", "base", "true"])
            .engine_error()
            .stderr_has("invalid characters for a local volume name");
        c.run(["volume", "create", "made"])
            .success()
            .stdout_is("made\n");
        c.run(["volume", "create", "--label", "tier=db", "labelled"])
            .success();
        let id = c.ok(["create", "-v", "made:/m", "base", "true"]);
        c.run(["volume", "ls", "-q", "-f", "dangling=true"])
            .success()
            .stdout_is("labelled\n");
        c.run(["volume", "ls", "-q", "--filter", "dangling=false"])
            .success()
            .stdout_is("made\n");
        c.run([
            "volume",
            "ls",
            "--format",
            "{{.Name}}={{.Labels}}",
            "-f",
            "label=tier",
        ])
        .success()
        .stdout_is("labelled=tier=db\n");
        c.run(["rm", id.trim()]).success();
        c.run(["volume", "rm", "labelled"]).success();
        // a volume gone from under a created container (say, a prune raced its create) is
        // made again, listed, when the container starts
        let id = c.ok(["create", "-v", "again:/a", "base", "touch", "/a/x"]);
        std::fs::remove_dir_all(c.root().join("volumes/again")).unwrap();
        c.run(["start", "-a", id.trim()]).success();
        assert!(c.root().join("volumes/again/_data/x").is_file());
        c.run(["rm", id.trim()]).success();
        c.run(["volume", "rm", "again"]).success();
        c.run(["volume", "prune", "-f"]).success();
        assert_eq!(volumes(&c), ["made"], "plain prune keeps named volumes");
        c.run(["volume", "prune", "-a", "-f"])
            .success()
            .stdout_has("Deleted Volumes:\nmade\n");
        assert!(volumes(&c).is_empty());
        eprintln!("{who:?}: ok");
    }
}

fn is_anonymous_name(n: &str) -> bool {
    n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_run_rm() {
    for (who, c) in engines(ALL) {
        volume_image(&c);
        // image VOLUMEs and -v /path: one anonymous volume each; a -v on a VOLUME path wins
        let id = c.ok([
            "create",
            "-v",
            "/scratch",
            "-v",
            "keep:/data",
            "volimg",
            "sh",
            "-c",
            "cat /etc/passwd >/dev/null && echo s > /scratch/f",
        ]);
        let id = id.trim();
        c.run(["start", "-a", id]).success();
        let vols = volumes(&c);
        let anon: Vec<&String> = vols.iter().filter(|n| is_anonymous_name(n)).collect();
        assert_eq!(anon.len(), 3, "{who:?}: /etc, /app and /scratch: {vols:?}");
        // the copy of the image's /app keeps its owners (mapped) and modes
        let json = c.ok(["inspect", id]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let app = v[0]["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == "/app")
            .unwrap_or_else(|| panic!("/app mounted: {json}"));
        let app = Path::new(app["Source"].as_str().unwrap());
        let owned = std::fs::metadata(app.join("owned")).unwrap();
        let host_1000 = match who {
            Who::Root => 1000,
            Who::User => c.user().unwrap().subid_start + 999,
            Who::SingleId => c.uid(),
        };
        if who != Who::SingleId {
            assert_eq!(
                owned.uid(),
                host_1000,
                "{who:?}: container uid 1000 on the host"
            );
        }
        assert_eq!(owned.mode() & 0o7777, 0o640);
        assert_eq!(std::fs::metadata(app).unwrap().mode() & 0o7777, 0o750);
        c.run(["run", "--rm", "-u", "1000", "volimg", "cat", "/app/owned"])
            .success()
            .stdout_is("app data\n");
        assert!(vols.contains(&"keep".to_string()));
        for n in &anon {
            let json = c.ok(["volume", "inspect", n]);
            assert!(json.contains("com.docker.volume.anonymous"), "{json}");
        }
        // files made under another container id (a subuid on the host) go too
        if who != Who::SingleId {
            let id2 = c.ok([
                "create", "volimg", "sh", "-c",
                "mkdir /data/d && touch /data/d/f && chown -R 1000:1000 /data/d && chmod 700 /data/d",
            ]);
            c.run(["start", "-a", id2.trim()]).success();
            assert_eq!(volumes(&c).len(), 7);
            c.run(["rm", "-v", id2.trim()]).success();
        }
        c.run(["rm", "-v", id]).success();
        assert_eq!(volumes(&c), ["keep"], "{who:?}: anonymous volumes removed");
        c.run(["run", "--rm", "volimg", "ls", "/etc/passwd"])
            .success();
        assert_eq!(volumes(&c), ["keep"], "{who:?}: run --rm removes them");
        // a plain rm keeps them for volume prune
        let id = c.ok(["create", "volimg", "true"]);
        c.run(["rm", id.trim()]).success();
        assert_eq!(volumes(&c).len(), 4);
        c.run(["volume", "prune", "-f"])
            .success()
            .stdout_has("Deleted Volumes:");
        assert_eq!(volumes(&c), ["keep"]);
        let leftovers: Vec<_> = std::fs::read_dir(c.root().join("volumes"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        assert!(Path::new(&c.root().join("volumes/keep/_data")).is_dir());
        eprintln!("{who:?}: ok");
    }
}

/// The cells of `system df`'s `Local Volumes` row.
fn df_volumes(c: &Camada) -> Vec<String> {
    let df = c.ok(["system", "df"]);
    let row = df
        .lines()
        .find(|l| l.starts_with("Local Volumes"))
        .unwrap_or_else(|| panic!("no Local Volumes row: {df}"));
    row.split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn system_df_counts_volumes_used_and_reclaimable() {
    for (who, c) in engines(ALL) {
        assert_eq!(
            df_volumes(&c),
            ["Local Volumes", "0", "0", "0B", "0B"],
            "{who:?}"
        );
        let fill = |name: &str, bytes: u32| {
            c.ok([
                "run",
                "--rm",
                "-v",
                &format!("{name}:/v"),
                "base",
                "sh",
                "-c",
                &format!("head -c {bytes} /dev/zero > /v/data"),
            ]);
        };
        fill("used", 100_000);
        fill("spare", 30_000);
        // a stopped container names it: in use, as for docker
        c.ok([
            "create", "--name", "holder", "-v", "used:/v", "base", "true",
        ]);
        assert_eq!(
            df_volumes(&c),
            ["Local Volumes", "2", "1", "130kB", "30kB (23%)"],
            "{who:?}"
        );
        c.ok(["rm", "holder"]);
        assert_eq!(
            df_volumes(&c),
            ["Local Volumes", "2", "0", "130kB", "130kB (100%)"],
            "{who:?}"
        );
        eprintln!("{who:?}: ok");
    }
}

#[test]
fn cp_into_a_stopped_containers_volume_writes_the_volume() {
    for (who, c) in engines(ALL) {
        let host = c.work().join("hostdir");
        std::fs::create_dir(&host).unwrap();
        let file = c.work().join("in");
        std::fs::write(&file, "copied in\n").unwrap();
        if let Some(u) = c.user() {
            u.chown_tree(&c.work());
        }
        let id = c.ok([
            "create",
            "--name",
            "cv",
            "-v",
            "named:/data",
            "-v",
            &format!("{}:/hd", host.display()),
            "-v",
            "locked:/ro:ro",
            "base",
            "sh",
            "-c",
            "cat /data/in /hd/in",
        ]);
        let id = id.trim();
        let file = file.to_str().unwrap();
        c.ok(["cp", file, "cv:/data/in"]);
        c.ok(["cp", file, "cv:/hd/"]);
        // the volume and the bind got the files; the writable layer did not
        let volume = c.root().join("volumes/named/_data/in");
        assert_eq!(
            std::fs::read_to_string(&volume).unwrap(),
            "copied in\n",
            "{who:?}"
        );
        assert_eq!(
            std::fs::read_to_string(host.join("in")).unwrap(),
            "copied in\n",
            "{who:?}"
        );
        let upper = c.root().join("containers").join(id).join("upper");
        for p in ["data/in", "hd/in"] {
            assert!(
                !upper.join(p).exists(),
                "{who:?}: {p} in the writable layer"
            );
        }
        // a read-only volume stays so
        c.run(["cp", file, "cv:/ro/in"])
            .engine_error()
            .stderr_has("Read-only file system");
        c.run(["start", "-a", "cv"])
            .success()
            .stdout_is("copied in\ncopied in\n");
        // another container of the volume sees it; cp out of a stopped one reads it
        c.ok([
            "run",
            "--rm",
            "-v",
            "named:/data",
            "base",
            "sh",
            "-c",
            "echo more > /data/out",
        ]);
        let out = c.work().join("out");
        c.ok(["cp", "cv:/data/out", out.to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "more\n", "{who:?}");
        // the copy's mount server is gone, its volumes with it
        assert!(
            !c.runroot().join("mounts").join(id).exists(),
            "{who:?}: a mount server was left"
        );
        eprintln!("{who:?}: ok");
    }
}
