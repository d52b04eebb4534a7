//! Shared helpers for camada's integration tests (every `tests/*.rs` does `mod common;`).
//!
//! Owns: [`Camada`], the built binary run in a throwaway store (its own CAMADA_ROOT,
//! CAMADA_RUNROOT, CAMADA_CONFIG and HOME in a fresh temp dir), either as the current user or
//! as the unprivileged user `camadatest` ([`Camada::as_user`]); [`Run`], a finished command
//! whose assertions print the command, its exit status, and a readable diff of its output;
//! [`base_image`], the fixtures base image built once per test run; [`Camada::store`] and
//! [`store_in`], the library's view of a test store (to seed or inspect it without the
//! binary); and [`require`], the skip-or-fail check for what the machine may lack.
//!
//! Never touches the real user's store or config, and never skips on CI: with `CI=true` a
//! missing prerequisite fails the test. Skips are only for what the machine truly lacks (not
//! root, so no test user can be made); each one is printed past the test's output capture and
//! listed in `target/tmp/skipped.log`, which `tests/run` shows at the end.
//!
//! ```text
//! mod common;
//! use common::{Camada, require};
//!
//! #[test]
//! fn lists_the_base_image() {
//!     let c = Camada::new();                      // as the current user (root on CI)
//!     let base = c.load_base();                   // fixtures/mkbase, built once per run
//!     c.run(["images", "-q"]).success().stdout_is(&format!("{}\n", base.short_id()));
//!     c.run(["rmi", "nope"]).engine_error().stderr_has("nope");
//! }
//!
//! #[test]
//! fn rootless() {
//!     let Some(c) = Camada::as_user() else { return };   // camadatest via setpriv
//!     if !require("FUSE", common::fuse_usable()) { return; }
//!     if !require("user namespaces", c.userns_usable()) { return; }
//!     let helper = c.executable(Path::new(env!("CARGO_BIN_EXE_x")));  // reachable by the user
//!     c.exec(c.command(helper)).success();
//! }
//! ```
#![allow(dead_code, unused_imports)] // each test file uses its own part of this module

mod base;
pub mod engines;
mod run;
mod user;

pub use base::{BaseImage, base_image, fixtures_dir};
pub use run::{NO_OUTBOUND, Run, diff_lines};
pub use user::{TestUser, fuse_usable, test_user};

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use camada::paths::{Env, Paths};
use camada::store::Store;

/// The camada binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_camada");

/// The PATH every command gets (the standard Debian one: newuidmap, skopeo, umoci...).
pub const STD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long one command may run before it is killed and the test fails (a hang guard, not a
/// speed check). `CAMADA_TEST_TIMEOUT=SECONDS` changes it.
fn default_timeout() -> Duration {
    let secs = std::env::var("CAMADA_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// True on CI (`CI=true` or `CI=1`): nothing may be skipped there.
pub fn on_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1" | "yes"))
}

/// True when the tests run as root (they can then make the test user and fix /dev/fuse).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Writes to the real stderr, past libtest's capture (which only catches `eprintln!`), so a
/// skip is seen even when the test passes.
pub fn loud(msg: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{msg}");
}

/// `Ok` -> true. `Err(why)` -> on CI the test fails; elsewhere a loud SKIP line is printed and
/// logged, and false is returned (the test then returns early):
/// `if !require("a test user", test_user().map(|_| ())) { return; }`
pub fn require(what: &str, check: Result<(), String>) -> bool {
    let why = match check {
        Ok(()) => return true,
        Err(why) => why,
    };
    let test = std::thread::current().name().unwrap_or("?").to_string();
    if on_ci() {
        panic!("{what}: {why}\n(CI=true: a missing prerequisite fails instead of skipping)");
    }
    loud(&format!("SKIP {test}: needs {what}: {why}"));
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "{test}: needs {what}: {why}");
    }
    false
}

/// The store layout of a test directory `dir` as the library resolves it: CAMADA_ROOT
/// `dir/root`, CAMADA_RUNROOT `dir/run`, CAMADA_CONFIG `dir/config`, HOME `dir`.
pub fn paths_in(dir: &Path) -> Paths {
    resolve_paths(
        &dir.join("root"),
        &dir.join("run"),
        dir,
        &dir.join("config"),
    )
}

/// The store of [`paths_in`]`(dir)`, opened (and made) through the library.
pub fn store_in(dir: &Path) -> Store {
    open_store(&paths_in(dir))
}

fn resolve_paths(root: &Path, runroot: &Path, home: &Path, config: &Path) -> Paths {
    let env = Env {
        home: Some(home.to_path_buf()),
        camada_config: Some(config.to_path_buf()),
        ..Env::default()
    };
    Paths::resolve(Some(root), Some(runroot), &env)
        .unwrap_or_else(|e| panic!("resolving the store paths at {}: {e}", root.display()))
}

fn open_store(paths: &Paths) -> Store {
    Store::open(paths).unwrap_or_else(|e| panic!("opening the store {}: {e}", paths.root.display()))
}

/// The path of `tool` on [`STD_PATH`]; fails the test (with the Debian package to install)
/// when it is missing: an installable package is not something the machine "lacks".
pub fn tool(name: &str) -> PathBuf {
    for dir in STD_PATH.split(':') {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    let package = match name {
        "busybox" => "busybox-static",
        "newuidmap" | "newgidmap" => "uidmap",
        "fusermount3" => "fuse3",
        "registry" | "docker-registry" => "docker-registry",
        "htpasswd" => "apache2-utils",
        other => other,
    };
    panic!(
        "{name} is not installed; install it with: apt-get install {package} \
         (fixtures/apt-packages lists everything the tests use)"
    );
}

/// `program` as the test user can run it: the path itself when that user can execute it, else
/// a copy in a world-readable temp dir (e.g. a clone under /root, which is 0700). Said once.
fn executable_by(user: &TestUser, program: &Path) -> PathBuf {
    static SEEN: Mutex<BTreeMap<PathBuf, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = seen.get(program) {
        return p.clone();
    }
    let reachable = user
        .command("test")
        .arg("-x")
        .arg(program)
        .status()
        .is_ok_and(|s| s.success());
    let path = if reachable {
        program.to_path_buf()
    } else {
        let copy = user::shared_copy(program);
        loud(&format!(
            "note: {} is not executable by user {} (a parent directory lacks o+x, \
             e.g. /root is 0700); running a copy: {}",
            program.display(),
            user.name,
            copy.display()
        ));
        copy
    };
    seen.insert(program.to_path_buf(), path.clone());
    path
}

/// The camada binary with a store of its own in a fresh temp dir, removed when dropped.
///
/// Layout of [`Camada::dir`]: `root/` (CAMADA_ROOT), `run/` (CAMADA_RUNROOT), `config/`
/// (CAMADA_CONFIG), `home/` (HOME), `work/` (the working directory of every command: put test
/// files here). For [`Camada::as_user`] the whole dir belongs to the test user.
pub struct Camada {
    tmp: tempfile::TempDir,
    user: Option<&'static TestUser>,
    bin: PathBuf,
    timeout: Duration,
    envs: Vec<(OsString, OsString)>,
}

impl Default for Camada {
    fn default() -> Self {
        Camada::new()
    }
}

impl Camada {
    /// Runs as the current user (root on CI).
    pub fn new() -> Camada {
        Camada::make(None, PathBuf::from(BIN))
    }

    /// Runs as an unprivileged user: `camadatest` through setpriv when the tests run as root,
    /// else the current user (who is unprivileged already). As root it also makes /dev/fuse
    /// usable by others. `None` (after a loud SKIP) only off CI, when the user cannot be made.
    pub fn as_user() -> Option<Camada> {
        if !is_root() {
            return Some(Camada::make(None, PathBuf::from(BIN)));
        }
        let user = match test_user() {
            Ok(u) => u,
            Err(why) => {
                require("the unprivileged test user camadatest", Err(why));
                return None;
            }
        };
        // Rootless runs need /dev/fuse; a failure here shows again in require_fuse().
        let _ = fuse_usable();
        Some(Camada::make(
            Some(user),
            executable_by(user, Path::new(BIN)),
        ))
    }

    fn make(user: Option<&'static TestUser>, bin: PathBuf) -> Camada {
        let tmp = tempfile::Builder::new()
            .prefix("camada-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("making a temp dir: {e}"));
        for d in ["home", "work"] {
            std::fs::create_dir(tmp.path().join(d))
                .unwrap_or_else(|e| panic!("making {d} in {}: {e}", tmp.path().display()));
        }
        if let Some(u) = user {
            u.chown_tree(tmp.path());
        }
        Camada {
            tmp,
            user,
            bin,
            timeout: default_timeout(),
            envs: Vec::new(),
        }
    }

    /// The temp dir holding everything of this Camada.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
    /// CAMADA_ROOT (not created: the engine makes it).
    pub fn root(&self) -> PathBuf {
        self.dir().join("root")
    }
    /// CAMADA_RUNROOT (not created: the engine makes it).
    pub fn runroot(&self) -> PathBuf {
        self.dir().join("run")
    }
    /// CAMADA_CONFIG (not created).
    pub fn config(&self) -> PathBuf {
        self.dir().join("config")
    }
    /// HOME of every command (exists, empty).
    pub fn home(&self) -> PathBuf {
        self.dir().join("home")
    }
    /// The working directory of every command, owned by the user: put test files here.
    pub fn work(&self) -> PathBuf {
        self.dir().join("work")
    }
    /// The test user this runs as, or None for the current user.
    pub fn user(&self) -> Option<&'static TestUser> {
        self.user
    }
    /// The uid the commands run with.
    pub fn uid(&self) -> u32 {
        self.user
            .map_or_else(|| nix::unistd::geteuid().as_raw(), |u| u.uid)
    }
    /// True when the commands run without root (as_user, or tests not run as root).
    pub fn unprivileged(&self) -> bool {
        self.uid() != 0
    }

    /// The paths the binary resolves from this Camada's environment (root, runroot, config,
    /// HOME), for a test that reads or seeds the store through the library.
    pub fn paths(&self) -> Paths {
        resolve_paths(&self.root(), &self.runroot(), &self.home(), &self.config())
    }

    /// This Camada's store opened through the library, by the test's own user: as root,
    /// whatever it makes belongs to root (hand it over with [`TestUser::chown_tree`]).
    pub fn store(&self) -> Store {
        open_store(&self.paths())
    }

    /// `program` (a test helper binary, say) at a path this Camada's user can execute.
    pub fn executable(&self, program: &Path) -> PathBuf {
        match self.user {
            Some(u) => executable_by(u, program),
            None => program.to_path_buf(),
        }
    }

    /// Ok when this Camada's user can make a user namespace (`unshare --user
    /// --map-root-user true`): what every rootless container needs from the kernel.
    pub fn userns_usable(&self) -> Result<(), String> {
        let mut cmd = self.command("unshare");
        cmd.args(["--user", "--map-root-user", "true"]);
        let out = cmd
            .output()
            .map_err(|e| format!("running unshare: {e} (apt-get install util-linux)"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "uid {} cannot create a user namespace: {} (is kernel.unprivileged_userns_clone or \
             user.max_user_namespaces 0?)",
            self.uid(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }

    /// Adds an environment variable to every later command.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Changes the hang guard for later commands.
    pub fn timeout(&mut self, d: Duration) -> &mut Self {
        self.timeout = d;
        self
    }

    /// The environment every command gets, and nothing else of the test's own.
    fn env_pairs(&self) -> Vec<(OsString, OsString)> {
        let mut v: Vec<(OsString, OsString)> = vec![
            ("PATH".into(), STD_PATH.into()),
            ("HOME".into(), self.home().into()),
            ("CAMADA_ROOT".into(), self.root().into()),
            ("CAMADA_RUNROOT".into(), self.runroot().into()),
            ("CAMADA_CONFIG".into(), self.config().into()),
        ];
        if let Ok(b) = std::env::var("RUST_BACKTRACE") {
            v.push(("RUST_BACKTRACE".into(), b.into()));
        }
        v.extend(self.envs.iter().cloned());
        v
    }

    /// Any program, run as this Camada's user with its environment, in [`Camada::work`].
    /// For peers (skopeo, umoci) that must act as the same user on the same files.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = match self.user {
            Some(u) => {
                let mut c = u.command("env");
                for (k, v) in self.env_pairs() {
                    let mut kv = k;
                    kv.push("=");
                    kv.push(v);
                    c.arg(kv);
                }
                c.arg(program);
                c
            }
            None => {
                let mut c = Command::new(program);
                c.env_clear().envs(self.env_pairs());
                c
            }
        };
        c.current_dir(self.work());
        c
    }

    /// The camada binary with `args`, not started (for spawn-and-kill tests).
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command(&self.bin);
        c.args(args);
        c
    }

    /// Runs `camada ARGS` with no stdin and waits for it.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Run::exec(self.cmd(args), None, self.timeout)
    }

    /// Runs `camada ARGS` with `stdin` as its standard input.
    pub fn run_stdin<I, S>(&self, args: I, stdin: &[u8]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.exec_stdin(self.cmd(args), stdin)
    }

    /// Runs any command (e.g. from [`Camada::command`]) with the same hang guard.
    pub fn exec(&self, cmd: Command) -> Run {
        Run::exec(cmd, None, self.timeout)
    }

    /// Runs any command with `stdin` as its standard input, with the same hang guard.
    pub fn exec_stdin(&self, cmd: Command, stdin: &[u8]) -> Run {
        Run::exec(cmd, Some(stdin), self.timeout)
    }

    /// `camada ARGS` must succeed; returns its stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(args).success().stdout()
    }

    /// `camada ARGS` must fail as cli.md says ([`Run::error_line`]); returns its `Error: `
    /// line.
    pub fn fails<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(args).error_line()
    }

    /// Copies `src` (file or directory tree) into [`Camada::work`] under its own name, owned
    /// by this Camada's user, and returns the copy's path. For inputs the test user may not
    /// be able to read where they are (target/ under /root).
    pub fn give(&self, src: &Path) -> PathBuf {
        let name = src
            .file_name()
            .unwrap_or_else(|| panic!("give: {} has no file name", src.display()));
        let dst = self.work().join(name);
        let st = Command::new("cp")
            .arg("-a")
            .arg(src)
            .arg(&dst)
            .status()
            .unwrap_or_else(|e| panic!("running cp: {e}"));
        assert!(
            st.success(),
            "cp -a {} {} failed",
            src.display(),
            dst.display()
        );
        if let Some(u) = self.user {
            u.chown_tree(&dst);
        }
        dst
    }

    /// Loads the fixtures base image (`camada load -i base.tar`), asserting success; the
    /// image is then `base:latest` (docker.io/library/base:latest).
    pub fn load_base(&self) -> &'static BaseImage {
        let base = base_image();
        let tar = if self.user.is_some() {
            self.give(&base.oci_tar)
        } else {
            base.oci_tar.clone()
        };
        self.run([OsStr::new("load"), OsStr::new("-i"), tar.as_os_str()])
            .success();
        base
    }
}
