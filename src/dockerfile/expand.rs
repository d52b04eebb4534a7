//! Variable expansion as BuildKit's shell lexer does it for Dockerfile words: `$VAR`,
//! `${VAR}`, `${VAR:-x}`, `${VAR-x}`, `${VAR:+x}`, `${VAR+x}`, `${VAR:?msg}`,
//! `${VAR#pat}`, `${VAR%pat}` (and `##`, `%%`), `${VAR/pat/rep}`, single and double
//! quotes, and the escape token. Pure: the variables come in through [`Vars`]; unset
//! variables expand to nothing. It never runs anything (RUN, CMD and ENTRYPOINT text is
//! left to the shell and never passes through here).

use std::collections::BTreeMap;

use super::error::ErrorKind;

/// Where expansion looks variables up.
pub trait Vars {
    /// The value of `name`, or `None` when it is not set.
    fn var(&self, name: &str) -> Option<&str>;
}

impl Vars for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Vars for Vec<(String, String)> {
    fn var(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Expands one word (quotes removed, blanks kept): what ENV, LABEL, COPY, WORKDIR, ...
/// values go through. `escape` is the file's escape token.
pub fn expand_word(word: &str, vars: &dyn Vars, escape: char) -> Result<String, ErrorKind> {
    Lexer::new(word, vars, escape).run().map(|(s, _)| s)
}

/// Expands and splits into words on unquoted blanks, also inside expanded values (as
/// EXPOSE does with `EXPOSE $PORTS`).
pub fn expand_words(word: &str, vars: &dyn Vars, escape: char) -> Result<Vec<String>, ErrorKind> {
    Lexer::new(word, vars, escape).run().map(|(_, w)| w)
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }
    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_str(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    chars: Vec<char>,
    pos: usize,
    vars: &'a dyn Vars,
    escape: char,
    /// Keep quotes and escape tokens in the output (heredoc delimiter detection).
    pub(crate) raw: bool,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str, vars: &'a dyn Vars, escape: char) -> Self {
        Lexer {
            src,
            chars: src.chars().collect(),
            pos: 0,
            vars,
            escape,
            raw: false,
        }
    }

    pub(crate) fn run(mut self) -> Result<(String, Vec<String>), ErrorKind> {
        self.until(None, false)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn word(&self) -> String {
        self.src.to_owned()
    }

    /// Reads up to `stop` (consumed) or the end; `raw_escapes` keeps escape tokens.
    fn until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ErrorKind> {
        let raw_escapes = raw_escapes || self.raw;
        let mut out = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((out, words.finish()));
            }
            match c {
                '$' => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                    words.add_str(&v);
                }
                '\'' => {
                    let v = self.single_quote()?;
                    out.push_str(&v);
                    words.add_raw_str(&v);
                }
                '"' => {
                    let v = self.double_quote()?;
                    out.push_str(&v);
                    words.add_raw_str(&v);
                }
                _ => {
                    self.pos += 1;
                    let mut c = c;
                    if c == self.escape {
                        if raw_escapes {
                            words.add_raw_char(c);
                            out.push(c);
                        }
                        match self.next() {
                            Some(n) => c = n,
                            None => break,
                        }
                        words.add_raw_char(c);
                    } else {
                        words.add_char(c);
                    }
                    out.push(c);
                }
            }
        }
        if let Some(stop) = stop {
            if stop == '}' {
                return Err(ErrorKind::MissingBrace(self.word()));
            }
            return Err(ErrorKind::UnmatchedQuote {
                quote: stop,
                word: self.word(),
            });
        }
        Ok((out, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, ErrorKind> {
        let mut out = String::new();
        self.pos += 1;
        if self.raw {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(ErrorKind::UnmatchedQuote {
                        quote: '\'',
                        word: self.word(),
                    });
                }
                Some('\'') => {
                    if self.raw {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, ErrorKind> {
        let mut out = String::new();
        self.pos += 1;
        if self.raw {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(ErrorKind::UnmatchedQuote {
                        quote: '"',
                        word: self.word(),
                    });
                }
                Some('"') => {
                    self.pos += 1;
                    if self.raw {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(mut c) => {
                    self.pos += 1;
                    if c == self.escape {
                        if self.raw {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                c = n;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            self.pos += 1;
            name.push(c);
        }
        name
    }

    fn dollar(&mut self) -> Result<String, ErrorKind> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(self.vars.var(&name).unwrap_or("").to_owned());
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(ErrorKind::MissingBrace(self.word())),
            Some('{' | '}' | ':') => return Err(ErrorKind::BadSubstitution(self.word())),
            Some(_) => {}
        }
        let name = self.name();
        let Some(mut op) = self.next() else {
            return Err(ErrorKind::MissingBrace(self.word()));
        };
        let mut modifier = op.to_string();
        let value = self.vars.var(&name).map(str::to_owned);
        match op {
            '}' => Ok(value.unwrap_or_default()),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = op == ':';
                if null_is_unset {
                    op = self
                        .next()
                        .ok_or_else(|| ErrorKind::MissingBrace(self.word()))?;
                    modifier.push(op);
                }
                let (word, _) = self.until(Some('}'), op == '#' || op == '%')?;
                let unset = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match op {
                    '-' => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => {
                        if unset {
                            let message = if !word.is_empty() {
                                word
                            } else if value.is_none() {
                                "is not allowed to be unset".to_owned()
                            } else {
                                "is not allowed to be empty".to_owned()
                            };
                            return Err(ErrorKind::RequiredVariable { name, message });
                        }
                        Ok(value.unwrap_or_default())
                    }
                    '#' | '%' if !null_is_unset => {
                        let value = value.unwrap_or_default();
                        let (greedy, pattern) = match word.strip_prefix(op) {
                            Some(p) => (true, p),
                            None => (false, word.as_str()),
                        };
                        Ok(trim_pattern(&value, pattern, op == '#', greedy))
                    }
                    _ => Err(ErrorKind::UnsupportedModifier {
                        modifier,
                        word: self.word(),
                    }),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let (pattern, _) = self.until(Some('/'), true)?;
                let (replacement, _) = self.until(Some('}'), true)?;
                Ok(replace_pattern(
                    &value.unwrap_or_default(),
                    &pattern,
                    &replacement,
                    all,
                ))
            }
            _ => Err(ErrorKind::UnsupportedModifier {
                modifier,
                word: self.word(),
            }),
        }
    }
}

/// Removes the shortest (or longest, `greedy`) prefix (or suffix) matching `pattern`.
fn trim_pattern(value: &str, pattern: &str, prefix: bool, greedy: bool) -> String {
    let cuts: Vec<usize> = value
        .char_indices()
        .map(|(i, _)| i)
        .chain([value.len()])
        .collect();
    let order: Box<dyn Iterator<Item = &usize>> = match (prefix, greedy) {
        (true, false) | (false, true) => Box::new(cuts.iter()),
        _ => Box::new(cuts.iter().rev()),
    };
    for &cut in order {
        if prefix && glob(pattern, &value[..cut]) {
            return value[cut..].to_owned();
        }
        if !prefix && glob(pattern, &value[cut..]) {
            return value[..cut].to_owned();
        }
    }
    value.to_owned()
}

/// Replaces the first (or every) leftmost-longest match of `pattern`.
fn replace_pattern(value: &str, pattern: &str, replacement: &str, all: bool) -> String {
    let cuts: Vec<usize> = value
        .char_indices()
        .map(|(i, _)| i)
        .chain([value.len()])
        .collect();
    let mut out = String::new();
    let mut start = 0;
    let mut k = 0;
    while k < cuts.len() {
        let from = cuts[k];
        let found = cuts[k..]
            .iter()
            .rev()
            .find(|&&to| to > from && glob(pattern, &value[from..to]));
        match found {
            Some(&to) => {
                out.push_str(&value[start..from]);
                out.push_str(replacement);
                start = to;
                if !all {
                    break;
                }
                k = cuts.iter().position(|&c| c == to).unwrap_or(cuts.len());
            }
            None => k += 1,
        }
    }
    out.push_str(&value[start..]);
    out
}

/// Shell pattern match of the whole of `s`: `*`, `?`, `[...]` (`!`/`^` negates), `\x`.
pub(crate) fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    glob_at(&p, &s)
}

fn glob_at(p: &[char], s: &[char]) -> bool {
    // Iterative with one backtrack point for `*` (classic wildcard matching).
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class(&p[pi..], s[si]),
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == s[si]).then_some(2),
            Some(&c) => (c == s[si]).then_some(1),
            None => None,
        };
        match step {
            Some(n) => {
                pi += n;
                si += 1;
            }
            None => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class at the start of `p`; the class's length on a match.
fn class(p: &[char], c: char) -> Option<usize> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while let Some(&x) = p.get(i) {
        if x == ']' && !first {
            return (matched != negate).then_some(i + 1);
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            if x <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if x == c {
                matched = true;
            }
            i += 1;
        }
    }
    // No closing bracket: a literal '['.
    (c == '[').then_some(1)
}
