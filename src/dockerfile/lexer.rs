//! Physical lines to logical lines: parser directives at the top, comments, line
//! continuations (also across comment and empty lines, as BuildKit), and the bodies of
//! heredocs that RUN, COPY and ADD open. Knows nothing of what an instruction means
//! beyond its keyword; the invariant is that every logical line carries the 1-based
//! numbers of its first and last physical lines.

use super::directive::Directives;
use super::error::ErrorKind;
use super::heredoc::{Heredoc, heredocs_from_line};
use super::words::split_command;

/// One instruction's text after joining continuations, with its heredoc bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogicalLine {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub heredocs: Vec<Heredoc>,
}

/// Splits into lines, each with its terminator (`\n`) kept, as BuildKit's scanner.
fn physical_lines(src: &str) -> Vec<&str> {
    src.split_inclusive('\n').collect()
}

fn trim_newline(s: &str) -> &str {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

fn is_comment(line: &str) -> bool {
    trim_newline(line).trim_start().starts_with('#')
}

/// Strips the escape token (and blanks after it) that continues a line, if present.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(rest) => (rest, false),
        None => (line, true),
    }
}

/// Comment lines (after leading blanks) become empty.
fn trim_comment(line: &str) -> &str {
    if line.starts_with('#') { "" } else { line }
}

/// The logical lines of a Dockerfile, and the directives found at its top.
pub(crate) fn logical_lines(
    src: &str,
) -> Result<(Directives, Vec<LogicalLine>), (usize, ErrorKind)> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines = physical_lines(src);
    let mut directives = Directives::new();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        i += 1;
        let number = i;
        let token = trim_newline(raw).trim_start();
        directives.observe(token).map_err(|k| (number, k))?;
        let escape = directives.escape;
        let (first, mut done) = trim_continuation(trim_comment(token), escape);
        if done && first.is_empty() {
            continue;
        }
        let mut text = first.to_owned();
        while !done && i < lines.len() {
            let raw = lines[i];
            i += 1;
            let token = trim_newline(raw);
            directives.observe(token.trim_start()).map_err(|k| (i, k))?;
            if is_comment(raw) || token.trim_start().is_empty() {
                continue;
            }
            let (part, end) = trim_continuation(token, directives.escape);
            text.push_str(part);
            done = end;
        }
        let mut heredocs = Vec::new();
        if may_have_heredocs(&text) {
            for mut doc in heredocs_from_line(&text) {
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                }
                if !terminated {
                    return Err((number, ErrorKind::UnterminatedHeredoc(doc.name)));
                }
                heredocs.push(doc);
            }
        }
        out.push(LogicalLine {
            start: number,
            end: i.max(number),
            text,
            heredocs,
        });
    }
    Ok((directives, out))
}

/// RUN, COPY and ADD in shell form (not a JSON array) may open heredocs.
fn may_have_heredocs(text: &str) -> bool {
    if !text.contains("<<") {
        return false;
    }
    let Ok((cmd, _flags, rest)) = split_command(text) else {
        return false;
    };
    matches!(cmd.as_str(), "run" | "copy" | "add") && !super::instruction::is_json_array(&rest)
}
