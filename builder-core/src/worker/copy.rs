//! COPY, ADD and WORKDIR on the local worker. The local directories they read (the build
//! context, named directory contexts) and the input digests of the steps that read them are in
//! `local_dir`.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::copy_urls::{copy_downloads, git_sources, split_urls};
use super::local_dir::is_local_dir;
use super::{LocalWorker, LocalWorkerConfig, WorkerError, blocking, finish, prepare, view};
use crate::cache::LayerRef;
use crate::chmod::ChmodSpec;
use crate::copy::{ApplyOptions, ArchiveExtractor, CopyRequest, RootfsSource, SourceFs};
use crate::fsroot::Root;
use crate::graph::{CopyOp, SourceRef};
use crate::solver::{FsState, StepContext};

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
    let (urls, local) = split_urls(&c)?;
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
        copy_downloads(&c, &downloads, &urls, &dest, cfg.source_date_epoch)?;
        for (_scratch, tree) in &checkouts {
            // The repository's tree is copied like a directory source, never extracted.
            let src_root = Root::open(tree)?;
            let fs = RootfsSource::new(&src_root);
            let req = copy_request(&c, vec!["/".to_owned()])?;
            let opts = ApplyOptions::with_epoch(cfg.source_date_epoch);
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
                ..ApplyOptions::with_epoch(cfg.source_date_epoch)
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
