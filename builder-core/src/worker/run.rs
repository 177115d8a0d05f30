//! RUN on the local worker: mounts, user, the executor, and the layer of what changed.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_dockerfile_parser::bytes::{to_bytes, to_path};
use sha2::{Digest as _, Sha256};

use super::{LocalWorker, LocalWorkerConfig, WorkerError, blocking, finish, prepare, view};
use crate::cache::LayerRef;
use crate::exec::{Mount, NetworkMode, OutputSink, RunSpec, Security};
use crate::fsroot::Root;
use crate::graph::{Network, RunMount, RunOp, SourceRef};
use crate::progress::EventSink;
use crate::snapshot::{Active, View};
use crate::solver::{FsState, StepContext};

/// The hostname RUN steps see.
pub const BUILD_HOSTNAME: &str = "kiln";

/// What must stay alive while the command runs.
struct Prepared {
    active: Active,
    spec: RunSpec,
    _views: Vec<View>,
    // Before the scratch directory its sockets live in.
    _relays: Vec<super::ssh::AgentRelay>,
    _scratch: crate::scratch::ScratchDir,
    /// Locks of `sharing=locked` and `sharing=private` cache mounts, held while the command runs.
    _locks: Vec<std::fs::File>,
}

fn open_lock(path: &Path) -> Result<std::fs::File, WorkerError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open", path))
}

/// The directory a cache mount uses, created with the mount's owner and mode on first use, and
/// the lock to hold while the command runs. `shared`: one directory, no lock. `locked`: one
/// directory, and an exclusive lock that makes other users (in this build or another) wait.
/// `private`: the first instance of the id that nobody holds, or a new one; instances persist
/// and are reused, as in BuildKit, so each concurrent writer has a directory of its own.
fn cache_mount_dir(
    cfg: &LocalWorkerConfig,
    id: &str,
    sharing: &str,
    (uid, gid, mode): (u32, u32, u32),
) -> Result<(PathBuf, Option<std::fs::File>), WorkerError> {
    let base = cfg.store.state_dir().join("cache-mounts");
    std::fs::create_dir_all(&base).map_err(io_err("create", &base))?;
    let name = hex::encode(Sha256::digest(id.as_bytes()));
    let (dir, lock) = match sharing {
        "locked" => {
            let lock = open_lock(&base.join(format!("{name}.lock")))?;
            lock.lock()
                .map_err(io_err("lock", &base.join(format!("{name}.lock"))))?;
            (base.join(&name), Some(lock))
        }
        "private" => {
            let mut n = 0usize;
            loop {
                let instance = if n == 0 {
                    name.clone()
                } else {
                    format!("{name}-{n}")
                };
                let lock_path = base.join(format!("{instance}.private.lock"));
                let lock = open_lock(&lock_path)?;
                match lock.try_lock() {
                    Ok(()) => break (base.join(instance), Some(lock)),
                    Err(std::fs::TryLockError::WouldBlock) => n += 1,
                    Err(std::fs::TryLockError::Error(e)) => {
                        return Err(io_err("lock", &lock_path)(e));
                    }
                }
            }
        }
        _ => (base.join(&name), None),
    };
    if !dir.exists() {
        // Made under a temporary name and renamed, so a concurrent first use sees either no
        // directory or one with its owner and mode already set.
        let tmp = base.join(format!(
            ".new-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir(&tmp).map_err(io_err("create", &tmp))?;
        std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).map_err(io_err("chown", &tmp))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &tmp))?;
        if std::fs::rename(&tmp, &dir).is_err() {
            // Someone else created it first: theirs is as good.
            let _ = std::fs::remove_dir(&tmp);
        }
    }
    Ok((dir, lock))
}

static TMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WorkerError {
    let path = path.to_path_buf();
    move |source| {
        WorkerError::Io(crate::report::IoError {
            op: what,
            path,
            source,
        })
    }
}

fn write_private(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    mode: u32,
    owner: (u32, u32),
) -> Result<PathBuf, WorkerError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("create", &path))?;
    f.write_all(bytes).map_err(io_err("write", &path))?;
    drop(f);
    std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1))
        .map_err(io_err("chown", &path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("chmod", &path))?;
    Ok(path)
}

/// The local directories (the context, named directory contexts) a step's bind mounts read.
type LocalDirs = std::collections::BTreeMap<SourceRef, super::local_dir::LocalDir>;

/// Whether a bind of `dir` can be the directory itself: only when no `.dockerignore` pattern
/// excludes anything, so the mount shows exactly what COPY sees. Symlinks inside a bind
/// resolve in the step's own root, never on the host, so they need no check here.
fn binds_directly(dir: &super::local_dir::LocalDir) -> bool {
    dir.ctx.matcher().is_empty()
}

/// A throw-away copy of a bind mount's source, for `rw` (BuildKit lets the command write to
/// such a mount and discards the writes, so the source, the context or a stage's snapshot,
/// must never see them) and for read-only binds of a context with `.dockerignore` exclusions
/// (the mount must show what COPY sees). The copy goes through the COPY machinery: confined
/// to its root, symlinks kept as links, `.dockerignore`d context files absent.
fn writable_copy(
    scratch: &Path,
    index: usize,
    source: &str,
    fs: &dyn crate::copy::SourceFs,
    is_dir: bool,
) -> Result<PathBuf, WorkerError> {
    let dir = scratch.join(format!("rw-{index}"));
    std::fs::create_dir(&dir).map_err(io_err("create", &dir))?;
    let dest = Root::open(&dir)?;
    let req = crate::copy::CopyRequest::new(&[source], "/");
    let sel = crate::copy::select(fs, &req).map_err(WorkerError::from)?;
    let opts = crate::copy::ApplyOptions::default();
    crate::copy::apply(fs, &sel, &req, &dest, &opts).map_err(WorkerError::from)?;
    if is_dir {
        return Ok(dir);
    }
    let name = to_path(source.trim_end_matches('/'))
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    Ok(dir.join(name))
}

fn prepare_run(
    cfg: &LocalWorkerConfig,
    parent: &FsState,
    run: &RunOp,
    sources: &std::collections::BTreeMap<SourceRef, FsState>,
    locals: &LocalDirs,
    emulator: Option<&super::emulate::Emulator>,
) -> Result<Prepared, WorkerError> {
    std::fs::create_dir_all(&cfg.state_dir).map_err(io_err("create", &cfg.state_dir))?;
    let scratch = crate::scratch::ScratchDir::new_in(&cfg.state_dir, "run-")
        .map_err(io_err("create a directory in", &cfg.state_dir))?;
    let active = prepare(cfg, parent)?;
    let root = Root::open(active.root())?;
    let user = super::resolve_user(&root, &run.user)?;
    let mut env = run.env.clone();
    let mut mounts = Vec::new();
    let mut views = Vec::new();
    let mut relays = Vec::new();
    let mut locks = Vec::new();
    // Without the `F` flag the kernel looks the interpreter up in the step's own root.
    for interpreter in emulator.iter().flat_map(|e| &e.binds) {
        mounts.push(Mount::Bind {
            source: interpreter.clone(),
            target: interpreter.clone(),
            readonly: true,
        });
    }
    for (i, m) in run.mounts.iter().enumerate() {
        match m {
            RunMount::Bind {
                from,
                source,
                target,
                readonly,
            } => {
                let host = match from {
                    SourceRef::Context | SourceRef::Dir(_) => {
                        let dir = locals.get(from).ok_or(WorkerError::Unsupported(
                            "bind mounts of the context in a build without one",
                        ))?;
                        let host = dir.ctx.root().real_path(&to_path(source))?;
                        if *readonly && binds_directly(dir) {
                            host
                        } else {
                            writable_copy(scratch.path(), i, source, &dir.source(), host.is_dir())?
                        }
                    }
                    other => {
                        let state = sources.get(other).ok_or(WorkerError::Unsupported(
                            "a mount source that was not resolved",
                        ))?;
                        let v = view(cfg, state)?
                            .ok_or(WorkerError::Unsupported("bind mounts of an empty stage"))?;
                        let src_root = Root::open(v.path())?;
                        let p = src_root.real_path(&to_path(source))?;
                        let p = if *readonly {
                            p
                        } else {
                            let fs = crate::copy::RootfsSource::new(&src_root);
                            writable_copy(scratch.path(), i, source, &fs, p.is_dir())?
                        };
                        views.push(v);
                        p
                    }
                };
                mounts.push(Mount::Bind {
                    source: host,
                    target: to_path(target).into_owned(),
                    readonly: *readonly,
                });
            }
            RunMount::Cache {
                id,
                target,
                readonly,
                uid,
                gid,
                mode,
                sharing,
            } => {
                let (dir, lock) = cache_mount_dir(cfg, id, sharing, (*uid, *gid, *mode))?;
                locks.extend(lock);
                mounts.push(Mount::Bind {
                    source: dir,
                    target: to_path(target).into_owned(),
                    readonly: *readonly,
                });
            }
            RunMount::Tmpfs { target, size } => mounts.push(Mount::Tmpfs {
                target: to_path(target).into_owned(),
                size: *size,
            }),
            RunMount::Secret {
                id,
                target,
                env: env_name,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(value) = cfg.secrets.get(id).map(crate::secret::Secret::expose) else {
                    if *required {
                        return Err(WorkerError::MissingSecret { id: id.clone() });
                    }
                    continue;
                };
                if let Some(name) = env_name {
                    // Kept byte for byte, as the step's other strings are.
                    let value = kiln_dockerfile_parser::bytes::decode(value).0;
                    env.push((name.clone(), value.into_owned()));
                }
                if let Some(target) = target {
                    let file = write_private(
                        scratch.path(),
                        &format!("secret-{i}"),
                        value,
                        *mode,
                        (*uid, *gid),
                    )?;
                    mounts.push(Mount::Secret {
                        source: file,
                        target: to_path(target).into_owned(),
                    });
                }
            }
            RunMount::Ssh {
                id,
                target,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(agent) = cfg.ssh_agents.get(id) else {
                    if *required {
                        return Err(WorkerError::MissingSsh { id: id.clone() });
                    }
                    continue;
                };
                let relay = super::ssh::AgentRelay::start(
                    &scratch.path().join(format!("ssh-{i}.sock")),
                    agent,
                    (*uid, *gid),
                    *mode,
                )?;
                // As BuildKit: the step's SSH clients find the (first) agent without help.
                if !env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK") {
                    env.push(("SSH_AUTH_SOCK".to_string(), target.clone()));
                }
                mounts.push(Mount::Bind {
                    source: relay.path().to_path_buf(),
                    target: to_path(target).into_owned(),
                    readonly: false,
                });
                relays.push(relay);
            }
        }
    }
    for (i, f) in run.inline.iter().enumerate() {
        let file = write_private(
            scratch.path(),
            &format!("script-{i}"),
            &to_bytes(&f.content),
            0o755,
            (user.uid, user.gid),
        )?;
        mounts.push(Mount::Bind {
            source: file,
            target: to_path(&f.name).into_owned(),
            readonly: true,
        });
    }
    let mut spec = RunSpec::new(active.root().to_path_buf(), run.argv.clone());
    spec.env = env;
    spec.cwd = to_path(&run.cwd).into_owned();
    spec.user = user;
    spec.hostname = BUILD_HOSTNAME.to_string();
    spec.network = match run.network {
        Network::None => NetworkMode::None,
        Network::Host => NetworkMode::Host,
        Network::Default if crate::exec::user_mode_available() => NetworkMode::Private,
        // Announced once per build by the builder.
        Network::Default => NetworkMode::Host,
    };
    spec.mounts = mounts;
    if run.insecure {
        spec.security = Security::Insecure;
    }
    spec.settings = run.settings.clone();
    drop(root);
    Ok(Prepared {
        active,
        spec,
        _views: views,
        _relays: relays,
        _scratch: scratch,
        _locks: locks,
    })
}

/// Runs a RUN step.
pub(super) async fn execute(
    w: &LocalWorker,
    step: &StepContext<'_>,
    run: &RunOp,
    events: EventSink,
) -> Result<Option<LayerRef>, crate::Error> {
    let cfg = w.cfg.clone();
    let (parent, run_c, sources) = (step.parent.clone(), run.clone(), step.sources.clone());
    let mut locals = LocalDirs::new();
    for m in &run.mounts {
        if let RunMount::Bind { from, .. } = m
            && super::local_dir::is_local_dir(from)
            && !locals.contains_key(from)
            && let Some(dir) = w.local_dir(from)?
        {
            locals.insert(from.clone(), dir);
        }
    }
    let emulator = super::emulate::emulator_for(step.platform).map_err(WorkerError::from)?;
    if let Some(emu) = &emulator {
        tracing::debug!(platform = %step.platform, emulator = %emu.name, "RUN under emulation");
    }
    let prepared =
        blocking(move || prepare_run(&cfg, &parent, &run_c, &sources, &locals, emulator.as_ref()))
            .await?;
    let (tx, rx) = tokio::sync::mpsc::channel(super::steplog::CHUNKS_IN_FLIGHT);
    let log = super::steplog::forward(step.id, w.cfg.step_log_limit, events, rx);
    let Prepared {
        active,
        spec,
        _views,
        _relays,
        _scratch,
        _locks,
    } = prepared;
    let (result, tail) = tokio::join!(w.cfg.executor.run(spec, OutputSink::channel(tx)), log);
    let result = result.map_err(WorkerError::from)?;
    drop(_views);
    drop(_relays);
    drop(_scratch);
    drop(_locks);
    if !result.status.success() {
        return Err(crate::Error::RunFailed {
            argv: run.argv.clone(),
            status: result.status.to_string(),
            no_network: run.network == Network::None,
            output: tail.lines(),
        });
    }
    let cfg = w.cfg.clone();
    let parent = step.parent.clone();
    Ok(blocking(move || finish(&cfg, &parent, active)).await?)
}
