//! Moving the build cache between stores, for CI runners that start empty: where it goes and
//! comes from ([`CacheExport`], [`CacheSource`], BuildKit's `--cache-to`/`--cache-from` syntax),
//! which records go ([`CacheMode`]), the versioned format of an export ([`CacheConfig`]), and
//! writing the records of an import whose layers verified into the local cache.
//!
//! Three transports share the format: a registry ([`registry`]), an OCI layout
//! directory ([`local`], the form CI systems save and restore between jobs) and the image
//! config itself ([`inline`], so that the pushed image is its own cache). Whatever the
//! transport, a record is written locally only after its layer verified against its digest and
//! diff_id: a corrupt or partial cache costs re-running steps, never a wrong result.

pub mod inline;
pub mod local;
pub mod registry;
pub(crate) mod run;
mod spec;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::cache::{CacheKey, CacheRecord, CacheStore, LayerRef};
use crate::content::{ContentStore, Digest};
use crate::image::{Compression, Descriptor, Manifest, media};

pub use spec::{CacheDestination, CacheExport, CacheMode, CacheSource, CacheSpecError};

/// The media type of a cache export's config blob.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";
/// The format version this kiln writes. Version 1 (no `mode`, every layer with a digest) is
/// still read, with a warning.
pub const CACHE_FORMAT_VERSION: u32 = 2;

/// An export's description of its records and layers (the config blob of a cache manifest, or
/// the value of [`inline::INLINE_CACHE_KEY`] in an image config).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheConfig {
    /// The format version.
    pub version: u32,
    /// `min` or `max` (absent in version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The records.
    pub records: Vec<RecordEntry>,
    /// The layers the records name.
    pub layers: Vec<LayerEntry>,
}

/// One cache record in an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordEntry {
    /// The cache key, hex.
    pub key: String,
    /// The layer's diff_id; `None` for a step that changed nothing.
    pub layer: Option<Digest>,
    /// When the step first ran.
    pub created: i64,
}

/// One layer in an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerEntry {
    /// The uncompressed digest.
    pub diff_id: Digest,
    /// The uncompressed size.
    pub size: u64,
    /// The blob's (compressed) digest; absent in an inline cache, whose layers are the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

/// An error moving the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheTransferError {
    /// The registry side failed.
    #[error(transparent)]
    Registry(Box<crate::registry::RegistryError>),
    /// The store failed.
    #[error(transparent)]
    Content(#[from] crate::content::ContentError),
    /// Compressing or copying a layer failed.
    #[error(transparent)]
    Export(Box<crate::export::ExportError>),
    /// A file of a cache directory cannot be read or written.
    #[error(transparent)]
    Io(#[from] crate::report::IoError),
    /// A cache directory cannot be opened (its error names the path).
    #[error(transparent)]
    Fs(#[from] crate::fsroot::FsError),
    /// The source holds no kiln cache.
    #[error("{source_name} is not a kiln cache: {reason}")]
    NotACache {
        /// The source.
        source_name: String,
        /// Why not.
        reason: String,
    },
    /// The source was written by a newer kiln.
    #[error(
        "{source_name} is in cache format {found}, newer than this kiln reads ({CACHE_FORMAT_VERSION}); it is ignored"
    )]
    NewerFormat {
        /// The source.
        source_name: String,
        /// Its version.
        found: u32,
    },
    /// A record cannot be written into the local cache.
    #[error("cannot write cache record")]
    Record(#[from] crate::cache::CacheError),
    /// A blocking task ended abnormally.
    #[error("cache task failed: {0}")]
    Task(String),
}

impl From<crate::registry::RegistryError> for CacheTransferError {
    fn from(e: crate::registry::RegistryError) -> Self {
        Self::Registry(Box::new(e))
    }
}

impl From<crate::export::ExportError> for CacheTransferError {
    fn from(e: crate::export::ExportError) -> Self {
        Self::Export(Box::new(e))
    }
}

/// What an import brought in.
#[derive(Debug, Clone, Default)]
pub struct ImportedCache {
    /// Records written into the local cache.
    pub records: usize,
    /// Records dropped because their layer did not verify.
    pub dropped: usize,
    /// Warnings: layers dropped, an older format (one line each).
    pub problems: Vec<String>,
}

/// The records an export with `mode` carries: all of them for `max`; for `min` only those of
/// the final stage's steps (`final_keys`).
pub fn select_records(
    records: Vec<(CacheKey, CacheRecord)>,
    mode: CacheMode,
    final_keys: &BTreeSet<CacheKey>,
) -> Vec<(CacheKey, CacheRecord)> {
    match mode {
        CacheMode::Max => records,
        CacheMode::Min => records
            .into_iter()
            .filter(|(k, _)| final_keys.contains(k))
            .collect(),
    }
}

/// The config for `records`, whose layers are described by `layers` (diff_id → size, digest).
pub(crate) fn describe(
    records: &[(CacheKey, CacheRecord)],
    mode: CacheMode,
    layers: &BTreeMap<Digest, (u64, Option<Digest>)>,
) -> CacheConfig {
    CacheConfig {
        version: CACHE_FORMAT_VERSION,
        mode: Some(mode.name().to_string()),
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
            .map(|(diff_id, (size, digest))| LayerEntry {
                diff_id: *diff_id,
                size: *size,
                digest: *digest,
            })
            .collect(),
    }
}

/// A cache export written into the store: the manifest (canonical bytes and descriptor) and
/// every blob it names.
pub(crate) struct Bundle {
    pub manifest_bytes: Vec<u8>,
    pub manifest: Descriptor,
    pub blobs: Vec<Descriptor>,
}

/// Compresses the records' layers (gzip, remembered by the store) and writes the cache config
/// and manifest into the store. Blocking.
pub(crate) fn bundle(
    store: &ContentStore,
    records: &[(CacheKey, CacheRecord)],
    mode: CacheMode,
    copts: &crate::layer::CompressOptions,
) -> Result<Bundle, CacheTransferError> {
    let mut layers: BTreeMap<Digest, (u64, Descriptor)> = BTreeMap::new();
    for (_, rec) in records {
        if let Some(l) = &rec.layer
            && !layers.contains_key(&l.diff_id)
        {
            let blob = crate::layer::compress_layer(store, &l.diff_id, Compression::Gzip, copts)
                .map_err(crate::export::ExportError::from)?;
            let d = Descriptor::new(media::OCI_LAYER_GZIP, blob.digest, blob.size);
            layers.insert(l.diff_id, (l.size, d));
        }
    }
    let described = layers
        .iter()
        .map(|(k, (size, d))| (*k, (*size, Some(d.digest))))
        .collect();
    let config = describe(records, mode, &described);
    let config_desc = store.put_json(&config, CACHE_CONFIG_MEDIA_TYPE)?;
    let layer_descs: Vec<Descriptor> = layers.into_values().map(|(_, d)| d).collect();
    let mut manifest = Manifest::oci(config_desc.clone(), layer_descs.clone());
    manifest.artifact_type = Some(CACHE_CONFIG_MEDIA_TYPE.to_string());
    let manifest_bytes =
        crate::image::to_canonical_json(&manifest).map_err(|e| CacheTransferError::NotACache {
            source_name: "the cache manifest being written".into(),
            reason: crate::report::chain(&e),
        })?;
    let info = store.put_bytes(&manifest_bytes)?;
    let mut blobs = vec![config_desc];
    blobs.extend(layer_descs);
    Ok(Bundle {
        manifest: Descriptor::new(media::OCI_MANIFEST, info.digest, info.size),
        manifest_bytes,
        blobs,
    })
}

/// Checks a cache manifest and returns the digest of its config blob.
pub(crate) fn check_manifest(
    manifest: &Manifest,
    source_name: &str,
) -> Result<Descriptor, CacheTransferError> {
    if manifest.config.media_type != CACHE_CONFIG_MEDIA_TYPE {
        return Err(CacheTransferError::NotACache {
            source_name: source_name.to_string(),
            reason: format!(
                "its config is {}, not {CACHE_CONFIG_MEDIA_TYPE}",
                manifest.config.media_type
            ),
        });
    }
    Ok(manifest.config.clone())
}

/// Checks the version of a config: a newer one is an error, an older one a warning.
pub(crate) fn check_version(
    config: &CacheConfig,
    source_name: &str,
) -> Result<Option<String>, CacheTransferError> {
    if config.version > CACHE_FORMAT_VERSION {
        return Err(CacheTransferError::NewerFormat {
            source_name: source_name.to_string(),
            found: config.version,
        });
    }
    Ok((config.version < CACHE_FORMAT_VERSION).then(|| {
        format!(
            "{source_name} is in the older cache format {} (this kiln writes {CACHE_FORMAT_VERSION}); \
             its records are imported, export the cache again to update it",
            config.version
        )
    }))
}

/// Writes the records of `config` whose layers are in the store now (`verified`, or present
/// with the right size) into `cache`. Records whose layer is missing are counted as dropped.
pub(crate) fn write_records(
    store: &ContentStore,
    cache: &dyn CacheStore,
    config: &CacheConfig,
    verified: &BTreeSet<Digest>,
    out: &mut ImportedCache,
) -> Result<(), CacheTransferError> {
    let sizes: BTreeMap<Digest, u64> = config.layers.iter().map(|l| (l.diff_id, l.size)).collect();
    for r in &config.records {
        let Some(key) = CacheKey::from_hex(&r.key) else {
            out.dropped += 1;
            continue;
        };
        let layer = match r.layer {
            None => None,
            Some(diff_id) => {
                let size = sizes.get(&diff_id).copied();
                let present = size.is_some_and(|s| {
                    verified.contains(&diff_id) || store.size(&diff_id).ok() == Some(s)
                });
                match size {
                    Some(size) if present => Some(LayerRef {
                        diff_id,
                        size,
                        packed: None,
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
            cache.put(&key, &record)?;
        }
        out.records += 1;
    }
    Ok(())
}

/// Decompresses each downloaded layer (`wanted`: diff_id, size, blob digest) and checks it
/// against its diff_id; returns the layers that verified and a line per one that did not.
/// Blocking.
pub(crate) fn verify_layers(
    store: &ContentStore,
    wanted: Vec<(Digest, u64, Digest)>,
) -> (BTreeSet<Digest>, Vec<String>) {
    let mut ok = BTreeSet::new();
    let mut problems = Vec::new();
    for (diff_id, size, digest) in wanted {
        if !store.has(&digest) {
            continue;
        }
        match crate::export::ensure_uncompressed(store, &digest, &diff_id) {
            Ok(_) if store.size(&diff_id).ok() == Some(size) => {
                ok.insert(diff_id);
            }
            Ok(_) => problems.push(format!("layer {diff_id} has the wrong size")),
            Err(e) => problems.push(format!("layer {digest}: {e}", e = crate::report::chain(&e))),
        }
    }
    (ok, problems)
}

#[cfg(test)]
mod tests;
