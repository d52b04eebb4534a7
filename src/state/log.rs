//! Reading a container's log, `containers/<id>/ctr.log`: docker's json-file format, one
//! `{"log":"...","stream":"stdout|stderr","time":"RFC3339Nano"}` object per line of output
//! (the runtime's monitor writes it). Owns parsing, `--tail`, and reading on from an offset
//! for `logs -f`. Never writes the log. Invariant: only complete lines (ending in `\n`) are
//! consumed, so a reader racing the writer never splits a record; a damaged line is skipped.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Which of the container's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of the container's output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct LogLine {
    /// The bytes written, including the final newline when there was one.
    #[serde(rename = "log")]
    pub text: String,
    pub stream: Stream,
    /// RFC 3339 with nanoseconds.
    pub time: String,
}

/// Parses one line of the log; `None` for a damaged one.
pub fn parse_line(line: &str) -> Option<LogLine> {
    serde_json::from_str(line).ok()
}

/// The records from byte `offset` of the log to its last complete line, and the offset
/// just past that line. A missing log reads as empty.
pub fn read_from(path: &Path, offset: u64) -> io::Result<(Vec<LogLine>, u64)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let lines = buf[..complete]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| parse_line(std::str::from_utf8(l).ok()?))
        .collect();
    Ok((lines, offset + complete as u64))
}

/// `--tail N`: the last `n` lines (`None`: all).
pub fn tail(mut lines: Vec<LogLine>, n: Option<usize>) -> Vec<LogLine> {
    if let Some(n) = n
        && lines.len() > n
    {
        lines.drain(..lines.len() - n);
    }
    lines
}
