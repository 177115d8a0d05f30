//! The build cache in a registry (`--cache-to type=registry,ref=...`, `--cache-from ...`), for CI
//! runners that start with an empty store.
//!
//! An export is an OCI manifest whose config (media type [`CACHE_CONFIG_MEDIA_TYPE`]) lists the
//! cache records the export's mode selects (see [`super`], which owns the format),
//! and whose layers are those records' layers, gzip-compressed. An import takes such a manifest,
//! or an image whose config holds an inline cache (its layers are the cache's), downloads
//! the config and the layers (each verified against its digest, then decompressed and checked
//! against its diff_id) and only then writes the records whose layers verified into the local
//! cache; a record whose layer failed is dropped, so a corrupt or partial cache costs re-running
//! steps, never a wrong result.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::cache::{CacheError, CacheKey, CacheRecord, CacheStore};
use crate::cache_transfer::{
    CacheConfig, CacheMode, CacheTransferError, ImportedCache, check_version, verify_layers,
    write_records,
};
use crate::content::ContentStore;
use crate::image::{Descriptor, ImageConfig, Index, Manifest, media};
use crate::registry::{
    Client, PushOptions, Pushed, Reference, RegistryError, RegistryOptions, fetch_blob,
    fetch_manifest, push_prepared,
};

pub use crate::cache_transfer::CACHE_CONFIG_MEDIA_TYPE;

/// A cache store that remembers every record the build read or wrote, for an export.
pub struct RecordingCache {
    inner: Arc<dyn CacheStore>,
    seen: Mutex<BTreeMap<CacheKey, CacheRecord>>,
}

impl RecordingCache {
    /// Records what passes through `inner`.
    pub fn new(inner: Arc<dyn CacheStore>) -> Self {
        Self {
            inner,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, BTreeMap<CacheKey, CacheRecord>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The records seen so far, by key.
    pub fn records(&self) -> Vec<(CacheKey, CacheRecord)> {
        self.seen().iter().map(|(k, r)| (*k, r.clone())).collect()
    }
}

impl CacheStore for RecordingCache {
    fn get(&self, key: &CacheKey) -> Option<CacheRecord> {
        let r = self.inner.get(key)?;
        self.seen().insert(*key, r.clone());
        Some(r)
    }

    fn put(&self, key: &CacheKey, record: &CacheRecord) -> Result<(), CacheError> {
        self.inner.put(key, record)?;
        self.seen().insert(*key, record.clone());
        Ok(())
    }

    fn remove(&self, key: &CacheKey) {
        self.inner.remove(key);
        self.seen().remove(key);
    }
}

/// Exports `records` and their layers to `target`. Returns what the push did.
pub async fn export_cache(
    store: Arc<ContentStore>,
    opts: &RegistryOptions,
    records: Vec<(CacheKey, CacheRecord)>,
    mode: CacheMode,
    target: &Reference,
    popts: &PushOptions,
) -> Result<Pushed, CacheTransferError> {
    let st = store.clone();
    let copts = popts.compress.clone();
    let bundle = tokio::task::spawn_blocking(move || {
        crate::cache_transfer::bundle(&st, &records, mode, &copts)
    })
    .await
    .map_err(|e| CacheTransferError::Task(crate::report::chain(&e)))??;
    Ok(push_prepared(
        &store,
        opts,
        media::OCI_MANIFEST,
        &bundle.manifest_bytes,
        &bundle.blobs,
        std::slice::from_ref(target),
        popts,
    )
    .await?)
}

/// Imports the cache exported to `source` into `store` and `cache`: a kiln cache manifest, or an
/// image whose config holds an inline cache, or an index of such images (a multi-platform image:
/// every platform's cache is imported).
pub async fn import_cache(
    store: Arc<ContentStore>,
    cache: Arc<dyn CacheStore>,
    opts: &RegistryOptions,
    source: &Reference,
    concurrency: usize,
) -> Result<ImportedCache, CacheTransferError> {
    let wrap = |e: RegistryError| RegistryError::Pull {
        reference: source.to_string(),
        source: Box::new(e),
    };
    let client = opts.client(source).map_err(wrap)?;
    let repo = source.repository();
    let mut out = ImportedCache::default();
    let (config, layer_descs) = read_cache_configs(&client, &store, source, &mut out).await?;
    let by_digest: BTreeMap<_, &Descriptor> = layer_descs.iter().map(|d| (d.digest, d)).collect();

    // Download what is missing, a few at a time; every blob is verified as it is written.
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut wanted = Vec::new();
    for l in &config.layers {
        if store.size(&l.diff_id).ok() == Some(l.size) {
            continue;
        }
        let Some(d) = l.digest.and_then(|digest| by_digest.get(&digest)) else {
            out.problems
                .push(format!("layer {} is not in the cache manifest", l.diff_id));
            continue;
        };
        wanted.push((l.diff_id, l.size, d.digest));
        if store.size(&d.digest).ok() == Some(d.size) {
            continue;
        }
        let (client, store, repo, limit, d) = (
            client.clone(),
            store.clone(),
            repo.to_string(),
            limit.clone(),
            (*d).clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let r = fetch_blob(&client, &store, &repo, "cache layer", &d).await;
            (d.digest, r)
        });
    }
    while let Some(r) = tasks.join_next().await {
        let (digest, r) = r.map_err(|e| CacheTransferError::Task(crate::report::chain(&e)))?;
        if let Err(e) = r {
            out.problems
                .push(format!("layer {digest}: {e}", e = crate::report::chain(&e)));
        }
    }
    // Decompress and check each layer against its diff_id; only verified layers are trusted.
    let st = store.clone();
    let (verified, more) = tokio::task::spawn_blocking(move || verify_layers(&st, wanted))
        .await
        .map_err(|e| CacheTransferError::Task(crate::report::chain(&e)))?;
    out.problems.extend(more);
    write_records(&store, cache.as_ref(), &config, &verified, &mut out)?;
    Ok(out)
}

/// Reads the cache description(s) `source` holds: one cache manifest's config, an image's inline
/// cache, or every image's inline cache of an index, merged; with the layer descriptors they
/// name. Each version is checked (an older one is a warning in `out`).
async fn read_cache_configs(
    client: &Client,
    store: &Arc<ContentStore>,
    source: &Reference,
    out: &mut ImportedCache,
) -> Result<(CacheConfig, Vec<Descriptor>), CacheTransferError> {
    let wrap = |e: RegistryError| RegistryError::Pull {
        reference: source.to_string(),
        source: Box::new(e),
    };
    let invalid = |e: serde_json::Error| {
        wrap(RegistryError::InvalidManifest {
            what: "cache manifest".into(),
            reason: crate::report::chain(&e),
        })
    };
    let source_name = source.to_string();
    let repo = source.repository();
    let (media_type, bytes, _) = fetch_manifest(
        client,
        repo,
        &source.manifest_ref(),
        source.digest().copied(),
    )
    .await
    .map_err(wrap)?;
    let mut manifests = Vec::new();
    if media::is_index(&media_type) {
        let index: Index = serde_json::from_slice(&bytes).map_err(invalid)?;
        for d in index.images() {
            let (_, bytes, _) = fetch_manifest(client, repo, &d.digest.to_string(), Some(d.digest))
                .await
                .map_err(wrap)?;
            manifests.push(bytes);
        }
        if manifests.is_empty() {
            return Err(CacheTransferError::NotACache {
                source_name,
                reason: "its index lists no image".into(),
            });
        }
    } else {
        manifests.push(bytes);
    }
    let mut merged = CacheConfig {
        version: crate::cache_transfer::CACHE_FORMAT_VERSION,
        mode: None,
        records: Vec::new(),
        layers: Vec::new(),
    };
    let mut layer_descs = Vec::new();
    for bytes in manifests {
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(invalid)?;
        if store.size(&manifest.config.digest).ok() != Some(manifest.config.size) {
            fetch_blob(client, store, repo, "cache config", &manifest.config)
                .await
                .map_err(wrap)?;
        }
        let (config, descs) = if manifest.config.media_type == CACHE_CONFIG_MEDIA_TYPE {
            (
                store.read_json::<CacheConfig>(&manifest.config.digest)?,
                manifest.layers.clone(),
            )
        } else {
            let image: ImageConfig = store.read_json(&manifest.config.digest)?;
            crate::cache_transfer::inline::from_image(&image, &manifest.layers, &source_name)?
                .ok_or_else(|| CacheTransferError::NotACache {
                    source_name: source_name.clone(),
                    reason: format!(
                        "it is an image ({}) without an inline cache (build it with --cache-to type=inline)",
                        manifest.config.media_type
                    ),
                })?
        };
        if let Some(warning) = check_version(&config, &source_name)?
            && !out.problems.contains(&warning)
        {
            out.problems.push(warning);
        }
        merged.records.extend(config.records);
        for l in config.layers {
            // Platforms share layers (a COPY of the same files).
            if !merged.layers.iter().any(|m| m.diff_id == l.diff_id) {
                merged.layers.push(l);
            }
        }
        layer_descs.extend(descs);
    }
    Ok((merged, layer_descs))
}
