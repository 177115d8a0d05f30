//! Planning one stage: each instruction's effect on the config, and the steps it adds.

use std::collections::{BTreeMap, BTreeSet};

use kiln_dockerfile_parser::Span;
use kiln_dockerfile_parser::block::{BlockRef, CommandView, Pairs, View};
use kiln_dockerfile_parser::shell::Expander;

use super::scope::{ArgUsage, StageScope};
use super::stage::{StageInput, StageState, arg_parts, clean_abs};
use super::{ContainerConfig, DEFAULT_PATH, ImageLookup, PlanError, origin_of_block};
use crate::graph::{Base, Op, StagePlan};
use crate::image::Healthcheck as HealthConfig;

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
        at_from: None,
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
        let Some(block) = parsed.stages().next().and_then(|s| s.instructions().next()) else {
            continue;
        };
        // Errors in a trigger point at the FROM line that inherited it.
        st.at_from = Some((
            from_origin.span,
            from_origin.start_line,
            from_origin.end_line,
        ));
        let planned = st.dispatch(block, usage);
        st.at_from = None;
        planned?;
    }
    for block in stage.instructions() {
        st.dispatch(block, usage)?;
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

/// An ENV or LABEL pair expanded: its name, its value, and the span of the value as written.
type ExpandedPair = (String, String, Span);

impl StageState<'_> {
    /// The `key=value` pairs of ENV or LABEL (`keyword`) expanded, each with the span of its
    /// value, and the instruction as history shows it; a blank name is an error. Expansion
    /// reads the scope as it was before the instruction.
    fn expand_pairs(
        &self,
        keyword: &str,
        pairs: Pairs<'_>,
    ) -> Result<(Vec<ExpandedPair>, String), PlanError> {
        let mut expanded = Vec::new();
        let mut parts = Vec::new();
        for (k, v) in pairs {
            let key = self.expand(k, &format!("{keyword} key"))?;
            let value = self.expand(v, &format!("{keyword} {key}"))?;
            if key.is_empty() {
                return Err(PlanError::Invalid {
                    message: format!("{keyword} names can not be blank"),
                    span: k.span,
                });
            }
            parts.push(format!("{key}={value}"));
            expanded.push((key, value, v.span));
        }
        Ok((expanded, format!("{keyword} {}", parts.join(" "))))
    }

    fn dispatch(&mut self, block: BlockRef<'_>, usage: &mut ArgUsage) -> Result<(), PlanError> {
        match block.view() {
            View::From { .. } => {}
            View::Arg(words) => {
                let mut history = Vec::with_capacity(words.len());
                for w in words {
                    let (name, default) = arg_parts(w);
                    usage.declared.insert(name.text.to_string());
                    let value = match self.input.opts.build_args.get(name.text) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(w) => Some(self.expand(w, &format!("ARG {}", name.text))?),
                            None => self
                                .input
                                .globals
                                .iter()
                                .find(|(n, _)| n == name.text)
                                .and_then(|(_, v)| v.clone()),
                        },
                    };
                    let at = default.map_or(name.span, |d| d.span);
                    self.set_at.insert(name.text.to_string(), at);
                    self.scope.declare(name.text, value);
                    history.push(match default {
                        Some(d) => format!("{}={}", name.text, d.text),
                        None => name.text.to_string(),
                    });
                }
                self.push(block, Op::Config, format!("ARG {}", history.join(" ")));
            }
            View::Pairs {
                label: false,
                pairs,
            } => {
                // Docker's rule: every pair is expanded against the environment as it was
                // before this instruction (`ENV abc=bye def=$abc` sees the old `abc`).
                let (expanded, history) = self.expand_pairs("ENV", pairs)?;
                for (key, value, at) in expanded {
                    self.config.env_set(&key, &value);
                    self.set_at.insert(key, at);
                }
                self.push(block, Op::Config, history);
            }
            View::Pairs { label: true, pairs } => {
                let (expanded, history) = self.expand_pairs("LABEL", pairs)?;
                let labels = self.config.labels.get_or_insert_with(Default::default);
                for (key, value, _) in expanded {
                    labels.insert(key, value);
                }
                self.push(block, Op::Config, history);
            }
            View::Maintainer(name) => {
                self.author = Some(name.text.to_string());
                self.push(block, Op::Config, format!("MAINTAINER {}", name.text));
            }
            View::Workdir(w) => {
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
                self.push(block, op, format!("WORKDIR {abs}"));
            }
            View::User(w) => {
                let user = self.expand(w, "USER")?;
                if user.is_empty() {
                    return Err(PlanError::Invalid {
                        message: "USER cannot be empty".into(),
                        span: w.span,
                    });
                }
                self.config.user = Some(user.clone());
                self.push(block, Op::Config, format!("USER {user}"));
            }
            View::Expose(words) => {
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
                self.push(block, Op::Config, format!("EXPOSE {}", ports.join(" ")));
            }
            View::Volume(words) => {
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
                self.push(block, Op::Config, format!("VOLUME [{}]", vols.join(" ")));
            }
            View::Stopsignal(w) => {
                let sig = self.expand(w, "STOPSIGNAL")?;
                if !valid_signal(&sig) {
                    return Err(PlanError::Invalid {
                        message: format!("invalid STOPSIGNAL {sig:?}"),
                        span: w.span,
                    });
                }
                self.config.stop_signal = Some(sig.clone());
                self.push(block, Op::Config, format!("STOPSIGNAL {sig}"));
            }
            View::Cmd(form) => {
                let argv = self.command_argv(&form);
                self.config.cmd = Some(argv.clone());
                self.cmd_set = true;
                self.push(block, Op::Config, format!("CMD {}", json_list(&argv)));
            }
            View::Entrypoint(form) => {
                let argv = self.command_argv(&form);
                self.config.entrypoint = Some(argv.clone());
                // An inherited CMD is reset by ENTRYPOINT; one set in this stage is kept.
                if !self.cmd_set {
                    self.config.cmd = None;
                }
                self.push(
                    block,
                    Op::Config,
                    format!("ENTRYPOINT {}", json_list(&argv)),
                );
            }
            View::Shell(words) => {
                let argv: Vec<String> = words.map(|w| w.text.to_string()).collect();
                self.push(block, Op::Config, format!("SHELL {}", json_list(&argv)));
                self.config.shell = Some(argv);
            }
            View::Onbuild(_) => {
                let expression = block.onbuild_expression();
                self.config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(expression.clone());
                self.push(block, Op::Config, format!("ONBUILD {expression}"));
            }
            View::Healthcheck(check) => {
                let hc = match check {
                    None => HealthConfig {
                        test: Some(vec!["NONE".into()]),
                        ..Default::default()
                    },
                    Some(command) => {
                        let test = match command {
                            CommandView::Exec(v) => std::iter::once("CMD".to_string())
                                .chain(v.map(|w| w.text.to_string()))
                                .collect(),
                            CommandView::Shell(w) => {
                                vec!["CMD-SHELL".to_string(), w.text.to_string()]
                            }
                        };
                        let ns = |name: &str| {
                            block
                                .healthcheck_duration(name)
                                .map(|d| i64::try_from(d.value.as_nanos()).unwrap_or(i64::MAX))
                        };
                        HealthConfig {
                            test: Some(test),
                            interval: ns("interval"),
                            timeout: ns("timeout"),
                            start_period: ns("start-period"),
                            start_interval: ns("start-interval"),
                            retries: block.healthcheck_retries().map(i64::from),
                            ..Default::default()
                        }
                    }
                };
                self.config.healthcheck = Some(hc);
                self.push(block, Op::Config, block.original().to_string());
            }
            View::Run(command) => self.dispatch_run(block, command)?,
            View::Copy {
                add,
                sources,
                dest,
                json,
            } => self.dispatch_copy(block, add, sources, dest, json)?,
        }
        Ok(())
    }
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
