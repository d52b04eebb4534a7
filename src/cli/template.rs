//! A small Go-template engine for `--format`: what docker users type to pick fields out
//! of `inspect` output, evaluated over JSON values.
//!
//! Supported: text, `{{.A.B}}` paths (`{{.}}` is the value itself), pipelines with `|`,
//! the functions `json`, `index`, `join`, `len`, `upper`, `lower`, `println`, string and
//! number literals, `{{range PIPE}}..{{else}}..{{end}}`, `{{if PIPE}}..{{else}}..{{end}}`,
//! `{{with PIPE}}..{{end}}`, and `{{-`/`-}}` trimming. Printing follows Go's `%v`:
//! slices as `[a b]`, maps as `map[k:v]` sorted by key, a missing key as `<no value>`.
//! Pure: a template string and a value in, text or an error out; never panics on input.

use serde_json::Value;

/// Why a template cannot be parsed or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template parsing error: {0}")]
    Parse(String),
    #[error("template: executing {template:?}: {why}")]
    Execute { template: String, why: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `.`, `.A.B`: a path from the current value (empty = the value itself).
    Path(Vec<String>),
    Str(String),
    Num(serde_json::Number),
    Func(String),
}

/// Commands separated by `|`; each command is a list of arguments.
type Pipeline = Vec<Vec<Arg>>;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    If(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let tokens = lex(source)?;
        let mut pos = 0;
        let (nodes, end) = parse_nodes(&tokens, &mut pos)?;
        if let Some(word) = end {
            return Err(TemplateError::Parse(format!("unexpected {{{{{word}}}}}")));
        }
        Ok(Template {
            source: source.to_string(),
            nodes,
        })
    }

    /// Runs the template over `value`.
    pub fn render(&self, value: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        exec(&self.nodes, value, &mut out).map_err(|why| TemplateError::Execute {
            template: self.source.clone(),
            why,
        })?;
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Text(String),
    Action(String),
}

fn lex(src: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            let text = if trim_next { rest.trim_start() } else { rest };
            tokens.push(Token::Text(text.to_string()));
            break;
        };
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let (trim_before, after) = match after.strip_prefix("- ") {
            Some(a) => (true, a),
            None => (false, after),
        };
        if trim_before {
            text = text.trim_end();
        }
        if !text.is_empty() {
            tokens.push(Token::Text(text.to_string()));
        }
        let Some(close) = after.find("}}") else {
            return Err(TemplateError::Parse("unclosed action: missing }}".into()));
        };
        let mut inner = &after[..close];
        trim_next = false;
        if let Some(i) = inner.strip_suffix(" -") {
            inner = i;
            trim_next = true;
        }
        tokens.push(Token::Action(inner.trim().to_string()));
        rest = &after[close + 2..];
    }
    Ok(tokens)
}

/// Parses nodes until `{{end}}` or `{{else}}` (returned as the second value) or the end.
fn parse_nodes(
    tokens: &[Token],
    pos: &mut usize,
) -> Result<(Vec<Node>, Option<&'static str>), TemplateError> {
    let mut nodes = Vec::new();
    while let Some(tok) = tokens.get(*pos) {
        *pos += 1;
        match tok {
            Token::Text(t) => nodes.push(Node::Text(t.clone())),
            Token::Action(a) => {
                let (word, rest) = match a.split_once(char::is_whitespace) {
                    Some((w, r)) => (w, r.trim()),
                    None => (a.as_str(), ""),
                };
                match word {
                    "end" => return Ok((nodes, Some("end"))),
                    "else" => return Ok((nodes, Some("else"))),
                    "range" | "if" | "with" => {
                        let pipe = parse_pipeline(rest)?;
                        let (body, end) = parse_nodes(tokens, pos)?;
                        let alt = match end {
                            Some("else") => {
                                let (alt, end2) = parse_nodes(tokens, pos)?;
                                if end2 != Some("end") {
                                    return Err(TemplateError::Parse(format!(
                                        "missing {{{{end}}}} for {{{{{word}}}}}"
                                    )));
                                }
                                alt
                            }
                            Some(_) => Vec::new(),
                            None => {
                                return Err(TemplateError::Parse(format!(
                                    "missing {{{{end}}}} for {{{{{word}}}}}"
                                )));
                            }
                        };
                        nodes.push(match word {
                            "range" => Node::Range(pipe, body, alt),
                            "if" => Node::If(pipe, body, alt),
                            _ => Node::With(pipe, body, alt),
                        });
                    }
                    _ => nodes.push(Node::Action(parse_pipeline(a)?)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_pipeline(src: &str) -> Result<Pipeline, TemplateError> {
    let words = split_words(src)?;
    let mut pipe: Pipeline = vec![Vec::new()];
    for w in words {
        if w == "|" {
            pipe.push(Vec::new());
            continue;
        }
        let arg = if let Some(lit) = w.strip_prefix('"') {
            Arg::Str(unquote(lit)?)
        } else if w == "." {
            Arg::Path(Vec::new())
        } else if let Some(path) = w.strip_prefix('.') {
            if path.split('.').any(str::is_empty) {
                return Err(TemplateError::Parse(format!("bad field path {w:?}")));
            }
            Arg::Path(path.split('.').map(str::to_string).collect())
        } else if let Ok(n) = w.parse::<i64>() {
            Arg::Num(n.into())
        } else if let Some(n) = w.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            Arg::Num(n)
        } else if matches!(
            w.as_str(),
            "json" | "index" | "join" | "len" | "upper" | "lower" | "println" | "print"
        ) {
            Arg::Func(w)
        } else {
            return Err(TemplateError::Parse(format!("function {w:?} not defined")));
        };
        if let Some(last) = pipe.last_mut() {
            last.push(arg);
        }
    }
    if pipe.iter().any(Vec::is_empty) {
        return Err(TemplateError::Parse(format!("empty command in {src:?}")));
    }
    Ok(pipe)
}

/// Splits on whitespace, keeping `"quoted strings"` (with `\"` escapes) and `|` as words.
fn split_words(src: &str) -> Result<Vec<String>, TemplateError> {
    let mut words = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' {
            chars.next();
            words.push("|".to_string());
        } else if c == '"' {
            let mut w = String::from('"');
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                w.push(c);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        w.push(n);
                    }
                } else if c == '"' {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(TemplateError::Parse("unterminated quoted string".into()));
            }
            words.push(w);
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            words.push(w);
        }
    }
    Ok(words)
}

/// The body of a `"..."` literal after the opening quote, closing quote included.
fn unquote(lit: &str) -> Result<String, TemplateError> {
    let body = lit
        .strip_suffix('"')
        .ok_or_else(|| TemplateError::Parse("unterminated quoted string".into()))?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(o) => out.push(o),
            None => return Err(TemplateError::Parse("bad escape in string".into())),
        }
    }
    Ok(out)
}

/// A value during evaluation: `Missing` is a key a map does not have (Go's `<no value>`).
#[derive(Debug, Clone)]
enum Val {
    Json(Value, Option<String>),
    Missing,
}

fn exec(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval_pipeline(p, dot)?;
                out.push_str(&print(&v));
            }
            Node::If(p, body, alt) => {
                let v = eval_pipeline(p, dot)?;
                exec(if truthy(&v) { body } else { alt }, dot, out)?;
            }
            Node::With(p, body, alt) => match eval_pipeline(p, dot)? {
                Val::Json(v, _) if truthy(&Val::Json(v.clone(), None)) => exec(body, &v, out)?,
                _ => exec(alt, dot, out)?,
            },
            Node::Range(p, body, alt) => {
                let items: Vec<Value> = match eval_pipeline(p, dot)? {
                    Val::Json(Value::Array(a), _) => a,
                    Val::Json(Value::Object(m), _) => m.into_iter().map(|(_, v)| v).collect(),
                    Val::Json(Value::Null, _) | Val::Missing => Vec::new(),
                    Val::Json(other, _) => {
                        return Err(format!("range can't iterate over {}", print_json(&other)));
                    }
                };
                if items.is_empty() {
                    exec(alt, dot, out)?;
                }
                for item in &items {
                    exec(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

fn truthy(v: &Val) -> bool {
    match v {
        Val::Missing => false,
        Val::Json(v, _) => match v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(m) => !m.is_empty(),
        },
    }
}

fn eval_pipeline(pipe: &Pipeline, dot: &Value) -> Result<Val, String> {
    let mut prev: Option<Val> = None;
    for cmd in pipe {
        prev = Some(eval_command(cmd, dot, prev.take())?);
    }
    prev.ok_or_else(|| "empty pipeline".to_string())
}

fn eval_arg(arg: &Arg, dot: &Value) -> Result<Val, String> {
    match arg {
        Arg::Path(p) => walk(dot, p),
        Arg::Str(s) => Ok(Val::Json(Value::String(s.clone()), None)),
        Arg::Num(n) => Ok(Val::Json(Value::Number(n.clone()), None)),
        Arg::Func(f) => Err(format!("{f} used as a value")),
    }
}

fn walk(dot: &Value, path: &[String]) -> Result<Val, String> {
    let mut cur = dot;
    for (i, key) in path.iter().enumerate() {
        match cur {
            Value::Object(m) => match m.get(key) {
                Some(v) => cur = v,
                None => return Ok(Val::Missing),
            },
            Value::Null => return Ok(Val::Missing),
            other => {
                return Err(format!(
                    "can't evaluate field {key} in {}",
                    if i == 0 {
                        print_json(other)
                    } else {
                        format!(".{}", path[..i].join("."))
                    }
                ));
            }
        }
    }
    Ok(Val::Json(cur.clone(), path.last().cloned()))
}

fn eval_command(cmd: &[Arg], dot: &Value, piped: Option<Val>) -> Result<Val, String> {
    let Some((first, rest)) = cmd.split_first() else {
        return Err("empty command".into());
    };
    let Arg::Func(name) = first else {
        if !rest.is_empty() || piped.is_some() {
            return Err("can't give arguments to a non-function".into());
        }
        return eval_arg(first, dot);
    };
    let mut args = rest
        .iter()
        .map(|a| eval_arg(a, dot))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(p) = piped {
        args.push(p);
    }
    let json = |v: &Val| match v {
        Val::Json(v, _) => v.clone(),
        Val::Missing => Value::Null,
    };
    let text = |v: &str| Ok(Val::Json(Value::String(v.to_string()), None));
    match (name.as_str(), args.as_slice()) {
        ("json", [v]) => text(&serde_json::to_string(&json(v)).map_err(|e| e.to_string())?),
        ("len", [v]) => match json(v) {
            Value::Array(a) => Ok(Val::Json(a.len().into(), None)),
            Value::Object(m) => Ok(Val::Json(m.len().into(), None)),
            Value::String(s) => Ok(Val::Json(s.len().into(), None)),
            Value::Null => Ok(Val::Json(0.into(), None)),
            other => Err(format!("len of {}", print_json(&other))),
        },
        ("upper", [v]) => text(&print(v).to_uppercase()),
        ("lower", [v]) => text(&print(v).to_lowercase()),
        ("join", [v, sep]) => {
            let sep = print(sep);
            match json(v) {
                Value::Array(a) => text(
                    &a.iter()
                        .map(print_json)
                        .collect::<Vec<_>>()
                        .join(sep.as_str()),
                ),
                Value::Null => text(""),
                other => Err(format!("join of {}", print_json(&other))),
            }
        }
        ("index", [v, keys @ ..]) if !keys.is_empty() => {
            let mut cur = json(v);
            for k in keys {
                cur = match (cur, json(k)) {
                    (Value::Object(mut m), Value::String(k)) => match m.remove(&k) {
                        Some(v) => v,
                        None => return Ok(Val::Missing),
                    },
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_u64().and_then(|i| usize::try_from(i).ok());
                        match i.and_then(|i| a.get(i)) {
                            Some(v) => v.clone(),
                            None => return Err(format!("index {n} out of range")),
                        }
                    }
                    (Value::Null, _) => return Ok(Val::Missing),
                    (c, k) => {
                        return Err(format!(
                            "can't index {} with {}",
                            print_json(&c),
                            print_json(&k)
                        ));
                    }
                };
            }
            Ok(Val::Json(cur, None))
        }
        ("print", args) => text(&args.iter().map(print).collect::<Vec<_>>().join(" ")),
        ("println", args) => text(&(args.iter().map(print).collect::<Vec<_>>().join(" ") + "\n")),
        (f, args) => Err(format!("wrong number of arguments for {f}: {}", args.len())),
    }
}

/// Go's `%v` of a value; a `null` prints as the empty form of the field's Go type
/// where docker's typed structs make that known (`[]`, `map[]`), else `<nil>`.
fn print(v: &Val) -> String {
    match v {
        Val::Missing => "<no value>".into(),
        Val::Json(Value::Null, Some(key)) => match key.as_str() {
            "Cmd" | "Entrypoint" | "Env" | "Shell" | "OnBuild" | "RepoTags" | "RepoDigests"
            | "Layers" | "Mounts" | "Args" => "[]".into(),
            "Labels" | "Volumes" | "ExposedPorts" | "Data" => "map[]".into(),
            _ => "<nil>".into(),
        },
        Val::Json(v, _) => print_json(v),
    }
}

fn print_json(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(u)) => u.to_string(),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(print_json).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", print_json(&m[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// docker's `--format` for a list command: `table TEMPLATE` gives a table whose header is
/// the template run over the column names (`headers`: field -> name), anything else one
/// line per row; `json` one JSON object per row. `\t` and `\n` typed literally become tabs
/// and newlines, as docker does.
pub fn format_rows(
    format: &str,
    headers: &[(&str, &str)],
    rows: &[serde_json::Map<String, Value>],
) -> Result<String, TemplateError> {
    let mut out = String::new();
    if format == "json" {
        for r in rows {
            out.push_str(&serde_json::to_string(r).unwrap_or_default());
            out.push('\n');
        }
        return Ok(out);
    }
    let (table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest),
        None => (false, format),
    };
    let body = body
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let t = Template::parse(&body)?;
    if !table {
        for r in rows {
            out.push_str(&t.render(&Value::Object(r.clone()))?);
            out.push('\n');
        }
        return Ok(out);
    }
    let names: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let split = |line: String| line.split('\t').map(str::to_string).collect::<Vec<_>>();
    let header = split(t.render(&Value::Object(names))?);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = super::format::Table::new(&header);
    for r in rows {
        table.row(split(t.render(&Value::Object(r.clone()))?));
    }
    out.push_str(&table.render());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    fn image() -> Value {
        json!({
            "Id": "sha256:abc",
            "RepoTags": ["busybox:latest", "busybox:1.36"],
            "Size": 4261500,
            "Config": {"Cmd": ["sh", "-c", "echo hi"], "Entrypoint": null,
                       "Env": ["PATH=/bin"], "Labels": {"b": "2", "a": "1"}},
            "RootFS": {"Type": "layers", "Layers": ["sha256:l1", "sha256:l2"]}
        })
    }

    #[test]
    fn paths_print_like_go() {
        let v = image();
        assert_eq!(run("{{.Config.Cmd}}", &v), "[sh -c echo hi]");
        assert_eq!(run("{{.Id}}", &v), "sha256:abc");
        assert_eq!(run("{{.RootFS.Layers}}", &v), "[sha256:l1 sha256:l2]");
        assert_eq!(run("{{.Config.Labels}}", &v), "map[a:1 b:2]");
        assert_eq!(run("{{.Config.Entrypoint}}", &v), "[]");
        assert_eq!(run("{{.Size}}", &v), "4261500");
        assert_eq!(run("{{.Nope}}", &v), "<no value>");
        assert_eq!(
            run("id={{.Id}} size={{.Size}}\n", &v),
            "id=sha256:abc size=4261500\n"
        );
    }

    #[test]
    fn functions_and_pipes() {
        let v = image();
        assert_eq!(run("{{json .Config.Cmd}}", &v), r#"["sh","-c","echo hi"]"#);
        assert_eq!(
            run("{{.Config.Cmd | json}}", &v),
            r#"["sh","-c","echo hi"]"#
        );
        assert_eq!(
            run("{{json .Config}}", &v),
            r#"{"Cmd":["sh","-c","echo hi"],"Entrypoint":null,"Env":["PATH=/bin"],"Labels":{"a":"1","b":"2"}}"#
        );
        assert_eq!(run("{{index .Config.Labels \"b\"}}", &v), "2");
        assert_eq!(run("{{index .RepoTags 1}}", &v), "busybox:1.36");
        assert_eq!(run("{{join .Config.Cmd \",\"}}", &v), "sh,-c,echo hi");
        assert_eq!(run("{{len .RepoTags}}", &v), "2");
        assert_eq!(run("{{upper .RootFS.Type}}", &v), "LAYERS");
    }

    #[test]
    fn control_flow() {
        let v = image();
        assert_eq!(
            run("{{range .RepoTags}}<{{.}}>{{end}}", &v),
            "<busybox:latest><busybox:1.36>"
        );
        assert_eq!(
            run("{{range .Config.Entrypoint}}x{{else}}none{{end}}", &v),
            "none"
        );
        assert_eq!(
            run("{{if .Config.Entrypoint}}yes{{else}}no{{end}}", &v),
            "no"
        );
        assert_eq!(run("{{with .RootFS}}{{.Type}}{{end}}", &v), "layers");
        assert_eq!(
            run("{{range .RepoTags -}}\n  {{.}}\n{{- end}}", &v),
            "busybox:latestbusybox:1.36"
        );
    }

    #[test]
    fn list_formats_as_docker() {
        let rows: Vec<serde_json::Map<String, Value>> = vec![
            json!({"ID": "abc", "Tag": "1"})
                .as_object()
                .unwrap()
                .clone(),
            json!({"ID": "def", "Tag": "latest"})
                .as_object()
                .unwrap()
                .clone(),
        ];
        let headers = [("ID", "IMAGE ID"), ("Tag", "TAG")];
        assert_eq!(
            format_rows("{{.ID}}:{{.Tag}}", &headers, &rows).unwrap(),
            "abc:1\ndef:latest\n"
        );
        assert_eq!(
            format_rows("table {{.ID}}\\t{{.Tag}}", &headers, &rows).unwrap(),
            "IMAGE ID   TAG\nabc        1\ndef        latest\n"
        );
        assert_eq!(
            format_rows("json", &headers, &rows[..1]).unwrap(),
            "{\"ID\":\"abc\",\"Tag\":\"1\"}\n"
        );
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        for bad in [
            "{{.Id",
            "{{range .X}}",
            "{{if .X}}a{{else}}b",
            "{{end}}",
            "{{nosuch .X}}",
            "{{\"open}}",
            "{{..}}",
            "{{ | }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        let v = image();
        for bad in [
            "{{.Id.Sub}}",
            "{{index .RepoTags 9}}",
            "{{json}}",
            "{{.Id .Id}}",
        ] {
            let t = Template::parse(bad).unwrap();
            assert!(t.render(&v).is_err(), "{bad}");
        }
    }
}
