//! Shell patterns as Go's `filepath.Match` reads them (COPY sources) and as moby's
//! patternmatcher reads them (`.dockerignore`: the same plus `**`).
//!
//! Pure: bytes in, yes or no out. Invariant: matching is linear in pattern x name (a
//! memo table, no exponential backtracking), so a hostile pattern cannot hang a build.

/// One compiled pattern token.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Lit(u8),
    /// `?`: one byte other than `/`.
    One,
    /// `*`: any run of bytes without `/`.
    Star,
    /// `**` followed by more pattern (`**/` eaten): empty, or anything ending in `/`.
    /// (The regex `(.*/)?`.)
    AnyDirs,
    /// `**` at the end: anything at all.
    AnyRest,
    /// `[...]`: ranges (inclusive), negated with `^`.
    Class {
        neg: bool,
        ranges: Vec<(u8, u8)>,
    },
}

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    toks: Vec<Tok>,
    /// moby's patternmatcher passes `[...]` to a regex, where a class can match `/`;
    /// Go's filepath.Match never lets one.
    class_matches_slash: bool,
}

/// Why a pattern cannot be compiled (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPattern(pub String);

impl Pattern {
    /// Compiles `pat`; `double_star` enables `**` (dockerignore); without it `**` is two
    /// `*` (Go's filepath.Match).
    pub fn new(pat: &[u8], double_star: bool) -> Result<Pattern, BadPattern> {
        let bad = || BadPattern(String::from_utf8_lossy(pat).into_owned());
        let mut toks = Vec::new();
        let mut i = 0;
        while i < pat.len() {
            let c = pat[i];
            i += 1;
            match c {
                b'*' if double_star && pat.get(i) == Some(&b'*') => {
                    i += 1;
                    if pat.get(i) == Some(&b'/') {
                        i += 1;
                    }
                    toks.push(if i == pat.len() {
                        Tok::AnyRest
                    } else {
                        Tok::AnyDirs
                    });
                }
                b'*' => toks.push(Tok::Star),
                b'?' => toks.push(Tok::One),
                b'\\' => {
                    let &next = pat.get(i).ok_or_else(bad)?;
                    i += 1;
                    toks.push(Tok::Lit(next));
                }
                b'[' => {
                    let neg = pat.get(i) == Some(&b'^');
                    if neg {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    loop {
                        let &c = pat.get(i).ok_or_else(bad)?;
                        if c == b']' && !ranges.is_empty() {
                            i += 1;
                            break;
                        }
                        let lo = class_char(pat, &mut i).ok_or_else(bad)?;
                        let hi = if pat.get(i) == Some(&b'-') && pat.get(i + 1) != Some(&b']') {
                            i += 1;
                            class_char(pat, &mut i).ok_or_else(bad)?
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err(bad());
                        }
                        ranges.push((lo, hi));
                    }
                    toks.push(Tok::Class { neg, ranges });
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern {
            toks,
            class_matches_slash: double_star,
        })
    }

    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &[u8]) -> bool {
        let (n, m) = (self.toks.len(), name.len());
        // memo[t * (m + 1) + p]: 0 unknown, 1 no, 2 yes — for the suffix problem (t, p)
        let mut memo = vec![0u8; (n + 1) * (m + 1)];
        self.at(0, 0, name, &mut memo)
    }

    fn at(&self, t: usize, p: usize, name: &[u8], memo: &mut [u8]) -> bool {
        let key = t * (name.len() + 1) + p;
        match memo.get(key) {
            Some(1) => return false,
            Some(2) => return true,
            _ => {}
        }
        let r = match self.toks.get(t) {
            None => p == name.len(),
            Some(tok) => match tok {
                Tok::Lit(c) => name.get(p) == Some(c) && self.at(t + 1, p + 1, name, memo),
                Tok::One => {
                    name.get(p).is_some_and(|&c| c != b'/') && self.at(t + 1, p + 1, name, memo)
                }
                Tok::Class { neg, ranges } => {
                    name.get(p).is_some_and(|&c| {
                        (c != b'/' || self.class_matches_slash)
                            && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *neg
                    }) && self.at(t + 1, p + 1, name, memo)
                }
                Tok::Star => {
                    let mut q = p;
                    loop {
                        if self.at(t + 1, q, name, memo) {
                            break true;
                        }
                        match name.get(q) {
                            Some(&c) if c != b'/' => q += 1,
                            _ => break false,
                        }
                    }
                }
                Tok::AnyRest => true,
                Tok::AnyDirs => {
                    self.at(t + 1, p, name, memo)
                        || (p..name.len())
                            .any(|q| name[q] == b'/' && self.at(t + 1, q + 1, name, memo))
                }
            },
        };
        if let Some(slot) = memo.get_mut(key) {
            *slot = if r { 2 } else { 1 };
        }
        r
    }
}

fn class_char(pat: &[u8], i: &mut usize) -> Option<u8> {
    let mut c = *pat.get(*i)?;
    *i += 1;
    if c == b'\\' {
        c = *pat.get(*i)?;
        *i += 1;
    }
    Some(c)
}

/// Whether `pat` holds a Go `filepath.Match` meta character.
pub fn has_meta(pat: &[u8]) -> bool {
    pat.iter().any(|c| matches!(c, b'*' | b'?' | b'[' | b'\\'))
}

/// Go's `filepath.Clean` on a slash path, as bytes: `.` for empty, no trailing `/`,
/// `..` kept only where it cannot be resolved (leading, in a relative path).
pub fn clean(path: &[u8]) -> Vec<u8> {
    let rooted = path.first() == Some(&b'/');
    let mut out: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => match out.last() {
                Some(&last) if last != b".." => {
                    out.pop();
                }
                _ if rooted => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    let body = out.join(&b'/');
    match (rooted, body.is_empty()) {
        (true, _) => [&b"/"[..], &body].concat(),
        (false, true) => b".".to_vec(),
        (false, false) => body,
    }
}
