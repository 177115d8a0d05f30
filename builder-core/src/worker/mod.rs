//! The local worker: runs the solver's steps on this machine with the content store, a
//! snapshotter, an executor and the build context.
//!
//! Layers are the truth and snapshots are derived from them: a filesystem state (a list of layer
//! diff_ids) is materialised as a chain of committed snapshots named by OCI chain IDs, imported from
//! the layer blobs on first use. A step prepares a writable snapshot on its parent's chain, does its
//! work there, asks the snapshotter what changed, writes those changes as a layer into the store and
//! commits the snapshot under the new chain ID, so the next step (and the next build) starts from it
//! without unpacking anything.

pub(crate) mod copy;
mod copy_direct;
mod copy_reuse;
mod copy_urls;
mod deferred;
pub(crate) mod download;
pub mod emulate;
mod git;
mod image;
pub(crate) mod local_dir;
mod run;
mod ssh;
pub mod steplog;
mod unpack;
mod user;
mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::cache::LayerRef;
use crate::changes::WhiteoutStyle;
use crate::content::ContentStore;
use crate::context::BuildContext;
use crate::exec::Executor;
use crate::fsroot::Root;
use crate::graph::Op;
use crate::progress::EventSink;
use crate::snapshot::{Active, Snapshotter, View};
use crate::solver::{BoxFuture, FsState, ResolvedImage, StepContext, Worker};

pub use image::normalize_reference;
pub(crate) use image::packed_layer;
pub use user::resolve_user;

/// Errors of the local worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A snapshot operation failed.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// Writing or applying a layer failed.
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] crate::content::ContentError),
    /// COPY or ADD failed.
    #[error(transparent)]
    Copy(#[from] crate::copy::CopyError),
    /// `ADD <url>` failed.
    #[error(transparent)]
    Download(#[from] download::DownloadError),
    /// A `--chmod` value is invalid.
    #[error(transparent)]
    Chmod(#[from] crate::chmod::ChmodError),
    /// The build context could not be read.
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    /// Walking the build context failed (kept shared: the walk runs once per build).
    #[error(transparent)]
    ContextWalk(Arc<crate::context::ContextError>),
    /// Running a command failed to start or was lost.
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    /// Importing an image failed.
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    /// A user or group could not be resolved in the rootfs.
    #[error(transparent)]
    User(#[from] crate::userdb::UserDbError),
    /// A confined filesystem operation failed.
    #[error(transparent)]
    Fs(#[from] crate::fsroot::FsError),
    /// An image reference names nothing kiln can find.
    #[error("image {reference} not found: {reason}")]
    ImageNotFound {
        /// The reference.
        reference: String,
        /// Where kiln looked.
        reason: String,
    },
    /// Pulling from a registry failed, or a reference is invalid.
    #[error(transparent)]
    Registry(Box<crate::registry::RegistryError>),
    /// A feature the Dockerfile asks for that this worker does not provide.
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
    /// An SSH agent the build needs was not given.
    #[error("SSH agent {id} is required but was not given (use --ssh {id}=SOCKET)")]
    MissingSsh {
        /// The agent id.
        id: String,
    },
    /// A secret the build needs was not given.
    #[error("secret {id} is required but was not given (use --secret id={id},src=PATH)")]
    MissingSecret {
        /// The secret id.
        id: String,
    },
    /// An I/O error on kiln's own state (not on image or context data).
    #[error(transparent)]
    Io(#[from] crate::report::IoError),
    /// A RUN for another platform has no emulator on this machine.
    #[error(transparent)]
    Emulation(#[from] emulate::EmulationError),
    /// A blocking task panicked or was cancelled.
    #[error("worker task failed: {0}")]
    Task(String),
    /// `ADD` of a git repository failed.
    #[error("git repository {url}: {message}")]
    Git {
        /// The repository (without its password).
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// How the local worker is set up.
#[derive(Clone)]
pub struct LocalWorkerConfig {
    /// The store.
    pub store: Arc<ContentStore>,
    /// The snapshotter.
    pub snapshots: Arc<dyn Snapshotter>,
    /// The executor for RUN.
    pub executor: Arc<dyn Executor>,
    /// The build context, if the build has one.
    pub context: Option<Arc<BuildContext>>,
    /// Named contexts (`--build-context`): OCI layouts and directories the build may read.
    pub contexts: crate::context::BuildContexts,
    /// Secrets by id (`--secret`): their values, kept in memory only.
    pub secrets: BTreeMap<String, crate::secret::Secret>,
    /// SSH agent sockets by id, for `RUN --mount=type=ssh`.
    pub ssh_agents: BTreeMap<String, PathBuf>,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<i64>,
    /// Directory for per-run scratch files (secrets, heredoc scripts, cache mounts).
    pub state_dir: PathBuf,
    /// How registries are reached.
    pub registry: crate::registry::RegistryOptions,
    /// Re-resolve registry references even when the store knows them (`--pull`).
    pub pull: bool,
    /// How much of each RUN step's output reaches the progress events.
    pub step_log_limit: crate::progress::StepLogLimit,
}

/// Runs steps on this machine.
pub struct LocalWorker {
    cfg: LocalWorkerConfig,
    /// Digests of context files, reused while their size, times, inode and mode are unchanged;
    /// loaded from and saved to a per-context file in the store.
    hasher: Arc<crate::context::CachingHasher>,
    stat_cache_path: Option<PathBuf>,
    context_index: std::sync::OnceLock<
        Result<Arc<crate::context::ContextIndex>, Arc<crate::context::ContextError>>,
    >,
    /// `ADD <url>` files fetched by this build.
    downloads: download::Downloads,
    /// `ADD <git repository>` refs resolved by this build.
    git_commits: git::Resolved,
    /// Images resolved in this build: one reference resolves (and is pulled) once, so FROM and
    /// `COPY --from` of the same reference see the same image.
    resolved: tokio::sync::Mutex<BTreeMap<crate::solver::BaseKey, ResolvedImage>>,
    /// Directory contexts (`--build-context NAME=DIR`) opened and walked by this build, by key.
    named_dirs: std::sync::Mutex<BTreeMap<String, local_dir::LocalDir>>,
}

impl LocalWorker {
    /// A worker with this setup.
    pub fn new(cfg: LocalWorkerConfig) -> Self {
        // Once per worker, not per stamp: the directory holds a stamp per blob.
        verify::sweep_abandoned(&cfg.store);
        let stat_cache_path = cfg.context.as_ref().map(|ctx| {
            let key = hex::encode(Sha256::digest(
                ctx.root().path().as_os_str().as_encoded_bytes(),
            ));
            cfg.store.state_dir().join("statcache").join(key)
        });
        LocalWorker {
            // Holds the digests this build reads; those of the previous build are read by the
            // context's walk (see `context_index`) into the index's entries.
            hasher: Arc::new(crate::context::CachingHasher::new(
                crate::context::StatCache::new(),
            )),
            stat_cache_path,
            downloads: download::Downloads::new(cfg.state_dir.clone()),
            git_commits: git::Resolved::default(),
            cfg,
            context_index: std::sync::OnceLock::new(),
            resolved: tokio::sync::Mutex::new(BTreeMap::new()),
            named_dirs: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Saves the context's stat cache (atomically): for every file of the context, the digest
    /// this build read or the one its walk found in the previous cache. A failure only costs
    /// re-hashing next time, so it is logged, not returned.
    pub fn save_stat_cache(&self) {
        let (Some(path), Some(Ok(index))) = (&self.stat_cache_path, self.context_index.get())
        else {
            return;
        };
        if self.hasher.files_read() == 0 {
            return;
        }
        self.hasher.with_cache(|cache| {
            if let Some(dir) = path.parent()
                && let Err(e) = std::fs::create_dir_all(dir)
            {
                tracing::warn!(dir = %dir.display(), "cannot create the stat cache directory: {e}", e = crate::report::chain(&e));
                return;
            }
            if let Err(e) = cache.save_for(path, index) {
                tracing::warn!("cannot save the stat cache: {e}", e = crate::report::chain(&e));
            }
        });
    }
}

pub use crate::cache::chain_ids;

/// Makes sure every layer of `state` has a committed snapshot, importing missing ones from the
/// store, and returns the key of the top one (`None` for an empty state). Blocking.
pub(crate) fn ensure_snapshots(
    store: &ContentStore,
    snapshots: &dyn Snapshotter,
    layers: &[LayerRef],
) -> Result<Option<String>, WorkerError> {
    let top = ensure_snapshot_tree(store, snapshots, layers)?;
    for key in chain_ids(layers) {
        deferred::complete(store, snapshots, &key)?;
    }
    Ok(top)
}

/// [`ensure_snapshots`] for readers of metadata only: the snapshots' trees have every entry
/// with its metadata, but big files a COPY wrote only into its layer may not have their bytes
/// yet (see `deferred`).
pub(crate) fn ensure_snapshot_tree(
    store: &ContentStore,
    snapshots: &dyn Snapshotter,
    layers: &[LayerRef],
) -> Result<Option<String>, WorkerError> {
    let keys = chain_ids(layers);
    let missing = keys.iter().filter(|k| !snapshots.exists(k)).count();
    if missing > 1 && snapshots.imports_are_independent() {
        unpack::import_concurrently(store, snapshots, layers, &keys)?;
        return Ok(keys.last().cloned());
    }
    let mut parent: Option<String> = None;
    for (layer, key) in layers.iter().zip(&keys) {
        if !snapshots.exists(key) {
            let mut fill = |root: &Root, style: WhiteoutStyle| {
                unpack::fill_from_layer(store, layer, root, style)
            };
            snapshots.import(key, parent.as_deref(), &mut fill)?;
        }
        parent = Some(key.clone());
    }
    Ok(parent)
}

/// Prepares a writable snapshot on top of `state`.
pub(crate) fn prepare(cfg: &LocalWorkerConfig, state: &FsState) -> Result<Active, WorkerError> {
    let parent = ensure_snapshots(&cfg.store, cfg.snapshots.as_ref(), &state.layers)?;
    Ok(cfg.snapshots.prepare(parent.as_deref())?)
}

/// A read-only view of `state`'s metadata (see [`ensure_snapshot_tree`]), or `None` when it is
/// empty.
pub(crate) fn view_metadata(
    cfg: &LocalWorkerConfig,
    state: &FsState,
) -> Result<Option<View>, WorkerError> {
    match ensure_snapshot_tree(&cfg.store, cfg.snapshots.as_ref(), &state.layers)? {
        Some(key) => Ok(Some(cfg.snapshots.view(&key)?)),
        None => Ok(None),
    }
}

/// A read-only view of `state` (for `COPY --from` and bind mounts), or `None` when it is empty.
pub(crate) fn view(cfg: &LocalWorkerConfig, state: &FsState) -> Result<Option<View>, WorkerError> {
    match ensure_snapshots(&cfg.store, cfg.snapshots.as_ref(), &state.layers)? {
        Some(key) => Ok(Some(cfg.snapshots.view(&key)?)),
        None => Ok(None),
    }
}

/// Turns what changed in `active` into a layer in the store and commits the snapshot under the
/// new chain ID. Returns `None` (and discards the snapshot) when nothing changed.
pub(crate) fn finish(
    cfg: &LocalWorkerConfig,
    parent: &FsState,
    active: Active,
) -> Result<Option<LayerRef>, WorkerError> {
    let changes = cfg.snapshots.changes(&active)?;
    if changes.is_empty() {
        return Ok(None);
    }
    let root = Root::open(active.changes_root())?;
    let opts = crate::layer::LayerOptions {
        source_date_epoch: cfg.source_date_epoch,
    };
    let (info, _stats) = crate::layer::write_changes_to_store(&cfg.store, &root, &changes, &opts)?;
    drop(root);
    // Hashed while written: later cache hits need only compare a stat.
    verify::stamp(&cfg.store, &info.digest);
    let layer = LayerRef {
        diff_id: info.digest,
        size: info.size,
        packed: None,
    };
    let mut layers = parent.layers.clone();
    layers.push(layer.clone());
    let keys = chain_ids(&layers);
    if let Some(key) = keys.last() {
        cfg.snapshots.commit(active, key)?;
    }
    Ok(Some(layer))
}

/// Runs blocking work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkerError> + Send + 'static,
) -> Result<T, WorkerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WorkerError::Task(crate::report::chain(&e)))?
}

impl Worker for LocalWorker {
    fn resolve_image<'a>(
        &'a self,
        reference: &'a crate::graph::ImageRef,
        platform: &'a crate::image::Platform,
    ) -> BoxFuture<'a, Result<ResolvedImage, crate::Error>> {
        Box::pin(async move {
            // Held across the pull so that concurrent stages wait for one resolution.
            let mut resolved = self.resolved.lock().await;
            let key = (reference.clone(), platform.normalized());
            if let Some(img) = resolved.get(&key) {
                return Ok(img.clone());
            }
            let img = image::resolve_image_ref(&self.cfg, reference, platform).await?;
            resolved.insert(key, img.clone());
            Ok(img)
        })
    }

    fn input_digest<'a>(
        &'a self,
        step: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, crate::Error>> {
        Box::pin(async move { Ok(local_dir::input_digest(self, step).await?) })
    }

    fn input_files<'a>(
        &'a self,
        step: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<crate::cache::FileDigests, crate::Error>> {
        Box::pin(async move { Ok(local_dir::input_files(self, step).await?) })
    }

    fn has_layer(&self, layer: &LayerRef) -> bool {
        verify::layer_is_intact(&self.cfg.store, layer)
    }

    fn execute<'a>(
        &'a self,
        step: &'a StepContext<'a>,
        events: EventSink,
    ) -> BoxFuture<'a, Result<Option<LayerRef>, crate::Error>> {
        Box::pin(async move {
            match step.op {
                Op::Run(run) => run::execute(self, step, run, events).await,
                Op::Copy(c) => Ok(copy::execute_copy(self, step, c).await?),
                Op::Workdir { path, user } => {
                    Ok(copy::execute_workdir(self, step, path, user).await?)
                }
                Op::Config => Ok(None),
            }
        })
    }
}
