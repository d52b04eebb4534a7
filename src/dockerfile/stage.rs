//! Stages and variable scopes: ARGs before the first FROM are global and visible only
//! to FROM lines unless a stage redeclares them; a stage's variables are its base
//! image's environment, its ENVs and its ARGs, where an ENV always wins over an ARG of
//! the same name (docker's documented rule). `--build-arg` values override ARG
//! defaults; the predefined proxy args need no declaration and reach RUN only.

use std::collections::BTreeMap;

use super::error::Error;
use super::expand::Vars;
use super::instruction::Instruction;
use super::{Dockerfile, Step};

/// Build arguments docker accepts without an ARG line (given to RUN, never expanded).
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What the caller passes in: `--build-arg` values and the automatic platform args
/// (`TARGETPLATFORM`, `BUILDPLATFORM`, `TARGETOS`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildArgs {
    pub values: BTreeMap<String, String>,
    pub automatic: BTreeMap<String, String>,
}

/// A stage's FROM after expansion with the global ARGs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedStage {
    pub index: usize,
    pub name: Option<String>,
    pub image: String,
    pub platform: Option<String>,
    pub line: usize,
}

impl Dockerfile {
    /// The global ARGs (before the first FROM) with their values; declared ARGs without
    /// a value are absent.
    pub fn global_args(&self, args: &BuildArgs) -> Result<BTreeMap<String, String>, Error> {
        let mut globals = args.automatic.clone();
        for step in &self.meta_args {
            let Instruction::Arg(decls) = &step.instruction else {
                continue;
            };
            for d in decls {
                let name = self.expand_at(step, &d.name, &globals)?;
                if let Some(v) = args.values.get(&name) {
                    globals.insert(name, v.clone());
                } else if let Some(def) = &d.default {
                    let v = self.expand_at(step, def, &globals)?;
                    globals.insert(name, v);
                }
            }
        }
        Ok(globals)
    }

    /// Every stage's FROM with image and platform expanded by the global ARGs.
    pub fn resolve(&self, args: &BuildArgs) -> Result<Vec<ResolvedStage>, Error> {
        let globals = self.global_args(args)?;
        self.stages
            .iter()
            .map(|stage| {
                Ok(ResolvedStage {
                    index: stage.index,
                    name: stage.name.clone(),
                    image: self.expand_at(&stage.from, &stage.image, &globals)?,
                    platform: (stage.platform.as_deref())
                        .map(|p| self.expand_at(&stage.from, p, &globals))
                        .transpose()?,
                    line: stage.from.line,
                })
            })
            .collect()
    }

    /// `--build-arg` names no ARG line declares (docker warns: "One or more build-args
    /// [...] were not consumed"); the proxy args are never reported.
    pub fn unused_build_args(&self, args: &BuildArgs) -> Vec<String> {
        let declared: Vec<&str> = (self.meta_args.iter())
            .chain(self.stages.iter().flat_map(|s| s.steps.iter()))
            .filter_map(|step| match &step.instruction {
                Instruction::Arg(decls) => Some(decls.iter().map(|d| d.name.as_str())),
                _ => None,
            })
            .flatten()
            .collect();
        (args.values.keys())
            .filter(|k| !declared.contains(&k.as_str()) && !PROXY_ARGS.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    fn expand_at(
        &self,
        step: &Step,
        word: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, Error> {
        super::expand::expand_word(word, vars, self.directives.escape)
            .map_err(|k| k.at(&self.file, step.line))
    }
}

/// The variables of one stage while the executor walks its steps.
#[derive(Debug, Clone)]
pub struct StageEnv {
    file: String,
    escape: char,
    globals: BTreeMap<String, String>,
    build_args: BTreeMap<String, String>,
    /// ENV values in order of first definition (base image first).
    env: Vec<(String, String)>,
    args: BTreeMap<String, String>,
}

struct Merged<'a>(&'a StageEnv);

impl Vars for Merged<'_> {
    fn var(&self, name: &str) -> Option<&str> {
        self.0
            .env
            .var(name)
            .or_else(|| self.0.args.get(name).map(String::as_str))
    }
}

impl StageEnv {
    /// A stage on a base image whose config has `image_env` (`KEY=value` strings).
    pub fn new(df: &Dockerfile, image_env: &[String], args: &BuildArgs) -> Result<StageEnv, Error> {
        let env = image_env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv.clone(), String::new()),
            })
            .collect();
        Ok(StageEnv {
            file: df.file.clone(),
            escape: df.directives.escape,
            globals: df.global_args(args)?,
            build_args: args.values.clone(),
            env,
            args: BTreeMap::new(),
        })
    }

    /// Expands `step` with the current variables, then applies its ENV or ARG.
    pub fn step(&mut self, step: &Step) -> Result<Instruction, Error> {
        let at = |k: super::ErrorKind| k.at(&self.file, step.line);
        match &step.instruction {
            Instruction::Arg(decls) => {
                // Each name sees the ones declared before it on the same line.
                let mut out = Vec::new();
                for d in decls {
                    let name = self.expand(&d.name).map_err(at)?;
                    let value = if let Some(v) = self.build_args.get(&name) {
                        Some(v.clone())
                    } else if let Some(def) = &d.default {
                        Some(self.expand(def).map_err(at)?)
                    } else {
                        self.globals.get(&name).cloned()
                    };
                    if let Some(v) = &value {
                        self.args.insert(name.clone(), v.clone());
                    }
                    out.push(super::ArgDecl {
                        name,
                        default: value,
                    });
                }
                Ok(Instruction::Arg(out))
            }
            other => {
                let expanded = other.expand(&Merged(self), self.escape).map_err(at)?;
                if let Instruction::Env(kvs) = &expanded {
                    for kv in kvs {
                        match self.env.iter_mut().find(|(k, _)| *k == kv.key) {
                            Some(slot) => slot.1 = kv.value.clone(),
                            None => self.env.push((kv.key.clone(), kv.value.clone())),
                        }
                    }
                }
                Ok(expanded)
            }
        }
    }

    /// Expands a word with this stage's variables (ENV over ARG).
    pub fn expand(&self, word: &str) -> Result<String, super::ErrorKind> {
        super::expand::expand_word(word, &Merged(self), self.escape)
    }

    /// The environment the image config gets: base image env plus ENV, in order.
    pub fn image_env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The environment of a RUN: ARG values, proxy build args, then ENV over them.
    pub fn run_env(&self) -> BTreeMap<String, String> {
        let mut out = self.args.clone();
        for p in PROXY_ARGS {
            if let Some(v) = self.build_args.get(p) {
                out.insert(p.to_owned(), v.clone());
            }
        }
        out.extend(self.env.iter().cloned());
        out
    }
}
