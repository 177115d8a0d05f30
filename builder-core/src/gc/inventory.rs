//! What a store holds, as the collector sees it: blobs with their sizes, what tags reach, cache
//! records with their last use, and cache-mount directories.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{GcError, MountInfo, io};
use crate::cache::{CacheKey, CacheRecord};
use crate::content::{ContentStore, Digest};

pub(super) fn secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn blob_dir(store: &ContentStore) -> PathBuf {
    store.root().join("blobs").join("sha256")
}

/// Every blob with its size.
pub(super) fn list_blobs(store: &ContentStore) -> Result<BTreeMap<Digest, u64>, GcError> {
    let dir = blob_dir(store);
    let mut out = BTreeMap::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io("list", &dir)(e)),
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(d) = name.to_str().and_then(|n| Digest::from_hex(n).ok()) else {
            continue;
        };
        if let Ok(m) = e.metadata() {
            out.insert(d, m.len());
        }
    }
    Ok(out)
}

/// Blobs reachable from tags, and the layer lists of tagged images (for their snapshot chains).
pub(super) fn tagged(
    store: &ContentStore,
) -> Result<(BTreeSet<Digest>, Vec<Vec<Digest>>), GcError> {
    let tags = store.list().map_err(|e| GcError::Content(Box::new(e)))?;
    let mut seen = BTreeSet::new();
    let mut chains = Vec::new();
    // An image's attachments (provenance, SBOM) live as long as its tag: the annotation on its
    // tag, or on its entry in a multi-platform index.
    let attached = |x: &serde_json::Value| {
        x.pointer("/annotations")
            .and_then(|a| a.get(crate::attest::ANNOTATION_ATTACHMENTS))
            .and_then(|s| s.as_str())
            .and_then(|s| s.parse::<Digest>().ok())
    };
    let mut todo: Vec<Digest> = Vec::new();
    for (_, d) in tags {
        todo.extend(
            d.annotation(crate::attest::ANNOTATION_ATTACHMENTS)
                .and_then(|a| a.parse::<Digest>().ok()),
        );
        todo.push(d.digest);
    }
    while let Some(d) = todo.pop() {
        if !seen.insert(d) {
            continue;
        }
        // A tagged blob that is missing or not JSON (a layer) has nothing below it.
        let Ok(v) = store.read_json::<serde_json::Value>(&d) else {
            continue;
        };
        let digest_of = |x: &serde_json::Value| {
            x.get("digest")
                .and_then(|s| s.as_str())
                .and_then(|s| s.parse::<Digest>().ok())
        };
        if let Some(ms) = v.get("manifests").and_then(|m| m.as_array()) {
            todo.extend(ms.iter().filter_map(digest_of));
            todo.extend(ms.iter().filter_map(attached));
        }
        if let Some(ls) = v.get("layers").and_then(|l| l.as_array()) {
            seen.extend(ls.iter().filter_map(digest_of));
        }
        if let Some(c) = v.get("config").and_then(digest_of) {
            seen.insert(c);
            // Snapshots and kiln's own layer blobs are named by the uncompressed diff_ids, which
            // only the config lists (a pulled image's manifest names compressed blobs).
            let diff_ids: Vec<Digest> = store
                .read_json::<serde_json::Value>(&c)
                .ok()
                .and_then(|cfg| {
                    cfg.pointer("/rootfs/diff_ids")?.as_array().map(|a| {
                        a.iter()
                            .filter_map(|d| d.as_str().and_then(|d| d.parse::<Digest>().ok()))
                            .collect()
                    })
                })
                .unwrap_or_default();
            seen.extend(diff_ids.iter().copied());
            chains.push(diff_ids);
        }
    }
    Ok((seen, chains))
}

pub(super) struct RecordFile {
    pub(super) key: CacheKey,
    pub(super) path: PathBuf,
    pub(super) record: Option<CacheRecord>,
    pub(super) last_used: SystemTime,
}

pub(super) fn list_records(dir: &Path) -> Vec<RecordFile> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for sub in rd.flatten() {
        let Ok(files) = std::fs::read_dir(sub.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Some(key) = CacheKey::from_hex(hex) else {
                continue;
            };
            let path = f.path();
            let record = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let last_used = f
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            out.push(RecordFile {
                key,
                path,
                record,
                last_used,
            });
        }
    }
    out.sort_by_key(|r| (r.last_used, r.key));
    out
}

fn dir_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

pub(super) fn list_mounts(store: &ContentStore) -> Vec<MountInfo> {
    let dir = store.state_dir().join("cache-mounts");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<MountInfo> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let path = e.path();
            let last_used = e
                .metadata()
                .and_then(|m| m.modified())
                .map(secs)
                .unwrap_or(0);
            MountInfo {
                size: dir_size(&path),
                path,
                last_used,
            }
        })
        .collect();
    out.sort_by_key(|m| m.last_used);
    out
}
