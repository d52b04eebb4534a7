//! The container commands: their argh structs (run, create, start, stop, kill, restart,
//! rm, ps, exec, logs, attach, wait, container inspect/prune) and the printing docker does
//! for them (`ps` columns and status strings, IDs and names echoed, `logs` to the stream
//! each line came from). Each command is one engine call; the container's own exit code
//! becomes ours through [`CliError::Exit`].

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;

use super::format::{Table, human_duration, human_size, inspect_json, pruned};
use super::{CliError, confirm};
use crate::engine::containers::{
    ContainerRow, ContainersError, CreateRequest, ExecRequest, LogLine, LogsRequest, PreparedStart,
    StartMode, Status, Stream,
};
use crate::engine::{Engine, EngineError};

/// The flags `run` and `create` share.
macro_rules! create_flags {
    ($(#[$m:meta])* $name:ident, $sub:tt, { $($extra:tt)* }) => {
        $(#[$m])*
        #[derive(FromArgs, Debug)]
        #[argh(subcommand, name = $sub, help_triggers("--help"))]
        pub struct $name {
            $($extra)*
            /// keep STDIN open even if not attached
            #[argh(switch, short = 'i')]
            pub interactive: bool,
            /// allocate a pseudo-TTY
            #[argh(switch, short = 't')]
            pub tty: bool,
            /// automatically remove the container when it exits
            #[argh(switch)]
            pub rm: bool,
            /// assign a name to the container
            #[argh(option)]
            pub name: Option<String>,
            /// set environment variables (K=V, or K to take it from here)
            #[argh(option, short = 'e')]
            pub env: Vec<String>,
            /// read in a file of environment variables
            #[argh(option)]
            pub env_file: Vec<PathBuf>,
            /// bind mount a volume: /HOST:/CONTAINER[:ro], NAME:/CONTAINER[:ro] or /CONTAINER
            #[argh(option, short = 'v')]
            pub volume: Vec<String>,
            /// attach a filesystem mount: type=bind|volume,source=...,target=...[,readonly]
            #[argh(option)]
            pub mount: Vec<String>,
            /// working directory inside the container
            #[argh(option, short = 'w')]
            pub workdir: Option<String>,
            /// username or UID (format: <name|uid>[:<group|gid>])
            #[argh(option, short = 'u')]
            pub user: Option<String>,
            /// publish a container's port to the host: [IP:]HOST:CTR[/tcp|udp], or CTR for a
            /// free host port
            #[argh(option, short = 'p')]
            pub publish: Vec<String>,
            /// publish every exposed port (the image's EXPOSE and --expose) on a free host
            /// port
            #[argh(switch, short = 'P')]
            pub publish_all: bool,
            /// expose a port or a range of ports: PORT[/PROTO] or FIRST-LAST[/PROTO]
            #[argh(option)]
            pub expose: Vec<String>,
            /// network mode: private (default), host or none
            #[argh(option)]
            pub network: Option<String>,
            /// overwrite the default ENTRYPOINT of the image
            #[argh(option)]
            pub entrypoint: Option<String>,
            /// container host name (default: the short ID)
            #[argh(option, short = 'h')]
            pub hostname: Option<String>,
            /// run an init inside the container that forwards signals and reaps processes
            #[argh(switch)]
            pub init: bool,
            /// the image, then the command and its arguments
            #[argh(positional, greedy, arg_name = "IMAGE [COMMAND] [ARG...]")]
            pub args: Vec<String>,
        }
    };
}

create_flags!(
    /// Create and run a new container from an image (also: container run).
    Run, "run", {
        /// run container in background and print container ID
        #[argh(switch, short = 'd')]
        pub detach: bool,
    }
);

create_flags!(
    /// Create a new container (also: container create).
    Create, "create", {}
);

/// Start one or more stopped containers (also: container start).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "start", help_triggers("--help"))]
pub struct Start {
    /// attach STDOUT/STDERR and forward signals
    #[argh(switch, short = 'a')]
    pub attach: bool,
    /// attach container's STDIN
    #[argh(switch, short = 'i')]
    pub interactive: bool,
    /// accepted for `start -it` (the container's own -t decides the terminal)
    #[argh(switch, short = 't')]
    pub tty: bool,
    /// containers (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Stop one or more running containers (also: container stop).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "stop", help_triggers("--help"))]
pub struct Stop {
    /// seconds to wait before killing the container (default 10)
    #[argh(option, short = 't', long = "time")]
    pub time: Option<u64>,
    /// containers (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Restart one or more containers (also: container restart).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "restart", help_triggers("--help"))]
pub struct Restart {
    /// seconds to wait before killing the container (default 10)
    #[argh(option, short = 't', long = "time")]
    pub time: Option<u64>,
    /// containers (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Kill one or more running containers (also: container kill).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "kill", help_triggers("--help"))]
pub struct Kill {
    /// signal to send to the container (default KILL)
    #[argh(option, short = 's')]
    pub signal: Option<String>,
    /// containers (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Remove one or more containers (also: container rm).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rm", help_triggers("--help"))]
pub struct Rm {
    /// force the removal of a running container
    #[argh(switch, short = 'f')]
    pub force: bool,
    /// remove the anonymous volumes associated with the container
    #[argh(switch, short = 'v')]
    pub volumes: bool,
    /// containers (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// List containers (also: container ls).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "ps", help_triggers("--help"))]
pub struct Ps {
    /// show all containers (default shows just running)
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// only display container IDs
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// don't truncate output
    #[argh(switch)]
    pub no_trunc: bool,
    /// display total file sizes
    #[argh(switch, short = 's')]
    pub size: bool,
}

/// Execute a command in a running container (also: container exec).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "exec", help_triggers("--help"))]
pub struct Exec {
    /// keep STDIN open
    #[argh(switch, short = 'i')]
    pub interactive: bool,
    /// allocate a pseudo-TTY
    #[argh(switch, short = 't')]
    pub tty: bool,
    /// set environment variables
    #[argh(option, short = 'e')]
    pub env: Vec<String>,
    /// working directory inside the container
    #[argh(option, short = 'w')]
    pub workdir: Option<String>,
    /// username or UID (format: <name|uid>[:<group|gid>])
    #[argh(option, short = 'u')]
    pub user: Option<String>,
    /// the container, then the command and its arguments
    #[argh(positional, greedy, arg_name = "CONTAINER COMMAND [ARG...]")]
    pub args: Vec<String>,
}

/// Fetch the logs of a container (also: container logs).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "logs", help_triggers("--help"))]
pub struct Logs {
    /// follow log output
    #[argh(switch, short = 'f')]
    pub follow: bool,
    /// number of lines to show from the end of the logs (default all)
    #[argh(option, short = 'n')]
    pub tail: Option<String>,
    /// show timestamps
    #[argh(switch, short = 't')]
    pub timestamps: bool,
    /// the container (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub container: String,
}

/// Attach your terminal to a running container (also: container attach).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "attach", help_triggers("--help"))]
pub struct Attach {
    /// do not attach STDIN
    #[argh(switch)]
    pub no_stdin: bool,
    /// the container (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub container: String,
}

/// List port mappings or a specific mapping for the container.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "port", help_triggers("--help"))]
pub struct Port {
    /// the container (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub container: String,
    /// only this private port (PORT or PORT/PROTO, default tcp)
    #[argh(positional, arg_name = "PRIVATE_PORT[/PROTO]")]
    pub private: Option<String>,
}

/// Block until one or more containers stop, then print their exit codes.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "wait", help_triggers("--help"))]
pub struct Wait {
    /// containers (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Manage containers (container ls, run, create, start, stop, kill, restart, rm, exec,
/// logs, attach, wait, inspect, prune).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "container", help_triggers("--help"))]
pub struct ContainerGroup {
    #[argh(subcommand)]
    pub command: ContainerCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum ContainerCommand {
    Inspect(ContainerInspect),
    Prune(ContainerPrune),
}

/// Display detailed information on one or more containers.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "inspect", help_triggers("--help"))]
pub struct ContainerInspect {
    /// format the output using a Go template ('{{.State.Status}}'), or 'json'
    #[argh(option, short = 'f')]
    pub format: Option<String>,
    /// containers (name, ID or ID prefix)
    #[argh(positional, arg_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Remove all stopped containers.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "prune", help_triggers("--help"))]
pub struct ContainerPrune {
    /// do not prompt for confirmation
    #[argh(switch, short = 'f')]
    pub force: bool,
}

/// An engine error; a command that could not be run inside the container keeps docker's
/// 126/127 (the message is printed here, as the exit code alone would lose it).
fn fail(e: EngineError) -> CliError {
    match &e {
        EngineError::Containers(c) if c.exit_code() != 125 => {
            eprintln!("Error: {}", super::one_line(&e.to_string()));
            CliError::Exit(c.exit_code())
        }
        _ => CliError::Engine(e),
    }
}

/// The container's exit code as ours.
fn exit_with(code: i32) -> Result<(), CliError> {
    if code == 0 {
        Ok(())
    } else {
        Err(CliError::Exit(code))
    }
}

fn require(cond: bool, what: &str, command: &str) -> Result<(), CliError> {
    if cond {
        Ok(())
    } else {
        Err(CliError::usage(
            format!("\"camada {command}\" requires at least 1 argument: {what}"),
            command,
        ))
    }
}

macro_rules! request {
    ($a:expr) => {
        CreateRequest {
            image: $a.args[0].clone(),
            command: $a.args[1..].to_vec(),
            name: $a.name.clone(),
            env: $a.env.clone(),
            env_files: $a.env_file.clone(),
            workdir: $a.workdir.clone(),
            user: $a.user.clone(),
            entrypoint: $a.entrypoint.clone(),
            hostname: $a.hostname.clone(),
            tty: $a.tty,
            interactive: $a.interactive,
            auto_remove: $a.rm,
            network: $a.network.clone(),
            volumes: $a.volume.clone(),
            mounts: $a.mount.clone(),
            publish: $a.publish.clone(),
            publish_all: $a.publish_all,
            expose: $a.expose.clone(),
            init: $a.init,
        }
    };
}

/// `create` as docker's: an image not stored is pulled first (told on stderr, so that
/// stdout stays the container's own, or its ID).
fn create_pulling(engine: &Engine, req: &CreateRequest) -> Result<String, CliError> {
    match engine.create_container(req) {
        Err(EngineError::Containers(ContainersError::ImageNotFound(word))) => {
            let shown = match crate::reference::Reference::parse(&word) {
                Ok(r) => r.familiar(),
                Err(_) => word.clone(),
            };
            eprintln!("Unable to find image '{shown}' locally");
            // the guard's thread is gone (joined) before the container is started
            let name =
                super::interrupt::cancellable_pull(|cancel| engine.pull_for_run(&word, cancel))??;
            eprintln!("Status: Downloaded newer image for {name}");
            engine.create_container(req).map_err(fail)
        }
        other => other.map_err(fail),
    }
}

/// Starts a prepared container, after its warning (once, on stderr, as docker's
/// `WARNING:` lines): every command that starts one goes through here.
fn launch(start: PreparedStart<'_>) -> Result<Option<i32>, EngineError> {
    if let Some(w) = start.warning() {
        eprintln!("WARNING: {w}");
    }
    start.run()
}

pub fn run(engine: &Engine, a: &Run) -> Result<(), CliError> {
    require(!a.args.is_empty(), "IMAGE", "run")?;
    let id = create_pulling(engine, &request!(a))?;
    let mode = if a.detach {
        StartMode::Detached
    } else {
        StartMode::Foreground
    };
    let code = engine
        .prepare_start(&id, mode)
        .and_then(launch)
        .map_err(fail)?;
    if a.detach {
        writeln!(io::stdout().lock(), "{id}")?;
        return Ok(());
    }
    exit_with(code.unwrap_or(0))
}

pub fn create(engine: &Engine, a: &Create) -> Result<(), CliError> {
    require(!a.args.is_empty(), "IMAGE", "create")?;
    let id = create_pulling(engine, &request!(a))?;
    writeln!(io::stdout().lock(), "{id}")?;
    Ok(())
}

/// Runs `f` for each container word, printing the word on success and an `Error:` line
/// on failure, as docker does for its multi-container verbs.
fn each(
    words: &[String],
    command: &str,
    mut f: impl FnMut(&str) -> Result<(), EngineError>,
) -> Result<(), CliError> {
    require(!words.is_empty(), "CONTAINER", command)?;
    let mut failed = 0;
    let mut last = None;
    for w in words {
        match f(w) {
            Ok(()) => {
                let mut out = io::stdout().lock();
                writeln!(out, "{w}")?;
                out.flush()?;
            }
            Err(e) => {
                failed += 1;
                if words.len() > 1 {
                    eprintln!("Error: {}", super::one_line(&e.to_string()));
                }
                last = Some(e);
            }
        }
    }
    match (failed, last) {
        (0, _) | (_, None) => Ok(()),
        (1, Some(e)) if words.len() == 1 => Err(fail(e)),
        (n, _) => Err(CliError::Reported(format!("{n} containers failed"))),
    }
}

pub fn start(engine: &Engine, a: &Start) -> Result<(), CliError> {
    // `-t` is accepted as a no-op alias (the seeds write `start -it`): the container's own
    // -t decides whether it has a terminal.
    let _ = a.tty;
    if a.attach || a.interactive {
        if a.containers.len() != 1 {
            return Err(CliError::usage(
                "you cannot start and attach multiple containers at once",
                "start",
            ));
        }
        let mode = StartMode::Attach {
            stdin: a.interactive,
        };
        let code = engine
            .prepare_start(&a.containers[0], mode)
            .and_then(launch)
            .map_err(fail)?;
        return exit_with(code.unwrap_or(0));
    }
    each(&a.containers, "start", |w| {
        engine
            .prepare_start(w, StartMode::Detached)
            .and_then(launch)
            .map(drop)
    })
}

fn timeout(t: Option<u64>) -> Duration {
    Duration::from_secs(t.unwrap_or(10))
}

pub fn stop(engine: &Engine, a: &Stop) -> Result<(), CliError> {
    each(&a.containers, "stop", |w| {
        engine.stop_container(w, timeout(a.time))
    })
}

pub fn restart(engine: &Engine, a: &Restart) -> Result<(), CliError> {
    each(&a.containers, "restart", |w| {
        engine
            .restart_container(w, timeout(a.time))
            .and_then(launch)
            .map(drop)
    })
}

pub fn kill(engine: &Engine, a: &Kill) -> Result<(), CliError> {
    let sig = a.signal.clone().unwrap_or_else(|| "KILL".into());
    each(&a.containers, "kill", |w| engine.kill_container(w, &sig))
}

pub fn rm(engine: &Engine, a: &Rm) -> Result<(), CliError> {
    each(&a.containers, "rm", |w| {
        engine.remove_container(w, a.force, a.volumes)
    })
}

pub fn wait(engine: &Engine, a: &Wait) -> Result<(), CliError> {
    require(!a.containers.is_empty(), "CONTAINER", "wait")?;
    for w in &a.containers {
        let code = engine.wait_container(w)?;
        writeln!(io::stdout().lock(), "{code}")?;
    }
    Ok(())
}

/// docker's `Ellipsis` for the COMMAND column (cut marked by `…`).
fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    let mut out: String = chars[..max - 1].iter().collect();
    out.push('…');
    out
}

/// `STATUS` as docker writes it.
pub fn status_text(row: &ContainerRow, now: i64) -> String {
    match row.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", human_duration(now - row.started.unwrap_or(now))),
        Status::Exited => match row.finished {
            Some(t) => format!(
                "Exited ({}) {} ago",
                row.state.exit_code,
                human_duration(now - t)
            ),
            None => format!("Exited ({})", row.state.exit_code),
        },
        Status::Removing => "Removal In Progress".into(),
    }
}

pub fn ps(engine: &Engine, a: &Ps) -> Result<(), CliError> {
    let rows = engine.list_containers(a.all, a.size)?;
    let mut out = io::stdout().lock();
    let id = |r: &ContainerRow| {
        if a.no_trunc {
            r.id.clone()
        } else {
            r.id.chars().take(12).collect()
        }
    };
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", id(r))?;
        }
        return Ok(());
    }
    let now = super::images::now();
    let mut header = vec![
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    if a.size {
        header.push("SIZE");
    }
    let mut t = Table::new(&header);
    for r in &rows {
        let command = r.command.join(" ");
        let command = if a.no_trunc {
            command
        } else {
            ellipsis(&command, 20)
        };
        let mut cells = vec![
            id(r),
            r.image.clone(),
            format!("\"{command}\""),
            format!("{} ago", human_duration(now - r.created)),
            status_text(r, now),
            r.ports
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            r.name.clone(),
        ];
        if let Some((upper, image)) = r.size {
            cells.push(format!(
                "{} (virtual {})",
                human_size(upper),
                human_size(upper + image)
            ));
        }
        t.row(cells);
    }
    write!(out, "{}", t.render())?;
    Ok(())
}

pub fn exec(engine: &Engine, a: &Exec) -> Result<(), CliError> {
    if a.args.len() < 2 {
        return Err(CliError::usage(
            "\"camada exec\" requires at least 2 arguments: CONTAINER COMMAND [ARG...]",
            "exec",
        ));
    }
    let code = engine
        .exec_container(
            &a.args[0],
            &ExecRequest {
                command: a.args[1..].to_vec(),
                interactive: a.interactive,
                tty: a.tty,
                env: a.env.clone(),
                workdir: a.workdir.clone(),
                user: a.user.clone(),
            },
        )
        .map_err(fail)?;
    exit_with(code)
}

pub fn attach(engine: &Engine, a: &Attach) -> Result<(), CliError> {
    let code = engine
        .attach_container(&a.container, !a.no_stdin)
        .map_err(fail)?;
    exit_with(code)
}

pub fn logs(engine: &Engine, a: &Logs) -> Result<(), CliError> {
    let tail = match a.tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            CliError::usage(
                format!("invalid --tail {n:?}: give a number of lines or \"all\""),
                "logs",
            )
        })?),
    };
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut sink = |l: &LogLine| -> io::Result<()> {
        let prefix = if a.timestamps {
            format!("{} ", l.time)
        } else {
            String::new()
        };
        match l.stream {
            Stream::Stdout => {
                let mut o = stdout.lock();
                write!(o, "{prefix}{}", l.text)?;
                o.flush()
            }
            Stream::Stderr => {
                let mut e = stderr.lock();
                write!(e, "{prefix}{}", l.text)?;
                e.flush()
            }
        }
    };
    match engine.container_logs(
        &a.container,
        LogsRequest {
            follow: a.follow,
            tail,
        },
        &mut sink,
    ) {
        Err(EngineError::Containers(ContainersError::Output(e))) => Err(CliError::Output(e)),
        other => other.map_err(fail),
    }
}

/// `container inspect` (and `inspect` of names that are all containers).
pub fn inspect(engine: &Engine, names: &[String], format: Option<&str>) -> Result<(), CliError> {
    require(!names.is_empty(), "CONTAINER", "container inspect")?;
    let template = match format {
        None | Some("json") => None,
        Some(t) => Some(super::template::Template::parse(t)?),
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for n in names {
        match engine.inspect_container(n) {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e),
        }
    }
    let mut out = io::stdout().lock();
    match (&template, format) {
        (Some(t), _) => {
            for v in &found {
                let value = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
                writeln!(out, "{}", t.render(&value)?)?;
            }
        }
        (None, Some("json")) => {
            for v in &found {
                writeln!(out, "{}", serde_json::to_string(v).unwrap_or_default())?;
            }
        }
        (None, _) => {
            let json = inspect_json(&found).map_err(|e| CliError::Output(io::Error::other(e)))?;
            out.write_all(json.as_bytes())?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0).into()),
        n => {
            for e in &errors {
                eprintln!("Error: {e}");
            }
            Err(CliError::Reported(format!("{n} objects not found")))
        }
    }
}

/// Whether every name is a container (so `inspect` shows containers).
pub fn all_containers(engine: &Engine, names: &[String]) -> bool {
    let Ok(records) = engine.records() else {
        return false;
    };
    !names.is_empty() && names.iter().all(|n| records.resolve(n).is_ok())
}

pub fn prune(engine: &Engine, a: &ContainerPrune) -> Result<(), CliError> {
    if !a.force
        && !confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
            "container prune",
        )?
    {
        return Ok(());
    }
    let report = engine.prune_containers()?;
    let text = pruned(&[("Deleted Containers:", report.removed)], report.reclaimed);
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// `port`: `80/tcp -> 0.0.0.0:18081` lines, or only the host addresses of one private port.
pub fn port(engine: &Engine, a: &Port) -> Result<(), CliError> {
    let published = engine.container_ports(&a.container)?;
    let mut out = io::stdout().lock();
    let Some(private) = &a.private else {
        for p in &published {
            writeln!(out, "{}/{} -> {}", p.container_port, p.proto, p.host)?;
        }
        return Ok(());
    };
    let (number, proto) = private.split_once('/').unwrap_or((private, "tcp"));
    let wanted = format!("{number}/{proto}");
    let hosts: Vec<_> = published
        .iter()
        .filter(|p| format!("{}/{}", p.container_port, p.proto) == wanted)
        .collect();
    if hosts.is_empty() {
        let message = format!("No public port '{wanted}' published for {}", a.container);
        eprintln!("Error: {message}");
        return Err(CliError::Reported(message));
    }
    for p in hosts {
        writeln!(out, "{}", p.host)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::containers::State;

    fn row(status: Status, code: i32, started: Option<i64>, finished: Option<i64>) -> ContainerRow {
        ContainerRow {
            id: "a".repeat(64),
            image: "base".into(),
            command: vec!["sh".into()],
            created: 0,
            state: State {
                status,
                exit_code: code,
                ..State::default()
            },
            started,
            finished,
            name: "x_y".into(),
            size: None,
            ports: Vec::new(),
        }
    }

    #[test]
    fn status_strings_are_dockers() {
        assert_eq!(
            status_text(&row(Status::Created, 0, None, None), 100),
            "Created"
        );
        assert_eq!(
            status_text(&row(Status::Running, 0, Some(97), None), 100),
            "Up 3 seconds"
        );
        assert_eq!(
            status_text(&row(Status::Exited, 0, Some(1), Some(95)), 100),
            "Exited (0) 5 seconds ago"
        );
        assert_eq!(
            status_text(&row(Status::Exited, 137, Some(1), Some(100 - 7200)), 100),
            "Exited (137) 2 hours ago"
        );
        assert_eq!(
            status_text(&row(Status::Running, 0, Some(100), None), 100),
            "Up Less than a second"
        );
    }

    #[test]
    fn command_column_is_cut_at_20() {
        assert_eq!(ellipsis("sh", 20), "sh");
        assert_eq!(
            ellipsis("sh -c while true; do sleep 1; done", 20),
            "sh -c while true; d…"
        );
        assert_eq!(ellipsis("sh -c while true; d…", 20).chars().count(), 20);
    }
}
