//! Heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`, several on one line) opened by RUN, COPY
//! and ADD in shell form. This file finds the delimiters in an instruction's text; the
//! lexer collects the bodies. A quoted delimiter (any quote in it) turns expansion of
//! the body off, as in sh.

use super::expand::Lexer;

/// One heredoc: its delimiter and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// The body as written, each line with its `\n`, leading tabs kept.
    pub content: String,
    /// Whether variables in the body are expanded (no quote in the delimiter).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body's lines and the delimiter line.
    pub chomp: bool,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when absent.
    pub fd: u32,
}

impl Heredoc {
    /// The body as the command sees it: with leading tabs removed for `<<-`.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// The heredocs an instruction's text opens, in order.
pub(crate) fn heredocs_from_line(line: &str) -> Vec<Heredoc> {
    let empty: Vec<(String, String)> = Vec::new();
    let mut lexer = Lexer::new(line, &empty, '\\');
    lexer.raw = true;
    let Ok((_, words)) = lexer.run() else {
        return Vec::new();
    };
    words.iter().filter_map(|w| parse_heredoc(w)).collect()
}

/// Whether a (COPY or ADD) operand is a heredoc word such as `<<EOF`.
pub(crate) fn is_heredoc_word(word: &str) -> bool {
    parse_heredoc(word).is_some()
}

/// `^(\d*)<<(-?)([^<]*)$` with a non-empty delimiter.
fn parse_heredoc(word: &str) -> Option<Heredoc> {
    let digits = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (fd, rest) = word.split_at(digits);
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let empty: Vec<(String, String)> = Vec::new();
    let name = super::expand::expand_word(rest, &empty, '\\').ok()?;
    if name.is_empty() {
        return None;
    }
    Some(Heredoc {
        name,
        content: String::new(),
        expand: !rest.contains(['\'', '"']),
        chomp,
        fd: fd.parse().unwrap_or(0),
    })
}
