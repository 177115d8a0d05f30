//! Pushing an image from the content store: the image is prepared as the exporters prepare it
//! (layers compressed once, the result remembered), then for each target repository every blob
//! is checked with HEAD, mounted from another repository of the same registry where kiln knows it
//! lives, or uploaded (monolithic, or in chunks when asked), and only then is the manifest put
//! under each tag. A push that fails half way therefore leaves blobs but never a tag.
//!
//! Where blobs live is remembered per registry in `kiln/registry/sources/` (a hint for mounts:
//! losing it only costs an upload).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::client::{ATTEMPTS, Client, backoff, pull_scope, push_scope};
use super::{Reference, RegistryError, RegistryOptions};
use crate::content::{ContentStore, Digest};
use crate::image::{Compression, Descriptor};
use crate::layer::CompressOptions;

/// How to push.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PushOptions {
    /// Layer compression in the registry.
    pub compression: Compression,
    /// Threads and levels for compressing.
    pub compress: CompressOptions,
    /// Upload blobs larger than this in chunks of this size (`None`: one request per blob).
    pub chunk_size: Option<u64>,
    /// Blobs uploaded at once.
    pub concurrency: usize,
    /// Told about each blob upload and every chunk of bytes sent, for a progress display.
    pub progress: Option<PushProgressFn>,
}

/// How blobs are uploaded: in chunks of this size or whole, telling whom.
struct HowToUpload {
    chunk: Option<u64>,
    progress: Option<PushProgressFn>,
}

/// A step of a push, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushProgress {
    /// A blob the registry lacks starts uploading; this many bytes will be sent.
    Blob {
        /// The blob's size.
        size: u64,
    },
    /// This many more bytes were handed to the connection.
    Sent(u64),
}

/// The callback of [`PushOptions::progress`]; called from upload tasks, so it must be cheap.
#[derive(Clone)]
pub struct PushProgressFn(pub Arc<dyn Fn(PushProgress) + Send + Sync>);

impl std::fmt::Debug for PushProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushProgressFn")
    }
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            compression: Compression::Gzip,
            compress: CompressOptions::default(),
            chunk_size: None,
            concurrency: 4,
            progress: None,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest in the registry.
    pub digest: Digest,
    /// The references written (one per tag).
    pub references: Vec<Reference>,
    /// Blobs uploaded (not found, not mounted).
    pub uploaded: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Blobs the registry already had.
    pub existing: usize,
}

#[derive(Default)]
struct Counts {
    uploaded: usize,
    mounted: usize,
    existing: usize,
}

enum BlobOutcome {
    Existing,
    Mounted,
    Uploaded,
}

/// Pushes the image `manifest` from `store` (an image manifest, or the index of a
/// multi-platform image) to every reference in `targets`, with its attachments as BuildKit
/// pushes them (see `export::prepare_outgoing`).
pub async fn push(
    store: Arc<ContentStore>,
    opts: &RegistryOptions,
    manifest: &Descriptor,
    targets: &[Reference],
    popts: &PushOptions,
) -> Result<Pushed, RegistryError> {
    let first = targets
        .first()
        .map_or_else(|| manifest.digest.to_string(), ToString::to_string);
    let st = store.clone();
    let desc = manifest.clone();
    let (compression, copts) = (popts.compression, popts.compress.clone());
    let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
    let outgoing = tokio::task::spawn_blocking(move || {
        crate::export::prepare_outgoing(&st, &desc, compression, &copts, &names)
    })
    .await
    .map_err(|e| RegistryError::Task(crate::report::chain(&e)))?
    .map_err(|e| RegistryError::Push {
        reference: first,
        source: Box::new(e.into()),
    })?;
    super::push_index::push_outgoing(&store, opts, &outgoing, targets, popts).await
}

/// Pushes a manifest whose blobs are all in `store`: blobs first, then the manifest under every
/// reference in `targets`.
pub(crate) async fn push_prepared(
    store: &Arc<ContentStore>,
    opts: &RegistryOptions,
    media_type: &str,
    manifest_bytes: &[u8],
    blobs: &[Descriptor],
    targets: &[Reference],
    popts: &PushOptions,
) -> Result<Pushed, RegistryError> {
    let wrap = |reference: String| {
        move |e: RegistryError| RegistryError::Push {
            reference,
            source: Box::new(e),
        }
    };
    let digest = Digest::of(manifest_bytes);
    // One upload per repository, then its tags.
    let mut repos: BTreeMap<(String, String), Vec<Reference>> = BTreeMap::new();
    for t in targets {
        repos
            .entry((t.registry().to_string(), t.repository().to_string()))
            .or_default()
            .push(t.clone());
    }
    let mut counts = Counts::default();
    let mut clients: BTreeMap<String, Client> = BTreeMap::new();
    for ((registry, repo), refs) in &repos {
        let name = refs
            .first()
            .map_or_else(|| format!("{registry}/{repo}"), ToString::to_string);
        let client = match clients.get(registry) {
            Some(c) => c.clone(),
            None => {
                let c = refs
                    .first()
                    .map(|r| opts.client(r))
                    .transpose()
                    .map_err(wrap(name.clone()))?
                    .ok_or_else(|| RegistryError::Task("empty target group".into()))?;
                clients.insert(registry.clone(), c.clone());
                c
            }
        };
        // One authenticated round trip first, so that the concurrent uploads share one token.
        client
            .ping(&[push_scope(repo)])
            .await
            .map_err(wrap(name.clone()))?;
        let sources = Sources::new(store, registry);
        upload_blobs(&client, store, repo, blobs, &sources, popts, &mut counts)
            .await
            .map_err(wrap(name.clone()))?;
        for r in refs {
            put_manifest(
                &client,
                repo,
                &r.manifest_ref(),
                media_type,
                manifest_bytes,
                digest,
            )
            .await
            .map_err(wrap(r.to_string()))?;
        }
    }
    Ok(Pushed {
        digest,
        references: targets.to_vec(),
        uploaded: counts.uploaded,
        mounted: counts.mounted,
        existing: counts.existing,
    })
}

async fn upload_blobs(
    client: &Client,
    store: &Arc<ContentStore>,
    repo: &str,
    blobs: &[Descriptor],
    sources: &Sources,
    popts: &PushOptions,
    counts: &mut Counts,
) -> Result<(), RegistryError> {
    let limit = Arc::new(tokio::sync::Semaphore::new(popts.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut seen = BTreeSet::new();
    let known = sources.load();
    for d in blobs {
        if !seen.insert(d.digest) {
            continue;
        }
        let (client, store, repo, limit, d) = (
            client.clone(),
            store.clone(),
            repo.to_string(),
            limit.clone(),
            d.clone(),
        );
        let from: Vec<String> = known
            .get(&d.digest.to_string())
            .map(|v| v.iter().filter(|r| **r != repo).cloned().collect())
            .unwrap_or_default();
        let how = HowToUpload {
            chunk: popts.chunk_size,
            progress: popts.progress.clone(),
        };
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let outcome = push_blob(&client, &store, &repo, &d, &from, &how).await?;
            Ok::<_, RegistryError>((d.digest, outcome))
        });
    }
    let mut done = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (digest, outcome) = r.map_err(|e| RegistryError::Task(crate::report::chain(&e)))??;
        match outcome {
            BlobOutcome::Existing => counts.existing += 1,
            BlobOutcome::Mounted => counts.mounted += 1,
            BlobOutcome::Uploaded => counts.uploaded += 1,
        }
        done.push(digest);
    }
    sources.record(repo, &done);
    Ok(())
}

async fn push_blob(
    client: &Client,
    store: &ContentStore,
    repo: &str,
    d: &Descriptor,
    mount_from: &[String],
    how: &HowToUpload,
) -> Result<BlobOutcome, RegistryError> {
    let mut scopes = vec![push_scope(repo)];
    let blob_url = client
        .url(&format!("/v2/{repo}/blobs/{}", d.digest))
        .await?;
    let head = client.send(Method::HEAD, &blob_url, &scopes, &Ok).await?;
    if head.status().is_success() {
        return Ok(BlobOutcome::Existing);
    }
    if head.status() != StatusCode::NOT_FOUND {
        return Err(client
            .status_error(&format!("blob {} in {repo}", d.digest), head)
            .await);
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut mount = None;
        if let Some(from) = mount_from.first() {
            scopes.push(pull_scope(from));
            mount = Some(from.as_str());
        }
        let result = upload_once(client, store, repo, d, mount, how, &scopes).await;
        match result {
            Ok(o) => return Ok(o),
            Err(e @ RegistryError::Connect { .. }) if attempt < ATTEMPTS => {
                tracing::debug!(registry = %client.registry(), digest = %d.digest, "upload broke, starting again: {e}", e = crate::report::chain(&e));
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Resolves an upload `Location` (absolute or relative to the registry) and adds `extra` query.
async fn location(client: &Client, resp: &reqwest::Response) -> Result<String, RegistryError> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Status {
            registry: client.registry().to_string(),
            what: "blob upload".into(),
            status: resp.status().as_u16(),
            detail: "no Location header".into(),
        })?;
    if loc.starts_with("http://") || loc.starts_with("https://") {
        Ok(loc.to_string())
    } else {
        client.url(loc).await
    }
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

async fn upload_once(
    client: &Client,
    store: &ContentStore,
    repo: &str,
    d: &Descriptor,
    mount: Option<&str>,
    how: &HowToUpload,
    scopes: &[String],
) -> Result<BlobOutcome, RegistryError> {
    let (chunk, progress) = (how.chunk, how.progress.as_ref());
    let what = format!("blob {} upload to {repo}", d.digest);
    let mut start = client.url(&format!("/v2/{repo}/blobs/uploads/")).await?;
    if let Some(from) = mount {
        start = with_query(
            &with_query(&start, "mount", &d.digest.to_string()),
            "from",
            from,
        );
    }
    let len0 = |r: reqwest::RequestBuilder| Ok(r.header(CONTENT_LENGTH, 0));
    let resp = client.send(Method::POST, &start, scopes, &len0).await?;
    match resp.status() {
        StatusCode::CREATED if mount.is_some() => return Ok(BlobOutcome::Mounted),
        StatusCode::ACCEPTED => {}
        _ => return Err(client.status_error(&what, resp).await),
    }
    let mut url = location(client, &resp).await?;
    let path = store.blob_path(&d.digest);
    if let Some(p) = progress {
        (p.0)(PushProgress::Blob { size: d.size });
    }
    let finish;
    match chunk {
        Some(size) if size > 0 && d.size > size => {
            let mut offset = 0;
            while offset < d.size {
                let len = size.min(d.size - offset);
                let p = path.clone();
                let range = format!("{offset}-{}", offset + len - 1);
                let progress = progress.cloned();
                let build = move |r: reqwest::RequestBuilder| {
                    Ok(r.header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, range.clone())
                        .header(CONTENT_LENGTH, len)
                        .body(file_body(&p, offset, len, progress.clone())?))
                };
                let resp = client.send(Method::PATCH, &url, scopes, &build).await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(client.status_error(&what, resp).await);
                }
                url = location(client, &resp).await?;
                offset += len;
            }
            finish = client
                .send(
                    Method::PUT,
                    &with_query(&url, "digest", &d.digest.to_string()),
                    scopes,
                    &len0,
                )
                .await?;
        }
        _ => {
            let p = path.clone();
            let size = d.size;
            let progress = progress.cloned();
            let build = move |r: reqwest::RequestBuilder| {
                Ok(r.header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(file_body(&p, 0, size, progress.clone())?))
            };
            finish = client
                .send(
                    Method::PUT,
                    &with_query(&url, "digest", &d.digest.to_string()),
                    scopes,
                    &build,
                )
                .await?;
        }
    }
    if finish.status() != StatusCode::CREATED {
        return Err(client.status_error(&what, finish).await);
    }
    Ok(BlobOutcome::Uploaded)
}

/// A streamed request body of `len` bytes of the blob file from `offset`.
fn file_body(
    path: &std::path::Path,
    offset: u64,
    len: u64,
    progress: Option<PushProgressFn>,
) -> Result<reqwest::Body, RegistryError> {
    let file = std::fs::File::open(path).map_err(|source| {
        RegistryError::Io(crate::report::IoError {
            op: "open",
            path: path.to_path_buf(),
            source,
        })
    })?;
    let file = tokio::fs::File::from_std(file);
    const BUF: u64 = 1 << 20;
    let stream = futures_util::stream::unfold(
        (file, offset, len, false),
        move |(mut f, offset, left, mut seeked)| {
            let progress = progress.clone();
            async move {
                if left == 0 {
                    return None;
                }
                if !seeked {
                    if let Err(e) = f.seek(std::io::SeekFrom::Start(offset)).await {
                        return Some((Err(e), (f, offset, 0, true)));
                    }
                    seeked = true;
                }
                let mut buf = vec![0u8; BUF.min(left) as usize];
                match f.read(&mut buf).await {
                    Ok(0) => Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "blob file is shorter than its descriptor",
                        )),
                        (f, offset, 0, seeked),
                    )),
                    Ok(n) => {
                        buf.truncate(n);
                        if let Some(p) = &progress {
                            (p.0)(PushProgress::Sent(n as u64));
                        }
                        Some((
                            Ok(bytes::Bytes::from(buf)),
                            (f, offset, left - n as u64, seeked),
                        ))
                    }
                    Err(e) => Some((Err(e), (f, offset, 0, seeked))),
                }
            }
        },
    );
    Ok(reqwest::Body::wrap_stream(stream))
}

async fn put_manifest(
    client: &Client,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
    digest: Digest,
) -> Result<(), RegistryError> {
    let url = client
        .url(&format!("/v2/{repo}/manifests/{reference}"))
        .await?;
    let body = bytes::Bytes::copy_from_slice(bytes);
    let mt = media_type.to_string();
    let build =
        move |r: reqwest::RequestBuilder| Ok(r.header(CONTENT_TYPE, mt.clone()).body(body.clone()));
    let resp = client
        .send(Method::PUT, &url, &[push_scope(repo)], &build)
        .await?;
    if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
        return Err(client
            .status_error(&format!("manifest {repo}:{reference}"), resp)
            .await);
    }
    if let Some(got) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok())
        && got != digest
    {
        return Err(RegistryError::DigestMismatch {
            registry: client.registry().to_string(),
            what: "manifest",
            expected: digest,
            actual: got,
        });
    }
    Ok(())
}

/// Which repositories of one registry hold which blobs, as far as kiln has seen.
pub(crate) struct Sources {
    path: PathBuf,
}

type SourceMap = BTreeMap<String, BTreeSet<String>>;

impl Sources {
    pub(crate) fn new(store: &ContentStore, registry: &str) -> Self {
        let key = hex::encode(sha2::Sha256::digest(registry.as_bytes()));
        Self {
            path: store
                .state_dir()
                .join("registry")
                .join("sources")
                .join(format!("{key}.json")),
        }
    }

    pub(crate) fn load(&self) -> SourceMap {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Adds `repo` as a home of `digests`. A hint only: failures are logged.
    pub(crate) fn record(&self, repo: &str, digests: &[Digest]) {
        let mut map = self.load();
        let mut changed = false;
        for d in digests {
            changed |= map
                .entry(d.to_string())
                .or_default()
                .insert(repo.to_string());
        }
        if !changed {
            return;
        }
        let write = || -> Result<(), String> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| crate::report::chain(&e))?;
            }
            let bytes = serde_json::to_vec(&map).map_err(|e| crate::report::chain(&e))?;
            crate::content::write_atomic(&self.path, &bytes).map_err(|e| crate::report::chain(&e))
        };
        if let Err(e) = write() {
            tracing::warn!(path = %self.path.display(), "cannot record blob sources: {e}");
        }
    }
}
