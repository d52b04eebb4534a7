//! Walking the stages: FROM, then each instruction with its cache key; a hit takes the
//! stored config, a miss runs the step (config change, RUN container, COPY/ADD layer)
//! and records the result. Numbering and events follow BuildKit's plain output.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cache::{self, Cache};
use super::context::Context;
use super::copy::{CopyOpts, CopyPlan, Source, plan_copy};
use super::imagefs::ImageFs;
use super::memo::ContentMemo;
use super::output::{Progress, StepInfo};
use super::runmount::{self, RunMount, SecretSource};
use super::{Backend, BuildError, Built, NewLayer, Request};
use crate::digest::Digest;
use crate::dockerfile::CopyArgs;
use crate::dockerfile::{
    self, BuildArgs, Command, Dockerfile, Healthcheck, Instruction, PortRange, Stage, StageEnv,
    Step,
};
use crate::image::{self, History, ImageConfig, Platform, RunConfig};
use crate::overlay;
use crate::runtime::{self, IdMaps, Io, ProcessSpec, RootFs};
use crate::store::Store;

/// Where a stage stands: its config so far, the ID that config is stored under (when
/// it is), and the cache key that led here.
#[derive(Debug, Clone)]
struct State {
    config: ImageConfig,
    key: String,
}

/// Runs the build; returns the image ID and the tags that now name it.
pub fn build(
    store: &Store,
    backend: &dyn Backend,
    req: &Request,
    progress: &mut dyn Progress,
) -> Result<Built, BuildError> {
    let df = dockerfile::parse(&req.dockerfile_name, &req.dockerfile)?;
    let args = BuildArgs {
        values: req.build_args.clone(),
        automatic: automatic_args(&Platform::host()),
    };
    let unused = df.unused_build_args(&args);
    if !unused.is_empty() {
        progress.warning(&format!(
            "One or more build-args {unused:?} were not consumed"
        ));
    }
    let resolved = df.resolve(&args)?;
    let target = match &req.target {
        Some(t) => {
            df.stage(t)
                .ok_or_else(|| BuildError::NoTarget(t.clone()))?
                .index
        }
        None => df.stages.len() - 1,
    };
    let needed = needed_stages(&df, target);
    let named = needed.len() > 1;
    // as docker: the context must be a readable directory, whether a step reads it or not
    let context = Context::open(&req.context, req.dockerfile_path.as_deref())?;
    let mut secrets = std::collections::BTreeMap::new();
    for flag in &req.secrets {
        let (id, source) = runmount::parse_secret_flag(flag)?;
        // checked now, as docker does, rather than at the RUN that reads it
        runmount::read_secret(&id, &source)?;
        secrets.insert(id, source);
    }
    let mut ex = Executor {
        store,
        backend,
        req,
        context: &context,
        df: &df,
        args: &args,
        cache: Cache::load(store),
        memo: std::fs::read(store.paths().build_memo_json())
            .map(|b| ContentMemo::from_json(&b))
            .unwrap_or_default(),
        results: vec![None; df.stages.len()],
        secrets,
        current: 0,
        mounts: Vec::new(),
        run_network: req.network,
    };
    for &i in &needed {
        let stage = &df.stages[i];
        let label = named.then(|| {
            stage
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{}", stage.index))
        });
        let state = ex.stage(stage, &resolved[i].image, label, progress);
        ex.save_memo();
        ex.results[i] = Some(state?);
    }
    let Some(mut last) = ex.results[target].take() else {
        return Err(BuildError::NoTarget(target.to_string()));
    };
    if !req.labels.is_empty() {
        let rc = last.config.config.get_or_insert_with(RunConfig::default);
        rc.labels.extend(req.labels.clone());
    }
    let id = backend
        .write_image(&last.config, &req.tags)
        .map_err(BuildError::Backend)?;
    Ok(Built {
        id,
        tags: req.tags.clone(),
    })
}

/// docker's automatic platform args (`TARGETPLATFORM`, `BUILDARCH`...).
fn automatic_args(p: &Platform) -> std::collections::BTreeMap<String, String> {
    let variant = p.variant.clone().unwrap_or_default();
    let platform = match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    };
    let mut out = std::collections::BTreeMap::new();
    for side in ["TARGET", "BUILD"] {
        out.insert(format!("{side}PLATFORM"), platform.clone());
        out.insert(format!("{side}OS"), p.os.clone());
        out.insert(format!("{side}ARCH"), p.architecture.clone());
        out.insert(format!("{side}VARIANT"), variant.clone());
    }
    out
}

/// The stage `word` names, if it names an earlier stage (by name or index).
fn stage_ref<'a>(df: &'a Dockerfile, word: &str, before: usize) -> Option<&'a Stage> {
    df.stage(word).filter(|s| s.index < before)
}

/// The target and every stage it needs (through FROM and COPY --from), in order.
fn needed_stages(df: &Dockerfile, target: usize) -> Vec<usize> {
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !needed.insert(i) {
            continue;
        }
        let stage = &df.stages[i];
        // FROM names an earlier stage only by its name
        if let Some(s) = df
            .stages
            .iter()
            .find(|s| s.index < i && s.name.as_deref() == Some(&stage.image.to_ascii_lowercase()))
        {
            todo.push(s.index);
        }
        for step in &stage.steps {
            let froms: Vec<String> = match &step.instruction {
                Instruction::Copy(c) => c.from.iter().cloned().collect(),
                // RUN --mount=type=bind|cache,from=STAGE (a spec that needs expansion,
                // or is wrong, is judged when the step runs)
                Instruction::Run { mounts, .. } => mounts
                    .iter()
                    .filter_map(|spec| match RunMount::parse(spec, "/").ok()?.kind {
                        runmount::Kind::Bind { from, .. } | runmount::Kind::Cache { from, .. } => {
                            from
                        }
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for from in froms {
                if let Some(s) = stage_ref(df, &from, i) {
                    todo.push(s.index);
                }
            }
        }
    }
    needed.into_iter().collect()
}

fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    image::format_rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

struct Executor<'a> {
    store: &'a Store,
    backend: &'a dyn Backend,
    req: &'a Request,
    /// Opened when a needed stage copies from it.
    context: &'a Context,
    df: &'a Dockerfile,
    args: &'a BuildArgs,
    cache: Cache,
    /// Context files' digests remembered by lstat (saved when it learnt some).
    memo: ContentMemo,
    results: Vec<Option<State>>,
    /// `--secret`s by id.
    secrets: std::collections::BTreeMap<String, SecretSource>,
    /// The stage being built (what `--mount=...,from=` resolves against).
    current: usize,
    /// The `--mount`s of the RUN being applied.
    mounts: Vec<RunMount>,
    /// The network of the RUN being applied (its `--network`, else the build's).
    run_network: runtime::Network,
}

/// What one step did, for the config and the history.
enum Outcome {
    /// Only the config changed.
    Config,
    /// A layer (or `None`: RUN changed nothing).
    Layer(Option<NewLayer>),
}

impl<'a> Executor<'a> {
    fn step_err(&self, step: &Step, why: impl std::fmt::Display) -> BuildError {
        BuildError::Step {
            file: self.df.file.clone(),
            line: step.line,
            what: step.instruction.keyword().to_owned(),
            why: why.to_string(),
        }
    }

    fn stage(
        &mut self,
        stage: &Stage,
        image: &str,
        label: Option<String>,
        progress: &mut dyn Progress,
    ) -> Result<State, BuildError> {
        self.current = stage.index;
        let info = |n: usize, total: usize, step: &Step| StepInfo {
            stage: label.clone(),
            n,
            total,
            text: step.original.clone(),
        };
        let started = Instant::now();
        let from = StepInfo {
            text: match &stage.name {
                Some(n) => format!("FROM {image} AS {n}"),
                None => format!("FROM {image}"),
            },
            ..info(1, stage.steps.len() + 1, &stage.from)
        };
        // shown before a pull starts; the base's triggers, known after, then count in
        // the steps that follow
        progress.step(&from);
        let mut state = self.from(stage, image)?;
        progress.done(&from, started.elapsed());
        // the base's ONBUILD triggers run first, and are not passed on (docker)
        let triggers = self.triggers(stage, image, &mut state)?;
        let steps: Vec<&Step> = triggers.iter().chain(&stage.steps).collect();
        let total = steps.len() + 1;
        let image_env = state.config.config.clone().unwrap_or_default().env;
        let mut env = StageEnv::new(self.df, &image_env, self.args)?;
        let mut cmd_set = false;
        for (i, step) in steps.into_iter().enumerate() {
            let info = info(i + 2, total, step);
            progress.step(&info);
            let started = Instant::now();
            let expanded = env.step(step)?;
            if let Instruction::Arg(_) = expanded {
                // BuildKit records no history for ARG; its values reach the keys of the
                // steps that use them (expanded words, RUN's environment)
                progress.done(&info, started.elapsed());
                continue;
            }
            let (key, done) = match copy_args(&expanded) {
                Some((c, add)) => {
                    // the plan decides the key (content hash) and, on a miss, the layer
                    let lower = self.image_fs("the stage so far", &state.config)?;
                    let from_fs;
                    let source = match &c.from {
                        Some(f) => {
                            from_fs = self.copy_source_fs(stage.index, f, step)?;
                            Source::Image(&from_fs)
                        }
                        None => Source::Context(self.context),
                    };
                    let plan = self.plan(step, source, c, add, &state.config, &lower)?;
                    let hash = plan
                        .cache_key_memo(&mut self.memo)
                        .map_err(|e| self.copy_err(step, e))?;
                    let key = cache::key(&state.key, &[&format!("{expanded:?}"), hash.hex()]);
                    if let Some(config) = self.cached(&key) {
                        state = State { config, key };
                        progress.cached(&info);
                        continue;
                    }
                    (key, Some(self.copy_layer(step, &plan)?))
                }
                None => {
                    let mut extra = self.key_extra(&expanded, &env);
                    self.mounts = self.run_mounts(step, &expanded, &env, &state.config)?;
                    for m in &self.mounts.clone() {
                        extra.push_str(&m.key_text());
                        extra.push_str(&self.bind_hash(step, m)?);
                        extra.push('\n');
                    }
                    let key = cache::key(&state.key, &[&format!("{expanded:?}"), &extra]);
                    if let Some(config) = self.cached(&key) {
                        if matches!(expanded, Instruction::Cmd(_)) {
                            cmd_set = true;
                        }
                        state = State { config, key };
                        progress.cached(&info);
                        continue;
                    }
                    (key, None)
                }
            };
            let mut next = state.config.clone();
            let created = now_rfc3339();
            let outcome = match done {
                Some(layer) => Outcome::Layer(Some(layer)),
                None => self.apply(step, &expanded, &env, &mut next, &mut cmd_set, progress)?,
            };
            let rc = next.config.get_or_insert_with(RunConfig::default);
            rc.env = env
                .image_env()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let history = History {
                created: Some(created.clone()),
                created_by: Some(self.created_by(&expanded, &env, &state.config)),
                comment: Some("buildkit.dockerfile.v0".into()),
                ..History::default()
            };
            match outcome {
                Outcome::Layer(Some(layer)) => next.push_layer(layer.diff_id, history),
                Outcome::Layer(None) | Outcome::Config => next.push_empty_step(history),
            }
            next.created = Some(created);
            let bytes = next
                .to_json()
                .map_err(|e| BuildError::Backend(e.to_string()))?;
            let id = self.store.put_blob(&bytes)?;
            self.cache.put(self.store, &key, &id)?;
            state = State { config: next, key };
            progress.done(&info, started.elapsed());
        }
        Ok(state)
    }

    /// The state FROM starts with.
    fn from(&mut self, stage: &Stage, image: &str) -> Result<State, BuildError> {
        if image.eq_ignore_ascii_case("scratch") {
            let mut config = ImageConfig::new(&Platform::host(), &now_rfc3339());
            config.created = None;
            return Ok(State {
                config,
                key: cache::key("scratch", &[]),
            });
        }
        let lower = image.to_ascii_lowercase();
        if let Some(s) = self
            .df
            .stages
            .iter()
            .find(|s| s.index < stage.index && s.name.as_deref() == Some(lower.as_str()))
            && let Some(state) = &self.results[s.index]
        {
            return Ok(state.clone());
        }
        let platform = self
            .df
            .resolve(self.args)?
            .get(stage.index)
            .and_then(|r| r.platform.clone());
        let (id, config) = self
            .backend
            .base(image, platform.as_deref())
            .map_err(|why| self.step_err(&stage.from, why))?;
        Ok(State {
            config,
            key: cache::key("image", &[id.hex()]),
        })
    }

    /// The ONBUILD triggers of the base `state` starts from, as steps at the FROM's line;
    /// taken out of the state's config, so the image built does not pass them on.
    fn triggers(
        &self,
        stage: &Stage,
        image: &str,
        state: &mut State,
    ) -> Result<Vec<Step>, BuildError> {
        let Some(rc) = state.config.config.as_mut() else {
            return Ok(Vec::new());
        };
        if rc.on_build.is_empty() {
            return Ok(Vec::new());
        }
        let list = std::mem::take(&mut rc.on_build);
        let text = format!("FROM scratch\n{}\n", list.join("\n"));
        let parsed = dockerfile::parse(&self.df.file, text.as_bytes()).map_err(|e| {
            self.step_err(
                &stage.from,
                format!(
                    "the ONBUILD trigger {:?} of {image}: {}",
                    list.get(e.line.saturating_sub(2))
                        .map_or("", |s| s.as_str()),
                    e.kind
                ),
            )
        })?;
        let steps = parsed.stages.into_iter().flat_map(|s| s.steps);
        Ok(steps
            .map(|s| Step {
                line: stage.from.line,
                end_line: stage.from.line,
                original: format!("ONBUILD {}", s.original),
                instruction: s.instruction,
            })
            .collect())
    }

    /// The `--mount`s of a RUN, expanded with the stage's variables (relative targets
    /// against the working dir); none for other instructions.
    fn run_mounts(
        &self,
        step: &Step,
        expanded: &Instruction,
        env: &StageEnv,
        config: &ImageConfig,
    ) -> Result<Vec<RunMount>, BuildError> {
        let Instruction::Run { mounts, .. } = expanded else {
            return Ok(Vec::new());
        };
        let workdir = config
            .config
            .as_ref()
            .map(|c| c.working_dir.as_str())
            .filter(|w| !w.is_empty())
            .unwrap_or("/");
        mounts
            .iter()
            .map(|spec| {
                let spec = env.expand(spec).map_err(|e| self.step_err(step, e))?;
                RunMount::parse(&spec, workdir).map_err(|e| self.step_err(step, e))
            })
            .collect()
    }

    /// The files a bind mount (or a cache mount's `from`) reads, as a COPY of them to
    /// `/m` would write them (`.dockerignore` applies to the context, as for COPY). Errors
    /// are reasons, without the Dockerfile's name and line.
    fn bind_plan<'s>(
        &self,
        step: &Step,
        m: &RunMount,
        from_fs: &'s mut Option<ImageFs>,
    ) -> Result<Option<CopyPlan<'s>>, String>
    where
        'a: 's,
    {
        let (source, from) = match &m.kind {
            runmount::Kind::Bind { source, from, .. } => (source, from),
            runmount::Kind::Cache {
                source,
                from: from @ Some(_),
                ..
            } => (source, from),
            _ => return Ok(None),
        };
        let why = |e: BuildError| format!("the bind mount at {}: {}", m.target, reason(e));
        let src = match from {
            Some(f) => {
                let fs = self.copy_source_fs(self.current, f, step).map_err(why)?;
                Source::Image(from_fs.insert(fs))
            }
            None => Source::Context(self.context),
        };
        let source = if source.is_empty() { "." } else { source };
        let empty = ImageFs::empty("the mount");
        plan_copy(
            src,
            &[source.to_owned()],
            "/m",
            "/",
            &CopyOpts::default(),
            &empty,
        )
        .map(Some)
        .map_err(|e| why(e.into()))
    }

    /// A bind mount's (or a cache's `from`'s) content hash for the step's key (the files
    /// it reads decide the result, as COPY's do); empty for other mounts.
    fn bind_hash(&mut self, step: &Step, m: &RunMount) -> Result<String, BuildError> {
        let mut from_fs = None;
        let plan = self.bind_plan(step, m, &mut from_fs);
        let Some(plan) = plan.map_err(|why| self.step_err(step, why))? else {
            return Ok(String::new());
        };
        let hash = plan.cache_key_memo(&mut self.memo);
        let hash =
            hash.map_err(|e| self.step_err(step, format!("the bind mount at {}: {e}", m.target)))?;
        Ok(hash.hex().to_owned())
    }

    /// Copies a bind mount's (or a cache's `from`'s) files under `into` (a fresh dir);
    /// returns the copy's root.
    fn materialize(&self, step: &Step, m: &RunMount, into: &Path) -> Result<PathBuf, String> {
        let mut from_fs = None;
        let Some(plan) = self.bind_plan(step, m, &mut from_fs)? else {
            return Err(format!("{}: nothing to copy for this mount", m.target));
        };
        let why = |e: &dyn std::fmt::Display| format!("the bind mount at {}: {e}", m.target);
        std::fs::create_dir_all(into).map_err(|e| why(&e))?;
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| why(&e))?;
        let (written, extracted) = std::thread::scope(|s| {
            let reader = s.spawn(move || {
                crate::layer::extract(std::fs::File::from(r), into, &mut |_, _| {})
                    .map_err(|e| e.to_string())
            });
            let mut out = std::io::BufWriter::with_capacity(256 << 10, std::fs::File::from(w));
            let written = plan.write_layer(&mut out).and_then(|_| {
                std::io::Write::flush(&mut out).map_err(|source| {
                    super::context::ContextError::WriteLayer { op: "COPY", source }
                })
            });
            drop(out);
            let extracted = reader
                .join()
                .unwrap_or_else(|_| Err("the extracting thread panicked".into()));
            (written, extracted)
        });
        match (written, extracted) {
            (Ok(_), Ok(_)) => {}
            (Err(e), _) if !is_broken_pipe(&e) => return Err(why(&e)),
            (_, Err(e)) => return Err(why(&e)),
            (Err(e), Ok(_)) => return Err(why(&e)),
        }
        let root = into.join("m");
        if std::fs::symlink_metadata(&root).is_err() {
            std::fs::create_dir(&root).map_err(|e| why(&e))?;
        }
        Ok(root)
    }

    /// What besides the expanded instruction decides a (non-COPY) step's result: for RUN
    /// the build args in effect (docker's rule: every RUN after an ARG uses it, so a
    /// changed value reruns from there).
    fn key_extra(&self, expanded: &Instruction, env: &StageEnv) -> String {
        match expanded {
            Instruction::Run { .. } => env
                .run_env()
                .iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect(),
            _ => String::new(),
        }
    }

    /// Stores the content memo when it learnt digests (best effort: it only saves work).
    fn save_memo(&self) {
        if !self.memo.changed() {
            return;
        }
        if let Ok(_lock) = self.store.lock() {
            let path = self.store.paths().build_memo_json();
            let _ = self.store.replace_file(&path, &self.memo.to_json());
        }
    }

    /// The components of the absolute `path` the image so far lacks, parents first
    /// (relative); none when one of them exists but is not a directory (a symlink: the
    /// runtime makes the working directory when a RUN needs it).
    fn missing_dirs(&self, config: &ImageConfig, path: &str) -> Result<Vec<String>, BuildError> {
        use super::view::View;
        let fs = self.image_fs("the stage so far", config)?;
        let mut prefix = String::new();
        let mut missing = Vec::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if !missing.is_empty() {
                missing.push(prefix.clone());
                continue;
            }
            match fs.node(prefix.as_bytes())? {
                Some(n) if n.kind == crate::tarindex::Kind::Dir => {}
                Some(_) => return Ok(Vec::new()),
                None => missing.push(prefix.clone()),
            }
        }
        Ok(missing)
    }

    /// Whether the image so far has the directory `rel` (no leading `/`).
    fn lower_has_dir(&self, config: &ImageConfig, rel: &str) -> Result<bool, BuildError> {
        use super::view::View;
        let fs = self.image_fs("the stage so far", config)?;
        Ok(fs
            .node(rel.as_bytes())?
            .is_some_and(|n| n.kind == crate::tarindex::Kind::Dir))
    }

    /// The cached result of `key`, unless `--no-cache`.
    fn cached(&self, key: &str) -> Option<ImageConfig> {
        if self.req.no_cache {
            return None;
        }
        self.cache.get(self.store, key).map(|(_, config)| config)
    }

    fn copy_err(&self, step: &Step, source: super::context::ContextError) -> BuildError {
        BuildError::Copy {
            file: self.df.file.clone(),
            line: step.line,
            source,
        }
    }

    /// The files of an image config's layers (`what` names it in errors).
    fn image_fs(&self, what: &str, config: &ImageConfig) -> Result<ImageFs, BuildError> {
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.is_empty() {
            return Ok(ImageFs::empty(what));
        }
        let (_, index) = self.store.chain_index(diff_ids)?;
        let tars: Vec<_> = diff_ids.iter().map(|d| self.store.layer_tar(d)).collect();
        Ok(ImageFs::open(what, &index, &tars)?)
    }

    /// `COPY --from=WORD`: an earlier stage (by name or index), else an image.
    fn copy_source_fs(
        &self,
        current: usize,
        word: &str,
        step: &Step,
    ) -> Result<ImageFs, BuildError> {
        if let Some(s) = stage_ref(self.df, word, current)
            && let Some(state) = &self.results[s.index]
        {
            return self.image_fs(&format!("stage {word}"), &state.config);
        }
        let (_, config) = self
            .backend
            .base(word, None)
            .map_err(|why| self.step_err(step, why))?;
        self.image_fs(&format!("image {word}"), &config)
    }

    fn plan<'s>(
        &self,
        step: &Step,
        source: Source<'s>,
        c: &CopyArgs,
        add: bool,
        config: &ImageConfig,
        lower: &ImageFs,
    ) -> Result<CopyPlan<'s>, BuildError> {
        let workdir = config
            .config
            .as_ref()
            .map(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        let opts = CopyOpts {
            chown: c.chown.clone(),
            chmod: c.chmod.clone(),
            add,
        };
        plan_copy(source, &c.sources, &c.dest, &workdir, &opts, lower)
            .map_err(|e| self.copy_err(step, e))
    }

    /// Writes the planned layer and stores it.
    fn copy_layer(&self, step: &Step, plan: &CopyPlan) -> Result<NewLayer, BuildError> {
        // the tar streams through a pipe into the store's ingest (no temp copy); the
        // ingest thread is joined before anything forks
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| self.step_err(step, e))?;
        let backend = self.backend;
        let (written, stored) = std::thread::scope(|s| {
            let reader = s.spawn(move || backend.layer_from_tar(&mut std::fs::File::from(r)));
            let mut out = std::io::BufWriter::with_capacity(256 << 10, std::fs::File::from(w));
            let written = plan.write_layer(&mut out).and_then(|_| {
                std::io::Write::flush(&mut out).map_err(|source| {
                    super::context::ContextError::WriteLayer { op: "COPY", source }
                })
            });
            drop(out); // EOF for the reader
            let stored = reader
                .join()
                .unwrap_or_else(|_| Err("storing the layer: the thread panicked".into()));
            (written, stored)
        });
        match (written, stored) {
            (Ok(()), Ok(layer)) => Ok(layer),
            // the writer's own failure is the cause (the reader then saw a cut stream)...
            (Err(e), _) if !is_broken_pipe(&e) => Err(self.copy_err(step, e)),
            // ...unless the reader gave up first
            (_, Err(why)) => Err(self.step_err(step, why)),
            (Err(e), Ok(_)) => Err(self.copy_err(step, e)),
        }
    }

    /// docker's `created_by` for the step.
    fn created_by(&self, expanded: &Instruction, env: &StageEnv, before: &ImageConfig) -> String {
        match expanded {
            Instruction::Run { command, .. } => {
                let argv = self.argv(command, before);
                let args: Vec<String> = env
                    .run_env()
                    .into_iter()
                    .filter(|(k, _)| !env.image_env().iter().any(|(e, _)| e == k))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if args.is_empty() {
                    argv.join(" ")
                } else {
                    format!("|{} {} {}", args.len(), args.join(" "), argv.join(" "))
                }
            }
            other => format!("/bin/sh -c #(nop)  {}", describe(other)),
        }
    }

    /// A command's argv: exec form as is, shell form through the stage's SHELL.
    fn argv(&self, command: &Command, config: &ImageConfig) -> Vec<String> {
        match command {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = shell_of(config);
                v.push(s.clone());
                v
            }
        }
    }

    /// Runs one instruction (not cached) on `config`.
    fn apply(
        &mut self,
        step: &Step,
        expanded: &Instruction,
        env: &StageEnv,
        config: &mut ImageConfig,
        cmd_set: &mut bool,
        progress: &mut dyn Progress,
    ) -> Result<Outcome, BuildError> {
        let shell = shell_of(config);
        let command = |c: &Command| match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = shell.clone();
                v.push(s.clone());
                v
            }
        };
        if let Instruction::Run {
            command: c,
            heredocs,
            network,
            security,
            ..
        } = expanded
        {
            // RUN --network=default|none|host (BuildKit); default: the build's
            self.run_network = match network.as_deref() {
                None | Some("default") => self.req.network,
                Some(n) => n
                    .parse()
                    .map_err(|e| self.step_err(step, format!("--network={n}: {e}")))?,
            };
            if let Some(s) = security.as_deref().filter(|s| *s != "sandbox") {
                return Err(self.step_err(
                    step,
                    format!("--security={s} is not supported: every RUN runs rootless, sandboxed"),
                ));
            }
            let argv = match c {
                Command::Shell(text) if !heredocs.is_empty() => {
                    let mut v = shell.clone();
                    v.push(heredoc_script(text, heredocs));
                    v
                }
                _ => command(c),
            };
            let layer = self.run(step, &argv, env, config, progress)?;
            return Ok(Outcome::Layer(layer));
        }
        let rc = config.config.get_or_insert_with(RunConfig::default);
        match expanded {
            Instruction::Cmd(c) => {
                rc.cmd = Some(command(c));
                *cmd_set = true;
            }
            Instruction::Entrypoint(c) => {
                rc.entrypoint = Some(command(c));
                // docker: an ENTRYPOINT resets a CMD inherited from the base image
                if !*cmd_set {
                    rc.cmd = None;
                }
            }
            Instruction::Label(kvs) => {
                for kv in kvs {
                    rc.labels.insert(kv.key.clone(), kv.value.clone());
                }
            }
            Instruction::Maintainer(m) => config.author = Some(m.clone()),
            Instruction::Expose(ports) => {
                for p in ports {
                    let r = PortRange::parse(p).map_err(|e| self.step_err(step, e))?;
                    for port in r.first..=r.last {
                        rc.exposed_ports.insert(format!("{port}/{}", r.protocol));
                    }
                }
            }
            Instruction::Env(_) => {} // the caller sets Env from the stage's variables
            Instruction::Workdir(w) => {
                let base = if rc.working_dir.is_empty() {
                    "/"
                } else {
                    rc.working_dir.as_str()
                };
                rc.working_dir = join_path(base, w);
                // BuildKit creates a missing WORKDIR (owned by root), as a layer
                let wd = rc.working_dir.clone();
                let missing = self.missing_dirs(config, &wd)?;
                if !missing.is_empty() {
                    let tar = dir_layer(&missing).map_err(|e| self.step_err(step, e))?;
                    let layer = self
                        .backend
                        .layer_from_tar(&mut tar.as_slice())
                        .map_err(|why| self.step_err(step, why))?;
                    return Ok(Outcome::Layer(Some(layer)));
                }
            }
            Instruction::User(u) => rc.user = u.clone(),
            Instruction::Volume(v) => rc.volumes.extend(v.iter().cloned()),
            Instruction::StopSignal(s) => rc.stop_signal = Some(s.clone()),
            Instruction::Shell(v) => rc.shell = Some(v.clone()),
            Instruction::Onbuild { expression, .. } => rc.on_build.push(expression.clone()),
            Instruction::Healthcheck(h) => rc.healthcheck = Some(healthcheck_json(h)),
            other => {
                return Err(
                    self.step_err(step, format!("{} is not supported here", other.keyword()))
                );
            }
        }
        Ok(Outcome::Config)
    }

    /// RUN: a container of the current state on the overlay with a fresh upper dir.
    fn run(
        &mut self,
        step: &Step,
        argv: &[String],
        env: &StageEnv,
        config: &ImageConfig,
        progress: &mut dyn Progress,
    ) -> Result<Option<NewLayer>, BuildError> {
        let shown = show_command(argv);
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.is_empty() {
            return Err(self.step_err(
                step,
                "the image has no layers (FROM scratch): there is nothing to run",
            ));
        }
        let (_, lower_index) = self.store.chain_index(diff_ids)?;
        let tars = diff_ids.iter().map(|d| self.store.layer_tar(d)).collect();
        let dir = self.store.temp_dir("build")?;
        let maps = IdMaps::for_current_user();
        let mut opts = overlay::Options::in_dir(dir.path(), lower_index, tars);
        // single-id mode: root-owned files of other groups (/etc/shadow) stay writable
        opts.squash_unmapped = maps.single().is_some();
        let mount_opts = opts.clone();
        let mount: runtime::MountFn = Box::new(move |mp: &Path| {
            overlay::mount(&mount_opts, mp)
                .map(|m| Box::new(m) as Box<dyn std::any::Any>)
                .map_err(|e| e.to_string())
        });
        let id = Digest::of(format!("{}{}", dir.path().display(), now_rfc3339()).as_bytes())
            .hex()
            .to_owned();
        let log = dir.path().join("run.log");
        let rc = config.config.clone().unwrap_or_default();
        let mut run_env: Vec<String> = env
            .run_env()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !run_env.iter().any(|e| e.starts_with("PATH=")) {
            run_env.push(
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            );
        }
        let run_dir = self.store.paths().run_dir(&id);
        // single-id mode: chown and set*id succeed without effect (package managers); the
        // runtime maps USER's id to the one host id itself (as for `run -u`)
        let fake_ids = !maps.has_ranges();
        let mut binds = Vec::new();
        if fake_ids && self.lower_has_dir(config, APT_CONF_DIR)? {
            // apt checks that its switch to _apt took, which fake ids cannot make true:
            // it runs its methods as root instead (Charliecloud does the same)
            let conf = dir.path().join("apt-no-sandbox.conf");
            std::fs::write(&conf, "APT::Sandbox::User \"root\";\n")
                .map_err(|e| self.step_err(step, e))?;
            binds.push(runtime::Bind {
                source: conf,
                destination: format!("/{APT_CONF_DIR}/{APT_STUB}"),
                readonly: true,
                fill: false,
                tmpfs: None,
            });
        }
        // RUN --mount: binds for this RUN only (materialised binds, secret copies and
        // private caches live in the RUN's temp dir and go with it)
        let mounts = std::mem::take(&mut self.mounts);
        let prepared = runmount::prepare(
            self.store.paths(),
            &maps,
            &mounts,
            &self.secrets,
            dir.path(),
            &self.store.paths().run_dir(&format!("{id}-secrets")),
            &mut |i, m| self.materialize(step, m, &dir.path().join(format!("bind-{i}"))),
        )
        .map_err(|why| self.step_err(step, why))?;
        let targets: Vec<String> = prepared
            .binds
            .iter()
            .map(|b| b.destination.clone())
            .collect();
        binds.extend(prepared.binds.iter().cloned());
        for (k, v) in &prepared.env {
            run_env.retain(|e| !e.starts_with(&format!("{k}=")));
            run_env.push(format!("{k}={v}"));
        }
        let container = runtime::Container {
            id: id.clone(),
            rootfs: RootFs::Mount(mount),
            run_dir: run_dir.clone(),
            process: ProcessSpec {
                args: argv.to_vec(),
                env: run_env,
                cwd: rc.working_dir.clone(),
                user: rc.user.clone(),
                tty: false,
            },
            hostname: id[..12].to_owned(),
            network: self.run_network,
            binds,
            init: false,
            io: if self.req.quiet {
                Io::Log {
                    path: log.clone(),
                    stdin: false,
                }
            } else {
                Io::Inherit { stdin: false }
            },
            maps,
            fake_ids,
            ports: Vec::new(),
            // RUN reaches the network as docker build's does (pasta when usable)
            outbound: runtime::netns::choose(self.run_network).0,
        };
        let run_err = |source| BuildError::Run {
            command: shown.clone(),
            source,
        };
        let result = runtime::start(container, None).and_then(|s| s.wait());
        let _ = std::fs::remove_dir_all(&run_dir);
        drop(prepared); // the cache locks
        let code = result.map_err(run_err)?;
        if code != 0 {
            if self.req.quiet
                && let Ok((lines, _)) = crate::state::log::read_from(&log, 0)
            {
                for l in lines {
                    progress.output(&l.text);
                }
            }
            return Err(BuildError::RunFailed {
                command: shown,
                code,
            });
        }
        drop_mount_stubs(&opts.upper);
        if !targets.is_empty() {
            let lower = self.image_fs("the stage so far", config)?;
            let lower_has = |rel: &str| {
                use super::view::View;
                lower.node(rel.as_bytes()).map_or(true, |n| n.is_some())
            };
            runmount::drop_mount_points(&opts.upper, &targets, &lower_has);
        }
        let stub = opts.upper.join(APT_CONF_DIR).join(APT_STUB);
        if std::fs::symlink_metadata(&stub).is_ok_and(|m| m.is_file() && m.len() == 0) {
            let _ = std::fs::remove_file(&stub);
            remove_empty_parents(&opts.upper, Path::new(APT_CONF_DIR));
        }
        self.backend
            .layer_from_upper(&opts)
            .map_err(|why| self.step_err(step, why))
    }
}

/// A build error's reason without the Dockerfile's name and line (for a message that
/// gets them once, from the step that wraps it).
fn reason(e: BuildError) -> String {
    match e {
        BuildError::Step { why, .. } => why,
        BuildError::Copy { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// A layer tar holding the directories `dirs` (parents first; 0755, root's, mtime now).
fn dir_layer(dirs: &[String]) -> std::io::Result<Vec<u8>> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut tar = tar::Builder::new(Vec::new());
    for dir in dirs {
        let path = format!("{dir}/");
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_size(0);
        tar.append_data(&mut h, &path, std::io::empty())?;
    }
    tar.into_inner()
}

fn is_broken_pipe(e: &super::context::ContextError) -> bool {
    matches!(e, super::context::ContextError::WriteLayer { source, .. }
        if source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Where apt reads its configuration snippets, and the one single-id RUNs get.
const APT_CONF_DIR: &str = "etc/apt/apt.conf.d";
const APT_STUB: &str = "00camada-single-id";

/// Removes `rel` and its parents from `upper` while they are empty directories.
fn remove_empty_parents(upper: &Path, rel: &Path) {
    let mut p = Some(rel);
    while let Some(r) = p.filter(|r| !r.as_os_str().is_empty()) {
        if std::fs::remove_dir(upper.join(r)).is_err() {
            return;
        }
        p = r.parent();
    }
}

/// Removes from a RUN's upper dir the empty files the runtime made only as mount points
/// for its generated /etc files (an image without them gets them as stubs): BuildKit
/// leaves them out of the layer too, and a RUN that changed nothing then makes none.
fn drop_mount_stubs(upper: &Path) {
    for stub in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        let p = upper.join(stub);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file() && m.len() == 0) {
            let _ = std::fs::remove_file(&p);
        }
    }
    // an etc/ left empty was only their parent (copied up to make them)
    remove_empty_parents(upper, Path::new("etc"));
}

/// COPY's or ADD's operands, and whether it is ADD.
fn copy_args(i: &Instruction) -> Option<(&CopyArgs, bool)> {
    match i {
        Instruction::Copy(c) => Some((c, false)),
        Instruction::Add(c) => Some((c, true)),
        _ => None,
    }
}

/// The script a shell-form RUN with heredocs runs: `RUN <<EOF` alone runs the body;
/// otherwise the shell gets the line and the bodies with their delimiters (BuildKit).
fn heredoc_script(text: &str, heredocs: &[dockerfile::Heredoc]) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if let ([word], [h]) = (words.as_slice(), heredocs)
        && word.starts_with("<<")
        && h.fd == 0
    {
        return h.body();
    }
    let mut script = format!("{text}\n");
    for h in heredocs {
        script.push_str(&h.content);
        script.push_str(&h.name);
        script.push('\n');
    }
    script
}

/// The shell of shell-form commands: the stage's SHELL, else `/bin/sh -c`.
fn shell_of(config: &ImageConfig) -> Vec<String> {
    config
        .config
        .as_ref()
        .and_then(|c| c.shell.clone())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// `/bin/sh -c "echo hi"`: the argv as the error message shows it.
fn show_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An absolute, normalised path: `w` against `base` when relative.
pub(super) fn join_path(base: &str, w: &str) -> String {
    let full = if w.starts_with('/') {
        w.to_owned()
    } else {
        format!("{base}/{w}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in full.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The instruction as docker's history shows it (`ENV A=1`, `CMD ["sh"]`).
fn describe(i: &Instruction) -> String {
    let json = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
    let cmd = |c: &Command| match c {
        Command::Exec(v) => json(v),
        Command::Shell(s) => s.clone(),
    };
    let kvs = |l: &[dockerfile::KeyValue]| {
        l.iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let kw = i.keyword();
    match i {
        Instruction::Cmd(c) | Instruction::Entrypoint(c) => format!("{kw} {}", cmd(c)),
        Instruction::Env(l) | Instruction::Label(l) => format!("{kw} {}", kvs(l)),
        Instruction::Maintainer(s)
        | Instruction::Workdir(s)
        | Instruction::User(s)
        | Instruction::StopSignal(s) => format!("{kw} {s}"),
        Instruction::Expose(v) => format!("{kw} {}", v.join(" ")),
        Instruction::Volume(v) | Instruction::Shell(v) => format!("{kw} {}", json(v)),
        Instruction::Onbuild { expression, .. } => format!("{kw} {expression}"),
        Instruction::Healthcheck(h) => format!("{kw} {}", healthcheck_json(h)),
        Instruction::Copy(c) | Instruction::Add(c) => {
            format!("{kw} {} {}", c.sources.join(" "), c.dest)
        }
        other => other.keyword().to_owned(),
    }
}

/// docker's `Healthcheck` config object (durations in nanoseconds).
fn healthcheck_json(h: &Healthcheck) -> serde_json::Value {
    let ns = |d: &Option<Duration>| d.map(|d| d.as_nanos() as u64);
    match h {
        Healthcheck::None => serde_json::json!({ "Test": ["NONE"] }),
        Healthcheck::Cmd {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => {
            let test: Vec<String> = match test {
                Command::Exec(v) => std::iter::once("CMD".to_owned())
                    .chain(v.iter().cloned())
                    .collect(),
                Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
            };
            let mut o = serde_json::Map::new();
            o.insert("Test".into(), serde_json::json!(test));
            for (k, v) in [
                ("Interval", ns(interval)),
                ("Timeout", ns(timeout)),
                ("StartPeriod", ns(start_period)),
                ("StartInterval", ns(start_interval)),
            ] {
                if let Some(v) = v {
                    o.insert(k.into(), serde_json::json!(v));
                }
            }
            if let Some(r) = retries {
                o.insert("Retries".into(), serde_json::json!(r));
            }
            serde_json::Value::Object(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdir_joins_and_normalises() {
        assert_eq!(join_path("/", "app"), "/app");
        assert_eq!(join_path("/app", "src/../lib"), "/app/lib");
        assert_eq!(join_path("/app", "/srv/"), "/srv");
        assert_eq!(join_path("/a", ".."), "/");
    }

    #[test]
    fn only_needed_stages_run() {
        let df = dockerfile::parse(
            "Dockerfile",
            b"FROM busybox AS a\nRUN x\nFROM busybox AS unused\nRUN y\nFROM a AS b\nFROM busybox\nCOPY --from=b /x /x\n",
        )
        .unwrap();
        assert_eq!(needed_stages(&df, 3), vec![0, 2, 3]);
        assert_eq!(needed_stages(&df, 1), vec![1]);
        let df = dockerfile::parse(
            "Dockerfile",
            b"FROM busybox AS tools\nFROM busybox AS unused\nFROM busybox\nRUN --mount=from=tools,target=/t true\n",
        )
        .unwrap();
        assert_eq!(needed_stages(&df, 2), vec![0, 2]);
    }

    #[test]
    fn commands_show_quoted() {
        let argv = ["/bin/sh".to_owned(), "-c".into(), "exit 3".into()];
        assert_eq!(show_command(&argv), r#"/bin/sh -c "exit 3""#);
    }
}
