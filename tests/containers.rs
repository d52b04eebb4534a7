//! Containers through the real binary, with the fixtures base image: as the current user
//! (root on CI), as the unprivileged user `camadatest` with its /etc/subuid range, and as
//! that user with CAMADA_SINGLE_ID=1 (single-id mode: the user is container root and
//! nothing else is mapped).

mod common;
#[path = "common/registry.rs"]
mod reg;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::engines::{ALL, Who, cleanup, engines};
use common::{Camada, require};

#[test]
fn exit_codes_pass_through() {
    for (who, c) in engines(ALL) {
        c.run(["run", "--rm", "base", "true"]).exit(0);
        c.run(["run", "--rm", "base", "sh", "-c", "exit 3"]).exit(3);
        c.run(["run", "--rm", "base", "/etc/passwd"])
            .exit(126)
            .stderr_has("Error: ");
        c.run(["run", "--rm", "base", "no-such-command"])
            .exit(127)
            .stderr_has("no-such-command");
        // a missing image is pulled (here: no such registry to ask)
        c.run(["run", "--rm", "nosuch.invalid/image", "true"])
            .exit(125)
            .stderr_has("Unable to find image 'nosuch.invalid/image:latest' locally\nError: ");
        // a signal's death is 128+n (pid 1 itself cannot be killed from inside)
        c.run([
            "run",
            "--rm",
            "base",
            "sh",
            "-c",
            "sh -c 'kill -9 $$'; exit $?",
        ])
        .exit(137);
        let id = c.ok(["run", "-d", "base", "sleep", "100"]);
        let id = id.trim();
        c.run(["kill", id]).success().stdout_is(&format!("{id}\n"));
        c.run(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id])
            .success()
            .stdout_is("exited 137\n");
        c.run(["wait", id]).success().stdout_is("137\n");
        cleanup(&c);
        eprintln!("{who:?}: ok");
    }
}

#[test]
fn stdout_and_stderr_stay_apart() {
    for (_, c) in engines(ALL) {
        let r = c.run([
            "run",
            "--rm",
            "base",
            "sh",
            "-c",
            "echo out1; echo err1 >&2; echo out2",
        ]);
        r.success().stdout_is("out1\nout2\n").stderr_is("err1\n");
        // stdin only with -i
        c.run_stdin(["run", "--rm", "-i", "base", "cat"], b"fed\n")
            .success()
            .stdout_is("fed\n");
        c.run_stdin(["run", "--rm", "base", "cat"], b"fed\n")
            .success()
            .stdout_is("");
    }
}

#[test]
fn process_settings_are_seen_inside() {
    for (who, c) in engines(ALL) {
        let envfile = c.work().join("env.list");
        std::fs::write(&envfile, "# a comment\nFROM_FILE=file\nBOTH=file\n").unwrap();
        if let Some(u) = c.user() {
            u.chown_tree(&envfile);
        }
        let r = c.run([
            "run",
            "--rm",
            "--env-file",
            envfile.to_str().unwrap(),
            "-e",
            "BOTH=flag",
            "-e",
            "ONLY=flag",
            "-w",
            "/made/by/w",
            "--hostname",
            "myhost",
            "base",
            "sh",
            "-c",
            "echo $FROM_FILE $BOTH $ONLY; pwd; hostname; echo $PATH",
        ]);
        r.success().stdout_is(&format!(
            "file flag flag\n/made/by/w\nmyhost\n{}\n",
            image_path(&c)
        ));
        // --entrypoint replaces the image's, and the arguments follow it
        c.run(["run", "--rm", "--entrypoint", "echo", "base", "a", "b"])
            .success()
            .stdout_is("a b\n");
        // the default hostname is the short ID
        let id = c.ok(["create", "base", "hostname"]);
        let id = id.trim();
        assert_eq!(id.len(), 64, "create prints the full ID: {id:?}");
        c.run(["start", "-a", id])
            .success()
            .stdout_is(&format!("{}\n", &id[..12]));
        // -u by name and by number, with the groups of the image's /etc/group (single-id
        // mode maps the one id to the user asked for)
        let out = c.ok(["run", "--rm", "-u", "1000", "base", "id"]);
        assert!(out.starts_with("uid=1000"), "{who:?}: {out}");
        let out = c.ok([
            "run",
            "--rm",
            "-u",
            "1000:1000",
            "base",
            "sh",
            "-c",
            "id -u; id -g",
        ]);
        assert_eq!(out, "1000\n1000\n", "{who:?}");
        c.run(["run", "--rm", "base", "stat", "-c", "%a", "/"])
            .success()
            .stdout_is("755\n");
        c.run(["run", "--rm", "-u", "root", "base", "id", "-u"])
            .success()
            .stdout_is("0\n");
        cleanup(&c);
    }
}

/// The image's PATH (its config's Env), as the container sees it.
fn image_path(c: &Camada) -> String {
    let env = c.ok(["inspect", "-f", "{{json .Config.Env}}", "base"]);
    let v: Vec<String> = serde_json::from_str(env.trim()).unwrap();
    v.iter()
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_string))
        .unwrap()
}

#[test]
fn pid_namespace_and_ownership() {
    for (_, c) in engines(ALL) {
        let out = c.ok([
            "run",
            "--rm",
            "base",
            "sh",
            "-c",
            "ps -o pid,comm | tail -n +2 | wc -l; echo $$",
        ]);
        // sh, ps, tail, wc (and the subshell) — nothing of the host
        let lines: Vec<&str> = out.lines().collect();
        let n: usize = lines[0].trim().parse().unwrap();
        assert!(n <= 5, "ps lists only the container: {out}");
        assert_eq!(lines[1], "1", "the command is pid 1: {out}");
        // uid 0 inside; the file it makes belongs to the invoking user on the host
        let id = c.ok([
            "run",
            "base",
            "sh",
            "-c",
            "id -u; echo data > /root/made; ls -ln /root/made",
        ]);
        let out = c.ok(["ps", "-aq", "--no-trunc"]);
        let cid = out.lines().next().unwrap();
        assert!(id.starts_with("0\n"), "{id}");
        let made = upper(&c, cid).join("root/made");
        let meta = std::fs::metadata(&made).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            meta.uid(),
            c.uid(),
            "{} belongs to the user",
            made.display()
        );
        cleanup(&c);
    }
}

fn upper(c: &Camada, id: &str) -> PathBuf {
    c.root().join("containers").join(id).join("upper")
}

#[test]
fn writable_layers_are_separate_and_the_image_unchanged() {
    for (_, c) in engines(&[Who::Root, Who::User]) {
        let one = c.ok([
            "create",
            "--name",
            "one",
            "base",
            "sh",
            "-c",
            "echo one > /etc/motd; rm /etc/group",
        ]);
        let two = c.ok([
            "create",
            "--name",
            "two",
            "base",
            "sh",
            "-c",
            "echo two > /etc/motd",
        ]);
        c.run(["start", "-a", "one"]).success();
        c.run(["start", "-a", "two"]).success();
        assert_eq!(
            std::fs::read_to_string(upper(&c, one.trim()).join("etc/motd")).unwrap(),
            "one\n"
        );
        assert_eq!(
            std::fs::read_to_string(upper(&c, two.trim()).join("etc/motd")).unwrap(),
            "two\n"
        );
        // one's deletion stays one's: started again, its rm finds nothing to remove
        c.run(["start", "-a", "one"])
            .exit(1)
            .stderr_has("/etc/group");
        // a new container sees the image as it was
        c.run([
            "run",
            "--rm",
            "base",
            "sh",
            "-c",
            "cat /etc/motd; ls /etc/group",
        ])
        .exit(0)
        .stdout_is("/etc/group\n")
        .stderr_has("motd");
        cleanup(&c);
    }
}

#[test]
fn detached_lifecycle() {
    for (who, c) in engines(ALL) {
        let id = c.ok([
            "run",
            "-d",
            "--name",
            "ticker",
            "base",
            "sh",
            "-c",
            "trap 'echo bye; exit 0' TERM; echo started; echo warn >&2; while true; do sleep 0.1; done",
        ]);
        let id = id.trim().to_string();
        assert_eq!(id.len(), 64, "{who:?}: -d prints the full ID");
        wait_for(&c, "ticker", "started\n");
        let ps = c.ok(["ps"]);
        let lines: Vec<&str> = ps.lines().collect();
        assert!(
            lines[0].starts_with("CONTAINER ID   IMAGE") && lines[0].ends_with("NAMES"),
            "{ps}"
        );
        assert!(
            lines[1].starts_with(&id[..12]) && lines[1].contains("Up "),
            "{ps}"
        );
        assert!(lines[1].ends_with("ticker"), "{ps}");
        c.run(["logs", "ticker"])
            .success()
            .stdout_is("started\n")
            .stderr_is("warn\n");
        let ts = c.ok(["logs", "-t", "--tail", "2", "ticker"]);
        assert!(ts.starts_with("20") && ts.ends_with(" started\n"), "{ts}");
        c.run(["exec", "ticker", "sh", "-c", "echo in $(hostname); exit 4"])
            .exit(4)
            .stdout_is(&format!("in {}\n", &id[..12]));
        c.run([
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "ticker",
            "sh",
            "-c",
            "echo $X $(pwd)",
        ])
        .success()
        .stdout_is("1 /tmp\n");
        // an ID prefix names it too
        c.run(["stop", &id[..6]])
            .success()
            .stdout_is(&format!("{}\n", &id[..6]));
        let ps = c.ok(["ps", "-a"]);
        assert!(ps.contains("Exited (0)"), "{ps}");
        assert!(!c.ok(["ps"]).contains("ticker"));
        c.run(["logs", "ticker"])
            .success()
            .stdout_is("started\nbye\n");
        c.run(["exec", "ticker", "true"])
            .engine_error()
            .stderr_has("not running");
        c.run(["start", "ticker"]).success().stdout_is("ticker\n");
        assert!(c.ok(["ps"]).contains("ticker"));
        c.run(["restart", "-t", "5", "ticker"]).success();
        assert!(c.ok(["ps"]).contains("Up "));
        c.run(["rm", "ticker"])
            .engine_error()
            .stderr_has("container is running");
        c.run(["rm", "-f", "ticker"]).success();
        assert_eq!(c.ok(["ps", "-aq"]), "");
        assert!(std::fs::read_dir(c.runroot()).unwrap().next().is_none());
    }
}

/// Waits (a hang guard, not a timing check) until `logs` of `name` has `want`.
fn wait_for(c: &Camada, name: &str, want: &str) {
    for _ in 0..300 {
        if c.run(["logs", name]).stdout().contains(want) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "{name} never logged {want:?}: {}",
        c.run(["logs", name]).stdout()
    );
}

#[test]
fn rm_option_leaves_nothing() {
    for (_, c) in engines(ALL) {
        let marker = "marker-rm-leaves-nothing";
        c.run(["run", "--rm", "base", "sh", "-c", "echo x > /f", marker])
            .success();
        c.run(["run", "--rm", "base", "no-such-command", marker])
            .exit(127);
        assert_eq!(c.ok(["ps", "-aq"]), "");
        let left: Vec<_> = std::fs::read_dir(c.root().join("containers"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != ".lock")
            .collect();
        assert!(left.is_empty(), "records left: {left:?}");
        assert!(std::fs::read_dir(c.runroot()).unwrap().next().is_none());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(c.runroot().to_str().unwrap()), "{mounts}");
        for p in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
                assert!(
                    !String::from_utf8_lossy(&cmd).contains(marker),
                    "a process is left: {}",
                    String::from_utf8_lossy(&cmd)
                );
            }
        }
    }
}

#[test]
fn a_killed_monitor_leaves_an_exited_container() {
    if !common::is_root() {
        return; // killing another user's monitor needs root; as one user it is the same
    }
    for (_, c) in engines(&[Who::Root, Who::User]) {
        let id = c.ok(["run", "-d", "base", "sleep", "100"]);
        let id = id.trim();
        let pid: i32 = std::fs::read_to_string(c.runroot().join(id).join("monitor.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
        // the monitor is gone once its /proc entry is (or it is a zombie)
        for _ in 0..200 {
            let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if st.is_empty() || st.contains(") Z ") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let ps = c.ok(["ps", "-a"]);
        assert!(ps.contains("Exited (137)"), "{ps}");
        c.run(["rm", id]).success();
        assert_eq!(c.ok(["ps", "-aq"]), "");
        assert!(!c.runroot().join(id).exists());
    }
}

#[test]
fn a_detached_container_outlives_its_session() {
    for (_, c) in engines(&[Who::Root, Who::User]) {
        // the launching shell kills its whole process group right after `run -d`
        let mut cmd = c.command("setsid");
        cmd.args(["-w", "sh", "-c"]).arg(format!(
            "{} run -d --name bg base sleep 100 >/dev/null; kill -KILL 0",
            c.executable(Path::new(common::BIN)).display()
        ));
        let _ = c.exec(cmd);
        let ps = c.ok(["ps"]);
        assert!(ps.contains("bg") && ps.contains("Up "), "{ps}");
        cleanup(&c);
    }
}

#[test]
fn twenty_containers_at_once() {
    for (_, c) in engines(&[Who::Root, Who::User]) {
        let children: Vec<_> = (0..20)
            .map(|i| {
                let mut cmd = c.cmd(["run", "--rm", "base", "sh", "-c", &format!("echo n{i}")]);
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
                cmd.spawn().unwrap()
            })
            .collect();
        for (i, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "container {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout), format!("n{i}\n"));
        }
        assert_eq!(c.ok(["ps", "-aq"]), "");
    }
}

#[test]
fn names_ids_and_rmi() {
    for (_, c) in engines(&[Who::Root]) {
        let a = c.ok(["create", "base"]).trim().to_string();
        let b = c
            .ok(["create", "--name", "given", "base"])
            .trim()
            .to_string();
        let name_a = c.ok(["inspect", "-f", "{{.Name}}", &a]);
        let generated = name_a.trim().trim_start_matches('/');
        assert!(
            generated.contains('_')
                && generated
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch == '_' || ch.is_ascii_digit()),
            "{generated}"
        );
        c.run(["create", "--name", "given", "base"])
            .engine_error()
            .stderr_has("is already in use");
        c.run(["inspect", "-f", "{{.Id}}", "given"])
            .success()
            .stdout_is(&format!("{b}\n"));
        c.run(["inspect", "-f", "{{.Image}}", &b[..5]]).success();
        // rmi refuses an image a container uses
        c.run(["rmi", "base"])
            .engine_error()
            .stderr_has("container");
        c.run(["container", "prune", "-f"])
            .success()
            .stdout_has(&a)
            .stdout_has(&b);
        c.run(["rmi", "base"]).success();
    }
}

#[test]
fn a_real_terminal() {
    let py = r#"
import os, pty, sys, fcntl, termios, struct, select
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 33, 101, 0, 0))
    os.execvp(sys.argv[1], sys.argv[1:])
out = b''
def pump(until):
    global out
    for _ in range(400):
        if until and until in out:
            return
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return
            if not d:
                return
            out += d
pump(b'# ')
os.write(fd, b'stty size; tty; exit 3\n')
pump(None)
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
print('EXIT', os.waitstatus_to_exitcode(st))
"#;
    for (who, c) in engines(ALL) {
        let mut cmd = c.command("/usr/bin/python3");
        cmd.arg("-c")
            .arg(py)
            .arg(c.executable(Path::new(common::BIN)))
            .args(["run", "-it", "--rm", "base", "sh"]);
        let r = c.exec(cmd);
        let out = r.success().stdout();
        assert!(out.contains("33 101"), "{who:?}: window size: {out}");
        assert!(out.contains("/dev/pts/"), "{who:?}: a pty: {out}");
        assert!(
            out.trim_end().ends_with("EXIT 3"),
            "{who:?}: exit code: {out}"
        );
    }
}

#[test]
fn run_pulls_a_missing_image() {
    if !require("docker-registry", reg::available()) {
        return;
    }
    let r = reg::Registry::start(reg::Auth::None);
    let name = format!("{}/base:v1", r.addr());
    let pusher = Camada::new();
    pusher.load_base();
    pusher.ok(["tag", "base", &name]);
    pusher.ok(["push", "-q", &name]);
    for (_, c) in engines(&[Who::Root, Who::User]) {
        c.ok(["rmi", "base"]);
        let run = c.run(["run", "--rm", &name, "echo", "pulled"]);
        run.success()
            .stdout_is("pulled\n")
            .stderr_has(&format!("Unable to find image '{name}' locally"));
        // stored now: no second pull
        c.run(["run", "--rm", &name, "true"])
            .success()
            .stderr_is("");
    }
}

#[test]
fn logs_follow_and_inspect_shape() {
    for (_, c) in engines(&[Who::Root, Who::User]) {
        let id = c.ok([
            "run",
            "-d",
            "-v",
            &format!("{}:/data:ro", c.work().display()),
            "base",
            "sh",
            "-c",
            "for i in 1 2 3; do echo line$i; sleep 0.2; done",
        ]);
        let id = id.trim();
        // -f returns once the container has stopped, with every line
        c.run(["logs", "-f", id])
            .success()
            .stdout_is("line1\nline2\nline3\n");
        let json = c.ok(["container", "inspect", id]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let o = &v[0];
        for key in [
            "Id",
            "Created",
            "Path",
            "Args",
            "State",
            "Image",
            "Name",
            "HostConfig",
            "Mounts",
            "Config",
        ] {
            assert!(o.get(key).is_some(), "inspect has {key}: {json}");
        }
        assert_eq!(o["Id"], id);
        assert_eq!(o["Path"], "sh");
        assert_eq!(o["State"]["Status"], "exited");
        assert_eq!(o["State"]["ExitCode"], 0);
        assert!(o["Image"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(o["Config"]["Image"], "base");
        assert_eq!(o["Mounts"][0]["Destination"], "/data");
        assert_eq!(o["Mounts"][0]["RW"], false);
        assert!(o["Name"].as_str().unwrap().starts_with('/'));
        // `inspect` without --type finds containers too
        c.run(["inspect", "-f", "{{.State.Status}}", id])
            .success()
            .stdout_is("exited\n");
        cleanup(&c);
    }
}

#[test]
fn detached_terminal_and_attach() {
    let py = r#"
import os, pty, sys, select
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b''
for _ in range(100):
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
    if b'attached' in out:
        break
os.write(fd, b'echo from-$((40+2)); exit 5\n')
while True:
    r, _, _ = select.select([fd], [], [], 20)
    if not r:
        break
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
print('EXIT', os.waitstatus_to_exitcode(st))
"#;
    for (who, c) in engines(&[Who::Root, Who::User]) {
        c.ok(["run", "-dit", "--name", "shell", "base", "sh"]);
        assert!(c.ok(["ps"]).contains("shell"));
        let mut cmd = c.command("/usr/bin/python3");
        cmd.arg("-c").arg(py).arg("/bin/sh").arg("-c").arg(format!(
            "echo attached; exec {} attach shell",
            c.executable(Path::new(common::BIN)).display()
        ));
        let out = c.exec(cmd).success().stdout();
        assert!(out.contains("from-42"), "{who:?}: {out}");
        assert!(out.trim_end().ends_with("EXIT 5"), "{who:?}: {out}");
        c.run(["inspect", "-f", "{{.State.ExitCode}}", "shell"])
            .success()
            .stdout_is("5\n");
        cleanup(&c);
    }
}

/// A bad flag is told before the image is looked up or pulled: one `Error:` line, no
/// "Unable to find image", no container record.
#[test]
fn bad_flags_fail_before_any_pull() {
    for (who, c) in engines(ALL) {
        for (flags, says) in [
            (["-p", "99999:80"], "99999"),
            (["-v", ":/x"], "volume specification"),
            (["--network", "bogus"], "bogus"),
        ] {
            let mut args = vec!["run"];
            args.extend(flags);
            args.extend(["no-such-image-here", "true"]);
            let r = c.run(args);
            r.engine_error().stderr_has(says);
            assert!(!r.stderr().contains("Unable to find"), "{who:?}: {flags:?}");
        }
        assert_eq!(c.ok(["ps", "-aq"]), "", "{who:?}");
    }
}
