//! The content store: an OCI image layout on disk that podman, skopeo and umoci can read directly.
//!
//! ```text
//! <root>/oci-layout            {"imageLayoutVersion":"1.0.0"}
//! <root>/index.json            tagged manifests (see the `index` submodule for the tag format)
//! <root>/blobs/sha256/<hex>    every blob: layers, configs, manifests
//! <root>/kiln/                 kiln's private state (cache records, compression map, lock)
//! <root>/kiln/tmp/             blobs being written (same filesystem, so commit is a rename)
//! ```
//!
//! It owns blob integrity and metadata atomicity: a blob only appears under its digest after its
//! bytes were fsynced and verified, readers verify again at end of file, and `index.json` and
//! other metadata are replaced by rename under a lock. A process killed at any moment leaves at
//! most stray files in `kiln/tmp/`, which [`ContentStore::open`] removes (see
//! [`ContentStore::clean_abandoned`]). It does not know
//! about layers, builds or the cache: those put and get blobs through it.
//!
//! All functions are synchronous; async callers run them on blocking threads.
//!
//! ```
//! # fn main() -> Result<(), kiln_builder_core::content::ContentError> {
//! use std::io::Write;
//! use kiln_builder_core::content::ContentStore;
//! let dir = tempfile::tempdir().unwrap();
//! let store = ContentStore::open(dir.path())?;
//! let mut w = store.writer()?;
//! w.write_all(b"hello").unwrap();
//! let blob = w.commit(None)?;
//! assert_eq!(store.read_verified_bytes(&blob.digest)?, b"hello");
//! # Ok(()) }
//! ```

mod atomic;
mod blob;
mod error;
mod index;
mod json_error;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use crate::image::{Digest, Hasher, InvalidDigest};
pub(crate) use atomic::{fsync_dir, sweep_abandoned_temps, write_atomic, write_atomic_unsynced};
pub(crate) use blob::unwrap_io_error;
pub use blob::{BlobInfo, BlobWriter, VerifiedReader};
pub use error::{ContentError, Result};
pub(crate) use index::{index_set_tag, read_index, tag_of, validate_tag, write_index};
pub use json_error::{JsonError, JsonErrorKind};

use crate::image::{Descriptor, Index};
use index::IndexFiles;

/// The `oci-layout` file's content.
pub(crate) const OCI_LAYOUT_JSON: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Makes the store's root directory `0700`, so no other local user can reach anything in it: a
/// snapshot's setuid-root binary or device node, a layer, a cache mount, a secret in flight.
/// Everything else in the store is reached through the root, so this one directory is the
/// boundary. An existing store is tightened when opened. A root owned by another user is left
/// alone (it cannot be changed, and it is that user's decision).
fn restrict_to_owner(root: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(root).map_err(|e| ContentError::io("stat", root, e))?;
    if meta.mode() & 0o077 != 0 && meta.uid() == rustix::process::geteuid().as_raw() {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ContentError::io("restrict permissions of", root, e))?;
    }
    Ok(())
}

/// An OCI image layout used as kiln's store. Cheap to clone; safe to share between threads and
/// processes.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    blobs: PathBuf,
    state: PathBuf,
    tmp: PathBuf,
}

impl ContentStore {
    /// Opens the store at `root`, creating the layout and kiln's state directory if missing.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let store = Self {
            blobs: root.join("blobs").join("sha256"),
            state: root.join("kiln"),
            tmp: root.join("kiln").join("tmp"),
            root,
        };
        atomic::create_dir_all(&store.root)?;
        restrict_to_owner(&store.root)?;
        atomic::create_dir_all(&store.blobs)?;
        atomic::create_dir_all(&store.tmp)?;
        // Creation runs under the lock so that a concurrent first build cannot replace an index
        // another one just wrote.
        let lock = index::MetaLock::acquire(&store.lock_path())?;
        let layout = store.root.join("oci-layout");
        match std::fs::read(&layout) {
            Ok(bytes) => check_layout(&layout, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomic(&layout, OCI_LAYOUT_JSON)?;
            }
            Err(e) => return Err(ContentError::io("read", layout, e)),
        }
        let index = store.index_path();
        if !index.exists() {
            write_index(&index, &Index::default())?;
        }
        drop(lock);
        store.clean_abandoned()?;
        Ok(store)
    }

    /// The layout's root directory (mode 0700, as the store restricts it to its owner).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// kiln's private state directory (`<root>/kiln`), for cache records and similar metadata.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn lock_path(&self) -> PathBuf {
        self.state.join("index.lock")
    }

    fn index_files(&self) -> IndexFiles {
        IndexFiles {
            index: self.index_path(),
            lock: self.lock_path(),
        }
    }

    /// Starts writing a new blob.
    pub fn writer(&self) -> Result<BlobWriter> {
        BlobWriter::new(&self.tmp, self.blobs.clone())
    }

    /// Stores `bytes` as a blob (a no-op if it is already there).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<BlobInfo> {
        let info = BlobInfo {
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
        };
        if self.size(&info.digest).ok() == Some(info.size) {
            return Ok(info);
        }
        let mut w = self.writer()?;
        std::io::Write::write_all(&mut w, bytes)
            .map_err(|e| ContentError::io("write", w.temp_path().to_path_buf(), e))?;
        w.commit(Some((&info.digest, info.size)))
    }

    /// Stores a value as canonical JSON and returns its descriptor with `media_type`.
    pub fn put_json<T: serde::Serialize>(&self, value: &T, media_type: &str) -> Result<Descriptor> {
        let bytes =
            crate::image::to_canonical_json(value).map_err(|source: serde_json::Error| {
                ContentError::Json {
                    path: self.blobs.clone(),
                    source: source.into(),
                }
            })?;
        let info = self.put_bytes(&bytes)?;
        Ok(Descriptor::new(media_type, info.digest, info.size))
    }

    /// Reads a JSON blob (verified) into `T`.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, digest: &Digest) -> Result<T> {
        let bytes = self.read_verified_bytes(digest)?;
        serde_json::from_slice(&bytes).map_err(|source: serde_json::Error| ContentError::Json {
            path: self.blob_path(digest),
            source: source.into(),
        })
    }

    /// Reads a JSON blob (verified) that should be `what` (`manifest`, `index`, `image config`)
    /// into `T`; a parse error names `what` and the digest.
    pub fn read_json_as<T: serde::de::DeserializeOwned>(
        &self,
        digest: &Digest,
        what: &'static str,
    ) -> Result<T> {
        let bytes = self.read_verified_bytes(digest)?;
        serde_json::from_slice(&bytes).map_err(|source: serde_json::Error| {
            ContentError::InvalidJson {
                what,
                digest: *digest,
                source: source.into(),
            }
        })
    }

    /// Whether the blob is present.
    pub fn has(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The blob's size.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ContentError::NotFound(*digest))
            }
            Err(e) => Err(ContentError::io("stat", path, e)),
        }
    }

    /// Opens the blob for reading; the reader fails at end of file if the bytes do not match.
    pub fn open_verified(&self, digest: &Digest) -> Result<VerifiedReader> {
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ContentError::NotFound(*digest));
            }
            Err(e) => return Err(ContentError::io("open", path, e)),
        };
        let size = file
            .metadata()
            .map_err(|e| ContentError::io("stat", &path, e))?
            .len();
        Ok(VerifiedReader::new(file, *digest, size))
    }

    /// Reads a whole blob, verified.
    pub fn read_verified_bytes(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut r = self.open_verified(digest)?;
        let mut out = Vec::with_capacity(usize::try_from(r.size()).unwrap_or(0));
        r.read_to_end(&mut out)
            .map_err(|e| unwrap_io_error(e, "read", self.blob_path(digest)))?;
        Ok(out)
    }

    /// Re-hashes a blob and fails if it is corrupt.
    pub fn verify(&self, digest: &Digest) -> Result<u64> {
        let mut r = self.open_verified(digest)?;
        std::io::copy(&mut r, &mut std::io::sink())
            .map_err(|e| unwrap_io_error(e, "read", self.blob_path(digest)))
    }

    /// Removes a blob. Returns whether it existed.
    pub fn delete(&self, digest: &Digest) -> Result<bool> {
        let path = self.blob_path(digest);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                fsync_dir(&self.blobs)?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ContentError::io("remove", path, e)),
        }
    }

    /// Removes the temp files of writers that no longer exist (a killed build's half-written
    /// blobs). Every live [`BlobWriter`] holds an exclusive lock on its temp file, so a file whose
    /// lock can be taken has no writer; it is deleted while the lock is held, which a writer that
    /// is just starting detects (see `blob::locked_temp_file`). Returns how many were removed.
    pub fn clean_abandoned(&self) -> Result<usize> {
        let mut removed = 0;
        let entries =
            std::fs::read_dir(&self.tmp).map_err(|e| ContentError::io("list", &self.tmp, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if file.try_lock().is_ok() && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes temp files older than `age` left by killed writers, whether or not a writer still
    /// holds them.
    pub fn clean_tmp(&self, age: Duration) -> Result<usize> {
        let now = SystemTime::now();
        let mut removed = 0;
        let entries =
            std::fs::read_dir(&self.tmp).map_err(|e| ContentError::io("list", &self.tmp, e))?;
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|d| d >= age);
            if old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> Result<Index> {
        read_index(&self.index_path())
    }

    /// Points the tag `name` at `manifest` (replacing what it pointed to).
    pub fn set_tag(&self, name: &str, manifest: &Descriptor) -> Result<()> {
        validate_tag(name)?;
        // Re-tagging with the same manifest leaves index.json untouched (no write, no fsync).
        self.index_files().update(|idx| {
            let before = idx.clone();
            index::index_set_tag(idx, name, manifest);
            *idx != before
        })?;
        Ok(())
    }

    /// The manifest the tag points to.
    pub fn get_tag(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .index()?
            .manifests
            .into_iter()
            .find(|d| tag_of(d) == Some(name)))
    }

    /// All tags and their manifests, sorted by tag.
    pub fn list(&self) -> Result<Vec<(String, Descriptor)>> {
        let mut out: Vec<(String, Descriptor)> = self
            .index()?
            .manifests
            .into_iter()
            .filter_map(|d| tag_of(&d).map(|t| (t.to_string(), d.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Removes a tag. Returns whether it existed. Blobs are left for garbage collection.
    pub fn remove_tag(&self, name: &str) -> Result<bool> {
        self.index_files().update(|idx| {
            let before = idx.manifests.len();
            idx.manifests.retain(|d| tag_of(d) != Some(name));
            idx.manifests.len() != before
        })
    }
}

fn check_layout(path: &Path, bytes: &[u8]) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Layout {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    let layout: Layout =
        serde_json::from_slice(bytes).map_err(|source: serde_json::Error| ContentError::Json {
            path: path.to_path_buf(),
            source: source.into(),
        })?;
    if layout.version != "1.0.0" {
        return Err(ContentError::LayoutVersion {
            path: path.to_path_buf(),
            version: layout.version,
        });
    }
    Ok(())
}
