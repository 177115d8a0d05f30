//! Multi-platform builds (`--platform linux/amd64,linux/arm64`): one solve per platform, run
//! concurrently over one cache, then an OCI image index listing each platform's manifest, which
//! the tags point at. Steps the platforms have in common (a `FROM --platform=$BUILDPLATFORM`
//! stage that does not read the target args) run once: the solves share an
//! [`InFlight`](crate::solver::InFlight), so the second waits for the first and takes its record.
//!
//! Picking one platform's manifest out of a stored index is here too ([`manifest_for`]).
//!
//! Progress events of each platform carry the platform in the step's name and a step id of their
//! own, so renderers keep them apart.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::builder::{BuildOutput, BuildRequest, Builder};
use crate::cache::CacheKey;
use crate::content::ContentStore;
use crate::graph::StepId;
use crate::image::{Descriptor, Platform};
use crate::output::write_index;
use crate::progress::{BuildEvent, EventSink};

/// The image manifests a descriptor names: itself, or the entries of its index (nested indexes
/// followed a few levels deep, attestation manifests left out).
pub fn manifests_under(
    store: &ContentStore,
    desc: &Descriptor,
) -> Result<Vec<Descriptor>, crate::images::ImagesError> {
    let mut out = Vec::new();
    let mut todo = vec![(desc.clone(), 0)];
    while let Some((d, depth)) = todo.pop() {
        if !crate::image::media::is_index(&d.media_type) {
            out.push(d);
            continue;
        }
        if depth >= 4 {
            continue;
        }
        let index: crate::image::Index = crate::images::read_json(store, &d.digest, "index")?;
        for e in index.manifests.into_iter().rev() {
            // Attestation manifests are about an image, not images.
            if e.annotation(crate::image::ANNOTATION_REFERENCE_TYPE)
                .is_some()
            {
                continue;
            }
            if crate::image::media::is_manifest(&e.media_type)
                || crate::image::media::is_index(&e.media_type)
            {
                todo.push((e, depth + 1));
            }
        }
    }
    Ok(out)
}

/// The manifest of `desc` for `platform`: an image manifest as it is; from an index, the entry
/// for `platform` (the host's when `None`, else the only entry).
pub fn manifest_for(
    store: &ContentStore,
    reference: &str,
    desc: &Descriptor,
    platform: Option<&Platform>,
) -> Result<Descriptor, crate::images::ImagesError> {
    if !crate::image::media::is_index(&desc.media_type) {
        return Ok(desc.clone());
    }
    let entries = manifests_under(store, desc)?;
    let available: Vec<String> = entries
        .iter()
        .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
        .collect();
    let want = platform.cloned().unwrap_or_else(Platform::host);
    let found = want.compatible().into_iter().find_map(|p| {
        entries
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|dp| dp.matches(&p)))
    });
    match (found, platform, entries.as_slice()) {
        (Some(d), _, _) => Ok(d.clone()),
        (None, None, [only]) => Ok(only.clone()),
        (None, _, _) => Err(crate::images::ImagesError::NoPlatform {
            reference: reference.to_string(),
            platform: want.to_string(),
            available,
        }),
    }
}

/// Stage indexes of the `n`th platform's events are offset by this much times `n`.
pub const STAGE_STRIDE: usize = 1 << 16;

/// Builds `req` for each platform and writes the index.
pub(crate) async fn build_all(
    builder: &Builder,
    req: BuildRequest,
    platforms: &[Platform],
    events: EventSink,
    recorder: Option<Arc<crate::registry::cache::RecordingCache>>,
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
        .map_err(|e| crate::Error::TaskFailed(e.to_string()))??;
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
