//! The image commands: each turns its argh struct into one engine call and prints the
//! answer in docker's shape (tables, `Untagged:`/`Deleted:` lines, inspect JSON).

use std::io::{self, Write};

use serde_json::{Map, Value};

use super::commands::{History, Images, Inspect, Rmi, Tag};
use super::format::{ago, ellipsis, human_size, inspect_json, pruned};
use super::template::{Template, format_rows};
use super::{CliError, confirm};
use crate::digest::Digest;
use crate::engine::{Engine, ListImages, Removed};
use crate::image::format_rfc3339;

/// Seconds since the epoch, for "2 hours ago".
pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An image ID as docker shows it: 12 hex digits, or `sha256:<64>` with `--no-trunc`.
fn show_id(id: &Digest, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.short().to_string()
    }
}

/// docker's column names for `images --format`.
const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
];

pub fn images(engine: &Engine, a: &Images) -> Result<(), CliError> {
    let mut req = ListImages {
        all: a.all,
        reference: a.reference.clone(),
        ..ListImages::default()
    };
    for f in &a.filter {
        match f.split_once('=') {
            Some(("dangling", v)) => {
                req.dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(CliError::usage(
                            format!("invalid filter {f:?}: dangling is true or false"),
                            "images",
                        ));
                    }
                })
            }
            Some(("reference", p)) => req.patterns.push(p.to_string()),
            _ => {
                return Err(CliError::usage(
                    format!(
                        "invalid filter {f:?}: camada filters by dangling=BOOL or reference=PATTERN"
                    ),
                    "images",
                ));
            }
        }
    }
    let rows = engine.images(&req)?;
    let now = now();
    let none = || Value::String("<none>".into());
    let fields: Vec<Map<String, Value>> = rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("ID".into(), show_id(&r.id, a.no_trunc).into());
            m.insert(
                "Repository".into(),
                r.repository.clone().map_or_else(none, Value::String),
            );
            m.insert("Tag".into(), r.tag.clone().map_or_else(none, Value::String));
            m.insert(
                "Digest".into(),
                r.digest
                    .as_ref()
                    .map_or_else(none, |d| d.to_string().into()),
            );
            m.insert("CreatedSince".into(), ago(r.created, now).into());
            m.insert("CreatedAt".into(), created_at(r.created).into());
            m.insert("Size".into(), human_size(r.size).into());
            m
        })
        .collect();
    let format = match (&a.format, a.quiet, a.digests) {
        (_, true, _) => "{{.ID}}",
        (Some(f), false, _) => f.as_str(),
        (None, false, false) => {
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
        }
        (None, false, true) => {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
        }
    };
    let text = format_rows(format, IMAGE_HEADERS, &fields)?;
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// docker's `CreatedAt`: `2024-05-01 12:00:00 +0000 UTC`.
fn created_at(t: Option<i64>) -> String {
    match t {
        Some(t) => {
            format_rfc3339(t, 0)
                .trim_end_matches('Z')
                .replacen('T', " ", 1)
                + " +0000 UTC"
        }
        None => String::new(),
    }
}

pub fn tag(engine: &Engine, a: &Tag) -> Result<(), CliError> {
    engine.tag(&a.source, &a.target)?;
    Ok(())
}

fn print_removed(out: &mut impl Write, removed: &[Removed], lower: bool) -> io::Result<()> {
    for r in removed {
        match (r, lower) {
            (Removed::Untagged(name), false) => writeln!(out, "Untagged: {name}")?,
            (Removed::Deleted(id), false) => writeln!(out, "Deleted: {id}")?,
            (Removed::Untagged(name), true) => writeln!(out, "untagged: {name}")?,
            (Removed::Deleted(id), true) => writeln!(out, "deleted: {id}")?,
        }
    }
    Ok(())
}

pub fn rmi(engine: &Engine, a: &Rmi) -> Result<(), CliError> {
    if a.images.is_empty() {
        return Err(CliError::usage(
            "\"camada rmi\" requires at least 1 argument",
            "rmi",
        ));
    }
    let mut failed = 0;
    for name in &a.images {
        match engine.remove_image(name, a.force) {
            Ok(removed) => {
                let mut out = io::stdout().lock();
                print_removed(&mut out, &removed, false)?;
                out.flush()?;
            }
            Err(e) => {
                eprintln!("Error: {e}");
                failed += 1;
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(CliError::Reported(format!("{n} images not removed"))),
    }
}

pub fn inspect(engine: &Engine, a: &Inspect) -> Result<(), CliError> {
    if a.names.is_empty() {
        return Err(CliError::usage(
            "\"camada inspect\" requires at least 1 argument",
            "inspect",
        ));
    }
    if let Some(kind) = a.kind.as_deref()
        && kind != "image"
    {
        return Err(CliError::usage(
            format!("unsupported --type {kind:?}: camada inspects images (--type image)"),
            "inspect",
        ));
    }
    let template = match a.format.as_deref() {
        None | Some("json") => None,
        Some(t) => Some(Template::parse(t)?),
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &a.names {
        match engine.inspect_image(name) {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e),
        }
    }
    let mut out = io::stdout().lock();
    match (&template, a.format.as_deref()) {
        (Some(t), _) => {
            for v in &found {
                let value = serde_json::to_value(v).unwrap_or(Value::Null);
                writeln!(out, "{}", t.render(&value)?)?;
            }
        }
        (None, Some("json")) => {
            for v in &found {
                writeln!(out, "{}", serde_json::to_string(v).unwrap_or_default())?;
            }
        }
        (None, _) => {
            let json = inspect_json(&found)
                .unwrap_or_else(|_| serde_json::to_string(&found).unwrap_or_default());
            writeln!(out, "{json}")?
        }
    }
    out.flush()?;
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0).into()),
        _ => {
            for e in &errors {
                eprintln!("Error: {e}");
            }
            Err(CliError::Reported(format!(
                "{} objects not found",
                errors.len()
            )))
        }
    }
}

/// docker's column names for `history --format`.
const HISTORY_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

pub fn history(engine: &Engine, a: &History) -> Result<(), CliError> {
    let rows = engine.history(&a.image)?;
    let now = now();
    let fields: Vec<Map<String, Value>> = rows
        .iter()
        .map(|r| {
            let created_by = r.created_by.replace('\t', " ");
            let mut m = Map::new();
            m.insert(
                "ID".into(),
                r.id.as_ref()
                    .map_or_else(|| "<missing>".into(), |d| show_id(d, a.no_trunc))
                    .into(),
            );
            m.insert(
                "CreatedSince".into(),
                if a.human {
                    ago(r.created, now)
                } else {
                    r.created
                        .map_or_else(|| "N/A".into(), |t| format_rfc3339(t, 0))
                }
                .into(),
            );
            m.insert("CreatedAt".into(), created_at(r.created).into());
            m.insert(
                "CreatedBy".into(),
                if a.no_trunc {
                    created_by
                } else {
                    ellipsis(&created_by, 45)
                }
                .into(),
            );
            m.insert(
                "Size".into(),
                if a.human {
                    human_size(r.size)
                } else {
                    r.size.to_string()
                }
                .into(),
            );
            m.insert("Comment".into(), r.comment.clone().into());
            m
        })
        .collect();
    let format = match (&a.format, a.quiet) {
        (_, true) => "{{.ID}}",
        (Some(f), false) => f.as_str(),
        (None, false) => {
            "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
        }
    };
    let text = format_rows(format, HISTORY_HEADERS, &fields)?;
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// `image prune` and `system prune`.
pub fn prune(engine: &Engine, all: bool, force: bool, system: bool) -> Result<(), CliError> {
    let (command, what) = match (system, all) {
        (false, false) => ("image prune", "This will remove all dangling images."),
        (false, true) => (
            "image prune",
            "This will remove all images without at least one container associated to them.",
        ),
        (true, false) => (
            "system prune",
            "This will remove:\n  - all stopped containers\n  - all dangling images\n  - kept parts of interrupted downloads\n",
        ),
        (true, true) => (
            "system prune",
            "This will remove:\n  - all stopped containers\n  - all images without at least one container associated to them\n  - kept parts of interrupted downloads\n",
        ),
    };
    if !force
        && !confirm(
            &format!("WARNING! {what}\nAre you sure you want to continue?"),
            command,
        )?
    {
        return Ok(());
    }
    let (containers, images, reclaimed) = if system {
        let r = engine.prune_system(all)?;
        (r.containers, r.images, r.reclaimed)
    } else {
        let r = engine.prune_images(all)?;
        (Vec::new(), r.removed, r.reclaimed)
    };
    let mut deleted = Vec::new();
    print_removed(&mut deleted, &images, true)?;
    let images = String::from_utf8_lossy(&deleted)
        .lines()
        .map(str::to_owned)
        .collect();
    let text = pruned(
        &[
            ("Deleted Containers:", containers),
            ("Deleted Images:", images),
        ],
        reclaimed,
    );
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

pub fn tree(engine: &Engine, a: &super::commands::ImageTree) -> Result<(), CliError> {
    let tree = engine.image_tree(&a.image)?;
    let text = super::tree::draw(&tree, !a.no_trunc, now());
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
