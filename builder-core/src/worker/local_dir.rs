//! Local directories a step reads like the build context (the context itself, named directory
//! contexts), each opened and walked once per build, and what the cache key and the miss
//! explanation take from them: the input digest and the file list of the steps that read them.

use std::sync::Arc;

use super::copy::copy_request;
use super::copy_urls::{split_urls, url_key_parts};
use super::{LocalWorker, WorkerError, blocking};
use crate::context::ContextIndex;
use crate::copy::{ContextSource, CopyRequest};
use crate::graph::{Op, RunMount, SourceRef};
use crate::solver::StepContext;

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

/// From this many unknown bytes on, even a handful of files is hashed on several threads.
const PARALLEL_HASH_BYTES: u64 = 64 << 20;

/// Hashes the selected files the stat cache does not know on every core, so that the digest,
/// which goes through them in order, finds them known. A cold build of a large context spends
/// most of its key computation here; so does one of a few big files (S2: 1 GiB and 256 MiB),
/// which are hashed side by side.
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
            let (_, local) = split_urls(c)?;
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
