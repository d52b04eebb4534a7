//! The command line: docker's words in, the engine's answers printed as docker prints them.
//!
//! Owns argv pre-processing (`argv`), the argh structs (`commands`), the conversion of a
//! parsed command into an engine call, and all output: tables (`format`), `--format`
//! templates (`template`), and the `Error: ...` line with its exit code. It never decides
//! anything about images or containers: that is the engine's job, and the engine never
//! prints. The invariant: every failure reaches the user as exactly one line starting
//! `Error: ` on stderr (plus, for a usage error, a `See 'camada CMD --help'.` hint) and
//! exit code 125.

mod archive;
mod argv;
mod build;
mod commands;
mod containers;
mod format;
mod fsops;
mod images;
mod interrupt;
mod registry;
mod stats;
mod system;
mod template;
mod tree;
mod volumes;

use std::io::{self, Write};

use argh::FromArgs;

use crate::engine::{Engine, EngineError};
use commands::{Camada, Command, ImageCommand, SystemCommand};

/// The exit code of an engine error or a usage error (as docker's).
pub const EXIT_ERROR: i32 = 125;

/// Why a command failed, as the user will read it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// The command line itself is wrong; `command` names the command for the hint.
    #[error("{message}")]
    Usage { message: String, command: String },
    #[error("writing output: {0}")]
    Output(#[source] io::Error),
    #[error("{0}")]
    Template(#[from] template::TemplateError),
    /// The container's own exit code (run, start -a, exec, attach); anything to say was
    /// already printed.
    #[error("exit status {0}")]
    Exit(i32),
    /// Several objects failed; each message was already printed.
    #[error("{0}")]
    Reported(String),
}

impl CliError {
    fn usage(message: impl Into<String>, command: &str) -> CliError {
        CliError::Usage {
            message: message.into(),
            command: command.to_string(),
        }
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> CliError {
        CliError::Output(e)
    }
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    let args: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
    {
        Ok(a) => a,
        Err(bad) => {
            eprintln!(
                "Error: argument {:?} is not valid UTF-8",
                bad.to_string_lossy()
            );
            return EXIT_ERROR;
        }
    };
    match run(&args) {
        Ok(()) => 0,
        Err(CliError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(CliError::Reported(_)) => EXIT_ERROR,
        Err(CliError::Exit(code)) => code,
        Err(CliError::Usage { message, command }) => {
            eprintln!("Error: {}", one_line(&message));
            let cmd = if command.is_empty() {
                "camada".to_string()
            } else {
                format!("camada {command}")
            };
            eprintln!("See '{cmd} --help'.");
            EXIT_ERROR
        }
        Err(e) => {
            eprintln!("Error: {}", one_line(&e.to_string()));
            EXIT_ERROR
        }
    }
}

/// Joins a multi-line message into one line.
fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `args` (without the program name) and runs the command.
pub fn run(args: &[String]) -> Result<(), CliError> {
    let expanded = argv::expand(args);
    let command_name = expanded.command.join(" ");
    if expanded.command.is_empty()
        && expanded
            .globals
            .iter()
            .any(|g| g == "--version" || g == "-v")
    {
        let mut out = io::stdout().lock();
        writeln!(out, "camada version {}", env!("CARGO_PKG_VERSION"))?;
        return Ok(());
    }
    if expanded.command.is_empty() && expanded.globals.iter().all(|g| g != "--help") {
        // bare `camada` shows the help, as bare `docker` does
        return run(&["--help".to_string()]);
    }
    let mut argv = expanded.argv();
    if matches!(expanded.command.as_slice(), [g] if g == "image" || g == "system" || g == "volume")
        && expanded.args.is_empty()
    {
        // bare `camada image` lists its subcommands, as docker does
        argv.push("--help".into());
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let parsed = match Camada::from_args(&["camada"], &argv) {
        Ok(p) => p,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    let mut out = io::stdout().lock();
                    writeln!(out, "{}", early.output)?;
                    Ok(())
                }
                Err(()) => {
                    let unknown = format!(
                        "Unrecognized argument: {}",
                        expanded.command.last().map_or("", String::as_str)
                    );
                    if !expanded.command.is_empty() && early.output.trim() == unknown {
                        let hint = expanded.command[..expanded.command.len() - 1].join(" ");
                        return Err(CliError::usage(
                            format!("'{command_name}' is not a camada command"),
                            &hint,
                        ));
                    }
                    Err(CliError::usage(
                        usage_message(&early.output, &command_name),
                        &command_name,
                    ))
                }
            };
        }
    };
    dispatch(parsed)
}

/// argh's error text in docker's words, on one line.
fn usage_message(argh: &str, command: &str) -> String {
    let text = argh.trim();
    if let Some(arg) = text.strip_prefix("Unrecognized argument: ") {
        let arg = arg.lines().next().unwrap_or(arg).trim_matches('"');
        return if arg.starts_with('-') {
            format!("unknown flag: {arg}")
        } else {
            format!("\"camada {command}\" got an unexpected argument: {arg}")
        };
    }
    if let Some(rest) = text.strip_prefix("Required positional arguments not provided:") {
        let names: Vec<&str> = rest.split_whitespace().collect();
        return format!(
            "\"camada {command}\" requires {}",
            names
                .iter()
                .map(|n| n.to_uppercase())
                .collect::<Vec<_>>()
                .join(" and ")
        );
    }
    if let Some(rest) = text.strip_prefix("No value provided for option ") {
        return format!(
            "flag needs an argument: {}",
            rest.trim_end_matches('.').trim_matches('\'')
        );
    }
    if text.starts_with("One of the following subcommands must be present") {
        return format!("\"camada {command}\" needs a subcommand");
    }
    one_line(text)
}

/// Opens the engine for the global flags.
fn engine(cmd: &Camada) -> Result<Engine, CliError> {
    Ok(Engine::open(cmd.root.as_deref(), cmd.runroot.as_deref())?)
}

fn dispatch(cmd: Camada) -> Result<(), CliError> {
    match &cmd.command {
        Command::Version(_) => system::version(),
        Command::Info(_) => system::info(&engine(&cmd)?),
        Command::Pull(a) => registry::pull(&engine(&cmd)?, a),
        Command::Push(a) => registry::push(&engine(&cmd)?, a),
        Command::Login(a) => registry::login(&engine(&cmd)?, a),
        Command::Logout(a) => registry::logout(&engine(&cmd)?, a),
        Command::Search(a) => registry::search(&engine(&cmd)?, a),
        Command::Images(a) => images::images(&engine(&cmd)?, a),
        Command::Tag(a) => images::tag(&engine(&cmd)?, a),
        Command::Rmi(a) => images::rmi(&engine(&cmd)?, a),
        Command::Inspect(a) => {
            let e = engine(&cmd)?;
            match a.kind.as_deref() {
                Some("container") => containers::inspect(&e, &a.names, a.format.as_deref()),
                None if containers::all_containers(&e, &a.names) => {
                    containers::inspect(&e, &a.names, a.format.as_deref())
                }
                Some("volume") => volumes::inspect_names(&e, &a.names, a.format.as_deref()),
                None if volumes::all_volumes_not_images(&e, &a.names) => {
                    volumes::inspect_names(&e, &a.names, a.format.as_deref())
                }
                _ => images::inspect(&e, a),
            }
        }
        Command::History(a) => images::history(&engine(&cmd)?, a),
        Command::Save(a) => archive::save(&engine(&cmd)?, a),
        Command::Load(a) => archive::load(&engine(&cmd)?, a),
        Command::Import(a) => archive::import(&engine(&cmd)?, a),
        Command::Build(a) => build::build(&engine(&cmd)?, a),
        Command::Image(g) => match &g.command {
            ImageCommand::Prune(a) => images::prune(&engine(&cmd)?, a.all, a.force, false),
            ImageCommand::Tree(a) => images::tree(&engine(&cmd)?, a),
        },
        Command::Run(a) => containers::run(&engine(&cmd)?, a),
        Command::Create(a) => containers::create(&engine(&cmd)?, a),
        Command::Start(a) => containers::start(&engine(&cmd)?, a),
        Command::Stop(a) => containers::stop(&engine(&cmd)?, a),
        Command::Restart(a) => containers::restart(&engine(&cmd)?, a),
        Command::Kill(a) => containers::kill(&engine(&cmd)?, a),
        Command::Rm(a) => containers::rm(&engine(&cmd)?, a),
        Command::Ps(a) => containers::ps(&engine(&cmd)?, a),
        Command::Exec(a) => containers::exec(&engine(&cmd)?, a),
        Command::Logs(a) => containers::logs(&engine(&cmd)?, a),
        Command::Attach(a) => containers::attach(&engine(&cmd)?, a),
        Command::Wait(a) => containers::wait(&engine(&cmd)?, a),
        Command::Port(a) => containers::port(&engine(&cmd)?, a),
        Command::Diff(a) => fsops::diff(&engine(&cmd)?, a),
        Command::Cp(a) => fsops::cp(&engine(&cmd)?, a),
        Command::Commit(a) => fsops::commit(&engine(&cmd)?, a),
        Command::Mount(a) => fsops::mount(&engine(&cmd)?, a),
        Command::Umount(a) => fsops::umount(&engine(&cmd)?, a),
        Command::Unshare(a) => fsops::unshare(&engine(&cmd)?, a),
        Command::Container(g) => match &g.command {
            containers::ContainerCommand::Inspect(a) => {
                containers::inspect(&engine(&cmd)?, &a.containers, a.format.as_deref())
            }
            containers::ContainerCommand::Prune(a) => containers::prune(&engine(&cmd)?, a),
        },
        Command::Top(a) => stats::top(&engine(&cmd)?, a),
        Command::Stats(a) => stats::stats(&engine(&cmd)?, a),
        Command::Volume(g) => volumes::dispatch(&engine(&cmd)?, g),
        Command::System(g) => match &g.command {
            SystemCommand::Prune(a) => images::prune(&engine(&cmd)?, a.all, a.force, true),
            SystemCommand::Df(_) => system::df(&engine(&cmd)?),
        },
    }
}

/// Asks `question [y/N]` on the terminal; refuses without one (the caller says how to
/// skip the question).
fn confirm(question: &str, command: &str) -> Result<bool, CliError> {
    use std::io::IsTerminal;
    if !io::stdin().is_terminal() {
        return Err(CliError::usage(
            format!(
                "\"camada {command}\" asks for confirmation, but stdin is not a terminal; \
                 pass -f to proceed without asking"
            ),
            command,
        ));
    }
    let mut out = io::stdout().lock();
    write!(out, "{question} [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argh_errors_read_like_docker() {
        assert_eq!(
            usage_message("Unrecognized argument: --bogus\n", "images"),
            "unknown flag: --bogus"
        );
        assert_eq!(
            usage_message("Unrecognized argument: extra\n", "history"),
            "\"camada history\" got an unexpected argument: extra"
        );
        assert_eq!(
            usage_message(
                "Required positional arguments not provided:\n    source\n    target\n",
                "tag"
            ),
            "\"camada tag\" requires SOURCE and TARGET"
        );
        assert_eq!(
            usage_message("No value provided for option '--format'.\n", "inspect"),
            "flag needs an argument: --format"
        );
    }

    #[test]
    fn messages_become_one_line() {
        assert_eq!(one_line("a\n  b\n\nc\n"), "a b c");
    }
}
