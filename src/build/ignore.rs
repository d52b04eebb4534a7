//! `.dockerignore`: which context paths a build never sees.
//!
//! Reading follows BuildKit's `dockerignore.ReadAll` (comments are lines starting with `#`,
//! blank lines skipped, `!` marks an exception, each pattern cleaned like Go's
//! `filepath.Clean` with a leading `/` dropped) and matching follows moby's
//! patternmatcher (`MatchesOrParentMatches`: a path is excluded when it or one of its
//! parent directories matches; the last matching pattern wins; `**` spans directories).
//! Pure: bytes in, answers out; it never reads the context itself. Invariant: an empty
//! matcher excludes nothing.

use super::glob::{BadPattern, Pattern, clean};

/// One `.dockerignore` line after normalisation.
#[derive(Clone, Debug)]
struct Rule {
    /// The cleaned pattern text (without `!`).
    text: Vec<u8>,
    pattern: Pattern,
    exception: bool,
}

/// The compiled `.dockerignore` of a context.
#[derive(Clone, Debug, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
}

/// A line that cannot be a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".dockerignore:{line}: {why}")]
pub struct IgnoreError {
    pub line: usize,
    pub why: String,
}

impl Ignore {
    /// Parses the text of a `.dockerignore`.
    pub fn parse(bytes: &[u8]) -> Result<Ignore, IgnoreError> {
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        let mut rules = Vec::new();
        for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = n + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.first() == Some(&b'#') {
                continue;
            }
            let mut pat = raw.trim_ascii();
            if pat.is_empty() {
                continue;
            }
            let exception = pat[0] == b'!';
            if exception {
                pat = pat[1..].trim_ascii();
            }
            let mut text = if pat.is_empty() {
                Vec::new()
            } else {
                clean(pat)
            };
            if text.len() > 1 && text[0] == b'/' {
                text.remove(0);
            }
            if exception && text.is_empty() {
                return Err(IgnoreError {
                    line,
                    why: "illegal exclusion pattern: \"!\"".into(),
                });
            }
            let pattern = Pattern::new(&text, true).map_err(|BadPattern(p)| IgnoreError {
                line,
                why: format!("syntax error in pattern {p:?}"),
            })?;
            rules.push(Rule {
                text,
                pattern,
                exception,
            });
        }
        Ok(Ignore { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether the context path `rel` (relative, `/`-separated, no leading `./`) is
    /// excluded: the last rule matching it or one of its parents decides.
    pub fn excluded(&self, rel: &[u8]) -> bool {
        let mut matched = false;
        for r in &self.rules {
            // an exclusion rule can only change a path not yet excluded, an exception
            // only one that is
            if r.exception != matched {
                continue;
            }
            let hit = r.pattern.matches(rel)
                || rel
                    .iter()
                    .enumerate()
                    .any(|(i, &c)| c == b'/' && r.pattern.matches(&rel[..i]));
            if hit {
                matched = !r.exception;
            }
        }
        matched
    }

    /// Whether a walk must still enter the excluded directory `rel`: only when an
    /// exception's text names it or a path below it (`!rel`, `!rel/...`), exactly fsutil's
    /// check, so `!**/*.md` does not reach into an excluded directory (as in docker).
    pub fn may_include_below(&self, rel: &[u8]) -> bool {
        self.rules.iter().any(|r| {
            r.exception
                && r.text.starts_with(rel)
                && matches!(r.text.get(rel.len()), None | Some(&b'/'))
        })
    }
}
