//! Garbage collection of a store: cache records, the blobs and snapshots only they keep alive,
//! unreferenced blobs, and `RUN --mount=type=cache` directories.
//!
//! What is never removed: blobs reachable from a tag in `index.json` (manifests, nested indexes,
//! configs, layers) and the snapshots of their layer chains, and anything a build in progress may
//! use. Builds hold a shared lock on `<store>/kiln/gc.lock` from start to finish ([`BuildLease`]);
//! the collector takes it exclusively, so it either waits for running builds or (the automatic
//! policy) skips when one is running, and no build starts while it runs.
//!
//! Last use: a cache record's modification time is refreshed on every hit, so least recently used
//! records go first. Snapshots are derived from layer blobs (a missing one is re-imported on
//! use), so removing one is always safe; the collector keeps the chains of tagged images and of
//! the records it keeps.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::content::{ContentStore, Digest};
use crate::snapshot::Snapshotter;

mod inventory;
mod policy;

use inventory::{RecordFile, list_blobs, list_mounts, list_records, secs, tagged};

pub use policy::{DEFAULT_KEEP_STORAGE, GcPolicy, parse_duration, parse_size};

/// Errors of the collector.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A file or directory could not be read, locked or removed.
    #[error(transparent)]
    Io(#[from] crate::report::IoError),
    /// Reading the tags or a tagged manifest failed.
    #[error(transparent)]
    Content(Box<crate::content::ContentError>),
    /// Removing a snapshot failed.
    #[error(transparent)]
    Snapshot(Box<crate::snapshot::SnapshotError>),
}

fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> GcError + 'p {
    move |source| {
        GcError::Io(crate::report::IoError {
            op,
            path: path.to_path_buf(),
            source,
        })
    }
}

fn lock_file(store: &ContentStore) -> Result<File, GcError> {
    let path = store.state_dir().join("gc.lock");
    std::fs::create_dir_all(store.state_dir()).map_err(io("create", store.state_dir()))?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("open", &path))
}

/// Held by a build from start to finish: the collector never runs meanwhile.
#[derive(Debug)]
pub struct BuildLease {
    _file: File,
}

impl BuildLease {
    /// Takes a shared lease, waiting while a collection runs. Blocking.
    pub fn acquire(store: &ContentStore) -> Result<Self, GcError> {
        let file = lock_file(store)?;
        file.lock_shared()
            .map_err(io("lock", &store.state_dir().join("gc.lock")))?;
        Ok(BuildLease { _file: file })
    }
}

/// One cache record as the collector sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordInfo {
    /// The key (hex).
    pub key: String,
    /// The layer's diff_id, if the step made one.
    pub layer: Option<Digest>,
    /// The layer's size.
    pub size: u64,
    /// Last use (seconds since the epoch).
    pub last_used: i64,
    /// When the step first ran.
    pub created: i64,
    /// The instruction, when its key manifest is kept.
    pub instruction: Option<String>,
    /// Whether a tagged image uses the layer too (so pruning the record frees nothing).
    pub shared_with_tag: bool,
}

/// One cache-mount directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountInfo {
    /// Its directory (named by the sha256 of the mount's id).
    pub path: PathBuf,
    /// Bytes in it.
    pub size: u64,
    /// Last modification of the directory (seconds since the epoch).
    pub last_used: i64,
}

/// What the store holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    /// Cache records, least recently used first.
    pub records: Vec<RecordInfo>,
    /// Bytes of all blobs.
    pub blob_bytes: u64,
    /// Bytes of blobs reachable from tags.
    pub tagged_bytes: u64,
    /// Bytes of blobs kept only by cache records.
    pub cache_bytes: u64,
    /// Bytes of blobs nothing references.
    pub unreferenced_bytes: u64,
    /// Number of blobs.
    pub blobs: usize,
    /// Number of committed snapshots.
    pub snapshots: usize,
    /// Cache-mount directories (only when asked for: measuring them walks them).
    pub mounts: Vec<MountInfo>,
}

/// What to remove.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Remove every cache record (and everything only they kept).
    pub all: bool,
    /// Remove records not used within this long.
    pub until: Option<Duration>,
    /// Then remove least recently used records until the blobs take at most this many bytes.
    pub keep_storage: Option<u64>,
    /// Also remove blobs nothing references (untagged images, base images, stale export blobs).
    pub unreferenced: bool,
    /// Also remove cache-mount directories (all with `all`, else those unused for `until`).
    pub mounts: bool,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Cache records removed.
    pub records: usize,
    /// Blobs removed.
    pub blobs: usize,
    /// Bytes of blobs removed.
    pub blob_bytes: u64,
    /// Snapshots removed.
    pub snapshots: usize,
    /// Cache-mount directories removed.
    pub mounts: usize,
    /// Bytes of cache-mount directories removed.
    pub mount_bytes: u64,
}

/// The collector of one store.
pub struct Collector<'a> {
    store: &'a ContentStore,
    snapshots: &'a dyn Snapshotter,
    records_dir: PathBuf,
}

impl<'a> Collector<'a> {
    /// A collector for `store`, its snapshotter and the cache records under `records_dir`.
    pub(crate) fn new(
        store: &'a ContentStore,
        snapshots: &'a dyn Snapshotter,
        records_dir: PathBuf,
    ) -> Self {
        Collector {
            store,
            snapshots,
            records_dir,
        }
    }

    /// What the store holds; `mounts` also measures the cache-mount directories.
    pub fn usage(&self, mounts: bool) -> Result<Usage, GcError> {
        let blobs = list_blobs(self.store)?;
        let (tagged, _) = tagged(self.store)?;
        let files = list_records(&self.records_dir);
        let mut cache_refs = BTreeSet::new();
        let mut records = Vec::new();
        let manifests = crate::cache::FileCacheStore::new(&self.records_dir);
        for f in &files {
            let Some(rec) = &f.record else { continue };
            let layer = rec.layer.as_ref().map(|l| l.diff_id);
            if let Some(l) = layer {
                cache_refs.insert(l);
            }
            records.push(RecordInfo {
                key: f.key.to_hex(),
                layer,
                size: rec.layer.as_ref().map_or(0, |l| l.size),
                last_used: secs(f.last_used),
                created: rec.created,
                instruction: crate::cache::CacheStore::manifest(&manifests, &f.key)
                    .map(|m| m.instruction),
                shared_with_tag: layer.is_some_and(|l| tagged.contains(&l)),
            });
        }
        let mut u = Usage {
            records,
            blobs: blobs.len(),
            snapshots: crate::snapshot::committed_keys(self.snapshots_dir())
                .map(|k| k.len())
                .unwrap_or(0),
            mounts: if mounts {
                list_mounts(self.store)
            } else {
                Vec::new()
            },
            ..Usage::default()
        };
        for (d, size) in &blobs {
            u.blob_bytes += size;
            if tagged.contains(d) {
                u.tagged_bytes += size;
            } else if cache_refs.contains(d) {
                u.cache_bytes += size;
            } else {
                u.unreferenced_bytes += size;
            }
        }
        Ok(u)
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.store.state_dir().join("snapshots")
    }

    /// Prunes, waiting for running builds to finish first.
    pub fn prune(&self, opts: &PruneOptions) -> Result<PruneReport, GcError> {
        let lock = lock_file(self.store)?;
        lock.lock()
            .map_err(io("lock", &self.store.state_dir().join("gc.lock")))?;
        self.prune_locked(opts)
    }

    /// The automatic policy: when the blobs take more than `keep_storage` bytes, prune least
    /// recently used records and unreferenced blobs until they fit. Does nothing (returns `None`)
    /// while any build runs, and costs one directory listing when the store is small enough.
    pub fn auto(&self, keep_storage: u64) -> Result<Option<PruneReport>, GcError> {
        let total: u64 = list_blobs(self.store)?.values().sum();
        if total <= keep_storage {
            return Ok(None);
        }
        let lock = lock_file(self.store)?;
        if lock.try_lock().is_err() {
            return Ok(None);
        }
        self.prune_locked(&PruneOptions {
            keep_storage: Some(keep_storage),
            unreferenced: true,
            ..PruneOptions::default()
        })
        .map(Some)
    }

    fn prune_locked(&self, opts: &PruneOptions) -> Result<PruneReport, GcError> {
        let mut report = PruneReport::default();
        let mut blobs = list_blobs(self.store)?;
        let (tagged, tagged_chains) = tagged(self.store)?;
        let files = list_records(&self.records_dir);
        let now = SystemTime::now();
        let cutoff = opts.until.and_then(|d| now.checked_sub(d));

        // Reference counts of layers held by records.
        let mut refs: BTreeMap<Digest, usize> = BTreeMap::new();
        for f in &files {
            if let Some(l) = f.record.as_ref().and_then(|r| r.layer.as_ref()) {
                *refs.entry(l.diff_id).or_default() += 1;
            }
        }
        let referenced = |d: &Digest, refs: &BTreeMap<Digest, usize>| {
            tagged.contains(d) || refs.get(d).is_some_and(|n| *n > 0)
        };
        let mut total: u64 = if opts.unreferenced {
            blobs
                .iter()
                .filter(|(d, _)| referenced(d, &refs))
                .map(|(_, s)| s)
                .sum()
        } else {
            blobs.values().sum()
        };
        let mut keep: Vec<&RecordFile> = Vec::new();
        // Least recently used first.
        for f in &files {
            let expired = opts.all
                || f.record.is_none()
                || cutoff.is_some_and(|c| f.last_used < c)
                || opts.keep_storage.is_some_and(|k| total > k);
            if !expired {
                keep.push(f);
                continue;
            }
            let _ = std::fs::remove_file(&f.path);
            let _ = std::fs::remove_file(f.path.with_extension("manifest.json"));
            report.records += 1;
            if let Some(l) = f.record.as_ref().and_then(|r| r.layer.as_ref())
                && let Some(n) = refs.get_mut(&l.diff_id)
            {
                *n -= 1;
                if *n == 0 && !tagged.contains(&l.diff_id) {
                    total = total.saturating_sub(blobs.get(&l.diff_id).copied().unwrap_or(0));
                }
            }
        }

        // Layer blobs whose last record went, and with `unreferenced` every blob nothing uses.
        let freed_layers: BTreeSet<Digest> = files
            .iter()
            .filter_map(|f| f.record.as_ref()?.layer.as_ref().map(|l| l.diff_id))
            .filter(|d| !referenced(d, &refs))
            .collect();
        let compressed = self.compressed_memos(|d| referenced(d, &refs));
        for (d, size) in std::mem::take(&mut blobs) {
            let drop = if opts.unreferenced {
                !referenced(&d, &refs) && !compressed.contains(&d)
            } else {
                freed_layers.contains(&d)
            };
            if drop
                && self
                    .store
                    .delete(&d)
                    .map_err(|e| GcError::Content(Box::new(e)))?
            {
                report.blobs += 1;
                report.blob_bytes += size;
                let _ = std::fs::remove_file(self.store.state_dir().join("verified").join(d.hex()));
            }
        }

        // Snapshots: keep the chains of tagged images and of kept records (with their ancestors).
        if report.records > 0 || report.blobs > 0 {
            report.snapshots = self.prune_snapshots(&tagged_chains, &keep)?;
        }

        if opts.mounts {
            for m in list_mounts(self.store) {
                let old = opts.all
                    || cutoff.is_some_and(|c| m.last_used < secs(c))
                    || opts.until.is_none();
                if old {
                    std::fs::remove_dir_all(&m.path).map_err(io("remove", &m.path))?;
                    report.mounts += 1;
                    report.mount_bytes += m.size;
                }
            }
        }
        if opts.unreferenced {
            let _ = self.store.clean_abandoned();
        }
        self.sweep_atomic_temps(now);
        Ok(report)
    }

    /// Removes temp files of atomic metadata writes (`.tmp-*`) that killed processes left in
    /// kiln's own directories, once they are an hour old (a live writer renames within moments).
    fn sweep_atomic_temps(&self, now: SystemTime) {
        let state = self.store.state_dir();
        let mut dirs = vec![
            state.join("verified"),
            state.join("explain").join("builds"),
            state.join("explain").join("scopes"),
            state.to_path_buf(),
        ];
        dirs.extend(
            std::fs::read_dir(&self.records_dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        );
        for dir in dirs {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d.as_secs() > 3600));
                if old && e.file_name().as_encoded_bytes().starts_with(b".tmp-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Compressed export blobs of layers that stay; memos of layers that go are removed.
    fn compressed_memos(&self, layer_kept: impl Fn(&Digest) -> bool) -> BTreeSet<Digest> {
        let mut keep = BTreeSet::new();
        let dir = self.store.state_dir().join("compressed");
        for alg in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            for memo in std::fs::read_dir(alg.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = memo.path();
                let layer = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|h| Digest::from_hex(h).ok());
                let target = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| {
                        v.get("digest")
                            .and_then(|d| d.as_str())
                            .and_then(|d| d.parse::<Digest>().ok())
                    });
                match (layer, target) {
                    (Some(l), Some(t)) if layer_kept(&l) => {
                        keep.insert(t);
                    }
                    _ => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        keep
    }

    fn prune_snapshots(
        &self,
        tagged_chains: &[Vec<Digest>],
        keep: &[&RecordFile],
    ) -> Result<usize, GcError> {
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        for layers in tagged_chains {
            let refs: Vec<crate::cache::LayerRef> = layers
                .iter()
                .map(|d| crate::cache::LayerRef {
                    diff_id: *d,
                    size: 0,
                    packed: None,
                })
                .collect();
            wanted.extend(crate::cache::chain_ids(&refs));
        }
        for f in keep {
            if let Some(chain) = f.record.as_ref().and_then(|r| r.chain.clone()) {
                wanted.insert(chain);
            }
        }
        // Ancestors of wanted snapshots are wanted too.
        let mut todo: Vec<String> = wanted.iter().cloned().collect();
        while let Some(k) = todo.pop() {
            if let Ok(Some(p)) = self.snapshots.parent(&k)
                && wanted.insert(p.clone())
            {
                todo.push(p);
            }
        }
        let all = crate::snapshot::committed_keys(self.snapshots_dir())
            .map_err(|e| GcError::Snapshot(Box::new(e)))?;
        let mut doomed: Vec<String> = all.into_iter().filter(|k| !wanted.contains(k)).collect();
        let mut removed = 0;
        // Children before parents: retry until no progress.
        while !doomed.is_empty() {
            let before = doomed.len();
            doomed.retain(|k| match self.snapshots.remove(k) {
                Ok(()) => {
                    removed += 1;
                    false
                }
                Err(_) => true,
            });
            if doomed.len() == before {
                break;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_lease_holds_off_the_collector_and_tags_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let snaps = crate::snapshot::open(store.state_dir().join("snapshots")).unwrap();
        let loose = store.put_bytes(b"nothing references this").unwrap();
        let layer = store.put_bytes(b"a tagged layer").unwrap();
        let config = store.put_bytes(b"{\"rootfs\":{\"diff_ids\":[]}}").unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": crate::image::media::OCI_CONFIG, "digest": config.digest.to_string(), "size": config.size},
            "layers": [{"mediaType": crate::image::media::OCI_LAYER_TAR, "digest": layer.digest.to_string(), "size": layer.size}],
        });
        let m = store.put_bytes(manifest.to_string().as_bytes()).unwrap();
        store
            .set_tag(
                "example.com/kept:1",
                &crate::image::Descriptor::new(crate::image::media::OCI_MANIFEST, m.digest, m.size),
            )
            .unwrap();
        let gc = Collector::new(&store, snaps.as_ref(), store.state_dir().join("cache"));

        let lease = BuildLease::acquire(&store).unwrap();
        assert_eq!(gc.auto(0).unwrap(), None, "a build is running");
        assert!(store.has(&loose.digest));
        drop(lease);

        let report = gc.auto(0).unwrap().unwrap();
        assert_eq!(report.blobs, 1);
        assert!(!store.has(&loose.digest));
        for kept in [layer.digest, config.digest, m.digest] {
            assert!(store.has(&kept), "{kept} is reachable from a tag");
        }
        let usage = gc.usage(false).unwrap();
        assert_eq!(usage.unreferenced_bytes, 0);
        assert_eq!(usage.tagged_bytes, usage.blob_bytes);
    }
}
