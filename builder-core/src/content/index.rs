//! Tags: manifests listed in the layout's `index.json` with an `org.opencontainers.image.ref.name`
//! annotation.
//!
//! The annotation holds the tag exactly as the caller names it; kiln's CLI passes the full
//! normalized reference (`docker.io/library/app:1`), and `io.containerd.image.name` carries the
//! same value for containerd-style tools. skopeo and podman find the image with
//! `oci:<root>:docker.io/library/app:1`.
//!
//! Updates are read-modify-write cycles under an exclusive lock on `kiln/index.lock`, and the new
//! `index.json` replaces the old one by rename, so concurrent builds never lose each other's tags
//! and readers (which take no lock) never see a torn file. Entries other tools added (untagged
//! manifests, unknown fields) are kept.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::atomic::write_atomic;
use super::error::{ContentError, Result};
use crate::image::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Descriptor, Index};

/// Reads an OCI layout's `index.json`.
pub fn read_index(path: &Path) -> Result<Index> {
    let bytes = std::fs::read(path).map_err(|e| ContentError::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|source: serde_json::Error| ContentError::Json {
        path: path.to_path_buf(),
        source: source.into(),
    })
}

/// Writes an `index.json` canonically and atomically.
pub fn write_index(path: &Path, index: &Index) -> Result<()> {
    let bytes = index
        .to_canonical_json()
        .map_err(|source: serde_json::Error| ContentError::Json {
            path: path.to_path_buf(),
            source: source.into(),
        })?;
    write_atomic(path, &bytes)
}

/// An exclusive lock on the store's metadata, released on drop.
pub(super) struct MetaLock {
    _file: File,
}

impl MetaLock {
    pub(super) fn acquire(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| ContentError::io("open lock file", path, e))?;
        file.lock().map_err(|e| ContentError::io("lock", path, e))?;
        Ok(Self { _file: file })
    }
}

/// Checks that a tag can be stored: not empty, at most 512 bytes, no whitespace or control
/// characters.
pub fn validate_tag(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ContentError::InvalidTag(name.to_string()))
    }
}

/// The tag an index entry carries, if any.
pub fn tag_of(desc: &Descriptor) -> Option<&str> {
    desc.annotation(ANNOTATION_REF_NAME)
}

/// Sets `name` on `manifest` in `index`: any entry with that tag is replaced, entries stay
/// sorted by tag then digest, untagged entries keep their place at the end.
pub fn index_set_tag(index: &mut Index, name: &str, manifest: &Descriptor) {
    index.manifests.retain(|d| tag_of(d) != Some(name));
    let mut entry = manifest.clone();
    entry.set_annotation(ANNOTATION_REF_NAME, name);
    entry.set_annotation(ANNOTATION_CONTAINERD_NAME, name);
    index.manifests.push(entry);
    index
        .manifests
        .sort_by(|a, b| match (tag_of(a), tag_of(b)) {
            (Some(x), Some(y)) => x.cmp(y).then(a.digest.cmp(&b.digest)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
}

/// Paths of a layout's index and lock.
pub(super) struct IndexFiles {
    pub index: PathBuf,
    pub lock: PathBuf,
}

impl IndexFiles {
    /// Runs `f` on the current index under the lock and writes the result when `f` returns true
    /// (so that no-op updates do not rewrite the file). Returns what `f` returned.
    pub(super) fn update(&self, f: impl FnOnce(&mut Index) -> bool) -> Result<bool> {
        let _lock = MetaLock::acquire(&self.lock)?;
        let mut index = read_index(&self.index)?;
        let changed = f(&mut index);
        if changed {
            write_index(&self.index, &index)?;
        }
        Ok(changed)
    }
}
