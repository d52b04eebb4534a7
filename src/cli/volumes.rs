//! `volume create|ls|inspect|rm|prune`: their argh structs and docker's printing of them
//! (`DRIVER  VOLUME NAME` rows, the inspect JSON array, `Deleted Volumes:`). Each command is
//! one engine call per volume.

use std::io::{self, Write};

use argh::FromArgs;

use super::format::{inspect_json, pruned};
use super::template::format_rows;
use super::{CliError, confirm};
use crate::engine::Engine;
use crate::engine::volumes::{VolumeFilter, VolumeInspect};

/// Manage volumes (volume create, ls, inspect, rm, prune).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "volume", help_triggers("--help"))]
pub struct VolumeGroup {
    #[argh(subcommand)]
    pub command: VolumeCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum VolumeCommand {
    Create(VolumeCreate),
    Ls(VolumeLs),
    Inspect(VolumeInspectArgs),
    Rm(VolumeRm),
    Prune(VolumePruneArgs),
}

/// Create a volume (a random 64-hex name when none is given).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "create", help_triggers("--help"))]
pub struct VolumeCreate {
    /// volume driver name (only "local")
    #[argh(option, short = 'd')]
    pub driver: Option<String>,
    /// set metadata for a volume (KEY=VALUE)
    #[argh(option)]
    pub label: Vec<String>,
    /// the volume's name
    #[argh(positional, arg_name = "VOLUME")]
    pub name: Option<String>,
}

/// List volumes (also: volume list).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "ls", help_triggers("--help"))]
pub struct VolumeLs {
    /// only display volume names
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// filter: dangling=true|false, name=PART, label=KEY[=VALUE] (repeatable)
    #[argh(option, short = 'f')]
    pub filter: Vec<String>,
    /// format the output with a Go template ('{{.Name}} {{.Mountpoint}}', 'table ...'), or
    /// 'json'
    #[argh(option)]
    pub format: Option<String>,
}

/// docker's column names for `volume ls --format`.
const VOLUME_HEADERS: &[(&str, &str)] = &[
    ("Driver", "DRIVER"),
    ("Name", "VOLUME NAME"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Scope", "SCOPE"),
    ("Labels", "LABELS"),
];

/// Display detailed information on one or more volumes.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "inspect", help_triggers("--help"))]
pub struct VolumeInspectArgs {
    /// format the output using a Go template ('{{.Mountpoint}}'), or 'json'
    #[argh(option, short = 'f')]
    pub format: Option<String>,
    /// volumes to inspect
    #[argh(positional, arg_name = "VOLUME")]
    pub names: Vec<String>,
}

/// Remove one or more volumes (refused for a volume a container uses).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rm", help_triggers("--help"))]
pub struct VolumeRm {
    /// do not fail on a volume that does not exist
    #[argh(switch, short = 'f')]
    pub force: bool,
    /// volumes to remove
    #[argh(positional, arg_name = "VOLUME")]
    pub names: Vec<String>,
}

/// Remove unused anonymous volumes (with -a, every unused volume).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "prune", help_triggers("--help"))]
pub struct VolumePruneArgs {
    /// remove all unused volumes, not just anonymous ones
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// do not prompt for confirmation
    #[argh(switch, short = 'f')]
    pub force: bool,
}

pub fn dispatch(engine: &Engine, g: &VolumeGroup) -> Result<(), CliError> {
    match &g.command {
        VolumeCommand::Create(a) => create(engine, a),
        VolumeCommand::Ls(a) => ls(engine, a),
        VolumeCommand::Inspect(a) => inspect(engine, a),
        VolumeCommand::Rm(a) => rm(engine, a),
        VolumeCommand::Prune(a) => prune(engine, a),
    }
}

fn create(engine: &Engine, a: &VolumeCreate) -> Result<(), CliError> {
    if let Some(d) = a.driver.as_deref()
        && d != "local"
    {
        return Err(CliError::usage(
            format!("volume driver {d:?} is not supported: camada has the \"local\" driver"),
            "volume create",
        ));
    }
    let name = engine.create_volume(a.name.as_deref(), &a.label)?;
    writeln!(io::stdout().lock(), "{name}")?;
    Ok(())
}

fn ls(engine: &Engine, a: &VolumeLs) -> Result<(), CliError> {
    let mut filter = VolumeFilter::default();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("dangling", "true" | "1")) => filter.dangling = Some(true),
            Some(("dangling", "false" | "0")) => filter.dangling = Some(false),
            Some(("name", n)) => filter.names.push(n.to_string()),
            Some(("label", l)) => filter.labels.push(l.to_string()),
            Some(("driver", "local")) => {}
            _ => {
                return Err(CliError::usage(
                    format!(
                        "invalid filter {f:?}: camada filters volumes by dangling=BOOL, name=PART, label=KEY[=VALUE] or driver=local"
                    ),
                    "volume ls",
                ));
            }
        }
    }
    let vols = engine.list_volumes_filtered(&filter)?;
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = vols
        .iter()
        .map(|v| {
            let labels = v
                .labels
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let mut m = serde_json::Map::new();
            m.insert("Driver".into(), v.driver.clone().into());
            m.insert("Name".into(), v.name.clone().into());
            m.insert("Mountpoint".into(), v.mountpoint.clone().into());
            m.insert("Scope".into(), v.scope.clone().into());
            m.insert("Labels".into(), labels.into());
            m
        })
        .collect();
    let format = match (&a.format, a.quiet) {
        (_, true) => "{{.Name}}",
        (Some(f), false) => f.as_str(),
        (None, false) => "table {{.Driver}}\t{{.Name}}",
    };
    let text = format_rows(format, VOLUME_HEADERS, &rows)?;
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn inspect(engine: &Engine, a: &VolumeInspectArgs) -> Result<(), CliError> {
    if a.names.is_empty() {
        return Err(CliError::usage(
            "\"camada volume inspect\" requires at least 1 argument",
            "volume inspect",
        ));
    }
    inspect_names(engine, &a.names, a.format.as_deref())
}

/// Whether every name is a volume and none an image (so plain `inspect` shows volumes,
/// as docker's, which looks for images first).
pub fn all_volumes_not_images(engine: &Engine, names: &[String]) -> bool {
    !names.is_empty()
        && names
            .iter()
            .all(|n| engine.inspect_volume(n).is_ok() && engine.inspect_image(n).is_err())
}

/// `volume inspect` (and `inspect` of names that are all volumes).
pub fn inspect_names(
    engine: &Engine,
    names: &[String],
    format: Option<&str>,
) -> Result<(), CliError> {
    let template = match format {
        None | Some("json") => None,
        Some(t) => Some(super::template::Template::parse(t)?),
    };
    let mut found: Vec<VolumeInspect> = Vec::new();
    let mut errors = Vec::new();
    for n in names {
        match engine.inspect_volume(n) {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e),
        }
    }
    let mut out = io::stdout().lock();
    if let Some(t) = &template {
        for v in &found {
            let value = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
            writeln!(out, "{}", t.render(&value)?)?;
        }
    } else {
        let json = inspect_json(&found).map_err(|e| CliError::Output(io::Error::other(e)))?;
        out.write_all(json.as_bytes())?;
        writeln!(out)?;
    }
    out.flush()?;
    report_errors(errors, "volumes")
}

/// One error is the command's error; several are each printed, then the exit is 125.
fn report_errors(mut errors: Vec<crate::engine::EngineError>, what: &str) -> Result<(), CliError> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0).into()),
        n => {
            for e in &errors {
                eprintln!("Error: {}", super::one_line(&e.to_string()));
            }
            Err(CliError::Reported(format!("{n} {what} failed")))
        }
    }
}

fn rm(engine: &Engine, a: &VolumeRm) -> Result<(), CliError> {
    if a.names.is_empty() {
        return Err(CliError::usage(
            "\"camada volume rm\" requires at least 1 argument",
            "volume rm",
        ));
    }
    let mut errors = Vec::new();
    for n in &a.names {
        match engine.remove_volume(n) {
            Ok(()) => {
                let mut out = io::stdout().lock();
                writeln!(out, "{n}")?;
                out.flush()?;
            }
            Err(crate::engine::EngineError::Volumes(
                crate::engine::volumes::VolumesError::NoSuchVolume(_),
            )) if a.force => {}
            Err(e) => errors.push(e),
        }
    }
    report_errors(errors, "volumes")
}

fn prune(engine: &Engine, a: &VolumePruneArgs) -> Result<(), CliError> {
    let question = if a.all {
        "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?"
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?"
    };
    if !a.force && !confirm(question, "volume prune")? {
        return Ok(());
    }
    let report = engine.prune_volumes(a.all)?;
    let text = pruned(&[("Deleted Volumes:", report.removed)], report.reclaimed);
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
