//! Runs a container on a directory rootfs through the runtime API alone (no store, no
//! image): the driver of tests/runtime.rs and of benches/runtime_start.sh. A plain
//! single-threaded program, as the CLI is, so signals and namespaces behave as in `camada`.
//!
//! `runtime_run [--init] [--network host|none|private] ROOTFS CMD [ARG...]` runs CMD in the
//! foreground (run directory `$TMPDIR/camada-rt<pid>`) and exits with its code. With
//! `CAMADA_RT_DRIVER` set to a JSON job (see [`Job`]) it does that job instead; then
//! `CAMADA_RT_OUT` / `CAMADA_RT_ERR` name files for its stdout / stderr.

use std::path::PathBuf;
use std::time::Duration;

use camada::runtime::{self, Container, ExitInfo, IdMaps, Io, OnExit, RootFs};

#[path = "runtime_job.rs"]
mod runtime_job;
use runtime_job::Job;

fn usage() -> ! {
    eprintln!("usage: runtime_run [--init] [--network host|none|private] ROOTFS CMD [ARG...]");
    std::process::exit(125);
}

fn job_from_args() -> Job {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut job = Job {
        verb: "run".into(),
        ..Job::default()
    };
    loop {
        match args.first().map(String::as_str) {
            Some("--init") => {
                job.init = true;
                args.remove(0);
            }
            Some("--network") if args.len() > 1 => {
                job.network = Some(args[1].parse().unwrap_or_else(|e| {
                    eprintln!("Error: {e}");
                    std::process::exit(125)
                }));
                args.drain(..2);
            }
            _ => break,
        }
    }
    if args.len() < 2 {
        usage();
    }
    job.rootfs = PathBuf::from(args.remove(0));
    job.id = format!("rt{}", std::process::id());
    job.run_dir = std::env::temp_dir().join(format!("camada-{}", job.id));
    job.hostname = job.id.clone();
    job.process.args = args;
    job
}

fn redirect(var: &str, stdout: bool) {
    let Ok(path) = std::env::var(var) else { return };
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| {
            eprintln!("Error: opening {path}: {e}");
            std::process::exit(125)
        });
    let done = if stdout {
        nix::unistd::dup2_stdout(&f)
    } else {
        nix::unistd::dup2_stderr(&f)
    };
    if let Err(e) = done {
        eprintln!("Error: redirecting to {path}: {e}");
        std::process::exit(125);
    }
}

fn main() {
    let job = match std::env::var("CAMADA_RT_DRIVER") {
        Ok(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
            eprintln!("Error: CAMADA_RT_DRIVER: {e}");
            std::process::exit(125)
        }),
        Err(_) => job_from_args(),
    };
    redirect("CAMADA_RT_OUT", true);
    redirect("CAMADA_RT_ERR", false);
    let code = match drive(job) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn drive(job: Job) -> Result<i32, runtime::RuntimeError> {
    let maps = if job.single_id {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        IdMaps::plan(uid, gid, "", "", "", None)
    } else {
        IdMaps::for_current_user()
    };
    match job.verb.as_str() {
        "run" | "start" => {
            let detached = job.verb == "start";
            let io = match &job.log {
                Some(path) if detached => Io::Log {
                    path: path.clone(),
                    stdin: job.stdin,
                },
                Some(path) => Io::InheritAndLog {
                    stdin: job.stdin,
                    log: path.clone(),
                },
                None => Io::Inherit { stdin: job.stdin },
            };
            let exit_file = job.exit_file;
            let hook: OnExit = Box::new(move |info: &ExitInfo| {
                if let Some(p) = exit_file {
                    let failure = info.failure.clone().unwrap_or_default();
                    let _ = std::fs::write(p, format!("{} {failure}", info.code));
                }
            });
            let c = Container {
                id: job.id,
                rootfs: RootFs::Dir(job.rootfs),
                run_dir: job.run_dir,
                process: job.process,
                hostname: job.hostname,
                network: job.network.unwrap_or_default(),
                binds: job.binds,
                init: job.init,
                io,
                maps,
                ports: Vec::new(),
                outbound: runtime::netns::Outbound::Loopback,
                fake_ids: job.fake_ids,
            };
            let started = runtime::start(c, Some(hook))?;
            if detached {
                println!("{}", started.init_pid);
                started.detach();
                Ok(0)
            } else {
                started.wait()
            }
        }
        "exec" => runtime::exec(&job.run_dir, &job.process, job.stdin)?.wait(),
        "signal" => match nix::sys::signal::Signal::try_from(job.signal) {
            Ok(sig) => runtime::signal(&job.run_dir, sig).map(|()| 0),
            Err(e) => {
                eprintln!("Error: signal {}: {e}", job.signal);
                Ok(125)
            }
        },
        "wait" => Ok(runtime::wait(&job.run_dir, Some(Duration::from_secs(20)))?.unwrap_or(-1)),
        "attach" => runtime::attach(&job.run_dir, job.stdin, job.process.tty),
        other => {
            eprintln!("Error: unknown verb {other:?}");
            Ok(125)
        }
    }
}
