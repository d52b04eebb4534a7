//! `build` (and `image build`): the flags to a build request, the progress printed as
//! BuildKit's plain output (`#3 [2/6] RUN ...`, `#3 CACHED`, `#3 DONE 0.4s`) and the
//! final `Successfully built ID` / `Successfully tagged NAME` lines; `-q` prints the
//! image ID only.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;

use super::CliError;
use crate::engine::{BuildProgress as Progress, BuildRequest, Engine, StepInfo};
use crate::reference::Reference;

/// Build an image from a Dockerfile (also: image build).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "build", help_triggers("--help"))]
pub struct Build {
    /// name and optionally a tag (NAME[:TAG]); repeatable
    #[argh(option, short = 't')]
    pub tag: Vec<String>,
    /// the Dockerfile (default CONTEXT/Dockerfile; - reads it from stdin)
    #[argh(option, short = 'f')]
    pub file: Option<String>,
    /// a build-time variable (KEY=VALUE, or KEY to take it from the environment)
    #[argh(option)]
    pub build_arg: Vec<String>,
    /// the stage to build (default the last)
    #[argh(option)]
    pub target: Option<String>,
    /// do not use the cache
    #[argh(switch)]
    pub no_cache: bool,
    /// print only the image ID
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// a label for the image (KEY=VALUE); repeatable
    #[argh(option)]
    pub label: Vec<String>,
    /// the network of RUN steps: private (default), host or none
    #[argh(option)]
    pub network: Option<String>,
    /// compression of the image's new layers when pushed: gzip (default) or zstd
    #[argh(option)]
    pub compression: Option<String>,
    /// a secret RUN --mount=type=secret can read (id=ID,src=FILE or id=ID,env=VAR);
    /// repeatable
    #[argh(option)]
    pub secret: Vec<String>,
    /// the build context (a directory)
    #[argh(positional)]
    pub context: String,
}

/// BuildKit's plain progress on stdout: each step gets a number (`#N`).
struct Plain {
    next: usize,
    current: usize,
}

impl Plain {
    fn line(&self, text: &str) {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "#{} {text}", self.current);
        let _ = out.flush();
    }
}

fn title(s: &StepInfo) -> String {
    match &s.stage {
        Some(stage) => format!("[{stage} {}/{}] {}", s.n, s.total, s.text),
        None => format!("[{}/{}] {}", s.n, s.total, s.text),
    }
}

impl Progress for Plain {
    fn step(&mut self, s: &StepInfo) {
        self.next += 1;
        self.current = self.next;
        self.line(&title(s));
    }
    fn cached(&mut self, _: &StepInfo) {
        self.line("CACHED");
    }
    fn done(&mut self, _: &StepInfo, took: Duration) {
        self.line(&format!("DONE {:.1}s", took.as_secs_f64()));
    }
    fn output(&mut self, text: &str) {
        let mut err = io::stderr().lock();
        let _ = write!(err, "{text}");
    }
    fn warning(&mut self, text: &str) {
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "WARNING: {text}");
    }
}

/// `-q`: nothing but the failing step's output and warnings, on stderr.
struct Quiet;

impl Progress for Quiet {
    fn step(&mut self, _: &StepInfo) {}
    fn cached(&mut self, _: &StepInfo) {}
    fn done(&mut self, _: &StepInfo, _: Duration) {}
    fn output(&mut self, text: &str) {
        let _ = write!(io::stderr().lock(), "{text}");
    }
    fn warning(&mut self, text: &str) {
        let _ = writeln!(io::stderr().lock(), "WARNING: {text}");
    }
}

pub fn build(engine: &Engine, a: &Build) -> Result<(), CliError> {
    let stdin_dockerfile = match a.file.as_deref() {
        Some("-") => {
            let mut bytes = Vec::new();
            io::stdin().lock().read_to_end(&mut bytes)?;
            Some(bytes)
        }
        _ => None,
    };
    let req = BuildRequest {
        context: PathBuf::from(&a.context),
        file: a.file.as_ref().filter(|f| *f != "-").map(PathBuf::from),
        stdin_dockerfile,
        tags: a.tag.clone(),
        build_args: a.build_arg.clone(),
        target: a.target.clone(),
        no_cache: a.no_cache,
        labels: a.label.clone(),
        network: a.network.clone(),
        quiet: a.quiet,
        compression: a.compression.clone(),
        secrets: a.secret.clone(),
    };
    let built = if a.quiet {
        engine.build(&req, &mut Quiet)?
    } else {
        engine.build(
            &req,
            &mut Plain {
                next: 0,
                current: 0,
            },
        )?
    };
    let mut out = io::stdout().lock();
    if a.quiet {
        writeln!(out, "{}", built.id)?;
        return Ok(());
    }
    writeln!(out, "Successfully built {}", built.id.short())?;
    for t in &a.tag {
        let shown = Reference::parse(t).map_or_else(|_| t.clone(), |r| r.familiar());
        writeln!(out, "Successfully tagged {shown}")?;
    }
    Ok(())
}
