//! The step cache: cache keys, and records that map a key to the layer the step produced.
//!
//! A record is only a pointer: the layer blob it names lives in the content store, and the solver
//! trusts a record only after the worker confirms that the blob is present (and the store verifies
//! it when read). Records are small JSON files replaced atomically, so a crash never leaves a torn
//! one; an unreadable record is treated as a miss and overwritten by the next run of the step.

mod explain;
mod files;
mod key;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use explain::{
    BaseImage, BuildExplanation, ExplainError, ExplainStore, FileChange, KeyManifest, MissReason,
    StepExplanation, explain, new_build_id, value_digest,
};
pub use files::FileDigests;
pub use key::{CacheKey, KeyBuilder};

/// A layer a step produced, as recorded in the cache and in the image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerRef {
    /// Digest of the uncompressed layer tar (the image's diff_id; also the blob digest in kiln's
    /// store, which keeps layers uncompressed).
    pub diff_id: crate::content::Digest,
    /// Size in bytes of the blob that holds the layer: the uncompressed tar, or for a packed
    /// layer the compressed blob.
    pub size: u64,
    /// Set when the store holds the layer only compressed (a base image's layer whose tar nothing
    /// has needed yet): that blob. `None`: the blob is `diff_id` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed: Option<PackedBlob>,
}

/// The compressed blob that holds a layer (see [`LayerRef::packed`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PackedBlob {
    /// The blob's digest.
    pub digest: crate::content::Digest,
    /// Its OCI layer media type (gzip or zstd).
    pub media_type: String,
}

impl LayerRef {
    /// A layer kept uncompressed under its diff_id.
    pub fn plain(diff_id: crate::content::Digest, size: u64) -> Self {
        Self {
            diff_id,
            size,
            packed: None,
        }
    }
}

/// What a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer, or `None` when the step changed nothing.
    pub layer: Option<LayerRef>,
    /// When the step first ran (seconds since the epoch); becomes the history entry's `created`.
    pub created: i64,
    /// The OCI chain ID of the state the step produced (its snapshot's key), so the garbage
    /// collector keeps that snapshot with the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

/// Errors of the record store.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Replacing a record atomically failed (the store's error names the file).
    #[error(transparent)]
    Record(Box<crate::content::ContentError>),
    /// Creating the records' directory failed.
    #[error("cannot create cache directory {path}")]
    Write {
        /// The record file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where cache records are kept.
pub trait CacheStore: Send + Sync {
    /// The record for `key`, if any (unreadable records are misses).
    fn get(&self, key: &CacheKey) -> Option<CacheRecord>;
    /// Stores a record for `key`, replacing any.
    fn put(&self, key: &CacheKey, record: &CacheRecord) -> Result<(), CacheError>;
    /// Forgets `key` (after its layer was found missing or corrupt).
    fn remove(&self, key: &CacheKey);
    /// The named inputs of `key`, kept to explain later misses (none by default).
    fn manifest(&self, _key: &CacheKey) -> Option<KeyManifest> {
        None
    }
    /// Keeps the named inputs of `key` next to its record (a no-op by default).
    fn put_manifest(&self, _key: &CacheKey, _manifest: &KeyManifest) -> Result<(), CacheError> {
        Ok(())
    }
    /// Forgets the named inputs of `key` when no record was made for them after all (the step
    /// failed after its manifest was written).
    fn forget_manifest(&self, _key: &CacheKey) {}
}

/// Records as files `<dir>/<2 hex>/<64 hex>.json`.
#[derive(Debug, Clone)]
pub struct FileCacheStore {
    dir: PathBuf,
}

impl FileCacheStore {
    /// Records under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileCacheStore { dir: dir.into() }
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        let hex = key.to_hex();
        self.dir.join(&hex[..2]).join(format!("{hex}.json"))
    }

    fn manifest_path(&self, key: &CacheKey) -> PathBuf {
        let hex = key.to_hex();
        self.dir
            .join(&hex[..2])
            .join(format!("{hex}.manifest.json"))
    }

    /// The directory holding the records.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn write(&self, path: &std::path::Path, bytes: &[u8]) -> Result<(), CacheError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| CacheError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
            // What a build killed while writing a record here left behind.
            crate::content::sweep_abandoned_temps(dir);
        }
        crate::content::write_atomic(path, bytes).map_err(|e| CacheError::Record(Box::new(e)))
    }

    /// Like `write`, with the bytes written by `fill` through a buffer instead of held whole.
    fn write_with(
        &self,
        path: &std::path::Path,
        fill: &dyn Fn(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(), CacheError> {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir).map_err(|source| CacheError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        crate::content::sweep_abandoned_temps(dir);
        let err = |op, p: &std::path::Path, e| {
            CacheError::Record(Box::new(crate::content::ContentError::io(op, p, e)))
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(dir)
                .map_err(|e| err("create temp file in", dir, e))?;
            // Locked, so that another build's sweep of abandoned temps leaves it alone.
            tmp.as_file()
                .lock()
                .map_err(|e| err("lock", tmp.path(), e))?;
            let mut out = std::io::BufWriter::new(tmp);
            fill(&mut out)
                .and_then(|()| std::io::Write::flush(&mut out))
                .map_err(|e| err("write", path, e))?;
            let tmp = out
                .into_inner()
                .map_err(|e| err("write", path, e.into_error()))?;
            tmp.as_file()
                .sync_all()
                .map_err(|e| err("fsync", tmp.path(), e))?;
            match tmp.persist(path) {
                Ok(_) => break,
                Err(e) if e.error.kind() == std::io::ErrorKind::NotFound && attempt < 3 => {}
                Err(e) => return Err(err("rename into place", path, e.error)),
            }
        }
        crate::content::fsync_dir(dir).map_err(|e| CacheError::Record(Box::new(e)))
    }
}

impl CacheStore for FileCacheStore {
    fn get(&self, key: &CacheKey) -> Option<CacheRecord> {
        let path = self.path(key);
        let file = std::fs::File::open(&path).ok()?;
        let record: CacheRecord = serde_json::from_reader(std::io::BufReader::new(&file)).ok()?;
        // The record's modification time is its last use, for least-recently-used pruning. Only
        // the inode changes, so the no-op rebuild still writes no data.
        let _ = file.set_modified(std::time::SystemTime::now());
        Some(record)
    }

    fn put(&self, key: &CacheKey, record: &CacheRecord) -> Result<(), CacheError> {
        // Serialising a plain struct of strings and integers cannot fail.
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        self.write(&self.path(key), &bytes)
    }

    fn remove(&self, key: &CacheKey) {
        let _ = std::fs::remove_file(self.path(key));
        let _ = std::fs::remove_file(self.manifest_path(key));
    }

    fn manifest(&self, key: &CacheKey) -> Option<KeyManifest> {
        let bytes = std::fs::read(self.manifest_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn put_manifest(&self, key: &CacheKey, manifest: &KeyManifest) -> Result<(), CacheError> {
        // Streamed: the manifest of a COPY of 100,000 files is ~9 MB of JSON.
        self.write_with(&self.manifest_path(key), &|w| {
            serde_json::to_writer(w, manifest).map_err(std::io::Error::other)
        })
    }

    fn forget_manifest(&self, key: &CacheKey) {
        let _ = std::fs::remove_file(self.manifest_path(key));
    }
}

/// The OCI chain ID of each prefix of `layers`, as snapshot keys (hex).
pub fn chain_ids(layers: &[LayerRef]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(layers.len());
    for layer in layers {
        let id = match out.last() {
            None => layer.diff_id.hex(),
            Some(prev) => {
                let mut h = <sha2::Sha256 as sha2::Digest>::new();
                sha2::Digest::update(
                    &mut h,
                    format!("sha256:{prev} {}", layer.diff_id).as_bytes(),
                );
                hex::encode(sha2::Digest::finalize(h))
            }
        };
        out.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_files_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCacheStore::new(dir.path());
        let key = KeyBuilder::new("run", None).finish();
        assert_eq!(store.get(&key), None);
        let rec = CacheRecord {
            layer: Some(LayerRef {
                diff_id: crate::content::Digest::of(b"layer"),
                size: 10,
                packed: None,
            }),
            created: 5,
            chain: None,
        };
        store.put(&key, &rec).unwrap();
        assert_eq!(store.get(&key), Some(rec));
        std::fs::write(store.path(&key), b"{\"layer\":").unwrap();
        assert_eq!(store.get(&key), None);
        store.remove(&key);
        assert!(!store.path(&key).exists());
    }
}
