//! Running a built image for a quick check (`kiln run --rm`): the image's layers become a
//! throw-away writable snapshot and its entrypoint, command, environment, user and working
//! directory become a [`RunSpec`] for the same executor RUN steps use, so the container is
//! isolated exactly like a build step. Nothing is kept: the snapshot is discarded when the
//! command ends or the future is dropped (which kills the command).

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::LayerRef;
use crate::content::ContentStore;
use crate::exec::{Executor, ExitStatus, Mount, NetworkMode, OutputSink, RunSpec, Stdin};
use crate::fsroot::Root;
use crate::image::ImageConfig;
use crate::images::{ImagesError, inspect_platform};
use crate::snapshot::Snapshotter;
use crate::worker::WorkerError;

/// The hostname a container sees.
pub(crate) const CONTAINER_HOSTNAME: &str = "kiln";

/// A host path bound into the container (`-v HOST:CTR[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The host file or directory.
    pub source: PathBuf,
    /// The absolute path inside the container.
    pub target: PathBuf,
    /// Mount it read-only.
    pub readonly: bool,
}

/// What to run and how. The command, environment and working directory are strings in the
/// lossless form of `kiln_dockerfile_parser::bytes` (make them with `decode` or `from_os_str`
/// to pass bytes that are not UTF-8).
#[derive(Debug, Clone, Default)]
pub struct RunImageOptions {
    /// The image: a name or an id.
    pub image: String,
    /// Replaces the image's `CMD` when not empty.
    pub command: Vec<String>,
    /// Replaces the image's `ENTRYPOINT` when set (an empty vector clears it).
    pub entrypoint: Option<Vec<String>>,
    /// Added to (or overriding) the image's environment, in order.
    pub env: Vec<(String, String)>,
    /// Replaces the image's `WORKDIR`.
    pub workdir: Option<String>,
    /// Replaces the image's `USER` (`name`, `uid`, `name:group`, ...).
    pub user: Option<String>,
    /// Host paths bound in.
    pub binds: Vec<BindMount>,
    /// Network isolation.
    pub network: NetworkMode,
    /// Standard input.
    pub stdin: Stdin,
    /// Run kiln's minimal init as PID 1, which reaps orphaned zombies (`docker run --init`);
    /// otherwise the command is PID 1.
    pub init: bool,
    /// The platform to run, for a multi-platform image (the host's by default).
    pub platform: Option<crate::image::Platform>,
}

/// An error running an image.
#[derive(Debug, thiserror::Error)]
pub enum RunImageError {
    /// The image could not be found or read.
    #[error(transparent)]
    Image(Box<ImagesError>),
    /// Neither an entrypoint nor a command.
    #[error("image {0} has no ENTRYPOINT or CMD and no command was given")]
    NoCommand(String),
    /// A bind mount target is not absolute.
    #[error("bind mount target {0} is not an absolute path")]
    RelativeTarget(PathBuf),
    /// A bind mount source does not exist.
    #[error("bind mount source {path} cannot be used")]
    BindSource {
        /// The host path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A layer of the image could not be unpacked.
    #[error(transparent)]
    Export(Box<crate::export::ExportError>),
    /// Preparing the filesystem or running the command failed.
    #[error(transparent)]
    Worker(Box<WorkerError>),
}

impl From<ImagesError> for RunImageError {
    fn from(e: ImagesError) -> Self {
        RunImageError::Image(Box::new(e))
    }
}

impl From<WorkerError> for RunImageError {
    fn from(e: WorkerError) -> Self {
        RunImageError::Worker(Box::new(e))
    }
}

fn blocking_err(e: tokio::task::JoinError) -> RunImageError {
    RunImageError::from(WorkerError::Task(crate::report::chain(&e)))
}

/// The command line Docker would run: entrypoint then command, either replaced by the options.
fn argv(config: &ImageConfig, opts: &RunImageOptions) -> Vec<String> {
    let c = config.config.clone().unwrap_or_default().lossless();
    let entrypoint = opts
        .entrypoint
        .clone()
        .unwrap_or_else(|| c.entrypoint.clone().unwrap_or_default());
    // As in Docker, a new entrypoint drops the image's CMD.
    let command = if !opts.command.is_empty() {
        opts.command.clone()
    } else if opts.entrypoint.is_some() {
        Vec::new()
    } else {
        c.cmd.clone().unwrap_or_default()
    };
    entrypoint.into_iter().chain(command).collect()
}

/// Runs the image and returns how its command ended. Output goes to `out` as it comes.
pub(crate) async fn run_image(
    store: Arc<ContentStore>,
    snapshots: Arc<dyn Snapshotter>,
    executor: Arc<dyn Executor>,
    opts: RunImageOptions,
    out: OutputSink,
) -> Result<ExitStatus, RunImageError> {
    let details = {
        let store = store.clone();
        let image = opts.image.clone();
        let platform = opts.platform.clone();
        tokio::task::spawn_blocking(move || inspect_platform(&store, &image, platform.as_ref()))
            .await
            .map_err(blocking_err)??
    };
    // Binaries of another platform run through binfmt_misc, as RUN steps do.
    let emulator = crate::worker::emulate::emulator_for(&details.config.platform())
        .map_err(WorkerError::from)?;
    let argv = argv(&details.config, &opts);
    if argv.is_empty() {
        return Err(RunImageError::NoCommand(opts.image.clone()));
    }
    let mut binds = Vec::with_capacity(opts.binds.len());
    for b in &opts.binds {
        if !b.target.is_absolute() {
            return Err(RunImageError::RelativeTarget(b.target.clone()));
        }
        let source =
            std::fs::canonicalize(&b.source).map_err(|source| RunImageError::BindSource {
                path: b.source.clone(),
                source,
            })?;
        binds.push(Mount::Bind {
            source,
            target: b.target.clone(),
            readonly: b.readonly,
        });
    }
    for interpreter in emulator.iter().flat_map(|e| &e.binds) {
        binds.push(Mount::Bind {
            source: interpreter.clone(),
            target: interpreter.clone(),
            readonly: true,
        });
    }
    let prepared = tokio::task::spawn_blocking(move || {
        let mut layers = Vec::with_capacity(details.manifest.layers.len());
        for (desc, diff_id) in details
            .manifest
            .layers
            .iter()
            .zip(&details.config.rootfs.diff_ids)
        {
            // Compressed layers are unpacked from their blobs, as a build's base layers are.
            if let Some(layer) = crate::worker::packed_layer(&store, desc, diff_id) {
                layers.push(layer);
                continue;
            }
            let digest = crate::export::ensure_uncompressed(&store, &desc.digest, diff_id)
                .map_err(|e| RunImageError::Export(Box::new(e)))?;
            layers.push(LayerRef {
                diff_id: digest,
                size: store.size(&digest).map_err(WorkerError::from)?,
                packed: None,
            });
        }
        let parent = crate::worker::ensure_snapshots(&store, snapshots.as_ref(), &layers)?;
        let active = snapshots
            .prepare(parent.as_deref())
            .map_err(WorkerError::from)?;
        let root = Root::open(active.root()).map_err(WorkerError::from)?;
        let c = details.config.config.clone().unwrap_or_default().lossless();
        let user_spec = opts.user.clone().or(c.user.clone()).unwrap_or_default();
        let user = crate::worker::resolve_user(&root, &user_spec).map_err(WorkerError::from)?;
        let mut env: Vec<(String, String)> = c
            .env
            .iter()
            .flatten()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
            .collect();
        for (k, v) in &opts.env {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.insert(0, ("PATH".into(), crate::exec::DEFAULT_PATH.into()));
        }
        let cwd = opts
            .workdir
            .clone()
            .or(c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        // Docker creates a missing working directory; so does RUN.
        let cwd = kiln_dockerfile_parser::bytes::to_path(&cwd).into_owned();
        root.mkdir_all(&cwd, 0o755).map_err(WorkerError::from)?;
        drop(root);
        let mut spec = RunSpec::new(active.root().to_path_buf(), argv);
        spec.env = env;
        spec.cwd = cwd;
        spec.user = user;
        spec.hostname = CONTAINER_HOSTNAME.into();
        spec.network = opts.network;
        spec.mounts = binds;
        spec.stdin = opts.stdin;
        spec.init = opts.init;
        Ok::<_, RunImageError>((active, spec))
    })
    .await
    .map_err(blocking_err)??;
    let (active, spec) = prepared;
    let result = executor.run(spec, out).await.map_err(WorkerError::from)?;
    // The container's changes are thrown away (like `docker run --rm`).
    tokio::task::spawn_blocking(move || drop(active))
        .await
        .map_err(blocking_err)?;
    Ok(result.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{ContainerConfig, Platform};

    fn config(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        let mut c = ImageConfig::scratch(&Platform::host());
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        c.config = Some(ContainerConfig {
            entrypoint: entrypoint.map(v),
            cmd: cmd.map(v),
            ..ContainerConfig::default()
        });
        c
    }

    #[test]
    fn argv_follows_docker() {
        let c = config(Some(&["/ep"]), Some(&["a"]));
        let mut o = RunImageOptions::default();
        assert_eq!(argv(&c, &o), ["/ep", "a"]);
        o.command = vec!["b".into()];
        assert_eq!(argv(&c, &o), ["/ep", "b"]);
        o.command.clear();
        o.entrypoint = Some(vec!["/x".into()]);
        assert_eq!(argv(&c, &o), ["/x"], "a new entrypoint drops CMD");
        o.entrypoint = Some(Vec::new());
        o.command = vec!["sh".into()];
        assert_eq!(argv(&c, &o), ["sh"]);
        assert!(argv(&config(None, None), &RunImageOptions::default()).is_empty());
    }
}
