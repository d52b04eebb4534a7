//! What a build reports while it runs, as events: the CLI prints them the way BuildKit's
//! plain progress does (`[2/6] RUN ...`, the step's output, `CACHED`, `DONE 0.3s`).
//! Never formats or prints anything itself.

use std::time::Duration;

/// One step as numbered in the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    /// The stage's name (`builder`, or `stage-N`) when more than one stage is built.
    pub stage: Option<String>,
    /// 1-based position in its stage (FROM is 1).
    pub n: usize,
    pub total: usize,
    /// The instruction as written (continuations joined).
    pub text: String,
}

/// Receives a build's events in order.
pub trait Progress {
    /// A step starts (for RUN, its output follows on the caller's stdout/stderr).
    fn step(&mut self, step: &StepInfo);
    /// The step's result came from the cache.
    fn cached(&mut self, step: &StepInfo);
    /// The step ran and finished after `took`.
    fn done(&mut self, step: &StepInfo, took: Duration);
    /// Output of a RUN that was captured rather than streamed (quiet builds show it when
    /// the step fails).
    fn output(&mut self, text: &str);
    /// Something the user should know that does not stop the build.
    fn warning(&mut self, text: &str);
}

/// Progress that reports nothing (tests, `-q`).
impl Progress for () {
    fn step(&mut self, _: &StepInfo) {}
    fn cached(&mut self, _: &StepInfo) {}
    fn done(&mut self, _: &StepInfo, _: Duration) {}
    fn output(&mut self, _: &str) {}
    fn warning(&mut self, _: &str) {}
}
