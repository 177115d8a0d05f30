//! Whether a cached layer blob can be trusted, without re-hashing it on every cache hit.
//!
//! A blob is hashed in full once (when the worker writes it, or the first time a cache hit needs
//! it); its (size, mtime, ctime, inode) at that moment is kept in `<store>/kiln/verified/<hex>`.
//! Later hits only compare a `stat` with that stamp: anything that rewrote the file changes ctime,
//! and a replaced file has a new inode, so the blob is hashed again. A blob that is missing, has
//! the wrong size or fails the hash is deleted (a same-size corrupt blob would otherwise block
//! the re-run from writing the good one) and the step's record is not used.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::cache::LayerRef;
use crate::content::{ContentStore, Digest};

fn stamp_path(store: &ContentStore, digest: &Digest) -> PathBuf {
    store.state_dir().join("verified").join(digest.hex())
}

fn stamp_of(meta: &std::fs::Metadata) -> String {
    format!(
        "{} {}.{} {}.{} {}",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino()
    )
}

/// Removes the temp files of stamp writes that killed builds left in the stamps' directory (a
/// live writer holds its file locked, so it is kept; see `content::sweep_abandoned_temps`).
pub(crate) fn sweep_abandoned(store: &ContentStore) {
    crate::content::sweep_abandoned_temps(&store.state_dir().join("verified"));
}

/// Records that the blob as it is now was verified. Failures only cost a re-hash later.
pub(crate) fn stamp(store: &ContentStore, digest: &Digest) {
    let Ok(meta) = std::fs::metadata(store.blob_path(digest)) else {
        return;
    };
    let path = stamp_path(store, digest);
    if let Some(dir) = path.parent()
        && std::fs::create_dir_all(dir).is_err()
    {
        return;
    }
    // Not synced: a stamp lost or torn in a crash does not match, and the blob is hashed again.
    let _ = crate::content::write_atomic_unsynced(&path, stamp_of(&meta).as_bytes());
}

/// Whether the blob `digest` carries a stamp that matches it as it is now (no hashing).
pub(crate) fn stamped(store: &ContentStore, digest: &Digest) -> bool {
    std::fs::metadata(store.blob_path(digest)).is_ok_and(|meta| {
        std::fs::read_to_string(stamp_path(store, digest)).is_ok_and(|s| s == stamp_of(&meta))
    })
}

/// Whether the layer's blob is present and intact (see the module docs). Blocking.
pub(crate) fn layer_is_intact(store: &ContentStore, layer: &LayerRef) -> bool {
    let path = store.blob_path(&layer.diff_id);
    let Ok(meta) = std::fs::metadata(&path) else {
        return false;
    };
    if meta.len() == layer.size
        && std::fs::read_to_string(stamp_path(store, &layer.diff_id))
            .is_ok_and(|s| s == stamp_of(&meta))
    {
        return true;
    }
    match store.verify(&layer.diff_id) {
        Ok(size) if size == layer.size => {
            stamp(store, &layer.diff_id);
            true
        }
        _ => {
            tracing::warn!(blob = %layer.diff_id, "cached layer blob failed verification; removing it");
            let _ = store.delete(&layer.diff_id);
            let _ = std::fs::remove_file(stamp_path(store, &layer.diff_id));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_and_missing_blobs_are_rejected_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let info = store.put_bytes(b"layer bytes").unwrap();
        let layer = LayerRef {
            diff_id: info.digest,
            size: info.size,
            packed: None,
        };
        assert!(layer_is_intact(&store, &layer));
        assert!(stamp_path(&store, &info.digest).exists());
        assert!(
            layer_is_intact(&store, &layer),
            "stamped: no re-hash needed"
        );
        // Same size, different bytes: the stat changes, so it is hashed again and fails.
        std::fs::write(store.blob_path(&info.digest), b"LAYER BYTES").unwrap();
        assert!(!layer_is_intact(&store, &layer));
        assert!(!store.has(&info.digest), "the corrupt blob is gone");
        assert!(!layer_is_intact(&store, &layer));
    }
}
