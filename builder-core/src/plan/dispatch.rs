//! Planning one stage: each instruction's effect on the config, and the steps it adds.

use std::collections::{BTreeMap, BTreeSet};

use kiln_dockerfile_parser::shell::Expander;
use kiln_dockerfile_parser::{
    CommandForm, CopyInstruction, Healthcheck, Instruction, InstructionNode, Span, Word,
};

use super::scope::{ArgUsage, PROXY_ARGS, StageScope};
use super::{
    ContainerConfig, DEFAULT_PATH, ImageLookup, PlanError, PlanOptions, origin_of, origin_of_block,
};
use crate::graph::{Base, CopyOp, ImageRef, InlineFile, Op, SourceRef, StagePlan, Step};
use crate::image::Healthcheck as HealthConfig;

pub(super) struct StageInput<'a> {
    pub df: &'a kiln_dockerfile_parser::Dockerfile,
    pub index: usize,
    pub base: Base,
    pub globals: &'a [(String, Option<String>)],
    pub opts: &'a PlanOptions,
    pub is_target: bool,
    pub budget: &'a super::limits::Budget,
    /// The platform the stage runs on (`FROM --platform`, else its base stage's, else the
    /// target's).
    pub platform: crate::image::Platform,
}

pub(super) struct StageState<'a> {
    pub(super) input: &'a StageInput<'a>,
    pub(super) expander: Expander,
    pub(super) config: ContainerConfig,
    pub(super) author: Option<String>,
    pub(super) scope: StageScope,
    pub(super) steps: Vec<Step>,
    pub(super) depends_on: BTreeSet<usize>,
    /// The first reference to each stage in `depends_on`, for cycle errors.
    pub(super) dep_spans: BTreeMap<usize, Span>,
    pub(super) image_sources: BTreeSet<ImageRef>,
    pub(super) cmd_set: bool,
    /// Where each ENV and ARG of this stage got its value, for errors about them.
    pub(super) set_at: BTreeMap<String, Span>,
    /// The first error that counts only if the build runs this stage (a bad mount option).
    pub(super) deferred: Option<PlanError>,
}

/// A planned stage, the first reference to each stage it depends on, and the first error that
/// counts only if the build runs the stage.
pub(super) type PlannedStage = (StagePlan, BTreeMap<usize, Span>, Option<PlanError>);

pub(super) fn plan_stage(
    input: StageInput<'_>,
    planned: &BTreeMap<usize, StagePlan>,
    images: &ImageLookup<'_>,
    usage: &mut ArgUsage,
) -> Result<PlannedStage, PlanError> {
    let Some(stage) = input.df.stage(input.index) else {
        return Err(PlanError::NoStage);
    };
    let from_origin = origin_of_block(stage.from());
    let (mut config, inherited_from) = match &input.base {
        Base::Scratch => (ContainerConfig::default(), None),
        Base::Stage(i) => match planned.get(i) {
            Some(p) => (
                p.config.clone(),
                Some(format!(
                    "stage {}",
                    p.name.clone().unwrap_or_else(|| i.to_string())
                )),
            ),
            None => {
                return Err(PlanError::StageReference {
                    message: format!("stage {i} is not available"),
                    span: from_origin.span,
                });
            }
        },
        Base::Image(r) => match images(r, &input.platform) {
            Some(c) => (c, Some(r.to_string())),
            None => {
                return Err(PlanError::UnresolvedImage {
                    reference: r.to_string(),
                    span: from_origin.span,
                });
            }
        },
    };
    // Docker gives images without PATH the default one.
    if config.env_get("PATH").is_none() {
        config.env_set("PATH", DEFAULT_PATH);
    }
    let triggers = config.on_build.take().unwrap_or_default();
    let mut depends_on = BTreeSet::new();
    if let Base::Stage(i) = input.base {
        depends_on.insert(i);
    }
    let mut st = StageState {
        expander: Expander::new(input.df.escape),
        input: &input,
        config,
        author: None,
        scope: StageScope::default(),
        steps: Vec::new(),
        depends_on,
        dep_spans: BTreeMap::new(),
        image_sources: BTreeSet::new(),
        cmd_set: false,
        set_at: BTreeMap::new(),
        deferred: None,
    };

    // ONBUILD triggers of the base run first, as if written right after FROM.
    for trigger in &triggers {
        let image = inherited_from.clone().unwrap_or_default();
        let parsed =
            kiln_dockerfile_parser::parse(&format!("FROM scratch\n{trigger}\n")).map_err(|e| {
                PlanError::Onbuild {
                    image: image.clone(),
                    trigger: trigger.clone(),
                    span: from_origin.span,
                    source: Box::new(e),
                }
            })?;
        let first = parsed.stages().next().and_then(|s| s.instructions().next());
        let Some(mut node) = first.and_then(|b| b.to_node()) else {
            continue;
        };
        // Errors in a trigger point at the FROM line that inherited it.
        node.raw.span = from_origin.span;
        node.raw.start_line = u32::try_from(from_origin.start_line).unwrap_or(u32::MAX);
        node.raw.end_line = u32::try_from(from_origin.end_line).unwrap_or(u32::MAX);
        st.dispatch(&node, usage)?;
    }
    for block in stage.instructions() {
        // The typed reading of the block, built for this one instruction.
        let node = block.to_node().ok_or_else(|| PlanError::Invalid {
            message: format!("cannot read the instruction `{}`", block.original()),
            span: block.span(),
        })?;
        st.dispatch(&node, usage)?;
    }
    if input.is_target {
        for (k, v) in &input.opts.labels {
            st.config
                .labels
                .get_or_insert_with(Default::default)
                .insert(k.clone(), v.clone());
        }
    }
    let plan = StagePlan {
        index: input.index,
        name: stage.name().map(str::to_string),
        base: input.base.clone(),
        from_origin,
        steps: st.steps,
        config: st.config,
        author: st.author,
        depends_on: st.depends_on,
        image_sources: st.image_sources,
        platform: input.platform.clone(),
    };
    Ok((plan, st.dep_spans, st.deferred))
}

/// Cleans an absolute container path the way Go's `path.Clean` does (keeping it absolute).
pub(crate) fn clean_abs(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

impl StageState<'_> {
    /// The value of `$name` for expansion: ENV wins over ARG.
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.config.env_get(name) {
            return Some(v.to_string());
        }
        self.scope.arg(name).map(str::to_string)
    }

    pub(super) fn expand(&self, word: &Word, what: &str) -> Result<String, PlanError> {
        let lookup = |k: &str| self.lookup(k);
        let value = self
            .expander
            .expand(&word.text, &lookup)
            .map(|e| e.value)
            .map_err(|source| PlanError::Expand {
                what: what.to_string(),
                span: word.span,
                source,
            })?;
        self.input.budget.take(value.len(), word.span)?;
        Ok(value)
    }

    pub(super) fn expand_words(&self, word: &Word, what: &str) -> Result<Vec<String>, PlanError> {
        let lookup = |k: &str| self.lookup(k);
        let words = self
            .expander
            .expand_words(&word.text, &lookup)
            .map(|e| e.words)
            .map_err(|source| PlanError::Expand {
                what: what.to_string(),
                span: word.span,
                source,
            })?;
        let size = words.iter().map(String::len).sum();
        self.input.budget.take(size, word.span)?;
        Ok(words)
    }

    pub(super) fn push(&mut self, node: &InstructionNode, op: Op, created_by: String) {
        self.steps.push(Step {
            origin: origin_of(node),
            op,
            created_by,
        });
    }

    /// Build args in effect for RUN: declared in this stage, with a value, not shadowed by ENV.
    pub(super) fn run_args(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .scope
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .filter(|(k, _)| self.config.env_get(k).is_none())
            .collect();
        for proxy in PROXY_ARGS {
            if let Some(v) = self.input.opts.build_args.get(*proxy)
                && !out.iter().any(|(k, _)| k == proxy)
            {
                out.push((proxy.to_string(), v.clone()));
            }
        }
        out
    }

    pub(super) fn abs_path(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else {
            format!(
                "{}/{}",
                self.config.workdir_or_root().trim_end_matches('/'),
                path
            )
        }
    }

    pub(super) fn command_argv(&self, form: &CommandForm) -> Vec<String> {
        match form {
            CommandForm::Exec(v) => v.iter().map(|s| s.to_string()).collect(),
            CommandForm::Shell(w) => {
                let mut argv = self.config.shell_or_default();
                argv.push(w.text.to_string());
                argv
            }
        }
    }

    fn dispatch(&mut self, node: &InstructionNode, usage: &mut ArgUsage) -> Result<(), PlanError> {
        let text = node.original().to_string();
        match &node.instruction {
            Instruction::From(_) => {}
            Instruction::Arg { args } => {
                for (name, default) in args {
                    usage.declared.insert(name.text.to_string());
                    let value = match self.input.opts.build_args.get(name.text.as_str()) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(w) => Some(self.expand(w, &format!("ARG {}", name.text))?),
                            None => self
                                .input
                                .globals
                                .iter()
                                .find(|(n, _)| n == &name.text)
                                .and_then(|(_, v)| v.clone()),
                        },
                    };
                    let at = default.as_ref().map_or(name.span, |d| d.span);
                    self.set_at.insert(name.text.to_string(), at);
                    self.scope.declare(&name.text, value);
                }
                self.push(node, Op::Config, format!("ARG {}", arg_history(args)));
            }
            Instruction::Env { pairs } => {
                // Docker's rule: every pair is expanded against the environment as it was
                // before this instruction (`ENV abc=bye def=$abc` sees the old `abc`).
                let mut parts = Vec::new();
                let mut expanded = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    let key = self.expand(k, "ENV key")?;
                    let value = self.expand(v, &format!("ENV {key}"))?;
                    if key.is_empty() {
                        return Err(PlanError::Invalid {
                            message: "ENV names can not be blank".into(),
                            span: k.span,
                        });
                    }
                    parts.push(format!("{key}={value}"));
                    self.set_at.insert(key.clone(), v.span);
                    expanded.push((key, value));
                }
                for (key, value) in &expanded {
                    self.config.env_set(key, value);
                }
                self.push(node, Op::Config, format!("ENV {}", parts.join(" ")));
            }
            Instruction::Label { pairs } => {
                let mut parts = Vec::new();
                for (k, v) in pairs {
                    let key = self.expand(k, "LABEL key")?;
                    let value = self.expand(v, &format!("LABEL {key}"))?;
                    if key.is_empty() {
                        return Err(PlanError::Invalid {
                            message: "LABEL names can not be blank".into(),
                            span: k.span,
                        });
                    }
                    parts.push(format!("{key}={value}"));
                    self.config
                        .labels
                        .get_or_insert_with(Default::default)
                        .insert(key, value);
                }
                self.push(node, Op::Config, format!("LABEL {}", parts.join(" ")));
            }
            Instruction::Maintainer(name) => {
                self.author = Some(name.clone());
                self.push(node, Op::Config, format!("MAINTAINER {name}"));
            }
            Instruction::Workdir(w) => {
                let path = self.expand(w, "WORKDIR")?;
                if path.is_empty() {
                    return Err(PlanError::Invalid {
                        message: "WORKDIR cannot be empty".into(),
                        span: w.span,
                    });
                }
                let abs = clean_abs(&self.abs_path(&path));
                self.config.working_dir = Some(abs.clone());
                let op = if abs == "/" {
                    Op::Config
                } else {
                    Op::Workdir {
                        path: abs.clone(),
                        user: self.config.user_or_root().to_string(),
                    }
                };
                self.push(node, op, format!("WORKDIR {abs}"));
            }
            Instruction::User(w) => {
                let user = self.expand(w, "USER")?;
                if user.is_empty() {
                    return Err(PlanError::Invalid {
                        message: "USER cannot be empty".into(),
                        span: w.span,
                    });
                }
                self.config.user = Some(user.clone());
                self.push(node, Op::Config, format!("USER {user}"));
            }
            Instruction::Expose(words) => {
                let mut ports = Vec::new();
                for w in words {
                    for p in self.expand_words(w, "EXPOSE")? {
                        for port in parse_ports(&p).ok_or_else(|| PlanError::Invalid {
                            message: format!("invalid port in EXPOSE: {p:?} (expected PORT[-PORT][/tcp|udp|sctp])"),
                            span: w.span,
                        })? {
                            self.config.exposed_ports.get_or_insert_with(Default::default).insert(port.clone());
                            ports.push(port);
                        }
                    }
                }
                self.push(node, Op::Config, format!("EXPOSE {}", ports.join(" ")));
            }
            Instruction::Volume(words) => {
                let mut vols = Vec::new();
                for w in words {
                    let v = self.expand(w, "VOLUME")?;
                    let v = v.trim();
                    if v.is_empty() {
                        return Err(PlanError::Invalid {
                            message: "VOLUME specified can not be an empty string".into(),
                            span: w.span,
                        });
                    }
                    self.config
                        .volumes
                        .get_or_insert_with(Default::default)
                        .insert(v.to_string());
                    vols.push(v.to_string());
                }
                self.push(node, Op::Config, format!("VOLUME [{}]", vols.join(" ")));
            }
            Instruction::Stopsignal(w) => {
                let sig = self.expand(w, "STOPSIGNAL")?;
                if !valid_signal(&sig) {
                    return Err(PlanError::Invalid {
                        message: format!("invalid STOPSIGNAL {sig:?}"),
                        span: w.span,
                    });
                }
                self.config.stop_signal = Some(sig.clone());
                self.push(node, Op::Config, format!("STOPSIGNAL {sig}"));
            }
            Instruction::Cmd(form) => {
                let argv = self.command_argv(form);
                self.config.cmd = Some(argv.clone());
                self.cmd_set = true;
                self.push(node, Op::Config, format!("CMD {}", json_list(&argv)));
            }
            Instruction::Entrypoint(form) => {
                let argv = self.command_argv(form);
                self.config.entrypoint = Some(argv.clone());
                // An inherited CMD is reset by ENTRYPOINT; one set in this stage is kept.
                if !self.cmd_set {
                    self.config.cmd = None;
                }
                self.push(node, Op::Config, format!("ENTRYPOINT {}", json_list(&argv)));
            }
            Instruction::Shell(argv) => {
                let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
                self.push(node, Op::Config, format!("SHELL {}", json_list(&argv)));
                self.config.shell = Some(argv);
            }
            Instruction::Onbuild(o) => {
                self.config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(o.expression.clone());
                self.push(node, Op::Config, format!("ONBUILD {}", o.expression));
            }
            Instruction::Healthcheck(h) => {
                let hc = match h {
                    Healthcheck::None => HealthConfig {
                        test: Some(vec!["NONE".into()]),
                        ..Default::default()
                    },
                    Healthcheck::Cmd(c) => {
                        let test = match &c.command {
                            CommandForm::Exec(v) => std::iter::once("CMD".to_string())
                                .chain(v.iter().map(|s| s.to_string()))
                                .collect(),
                            CommandForm::Shell(w) => {
                                vec!["CMD-SHELL".to_string(), w.text.to_string()]
                            }
                        };
                        let ns = |d: &Option<kiln_dockerfile_parser::DurationFlag>| {
                            d.as_ref()
                                .map(|d| i64::try_from(d.value.as_nanos()).unwrap_or(i64::MAX))
                        };
                        HealthConfig {
                            test: Some(test),
                            interval: ns(&c.interval),
                            timeout: ns(&c.timeout),
                            start_period: ns(&c.start_period),
                            start_interval: ns(&c.start_interval),
                            retries: c.retries.map(i64::from),
                            ..Default::default()
                        }
                    }
                };
                self.config.healthcheck = Some(hc);
                self.push(node, Op::Config, text.clone());
            }
            Instruction::Run(run) => self.dispatch_run(node, run)?,
            Instruction::Copy(c) => self.dispatch_copy(node, c, false)?,
            Instruction::Add(c) => self.dispatch_copy(node, c, true)?,
        }
        Ok(())
    }

    pub(super) fn source_ref(&mut self, from: &str, span: Span) -> Result<SourceRef, PlanError> {
        let source = super::names::source_for(self.input.df, self.input.opts, from, span)?;
        match &source {
            SourceRef::Stage(i) => {
                self.depends_on.insert(*i);
                self.dep_spans.entry(*i).or_insert(span);
            }
            SourceRef::Image(r) => {
                self.image_sources.insert(r.clone());
            }
            SourceRef::Context | SourceRef::Dir(_) => {}
        }
        Ok(source)
    }

    fn dispatch_copy(
        &mut self,
        node: &InstructionNode,
        c: &CopyInstruction,
        add: bool,
    ) -> Result<(), PlanError> {
        let kw = if add { "ADD" } else { "COPY" };
        let from = match &c.from {
            Some(w) => {
                let v = self.expand(w, "--from")?;
                self.source_ref(&v, w.span)?
            }
            None => SourceRef::Context,
        };
        let mut sources = Vec::new();
        for w in &c.sources {
            if c.json_form {
                sources.push(self.expand(w, kw)?);
            } else {
                sources.extend(self.expand_words(w, kw)?);
            }
        }
        let mut inline = Vec::new();
        for h in &c.heredocs {
            let body = h.body().into_owned();
            let content = if h.expand {
                self.expand(&Word::new(body, h.body_span), "heredoc")?
            } else {
                body
            };
            inline.push(InlineFile {
                name: h.name.to_string(),
                content,
            });
        }
        let dest_raw = self.expand(&c.dest, &format!("{kw} destination"))?;
        if dest_raw.is_empty() {
            return Err(PlanError::Invalid {
                message: format!("{kw} requires a destination"),
                span: c.dest.span,
            });
        }
        let trailing = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let mut dest = clean_abs(&self.abs_path(&dest_raw));
        if trailing && dest != "/" {
            dest.push('/');
        }
        let opt = |s: &Self, w: &Option<Word>, what: &str| -> Result<Option<String>, PlanError> {
            w.as_ref().map(|w| s.expand(w, what)).transpose()
        };
        let op = CopyOp {
            add,
            from,
            sources,
            inline,
            dest,
            chown: opt(self, &c.chown, "--chown")?,
            chmod: opt(self, &c.chmod, "--chmod")?,
            exclude: c
                .exclude
                .iter()
                .map(|w| self.expand(w, "--exclude"))
                .collect::<Result<_, _>>()?,
            parents: c.parents,
            link: c.link,
            checksum: opt(self, &c.checksum, "--checksum")?,
            unpack: c.unpack,
            keep_git_dir: c.keep_git_dir.unwrap_or(false),
        };
        self.push(node, Op::Copy(op), node.original().to_string());
        Ok(())
    }
}

fn arg_history(args: &[(Word, Option<Word>)]) -> String {
    args.iter()
        .map(|(n, d)| match d {
            Some(d) => format!("{}={}", n.text, d.text),
            None => n.text.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Expands an EXPOSE word into `port/proto` keys; ranges give one key per port.
pub(crate) fn parse_ports(spec: &str) -> Option<Vec<String>> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    // `ip:hostport:containerport` forms are not valid in EXPOSE; Docker keeps only the last part.
    let ports = ports.rsplit(':').next()?;
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?),
        None => {
            let p = ports.parse::<u16>().ok()?;
            (p, p)
        }
    };
    if lo > hi {
        return None;
    }
    Some((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

fn valid_signal(sig: &str) -> bool {
    if let Ok(n) = sig.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = sig.strip_prefix("SIG").unwrap_or(sig);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    NAMES.contains(&name) || name.starts_with("RTMIN") || name.starts_with("RTMAX")
}
