//! What a name in `FROM`, `COPY --from` or `RUN --mount=from=` refers to, as BuildKit decides
//! it: a named build context first (it overrides a stage or image of the same name), then a
//! stage wherever it is defined, then `scratch` (FROM only), then an image. A Dockerfile never
//! names a host path: the local schemes are refused and the user is pointed at
//! `--build-context`.

use std::collections::{BTreeMap, BTreeSet};

use kiln_dockerfile_parser::{Dockerfile, Span};

use super::PlanError;
use crate::context::NamedContext;
use crate::graph::{Base, ImageRef, SourceRef};

/// Prefixes of local sources a Dockerfile may not name (kiln read the first three from FROM
/// and `--from` before named contexts existed).
const HOST_PATH_SCHEMES: &[&str] = &[
    "oci-layout:",
    "oci-archive:",
    "docker-archive:",
    "local:",
    "docker-image:",
];

/// Refuses a reference that names a host path or a context scheme.
pub(super) fn refuse_host_path(what: &str, reference: &str, span: Span) -> Result<(), PlanError> {
    let lower = reference.to_ascii_lowercase();
    if HOST_PATH_SCHEMES.iter().any(|s| lower.starts_with(s)) || lower.contains("://") {
        return Err(PlanError::HostPath {
            what: what.to_string(),
            reference: reference.to_string(),
            span,
        });
    }
    Ok(())
}

/// The stage a name refers to, wherever it is defined.
fn stage_named(df: &Dockerfile, name: &str) -> Option<usize> {
    df.stage_by_name(name).map(|(i, _)| i)
}

/// What the FROM image name (expanded) of stage `index` refers to. A stage's own name in its
/// FROM (`FROM golang AS golang`) is the image, as in BuildKit, where the name is defined only
/// after its FROM; any other stage's name is that stage, wherever it is defined.
pub(super) fn base_for(
    df: &Dockerfile,
    opts: &super::PlanOptions,
    index: usize,
    image: &str,
    span: Span,
) -> Result<Base, PlanError> {
    refuse_host_path("FROM", image, span)?;
    if let Some((key, ctx)) = opts.contexts.lookup(image) {
        return match ctx {
            NamedContext::Dir(_) => Err(PlanError::Invalid {
                message: format!(
                    "build context {image} is a directory; FROM needs an image (read its files \
                     with COPY --from={image} or RUN --mount=from={image})"
                ),
                span,
            }),
            NamedContext::OciLayout { .. } => Ok(Base::Image(ImageRef::Layout(key.to_string()))),
            NamedContext::DockerImage(r) => Ok(Base::Image(ImageRef::Reference(r.to_string()))),
        };
    }
    if let Some(pos) = stage_named(df, image).filter(|&pos| pos != index) {
        return Ok(Base::Stage(pos));
    }
    if image.eq_ignore_ascii_case("scratch") {
        return Ok(Base::Scratch);
    }
    Ok(Base::Image(ImageRef::Reference(image.to_string())))
}

/// What a `--from` or mount `from=` value (expanded) refers to.
pub(super) fn source_for(
    df: &Dockerfile,
    opts: &super::PlanOptions,
    from: &str,
    span: Span,
) -> Result<SourceRef, PlanError> {
    refuse_host_path("--from", from, span)?;
    if let Some((key, ctx)) = opts.contexts.lookup(from) {
        return Ok(match ctx {
            NamedContext::Dir(_) => SourceRef::Dir(key.to_string()),
            NamedContext::OciLayout { .. } => SourceRef::Image(ImageRef::Layout(key.to_string())),
            NamedContext::DockerImage(r) => SourceRef::Image(ImageRef::Reference(r.to_string())),
        });
    }
    if let Some(pos) = stage_named(df, from) {
        return Ok(SourceRef::Stage(pos));
    }
    if let Ok(n) = from.parse::<usize>() {
        if n >= df.stage_count() {
            return Err(PlanError::StageReference {
                message: format!(
                    "invalid stage index {n}: the Dockerfile has {} stage(s)",
                    df.stage_count()
                ),
                span,
            });
        }
        return Ok(SourceRef::Stage(n));
    }
    Ok(SourceRef::Image(ImageRef::Reference(from.to_string())))
}

/// A stage as cycle errors name it: its name (or index) and the line of its FROM.
fn stage_label(df: &Dockerfile, i: usize) -> (String, usize) {
    let stage = df.stage(i);
    let name = stage
        .and_then(|s| s.name())
        .map_or_else(|| i.to_string(), str::to_string);
    let line = stage.map_or(0, |s| s.from().start_line());
    (name, line)
}

/// The error for a cycle through `stages` (in dependency order, the first repeated at the end
/// implicitly), pointing at the first stage's reference to the next one.
pub(super) fn cycle_error(df: &Dockerfile, stages: &[usize], span: Span) -> PlanError {
    PlanError::StageCycle {
        stages: stages.iter().map(|&i| stage_label(df, i)).collect(),
        span,
    }
}

/// Finds a cycle in the dependency edges of the planned stages (each edge with the span of the
/// reference that made it). Returns the stages of the cycle and the span of its first edge.
pub(super) fn find_cycle(
    edges: &BTreeMap<usize, BTreeMap<usize, Span>>,
) -> Option<(Vec<usize>, Span)> {
    // Iterative depth-first search with colours; the path is the grey stack.
    let mut done: BTreeSet<usize> = BTreeSet::new();
    for &start in edges.keys() {
        if done.contains(&start) {
            continue;
        }
        let mut path: Vec<usize> = vec![start];
        let mut iters: Vec<Vec<usize>> = vec![edges[&start].keys().copied().collect()];
        while let Some(top) = iters.last_mut() {
            let Some(next) = top.pop() else {
                iters.pop();
                if let Some(p) = path.pop() {
                    done.insert(p);
                }
                continue;
            };
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let cycle = path[pos..].to_vec();
                let first = cycle[0];
                let second = cycle.get(1).copied().unwrap_or(first);
                let span = edges
                    .get(&first)
                    .and_then(|e| e.get(&second))
                    .copied()
                    .unwrap_or_default();
                return Some((cycle, span));
            }
            if done.contains(&next) {
                continue;
            }
            path.push(next);
            iters.push(
                edges
                    .get(&next)
                    .map(|e| e.keys().copied().collect())
                    .unwrap_or_default(),
            );
        }
    }
    None
}
