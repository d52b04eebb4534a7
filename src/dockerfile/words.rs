//! Word splitting of an instruction's text, before any expansion: the keyword, the
//! leading `--flag` words, and words that keep their quotes and escapes for the
//! expansion step to interpret. Never removes or interprets a `$`.

/// Blanks as BuildKit's `[\t\v\f\r ]+` separator.
pub(crate) fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Splits on runs of blanks, at most `limit` pieces (0: no limit).
pub(crate) fn split_blanks(s: &str, limit: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        if limit != 0 && out.len() + 1 == limit {
            out.push(rest);
            return out;
        }
        match rest.find(is_blank) {
            None => {
                out.push(rest);
                return out;
            }
            Some(i) => {
                out.push(&rest[..i]);
                rest = rest[i..].trim_start_matches(is_blank);
            }
        }
    }
}

/// The keyword (lowercase), the `--flag` words, and the rest of the line.
pub(crate) fn split_command(line: &str) -> Result<(String, Vec<String>, String), ()> {
    let parts = split_blanks(line.trim(), 2);
    let cmd = parts.first().ok_or(())?.to_ascii_lowercase();
    let (flags, rest) = match parts.get(1) {
        Some(rest) => extract_flags(rest),
        None => (Vec::new(), String::new()),
    };
    Ok((cmd, flags, rest))
}

/// Leading words that start with `--` (quotes and `\` interpreted), then the rest.
pub(crate) fn extract_flags(line: &str) -> (Vec<String>, String) {
    let mut words = Vec::new();
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut pos = 0;
    loop {
        while pos < chars.len() && chars[pos].1.is_whitespace() {
            pos += 1;
        }
        if pos == chars.len() {
            return (words, String::new());
        }
        let starts_flag = chars[pos].1 == '-' && chars.get(pos + 1).is_some_and(|c| c.1 == '-');
        if !starts_flag {
            return (words, line[chars[pos].0..].to_owned());
        }
        let mut word = String::new();
        let mut blank_ok = false;
        let mut quote: Option<char> = None;
        while pos < chars.len() {
            let c = chars[pos].1;
            match quote {
                None if c.is_whitespace() => break,
                None if c == '\'' || c == '"' => {
                    quote = Some(c);
                    blank_ok = true;
                }
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if pos + 1 < chars.len() {
                        pos += 1;
                        word.push(chars[pos].1);
                    } else if quote.is_some() {
                        quote = None;
                    }
                }
                _ => word.push(c),
            }
            pos += 1;
        }
        if word == "--" {
            let rest = chars.get(pos).map_or("", |&(i, _)| &line[i..]);
            return (words, rest.trim_start().to_owned());
        }
        if blank_ok || !word.is_empty() {
            words.push(word);
        }
    }
}

/// Blank-separated words that keep their quotes and escape tokens (BuildKit's
/// `parseWords`): `a "b c"` gives `a` and `"b c"`.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let chars: Vec<char> = rest.chars().collect();
    let mut word = String::new();
    let mut in_word = false;
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut pos = 0;
    while pos < chars.len() {
        let c = chars[pos];
        pos += 1;
        match quote {
            None => {
                if c.is_whitespace() {
                    if in_word && (blank_ok || !word.is_empty()) {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    in_word = false;
                    blank_ok = false;
                    continue;
                }
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    let Some(&next) = chars.get(pos) else {
                        continue;
                    };
                    word.push(c);
                    word.push(next);
                    pos += 1;
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    let Some(&next) = chars.get(pos) else {
                        quote = None;
                        continue;
                    };
                    word.push(c);
                    word.push(next);
                    pos += 1;
                    continue;
                }
                word.push(c);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}
