//! The build cache in a registry (`--cache-to type=registry,ref=...`, `--cache-from ...`), for CI
//! runners that start with an empty store.
//!
//! An export is an OCI manifest whose config (media type [`CACHE_CONFIG_MEDIA_TYPE`]) lists the
//! cache records of every step of every stage the build looked up or ran (BuildKit's
//! `mode=max`), and whose layers are those records' layers, gzip-compressed. An import downloads
//! the config and the layers (each verified against its digest, then decompressed and checked
//! against its diff_id) and only then writes the records whose layers verified into the local
//! cache; a record whose layer failed is dropped, so a corrupt or partial cache costs re-running
//! steps, never a wrong result.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::pull::{fetch_blob, fetch_manifest};
use super::push::{PushOptions, Pushed, push_prepared};
use super::{Reference, RegistryError, RegistryOptions};
use crate::cache::{CacheError, CacheKey, CacheRecord, CacheStore, LayerRef};
use crate::content::{ContentStore, Digest};
use crate::image::{Compression, Descriptor, Manifest, media};

/// The media type of a cache export's config blob.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";
const CACHE_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct CacheConfig {
    version: u32,
    records: Vec<RecordEntry>,
    layers: Vec<LayerEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordEntry {
    key: String,
    layer: Option<Digest>,
    created: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct LayerEntry {
    diff_id: Digest,
    size: u64,
    digest: Digest,
}

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
    target: &Reference,
    popts: &PushOptions,
) -> Result<Pushed, RegistryError> {
    let st = store.clone();
    let copts = popts.compress.clone();
    let (manifest_bytes, blobs) = tokio::task::spawn_blocking(move || {
        let mut layers: BTreeMap<Digest, (u64, Descriptor)> = BTreeMap::new();
        for (_, rec) in &records {
            if let Some(l) = &rec.layer
                && !layers.contains_key(&l.diff_id)
            {
                let blob = crate::layer::compress_layer(&st, &l.diff_id, Compression::Gzip, &copts)
                    .map_err(|e| RegistryError::from(crate::export::ExportError::from(e)))?;
                let d = Descriptor::new(media::OCI_LAYER_GZIP, blob.digest, blob.size);
                layers.insert(l.diff_id, (l.size, d));
            }
        }
        let config = CacheConfig {
            version: CACHE_VERSION,
            records: records
                .iter()
                .map(|(k, r)| RecordEntry {
                    key: k.to_hex(),
                    layer: r.layer.as_ref().map(|l| l.diff_id),
                    created: r.created,
                })
                .collect(),
            layers: layers
                .iter()
                .map(|(diff_id, (size, d))| LayerEntry {
                    diff_id: *diff_id,
                    size: *size,
                    digest: d.digest,
                })
                .collect(),
        };
        let config_desc = st.put_json(&config, CACHE_CONFIG_MEDIA_TYPE)?;
        let layer_descs: Vec<Descriptor> = layers.into_values().map(|(_, d)| d).collect();
        let mut manifest = Manifest::oci(config_desc.clone(), layer_descs.clone());
        manifest.artifact_type = Some(CACHE_CONFIG_MEDIA_TYPE.to_string());
        let bytes = crate::image::to_canonical_json(&manifest).map_err(|e| {
            RegistryError::InvalidManifest {
                what: "cache manifest".into(),
                reason: e.to_string(),
            }
        })?;
        st.put_bytes(&bytes)?;
        let mut blobs = vec![config_desc];
        blobs.extend(layer_descs);
        Ok::<_, RegistryError>((bytes, blobs))
    })
    .await
    .map_err(|e| RegistryError::Task(e.to_string()))??;
    push_prepared(
        &store,
        opts,
        media::OCI_MANIFEST,
        &manifest_bytes,
        &blobs,
        std::slice::from_ref(target),
        popts,
    )
    .await
}

/// What an import brought in.
#[derive(Debug, Clone, Default)]
pub struct ImportedCache {
    /// Records written into the local cache.
    pub records: usize,
    /// Records dropped because their layer did not verify.
    pub dropped: usize,
    /// Why layers were dropped (one line each).
    pub problems: Vec<String>,
}

/// Imports the cache exported to `source` into `store` and `cache`.
pub async fn import_cache(
    store: Arc<ContentStore>,
    cache: Arc<dyn CacheStore>,
    opts: &RegistryOptions,
    source: &Reference,
    concurrency: usize,
) -> Result<ImportedCache, RegistryError> {
    let wrap = |e: RegistryError| RegistryError::Pull {
        reference: source.to_string(),
        source: Box::new(e),
    };
    let client = opts.client(source).map_err(wrap)?;
    let repo = source.repository();
    let (_, bytes, _) = fetch_manifest(
        &client,
        repo,
        &source.manifest_ref(),
        source.digest().copied(),
    )
    .await
    .map_err(wrap)?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        wrap(RegistryError::InvalidManifest {
            what: "cache manifest".into(),
            reason: e.to_string(),
        })
    })?;
    if manifest.config.media_type != CACHE_CONFIG_MEDIA_TYPE {
        return Err(wrap(RegistryError::InvalidManifest {
            what: "cache manifest".into(),
            reason: format!(
                "its config is {}, not a kiln cache ({CACHE_CONFIG_MEDIA_TYPE})",
                manifest.config.media_type
            ),
        }));
    }
    if store.size(&manifest.config.digest).ok() != Some(manifest.config.size) {
        fetch_blob(&client, &store, repo, "cache config", &manifest.config)
            .await
            .map_err(wrap)?;
    }
    let config: CacheConfig = store
        .read_json(&manifest.config.digest)
        .map_err(|e| wrap(e.into()))?;
    let by_digest: BTreeMap<Digest, &Descriptor> =
        manifest.layers.iter().map(|d| (d.digest, d)).collect();

    // Download what is missing, a few at a time; every blob is verified as it is written.
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut problems = Vec::new();
    let mut wanted = Vec::new();
    for l in &config.layers {
        if store.size(&l.diff_id).ok() == Some(l.size) {
            continue;
        }
        let Some(d) = by_digest.get(&l.digest) else {
            problems.push(format!("layer {} is not in the cache manifest", l.digest));
            continue;
        };
        wanted.push((l.diff_id, l.size, l.digest));
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
        let (digest, r) = r.map_err(|e| RegistryError::Task(e.to_string()))?;
        if let Err(e) = r {
            problems.push(format!("layer {digest}: {e}"));
        }
    }
    // Decompress and check each layer against its diff_id; only verified layers are trusted.
    let st = store.clone();
    let (verified, more) = tokio::task::spawn_blocking(move || {
        let mut ok = BTreeSet::new();
        let mut problems = Vec::new();
        for (diff_id, size, digest) in wanted {
            if !st.has(&digest) {
                continue;
            }
            match crate::export::ensure_uncompressed(&st, &digest, &diff_id) {
                Ok(_) if st.size(&diff_id).ok() == Some(size) => {
                    ok.insert(diff_id);
                }
                Ok(_) => problems.push(format!("layer {diff_id} has the wrong size")),
                Err(e) => problems.push(format!("layer {digest}: {e}")),
            }
        }
        (ok, problems)
    })
    .await
    .map_err(|e| RegistryError::Task(e.to_string()))?;
    problems.extend(more);

    let mut out = ImportedCache {
        problems,
        ..ImportedCache::default()
    };
    let sizes: BTreeMap<Digest, u64> = config.layers.iter().map(|l| (l.diff_id, l.size)).collect();
    for r in &config.records {
        let Some(key) = CacheKey::from_hex(&r.key) else {
            out.dropped += 1;
            continue;
        };
        let layer = match r.layer {
            None => None,
            Some(diff_id) => {
                let present = verified.contains(&diff_id)
                    || sizes
                        .get(&diff_id)
                        .is_some_and(|s| store.size(&diff_id).ok() == Some(*s));
                match (present, sizes.get(&diff_id)) {
                    (true, Some(size)) => Some(LayerRef {
                        diff_id,
                        size: *size,
                    }),
                    _ => {
                        out.dropped += 1;
                        continue;
                    }
                }
            }
        };
        let record = CacheRecord {
            layer,
            created: r.created,
            // No snapshot exists for an imported record until a build uses it.
            chain: None,
        };
        let same = cache
            .get(&key)
            .is_some_and(|old| old.layer == record.layer && old.created == record.created);
        if !same {
            cache
                .put(&key, &record)
                .map_err(|e| RegistryError::Task(format!("cannot write cache record: {e}")))?;
        }
        out.records += 1;
    }
    Ok(out)
}
