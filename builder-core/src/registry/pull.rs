//! Pulling an image into the content store: resolve the manifest or index (OCI or Docker
//! schema 2), pick the platform, download the config and layers concurrently (bounded), each
//! streamed through a [`BlobWriter`](crate::content::BlobWriter) on a blocking thread that hashes
//! as it writes and commits only when digest and size match. Blobs the store already has are not
//! fetched. A broken connection is retried with backoff and resumed with a `Range` request when
//! the registry supports it.

use std::io::Write as _;
use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode};

use super::client::{ATTEMPTS, Client, accept_manifests, backoff, chain, pull_scope};
use super::{ANNOTATION_SOURCE_DIGEST, Reference, RegistryError, RegistryOptions};
use crate::content::{BlobInfo, ContentError, ContentStore, Digest};
use crate::image::{Descriptor, Index, Manifest, Platform, media};
use crate::import::ImportedImage;

/// Largest manifest or index accepted (the distribution spec suggests 4 MiB).
const MAX_MANIFEST: usize = 8 << 20;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform picked from an index.
    pub platform: Platform,
    /// Blobs downloaded at once.
    pub concurrency: usize,
    /// Whether to point a local tag at the pulled image (the reference's tag).
    pub tag: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            platform: Platform::host(),
            concurrency: 4,
            tag: true,
        }
    }
}

/// A pulled image.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference pulled.
    pub reference: Reference,
    /// The digest the reference resolved to in the registry (an index or a manifest): pulling
    /// `reference.with_digest(digest)` gives the same image again.
    pub digest: Digest,
    /// The image in the store (its manifest converted to OCI when the registry served Docker's).
    pub image: ImportedImage,
}

/// Pulls `reference` into `store`.
pub async fn pull(
    store: Arc<ContentStore>,
    opts: &RegistryOptions,
    reference: &Reference,
    popts: &PullOptions,
) -> Result<Pulled, RegistryError> {
    let wrap = |e: RegistryError| RegistryError::Pull {
        reference: reference.to_string(),
        source: Box::new(e),
    };
    let client = opts.client(reference).map_err(wrap)?;
    pull_with(&client, store, reference, popts)
        .await
        .map_err(wrap)
}

async fn pull_with(
    client: &Client,
    store: Arc<ContentStore>,
    reference: &Reference,
    popts: &PullOptions,
) -> Result<Pulled, RegistryError> {
    let repo = reference.repository();
    let (media_type, bytes, top) = fetch_manifest(
        client,
        repo,
        &reference.manifest_ref(),
        reference.digest().copied(),
    )
    .await?;
    put_blob(&store, bytes.clone()).await?;
    let mut desc = Descriptor::new(media_type, top, bytes.len() as u64);
    let mut bytes = bytes;
    let mut depth = 0;
    while media::is_index(&desc.media_type) {
        depth += 1;
        if depth > 4 {
            return Err(RegistryError::InvalidManifest {
                what: format!("index {}", desc.digest),
                reason: "indexes nested more than 4 deep".into(),
            });
        }
        let index: Index =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidManifest {
                what: format!("index {}", desc.digest),
                reason: crate::report::chain(&e),
            })?;
        let picked = index
            .select_platform(&popts.platform)
            .cloned()
            .ok_or_else(|| RegistryError::NoPlatform {
                platform: popts.platform.to_string(),
                available: index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                    .collect(),
            })?;
        let (mt, b, d) = fetch_manifest(
            client,
            repo,
            &picked.digest.to_string(),
            Some(picked.digest),
        )
        .await?;
        if b.len() as u64 != picked.size {
            return Err(RegistryError::SizeMismatch {
                registry: client.registry().to_string(),
                what: "manifest",
                digest: d,
                expected: picked.size,
                actual: b.len() as u64,
            });
        }
        put_blob(&store, b.clone()).await?;
        // The index's media type wins over a registry that serves a generic content type.
        let mt = if media::is_manifest(&picked.media_type) || media::is_index(&picked.media_type) {
            picked.media_type.clone()
        } else {
            mt
        };
        desc = Descriptor::new(mt, d, b.len() as u64);
        bytes = b;
    }
    if !media::is_manifest(&desc.media_type) {
        return Err(RegistryError::UnsupportedMediaType {
            media_type: desc.media_type,
        });
    }
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidManifest {
            what: format!("manifest {}", desc.digest),
            reason: crate::report::chain(&e),
        })?;
    let mut blobs = vec![("config", manifest.config.clone())];
    blobs.extend(manifest.layers.iter().map(|l| ("layer", l.clone())));
    let digests: Vec<Digest> = blobs.iter().map(|(_, d)| d.digest).collect();
    fetch_blobs(client, &store, repo, blobs, popts.concurrency.max(1)).await?;
    super::push::Sources::new(&store, client.registry()).record(repo, &digests);

    let tag = popts
        .tag
        .then(|| {
            reference
                .tag()
                .map(|_| reference.without_digest().to_string())
        })
        .flatten();
    let store2 = store.clone();
    let image = tokio::task::spawn_blocking(move || -> Result<ImportedImage, RegistryError> {
        let image = crate::import::finish(&store2, desc, manifest)?;
        if let Some(tag) = tag {
            let mut d = image.manifest_desc.clone();
            d.set_annotation(ANNOTATION_SOURCE_DIGEST, top.to_string());
            store2.set_tag(&tag, &d)?;
        }
        Ok(image)
    })
    .await
    .map_err(|e| RegistryError::Task(crate::report::chain(&e)))??;
    Ok(Pulled {
        reference: reference.clone(),
        digest: top,
        image,
    })
}

async fn put_blob(store: &Arc<ContentStore>, bytes: Vec<u8>) -> Result<BlobInfo, RegistryError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.put_bytes(&bytes))
        .await
        .map_err(|e| RegistryError::Task(crate::report::chain(&e)))?
        .map_err(RegistryError::from)
}

/// GETs a manifest or index and checks it against `expected` when given.
pub(crate) async fn fetch_manifest(
    client: &Client,
    repo: &str,
    reference: &str,
    expected: Option<Digest>,
) -> Result<(String, Vec<u8>, Digest), RegistryError> {
    let url = client
        .url(&format!("/v2/{repo}/manifests/{reference}"))
        .await?;
    let what = if reference.starts_with("sha256:") {
        format!("{repo}@{reference}")
    } else {
        format!("{repo}:{reference}")
    };
    let mut resp = client
        .send(Method::GET, &url, &[pull_scope(repo)], &accept_manifests)
        .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(RegistryError::ManifestNotFound {
            registry: client.registry().to_string(),
            what,
        });
    }
    if !resp.status().is_success() {
        return Err(client.status_error(&format!("manifest {what}"), resp).await);
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .unwrap_or_default();
    let mut bytes = Vec::new();
    loop {
        let chunk = resp.chunk().await.map_err(|e| RegistryError::Connect {
            registry: client.registry().to_string(),
            reason: format!("reading manifest {what}: {}", chain(&e.without_url())),
        })?;
        let Some(chunk) = chunk else { break };
        if bytes.len() + chunk.len() > MAX_MANIFEST {
            return Err(RegistryError::InvalidManifest {
                what: format!("manifest {what}"),
                reason: format!("larger than {MAX_MANIFEST} bytes"),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    let digest = Digest::of(&bytes);
    if let Some(want) = expected
        && want != digest
    {
        return Err(RegistryError::DigestMismatch {
            registry: client.registry().to_string(),
            what: "manifest",
            expected: want,
            actual: digest,
        });
    }
    let media_type = if media::is_manifest(&content_type) || media::is_index(&content_type) {
        content_type
    } else {
        // Some registries serve a generic type; the document's own `mediaType` decides.
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
        }
        match serde_json::from_slice::<Probe>(&bytes) {
            Ok(Probe {
                media_type: Some(m),
                ..
            }) => m,
            Ok(Probe {
                manifests: Some(_), ..
            }) => media::OCI_INDEX.to_string(),
            Ok(_) => media::OCI_MANIFEST.to_string(),
            Err(e) => {
                return Err(RegistryError::InvalidManifest {
                    what: format!("manifest {what}"),
                    reason: crate::report::chain(&e),
                });
            }
        }
    };
    Ok((media_type, bytes, digest))
}

/// Downloads the blobs the store lacks, at most `concurrency` at once.
async fn fetch_blobs(
    client: &Client,
    store: &Arc<ContentStore>,
    repo: &str,
    blobs: Vec<(&'static str, Descriptor)>,
    concurrency: usize,
) -> Result<(), RegistryError> {
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut seen = std::collections::HashSet::new();
    for (what, d) in blobs {
        if !seen.insert(d.digest) || store.size(&d.digest).ok() == Some(d.size) {
            continue;
        }
        let (client, store, repo, limit) = (
            client.clone(),
            store.clone(),
            repo.to_string(),
            limit.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            fetch_blob(&client, &store, &repo, what, &d).await
        });
    }
    // The first failure aborts the others (dropping the set cancels them; their temp files go).
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| RegistryError::Task(crate::report::chain(&e)))??;
    }
    Ok(())
}

enum Chunk {
    Data(bytes::Bytes),
    Restart,
    Abort,
}

/// Streams one blob into the store, verified; retries and resumes broken transfers.
pub(crate) async fn fetch_blob(
    client: &Client,
    store: &Arc<ContentStore>,
    repo: &str,
    what: &'static str,
    d: &Descriptor,
) -> Result<(), RegistryError> {
    let url = client
        .url(&format!("/v2/{repo}/blobs/{}", d.digest))
        .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(32);
    let (digest, size) = (d.digest, d.size);
    let st = store.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<Option<BlobInfo>, ContentError> {
        let mut w = st.writer()?;
        while let Some(c) = rx.blocking_recv() {
            match c {
                Chunk::Data(b) => w
                    .write_all(&b)
                    .map_err(|e| ContentError::io("write", w.temp_path().to_path_buf(), e))?,
                Chunk::Restart => w = st.writer()?,
                Chunk::Abort => return Ok(None),
            }
        }
        w.commit(Some((&digest, size))).map(Some)
    });
    let result = stream_blob(client, &url, repo, what, d, &tx).await;
    if result.is_err() {
        let _ = tx.send(Chunk::Abort).await;
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| RegistryError::Task(crate::report::chain(&e)))?;
    result?;
    match written {
        Ok(_) => Ok(()),
        Err(ContentError::DigestMismatch { expected, actual }) => {
            Err(RegistryError::DigestMismatch {
                registry: client.registry().to_string(),
                what,
                expected,
                actual,
            })
        }
        Err(e) => Err(e.into()),
    }
}

async fn stream_blob(
    client: &Client,
    url: &str,
    repo: &str,
    what: &'static str,
    d: &Descriptor,
    tx: &tokio::sync::mpsc::Sender<Chunk>,
) -> Result<(), RegistryError> {
    let registry = client.registry().to_string();
    let lost = |e: &dyn std::error::Error| RegistryError::Connect {
        registry: registry.clone(),
        reason: format!("downloading {what} {}: {}", d.digest, chain(e)),
    };
    let closed = || RegistryError::Task("blob writer stopped".into());
    let mut received: u64 = 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let from = received;
        let range = move |req: reqwest::RequestBuilder| {
            Ok(if from > 0 {
                req.header(RANGE, format!("bytes={from}-"))
            } else {
                req
            })
        };
        let mut resp = client
            .send(Method::GET, url, &[pull_scope(repo)], &range)
            .await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT if received > 0 => {}
            s if s.is_success() => {
                if received > 0 {
                    tx.send(Chunk::Restart).await.map_err(|_| closed())?;
                    received = 0;
                }
            }
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::Status {
                    registry,
                    what: format!("{what} {}", d.digest),
                    status: 404,
                    detail: "blob unknown".into(),
                });
            }
            _ => {
                return Err(client
                    .status_error(&format!("{what} {}", d.digest), resp)
                    .await);
            }
        }
        let outcome = loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    if received > d.size {
                        return Err(RegistryError::SizeMismatch {
                            registry,
                            what,
                            digest: d.digest,
                            expected: d.size,
                            actual: received,
                        });
                    }
                    tx.send(Chunk::Data(chunk)).await.map_err(|_| closed())?;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(lost(&e.without_url())),
            }
        };
        let retry_reason = match outcome {
            Ok(()) if received == d.size => return Ok(()),
            Ok(()) => RegistryError::SizeMismatch {
                registry: registry.clone(),
                what,
                digest: d.digest,
                expected: d.size,
                actual: received,
            },
            Err(e) => e,
        };
        if attempt >= ATTEMPTS {
            return Err(retry_reason);
        }
        tracing::debug!(%registry, digest = %d.digest, received, "transfer broke, resuming: {retry_reason}");
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// Resolves a digest reference from the store alone (an image pulled before): the blob under the
/// digest (index or manifest) and everything the platform's manifest names must be present.
/// Returns `None` when something is missing, so the caller pulls. Blocking.
pub fn resolve_local(
    store: &ContentStore,
    digest: &Digest,
    platform: &Platform,
) -> Result<Option<ImportedImage>, RegistryError> {
    let mut digest = *digest;
    for _ in 0..5 {
        if !store.has(&digest) {
            return Ok(None);
        }
        let bytes = store.read_verified_bytes(&digest)?;
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
            config: Option<serde_json::Value>,
        }
        let probe: Probe =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidManifest {
                what: format!("blob {digest}"),
                reason: crate::report::chain(&e),
            })?;
        let is_index = probe.media_type.as_deref().is_some_and(media::is_index)
            || (probe.media_type.is_none() && probe.manifests.is_some());
        if is_index {
            let index: Index =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidManifest {
                    what: format!("index {digest}"),
                    reason: crate::report::chain(&e),
                })?;
            match index.select_platform(platform) {
                Some(d) => digest = d.digest,
                None => return Ok(None),
            }
            continue;
        }
        if probe.config.is_none() {
            return Ok(None);
        }
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidManifest {
                what: format!("manifest {digest}"),
                reason: crate::report::chain(&e),
            })?;
        let complete = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .all(|d| store.size(&d.digest).ok() == Some(d.size));
        if !complete {
            return Ok(None);
        }
        let mt = probe
            .media_type
            .unwrap_or_else(|| media::OCI_MANIFEST.to_string());
        let desc = Descriptor::new(mt, digest, bytes.len() as u64);
        return Ok(Some(crate::import::finish(store, desc, manifest)?));
    }
    Ok(None)
}
