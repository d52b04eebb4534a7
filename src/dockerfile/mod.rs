//! The Dockerfile parser: bytes in, a typed syntax tree out, with BuildKit's semantics
//! (frontend/dockerfile parser, instructions and shell lexer). It owns line joining,
//! directives, heredocs, instruction syntax, ARG scopes and variable expansion; it never
//! touches files, the process environment or the store (build args and image env come
//! in as values). Invariant: every [`Step`] carries the 1-based line where it starts
//! and every [`Error`] names file and line (`Dockerfile:7: unknown instruction: COPPY`).

mod directive;
mod error;
mod expand;
mod heredoc;
mod instruction;
mod lexer;
mod stage;
mod suggest;
mod words;

#[cfg(test)]
mod tests;

pub use directive::Directives;
pub use error::{Error, ErrorKind};
pub use expand::{Vars, expand_word, expand_words};
pub use heredoc::Heredoc;
pub use instruction::{
    ArgDecl, Command, CopyArgs, Healthcheck, Instruction, KEYWORDS, KeyValue, PortRange,
};
pub use stage::{BuildArgs, PROXY_ARGS, ResolvedStage, StageEnv};

/// One instruction with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// 1-based line of the instruction's first line.
    pub line: usize,
    /// 1-based line of its last line (continuations and heredoc bodies included).
    pub end_line: usize,
    /// The instruction's text after joining continuations (without heredoc bodies).
    pub original: String,
    pub instruction: Instruction,
}

/// A build stage: its FROM and the steps after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based position (what `COPY --from=0` names).
    pub index: usize,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// The base image as written (expand with [`Dockerfile::resolve`]).
    pub image: String,
    /// `--platform` as written.
    pub platform: Option<String>,
    pub from: Step,
    pub steps: Vec<Step>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The name errors use (`Dockerfile`, or the `-f` argument).
    pub file: String,
    pub directives: Directives,
    /// The ARG steps before the first FROM.
    pub meta_args: Vec<Step>,
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// The stage called `name` (case-insensitive) or with that index.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }
}

/// Parses the Dockerfile `bytes`; `file` names it in errors.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Dockerfile, Error> {
    let src = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        ErrorKind::NotUtf8.at(file, line)
    })?;
    let (directives, lines) = lexer::logical_lines(src).map_err(|(line, k)| k.at(file, line))?;
    let mut df = Dockerfile {
        file: file.to_owned(),
        directives,
        meta_args: Vec::new(),
        stages: Vec::new(),
    };
    if lines.is_empty() {
        return Err(ErrorKind::Empty.at(file, 1));
    }
    let escape = df.directives.escape;
    for l in lines {
        let instruction =
            Instruction::parse(&l.text, l.heredocs, escape).map_err(|k| k.at(file, l.start))?;
        let step = Step {
            line: l.start,
            end_line: l.end,
            original: l.text.trim().to_owned(),
            instruction,
        };
        if let Instruction::From {
            image,
            name,
            platform,
        } = &step.instruction
        {
            if let Some(n) = name
                && df.stages.iter().any(|s| s.name.as_ref() == Some(n))
            {
                return Err(ErrorKind::DuplicateStage(n.clone()).at(file, step.line));
            }
            df.stages.push(Stage {
                index: df.stages.len(),
                name: name.clone(),
                image: image.clone(),
                platform: platform.clone(),
                from: step.clone(),
                steps: Vec::new(),
            });
            continue;
        }
        match df.stages.last_mut() {
            Some(stage) => stage.steps.push(step),
            None if matches!(step.instruction, Instruction::Arg(_)) => df.meta_args.push(step),
            None => {
                return Err(
                    ErrorKind::NoStage(step.instruction.keyword().to_owned()).at(file, step.line)
                );
            }
        }
    }
    Ok(df)
}
