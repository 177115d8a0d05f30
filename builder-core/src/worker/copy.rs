//! COPY, ADD and WORKDIR on the local worker, and the input digests of steps that read the build
//! context.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::copy_urls::{copy_downloads, git_sources, split_urls, url_key_parts};
use super::{LocalWorker, LocalWorkerConfig, WorkerError, blocking, finish, prepare, view};
use crate::cache::LayerRef;
use crate::chmod::ChmodSpec;
use crate::context::ContextIndex;
use crate::copy::{
    ApplyOptions, ArchiveExtractor, ContextSource, CopyRequest, RootfsSource, SourceFs,
};
use crate::fsroot::Root;
use crate::graph::{CopyOp, Op, RunMount, SourceRef};
use crate::solver::{FsState, StepContext};

/// A local directory a step reads like the build context: the main context or a named
/// directory context, with its index and hasher.
#[derive(Clone)]
pub(crate) struct LocalDir {
    pub(crate) ctx: Arc<crate::context::BuildContext>,
    pub(crate) index: Arc<ContextIndex>,
    pub(crate) hasher: Arc<crate::context::CachingHasher>,
}

impl LocalDir {
    pub(crate) fn source(&self) -> ContextSource<'_> {
        ContextSource::new(self.ctx.root(), &self.index, self.hasher.as_ref())
    }
}

/// Whether a source is read like the build context (the context or a named directory).
pub(crate) fn is_local_dir(source: &SourceRef) -> bool {
    matches!(source, SourceRef::Context | SourceRef::Dir(_))
}

impl LocalWorker {
    /// The directory `source` names (the build context or a `--build-context NAME=DIR`),
    /// opened and walked once per build; `None` for stages and images, and for the context in
    /// a build without one.
    pub(crate) fn local_dir(&self, source: &SourceRef) -> Result<Option<LocalDir>, WorkerError> {
        match source {
            SourceRef::Context => {
                let (Some(index), Some(ctx)) = (self.context_index()?, self.cfg.context.clone())
                else {
                    return Ok(None);
                };
                Ok(Some(LocalDir {
                    ctx,
                    index,
                    hasher: self.hasher.clone(),
                }))
            }
            SourceRef::Dir(key) => {
                let mut dirs = self
                    .named_dirs
                    .lock()
                    .map_err(|_| WorkerError::Task("named context lock poisoned".into()))?;
                if let Some(d) = dirs.get(key) {
                    return Ok(Some(d.clone()));
                }
                let Some(crate::context::NamedContext::Dir(path)) = self.cfg.contexts.by_key(key)
                else {
                    return Err(WorkerError::Unsupported(
                        "a directory build context that was not given",
                    ));
                };
                let ctx = Arc::new(crate::context::BuildContext::open(path, None)?);
                let index = Arc::new(ctx.walk()?);
                let d = LocalDir {
                    ctx,
                    index,
                    hasher: Arc::new(crate::context::CachingHasher::new(
                        crate::context::StatCache::new(),
                    )),
                };
                dirs.insert(key.clone(), d.clone());
                Ok(Some(d))
            }
            SourceRef::Stage(_) | SourceRef::Image(_) => Ok(None),
        }
    }

    /// The build context's index, walked once per worker (that is, once per build), with the
    /// context's stat cache loaded first.
    pub(crate) fn context_index(&self) -> Result<Option<Arc<ContextIndex>>, WorkerError> {
        let Some(ctx) = &self.cfg.context else {
            return Ok(None);
        };
        let res = self.context_index.get_or_init(|| {
            // The walk puts every digest the loaded cache still vouches for into the index's
            // entries, and the hasher would find nothing else in it (it asks with the same
            // stat key), so the loaded cache is dropped right after the walk (for 100,000
            // files it is ~11 MB). `save_stat_cache` writes those digests back from the index.
            let loaded = match &self.stat_cache_path {
                Some(path) => crate::context::StatCache::load(path),
                None => crate::context::StatCache::new(),
            };
            let index = ctx.walk_cached(&loaded).map_err(Arc::new)?;
            drop(loaded);
            // No room is reserved in the hasher's cache: the files hashed ahead of a step's
            // key keep their digests in the index's entries (`CachingHasher::prime`), and only
            // the few hashed otherwise get a record.
            Ok(Arc::new(index))
        });
        match res {
            Ok(index) => Ok(Some(index.clone())),
            Err(e) => Err(WorkerError::ContextWalk(e.clone())),
        }
    }
}

/// Starts walking the build context on a thread of its own, so that the walk overlaps the
/// start of the build (base images, cache history) instead of waiting for the first step that
/// reads the context. A step that needs the index waits for this walk; a failure is reported
/// by the first step that asks, as without the prefetch.
pub(crate) fn prefetch_context(w: &Arc<LocalWorker>) {
    if w.cfg.context.is_none() || w.context_index.get().is_some() {
        return;
    }
    let worker = w.clone();
    let spawned = std::thread::Builder::new()
        .name("kiln-context".into())
        .spawn(move || {
            let _ = worker.context_index();
        });
    if let Err(e) = spawned {
        tracing::debug!(
            "cannot start the context walk early: {e}",
            e = crate::report::chain(&e)
        );
    }
}

/// Whether any step of `graph` reads the build context (`COPY`/`ADD` of local sources, bind
/// mounts of the context).
pub(crate) fn reads_context(graph: &crate::graph::BuildGraph) -> bool {
    graph
        .stages
        .values()
        .flat_map(|s| &s.steps)
        .any(|step| match &step.op {
            Op::Copy(c) => {
                c.from == SourceRef::Context && c.sources.iter().any(|s| !crate::copy::is_url(s))
            }
            Op::Run(run) => run.mounts.iter().any(|m| {
                matches!(
                    m,
                    RunMount::Bind {
                        from: SourceRef::Context,
                        ..
                    }
                )
            }),
            _ => false,
        })
}

fn parse_chmod(c: &CopyOp) -> Result<Option<ChmodSpec>, WorkerError> {
    Ok(c.chmod.as_deref().map(ChmodSpec::parse).transpose()?)
}

pub(super) fn copy_request(c: &CopyOp, sources: Vec<String>) -> Result<CopyRequest, WorkerError> {
    let chmod = parse_chmod(c)?;
    Ok(CopyRequest {
        sources,
        dest: c.dest.clone(),
        workdir: "/".to_string(),
        chown: c.chown.clone(),
        chmod,
        excludes: c.exclude.clone(),
        parents: c.parents,
        link: c.link,
        is_add: c.add,
    })
}

/// The digest of a step's context inputs (see [`crate::solver::Worker::input_digest`]).
pub(super) async fn input_digest(
    w: &LocalWorker,
    step: &StepContext<'_>,
) -> Result<Option<String>, WorkerError> {
    let url_parts = url_key_parts(w, step).await?;
    let groups = context_requests(w, step)?;
    if groups.is_empty() {
        return Ok((!url_parts.is_empty()).then(|| url_parts.join(",")));
    }
    blocking(move || {
        let mut parts = url_parts;
        for (dir, requests) in &groups {
            let fs = dir.source();
            for req in requests {
                let sel = crate::copy::select(&fs, req)?;
                prehash(dir, &sel)?;
                parts.push(sel.digest(&fs, req)?.hex());
            }
        }
        Ok(Some(parts.join(",")))
    })
    .await
}

/// Hashes the selected files the stat cache does not know on every core, so that the digest,
/// which goes through them in order, finds them known. A cold build of a large context spends
/// most of its key computation here; so does one of a few big files (S2: 1 GiB and 256 MiB),
/// which are hashed side by side.
/// From this many unknown bytes on, even a handful of files is hashed on several threads.
const PARALLEL_HASH_BYTES: u64 = 64 << 20;

fn prehash(dir: &LocalDir, sel: &crate::copy::Selection) -> Result<(), WorkerError> {
    // An item is a copy of its index entry; its contents are the index's own entries.
    let unknown: Vec<(&crate::context::Entry, bool)> = sel
        .items
        .iter()
        .flat_map(|i| {
            std::iter::once((&i.entry, false)).chain(i.contents.iter().map(|s| (&*s.entry, true)))
        })
        .filter(|(e, _)| e.kind == crate::context::EntryKind::File && e.digest.get().is_none())
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bytes: u64 = unknown.iter().map(|(e, _)| e.size).sum();
    if threads < 2 || unknown.len() < 2 || (unknown.len() < 64 && bytes < PARALLEL_HASH_BYTES) {
        return Ok(());
    }
    crate::context::hash::prime_all(dir.ctx.root(), dir.hasher.as_ref(), &unknown, threads)
        .map_err(crate::copy::CopyError::from)?;
    Ok(())
}

/// The context files a step reads with a digest of each (see
/// [`crate::solver::Worker::input_files`]).
pub(super) async fn input_files(
    w: &LocalWorker,
    step: &StepContext<'_>,
) -> Result<crate::cache::FileDigests, WorkerError> {
    let groups = context_requests(w, step)?;
    if groups.is_empty() {
        return Ok(crate::cache::FileDigests::new());
    }
    blocking(move || {
        let mut out = crate::cache::FileDigests::new();
        for (dir, req) in groups
            .iter()
            .flat_map(|(d, rs)| rs.iter().map(move |r| (d, r)))
        {
            let fs = dir.source();
            let sel = crate::copy::select(&fs, req)?;
            if out.is_empty() {
                // Room for exactly this selection's entries (most steps read one).
                let n = sel.items.iter().map(|i| i.contents.len() + 1).sum();
                out = crate::cache::FileDigests::with_shared_capacity(n);
            }
            // The entries `each_entry_digest` goes through, in its order: an item that is not
            // a directory (not shared with the index), then its contents (shared).
            let mut entries = sel.items.iter().flat_map(|i| {
                std::iter::once(None)
                    .filter(|_| !i.entry.is_dir())
                    .chain(i.contents.iter().map(Some))
            });
            sel.each_entry_digest(&fs, req, |path, digest| {
                // Half the digest is plenty to tell two versions of a file apart and halves
                // the size of the manifests of large contexts.
                let mut hex = [0u8; 32];
                // Cannot fail: the buffer is exactly twice the bytes.
                if hex::encode_to_slice(&digest.0[..16], &mut hex).is_err() {
                    hex = [b'0'; 32];
                }
                match entries.next().flatten() {
                    Some(s) if s.entry.path == path => out.push_shared(&s.entry, hex),
                    _ => out.push(
                        &path.to_string_lossy(),
                        std::str::from_utf8(&hex).unwrap_or_default(),
                    ),
                }
            })?;
        }
        out.finish();
        Ok(out)
    })
    .await
}

/// The reads of local directories (the context, named directory contexts) a step makes, as
/// copy requests grouped by directory, in the order the step names them.
fn context_requests(
    w: &LocalWorker,
    step: &StepContext<'_>,
) -> Result<Vec<(LocalDir, Vec<CopyRequest>)>, WorkerError> {
    let wanted: Vec<(&SourceRef, CopyRequest)> = match step.op {
        Op::Copy(c) if is_local_dir(&c.from) && !c.sources.is_empty() => {
            let local = match c.from {
                SourceRef::Context => split_urls(c)?.1,
                _ => c.sources.clone(),
            };
            if local.is_empty() {
                return Ok(Vec::new());
            }
            vec![(&c.from, copy_request(c, local)?)]
        }
        Op::Run(run) => run
            .mounts
            .iter()
            .filter_map(|m| match m {
                RunMount::Bind { from, source, .. } if is_local_dir(from) => {
                    Some((from, CopyRequest::new(&[source.as_str()], "/mnt/")))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut groups: Vec<(&SourceRef, LocalDir, Vec<CopyRequest>)> = Vec::new();
    for (from, req) in wanted {
        if let Some(g) = groups.iter_mut().find(|g| g.0 == from) {
            g.2.push(req);
            continue;
        }
        let Some(dir) = w.local_dir(from)? else {
            return Err(WorkerError::Unsupported(
                "reading the build context in a build without one",
            ));
        };
        groups.push((from, dir, vec![req]));
    }
    Ok(groups.into_iter().map(|(_, d, r)| (d, r)).collect())
}

/// Extracts ADD archives with the confined layer applier.
struct LayerExtractor;

impl ArchiveExtractor for LayerExtractor {
    fn extract(
        &self,
        dest: &Root,
        dest_dir: &Path,
        tar: &mut dyn Read,
        owner: Option<(u32, u32)>,
    ) -> Result<Vec<PathBuf>, String> {
        let real = dest
            .real_path(dest_dir)
            .map_err(|e| crate::report::chain(&e))?;
        let sub = Root::open(&real).map_err(|e| crate::report::chain(&e))?;
        let opts = crate::layer::ApplyOptions {
            chown: owner.is_none(),
            ..Default::default()
        };
        crate::layer::apply_layer(&sub, tar, crate::changes::WhiteoutStyle::Apply, &opts)
            .map_err(|e| crate::report::chain(&e))?;
        if let Some((uid, gid)) = owner {
            // Walk without following symlinks; every path is changed through the confined root.
            for entry in walkdir::WalkDir::new(&real).follow_links(false) {
                let entry = entry.map_err(|e| crate::report::chain(&e))?;
                let rel = entry
                    .path()
                    .strip_prefix(&real)
                    .map_err(|e| crate::report::chain(&e))?;
                sub.lchown(rel, uid, gid)
                    .map_err(|e| crate::report::chain(&e))?;
            }
        }
        Ok(vec![crate::fsroot::clean(dest_dir)])
    }
}

fn write_inline(cfg: &LocalWorkerConfig, dest: &Root, c: &CopyOp) -> Result<(), WorkerError> {
    let chmod = parse_chmod(c)?;
    let owner = match &c.chown {
        Some(spec) => Some(
            crate::userdb::UserDb::load(dest)
                .or_else(|e| {
                    if crate::userdb::UserDb::chown_needs_lookup(spec) {
                        Err(e)
                    } else {
                        Ok(Default::default())
                    }
                })?
                .resolve_chown(spec)?,
        ),
        None => None,
    };
    for f in &c.inline {
        let path = if c.dest.ends_with('/') || c.inline.len() > 1 {
            format!("{}/{}", c.dest.trim_end_matches('/'), f.name)
        } else {
            c.dest.clone()
        };
        let mode = chmod.as_ref().map_or(0o644, |m| m.apply(0o644, false));
        // Name and content as the Dockerfile's bytes.
        let path = kiln_dockerfile_parser::bytes::to_path(&path).into_owned();
        let mut file = dest.create_file(&path, mode)?;
        std::io::Write::write_all(
            &mut file,
            &kiln_dockerfile_parser::bytes::to_bytes(&f.content),
        )
        .map_err(|source| {
            WorkerError::Io(crate::report::IoError {
                op: "write",
                path: path.clone(),
                source,
            })
        })?;
        drop(file);
        if let Some((uid, gid)) = owner {
            dest.lchown(&path, uid, gid)?;
        }
        if let Some(epoch) = cfg.source_date_epoch {
            dest.set_times(&path, epoch, 0)?;
        }
    }
    Ok(())
}

/// COPY or ADD.
pub(super) async fn execute_copy(
    w: &LocalWorker,
    step: &StepContext<'_>,
    c: &CopyOp,
) -> Result<Option<LayerRef>, WorkerError> {
    let cfg = w.cfg.clone();
    let parent = step.parent.clone();
    let c = c.clone();
    let source_state: Option<FsState> = match &c.from {
        SourceRef::Context | SourceRef::Dir(_) => None,
        other => Some(
            step.sources
                .get(other)
                .cloned()
                .ok_or(WorkerError::Unsupported(
                    "a COPY source that was not resolved",
                ))?,
        ),
    };
    let (urls, local) = match c.from {
        SourceRef::Context => split_urls(&c)?,
        _ => (Vec::new(), c.sources.clone()),
    };
    let mut downloads = Vec::new();
    for url in &urls {
        downloads.push(w.downloads.fetch(url, c.checksum.as_deref()).await?);
    }
    // Repositories are checked out into scratch directories that live until the copy is done.
    let mut checkouts = Vec::new();
    for src in git_sources(&c)? {
        let commit = w.git_commits.commit(&src).await?;
        let scratch = std::fs::create_dir_all(&cfg.state_dir)
            .and_then(|()| tempfile::tempdir_in(&cfg.state_dir))
            .map_err(|source| {
                WorkerError::Io(crate::report::IoError {
                    op: "create a directory in",
                    path: cfg.state_dir.clone(),
                    source,
                })
            })?;
        let tree = super::git::checkout(&src, &commit, c.keep_git_dir, scratch.path()).await?;
        checkouts.push((scratch, tree));
    }
    let local_dir = if is_local_dir(&c.from) && !local.is_empty() {
        w.local_dir(&c.from)?
    } else {
        None
    };
    blocking(move || {
        // A COPY of one directory from a local directory, and nothing else, may start from
        // its previous result (see `copy_reuse`).
        let reuse = match &local_dir {
            Some(dir)
                if urls.is_empty() && checkouts.is_empty() && c.inline.is_empty() && !c.add =>
            {
                super::copy_reuse::Candidate::new(
                    &cfg,
                    &parent,
                    dir,
                    copy_request(&c, local.clone())?,
                )
            }
            _ => None,
        };
        if let (Some(cand), Some(dir)) = (&reuse, &local_dir) {
            match cand.try_reuse(&cfg, &parent, dir) {
                Ok(Some(layer)) => return Ok(Some(layer)),
                Ok(None) => {}
                Err(e) => tracing::debug!("copying afresh: {e}", e = crate::report::chain(&e)),
            }
        }
        let started = super::copy_reuse::start_time();
        let direct = if urls.is_empty()
            && checkouts.is_empty()
            && c.inline.is_empty()
            && !local.is_empty()
        {
            let req = copy_request(&c, local.clone())?;
            if super::copy_direct::eligible(&req) {
                super::copy_direct::prepare(&cfg, &parent, &req).unwrap_or_else(|e| {
                    tracing::debug!(
                        "copying through the overlay: {e}",
                        e = crate::report::chain(&e)
                    );
                    None
                })
            } else {
                None
            }
        } else {
            None
        };
        let direct_mode = direct.is_some();
        let active = match direct {
            Some(active) => active,
            None => prepare(&cfg, &parent)?,
        };
        let dest = Root::open(active.root())?;
        write_inline(&cfg, &dest, &c)?;
        copy_downloads(
            &c,
            &downloads,
            &urls,
            &dest,
            cfg.source_date_epoch.map(|e| (e, 0)),
        )?;
        for (_scratch, tree) in &checkouts {
            // The repository's tree is copied like a directory source, never extracted.
            let src_root = Root::open(tree)?;
            let fs = RootfsSource::new(&src_root);
            let req = copy_request(&c, vec!["/".to_owned()])?;
            let opts = ApplyOptions {
                extractor: None,
                skip_chown: false,
                created_dir_mtime: cfg.source_date_epoch.map(|e| (e, 0)),
            };
            copy_from(&fs, &req, &dest, &opts)?;
        }
        let mut deferred = Vec::new();
        if !local.is_empty() {
            let req = copy_request(&c, local.clone())?;
            let opts = ApplyOptions {
                extractor: if c.add && c.unpack != Some(false) {
                    Some(&LayerExtractor)
                } else {
                    None
                },
                skip_chown: false,
                created_dir_mtime: cfg.source_date_epoch.map(|e| (e, 0)),
            };
            match (&c.from, &source_state) {
                (SourceRef::Context | SourceRef::Dir(_), _) => {
                    let Some(dir) = &local_dir else {
                        return Err(WorkerError::Unsupported(
                            "COPY from the context in a build without one",
                        ));
                    };
                    let fs = dir.source();
                    let own;
                    let sel = match &reuse {
                        Some(cand) => cand.selection(),
                        None => {
                            own = crate::copy::select(&fs, &req)?;
                            &own
                        }
                    };
                    let min = direct_mode.then_some(super::deferred::DEFER_MIN);
                    deferred = crate::copy::apply_deferring(&fs, sel, &req, &dest, &opts, min)?;
                }
                (_, Some(state)) => {
                    let view = view(&cfg, state)?;
                    let empty;
                    let src_root = match &view {
                        Some(v) => Root::open(v.path())?,
                        None => {
                            empty = tempfile::tempdir_in(&cfg.state_dir).map_err(|source| {
                                WorkerError::Io(crate::report::IoError {
                                    op: "create a directory in",
                                    path: cfg.state_dir.clone(),
                                    source,
                                })
                            })?;
                            Root::open(empty.path())?
                        }
                    };
                    let fs = RootfsSource::new(&src_root);
                    copy_from(&fs, &req, &dest, &opts)?;
                    drop(view);
                }
                (_, None) => {
                    return Err(WorkerError::Unsupported(
                        "a COPY source that was not resolved",
                    ));
                }
            }
        }
        drop(dest);
        let layer = if direct_mode {
            super::copy_direct::finish(&cfg, &parent, active, deferred)?
        } else {
            finish(&cfg, &parent, active)?
        };
        if let (Some(cand), Some(layer)) = (reuse, &layer) {
            cand.remember(&parent, layer, started);
        }
        Ok(layer)
    })
    .await
}

pub(super) fn copy_from(
    fs: &dyn SourceFs,
    req: &CopyRequest,
    dest: &Root,
    opts: &ApplyOptions<'_>,
) -> Result<(), WorkerError> {
    let sel = crate::copy::select(fs, req)?;
    crate::copy::apply(fs, &sel, req, dest, opts)?;
    Ok(())
}

/// WORKDIR: create the directory (owned by USER when it is new), as BuildKit does.
pub(super) async fn execute_workdir(
    w: &LocalWorker,
    step: &StepContext<'_>,
    path: &str,
    user: &str,
) -> Result<Option<LayerRef>, WorkerError> {
    let cfg = w.cfg.clone();
    let parent = step.parent.clone();
    let (path, user) = (
        kiln_dockerfile_parser::bytes::to_path(path).into_owned(),
        user.to_string(),
    );
    blocking(move || {
        let active = prepare(&cfg, &parent)?;
        let root = Root::open(active.root())?;
        let existed = root.stat(&path).is_ok();
        root.mkdir_all(&path, 0o755)?;
        if !existed && !user.is_empty() {
            let u = super::resolve_user(&root, &user)?;
            root.lchown(&path, u.uid, u.gid)?;
        }
        if !existed && let Some(epoch) = cfg.source_date_epoch {
            root.set_times(&path, epoch, 0)?;
        }
        drop(root);
        finish(&cfg, &parent, active)
    })
    .await
}
