//! `save`, `load` and `import`: argh structs to engine calls, and docker's output lines.

use std::fs;
use std::io::{self, IsTerminal, Write};

use super::CliError;
use super::commands::{Import, Load, Save};
use crate::engine::{Engine, ImportRequest, Input, LoadedImage, SaveFormat};

pub fn save(engine: &Engine, a: &Save) -> Result<(), CliError> {
    if a.images.is_empty() {
        return Err(CliError::usage(
            "\"camada save\" requires at least 1 argument",
            "save",
        ));
    }
    let format = match a.format.as_deref() {
        None | Some("docker-archive") | Some("docker") => SaveFormat::DockerArchive,
        Some("oci-archive") | Some("oci") => SaveFormat::OciArchive,
        Some(other) => {
            return Err(CliError::usage(
                format!("unknown --format {other:?}: use docker-archive or oci-archive"),
                "save",
            ));
        }
    };
    match &a.output {
        Some(path) => {
            let file = fs::File::create(path).map_err(|e| {
                CliError::Output(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            })?;
            let mut w = io::BufWriter::new(file);
            let res = engine
                .save(&a.images, format, &mut w)
                .map_err(CliError::from)
                .and_then(|()| w.flush().map_err(CliError::from));
            if res.is_err() {
                // never leave a half-written archive behind
                let _ = fs::remove_file(path);
            }
            res
        }
        None => {
            if io::stdout().is_terminal() {
                return Err(CliError::usage(
                    "cowardly refusing to save to a terminal: use the -o flag or redirect",
                    "save",
                ));
            }
            let mut w = io::BufWriter::new(io::stdout().lock());
            engine.save(&a.images, format, &mut w)?;
            w.flush()?;
            Ok(())
        }
    }
}

pub fn load(engine: &Engine, a: &Load) -> Result<(), CliError> {
    let input = match &a.input {
        Some(p) => Input::File(p.clone()),
        None => {
            if io::stdin().is_terminal() {
                return Err(CliError::usage(
                    "requested load from stdin, but stdin is a terminal: use -i FILE or redirect",
                    "load",
                ));
            }
            Input::Stdin
        }
    };
    // -q silences progress, of which there is none yet; the result lines stay, as docker's
    let _ = a.quiet;
    let loaded = engine.load(input)?;
    let mut out = io::stdout().lock();
    for l in loaded {
        match l {
            LoadedImage::Named(n) => writeln!(out, "Loaded image: {n}")?,
            LoadedImage::Id(id) => writeln!(out, "Loaded image ID: {id}")?,
        }
    }
    Ok(())
}

pub fn import(engine: &Engine, a: &Import) -> Result<(), CliError> {
    let input = if a.file == "-" {
        Input::Stdin
    } else {
        Input::File(a.file.clone().into())
    };
    let id = engine.import(
        input,
        &ImportRequest {
            reference: a.reference.clone(),
            changes: a.change.clone(),
            message: a.message.clone(),
        },
    )?;
    writeln!(io::stdout().lock(), "{id}")?;
    Ok(())
}
