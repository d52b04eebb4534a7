//! The runtime driven for real: containers on a busybox directory rootfs, run by a driver
//! process (tests/drivers/runtime_run.rs with a job in `CAMADA_RT_DRIVER`), as root and as the
//! unprivileged user `camadatest` (with its /etc/subuid range, and in single-id mode).
//!
//! The driver is a fresh, single-threaded process that calls `camada::runtime` exactly as
//! the CLI does (a libtest thread could not: signals would reach the other threads).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use camada::runtime::{self, Bind, Network, ProcessSpec};
use common::{STD_PATH, TestUser, require, test_user};

// ----------------------------------------------------------------------------------------
// The driver: tests/drivers/runtime_run.rs reads this job from CAMADA_RT_DRIVER

#[path = "drivers/runtime_job.rs"]
mod runtime_job;
use runtime_job::Job;

// ----------------------------------------------------------------------------------------
// Test helpers

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "id", "ps", "sleep", "hostname", "ls", "touch", "stat", "true", "false",
    "env", "pwd", "mkdir", "grep", "wc", "kill", "tty", "stty", "ip", "printf", "readlink", "test",
    "head", "mount", "chown", "su",
];

/// Who runs the driver.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum As {
    Root,
    /// camadatest with its subordinate range.
    User,
    /// camadatest mapped alone (no subordinate ids).
    Single,
}

/// A sandbox: a busybox rootfs, a run dir, output files, all owned by whoever runs it.
struct Sandbox {
    dir: tempfile::TempDir,
    who: As,
    user: Option<&'static TestUser>,
}

/// The outcome of one driver run.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Sandbox {
    fn new(who: As) -> Option<Sandbox> {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the runtime tests run as root (they switch to camadatest for rootless runs)"
        );
        let user = if who == As::Root {
            None
        } else {
            match test_user() {
                Ok(u) => Some(u),
                Err(why) => {
                    require("the unprivileged test user camadatest", Err(why));
                    return None;
                }
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("camada-rt-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Sandbox { dir, who, user };
        s.make_rootfs(&s.rootfs());
        if let Some(u) = s.user {
            u.chown_tree(s.dir.path());
        }
        Some(s)
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn make_rootfs(&self, root: &Path) {
        for d in [
            "bin", "etc", "tmp", "root", "home/ana", "proc", "sys", "dev",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nana:x:1000:1000::/home/ana:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\nwheel:x:10:ana\nana:x:1000:\naudio:x:29:ana\nnogroup:x:65534:\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/plain"), "not a program\n").unwrap();
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
    }

    fn job(&self, args: &[&str]) -> Job {
        Job {
            verb: "run".into(),
            id: "c0ffee".into(),
            rootfs: self.rootfs(),
            run_dir: self.dir.path().join("run/c0ffee"),
            process: ProcessSpec {
                args: args.iter().map(|s| s.to_string()).collect(),
                env: vec!["PATH=/bin".into()],
                ..ProcessSpec::default()
            },
            hostname: "c0ffee".into(),
            single_id: self.who == As::Single,
            ..Job::default()
        }
    }

    /// The driver for `job`, as this sandbox's user, with `env` added.
    fn command(&self, job: &Job, env: &[(&str, String)]) -> Command {
        let exe = driver_exe();
        let mut vars = vec![("CAMADA_RT_DRIVER", serde_json::to_string(job).unwrap())];
        vars.extend(env.iter().cloned());
        match &self.user {
            None => {
                let mut c = Command::new(&exe);
                c.envs(vars);
                c
            }
            Some(u) => {
                let mut c = u.command("env");
                c.arg(format!("PATH={STD_PATH}"));
                for (k, v) in vars {
                    c.arg(format!("{k}={v}"));
                }
                c.arg(&exe);
                c
            }
        }
    }

    /// Runs the driver with `stdin`, output captured in files.
    fn run(&self, job: &Job, stdin: &str) -> Out {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self.dir.path().join(format!("out-{n}"));
        let err = self.dir.path().join(format!("err-{n}"));
        let mut c = self.command(
            job,
            &[
                ("CAMADA_RT_OUT", out.display().to_string()),
                ("CAMADA_RT_ERR", err.display().to_string()),
            ],
        );
        c.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write;
            let mut i = child.stdin.take().unwrap();
            let _ = i.write_all(stdin.as_bytes());
        }
        let status = wait_timeout(&mut child, Duration::from_secs(60));
        Out {
            code: status,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        }
    }

    fn sh(&self, script: &str) -> Out {
        self.run(&self.job(&["sh", "-c", script]), "")
    }
}

/// examples/runtime_run, built on first use when `cargo test` was limited to this target.
fn driver_exe() -> PathBuf {
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        // target/<profile>/deps/runtime-HASH -> target/<profile>/examples/runtime_run
        let me = std::env::current_exe().unwrap();
        let profile_dir = me.parent().and_then(Path::parent).unwrap();
        let exe = profile_dir.join("examples/runtime_run");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-q", "--example", "runtime_run"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let st = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(st.success(), "building examples/runtime_run");
        assert!(exe.is_file(), "{} is missing", exe.display());
        exe
    })
    .clone()
}

fn wait_timeout(child: &mut std::process::Child, limit: Duration) -> i32 {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the driver hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sandboxes() -> Vec<Sandbox> {
    [As::Root, As::User, As::Single]
        .into_iter()
        .filter_map(Sandbox::new)
        .collect()
}

// ----------------------------------------------------------------------------------------
// Tests

#[test]
fn exit_codes_and_separate_streams() {
    for s in sandboxes() {
        let o = s.sh("echo out; echo err >&2; exit 3");
        assert_eq!(
            (o.code, o.stdout.as_str(), o.stderr.as_str()),
            (3, "out\n", "err\n"),
            "{:?}",
            s.who
        );
        let o = s.run(&s.job(&["true"]), "");
        assert_eq!(o.code, 0, "{:?}: {o:?}", s.who);
        let o = s.run(&s.job(&["nosuchcmd"]), "");
        assert_eq!(o.code, 127, "{:?}: {o:?}", s.who);
        assert!(o.stderr.contains("executable file not found"), "{o:?}");
        let o = s.run(&s.job(&["/etc/plain"]), "");
        assert_eq!(o.code, 126, "{:?}: {o:?}", s.who);
        // pid 1 cannot be killed from inside its namespace; under --init the shell is pid 2
        let mut job = s.job(&["sh", "-c", "kill -9 $$"]);
        job.init = true;
        let o = s.run(&job, "");
        assert_eq!(o.code, 137, "{:?}: {o:?}", s.who);
        // nothing is left behind: the run dir goes with the monitor
        assert!(!s.dir.path().join("run/c0ffee").exists(), "{:?}", s.who);
    }
}

/// The (stream, text) pairs of a json-file log.
fn log_lines(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["time"].as_str().unwrap().ends_with('Z'), "{l}");
            (
                v["stream"].as_str().unwrap().to_string(),
                v["log"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_foreground_also_logs() {
    for s in sandboxes() {
        let log = s.dir.path().join("fg.log");
        let mut job = s.job(&[
            "sh",
            "-c",
            "echo out; echo err >&2; read x; echo got $x; exit 3",
        ]);
        job.log = Some(log.clone());
        job.stdin = true;
        let o = s.run(&job, "in\n");
        // the terminal sees what it saw without the log, streams apart
        assert_eq!(
            (o.code, o.stdout.as_str(), o.stderr.as_str()),
            (3, "out\ngot in\n", "err\n"),
            "{:?}",
            s.who
        );
        let mut lines = log_lines(&log);
        lines.sort();
        let want = [
            ("stderr", "err\n"),
            ("stdout", "got in\n"),
            ("stdout", "out\n"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(lines, want, "{:?}", s.who);
    }
}

#[test]
fn stdin_only_when_asked() {
    for s in sandboxes() {
        let mut job = s.job(&["cat"]);
        assert_eq!(s.run(&job, "hello\n").stdout, "", "{:?}", s.who);
        job.stdin = true;
        assert_eq!(s.run(&job, "hello\n").stdout, "hello\n", "{:?}", s.who);
    }
}

#[test]
fn namespaces_identity_and_environment() {
    for s in sandboxes() {
        // ps lists the shell and itself (and its header): nothing of the host. (Not `ps |
        // wc -l`: under load ps may read /proc before the shell has forked wc.)
        let mut job = s.job(&[
            "sh",
            "-c",
            "echo $$; hostname; echo $HOSTNAME $FOO $HOME; pwd; id -u; ps -o pid >/dev/shm/ps; wc -l </dev/shm/ps; cat /etc/hostname; grep -c c0ffee /etc/hosts",
        ]);
        job.process.env.push("FOO=bar".into());
        job.process.cwd = "/work/here".into();
        let o = s.run(&job, "");
        assert_eq!(o.code, 0, "{:?}: {o:?}", s.who);
        assert_eq!(
            o.stdout, "1\nc0ffee\nc0ffee bar /root\n/work/here\n0\n3\nc0ffee\n1\n",
            "{:?}: {o:?}",
            s.who
        );
    }
}

#[test]
fn users_and_groups_come_from_the_image() {
    for s in sandboxes() {
        let mut job = s.job(&["sh", "-c", "id -u; id -g; id -G; echo $HOME"]);
        job.process.user = "ana".into();
        let o = s.run(&job, "");
        assert_eq!(o.code, 0, "{:?}: {o:?}", s.who);
        // single-id mode: the one id stands for ana; supplementary groups cannot be mapped
        let groups = if s.who == As::Single {
            "1000"
        } else {
            "1000 10 29"
        };
        assert_eq!(
            o.stdout,
            format!("1000\n1000\n{groups}\n/home/ana\n"),
            "{:?}",
            s.who
        );
        job.process.user = "nosuchuser".into();
        let o = s.run(&job, "");
        assert_eq!(o.code, 125);
        assert!(o.stderr.contains("unable to find user nosuchuser"), "{o:?}");
    }
}

#[test]
fn numeric_user_in_every_mode_and_its_files_belong_to_the_invoking_user() {
    for s in sandboxes() {
        let mut job = s.job(&[
            "sh",
            "-c",
            "id -u; id -g; touch /tmp/by-u; stat -c '%u %g' /tmp/by-u",
        ]);
        job.process.user = "4321:765".into();
        let o = s.run(&job, "");
        assert_eq!(o.code, 0, "{:?}: {o:?}", s.who);
        assert_eq!(o.stdout, "4321\n765\n4321 765\n", "{:?}", s.who);
        let meta = std::fs::metadata(s.rootfs().join("tmp/by-u")).unwrap();
        let expected = match (s.who, &s.user) {
            (As::Root, _) => (4321, 765),
            (As::User, Some(_)) => (200_000 + 4320, 200_000 + 764),
            (_, Some(u)) => (u.uid, u.gid),
            (_, None) => unreachable!(),
        };
        assert_eq!((meta.uid(), meta.gid()), expected, "{:?}", s.who);
    }
}

#[test]
fn single_id_exec_takes_any_user_too() {
    let Some(s) = Sandbox::new(As::Single) else {
        return;
    };
    let mut job = s.job(&["sleep", "1000"]);
    job.verb = "start".into();
    job.process.user = "ana".into();
    job.log = Some(s.dir.path().join("ctr.log"));
    assert_eq!(s.run(&job, "").code, 0);
    let mut ex = s.job(&["sh", "-c", "id -u; id -g; touch /tmp/by-$(id -u)"]);
    ex.verb = "exec".into();
    ex.run_dir = job.run_dir.clone();
    for (user, want) in [
        ("ana", "1000\n1000\n"),
        ("root", "0\n0\n"),
        ("4242:7", "4242\n7\n"),
    ] {
        ex.process.user = user.into();
        let o = s.run(&ex, "");
        assert_eq!((o.code, o.stdout.as_str()), (0, want), "{user}: {o:?}");
    }
    let uid = s.user.as_ref().unwrap().uid;
    for made in ["by-1000", "by-0", "by-4242"] {
        let meta = std::fs::metadata(s.rootfs().join("tmp").join(made)).unwrap();
        assert_eq!(meta.uid(), uid, "{made}");
    }
    let mut sig = s.job(&[]);
    sig.verb = "signal".into();
    sig.run_dir = job.run_dir.clone();
    sig.signal = libc::SIGKILL;
    assert_eq!(s.run(&sig, "").code, 0);
    wait_for("the monitor to leave", || {
        !runtime::is_running(&job.run_dir)
    });
}

#[test]
fn fake_ids_make_chown_and_setuid_succeed_without_effect() {
    for s in sandboxes() {
        let script = "touch /tmp/f && chown 123:456 /tmp/f && echo chown-ok; stat -c '%u %g' /tmp/f; \
                      su -s /bin/sh nobody -c 'id -u' && echo su-ok";
        let mut job = s.job(&["sh", "-c", script]);
        job.fake_ids = true;
        let o = s.run(&job, "");
        assert_eq!(o.code, 0, "{:?}: {o:?}", s.who);
        // nothing really changed owner: the calls returned 0 without effect
        assert_eq!(o.stdout, "chown-ok\n0 0\n0\nsu-ok\n", "{:?}: {o:?}", s.who);
        if s.who == As::Single {
            job.fake_ids = false;
            let o = s.run(&job, "");
            assert!(!o.stdout.contains("chown-ok"), "{:?}: {o:?}", s.who);
            assert!(!o.stdout.contains("su-ok"), "{:?}: {o:?}", s.who);
        }
    }
}

#[test]
fn files_made_inside_belong_to_the_invoking_user() {
    for s in sandboxes() {
        let o = s.sh("touch /made-here && stat -c %u /made-here");
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (0, "0\n"),
            "{:?}: {o:?}",
            s.who
        );
        let host_uid = std::fs::metadata(s.rootfs().join("made-here"))
            .unwrap()
            .uid();
        let expected = s.user.as_ref().map_or(0, |u| u.uid);
        assert_eq!(host_uid, expected, "{:?}", s.who);
    }
}

#[test]
fn proc_dev_and_sys_are_the_containers() {
    for s in sandboxes() {
        let o = s.sh(
            "wc -c < /proc/keys; ls /sys/firmware | wc -l; ls /dev | grep -c -E '^(null|zero|full|random|urandom|tty|pts|shm|ptmx|fd)$'; \
             echo x > /dev/null && head -c 3 /dev/zero | wc -c; touch /sys/x 2>/dev/null || echo sys-ro; \
             echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo procsys-ro",
        );
        assert_eq!(
            o.stdout, "0\n0\n10\n3\nsys-ro\nprocsys-ro\n",
            "{:?}: {o:?}",
            s.who
        );
    }
}

#[test]
fn network_modes() {
    for s in sandboxes() {
        let mut job = s.job(&[
            "sh",
            "-c",
            "ls /sys/class/net | sort | head -5; cat /sys/class/net/lo/operstate",
        ]);
        let o = s.run(&job, "");
        assert_eq!(o.code, 0, "{:?}: {o:?}", s.who);
        assert_eq!(o.stdout, "lo\nunknown\n", "{:?}: {o:?}", s.who);
        job.network = Some(Network::Host);
        let o = s.run(&job, "");
        assert_eq!(o.code, 0, "{:?}: {o:?}", s.who);
        let host: Vec<String> = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(host.len() > 1 || o.stdout.lines().count() >= 2, "{o:?}");
        assert!(
            host.iter()
                .any(|h| o.stdout.contains(h.as_str()) && h != "lo"),
            "{:?}: {o:?} vs {host:?}",
            s.who
        );
    }
}

#[test]
fn bind_mounts_read_write_and_read_only() {
    for s in sandboxes() {
        let data = s.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("in"), "from host\n").unwrap();
        if let Some(u) = &s.user {
            nix::unistd::chown(&data, Some(u.uid.into()), Some(u.gid.into())).unwrap();
        }
        let mut job = s.job(&[
            "sh",
            "-c",
            "cat /data/in; echo back > /data/out; cat /ro/in; touch /ro/x 2>/dev/null || echo ro",
        ]);
        job.binds = vec![
            Bind {
                source: data.clone(),
                destination: "/data".into(),
                readonly: false,
                fill: false,
                tmpfs: None,
            },
            Bind {
                source: data.clone(),
                destination: "/ro".into(),
                readonly: true,
                fill: false,
                tmpfs: None,
            },
        ];
        let o = s.run(&job, "");
        assert_eq!(o.stdout, "from host\nfrom host\nro\n", "{:?}: {o:?}", s.who);
        assert_eq!(std::fs::read_to_string(data.join("out")).unwrap(), "back\n");
    }
}

#[test]
fn init_reaps_and_forwards() {
    for s in sandboxes() {
        let mut job = s.job(&["sh", "-c", "echo $$; (sleep 0 &) ; exit 4"]);
        job.init = true;
        let o = s.run(&job, "");
        // under --init the process is pid 2 and its code comes through
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (4, "2\n"),
            "{:?}: {o:?}",
            s.who
        );
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn detached_log_exec_signal_wait() {
    for s in sandboxes() {
        let log = s.dir.path().join("ctr.log");
        let exit_file = s.dir.path().join("exit");
        let mut job = s.job(&["sh", "-c", "echo started; echo oops >&2; trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done"]);
        job.verb = "start".into();
        job.log = Some(log.clone());
        job.exit_file = Some(exit_file.clone());
        let o = s.run(&job, "");
        assert_eq!(o.code, 0, "{:?}: {o:?}", s.who);
        let run_dir = job.run_dir.clone();
        assert!(runtime::is_running(&run_dir), "{:?}", s.who);
        wait_for("the log", || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.lines().count() >= 2)
        });
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let streams: Vec<(&str, &str)> = lines
            .iter()
            .map(|v| (v["stream"].as_str().unwrap(), v["log"].as_str().unwrap()))
            .collect();
        assert!(streams.contains(&("stdout", "started\n")), "{text}");
        assert!(streams.contains(&("stderr", "oops\n")), "{text}");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));

        let mut ex = s.job(&[
            "sh",
            "-c",
            "echo in-exec $$ $(hostname); ps -o pid | wc -l; exit 5",
        ]);
        ex.verb = "exec".into();
        ex.run_dir = run_dir.clone();
        let o = s.run(&ex, "");
        assert_eq!(o.code, 5, "{:?}: {o:?}", s.who);
        assert!(o.stdout.starts_with("in-exec "), "{o:?}");
        assert!(o.stdout.contains(" c0ffee\n"), "{o:?}");
        let mut ex2 = s.job(&["nosuch"]);
        ex2.verb = "exec".into();
        ex2.run_dir = run_dir.clone();
        assert_eq!(s.run(&ex2, "").code, 127);

        let mut sig = s.job(&[]);
        sig.verb = "signal".into();
        sig.run_dir = run_dir.clone();
        sig.signal = libc::SIGTERM;
        let o = s.run(&sig, "");
        assert_eq!(o.code, 0, "{o:?}");
        wait_for("the exit hook", || exit_file.exists());
        assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "7");
        wait_for("the monitor to leave", || !runtime::is_running(&run_dir));
        assert!(
            std::fs::read_to_string(&log)
                .unwrap()
                .contains("\"bye\\n\"")
        );
        assert!(!run_dir.join("ctl.sock").exists());
    }
}

#[test]
fn wait_answers_the_exit_code() {
    for s in sandboxes() {
        let mut job = s.job(&["sh", "-c", "read x; exit 9"]);
        job.verb = "start".into();
        job.stdin = true;
        job.log = Some(s.dir.path().join("ctr.log"));
        assert_eq!(s.run(&job, "").code, 0);
        let mut attach = s.job(&[]);
        attach.verb = "attach".into();
        attach.stdin = true;
        attach.run_dir = job.run_dir.clone();
        let o = s.run(&attach, "go\n");
        assert_eq!(o.code, 9, "{:?}: {o:?}", s.who);
    }
}

#[test]
fn kill_of_the_monitor_takes_the_container_down() {
    let Some(s) = Sandbox::new(As::Root) else {
        return;
    };
    let mut job = s.job(&["sleep", "1000"]);
    job.verb = "start".into();
    job.log = Some(s.dir.path().join("ctr.log"));
    let o = s.run(&job, "");
    assert_eq!(o.code, 0, "{o:?}");
    let init: i32 = o.stdout.trim().parse().unwrap();
    let monitor: i32 = std::fs::read_to_string(job.run_dir.join("monitor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the container to die", || {
        !Path::new(&format!("/proc/{init}")).exists()
            || std::fs::read_to_string(format!("/proc/{init}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    assert!(!runtime::is_running(&job.run_dir));
}

#[test]
fn a_real_terminal() {
    for s in sandboxes() {
        let mut job = s.job(&["sh"]);
        job.process.tty = true;
        job.stdin = true;
        let log = s.dir.path().join("tty.log");
        job.log = Some(log.clone());
        // `script` gives the driver a pty as its terminal; the shell gets one of its own
        let json = serde_json::to_string(&job).unwrap();
        let inner = format!("CAMADA_RT_DRIVER='{json}' {}", driver_exe().display());
        let mut c = match &s.user {
            None => Command::new("script"),
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={}", u.uid))
                    .arg(format!("--regid={}", u.gid))
                    .args(["--init-groups", "--reset-env", "script"]);
                c
            }
        };
        c.args(["-qefc", &inner, "/dev/null"]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write;
            let mut i = child.stdin.take().unwrap();
            i.write_all(b"stty size; tty; echo $((6*7))$TERM\n")
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
            i.write_all(b"exit 3\n").unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("42xterm"), "{:?}: {text}", s.who);
        assert!(text.contains("/dev/pts/0"), "{:?}: {text}", s.who);
        // the pty's output is logged as stdout too
        let lines = log_lines(&log);
        assert!(
            lines.iter().all(|(s, _)| s == "stdout")
                && lines.iter().any(|(_, t)| t.contains("42xterm")),
            "{:?}: {lines:?}",
            s.who
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "{:?}: {text} {}",
            s.who,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn twenty_at_once() {
    let Some(s) = Sandbox::new(As::User) else {
        return;
    };
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let mut job = s.job(&["sh", "-c", &format!("echo {i}")]);
            job.id = format!("c{i}");
            job.run_dir = s.dir.path().join(format!("run/c{i}"));
            let cmd = s.command(&job, &[]);
            std::thread::spawn(move || {
                let mut cmd = cmd;
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
                cmd.status().unwrap().code()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Some(0));
    }
}

#[test]
fn detached_terminal_attach_and_exec_tty() {
    for s in sandboxes() {
        let log = s.dir.path().join("ctr.log");
        let mut job = s.job(&["sh"]);
        job.verb = "start".into();
        job.process.tty = true;
        job.stdin = true;
        job.log = Some(log.clone());
        assert_eq!(s.run(&job, "").code, 0, "{:?}", s.who);

        // exec -t: its own pty from the container's devpts
        let mut ex = s.job(&["sh", "-c", "tty; exit 2"]);
        ex.verb = "exec".into();
        ex.process.tty = true;
        ex.run_dir = job.run_dir.clone();
        let o = s.run(&ex, "");
        assert_eq!(o.code, 2, "{:?}: {o:?}", s.who);
        assert!(o.stdout.contains("/dev/pts/1"), "{:?}: {o:?}", s.who);

        let mut attach = s.job(&[]);
        attach.verb = "attach".into();
        attach.stdin = true;
        attach.process.tty = true;
        attach.run_dir = job.run_dir.clone();
        let o = s.run(&attach, "echo $((6*7))\nexit 5\n");
        assert_eq!(o.code, 5, "{:?}: {o:?}", s.who);
        assert!(o.stdout.contains("42"), "{:?}: {o:?}", s.who);
        wait_for("the monitor to leave", || {
            !runtime::is_running(&job.run_dir)
        });
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("42"), "{text}");
    }
}

#[test]
fn foreground_signals_reach_the_container() {
    for s in sandboxes() {
        let out = s.dir.path().join("sig-out");
        let job = s.job(&[
            "sh",
            "-c",
            "trap 'echo got-term; exit 8' TERM; echo ready; while :; do sleep 0.1; done",
        ]);
        let mut c = s.command(&job, &[("CAMADA_RT_OUT", out.display().to_string())]);
        c.stdin(Stdio::null()).stdout(Stdio::null());
        let mut child = c.spawn().unwrap();
        wait_for("the container to start", || {
            std::fs::read_to_string(&out).is_ok_and(|t| t.contains("ready"))
        });
        // the driver is setpriv's exec'd image: same pid
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let code = wait_timeout(&mut child, Duration::from_secs(30));
        assert_eq!(code, 8, "{:?}", s.who);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "ready\ngot-term\n");
    }
}
