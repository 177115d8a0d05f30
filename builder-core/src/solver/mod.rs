//! The solver: runs a [`BuildGraph`], each filesystem step first looked up in the cache.
//!
//! It knows the graph, the [`CacheStore`] and the [`Worker`] trait, never a concrete snapshotter
//! or executor. Stages whose dependencies are done run concurrently as tokio tasks; within a stage
//! steps run in order. A step's cache key covers the state it runs on (the parent key), its op and
//! every input that changes its result (see `docs/cache-keys.md`); config-only steps make no layer
//! and need no key of their own, because their effect is fully in the planned config.

mod inflight;
mod keys;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use crate::cache::{BaseImage, CacheKey, CacheRecord, CacheStore, KeyBuilder, StepExplanation};
use crate::graph::{Base, BuildGraph, ImageRef, SourceRef, StepId};
use crate::image::{ContainerConfig, Platform, now_secs};
use crate::progress::{BuildEvent, EventSink};

pub use inflight::InFlight;
pub use keys::{step_key, step_manifest};
pub use worker::{BoxFuture, FsState, HistoryEntry, ResolvedImage, StepContext, Worker};

/// Options of a solve.
#[derive(Debug, Clone, Default)]
pub struct SolveOptions {
    /// Ignore cache records (results are still recorded).
    pub no_cache: bool,
    /// Ignore cache records for the steps of these stages (by index; `--no-cache-filter`).
    pub no_cache_stages: Vec<usize>,
    /// `SOURCE_DATE_EPOCH`: every timestamp in the image comes from it.
    pub source_date_epoch: Option<i64>,
    /// The key each step position (`stage#n`) had in the previous build of this Dockerfile, to
    /// explain misses against.
    pub previous_keys: Arc<BTreeMap<String, CacheKey>>,
    /// Shared with the other solves of a multi-platform build, so that a step they have in
    /// common runs once.
    pub inflight: Option<Arc<InFlight>>,
}

/// The result of one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageResult {
    /// The final filesystem state.
    pub state: FsState,
    /// The final container config.
    pub config: ContainerConfig,
    /// History, the base image's first.
    pub history: Vec<HistoryEntry>,
    /// The image `created` time.
    pub created: i64,
    /// The image author.
    pub author: Option<String>,
    /// Per-step outcome, in step order: (step, cached, seconds).
    pub steps: Vec<StepOutcome>,
    /// Every filesystem step of every stage the build ran, in stage then step order, with the
    /// reasons of its cache miss (filled in for the target's result only).
    pub explanations: Vec<StepExplanation>,
}

/// How one filesystem step went.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    /// Which step.
    pub id: StepId,
    /// Whether it came from the cache.
    pub cached: bool,
    /// Wall time.
    pub seconds: f64,
}

/// Placeholder for history times that are only known when the stage ends.
const PENDING_TIME: i64 = i64::MIN;

// Every step key chains from its stage's base state, so the platform in these two keys reaches
// every key of the stage: the same Dockerfile built for two platforms never shares a result
// (an image without an index has one digest whatever platform it was asked for).
fn image_state(image: &ResolvedImage, platform: &Platform) -> FsState {
    let mut b = KeyBuilder::new("image", None);
    b.str("digest", &image.digest.to_string());
    b.str("platform", &platform.normalized().to_string());
    FsState {
        key: b.finish(),
        layers: image.layers.clone(),
    }
}

fn scratch_state(platform: &Platform) -> FsState {
    let mut b = KeyBuilder::new("scratch", None);
    b.str("platform", &platform.normalized().to_string());
    FsState {
        key: b.finish(),
        layers: Vec::new(),
    }
}

/// Everything a stage task needs, shared between tasks.
struct Shared {
    worker: Arc<dyn Worker>,
    cache: Arc<dyn CacheStore>,
    graph: Arc<BuildGraph>,
    bases: BTreeMap<BaseKey, ResolvedImage>,
    opts: SolveOptions,
    events: EventSink,
    explanations: std::sync::Mutex<Vec<StepExplanation>>,
}

/// A base image as the solver finds it: the reference and the platform it was resolved for.
pub type BaseKey = (ImageRef, Platform);

/// Runs the graph and returns the target stage's result. `bases` holds the images the FROM lines
/// resolved to (the same ones given to the planner).
pub async fn solve(
    worker: Arc<dyn Worker>,
    cache: Arc<dyn CacheStore>,
    graph: Arc<BuildGraph>,
    bases: BTreeMap<BaseKey, ResolvedImage>,
    opts: SolveOptions,
    events: EventSink,
) -> Result<StageResult, crate::Error> {
    let shared = Arc::new(Shared {
        worker,
        cache,
        graph,
        bases,
        opts,
        events,
        explanations: std::sync::Mutex::new(Vec::new()),
    });
    let mut results: BTreeMap<usize, Arc<StageResult>> = BTreeMap::new();
    let mut pending: BTreeSet<usize> = shared.graph.stages.keys().copied().collect();
    let mut running = tokio::task::JoinSet::new();
    loop {
        let ready: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|i| {
                shared.graph.stages[i]
                    .depends_on
                    .iter()
                    .all(|d| results.contains_key(d))
            })
            .collect();
        for i in ready {
            pending.remove(&i);
            let deps: BTreeMap<usize, Arc<StageResult>> = shared.graph.stages[&i]
                .depends_on
                .iter()
                .map(|d| (*d, results[d].clone()))
                .collect();
            let shared = shared.clone();
            running.spawn(async move { (i, run_stage(&shared, i, &deps).await) });
        }
        match running.join_next().await {
            None => break,
            Some(Ok((i, Ok(r)))) => {
                results.insert(i, Arc::new(r));
            }
            Some(Ok((_, Err(e)))) => {
                // Dropping the other stages cancels them; workers kill their containers on drop.
                running.abort_all();
                return Err(e);
            }
            Some(Err(join)) => {
                running.abort_all();
                return Err(crate::Error::TaskFailed(join.to_string()));
            }
        }
    }
    let target = shared.graph.target;
    let mut explanations = match shared.explanations.lock() {
        Ok(mut e) => std::mem::take(&mut *e),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    explanations.sort_by_key(|e| (e.stage, e.index));
    match results.remove(&target) {
        Some(r) => {
            let mut r = Arc::try_unwrap(r).unwrap_or_else(|r| (*r).clone());
            r.explanations = explanations;
            Ok(r)
        }
        None => Err(crate::Error::TaskFailed(format!(
            "target stage {target} produced no result"
        ))),
    }
}

async fn run_stage(
    shared: &Shared,
    index: usize,
    deps: &BTreeMap<usize, Arc<StageResult>>,
) -> Result<StageResult, crate::Error> {
    let plan = &shared.graph.stages[&index];
    let epoch = shared.opts.source_date_epoch;
    let stage_label = |i: &usize| {
        shared
            .graph
            .stages
            .get(i)
            .and_then(|p| p.name.clone())
            .unwrap_or_else(|| i.to_string())
    };
    // What produced the state the next step runs on, for explanations.
    let (mut parent_from, mut base_image) = match &plan.base {
        Base::Scratch => ("scratch".to_string(), None),
        Base::Stage(i) => (format!("stage {} changed", stage_label(i)), None),
        Base::Image(reference) => (
            format!("base image {reference}"),
            shared
                .bases
                .get(&(reference.clone(), plan.platform.clone()))
                .map(|image| BaseImage {
                    reference: reference.to_string(),
                    digest: image.digest.to_string(),
                }),
        ),
    };
    let (mut state, mut history, mut created, base_author) = match &plan.base {
        Base::Scratch => (scratch_state(&plan.platform), Vec::new(), None, None),
        Base::Stage(i) => {
            let r = deps
                .get(i)
                .ok_or_else(|| crate::Error::TaskFailed(format!("stage {i} result missing")))?;
            (
                r.state.clone(),
                r.history.clone(),
                Some(r.created),
                r.author.clone(),
            )
        }
        Base::Image(reference) => {
            let image = shared
                .bases
                .get(&(reference.clone(), plan.platform.clone()))
                .ok_or_else(|| {
                    crate::Error::TaskFailed(format!(
                        "base image {reference} was not resolved for {}",
                        plan.platform
                    ))
                })?;
            (
                image_state(image, &plan.platform),
                image.history.clone(),
                image.created,
                image.author.clone(),
            )
        }
    };
    // States of the stages and images this stage reads from.
    let mut sources: BTreeMap<SourceRef, FsState> = BTreeMap::new();
    for d in &plan.depends_on {
        if let Some(r) = deps.get(d) {
            sources.insert(SourceRef::Stage(*d), r.state.clone());
        }
    }
    for reference in &plan.image_sources {
        let image = shared
            .worker
            .resolve_image(reference, &plan.platform)
            .await?;
        sources.insert(
            SourceRef::Image(reference.clone()),
            image_state(&image, &plan.platform),
        );
    }

    let stage_name = plan
        .name
        .clone()
        .unwrap_or_else(|| format!("stage-{index}"));
    let fs_steps = plan
        .steps
        .iter()
        .filter(|s| s.op.changes_filesystem())
        .count();
    let mut fs_seen = 0;
    let mut outcomes = Vec::new();
    for (step_index, step) in plan.steps.iter().enumerate() {
        let id = StepId {
            stage: index,
            index: step_index,
        };
        if !step.op.changes_filesystem() {
            // Config entries take the stage's final time (set below), so a rebuild that runs
            // nothing gets the same times and so the same image digest.
            history.push(HistoryEntry {
                created: PENDING_TIME,
                created_text: None,
                created_by: kiln_dockerfile_parser::bytes::to_json_text(&step.created_by)
                    .into_owned(),
                empty_layer: true,
                author: None,
                comment: None,
            });
            continue;
        }
        fs_seen += 1;
        let started = Instant::now();
        shared
            .events
            .send(BuildEvent::StepStarted {
                id,
                // `ADD https://user:pass@host/...`: the password stays out of progress output.
                name: format!(
                    "[{stage_name} {fs_seen}/{fs_steps}] {}",
                    kiln_dockerfile_parser::bytes::to_json_text(&crate::secret::redact_userinfo(
                        &step.origin.text
                    ))
                ),
            })
            .await;
        let ctx = StepContext {
            id,
            origin: &step.origin,
            op: &step.op,
            parent: &state,
            sources: &sources,
            platform: &plan.platform,
        };
        let wrap = |e: crate::Error| crate::Error::Step {
            origin: step.origin.clone(),
            source: Box::new(e),
        };
        let input = shared.worker.input_digest(&ctx).await.map_err(wrap)?;
        let key = step_key(&step.op, &state.key, input.as_deref(), &sources);
        let position = format!("{stage_name}#{fs_seen}");
        let title = format!("[{stage_name} {fs_seen}/{fs_steps}] {}", step.origin.text);
        // Held until the step's record is written: another platform's solve with the same key
        // waits here and then finds the record.
        let _claim = match &shared.opts.inflight {
            Some(f) => Some(f.claim(&key).await),
            None => None,
        };
        let ran_in_this_build = shared
            .opts
            .inflight
            .as_ref()
            .is_some_and(|f| f.is_done(&key));
        let cached = if !ran_in_this_build
            && (shared.opts.no_cache || shared.opts.no_cache_stages.contains(&id.stage))
        {
            None
        } else {
            match shared.cache.get(&key) {
                Some(rec)
                    if rec
                        .layer
                        .as_ref()
                        .is_none_or(|l| shared.worker.has_layer(l)) =>
                {
                    Some(rec)
                }
                Some(_) => {
                    // The record points at a layer that is gone or failed verification.
                    shared.cache.remove(&key);
                    None
                }
                None => None,
            }
        };
        let was_cached = cached.is_some();
        let mut reasons = Vec::new();
        let record = match cached {
            Some(rec) => {
                shared.events.send(BuildEvent::StepCached { id }).await;
                rec
            }
            None => {
                let mut manifest = step_manifest(&step.op, &state.key, input.as_deref(), &sources);
                manifest.instruction = step.origin.text.clone();
                manifest.parent_from = parent_from.clone();
                manifest.base = base_image.clone();
                if input.is_some() {
                    manifest.files = shared.worker.input_files(&ctx).await.map_err(wrap)?;
                }
                let previous = shared.opts.previous_keys.get(&position);
                let previous_manifest = previous.and_then(|k| shared.cache.manifest(k));
                reasons = crate::cache::explain(
                    previous.map(|k| (k, previous_manifest.as_ref())),
                    &key,
                    &manifest,
                    shared.opts.no_cache,
                );
                drop(previous_manifest);
                // Written before the step runs and dropped: the file list of a COPY of
                // 100,000 files is ~8 MB, which the copy itself has better use for. Forgotten
                // again if the step fails.
                shared
                    .cache
                    .put_manifest(&key, &manifest)
                    .map_err(|e| wrap(e.into()))?;
                drop(manifest);
                shared
                    .events
                    .send(BuildEvent::CacheMiss {
                        id,
                        reasons: reasons.clone(),
                    })
                    .await;
                let layer = match shared.worker.execute(&ctx, shared.events.clone()).await {
                    Ok(layer) => layer,
                    Err(e) => {
                        shared.cache.forget_manifest(&key);
                        return Err(wrap(e));
                    }
                };
                let chain = layer.as_ref().and_then(|l| {
                    let mut layers = state.layers.clone();
                    layers.push(l.clone());
                    crate::cache::chain_ids(&layers).pop()
                });
                let rec = CacheRecord {
                    layer,
                    created: epoch.unwrap_or_else(now_secs),
                    chain,
                };
                shared.cache.put(&key, &rec).map_err(|e| wrap(e.into()))?;
                if let Some(f) = &shared.opts.inflight {
                    f.mark_done(&key);
                }
                rec
            }
        };
        if let Ok(mut e) = shared.explanations.lock() {
            e.push(StepExplanation {
                stage: index,
                index: step_index,
                position,
                name: title,
                key: key.to_hex(),
                cached: was_cached,
                reasons,
            });
        }
        parent_from = format!("the previous step `{}` has a new result", step.origin.text);
        base_image = None;
        let layer_size = record.layer.as_ref().map(|l| l.size);
        state.key = key;
        if let Some(layer) = &record.layer {
            state.layers.push(layer.clone());
        }
        let entry_created = epoch.unwrap_or(record.created);
        created = Some(created.map_or(entry_created, |c| c.max(entry_created)));
        history.push(HistoryEntry {
            created: entry_created,
            created_text: None,
            created_by: kiln_dockerfile_parser::bytes::to_json_text(&step.created_by).into_owned(),
            empty_layer: record.layer.is_none(),
            author: None,
            comment: None,
        });
        let elapsed = started.elapsed();
        shared
            .events
            .send(BuildEvent::StepFinished {
                id,
                duration: elapsed,
                layer_size,
            })
            .await;
        outcomes.push(StepOutcome {
            id,
            cached: was_cached,
            seconds: elapsed.as_secs_f64(),
        });
    }
    let created = epoch.or(created).unwrap_or_else(now_secs);
    for h in &mut history {
        if h.created == PENDING_TIME {
            h.created = created;
        }
    }
    Ok(StageResult {
        state,
        config: plan.config.clone(),
        history,
        created,
        author: plan
            .author
            .as_deref()
            .map(|a| kiln_dockerfile_parser::bytes::to_json_text(a).into_owned())
            .or(base_author),
        steps: outcomes,
        explanations: Vec::new(),
    })
}
