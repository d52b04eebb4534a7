//! `import`: a rootfs tarball (plain, gzip or zstd; a file or stdin) becomes a one-layer
//! image, with docker's `--change` instructions and `-m` message.

use std::fs::File;
use std::io::{self, Read};

use super::{ArchiveError, Result};
use crate::digest::Digest;
use crate::engine::commit::{CommitError, ImageSpec, Step, layer_from_tar, write_image};
use crate::engine::{ImportRequest, Input};
use crate::image::{History, RunConfig};
use crate::reference::Reference;
use crate::store::Store;

/// Imports the tarball; returns the new image's ID.
pub fn import(store: &Store, input: Input, req: &ImportRequest) -> Result<Digest> {
    let name = match &req.reference {
        Some(r) => Some(
            Reference::parse(r).map_err(|source| ArchiveError::BadReference {
                name: r.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let mut run = RunConfig::default();
    for change in &req.changes {
        apply_change(&mut run, change)?;
    }
    let (reader, what): (Box<dyn Read>, String) = match input {
        Input::Stdin => (Box::new(io::stdin().lock()), "-".to_owned()),
        Input::File(path) => {
            let f = File::open(&path).map_err(|source| ArchiveError::OpenInput {
                path: path.clone(),
                source,
            })?;
            (Box::new(f), path.display().to_string())
        }
    };
    let writing = store.writing()?;
    let layer = layer_from_tar(store, &writing, reader, &what).map_err(|e| match e {
        CommitError::EmptyTar(what) => ArchiveError::EmptyImport(what),
        CommitError::ReadLayer { what, source } => ArchiveError::Layer {
            member: what,
            source,
        },
        CommitError::NotTar { what, source } => ArchiveError::NotTar { what, source },
        e => ArchiveError::Commit(Box::new(e)),
    })?;
    let comment = req
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {what}"));
    let spec = ImageSpec {
        base: None,
        steps: vec![Step {
            layer: Some(layer),
            history: History {
                comment: Some(comment.clone()),
                ..History::default()
            },
        }],
        run: Some(run),
        comment: Some(comment),
        author: None,
        tags: name.into_iter().collect(),
    };
    write_image(store, &writing, &spec).map_err(|e| ArchiveError::Commit(Box::new(e)))
}

/// Applies one `--change` instruction (`CMD ["sh"]`, `ENV A=1`, `WORKDIR /x`...) as
/// `docker import` does.
pub fn apply_change(run: &mut RunConfig, change: &str) -> Result<()> {
    let bad = |why: &str| ArchiveError::BadChange {
        change: change.to_owned(),
        why: why.to_owned(),
    };
    let trimmed = change.trim();
    let (word, rest) = trimmed
        .split_once(char::is_whitespace)
        .map(|(w, r)| (w, r.trim()))
        .unwrap_or((trimmed, ""));
    let instruction = word.to_ascii_uppercase();
    if rest.is_empty() {
        return Err(bad(&format!("{instruction} needs an argument")));
    }
    // exec form `["a", "b"]`, else shell form
    let json_list = || -> Option<Vec<String>> {
        rest.starts_with('[')
            .then(|| serde_json::from_str(rest).ok())
            .flatten()
    };
    let command =
        || json_list().unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.into()]);
    match instruction.as_str() {
        "CMD" => run.cmd = Some(command()),
        "ENTRYPOINT" => run.entrypoint = Some(command()),
        "WORKDIR" => run.working_dir = rest.to_owned(),
        "USER" => run.user = rest.to_owned(),
        "STOPSIGNAL" => run.stop_signal = Some(rest.to_owned()),
        "ENV" => {
            for (k, v) in pairs(rest).ok_or_else(|| bad("expected KEY=VALUE or KEY VALUE"))? {
                run.set_env(&k, &v);
            }
        }
        "LABEL" => {
            for (k, v) in pairs(rest).ok_or_else(|| bad("expected KEY=VALUE"))? {
                run.labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            for port in rest.split_whitespace() {
                let port = if port.contains('/') {
                    port.to_owned()
                } else {
                    format!("{port}/tcp")
                };
                run.exposed_ports.insert(port);
            }
        }
        "VOLUME" => {
            let vols =
                json_list().unwrap_or_else(|| rest.split_whitespace().map(str::to_owned).collect());
            run.volumes.extend(vols);
        }
        _ => {
            return Err(bad(
                "import can change only CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR",
            ));
        }
    }
    Ok(())
}

/// `K=V K2="v 2"` pairs, or the legacy `KEY VALUE WITH SPACES` form.
fn pairs(rest: &str) -> Option<Vec<(String, String)>> {
    let first = rest.split_whitespace().next()?;
    if !first.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_owned(), v.trim().to_owned())]);
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return None;
        }
        let mut value = String::new();
        let mut quote = None;
        while let Some(&c) = chars.peek() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => break,
                (_, '\\') => {
                    chars.next();
                    if let Some(n) = chars.peek() {
                        value.push(*n);
                    }
                }
                (_, c) => value.push(c),
            }
            chars.next();
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_as_docker_import() {
        let mut run = RunConfig::default();
        for c in [
            "CMD [\"/bin/sh\", \"-c\", \"echo hi\"]",
            "entrypoint /init",
            "ENV A=1 B=\"two words\"",
            "ENV LEGACY some value",
            "WORKDIR /srv",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
            "LABEL org.x=y",
            "VOLUME [\"/data\"]",
            "STOPSIGNAL SIGINT",
        ] {
            apply_change(&mut run, c).unwrap();
        }
        assert_eq!(
            run.cmd.as_deref(),
            Some(&["/bin/sh".to_string(), "-c".into(), "echo hi".into()][..])
        );
        assert_eq!(
            run.entrypoint.as_deref(),
            Some(&["/bin/sh".to_string(), "-c".into(), "/init".into()][..])
        );
        assert_eq!(run.env_value("A"), Some("1"));
        assert_eq!(run.env_value("B"), Some("two words"));
        assert_eq!(run.env_value("LEGACY"), Some("some value"));
        assert_eq!(run.working_dir, "/srv");
        assert_eq!(run.user, "1000:1000");
        assert!(run.exposed_ports.contains("80/tcp") && run.exposed_ports.contains("53/udp"));
        assert_eq!(run.labels.get("org.x").map(String::as_str), Some("y"));
        assert!(run.volumes.contains("/data"));
        assert_eq!(run.stop_signal.as_deref(), Some("SIGINT"));
        for bad in ["RUN echo", "CMD", "ENV =x"] {
            let e = apply_change(&mut run, bad).unwrap_err();
            assert!(e.to_string().starts_with("--change"), "{e}");
        }
    }
}
