//! Multi-platform builds (`--platform linux/amd64,linux/arm64`): one solve per platform, run
//! concurrently over one cache, then an OCI image index listing each platform's manifest, which
//! the tags point at. Steps the platforms have in common (a `FROM --platform=$BUILDPLATFORM`
//! stage that does not read the target args) run once: the solves share an
//! [`InFlight`](crate::solver::InFlight), so the second waits for the first and takes its record.
//!
//! Progress events of each platform carry the platform in the step's name and a step id of their
//! own, so renderers keep them apart.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{BuildOutput, BuildRequest, Builder};
use crate::cache::CacheKey;
use crate::graph::StepId;
use crate::image::{Descriptor, Platform};
use crate::output::write_index;
use crate::progress::{BuildEvent, EventSink};

/// Stage indexes of the `n`th platform's events are offset by this much times `n`.
pub const STAGE_STRIDE: usize = 1 << 16;

/// Builds `req` for each platform and writes the index.
pub(crate) async fn build_all(
    builder: &Builder,
    req: BuildRequest,
    platforms: &[Platform],
    events: EventSink,
    recorder: Option<Arc<crate::cache_transfer::registry::RecordingCache>>,
) -> Result<(BuildOutput, BTreeSet<CacheKey>), crate::Error> {
    let inflight = crate::solver::InFlight::new();
    let builds = platforms.iter().enumerate().map(|(n, platform)| {
        let mut one = req.clone();
        one.plan.platform = platform.clone();
        // Only the index is tagged.
        one.tags = Vec::new();
        let sink = platform_events(&events, n, platform);
        builder.build_one(one, sink, recorder.clone(), Some(inflight.clone()))
    });
    let built = futures_util::future::try_join_all(builds).await?;
    // A multi-platform build's `mode=min` cache holds every platform's image steps.
    let final_keys: BTreeSet<CacheKey> =
        built.iter().flat_map(|(_, k)| k.iter().copied()).collect();
    let outputs: Vec<BuildOutput> = built.into_iter().map(|(o, _)| o).collect();
    let store = builder.store_arc();
    let tags = req.tags.clone();
    let images: Vec<Descriptor> = outputs.iter().flat_map(|o| o.images.clone()).collect();
    let images2 = images.clone();
    let index = tokio::task::spawn_blocking(move || write_index(&store, &images2, &tags))
        .await
        .map_err(|e| crate::Error::TaskFailed(crate::report::chain(&e)))??;
    let mut warnings: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    let provenance = outputs.iter().flat_map(|o| o.provenance.clone()).collect();
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
    let output = BuildOutput {
        config_digest: index.digest,
        manifest: index,
        images,
        tags: req.tags,
        steps,
        warnings,
        cache_exports: Vec::new(),
        provenance,
        build_id: outputs
            .first()
            .map(|o| o.build_id.clone())
            .unwrap_or_default(),
        explanations,
    };
    Ok((output, final_keys))
}

fn offset(id: StepId, n: usize) -> StepId {
    StepId {
        stage: id.stage + n * STAGE_STRIDE,
        index: id.index,
    }
}

/// A sink that forwards to `events` with the platform in step names and ids of its own.
fn platform_events(events: &EventSink, n: usize, platform: &Platform) -> EventSink {
    // Bounded like every event channel: a fast step waits for the renderer.
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<BuildEvent>(crate::progress::EVENT_CHANNEL_CAPACITY);
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
            out.send(ev).await;
        }
    });
    EventSink::new(tx)
}
