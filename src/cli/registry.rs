//! The registry commands as typed (`pull`, `push`, `login`, `logout`, `search`) and their
//! output as docker prints it: a line per layer with a bar on a terminal (indicatif),
//! plain status lines otherwise, only the reference with `-q`.
//!
//! It turns arguments into engine calls and engine answers into text; the transfer
//! itself is `engine::pull` / `engine::push`. Invariant: progress goes to stdout, as
//! docker's does; errors go back to `cli::main` as one `Error:` line.

use std::collections::HashMap;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::sync::Mutex;

use argh::FromArgs;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::CliError;
use super::format::Table;
use crate::digest::Digest;
use crate::engine::login::Credentials;
use crate::engine::pull::{LayerEvent, PullProgress as Progress};
use crate::engine::push::Outcome as PushOutcome;
use crate::engine::{Engine, EngineError, login, pull, push};
use crate::image::Platform;
use crate::reference::Reference;

/// Download an image from a registry (also: image pull).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "pull")]
pub struct Pull {
    /// suppress verbose output
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// the platform to pull from a multi-platform image (os/arch[/variant])
    #[argh(option)]
    pub platform: Option<String>,
    /// use HTTPS and verify certificates (default true; false allows plain HTTP)
    #[argh(option, default = "true")]
    pub tls_verify: bool,
    /// the image (NAME[:TAG|@DIGEST])
    #[argh(positional, arg_name = "NAME[:TAG|@DIGEST]")]
    pub reference: String,
}

/// Upload an image to a registry (also: image push).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "push")]
pub struct Push {
    /// suppress verbose output
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// use HTTPS and verify certificates (default true; false allows plain HTTP)
    #[argh(option, default = "true")]
    pub tls_verify: bool,
    /// the image (NAME[:TAG])
    #[argh(positional, arg_name = "NAME[:TAG]")]
    pub reference: String,
}

/// Log in to a registry (default docker.io); the credentials are checked first, then
/// kept in auth.json (0600) in the config directory.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "login")]
pub struct Login {
    /// username
    #[argh(option, short = 'u')]
    pub username: Option<String>,
    /// password (prefer --password-stdin)
    #[argh(option, short = 'p')]
    pub password: Option<String>,
    /// take the password from stdin
    #[argh(switch)]
    pub password_stdin: bool,
    /// use HTTPS and verify certificates (default true; false allows plain HTTP)
    #[argh(option, default = "true")]
    pub tls_verify: bool,
    /// the registry (default docker.io)
    #[argh(positional, arg_name = "SERVER")]
    pub server: Option<String>,
}

/// Log out from a registry (default docker.io).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "logout")]
pub struct Logout {
    /// the registry (default docker.io)
    #[argh(positional, arg_name = "SERVER")]
    pub server: Option<String>,
}

/// Search a registry's catalog for repositories (REGISTRY/TERM; a bare TERM searches
/// Docker Hub).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "search")]
pub struct Search {
    /// at most this many results (default 25)
    #[argh(option, default = "25")]
    pub limit: usize,
    /// don't truncate output
    #[argh(switch)]
    pub no_trunc: bool,
    /// use HTTPS and verify certificates (default true; false allows plain HTTP)
    #[argh(option, default = "true")]
    pub tls_verify: bool,
    /// REGISTRY/TERM
    #[argh(positional, arg_name = "TERM")]
    pub term: String,
}

fn parse_ref(word: &str) -> Result<Reference, CliError> {
    Reference::parse(word).map_err(|e| {
        CliError::Engine(EngineError::BadReference {
            word: word.to_owned(),
            why: e.to_string(),
        })
    })
}

pub fn pull(engine: &Engine, a: &Pull) -> Result<(), CliError> {
    let reference = parse_ref(&a.reference)?;
    let platform = match &a.platform {
        Some(p) => Some(
            p.parse::<Platform>()
                .map_err(|e| CliError::usage(e.to_string(), "pull"))?,
        ),
        None => None,
    };
    let opts = pull::PullOptions {
        platform,
        tls_verify: a.tls_verify,
        threads: pull::DEFAULT_THREADS,
    };
    // never hold the stdout lock across the transfer: the workers print progress; and
    // nothing printed before the transfer may stop it (a reader that went away)
    let mut out = io::stdout();
    let display = Display::new(a.quiet, Verb::Pull);
    if !a.quiet {
        let has_tag = Reference::parse_named(&a.reference).is_ok_and(|r| r.tag.is_some());
        if reference.digest.is_none() && !has_tag {
            say(format_args!("Using default tag: latest\n"));
        }
        let what = reference
            .tag
            .clone()
            .or_else(|| reference.digest.as_ref().map(Digest::to_string))
            .unwrap_or_default();
        say(format_args!(
            "{what}: Pulling from {}\n",
            repo_path(&reference)
        ));
    }
    let result = super::interrupt::cancellable_pull(|cancel| {
        pull::pull(engine.store(), &reference, &opts, &display, cancel)
    });
    display.finish();
    let pulled = result?.map_err(EngineError::from)?;
    if !a.quiet {
        writeln!(out, "Digest: {}", pulled.digest)?;
        let status = if pulled.up_to_date {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        writeln!(out, "Status: {status} {}", reference.familiar())?;
    }
    writeln!(out, "{reference}")?;
    Ok(())
}

/// docker's `Pulling from library/busybox`: the repository path as the registry names it.
fn repo_path(r: &Reference) -> String {
    r.repository.clone()
}

pub fn push(engine: &Engine, a: &Push) -> Result<(), CliError> {
    let reference = parse_ref(&a.reference)?;
    let mut out = io::stdout();
    if !a.quiet {
        say(format_args!(
            "The push refers to repository [{}]\n",
            reference.familiar_name()
        ));
    }
    let display = Display::new(a.quiet, Verb::Push);
    let result = push::push(
        engine.store(),
        &reference,
        a.tls_verify,
        pull::DEFAULT_THREADS,
        &display,
    );
    // mounts name their source repository, known only at the end
    if let Ok(p) = &result {
        // layers only (the config is last), as docker shows
        for (d, o) in p.blobs.iter().take(p.blobs.len().saturating_sub(1)) {
            if let PushOutcome::MountedFrom(repo) = o {
                display.set_message(d, &format!("Mounted from {repo}"));
            }
        }
    }
    display.finish();
    let pushed = result.map_err(EngineError::from)?;
    if a.quiet {
        writeln!(out, "{reference}")?;
    } else {
        writeln!(
            out,
            "{}: digest: {} size: {}",
            pushed.tag, pushed.digest, pushed.size
        )?;
    }
    Ok(())
}

pub fn login(engine: &Engine, a: &Login) -> Result<(), CliError> {
    let registry = login::registry_name(a.server.as_deref()).map_err(EngineError::from)?;
    let stdin = io::stdin();
    let username = match &a.username {
        Some(u) => u.clone(),
        None if stdin.is_terminal() && !a.password_stdin => prompt("Username: ", true)?,
        None => {
            return Err(CliError::usage(
                "a username is needed: pass -u USER",
                "login",
            ));
        }
    };
    let password = if a.password_stdin {
        if a.password.is_some() {
            return Err(CliError::usage(
                "--password and --password-stdin are mutually exclusive",
                "login",
            ));
        }
        let mut s = String::new();
        stdin.lock().read_to_string(&mut s)?;
        s.trim_end_matches(['\n', '\r']).to_owned()
    } else if let Some(p) = &a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else if stdin.is_terminal() {
        prompt("Password: ", false)?
    } else {
        return Err(CliError::usage(
            "a password is needed: pass --password-stdin (or -p)",
            "login",
        ));
    };
    if username.is_empty() || password.is_empty() {
        return Err(CliError::usage(
            "username and password must not be empty",
            "login",
        ));
    }
    login::login(
        engine.paths(),
        &registry,
        Credentials { username, password },
        a.tls_verify,
    )
    .map_err(EngineError::from)?;
    writeln!(io::stdout(), "Login Succeeded")?;
    Ok(())
}

/// Reads one line from the terminal; without echo for a password.
fn prompt(label: &str, echo: bool) -> Result<String, CliError> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let mut out = io::stdout().lock();
    write!(out, "{label}")?;
    out.flush()?;
    let stdin = io::stdin();
    let saved = if echo { None } else { tcgetattr(&stdin).ok() };
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
        writeln!(out)?;
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub fn logout(engine: &Engine, a: &Logout) -> Result<(), CliError> {
    let registry = login::registry_name(a.server.as_deref()).map_err(EngineError::from)?;
    let mut out = io::stdout().lock();
    match login::logout(engine.paths(), &registry) {
        Ok(()) => writeln!(out, "Removing login credentials for {registry}")?,
        Err(login::LoginError::NotLoggedIn(r)) => writeln!(out, "Not logged in to {r}")?,
        Err(e) => return Err(EngineError::from(e).into()),
    }
    Ok(())
}

pub fn search(engine: &Engine, a: &Search) -> Result<(), CliError> {
    let rows = login::search(engine.paths(), &a.term, a.limit.max(1), a.tls_verify)
        .map_err(EngineError::from)?;
    let mut t = Table::new(&["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]);
    for r in rows {
        let description = if a.no_trunc {
            r.description.clone()
        } else {
            super::format::ellipsis(&r.description, 45)
        };
        t.row(vec![
            r.name,
            description,
            r.stars.map(|s| s.to_string()).unwrap_or_default(),
            if r.official {
                "[OK]".into()
            } else {
                String::new()
            },
        ]);
    }
    write!(io::stdout(), "{}", t.render())?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Pull,
    Push,
}

/// A layer line without a bar: `ID: state`.
fn text_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg}").unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Progress as docker shows it: bars on a terminal, status lines when stdout is not one,
/// nothing with `-q`.
struct Display {
    quiet: bool,
    verb: Verb,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
    /// Plain mode: the last state printed per layer (lines only on change).
    last: Mutex<HashMap<Digest, &'static str>>,
}

/// Progress goes to stdout from the transfer threads; a reader that went away
/// (`camada pull x | head -1`) must not stop the pull, so write errors are dropped here.
fn say(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = io::stdout().lock().write_fmt(args);
}

impl Display {
    fn new(quiet: bool, verb: Verb) -> Display {
        let multi = (!quiet && io::stdout().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(10)));
        Display {
            quiet,
            verb,
            multi,
            bars: Mutex::new(HashMap::new()),
            last: Mutex::new(HashMap::new()),
        }
    }

    fn set_message(&self, d: &Digest, msg: &str) {
        if let Some(b) = self.bars.lock().unwrap_or_else(|p| p.into_inner()).get(d) {
            b.set_message(msg.to_owned());
        } else if !self.quiet && self.multi.is_none() {
            say(format_args!("{}: {msg}\n", d.short()));
        }
    }

    /// Leaves every line as it last was; the cursor ends below them.
    fn finish(self) {
        let bars = self.bars.into_inner().unwrap_or_else(|p| p.into_inner());
        for b in bars.values() {
            if !b.is_finished() {
                b.abandon();
            }
        }
        let drawn = !bars.is_empty();
        drop(bars);
        if let Some(m) = self.multi {
            drop(m);
            if drawn {
                // indicatif leaves the cursor at the end of the last line
                say(format_args!("\n"));
            }
        }
    }

    fn words(&self, e: LayerEvent) -> Option<&'static str> {
        Some(match (self.verb, e) {
            (Verb::Pull, LayerEvent::Waiting) => "Pulling fs layer",
            (Verb::Push, LayerEvent::Waiting) => "Preparing",
            (_, LayerEvent::AlreadyExists) => match self.verb {
                Verb::Pull => "Already exists",
                Verb::Push => "Layer already exists",
            },
            (_, LayerEvent::Mounted) => "Mounted",
            (_, LayerEvent::Resuming(_)) => "Resuming",
            (Verb::Pull, LayerEvent::Downloading { .. }) => "Downloading",
            (Verb::Push, LayerEvent::Downloading { .. }) => "Pushing",
            (_, LayerEvent::Verifying) => "Verifying Checksum",
            (Verb::Pull, LayerEvent::Complete) => "Pull complete",
            (Verb::Push, LayerEvent::Complete) => "Pushed",
            (_, LayerEvent::Retrying(_)) => "Retrying",
        })
    }
}

impl Progress for Display {
    fn layer(&self, d: &Digest, e: LayerEvent) {
        if self.quiet {
            return;
        }
        let Some(words) = self.words(e) else { return };
        let Some(multi) = &self.multi else {
            if e == LayerEvent::Mounted {
                return; // printed with its source repository at the end
            }
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.get(d) == Some(&words) {
                return;
            }
            last.insert(d.clone(), words);
            let extra = match e {
                LayerEvent::Resuming(n) => format!(" from byte {n}"),
                LayerEvent::Retrying(n) => format!(" (attempt {n})"),
                _ => String::new(),
            };
            say(format_args!("{}: {words}{extra}\n", d.short()));
            return;
        };
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(d.clone()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(text_style());
            b.set_prefix(d.short().to_owned());
            b
        });
        match e {
            LayerEvent::Downloading { done, total } => {
                if bar.length() != Some(total) {
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix}: {msg:<18} [{bar:50}] {bytes}/{total_bytes}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_length(total);
                }
                bar.set_position(done);
            }
            LayerEvent::Resuming(n) => bar.set_position(n),
            LayerEvent::Complete | LayerEvent::AlreadyExists | LayerEvent::Mounted => {
                bar.set_style(text_style());
                bar.finish_with_message(words);
                return;
            }
            _ => {}
        }
        bar.set_message(words);
    }
}
