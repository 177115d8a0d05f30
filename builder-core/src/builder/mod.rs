//! The library facade: [`Builder::new`] opens a store, [`Builder::build`] turns a Dockerfile and a
//! context into a tagged image in it. Progress arrives as [`BuildEvent`]s
//! on an [`EventSink`]; dropping the build future cancels it (running containers are killed and
//! unfinished snapshots discarded).

mod multiplatform;
mod single;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::FileCacheStore;
use crate::content::{ContentStore, Digest};
use crate::exec::{Executor, RuncConfig, RuncExecutor, SandboxConfig, SandboxExecutor};
use crate::image::Descriptor;
use crate::progress::{BuildEvent, EventSink};
use crate::snapshot::Snapshotter;
use crate::worker::WorkerError;

pub use crate::attest::provenance::ProvenanceMode;
pub use crate::cache::{
    BaseImage, BuildExplanation, CacheKey, ExplainError, ExplainStore, FileChange, FileDigests,
    KeyManifest, LayerRef, MissReason, PackedBlob, StepExplanation,
};
pub use crate::cache_transfer::{CacheDestination, CacheExport, CacheMode, CacheSource};
pub use crate::context::{BuildContexts, NamedContext, NamedContextError};
pub use crate::graph::Network;
pub use crate::import::LayoutSelector;
pub use crate::plan::{Entitlements, PlanOptions};
pub use crate::snapshot::{SnapshotError, StorageDriver, set_storage_driver};
pub use crate::solver::{FsState, StepOutcome};

/// Which executor runs RUN steps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecutorChoice {
    /// The built-in namespace sandbox. `helper` is the program re-executed as the sandbox helper
    /// (default: the current program, which must call
    /// [`sandbox_main_if_requested`](crate::exec::sandbox_main_if_requested) first in `main`).
    Sandbox {
        /// The helper program, if not the current one.
        helper: Option<PathBuf>,
    },
    /// An OCI runtime binary such as `runc`.
    Runc {
        /// Path or name of the runtime.
        path: PathBuf,
    },
}

/// How a [`Builder`] is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuilderOptions {
    /// The store directory (an OCI image layout plus kiln's state under `kiln/`).
    pub root: PathBuf,
    /// The executor for RUN steps.
    pub executor: ExecutorChoice,
    /// How registries are reached (insecure registries, CA files, Docker's config directory).
    pub registry: crate::registry::RegistryOptions,
}

impl BuilderOptions {
    /// A store at `root` with the built-in sandbox.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        BuilderOptions {
            root: root.into(),
            executor: ExecutorChoice::Sandbox { helper: None },
            registry: crate::registry::RegistryOptions::default(),
        }
    }
}

/// One build.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BuildRequest {
    /// The Dockerfile's text, as `kiln_dockerfile_parser::decode` reads the file's bytes (so
    /// that bytes that are not UTF-8 reach commands and paths unchanged).
    pub dockerfile: String,
    /// Where it came from, for `<Dockerfile>.dockerignore` and messages.
    pub dockerfile_path: Option<PathBuf>,
    /// The build context directory.
    pub context: Option<PathBuf>,
    /// Build args, target, labels, network.
    pub plan: PlanOptions,
    /// Tags to give the image in the store (full or short references).
    pub tags: Vec<String>,
    /// Ignore the cache.
    pub no_cache: bool,
    /// Ignore the cache for the steps of these stages only (names, or indexes as numbers).
    pub no_cache_filter: Vec<String>,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<i64>,
    /// Secrets by id (their `Debug` is redacted).
    pub secrets: BTreeMap<String, crate::secret::Secret>,
    /// SSH agent sockets by id (`default` is what `RUN --mount=type=ssh` uses without `id=`).
    pub ssh: BTreeMap<String, PathBuf>,
    /// Re-resolve base images in their registries even when the store has them.
    pub pull: bool,
    /// Caches to import records and layers from before the build (`--cache-from`); one that
    /// cannot be read is a warning.
    pub cache_from: Vec<crate::cache_transfer::CacheSource>,
    /// Caches to export records and layers to after the build (`--cache-to`); the records of
    /// every platform built.
    pub cache_to: Vec<crate::cache_transfer::CacheExport>,
    /// `--annotation`s: the manifest's go into each platform's image manifest (those of a
    /// platform into its own only).
    pub annotations: crate::image::Annotations,
    /// `--provenance`: attach SLSA provenance of this detail to each platform's image.
    pub provenance: Option<crate::attest::provenance::ProvenanceMode>,
    /// `--sbom`: attach an SPDX SBOM of each platform's image's packages.
    pub sbom: bool,
    /// How much of each RUN step's output reaches the progress events (BuildKit's
    /// `BUILDKIT_STEP_LOG_MAX_SIZE`, 2 MiB by default); the rest is discarded after an "output
    /// clipped" notice. A failing step's last lines are in its error whatever the limit.
    pub step_log_limit: crate::progress::StepLogLimit,
    /// The platforms to build for (`--platform a,b`): one image each, under an OCI image index
    /// when there are several. Empty: `plan.platform` alone.
    pub platforms: Vec<crate::image::Platform>,
}

/// What a build produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuildOutput {
    /// The image manifest in the store, or the image index of a multi-platform build; its
    /// digest is the image's identity.
    pub manifest: Descriptor,
    /// The config blob's digest (Docker's image id); the index's digest for several platforms.
    pub config_digest: Digest,
    /// Each platform's image manifest, with its platform, in the order asked for.
    pub images: Vec<Descriptor>,
    /// The tags set in the store.
    pub tags: Vec<String>,
    /// How each filesystem step of the target went.
    pub steps: Vec<StepOutcome>,
    /// Warnings (unused build args, ...).
    pub warnings: Vec<String>,
    /// Each `cache_to` written: what it was and the digest of its cache manifest (the image's
    /// for an inline cache); a failed one with `ignore-error` is left out.
    pub cache_exports: Vec<(String, Digest)>,
    /// The provenance predicate attached to each platform's image, for `--metadata-file`.
    pub provenance: Vec<(crate::image::Platform, serde_json::Value)>,
    /// The build's id, under which `kiln cache explain` finds its explanations.
    pub build_id: String,
    /// Every filesystem step of every stage, with the reasons of its cache misses.
    pub explanations: Vec<StepExplanation>,
}

/// Builds images into a store.
pub struct Builder {
    store: Arc<ContentStore>,
    snapshots: Arc<dyn Snapshotter>,
    executor: Arc<dyn Executor>,
    cache: Arc<FileCacheStore>,
    registry: crate::registry::RegistryOptions,
    explain: ExplainStore,
    /// Per-run state: step directories, secret files (see [`crate::rootless::run_dir`]).
    run_dir: PathBuf,
}

fn state_path(store: &ContentStore, name: &str) -> PathBuf {
    store.state_dir().join(name)
}

impl Builder {
    /// Opens (or creates) the store and sets up the snapshotter and executor.
    ///
    /// ```no_run
    /// use kiln_builder_core::{Builder, BuilderOptions, ExecutorChoice};
    ///
    /// let mut options = BuilderOptions::new("/var/lib/kiln");
    /// options.executor = ExecutorChoice::Sandbox { helper: None };
    /// let builder = Builder::new(options)?;
    /// # Ok::<(), kiln_builder_core::Error>(())
    /// ```
    pub fn new(opts: BuilderOptions) -> Result<Self, crate::Error> {
        let store = Arc::new(ContentStore::open(&opts.root).map_err(WorkerError::from)?);
        let snapshots: Arc<dyn Snapshotter> = Arc::from(
            crate::snapshot::open(state_path(&store, "snapshots")).map_err(WorkerError::from)?,
        );
        let run_dir = crate::rootless::run_dir(store.root(), state_path(&store, "run"));
        // Per-run directories of builds that were killed: nobody holds their lock any more.
        crate::scratch::sweep(&run_dir, "run-");
        let executor: Arc<dyn Executor> = match &opts.executor {
            ExecutorChoice::Sandbox { helper } => {
                let mut cfg = SandboxConfig::new(&run_dir);
                if let Some(h) = helper {
                    cfg = cfg.with_helper(h);
                }
                Arc::new(SandboxExecutor::new(cfg))
            }
            ExecutorChoice::Runc { path } => {
                let mut cfg = RuncConfig::new(&run_dir);
                cfg.runtime = path.clone();
                Arc::new(RuncExecutor::new(cfg))
            }
        };
        let cache = Arc::new(FileCacheStore::new(state_path(&store, "cache")));
        let explain = ExplainStore::new(state_path(&store, "explain"));
        Ok(Builder {
            store,
            snapshots,
            executor,
            cache,
            registry: opts.registry.clone(),
            explain,
            run_dir,
        })
    }

    /// The content store.
    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    /// Runs an image from the store with the executor and snapshotter of RUN steps (see
    /// [`crate::container`]); the command's output goes to `out`. Dropping the future kills it.
    pub async fn run_image(
        &self,
        opts: crate::container::RunImageOptions,
        out: crate::exec::OutputSink,
    ) -> Result<crate::exec::ExitStatus, crate::container::RunImageError> {
        crate::container::run_image(
            self.store.clone(),
            self.snapshots.clone(),
            self.executor.clone(),
            opts,
            out,
        )
        .await
    }

    /// The content store, shared (for pushes and pulls that outlive a borrow).
    pub fn store_arc(&self) -> Arc<ContentStore> {
        self.store.clone()
    }

    /// How this builder reaches registries.
    pub fn registry_options(&self) -> &crate::registry::RegistryOptions {
        &self.registry
    }

    /// The store's garbage collector.
    pub fn collector(&self) -> crate::gc::Collector<'_> {
        crate::gc::Collector::new(
            &self.store,
            self.snapshots.as_ref(),
            self.cache.dir().to_path_buf(),
        )
    }

    /// The kept explanations of past builds.
    pub fn explanations(&self) -> &ExplainStore {
        &self.explain
    }

    /// Runs a build and tags the result. Progress goes to `events` (see
    /// [`progress::channel`](crate::progress::channel)), which someone must drain.
    ///
    /// ```no_run
    /// # async fn f(builder: &kiln_builder_core::Builder) -> Result<(), kiln_builder_core::Error> {
    /// use kiln_builder_core::BuildRequest;
    /// use kiln_builder_core::progress::BuildEvent;
    ///
    /// let mut request = BuildRequest::default();
    /// request.dockerfile = "FROM busybox\nRUN echo hi\n".into();
    /// let (events, mut rx) = kiln_builder_core::progress::channel();
    /// tokio::spawn(async move {
    ///     while let Some(event) = rx.recv().await {
    ///         if let BuildEvent::Warning { message } = event {
    ///             eprintln!("warning: {message}");
    ///         }
    ///     }
    /// });
    /// let built = builder.build(request, events).await?;
    /// println!("{}", built.config_digest);
    /// # Ok(()) }
    /// ```
    pub async fn build(
        &self,
        req: BuildRequest,
        events: EventSink,
    ) -> Result<BuildOutput, crate::Error> {
        // The garbage collector never runs while this is held, and waits for it.
        let store = self.store.clone();
        let lease = tokio::task::spawn_blocking(move || crate::gc::BuildLease::acquire(&store))
            .await
            .map_err(|e| crate::Error::TaskFailed(crate::report::chain(&e)))?
            .map_err(|e| crate::Error::Gc(Box::new(e)))?;
        let out = self.build_platforms(req, events).await;
        drop(lease);
        out
    }

    /// Checks the request's references, imports the cache, builds every platform (concurrently,
    /// sharing the steps they have in common), writes the index of a multi-platform build, tags
    /// the result and exports the cache.
    async fn build_platforms(
        &self,
        req: BuildRequest,
        events: EventSink,
    ) -> Result<BuildOutput, crate::Error> {
        let bad_ref = |e: crate::registry::InvalidReference| {
            crate::Error::from(WorkerError::Registry(Box::new(e.into())))
        };
        for tag in &req.tags {
            crate::registry::Reference::parse(tag).map_err(bad_ref)?;
        }
        let platforms = if req.platforms.is_empty() {
            vec![req.plan.platform.normalized()]
        } else {
            req.platforms.clone()
        };
        req.annotations.check_platforms(&platforms)?;
        req.annotations
            .check_index(platforms.len(), req.provenance.is_some() || req.sbom)?;
        let mut warnings = Vec::new();
        for source in &req.cache_from {
            let notes = crate::cache_transfer::run::import(
                &self.store,
                &self.cache,
                &self.registry,
                source,
            )
            .await;
            for message in notes {
                events
                    .send(BuildEvent::Warning {
                        message: message.clone(),
                    })
                    .await;
                warnings.push(message);
            }
        }
        let recorder = (!req.cache_to.is_empty()).then(|| {
            Arc::new(crate::cache_transfer::registry::RecordingCache::new(
                self.cache.clone(),
            ))
        });
        let cache_to = req.cache_to.clone();
        let (mut output, final_keys) = if let [platform] = platforms.as_slice() {
            let mut req = req;
            req.plan.platform = platform.clone();
            self.build_one(req, events.clone(), recorder.clone(), None)
                .await?
        } else {
            multiplatform::build_all(self, req, &platforms, events.clone(), recorder.clone())
                .await?
        };
        output.warnings.splice(0..0, warnings);
        let recorded = recorder.map(|r| r.records()).unwrap_or_default();
        let (written, failed) = crate::cache_transfer::run::export_all(
            &self.store,
            &self.registry,
            &cache_to,
            &recorded,
            &final_keys,
            &output.manifest,
        )
        .await?;
        output.cache_exports = written;
        for message in failed {
            events
                .send(BuildEvent::Warning {
                    message: message.clone(),
                })
                .await;
            output.warnings.push(message);
        }
        Ok(output)
    }

    /// The automatic policy (`<store>/kiln/gc.json`), for after a build and whatever the caller
    /// does with its result (exports read the image's blobs, and an untagged image is
    /// unreferenced): when the store is over its size, prune least recently used cache and
    /// unreferenced blobs. Skipped while other builds run; failures only log.
    pub async fn auto_gc(&self) {
        let store = self.store.clone();
        let snapshots = self.snapshots.clone();
        let records = self.cache.dir().to_path_buf();
        let _ = tokio::task::spawn_blocking(move || {
            let policy = crate::gc::GcPolicy::load(&store);
            if !policy.enabled {
                return;
            }
            let gc = crate::gc::Collector::new(&store, snapshots.as_ref(), records);
            match gc.auto(policy.keep_storage) {
                Ok(Some(r)) => tracing::info!(
                    records = r.records,
                    blobs = r.blobs,
                    bytes = r.blob_bytes,
                    "pruned the store to its size limit"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    "automatic garbage collection failed: {e}",
                    e = crate::report::chain(&e)
                ),
            }
        })
        .await;
    }
}

/// The default store directory: `$XDG_DATA_HOME/kiln`, else `~/.local/share/kiln`.
pub fn default_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Path::new(&dir).join("kiln");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".local/share/kiln")
}
