//! Parser directives: `# syntax=`, `# escape=`, `# check=` comments, recognised only in
//! the run of directive lines at the very top of the file. The first line that is not a
//! known directive ends the run; after it, such comments are plain comments.

use super::error::ErrorKind;

/// The directives of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=`: the frontend image the author asked for (informative here).
    pub syntax: Option<String>,
    /// `# escape=`: the escape token, `\` unless set to `` ` ``.
    pub escape: char,
    /// `# check=`: build-check configuration (kept as written).
    pub check: Option<String>,
    done: bool,
    escape_seen: bool,
}

impl Directives {
    pub(crate) fn new() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
            done: false,
            escape_seen: false,
        }
    }

    /// Looks at one physical line (newline and leading blanks already trimmed).
    pub(crate) fn observe(&mut self, line: &str) -> Result<(), ErrorKind> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        let slot = match name.as_str() {
            "syntax" => &mut self.syntax,
            "check" => &mut self.check,
            "escape" => {
                if self.escape_seen {
                    return Err(ErrorKind::DuplicateDirective(name));
                }
                self.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    other => return Err(ErrorKind::InvalidEscape(other.to_owned())),
                };
                self.escape_seen = true;
                return Ok(());
            }
            _ => {
                self.done = true;
                return Ok(());
            }
        };
        if slot.is_some() {
            return Err(ErrorKind::DuplicateDirective(name));
        }
        *slot = Some(value.to_owned());
        Ok(())
    }
}

/// `#\s*NAME\s*=\s*VALUE\s*` with NAME `[a-zA-Z][a-zA-Z0-9]*` and VALUE non-empty.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let (name, rest) = rest.split_at(end);
    let value = rest.trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}
