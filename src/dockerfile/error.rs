//! Errors of the Dockerfile parser: every one names the file and the 1-based line, as
//! `Dockerfile:7: unknown instruction: COPPY (did you mean COPY?)`.

use thiserror::Error;

/// A parse or expansion failure at a place in a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}:{line}: {kind}")]
pub struct Error {
    /// The name the caller gave the file (usually `Dockerfile` or the `-f` path).
    pub file: String,
    /// 1-based line where the failing instruction starts.
    pub line: usize,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// What went wrong, without the place (the [`struct@Error`] adds file and line).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ErrorKind {
    #[error("the Dockerfile is not UTF-8 text")]
    NotUtf8,
    #[error("the Dockerfile has no instructions")]
    Empty,
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    #[error("unterminated heredoc {0:?}: no line holds only its delimiter")]
    UnterminatedHeredoc(String),
    #[error("unknown instruction: {name}{}", suggestion(.hint))]
    UnknownInstruction {
        name: String,
        hint: Option<&'static str>,
    },
    #[error("{0} is not allowed before the first FROM (only ARG is)")]
    NoStage(String),
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(&'static str),
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(&'static str),
    #[error("{0} must have two arguments")]
    TwoArguments(&'static str),
    #[error(
        "{0} requires at least two arguments, but only one was provided. Destination could not be determined"
    )]
    NoDestination(&'static str),
    #[error("{0} names can not be blank")]
    BlankName(&'static str),
    #[error("syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    #[error("FROM requires either one or three arguments (IMAGE [AS NAME])")]
    FromArguments,
    #[error(
        "invalid name for build stage: {0:?}, name can't start with a number or contain symbols"
    )]
    StageName(String),
    #[error("duplicate name for build stage: {0:?}")]
    DuplicateStage(String),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    #[error("{0} requires the arguments to be in JSON form")]
    NotJson(&'static str),
    #[error("unknown flag: --{flag} (for {instruction})")]
    UnknownFlag {
        instruction: &'static str,
        flag: String,
    },
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    #[error("missing a value on flag: --{0}")]
    MissingFlagValue(String),
    #[error("expecting boolean value for flag --{0}, not: {1}")]
    FlagNotBool(String, String),
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChain,
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    #[error("{0} cannot have a heredoc as its destination")]
    HeredocDestination(&'static str),
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArgs,
    #[error("missing command after HEALTHCHECK CMD")]
    HealthcheckNoCommand,
    #[error("unknown type {0:?} in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    #[error("HEALTHCHECK --{flag}: {reason}")]
    HealthcheckFlag { flag: &'static str, reason: String },
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    #[error("bad substitution in {0:?}")]
    BadSubstitution(String),
    #[error("missing '}}' in {0:?}")]
    MissingBrace(String),
    #[error("unexpected end of statement while looking for matching {quote} in {word:?}")]
    UnmatchedQuote { quote: char, word: String },
    #[error("unsupported modifier ({modifier}) in substitution {word:?}")]
    UnsupportedModifier { modifier: String, word: String },
    #[error("{name}: {message}")]
    RequiredVariable { name: String, message: String },
    #[error("invalid port {0:?} in EXPOSE (a port, a range, optionally /tcp, /udp or /sctp)")]
    Port(String),
}

fn suggestion(s: &Option<&'static str>) -> String {
    match s {
        Some(s) => format!(" (did you mean {s}?)"),
        None => String::new(),
    }
}

impl ErrorKind {
    /// Places this error at `line` of `file`.
    pub fn at(self, file: &str, line: usize) -> Error {
        Error {
            file: file.to_owned(),
            line,
            kind: self,
        }
    }
}
