//! Multi-platform builds (`--platform linux/amd64,linux/arm64`): one solve per platform, run
//! concurrently over one cache, then an OCI image index listing each platform's manifest, which
//! the tags point at. Steps the platforms have in common (a `FROM --platform=$BUILDPLATFORM`
//! stage that does not read the target args) run once: the solves share an
//! [`InFlight`](crate::solver::InFlight), so the second waits for the first and takes its record.
//!
//! Progress events of each platform carry the platform in the step's name and a step id of their
//! own, so renderers keep them apart.

use std::sync::Arc;

use crate::builder::{BuildOutput, BuildRequest, Builder, set_tags};
use crate::content::ContentStore;
use crate::graph::StepId;
use crate::image::{Descriptor, Index, Platform, media};
use crate::progress::{BuildEvent, EventSink};
use crate::worker::WorkerError;

/// Stage indexes of the `n`th platform's events are offset by this much times `n`.
pub const STAGE_STRIDE: usize = 1 << 16;

/// Builds `req` for each platform and writes the index.
pub(crate) async fn build_all(
    builder: &Builder,
    req: BuildRequest,
    platforms: &[Platform],
    events: EventSink,
    cache: Arc<dyn crate::cache::CacheStore>,
) -> Result<BuildOutput, crate::Error> {
    let inflight = crate::solver::InFlight::new();
    let builds = platforms.iter().enumerate().map(|(n, platform)| {
        let mut one = req.clone();
        one.plan.platform = platform.clone();
        // Only the index is tagged.
        one.tags = Vec::new();
        let sink = platform_events(&events, n, platform);
        builder.build_one(one, sink, cache.clone(), Some(inflight.clone()))
    });
    let outputs = futures_util::future::try_join_all(builds).await?;
    let store = builder.store_arc();
    let tags = req.tags.clone();
    let images: Vec<Descriptor> = outputs.iter().flat_map(|o| o.images.clone()).collect();
    let images2 = images.clone();
    let index = tokio::task::spawn_blocking(move || write_index(&store, &images2, &tags))
        .await
        .map_err(|e| crate::Error::TaskFailed(e.to_string()))??;
    let mut warnings: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    let mut explanations = Vec::new();
    for (n, o) in outputs.iter().enumerate() {
        for w in &o.warnings {
            if !warnings.contains(w) {
                warnings.push(w.clone());
            }
        }
        steps.extend(o.steps.iter().cloned().map(|mut s| {
            s.id = offset(s.id, n);
            s
        }));
        explanations.extend(o.explanations.iter().cloned());
    }
    Ok(BuildOutput {
        config_digest: index.digest,
        manifest: index,
        images,
        tags: req.tags,
        steps,
        warnings,
        cache_export: None,
        build_id: outputs
            .first()
            .map(|o| o.build_id.clone())
            .unwrap_or_default(),
        explanations,
    })
}

/// Writes an OCI image index of `images` (each with its platform) and tags it.
pub fn write_index(
    store: &ContentStore,
    images: &[Descriptor],
    tags: &[String],
) -> Result<Descriptor, crate::Error> {
    let index = Index {
        manifests: images.to_vec(),
        ..Index::default()
    };
    let desc = store
        .put_json(&index, media::OCI_INDEX)
        .map_err(WorkerError::from)?;
    set_tags(store, &desc, tags)?;
    Ok(desc)
}

fn offset(id: StepId, n: usize) -> StepId {
    StepId {
        stage: id.stage + n * STAGE_STRIDE,
        index: id.index,
    }
}

/// A sink that forwards to `events` with the platform in step names and ids of its own.
fn platform_events(events: &EventSink, n: usize, platform: &Platform) -> EventSink {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<BuildEvent>();
    let out = events.clone();
    let label = platform.to_string();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let ev = match ev {
                BuildEvent::StepStarted { id, name } => BuildEvent::StepStarted {
                    id: offset(id, n),
                    name: format!("[{label}] {name}"),
                },
                BuildEvent::StepCached { id } => BuildEvent::StepCached { id: offset(id, n) },
                BuildEvent::CacheMiss { id, reasons } => BuildEvent::CacheMiss {
                    id: offset(id, n),
                    reasons,
                },
                BuildEvent::Log { id, stream, data } => BuildEvent::Log {
                    id: offset(id, n),
                    stream,
                    data,
                },
                BuildEvent::StepFinished {
                    id,
                    duration,
                    layer_size,
                } => BuildEvent::StepFinished {
                    id: offset(id, n),
                    duration,
                    layer_size,
                },
                BuildEvent::Warning { message } => BuildEvent::Warning {
                    message: format!("{label}: {message}"),
                },
            };
            out.send(ev);
        }
    });
    EventSink::new(tx)
}
