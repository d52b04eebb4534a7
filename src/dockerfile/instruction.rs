//! The typed instructions and how one logical line becomes one of them (BuildKit's
//! `parser` line parsers plus `instructions` checks). Values are kept as written
//! (quotes and `$` intact) where docker expands them later; [`Instruction::expand`]
//! does that with a stage's variables. Nothing here reads files or the environment.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::ErrorKind;
use super::expand::{Vars, expand_word, expand_words};
use super::heredoc::{Heredoc, is_heredoc_word};
use super::words::{parse_words, split_blanks, split_command};

/// Every instruction keyword, uppercase.
pub const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A command as RUN, CMD, ENTRYPOINT and HEALTHCHECK CMD take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// JSON form: run as is, no shell.
    Exec(Vec<String>),
    /// Shell form: given to the stage's SHELL (default `/bin/sh -c`).
    Shell(String),
}

/// A `key=value` of ENV or LABEL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// One name of an ARG, with its default if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// The operands and flags of COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyArgs {
    pub sources: Vec<String>,
    pub dest: String,
    /// `--from=stage|image|index` (COPY only).
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// `--parents` (COPY only).
    pub parents: bool,
    pub exclude: Vec<String>,
    /// `--checksum=` (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: bool,
    /// Written in JSON form (`COPY ["a b", "/x/"]`).
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    Cmd {
        test: Command,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

/// One Dockerfile instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run {
        command: Command,
        mounts: Vec<String>,
        network: Option<String>,
        security: Option<String>,
        heredocs: Vec<Heredoc>,
    },
    Cmd(Command),
    Entrypoint(Command),
    Label(Vec<KeyValue>),
    Maintainer(String),
    Expose(Vec<String>),
    Env(Vec<KeyValue>),
    Add(CopyArgs),
    Copy(CopyArgs),
    Workdir(String),
    User(String),
    Volume(Vec<String>),
    Arg(Vec<ArgDecl>),
    Onbuild {
        /// The trigger's text as written (what goes into the image config).
        expression: String,
        trigger: Box<Instruction>,
    },
    StopSignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
}

/// Whether `s` is a JSON array of strings (the exec form).
pub(crate) fn is_json_array(s: &str) -> bool {
    matches!(parse_json(s), Some(Ok(_)))
}

/// `None`: not JSON at all; `Some(Err)`: a JSON array with a non-string in it.
fn parse_json(s: &str) -> Option<Result<Vec<String>, ErrorKind>> {
    let s = s.trim_start();
    if !s.starts_with('[') {
        return None;
    }
    let values: Vec<serde_json::Value> = serde_json::from_str(s).ok()?;
    Some(
        values
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(ErrorKind::NotStringArray),
            })
            .collect(),
    )
}

/// The rest as a command: JSON form when it parses as a string array.
fn maybe_json(rest: &str) -> Result<(Command, bool), ErrorKind> {
    match parse_json(rest) {
        Some(Ok(v)) => Ok((Command::Exec(v), true)),
        Some(Err(e)) => Err(e),
        None => Ok((Command::Shell(rest.to_owned()), false)),
    }
}

/// The rest as a list: JSON array, or blank-separated words.
fn maybe_json_list(rest: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    match parse_json(rest) {
        Some(Ok(v)) => Ok((v, true)),
        Some(Err(e)) => Err(e),
        None if rest.is_empty() => Ok((Vec::new(), false)),
        None => Ok((
            split_blanks(rest, 0)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            false,
        )),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Bool,
    One,
    Many,
}

#[derive(Default)]
struct Flags {
    strings: BTreeMap<&'static str, Vec<String>>,
}

impl Flags {
    fn parse(
        instruction: &'static str,
        words: &[String],
        spec: &[(&'static str, FlagKind)],
    ) -> Result<Flags, ErrorKind> {
        let mut flags = Flags::default();
        for word in words {
            let Some(arg) = word.strip_prefix("--") else {
                return Err(ErrorKind::UnknownFlag {
                    instruction,
                    flag: word.clone(),
                });
            };
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let Some(&(name, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                return Err(ErrorKind::UnknownFlag {
                    instruction,
                    flag: name.to_owned(),
                });
            };
            let slot = flags.strings.entry(name).or_default();
            if !slot.is_empty() && kind != FlagKind::Many {
                return Err(ErrorKind::DuplicateFlag(name.to_owned()));
            }
            let value = match (kind, value) {
                (FlagKind::Bool, None) => "true".to_owned(),
                (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".to_owned(),
                    "false" => "false".to_owned(),
                    "" => return Err(ErrorKind::MissingFlagValue(name.to_owned())),
                    _ => return Err(ErrorKind::FlagNotBool(name.to_owned(), v.to_owned())),
                },
                (_, None) => return Err(ErrorKind::MissingFlagValue(name.to_owned())),
                (_, Some(v)) => v.to_owned(),
            };
            slot.push(value);
        }
        Ok(flags)
    }

    fn string(&mut self, name: &str) -> Option<String> {
        self.strings.remove(name).and_then(|mut v| v.pop())
    }

    fn strings(&mut self, name: &str) -> Vec<String> {
        self.strings.remove(name).unwrap_or_default()
    }

    fn bool(&mut self, name: &str) -> bool {
        self.string(name).is_some_and(|v| v == "true")
    }
}

/// Valid stage names: `^[a-z][a-z0-9-_.]*$` (after lowercasing).
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// ENV and LABEL: `k=v ...` or the old `k v` form (the value is the rest of the line).
fn name_values(rest: &str, escape: char, what: &'static str) -> Result<Vec<KeyValue>, ErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(ErrorKind::AtLeastOneArgument(what));
    };
    if !first.contains('=') {
        let parts = split_blanks(rest, 2);
        if parts.len() < 2 {
            return Err(ErrorKind::TwoArguments(what));
        }
        return Ok(vec![KeyValue {
            key: parts[0].to_owned(),
            value: parts[1].to_owned(),
        }]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(ErrorKind::BlankName(what)),
            Some((k, v)) => Ok(KeyValue {
                key: k.to_owned(),
                value: v.to_owned(),
            }),
            None => Err(ErrorKind::MissingEquals(w)),
        })
        .collect()
}

/// A Go duration (`30s`, `1m30s`, `1.5h`, `500ms`) as HEALTHCHECK flags take it.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let number: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

fn duration_flag(flags: &mut Flags, name: &'static str) -> Result<Option<Duration>, ErrorKind> {
    let Some(v) = flags.string(name) else {
        return Ok(None);
    };
    let d = parse_duration(&v).ok_or_else(|| ErrorKind::HealthcheckFlag {
        flag: name,
        reason: format!("invalid duration {v:?}"),
    })?;
    if !d.is_zero() && d < Duration::from_millis(1) {
        return Err(ErrorKind::HealthcheckFlag {
            flag: name,
            reason: format!("{v:?} cannot be less than 1ms"),
        });
    }
    Ok(Some(d))
}

impl Instruction {
    /// Parses one logical line (heredoc bodies already collected).
    pub(crate) fn parse(
        text: &str,
        heredocs: Vec<Heredoc>,
        escape: char,
    ) -> Result<Instruction, ErrorKind> {
        let (cmd, flag_words, rest) =
            split_command(text).map_err(|()| ErrorKind::UnknownInstruction {
                name: String::new(),
                hint: None,
            })?;
        use FlagKind::*;
        let flags = |name: &'static str, spec: &[(&'static str, FlagKind)]| {
            Flags::parse(name, &flag_words, spec)
        };
        Ok(match cmd.as_str() {
            "from" => {
                let mut f = flags("FROM", &[("platform", One)])?;
                let args = split_blanks(&rest, 0);
                let name = match args.as_slice() {
                    [_] => None,
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
                        let lower = name.to_ascii_lowercase();
                        if !valid_stage_name(&lower) {
                            return Err(ErrorKind::StageName((*name).to_owned()));
                        }
                        Some(lower)
                    }
                    _ => return Err(ErrorKind::FromArguments),
                };
                if args[0].is_empty() {
                    return Err(ErrorKind::FromArguments);
                }
                Instruction::From {
                    image: args[0].to_owned(),
                    name,
                    platform: f.string("platform"),
                }
            }
            "run" => {
                let mut f = flags(
                    "RUN",
                    &[("mount", Many), ("network", One), ("security", One)],
                )?;
                if rest.is_empty() {
                    return Err(ErrorKind::AtLeastOneArgument("RUN"));
                }
                let (command, _) = maybe_json(&rest)?;
                Instruction::Run {
                    command,
                    mounts: f.strings("mount"),
                    network: f.string("network"),
                    security: f.string("security"),
                    heredocs,
                }
            }
            "cmd" | "entrypoint" => {
                let upper = if cmd == "cmd" { "CMD" } else { "ENTRYPOINT" };
                flags(upper, &[])?;
                let (command, _) = maybe_json(&rest)?;
                if cmd == "cmd" {
                    Instruction::Cmd(command)
                } else {
                    Instruction::Entrypoint(command)
                }
            }
            "shell" => {
                flags("SHELL", &[])?;
                match parse_json(&rest) {
                    Some(Ok(v)) if v.is_empty() => {
                        return Err(ErrorKind::AtLeastOneArgument("SHELL"));
                    }
                    Some(Ok(v)) => Instruction::Shell(v),
                    Some(Err(e)) => return Err(e),
                    None if rest.is_empty() => return Err(ErrorKind::AtLeastOneArgument("SHELL")),
                    None => return Err(ErrorKind::NotJson("SHELL")),
                }
            }
            "label" => {
                flags("LABEL", &[])?;
                Instruction::Label(name_values(&rest, escape, "LABEL")?)
            }
            "env" => {
                flags("ENV", &[])?;
                Instruction::Env(name_values(&rest, escape, "ENV")?)
            }
            "maintainer" | "workdir" | "user" | "stopsignal" => {
                let upper = match cmd.as_str() {
                    "maintainer" => "MAINTAINER",
                    "workdir" => "WORKDIR",
                    "user" => "USER",
                    _ => "STOPSIGNAL",
                };
                flags(upper, &[])?;
                if rest.is_empty() {
                    return Err(ErrorKind::ExactlyOneArgument(upper));
                }
                match cmd.as_str() {
                    "maintainer" => Instruction::Maintainer(rest),
                    "workdir" => Instruction::Workdir(rest),
                    "user" => Instruction::User(rest),
                    _ => Instruction::StopSignal(rest),
                }
            }
            "expose" => {
                flags("EXPOSE", &[])?;
                if rest.is_empty() {
                    return Err(ErrorKind::AtLeastOneArgument("EXPOSE"));
                }
                Instruction::Expose(
                    split_blanks(&rest, 0)
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                )
            }
            "volume" => {
                flags("VOLUME", &[])?;
                let (list, _) = maybe_json_list(&rest)?;
                if list.is_empty() {
                    return Err(ErrorKind::AtLeastOneArgument("VOLUME"));
                }
                if list.iter().any(|v| v.trim().is_empty()) {
                    return Err(ErrorKind::EmptyVolume);
                }
                Instruction::Volume(list)
            }
            "arg" => {
                flags("ARG", &[])?;
                let words = parse_words(&rest, escape);
                if words.is_empty() {
                    return Err(ErrorKind::AtLeastOneArgument("ARG"));
                }
                let decls = words
                    .into_iter()
                    .map(|w| match w.split_once('=') {
                        Some(("", _)) => Err(ErrorKind::BlankName("ARG")),
                        Some((k, v)) => Ok(ArgDecl {
                            name: k.to_owned(),
                            default: Some(v.to_owned()),
                        }),
                        None => Ok(ArgDecl {
                            name: w,
                            default: None,
                        }),
                    })
                    .collect::<Result<_, _>>()?;
                Instruction::Arg(decls)
            }
            "copy" | "add" => {
                let copy = cmd == "copy";
                let upper = if copy { "COPY" } else { "ADD" };
                let spec: &[(&'static str, FlagKind)] = if copy {
                    &[
                        ("from", One),
                        ("chown", One),
                        ("chmod", One),
                        ("link", Bool),
                        ("parents", Bool),
                        ("exclude", Many),
                    ]
                } else {
                    &[
                        ("chown", One),
                        ("chmod", One),
                        ("link", Bool),
                        ("exclude", Many),
                        ("checksum", One),
                        ("keep-git-dir", Bool),
                    ]
                };
                let mut f = flags(upper, spec)?;
                let (mut list, json) = maybe_json_list(&rest)?;
                let Some(dest) = list.pop().filter(|_| !list.is_empty()) else {
                    return Err(ErrorKind::NoDestination(upper));
                };
                if !heredocs.is_empty() {
                    if is_heredoc_word(&dest) {
                        return Err(ErrorKind::HeredocDestination(upper));
                    }
                    // Heredoc words name the bodies in `heredocs`, not paths.
                    list.retain(|src| !is_heredoc_word(src));
                }
                let args = CopyArgs {
                    sources: list,
                    dest,
                    from: f.string("from"),
                    chown: f.string("chown"),
                    chmod: f.string("chmod"),
                    link: f.bool("link"),
                    parents: f.bool("parents"),
                    exclude: f.strings("exclude"),
                    checksum: f.string("checksum"),
                    keep_git_dir: f.bool("keep-git-dir"),
                    json,
                    heredocs,
                };
                if copy {
                    Instruction::Copy(args)
                } else {
                    Instruction::Add(args)
                }
            }
            "onbuild" => {
                flags("ONBUILD", &[])?;
                if rest.is_empty() {
                    return Err(ErrorKind::AtLeastOneArgument("ONBUILD"));
                }
                let keyword = split_blanks(&rest, 2)[0].to_ascii_uppercase();
                match keyword.as_str() {
                    "ONBUILD" => return Err(ErrorKind::OnbuildChain),
                    "FROM" | "MAINTAINER" => return Err(ErrorKind::OnbuildTrigger(keyword)),
                    _ => {}
                }
                let trigger = Instruction::parse(&rest, Vec::new(), escape)?;
                Instruction::Onbuild {
                    expression: rest,
                    trigger: Box::new(trigger),
                }
            }
            "healthcheck" => {
                let mut f = flags(
                    "HEALTHCHECK",
                    &[
                        ("interval", One),
                        ("timeout", One),
                        ("start-period", One),
                        ("start-interval", One),
                        ("retries", One),
                    ],
                )?;
                let parts = split_blanks(&rest, 2);
                let kind = parts[0].to_ascii_uppercase();
                let args = parts.get(1).copied().unwrap_or("").trim_start();
                match kind.as_str() {
                    "" => return Err(ErrorKind::AtLeastOneArgument("HEALTHCHECK")),
                    "NONE" if !args.is_empty() => return Err(ErrorKind::HealthcheckNoneArgs),
                    "NONE" => Instruction::Healthcheck(Healthcheck::None),
                    "CMD" => {
                        let (test, _) = maybe_json(args)?;
                        match &test {
                            Command::Exec(v) if v.is_empty() => {
                                return Err(ErrorKind::HealthcheckNoCommand);
                            }
                            Command::Shell(s) if s.is_empty() => {
                                return Err(ErrorKind::HealthcheckNoCommand);
                            }
                            _ => {}
                        }
                        let retries = match f.string("retries") {
                            None => None,
                            Some(r) => {
                                Some(r.parse::<u32>().map_err(|_| ErrorKind::HealthcheckFlag {
                                    flag: "retries",
                                    reason: format!("{r:?} is not a number of retries (0 or more)"),
                                })?)
                            }
                        };
                        Instruction::Healthcheck(Healthcheck::Cmd {
                            test,
                            interval: duration_flag(&mut f, "interval")?,
                            timeout: duration_flag(&mut f, "timeout")?,
                            start_period: duration_flag(&mut f, "start-period")?,
                            start_interval: duration_flag(&mut f, "start-interval")?,
                            retries,
                        })
                    }
                    _ => return Err(ErrorKind::HealthcheckType(parts[0].to_owned())),
                }
            }
            other => {
                let upper = other.to_ascii_uppercase();
                let hint = super::suggest::nearest(&upper);
                return Err(ErrorKind::UnknownInstruction { name: upper, hint });
            }
        })
    }

    /// The uppercase keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From { .. } => "FROM",
            Instruction::Run { .. } => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::User(_) => "USER",
            Instruction::Volume(_) => "VOLUME",
            Instruction::Arg(_) => "ARG",
            Instruction::Onbuild { .. } => "ONBUILD",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
        }
    }

    /// This instruction with variables expanded where docker expands them: ADD, COPY
    /// (operands and `--from`, `--chown`, `--chmod`), ENV, EXPOSE (also split), FROM,
    /// LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG; never RUN, CMD, ENTRYPOINT,
    /// HEALTHCHECK, SHELL, ONBUILD (its trigger expands when it fires downstream).
    pub fn expand(&self, vars: &dyn Vars, escape: char) -> Result<Instruction, ErrorKind> {
        let one = |w: &str| expand_word(w, vars, escape);
        let opt = |w: &Option<String>| w.as_deref().map(one).transpose();
        let kvs = |list: &[KeyValue]| {
            list.iter()
                .map(|kv| {
                    Ok(KeyValue {
                        key: one(&kv.key)?,
                        value: one(&kv.value)?,
                    })
                })
                .collect::<Result<Vec<_>, ErrorKind>>()
        };
        let copy = |c: &CopyArgs| -> Result<CopyArgs, ErrorKind> {
            // JSON-form operands are expanded too, as BuildKit does.
            Ok(CopyArgs {
                sources: c.sources.iter().map(|s| one(s)).collect::<Result<_, _>>()?,
                dest: one(&c.dest)?,
                from: opt(&c.from)?,
                chown: opt(&c.chown)?,
                chmod: opt(&c.chmod)?,
                exclude: c.exclude.iter().map(|s| one(s)).collect::<Result<_, _>>()?,
                ..c.clone()
            })
        };
        Ok(match self {
            Instruction::From {
                image,
                name,
                platform,
            } => Instruction::From {
                image: one(image)?,
                name: name.clone(),
                platform: opt(platform)?,
            },
            Instruction::Label(l) => Instruction::Label(kvs(l)?),
            Instruction::Env(l) => Instruction::Env(kvs(l)?),
            Instruction::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(expand_words(p, vars, escape)?);
                }
                Instruction::Expose(out)
            }
            Instruction::Add(c) => Instruction::Add(copy(c)?),
            Instruction::Copy(c) => Instruction::Copy(copy(c)?),
            Instruction::Workdir(w) => Instruction::Workdir(one(w)?),
            Instruction::User(u) => Instruction::User(one(u)?),
            Instruction::StopSignal(s) => Instruction::StopSignal(one(s)?),
            Instruction::Volume(v) => {
                Instruction::Volume(v.iter().map(|s| one(s)).collect::<Result<_, _>>()?)
            }
            Instruction::Arg(decls) => Instruction::Arg(
                decls
                    .iter()
                    .map(|d| {
                        Ok(ArgDecl {
                            name: one(&d.name)?,
                            default: opt(&d.default)?,
                        })
                    })
                    .collect::<Result<_, ErrorKind>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// A port spec of EXPOSE after expansion: `80`, `80/tcp`, `8000-8010/udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: &'static str,
}

impl PortRange {
    pub fn parse(spec: &str) -> Result<PortRange, ErrorKind> {
        let bad = || ErrorKind::Port(spec.to_owned());
        let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "tcp" => "tcp",
            "udp" => "udp",
            "sctp" => "sctp",
            _ => return Err(bad()),
        };
        let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
        let first: u16 = a.parse().map_err(|_| bad())?;
        let last: u16 = b.parse().map_err(|_| bad())?;
        if last < first {
            return Err(bad());
        }
        Ok(PortRange {
            first,
            last,
            protocol,
        })
    }
}
