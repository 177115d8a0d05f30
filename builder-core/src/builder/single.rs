//! One platform's build: solve the graph, write the image, tag it, keep the explanations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use super::{BuildExplanation, BuildOutput, BuildRequest, Builder};
use crate::context::BuildContext;
use crate::progress::{BuildEvent, EventSink};
use crate::solver::{ResolvedImage, SolveOptions, Worker};
use crate::worker::{LocalWorker, LocalWorkerConfig, WorkerError};

impl Builder {
    /// Builds `req` for `req.plan.platform` and writes its image (tagged with `req.tags`); the
    /// solve reads and writes the cache through `recorder` when the cache is exported. Returns
    /// the output and the cache keys of the steps that made the image (what `mode=min` exports).
    pub(crate) async fn build_one(
        &self,
        req: BuildRequest,
        events: EventSink,
        recorder: Option<Arc<crate::cache_transfer::registry::RecordingCache>>,
        inflight: Option<Arc<crate::solver::InFlight>>,
    ) -> Result<(BuildOutput, BTreeSet<crate::cache::CacheKey>), crate::Error> {
        let cache: Arc<dyn crate::cache::CacheStore> = match &recorder {
            Some(r) => r.clone(),
            None => self.cache.clone(),
        };
        let df = kiln_dockerfile_parser::parse(&req.dockerfile)
            .map_err(|e| crate::Error::Parse(Box::new(e)))?;
        for w in &df.warnings {
            events
                .send(BuildEvent::Warning {
                    message: format!("line {}: {}", w.line, w.message),
                })
                .await;
        }
        let context = match &req.context {
            Some(dir) => Some(Arc::new(
                BuildContext::open(dir, req.dockerfile_path.as_deref())
                    .map_err(WorkerError::from)?,
            )),
            None => None,
        };
        let worker = Arc::new(LocalWorker::new(LocalWorkerConfig {
            store: self.store.clone(),
            snapshots: self.snapshots.clone(),
            executor: self.executor.clone(),
            context,
            contexts: req.plan.contexts.clone(),
            secrets: req.secrets.clone(),
            ssh_agents: req.ssh.clone(),
            source_date_epoch: req.source_date_epoch,
            state_dir: self.run_dir.clone(),
            registry: self.registry.clone(),
            pull: req.pull,
            step_log_limit: req.step_log_limit,
        }));

        let mut bases: BTreeMap<crate::solver::BaseKey, ResolvedImage> = BTreeMap::new();
        let lines = kiln_dockerfile_parser::LineIndex::new(&req.dockerfile);
        for (reference, platform, span) in crate::plan::base_images(&df, &req.plan)? {
            let image = worker
                .resolve_image(&reference, &platform)
                .await
                .map_err(|e| crate::Error::Step {
                    origin: crate::graph::Origin {
                        span,
                        start_line: lines.line(span.start()),
                        end_line: lines.line(span.start()),
                        text: format!("FROM {reference}"),
                    },
                    source: Box::new(e),
                })?;
            bases.insert((reference, platform), image);
        }
        let graph = crate::plan::plan(
            &df,
            &req.plan,
            &|r: &crate::graph::ImageRef, p: &crate::image::Platform| {
                bases
                    .get(&(r.clone(), p.clone()))
                    .map(|b| b.config.clone().lossless())
            },
        )?;
        let platform = graph.target_stage().platform.clone();
        if crate::worker::local_dir::reads_context(&graph) {
            crate::worker::local_dir::prefetch_context(&worker);
        }
        let default_network = graph.stages.values().flat_map(|s| &s.steps).any(|step| {
            matches!(&step.op, crate::graph::Op::Run(r) if r.network == crate::graph::Network::Default)
        });
        if default_network && !crate::exec::user_mode_available() {
            events
                .send(BuildEvent::Warning {
                    message: crate::info::network_unavailable_reason().into(),
                })
                .await;
        }
        for w in &graph.warnings {
            events
                .send(BuildEvent::Warning { message: w.clone() })
                .await;
        }
        let mut warnings = graph.warnings.clone();
        let mut no_cache_stages = Vec::new();
        for want in &req.no_cache_filter {
            let found = graph
                .stages
                .iter()
                .find(|(_, s)| {
                    s.name.as_deref() == Some(want.to_lowercase().as_str())
                        || want.parse::<usize>() == Ok(s.index)
                })
                .map(|(i, _)| *i);
            match found {
                Some(i) => no_cache_stages.push(i),
                None => {
                    let message = format!("--no-cache-filter: no stage named {want:?}");
                    events
                        .send(BuildEvent::Warning {
                            message: message.clone(),
                        })
                        .await;
                    warnings.push(message);
                }
            }
        }
        let scope = explain_scope(&req);
        let opts = SolveOptions {
            no_cache: req.no_cache,
            no_cache_stages,
            source_date_epoch: req.source_date_epoch,
            previous_keys: Arc::new(self.explain.previous_keys(&scope)),
            inflight,
        };
        let start = std::time::SystemTime::now();
        let started = start
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let final_stages = crate::cache_transfer::run::image_stages(&graph);
        let materials: Vec<_> = bases
            .iter()
            .map(|((r, p), b)| (r.to_string(), b.digest.to_string(), p.clone()))
            .collect();
        let solved =
            crate::solver::solve(worker.clone(), cache, Arc::new(graph), bases, opts, events).await;
        // Digests learnt in this build stay valid whether it succeeded or not.
        let saver = worker.clone();
        let _ = tokio::task::spawn_blocking(move || saver.save_stat_cache()).await;
        let mut result = solved?;
        let explanation = BuildExplanation {
            id: crate::cache::new_build_id(start),
            time: started,
            dockerfile: req
                .dockerfile_path
                .as_ref()
                .map(|p| p.display().to_string()),
            steps: std::mem::take(&mut result.explanations),
        };
        let explain = self.explain.clone();
        let kept = explanation.clone();
        let recorded = tokio::task::spawn_blocking(move || explain.record(&scope, &kept)).await;
        if let Ok(Err(e)) = recorded {
            // Only the after-the-fact explanation is lost; the build itself succeeded.
            tracing::warn!(
                "cannot keep the build's cache explanation: {e}",
                e = crate::report::chain(&e)
            );
        }
        let final_keys = crate::cache_transfer::run::final_keys(&explanation.steps, &final_stages);
        let inline = recorder.as_ref().and_then(|r| {
            crate::cache_transfer::run::inline_cache(
                &req.cache_to,
                &r.records(),
                &final_keys,
                &result.state.layers,
            )
        });
        let store = self.store.clone();
        let tags = req.tags.clone();
        let platform2 = platform.clone();
        let extras = crate::output::ImageExtras {
            inline_cache: inline,
            annotations: req.annotations.for_platform(&platform).manifest,
            attach: crate::attest::options_for(
                &req,
                &platform,
                materials,
                &explanation.id,
                started,
            ),
        };
        let (manifest, config_digest, steps, provenance) = tokio::task::spawn_blocking(move || {
            let w = crate::output::write_image(&store, &result, &platform2, extras, &tags)?;
            Ok::<_, crate::Error>((w.manifest, w.config, result.steps, w.provenance))
        })
        .await
        .map_err(|e| crate::Error::TaskFailed(crate::report::chain(&e)))??;
        let mut image = manifest.clone();
        image.platform = Some(platform.clone());
        let output = BuildOutput {
            manifest,
            config_digest,
            images: vec![image],
            tags: req.tags,
            steps,
            warnings,
            cache_exports: Vec::new(),
            provenance: provenance
                .map(|p| (platform.clone(), p))
                .into_iter()
                .collect(),
            build_id: explanation.id,
            explanations: explanation.steps,
        };
        Ok((output, final_keys))
    }
}

/// What identifies "the same Dockerfile" across builds for explanations: the context directory
/// and the Dockerfile's path (absolute when they exist), and the platform when not the host's.
fn explain_scope(req: &BuildRequest) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let context = req
        .context
        .as_deref()
        .map(|c| abs(c).display().to_string())
        .unwrap_or_default();
    let dockerfile = req
        .dockerfile_path
        .as_deref()
        .map(|d| abs(d).display().to_string())
        .unwrap_or_else(|| "-".to_string());
    // Another platform's build of the same Dockerfile is explained against its own last build.
    let platform = req.plan.platform.normalized();
    if platform == crate::image::Platform::host() {
        format!("{context}\0{dockerfile}")
    } else {
        format!("{context}\0{dockerfile}\0{platform}")
    }
}
