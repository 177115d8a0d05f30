//! The planner: a parsed Dockerfile, build args and the configs of base images in, a
//! [`BuildGraph`] out. Pure and synchronous: it touches no filesystem and no network.
//!
//! Planning runs in two phases because base images must be resolved (which needs I/O) before their
//! configs can be inherited: [`base_images`] lists the images that `FROM` lines need (expanded with
//! global args), the caller resolves them, then [`plan`] builds the graph
//! (`tests::a_dockerfile_planned` shows it).

mod copy;
mod dispatch;
mod frontend;
pub mod limits;
mod names;
mod run;
mod scope;
mod stage;

use std::collections::{BTreeMap, BTreeSet};

use kiln_dockerfile_parser::block::{BlockRef, View};
use kiln_dockerfile_parser::shell::{ExpandError, Expander};
use kiln_dockerfile_parser::{Dockerfile, ParseError, Span};

pub use crate::image::Platform;
pub use crate::image::{ContainerConfig, DEFAULT_PATH};
#[cfg(test)]
use frontend::SYNTAX_ARG;
pub use scope::platform_args;

use crate::context::BuildContexts;
use crate::graph::{Base, BuildGraph, ImageRef, Network, Origin, StagePlan};
use scope::ArgUsage;

/// What the build was asked for, besides the Dockerfile. Its `Debug` redacts the userinfo of
/// URLs in build args (proxy args carry credentials).
#[derive(Clone)]
pub struct PlanOptions {
    /// `--build-arg K=V`
    pub build_args: BTreeMap<String, String>,
    /// `--target`
    pub target: Option<String>,
    /// The platform built for (`TARGETPLATFORM`); the host's by default.
    pub platform: Platform,
    /// The platform building (`BUILDPLATFORM`): the host's.
    pub build_platform: Platform,
    /// `--label K=V`, applied to the final image.
    pub labels: BTreeMap<String, String>,
    /// `--network`: the default network mode of RUN steps.
    pub network: Network,
    /// `--allow`: what the person running the build grants the Dockerfile beyond the sandbox.
    pub allow: Entitlements,
    /// `--build-context NAME=...`: named contexts, which override stages and images of the
    /// same name.
    pub contexts: BuildContexts,
    /// `--add-host`, `--shm-size`, `--ulimit`: given to every RUN step.
    pub step_settings: crate::exec::StepSettings,
    /// `--ignore-syntax`: build with kiln's own frontend even when `# syntax=` (or the
    /// `BUILDKIT_SYNTAX` build arg) names another frontend image.
    pub ignore_syntax: bool,
}

/// Privileges a Dockerfile may ask for only when the person running the build grants them
/// (`kiln build --allow ...`, BuildKit's entitlements).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entitlements {
    /// `security.insecure`: `RUN --security=insecure` runs with every capability and no
    /// system-call filter.
    pub security_insecure: bool,
    /// `network.host`: `RUN --network=host` in the Dockerfile uses the host's network.
    pub network_host: bool,
}

impl Entitlements {
    /// Parses one `--allow` value (`security.insecure`), adding it to the set.
    pub fn grant(&mut self, name: &str) -> Result<(), String> {
        match name {
            "security.insecure" => self.security_insecure = true,
            "network.host" => self.network_host = true,
            other => {
                return Err(format!(
                    "unknown entitlement {other:?} (known: security.insecure, network.host)"
                ));
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for PlanOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanOptions")
            .field("build_args", &crate::secret::RedactedMap(&self.build_args))
            .field("target", &self.target)
            .field("platform", &self.platform)
            .field("build_platform", &self.build_platform)
            .field("labels", &self.labels)
            .field("network", &self.network)
            .field("ignore_syntax", &self.ignore_syntax)
            .finish()
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::host(),
            build_platform: Platform::host(),
            labels: BTreeMap::new(),
            network: Network::Default,
            allow: Entitlements::default(),
            contexts: BuildContexts::new(),
            step_settings: crate::exec::StepSettings::default(),
            ignore_syntax: false,
        }
    }
}

/// Why a Dockerfile cannot be planned. Every variant that comes from the Dockerfile carries the
/// span to underline.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A variable expansion failed (`${X:?required}`, bad syntax).
    #[error("{what}")]
    Expand {
        /// What was being expanded.
        what: String,
        /// Where.
        span: Span,
        /// Why.
        #[source]
        source: ExpandError,
    },
    /// `--target` names no stage.
    #[error("target stage \"{name}\" could not be found (stages: {stages})")]
    UnknownTarget {
        /// The name asked for.
        name: String,
        /// The stage names that exist, comma-separated.
        stages: String,
    },
    /// A `--from` or mount `from=` forms a cycle, or names a stage index out of range.
    #[error("{message}")]
    StageReference {
        /// What is wrong.
        message: String,
        /// Where.
        span: Span,
    },
    /// An instruction argument is invalid after expansion (a port, a signal, a path).
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// Where.
        span: Span,
    },
    /// The Dockerfile names a host path (`oci-layout://`, `oci-archive:`, ...): local sources
    /// come only from `--build-context`.
    #[error(
        "{what} {reference} names a host path, which a Dockerfile cannot do: pass it with \
         `--build-context NAME=oci-layout://DIR[:TAG]` (or `NAME=DIR` for a directory) and \
         refer to it as NAME"
    )]
    HostPath {
        /// `FROM` or `--from`.
        what: String,
        /// The reference as written (expanded).
        reference: String,
        /// Where.
        span: Span,
    },
    /// Stages depend on each other in a cycle (through FROM, `COPY --from` or mount `from=`).
    #[error("stages depend on each other in a cycle: {}", cycle_text(stages))]
    StageCycle {
        /// The stages of the cycle in dependency order, each with the line of its FROM.
        stages: Vec<(String, usize)>,
        /// The reference from the first stage to the next.
        span: Span,
    },
    /// A base image's config was not given to the planner.
    #[error("base image {reference} was not resolved")]
    UnresolvedImage {
        /// The reference.
        reference: String,
        /// The FROM line.
        span: Span,
    },
    /// An ONBUILD trigger inherited from a base image does not parse.
    #[error("ONBUILD trigger {trigger:?} of base image {image} is invalid")]
    Onbuild {
        /// The base image.
        image: String,
        /// The trigger text.
        trigger: String,
        /// The FROM line that inherited it.
        span: Span,
        /// The parse error within the trigger.
        #[source]
        source: Box<ParseError>,
    },
    /// The Dockerfile names a frontend image other than BuildKit's Dockerfile frontend 1.x.
    #[error(
        "{origin} names the frontend image {reference}, but kiln runs only its own Dockerfile \
         frontend (BuildKit's syntax 1.x): build with --ignore-syntax to use it anyway"
    )]
    Frontend {
        /// The image named.
        reference: String,
        /// `# syntax= (line N)` or `--build-arg BUILDKIT_SYNTAX`.
        origin: String,
        /// The directive line (`None` when the build arg named it).
        span: Option<Span>,
    },
    /// The Dockerfile has no stage to build.
    #[error("the Dockerfile has no FROM instruction")]
    NoStage,
    /// The expanded values of the Dockerfile and its RUN steps' arguments and environments add
    /// up to more than `limits::MAX_EXPANDED_TOTAL`.
    #[error(
        "the Dockerfile's expanded values and RUN environments add up to more than the limit of \
         {limit} bytes per Dockerfile"
    )]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The instruction that passed it.
        span: Span,
    },
    /// A RUN's command or environment is larger than the kernel accepts.
    #[error("{message}")]
    ArgumentTooLong {
        /// What is too large, how large, and the kernel's limit.
        message: String,
        /// The line that set the variable, or the RUN.
        span: Span,
    },
}

impl PlanError {
    /// The Dockerfile span the error points at, if it comes from the Dockerfile.
    pub fn span(&self) -> Option<Span> {
        match self {
            PlanError::Expand { span, .. }
            | PlanError::StageReference { span, .. }
            | PlanError::HostPath { span, .. }
            | PlanError::StageCycle { span, .. }
            | PlanError::Invalid { span, .. }
            | PlanError::UnresolvedImage { span, .. }
            | PlanError::Onbuild { span, .. }
            | PlanError::TooLarge { span, .. }
            | PlanError::ArgumentTooLong { span, .. } => Some(*span),
            PlanError::Frontend { span, .. } => *span,
            PlanError::UnknownTarget { .. } | PlanError::NoStage => None,
        }
    }
}

fn cycle_text(stages: &[(String, usize)]) -> String {
    let mut parts: Vec<String> = stages
        .iter()
        .map(|(name, line)| format!("{name} (line {line})"))
        .collect();
    if let Some(first) = parts.first().cloned() {
        parts.push(first);
    }
    parts.join(" -> ")
}

/// A base image as the planner needs it: its container config for a platform.
pub type ImageLookup<'a> = dyn Fn(&ImageRef, &Platform) -> Option<ContainerConfig> + 'a;

pub(crate) fn origin_of_block(block: BlockRef<'_>) -> Origin {
    Origin {
        span: block.span(),
        start_line: block.start_line(),
        end_line: block.end_line(),
        text: block.original().to_string(),
    }
}

/// A stage's FROM image word (unexpanded) and its span.
fn from_image(df: &Dockerfile, index: usize) -> Option<(&str, Span)> {
    match df.stage(index)?.from().view() {
        View::From { image, .. } => Some((image.text, image.span)),
        _ => None,
    }
}

/// The global scope: declared global ARGs with values, plus the platform args.
fn global_scope(
    df: &Dockerfile,
    opts: &PlanOptions,
    usage: &mut ArgUsage,
    budget: &limits::Budget,
) -> Result<Vec<(String, Option<String>)>, PlanError> {
    let expander = Expander::new(df.escape);
    let mut globals: Vec<(String, Option<String>)> =
        platform_args(&opts.platform, &opts.build_platform)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
    for block in df.global_args() {
        let View::Arg(words) = block.view() else {
            continue;
        };
        for word in words {
            let (name, default) = stage::arg_parts(word);
            usage.declared.insert(name.text.to_string());
            let value = match opts.build_args.get(name.text) {
                Some(v) => Some(v.clone()),
                None => match default {
                    Some(word) => {
                        let lookup = |k: &str| {
                            globals
                                .iter()
                                .find(|(n, _)| n == k)
                                .and_then(|(_, v)| v.clone())
                        };
                        let value = expander
                            .expand(word.text, &lookup)
                            .map_err(|source| PlanError::Expand {
                                what: format!("ARG {}", name.text),
                                span: word.span,
                                source,
                            })?
                            .value;
                        budget.take(value.len(), word.span)?;
                        Some(value)
                    }
                    None => None,
                },
            };
            globals.retain(|(n, _)| n != name.text);
            globals.push((name.text.to_string(), value));
        }
    }
    Ok(globals)
}

/// What a FROM line refers to after expansion with global args.
fn resolve_from(
    df: &Dockerfile,
    index: usize,
    globals: &[(String, Option<String>)],
    opts: &PlanOptions,
) -> Result<Base, PlanError> {
    let Some((image_text, image_span)) = from_image(df, index) else {
        return Err(PlanError::NoStage);
    };
    let lookup = |k: &str| {
        globals
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.clone())
    };
    let image = Expander::new(df.escape)
        .expand(image_text, &lookup)
        .map_err(|source| PlanError::Expand {
            what: "FROM".into(),
            span: image_span,
            source,
        })?
        .value;
    if image.is_empty() {
        return Err(PlanError::Invalid {
            message: "base name (FROM) should not be blank".into(),
            span: image_span,
        });
    }
    names::base_for(df, opts, index, &image, image_span)
}

/// Phase one: the base image references the stages' FROM lines need, after global-arg expansion,
/// each with the platform it is needed for and the span of its FROM line. Stages built from
/// `scratch` or another stage need none.
pub fn base_images(
    df: &Dockerfile,
    opts: &PlanOptions,
) -> Result<Vec<(ImageRef, Platform, Span)>, PlanError> {
    // A frontend kiln cannot run fails the build before any base image is pulled.
    frontend::check(df, opts)?;
    let mut usage = ArgUsage::default();
    let globals = global_scope(df, opts, &mut usage, &limits::Budget::default())?;
    let bases: Vec<Base> = (0..df.stage_count())
        .map(|i| resolve_from(df, i, &globals, opts))
        .collect::<Result<_, _>>()?;
    let platforms = stage_platforms(df, &bases, &globals, opts)?;
    let mut out: Vec<(ImageRef, Platform, Span)> = Vec::new();
    for (i, stage) in df.stages().enumerate() {
        if let Base::Image(r) = &bases[i]
            && !out.iter().any(|(x, p, _)| x == r && p == &platforms[i])
        {
            out.push((r.clone(), platforms[i].clone(), stage.from().span()));
        }
    }
    Ok(out)
}

/// The platform of each stage: its `FROM --platform=` (expanded with the global args, which
/// include `BUILDPLATFORM`), else the platform of the stage it starts from, else the target
/// platform, as BuildKit decides it.
fn stage_platforms(
    df: &Dockerfile,
    bases: &[Base],
    globals: &[(String, Option<String>)],
    opts: &PlanOptions,
) -> Result<Vec<Platform>, PlanError> {
    let lookup = |k: &str| {
        globals
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.clone())
    };
    let mut explicit: Vec<Option<Platform>> = Vec::with_capacity(df.stage_count());
    for stage in df.stages() {
        let Some(word) = stage.from().flag_value("platform") else {
            explicit.push(None);
            continue;
        };
        let text = Expander::new(df.escape)
            .expand(word.text, &lookup)
            .map_err(|source| PlanError::Expand {
                what: "FROM --platform".into(),
                span: word.span,
                source,
            })?
            .value;
        let platform = Platform::parse(&text).ok_or_else(|| PlanError::Invalid {
            message: format!(
                "FROM --platform={text:?} is not a platform: expected OS/ARCH[/VARIANT]"
            ),
            span: word.span,
        })?;
        explicit.push(Some(platform));
    }
    // A stage without --platform takes its base stage's; chains are followed to their start
    // (a cycle is reported by the planner, so it only needs to end here).
    let mut out = Vec::with_capacity(df.stage_count());
    for i in 0..df.stage_count() {
        let mut at = i;
        let mut hops = 0;
        let platform = loop {
            if let Some(p) = &explicit[at] {
                break p.clone();
            }
            match bases.get(at) {
                Some(Base::Stage(b)) if hops <= df.stage_count() => {
                    at = *b;
                    hops += 1;
                }
                _ => break opts.platform.normalized(),
            }
        };
        out.push(platform);
    }
    Ok(out)
}

/// The span of a stage's FROM image word.
fn from_span(df: &Dockerfile, index: usize) -> Span {
    from_image(df, index).map_or_else(
        || df.stage(index).map_or(Span::default(), |s| s.from().span()),
        |(_, span)| span,
    )
}

/// Phase two: builds the graph. `images` returns the container config of a base image reference
/// returned by [`base_images`].
pub fn plan(
    df: &Dockerfile,
    opts: &PlanOptions,
    images: &ImageLookup<'_>,
) -> Result<BuildGraph, PlanError> {
    if df.stage_count() == 0 {
        return Err(PlanError::NoStage);
    }
    let frontend_notice = frontend::check(df, opts)?;
    let mut usage = ArgUsage::default();
    let budget = limits::Budget::default();
    let globals = global_scope(df, opts, &mut usage, &budget)?;

    let target = match &opts.target {
        None => df.stage_count() - 1,
        Some(name) => {
            df.stage_by_name(name)
                .map(|(i, _)| i)
                .ok_or_else(|| PlanError::UnknownTarget {
                    name: name.clone(),
                    stages: df
                        .stages()
                        .filter_map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?
        }
    };

    // A name that is a stage is that stage wherever it is defined (as BuildKit), so stages are
    // planned in dependency order: a stage's FROM chain first (a stage inherits its base's
    // config). Every stage up to the target is planned (so its errors show, as before), and so
    // is every later stage they reach; then only what the target reaches is kept.
    let bases: Vec<Base> = (0..df.stage_count())
        .map(|i| resolve_from(df, i, &globals, opts))
        .collect::<Result<_, _>>()?;
    let platforms = stage_platforms(df, &bases, &globals, opts)?;
    let mut planned: BTreeMap<usize, StagePlan> = BTreeMap::new();
    let mut edges: BTreeMap<usize, BTreeMap<usize, Span>> = BTreeMap::new();
    let mut deferred: BTreeMap<usize, PlanError> = BTreeMap::new();
    let mut queue: Vec<usize> = (0..=target).rev().collect();
    while let Some(next) = queue.pop() {
        if planned.contains_key(&next) {
            continue;
        }
        let mut chain = vec![next];
        while let Some(Base::Stage(b)) = chain.last().map(|&l| &bases[l]) {
            if planned.contains_key(b) {
                break;
            }
            if let Some(pos) = chain.iter().position(|c| c == b) {
                let span = from_span(df, chain[pos]);
                return Err(names::cycle_error(df, &chain[pos..], span));
            }
            chain.push(*b);
        }
        for &index in chain.iter().rev() {
            let (stage_plan, deps, stage_deferred) = dispatch::plan_stage(
                stage::StageInput {
                    df,
                    index,
                    base: bases[index].clone(),
                    globals: &globals,
                    opts,
                    is_target: index == target,
                    budget: &budget,
                    platform: platforms[index].clone(),
                },
                &planned,
                images,
                &mut usage,
            )?;
            queue.extend(stage_plan.depends_on.iter().copied());
            let mut deps = deps;
            if let Base::Stage(b) = bases[index] {
                deps.entry(b).or_insert_with(|| from_span(df, index));
            }
            edges.insert(index, deps);
            if let Some(e) = stage_deferred {
                deferred.insert(index, e);
            }
            planned.insert(index, stage_plan);
        }
    }
    if let Some((cycle, span)) = names::find_cycle(&edges) {
        return Err(names::cycle_error(df, &cycle, span));
    }
    let mut needed: BTreeSet<usize> = BTreeSet::new();
    let mut stack = vec![target];
    while let Some(i) = stack.pop() {
        if !needed.insert(i) {
            continue;
        }
        if let Some(p) = planned.get(&i) {
            stack.extend(p.depends_on.iter().copied());
        }
    }
    planned.retain(|i, _| needed.contains(i));
    // Errors that count only in stages the build runs (as BuildKit checks mount options).
    if let Some(e) = deferred.into_iter().find(|(i, _)| needed.contains(i)) {
        return Err(e.1);
    }

    let mut warnings: Vec<String> = frontend_notice.into_iter().collect();
    for name in usage.unused(&opts.build_args) {
        warnings.push(format!("build arg {name} was given but no ARG declares it"));
    }
    Ok(BuildGraph {
        stages: planned,
        target,
        warnings,
    })
}

#[cfg(test)]
mod platform_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod docker_rules_tests;
#[cfg(test)]
#[path = "limits_tests.rs"]
mod limits_tests;
