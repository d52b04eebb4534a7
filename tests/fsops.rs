//! `diff`, `commit`, `cp`, `mount`/`umount` and `unshare` through the real binary, as root,
//! as `camadatest` and in single-id mode (see common::engines), on running and stopped
//! containers.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::engines::{ALL, Engine, Who, engines};
use common::{Camada, Run};

/// A named container that made the same changes on every engine: added /data (a file
/// owned by 1000 where ids beyond root are mapped, a symlink to /etc/shadow, a dir), changed
/// /etc/passwd, deleted /etc/group, replaced /srv's contents (opaque).
fn changed_container(c: &Camada, who: Who, name: &str, detach: bool) {
    let chown = if who == Who::SingleId {
        ""
    } else {
        "chown 1000:1000 /data/owned;"
    };
    let script = format!(
        "mkdir -p /data/dir /srv/old && echo one > /data/dir/f && echo own > /data/owned && {chown} \
         ln -s /etc/shadow /data/evil && echo x >> /etc/passwd && rm /etc/group && \
         rm -rf /srv && mkdir /srv && echo n > /srv/new{}",
        if detach { " && sleep 300" } else { "" }
    );
    let mut args = vec!["run", "--name", name];
    if detach {
        args.push("-d");
    }
    args.extend(["base", "sh", "-c", &script]);
    c.run(args).success();
}

const EXPECTED_DIFF: &str = "\
A /data
A /data/dir
A /data/dir/f
A /data/evil
A /data/owned
C /etc
D /etc/group
C /etc/passwd
A /srv
A /srv/new
";

#[test]
fn diff_lists_exactly_the_added_changed_and_deleted_paths() {
    for (who, c) in engines(ALL) {
        // the base has no /srv: removing and making it again is an add
        changed_container(&c, who, "stopped", false);
        c.run(["diff", "stopped"])
            .success()
            .stdout_is(EXPECTED_DIFF);
        changed_container(&c, who, "running", true);
        wait_for_file(&c, "running", "/srv/new");
        c.run(["container", "diff", "running"])
            .success()
            .stdout_is(EXPECTED_DIFF);
        // nothing changed: nothing listed (the runtime's mount points are not changes)
        c.run(["create", "--name", "fresh", "base", "true"])
            .success();
        c.run(["diff", "fresh"]).success().stdout_is("");
        c.run(["start", "-a", "fresh"]).success();
        c.run(["diff", "fresh"]).success().stdout_is("");
        c.run(["diff", "nosuch"])
            .engine_error()
            .stderr_has("nosuch");
        eprintln!("{who:?}: ok");
    }
}

/// Waits until `path` exists in a running container (its script is past that point).
fn wait_for_file(c: &Camada, name: &str, path: &str) {
    for _ in 0..200 {
        if c.run(["exec", name, "test", "-e", path]).code() == Some(0) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{path} never appeared in {name}");
}

#[test]
fn a_committed_image_holds_the_change_and_runs() {
    for (who, c) in engines(ALL) {
        changed_container(&c, who, "src", false);
        let id = c.ok([
            "commit",
            "-m",
            "my change",
            "-a",
            "Ann <ann@example.com>",
            "-c",
            "ENV COMMITTED=yes",
            "-c",
            "CMD [\"cat\", \"/data/dir/f\"]",
            "src",
            "snap:1",
        ]);
        assert!(id.starts_with("sha256:") && id.trim().len() == 71, "{id}");
        c.run(["run", "--rm", "snap:1"])
            .success()
            .stdout_is("one\n");
        c.run([
            "run",
            "--rm",
            "snap:1",
            "sh",
            "-c",
            "echo $COMMITTED; test -e /etc/group || echo gone; tail -n1 /etc/passwd; \
             readlink /data/evil; ls /srv",
        ])
        .success()
        .stdout_is("yes\ngone\nx\n/etc/shadow\nnew\n");
        if who != Who::SingleId {
            c.run([
                "run",
                "--rm",
                "snap:1",
                "stat",
                "-c",
                "%u:%g",
                "/data/owned",
            ])
            .success()
            .stdout_is("1000:1000\n");
        }
        // history: the step on top of the base's, docker's created_by and our message
        let h = c.ok([
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}|{{.Comment}}",
            "snap:1",
        ]);
        let top = h.lines().next().unwrap();
        assert!(top.starts_with("sh -c mkdir -p /data/dir"), "{h}");
        assert!(top.ends_with("|my change"), "{h}");
        c.run(["inspect", "-f", "{{.Author}} {{.Comment}}", "snap:1"])
            .success()
            .stdout_is("Ann <ann@example.com> my change\n");
        // a running container, without a name for the image
        changed_container(&c, who, "live", true);
        wait_for_file(&c, "live", "/srv/new");
        let id = c.ok(["commit", "live"]);
        c.run(["run", "--rm", id.trim(), "cat", "/srv/new"])
            .success()
            .stdout_is("n\n");
        // commit paused the container's processes while it read: they run again after
        let top = c.ok(["top", "live", "-o", "pid,stat"]);
        let states: Vec<&str> = top
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert!(
            !states.is_empty() && states.iter().all(|s| !s.starts_with('T')),
            "{who:?}: {top}"
        );
        // nothing changed: an empty step, no new layer
        c.run(["create", "--name", "same", "base", "true"])
            .success();
        let id = c.ok(["commit", "same", "same:1"]);
        c.run(["inspect", "-f", "{{len .RootFS.Layers}}", id.trim()])
            .success()
            .stdout_is("1\n");
        c.run(["commit", "-c", "RUN x", "same"])
            .engine_error()
            .stderr_has("RUN");
        eprintln!("{who:?}: ok");
    }
}

/// Every regular file under `dir` (symlinks not followed) whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &[u8], out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            files_holding(&path, needle, out);
        } else if meta.is_file()
            && fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        {
            out.push(path);
        }
    }
}

#[test]
fn a_symlink_planted_in_the_upper_dir_is_committed_as_a_link_never_followed() {
    // a host directory the engine's user could read, with a file that must stay out
    let host = tempfile::tempdir().unwrap();
    let secret = b"host-only bytes 7d1c0a";
    fs::set_permissions(host.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(host.path().join("secret"), secret).unwrap();
    fs::set_permissions(
        host.path().join("secret"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    for (who, c) in engines(ALL) {
        let id = c.ok(["create", "--name", "planted", "base", "true"]);
        let id = id.trim();
        c.run(["start", "-a", "planted"]).success();
        // planted straight in the upper dir, as nothing inside the container could
        let upper = c.root().join("containers").join(id).join("upper");
        let links = [
            ("hostdir", host.path().to_path_buf()),
            ("hostfile", host.path().join("secret")),
        ];
        for (name, to) in &links {
            std::os::unix::fs::symlink(to, upper.join(name)).unwrap();
            std::os::unix::fs::lchown(upper.join(name), Some(c.uid()), Some(c.uid())).unwrap();
        }
        c.run(["diff", "planted"])
            .success()
            .stdout_is("A /hostdir\nA /hostfile\n");
        c.ok(["commit", "planted", "planted:1"]);
        c.run([
            "run",
            "--rm",
            "planted:1",
            "sh",
            "-c",
            "readlink /hostdir; readlink /hostfile",
        ])
        .success()
        .stdout_is(&format!(
            "{}\n{}\n",
            links[0].1.display(),
            links[1].1.display()
        ));
        // the host file's bytes are nowhere in the store (committed layers are stored
        // uncompressed, so a copy would show)
        let mut holding = Vec::new();
        files_holding(&c.root(), secret, &mut holding);
        assert!(holding.is_empty(), "{who:?}: {holding:?}");
        // and the search would see them: the same bytes written in a container, committed
        let line = format!("printf '{}' > /copied", String::from_utf8_lossy(secret));
        c.ok(["run", "--name", "control", "base", "sh", "-c", &line]);
        c.ok(["commit", "control", "control:1"]);
        files_holding(&c.root(), secret, &mut holding);
        assert!(!holding.is_empty(), "{who:?}: the search finds nothing");
        eprintln!("{who:?}: ok");
    }
}

/// `camada cp` with stdout kept as bytes (tar streams).
fn cp_bytes(c: &Camada, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let mut cmd = c.cmd(["cp"]);
    cmd.args(args);
    cmd.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    });
    cmd.stdout(std::process::Stdio::piped());
    cmd.stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cp {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn tar_names(tar: &[u8]) -> Vec<String> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            format!(
                "{} {}:{} {:?}",
                e.path().unwrap().display(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.entry_type()
            )
        })
        .collect()
}

fn cp_both_ways(c: &Engine, who: Who, name: &str) {
    let work = c.work();
    let out = work.join(format!("out-{name}"));
    fs::create_dir(&out).unwrap();
    if let Some(u) = c.user() {
        u.chown_tree(&out);
    }
    let o = |p: &str| out.join(p).display().to_string();
    // a directory into a missing path, into an existing dir, its contents only
    c.run(["cp", &format!("{name}:/data"), &o("d1")]).success();
    c.run(["cp", &format!("{name}:/data"), &o("")]).success();
    fs::create_dir(out.join("d3")).unwrap();
    if let Some(u) = c.user() {
        u.chown_tree(&out.join("d3"));
    }
    c.run(["cp", &format!("{name}:/data/dir/."), &o("d3")])
        .success();
    assert_eq!(fs::read(out.join("d1/dir/f")).unwrap(), b"one\n");
    assert_eq!(fs::read(out.join("data/dir/f")).unwrap(), b"one\n");
    assert_eq!(fs::read(out.join("d3/f")).unwrap(), b"one\n");
    // the link to /etc/shadow is copied as a link, never followed to the host's
    assert_eq!(
        fs::read_link(out.join("d1/evil")).unwrap(),
        Path::new("/etc/shadow")
    );
    c.run(["cp", &format!("{name}:/data/evil"), &o("evil")])
        .success();
    assert!(fs::symlink_metadata(out.join("evil")).unwrap().is_symlink());
    // -L follows it, inside the container: the container's /etc/shadow or nothing
    let r = c.run(["cp", "-L", &format!("{name}:/data/evil"), &o("followed")]);
    match fs::read(out.join("followed")) {
        Ok(bytes) => assert!(!bytes.starts_with(b"root:$"), "not the host's shadow"),
        Err(_) => {
            r.engine_error();
        }
    }
    // files copied out belong to the invoking user, whatever their owner inside
    for f in ["d1/owned", "d1/dir/f", "d1", "evil"] {
        let m = fs::symlink_metadata(out.join(f)).unwrap();
        assert_eq!(m.uid(), c.uid(), "{f}");
    }
    // a file to a file name, to an existing dir, and the trailing-slash errors
    c.run(["cp", &format!("{name}:/data/dir/f"), &o("file")])
        .success();
    assert_eq!(fs::read(out.join("file")).unwrap(), b"one\n");
    c.run(["cp", &format!("{name}:/data/dir/f/"), &o("x")])
        .engine_error()
        .stderr_has("Not a directory");
    c.run(["cp", &format!("{name}:/data/dir/f"), &o("nodir/")])
        .engine_error()
        .stderr_has("must exist");
    c.run(["cp", &format!("{name}:/data"), &o("file")])
        .engine_error()
        .stderr_has("cannot copy a directory to a file");
    c.run(["cp", &format!("{name}:/nope"), &o("x")])
        .engine_error()
        .stderr_has(&format!(
            "Could not find the file /nope in container {name}"
        ));
    // a tar stream out
    let tar = cp_bytes(c, &[&format!("{name}:/data/dir"), "-"], None);
    assert_eq!(tar_names(&tar), ["dir 0:0 Directory", "dir/f 0:0 Regular"]);

    // into the container: a file, a directory, owned by the container's root
    let src = work.join(format!("src-{name}"));
    fs::create_dir_all(src.join("tree/sub")).unwrap();
    fs::write(src.join("tree/sub/g"), b"gee\n").unwrap();
    fs::write(src.join("one"), b"1\n").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", src.join("tree/link")).unwrap();
    if let Some(u) = c.user() {
        u.chown_tree(&src);
    }
    let s = |p: &str| src.join(p).display().to_string();
    c.run(["cp", &s("one"), &format!("{name}:/data/one")])
        .success();
    c.run(["cp", &s("tree"), &format!("{name}:/data/")])
        .success();
    c.run(["cp", &s("tree"), &format!("{name}:/fresh")])
        .success();
    // a tar stream in, and -a keeping its ids where they are mapped
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o640);
    h.set_uid(1000);
    h.set_gid(1000);
    b.append_data(&mut h, "streamed", &b"st\n"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    cp_bytes(c, &["-", &format!("{name}:/data")], Some(&tar));
    if who != Who::SingleId {
        cp_bytes(c, &["-a", "-", &format!("{name}:/srv")], Some(&tar));
    }
    // a symlink in the container pointing at a host directory leads nowhere outside
    let host_dir = work.join(format!("hostdir-{name}"));
    fs::create_dir(&host_dir).unwrap();
    if let Some(u) = c.user() {
        u.chown_tree(&host_dir);
    }
    c.run(["cp", &s("one"), &format!("{name}:/data/hostlink")])
        .success();
    let check = format!(
        "cat /data/one /data/tree/sub/g /fresh/sub/g /data/streamed; readlink /data/tree/link; \
         stat -c '%u:%g %n' /data/one /data/tree/sub/g /data/streamed{}",
        if who != Who::SingleId {
            " /srv/streamed"
        } else {
            ""
        }
    );
    let got = in_container(c, name, &check);
    let mut want =
        "1\ngee\ngee\nst\n/etc/shadow\n0:0 /data/one\n0:0 /data/tree/sub/g\n0:0 /data/streamed\n"
            .to_string();
    if who != Who::SingleId {
        want.push_str("1000:1000 /srv/streamed\n");
    }
    assert_eq!(got, want);
    // escape attempts: a container link to the host dir, written through: stays inside
    in_container(
        c,
        name,
        &format!("ln -s {} /data/out; true", host_dir.display()),
    );
    c.run(["cp", &s("one"), &format!("{name}:/data/out/planted")])
        .engine_error();
    c.run(["cp", &s("one"), &format!("{name}:/data/out")])
        .success();
    assert_eq!(
        fs::read_dir(&host_dir).unwrap().count(),
        0,
        "nothing reached the host"
    );
}

/// Runs a shell line in the container: exec when it runs, else a throwaway commit.
fn in_container(c: &Camada, name: &str, line: &str) -> String {
    let running = c.ok(["inspect", "-f", "{{.State.Running}}", name]).trim() == "true";
    if running {
        return c.ok(["exec", name, "sh", "-c", line]);
    }
    let id = c.ok(["commit", name]);
    let out = c.ok(["run", "--rm", id.trim(), "sh", "-c", line]);
    c.run(["rmi", id.trim()]);
    out
}

#[test]
fn cp_both_ways_on_running_and_stopped_containers() {
    for (who, c) in engines(ALL) {
        changed_container(&c, who, "stopped", false);
        cp_both_ways(&c, who, "stopped");
        // a stopped container's copy leaves no mount server behind
        assert!(
            !c.runroot()
                .join("mounts")
                .read_dir()
                .is_ok_and(|mut d| d.next().is_some())
        );
        changed_container(&c, who, "running", true);
        wait_for_file(&c, "running", "/srv/new");
        cp_both_ways(&c, who, "running");
        c.run(["cp", "a", "b"])
            .engine_error()
            .stderr_has("at least one container");
        eprintln!("{who:?}: ok");
    }
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn mount_serves_a_stopped_container_to_the_user_and_umount_leaves_nothing() {
    for (who, c) in engines(ALL) {
        changed_container(&c, who, "mnt1", false);
        let path = c.ok(["mount", "mnt1"]);
        let path = path.trim().to_string();
        let pid: i32 = path
            .strip_prefix("/proc/")
            .and_then(|r| r.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("mount printed {path}"));
        assert!(alive(pid));
        // the user's own processes read and write through it
        let mut sh = c.command("/bin/sh");
        sh.args([
            "-c",
            &format!("PATH=/usr/bin:/bin; cat {path}/data/dir/f && echo through > {path}/data/written && ls {path}/srv"),
        ]);
        c.exec(sh).success().stdout_is("one\nnew\n");
        // mounting again reuses the server; starting is refused while it serves
        c.run(["mount", "mnt1"])
            .success()
            .stdout_is(&format!("{path}\n"));
        c.run(["start", "mnt1"])
            .engine_error()
            .stderr_has("camada umount mnt1");
        // umount: the server is gone (and its mount with its namespace)
        let id = c.ok(["inspect", "-f", "{{.Id}}", "mnt1"]);
        c.run(["umount", "mnt1"]).success().stdout_is(&id);
        assert!(!alive(pid), "the mount server is gone");
        let mounts = fs::read_to_string("/proc/mounts").unwrap();
        assert!(!mounts.contains(c.runroot().to_str().unwrap()), "{mounts}");
        // the container sees what was written
        assert_eq!(in_container(&c, "mnt1", "cat /data/written"), "through\n");
        // rm of a mounted container stops its server
        let path = c.ok(["mount", "mnt1"]);
        let pid: i32 = path.trim()[6..].split('/').next().unwrap().parse().unwrap();
        c.run(["rm", "mnt1"]).success();
        assert!(!alive(pid));
        // a running container: its root as seen from its user namespace
        changed_container(&c, who, "run1", true);
        wait_for_file(&c, "run1", "/srv/new");
        let path = c.ok(["mount", "run1"]);
        let r = c.run([
            "unshare",
            "--container",
            "run1",
            "/bin/cat",
            &format!("{}/data/dir/f", path.trim()),
        ]);
        r.success().stdout_is("one\n");
        eprintln!("{who:?}: ok");
    }
}

#[test]
fn unshare_runs_as_root_of_a_user_namespace_with_the_users_maps() {
    for (who, c) in engines(ALL) {
        let r: Run = c.run([
            "unshare",
            "/bin/sh",
            "-c",
            "PATH=/usr/bin:/bin; id -u; wc -l < /proc/self/uid_map",
        ]);
        let out = r.success().stdout();
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("0"), "{who:?}: {out}");
        if who == Who::User {
            // root and the subuid range
            assert_eq!(lines.next(), Some("2"), "{out}");
        }
        c.run(["unshare", "/bin/sh", "-c", "exit 7"]).exit(7);
        c.run(["unshare", "--container", "nosuch", "true"])
            .engine_error();
        eprintln!("{who:?}: ok");
    }
}
