//! The URL and git sources of ADD: their cache-key parts, and copying downloaded files.

use super::copy::{copy_from, copy_request};
use super::{LocalWorker, WorkerError};
use crate::copy::{ApplyOptions, RootfsSource};
use crate::fsroot::Root;
use crate::graph::{CopyOp, Op, SourceRef};
use crate::solver::StepContext;

/// The key parts of a step's `ADD <url>` sources. With `--checksum` the content is known
/// without fetching it, so a cache hit never touches the network; without, the file is fetched
/// (once per build) to learn its digest.
pub(super) async fn url_key_parts(
    w: &LocalWorker,
    step: &StepContext<'_>,
) -> Result<Vec<String>, WorkerError> {
    let Op::Copy(c) = step.op else {
        return Ok(Vec::new());
    };
    if c.from != SourceRef::Context {
        return Ok(Vec::new());
    }
    let (urls, _) = split_urls(c)?;
    let mut parts = Vec::new();
    for src in git_sources(c)? {
        let commit = w.git_commits.commit(&src).await?;
        parts.push(super::git::key_part(&src, &commit, c.keep_git_dir));
    }
    for url in &urls {
        parts.push(match &c.checksum {
            Some(sum) => format!(
                "url-checksum:{}",
                super::download::parse_checksum(url, sum)?
            ),
            None => w.downloads.fetch(url, None).await?.key_part(),
        });
    }
    Ok(parts)
}

/// The git repositories among an `ADD`'s sources (only `ADD` reads them, and only from the
/// main context's instruction: a `--from` source is a path in that stage).
pub(super) fn git_sources(c: &CopyOp) -> Result<Vec<super::git::GitSource>, WorkerError> {
    if c.from != SourceRef::Context {
        return Ok(Vec::new());
    }
    let git: Vec<&String> = c.sources.iter().filter(|s| super::git::is_git(s)).collect();
    if !git.is_empty() && !c.add {
        return Err(WorkerError::Unsupported(
            "COPY from a git repository (only ADD fetches repositories)",
        ));
    }
    git.into_iter()
        .map(|s| super::git::GitSource::parse(s))
        .collect()
}

/// The URL sources of an `ADD` and its local ones (git repositories are in neither); several
/// sources need a directory destination, as Docker says. Only the main context's instruction
/// has URLs: every source of a `--from` is a path there.
pub(super) fn split_urls(c: &CopyOp) -> Result<(Vec<String>, Vec<String>), WorkerError> {
    if c.from != SourceRef::Context {
        return Ok((Vec::new(), c.sources.clone()));
    }
    let (urls, local): (Vec<String>, Vec<String>) = c
        .sources
        .iter()
        .filter(|s| !super::git::is_git(s))
        .cloned()
        .partition(|s| crate::copy::is_url(s));
    if !urls.is_empty() && !c.add {
        return Err(WorkerError::Unsupported(
            "COPY from a URL (only ADD downloads URLs)",
        ));
    }
    let remote = c.sources.len() - local.len();
    if remote > 0 && c.sources.len() > 1 && !c.dest.ends_with('/') {
        return Err(super::download::DownloadError::DestNotDir {
            dest: c.dest.clone(),
        }
        .into());
    }
    Ok((urls, local))
}

/// Copies downloaded files into `dest` with `ADD`'s rules for URLs (never extracted; root
/// owned unless `--chown`; mode 0600 unless `--chmod`).
pub(super) fn copy_downloads(
    c: &CopyOp,
    files: &[std::sync::Arc<super::download::Downloaded>],
    urls: &[String],
    dest: &Root,
    source_date_epoch: Option<i64>,
) -> Result<(), WorkerError> {
    for (file, url) in files.iter().zip(urls) {
        if c.dest.ends_with('/') && super::download::file_name(url).is_none() {
            return Err(super::download::DownloadError::NoFileName { url: url.clone() }.into());
        }
        let mut req = copy_request(c, vec![file.name.clone()])?;
        req.is_add = false;
        req.excludes.clear();
        req.parents = false;
        if req.chown.is_none() {
            req.chown = Some("0:0".to_string());
        }
        let src_root = Root::open(&file.dir)?;
        let fs = RootfsSource::new(&src_root);
        let opts = ApplyOptions::with_epoch(source_date_epoch);
        copy_from(&fs, &req, dest, &opts)?;
    }
    Ok(())
}
