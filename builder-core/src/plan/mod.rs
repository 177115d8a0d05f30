//! The planner: a parsed Dockerfile, build args and the configs of base images in, a
//! [`BuildGraph`] out. Pure and synchronous: it touches no filesystem and no network.
//!
//! Planning runs in two phases because base images must be resolved (which needs I/O) before their
//! configs can be inherited: [`base_images`] lists the images that `FROM` lines need (expanded with
//! global args), the caller resolves them, then [`plan`] builds the graph.
//!
//! ```
//! use kiln_builder_core::plan::{plan, PlanOptions};
//! let df = kiln_dockerfile_parser::parse("FROM scratch\nENV A=1\nCMD [\"/app\"]\n").unwrap();
//! let graph = plan(&df, &PlanOptions::default(), &|_| None).unwrap();
//! let target = graph.target_stage();
//! assert_eq!(target.config.env_get("A"), Some("1"));
//! // Like Docker, an image without PATH gets the default one.
//! assert!(target.config.env_get("PATH").is_some());
//! ```

mod dispatch;
pub mod limits;
mod run;
mod scope;

use std::collections::{BTreeMap, BTreeSet};

use kiln_dockerfile_parser::shell::{ExpandError, Expander};
use kiln_dockerfile_parser::{Dockerfile, Instruction, InstructionNode, ParseError, Span};

pub use crate::image::{ContainerConfig, DEFAULT_PATH, DEFAULT_SHELL};
pub use scope::{PROXY_ARGS, Platform, platform_args};

use crate::graph::{Base, BuildGraph, Network, Origin, StagePlan};
use scope::ArgUsage;

/// What the build was asked for, besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// `--build-arg K=V`
    pub build_args: BTreeMap<String, String>,
    /// `--target`
    pub target: Option<String>,
    /// The platform built for (only `linux/amd64` is supported).
    pub platform: Platform,
    /// `--label K=V`, applied to the final image.
    pub labels: BTreeMap<String, String>,
    /// `--network`: the default network mode of RUN steps.
    pub network: Network,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::linux_amd64(),
            labels: BTreeMap::new(),
            network: Network::None,
        }
    }
}

/// Why a Dockerfile cannot be planned. Every variant that comes from the Dockerfile carries the
/// span to underline.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A variable expansion failed (`${X:?required}`, bad syntax).
    #[error("{what}: {source}")]
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
    /// A base image's config was not given to the planner.
    #[error("base image {reference} was not resolved")]
    UnresolvedImage {
        /// The reference.
        reference: String,
        /// The FROM line.
        span: Span,
    },
    /// An ONBUILD trigger inherited from a base image does not parse.
    #[error("ONBUILD trigger {trigger:?} of base image {image} is invalid: {source}")]
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
    /// The Dockerfile has no stage to build.
    #[error("the Dockerfile has no FROM instruction")]
    NoStage,
    /// The expanded values of the Dockerfile and its RUN steps' arguments and environments add
    /// up to more than [`limits::MAX_EXPANDED_TOTAL`].
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
            | PlanError::Invalid { span, .. }
            | PlanError::UnresolvedImage { span, .. }
            | PlanError::Onbuild { span, .. }
            | PlanError::TooLarge { span, .. }
            | PlanError::ArgumentTooLong { span, .. } => Some(*span),
            PlanError::UnknownTarget { .. } | PlanError::NoStage => None,
        }
    }
}

/// A base image as the planner needs it: its container config.
pub type ImageLookup<'a> = dyn Fn(&str) -> Option<ContainerConfig> + 'a;

pub(crate) fn origin_of(node: &InstructionNode) -> Origin {
    Origin {
        span: node.span(),
        start_line: node.start_line(),
        end_line: node.end_line(),
        text: node.original().to_string(),
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
        platform_args(&opts.platform, &Platform::linux_amd64())
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
    for node in &df.global_args {
        let Instruction::Arg { args } = &node.instruction else {
            continue;
        };
        for (name, default) in args {
            usage.declared.insert(name.text.clone());
            let value = match opts.build_args.get(&name.text) {
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
                            .expand(&word.text, &lookup)
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
            globals.retain(|(n, _)| n != &name.text);
            globals.push((name.text.clone(), value));
        }
    }
    Ok(globals)
}

/// What a FROM line refers to after expansion with global args.
fn resolve_from(
    df: &Dockerfile,
    index: usize,
    globals: &[(String, Option<String>)],
) -> Result<Base, PlanError> {
    let stage = &df.stages[index];
    let Some(from) = stage.from_instruction() else {
        return Err(PlanError::NoStage);
    };
    let lookup = |k: &str| {
        globals
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.clone())
    };
    let image = Expander::new(df.escape)
        .expand(&from.image.text, &lookup)
        .map_err(|source| PlanError::Expand {
            what: "FROM".into(),
            span: from.image.span,
            source,
        })?
        .value;
    if image.is_empty() {
        return Err(PlanError::Invalid {
            message: "base name (FROM) should not be blank".into(),
            span: from.image.span,
        });
    }
    let lower = image.to_ascii_lowercase();
    // Only earlier stages can be bases; a later stage's name is an image reference, as BuildKit
    // treats it.
    if let Some(pos) = df.stages[..index]
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Ok(Base::Stage(pos));
    }
    if lower == "scratch" {
        return Ok(Base::Scratch);
    }
    Ok(Base::Image(image))
}

/// Phase one: the base image references the stages' FROM lines need, after global-arg expansion,
/// each with the span of its FROM line. Stages built from `scratch` or another stage need none.
pub fn base_images(df: &Dockerfile, opts: &PlanOptions) -> Result<Vec<(String, Span)>, PlanError> {
    let mut usage = ArgUsage::default();
    let globals = global_scope(df, opts, &mut usage, &limits::Budget::default())?;
    let mut out: Vec<(String, Span)> = Vec::new();
    for (i, stage) in df.stages.iter().enumerate() {
        if let Base::Image(r) = resolve_from(df, i, &globals)?
            && !out.iter().any(|(x, _)| x == &r)
        {
            out.push((r, stage.from.span()));
        }
    }
    Ok(out)
}

/// Phase two: builds the graph. `images` returns the container config of a base image reference
/// returned by [`base_images`].
pub fn plan(
    df: &Dockerfile,
    opts: &PlanOptions,
    images: &ImageLookup<'_>,
) -> Result<BuildGraph, PlanError> {
    if df.stages.is_empty() {
        return Err(PlanError::NoStage);
    }
    let mut usage = ArgUsage::default();
    let budget = limits::Budget::default();
    let globals = global_scope(df, opts, &mut usage, &budget)?;

    let target = match &opts.target {
        None => df.stages.len() - 1,
        Some(name) => {
            df.stage_by_name(name)
                .map(|(i, _)| i)
                .ok_or_else(|| PlanError::UnknownTarget {
                    name: name.clone(),
                    stages: df
                        .stages
                        .iter()
                        .filter_map(|s| s.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?
        }
    };

    // Plan every stage up to the target (later stages can never be needed), then keep only those
    // the target reaches.
    let mut planned: BTreeMap<usize, StagePlan> = BTreeMap::new();
    for index in 0..=target {
        let base = resolve_from(df, index, &globals)?;
        let stage_plan = dispatch::plan_stage(
            dispatch::StageInput {
                df,
                index,
                base,
                globals: &globals,
                opts,
                is_target: index == target,
                budget: &budget,
            },
            &planned,
            images,
            &mut usage,
        )?;
        planned.insert(index, stage_plan);
    }

    // Reachability from the target. Stages only ever refer to earlier stages (a name that is
    // not an earlier stage is an image reference), so the graph cannot have cycles.
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

    let mut warnings = Vec::new();
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
mod tests;

#[cfg(test)]
#[path = "limits_tests.rs"]
mod limits_tests;
