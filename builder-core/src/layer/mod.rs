//! Layers: the deterministic tar writer, the confined applier, and compression.
//!
//! A layer is written once, uncompressed, straight into the content store; its sha256 (the
//! diff_id) is computed by the blob writer in the same pass. Identical trees give identical bytes.
//! Compression happens only when an export or push needs it, and is remembered.
//!
//! All functions here are synchronous and CPU or disk bound; async callers use `spawn_blocking`.
//! A tree written and applied again: `tests::a_tree_written_and_applied_again`.

mod apply;
mod compress;
mod packed;
mod patch;
pub(crate) mod tarfmt;
mod writer;

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod bench_tests;
#[cfg(test)]
mod packed_tests;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

use apply::apply_tar;
pub use apply::{ApplyOptions, ApplyStats, apply_layer};
pub use compress::{
    ArchiveCompression, CompressOptions, compress_layer, decompress, detect_compression,
    gzip_parallel,
};
#[cfg(test)]
use compress::{GZIP_BLOCK, lookup_compressed};
pub use packed::apply_packed;
pub use patch::write_patched;
pub use writer::{
    LayerOptions, Substitutes, WriteStats, write_changes, write_tree, write_tree_substituted,
};

use crate::changes::Change;
use crate::content::{BlobInfo, ContentError, ContentStore};
use crate::fsroot::{FsError, Root};

/// An error while writing, applying or compressing a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A confined filesystem operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Another filesystem operation failed.
    #[error(transparent)]
    Io(#[from] crate::report::IoError),
    /// Writing the tar stream failed.
    #[error("cannot write layer")]
    Write(#[source] io::Error),
    /// Reading or decompressing the tar stream failed.
    #[error("cannot read layer archive")]
    Read(#[source] io::Error),
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// A file in the tree has a name that layers reserve for whiteouts.
    #[error("cannot store {path} in a layer: names beginning with .wh. are reserved for whiteouts")]
    WhiteoutName {
        /// The path inside the tree.
        path: PathBuf,
    },
    /// A file was shorter than its size while it was read.
    #[error("{path} changed while it was archived: expected {expected} bytes, read {actual}")]
    FileChanged {
        /// The host path.
        path: PathBuf,
        /// Size when stat'ed.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// A tar entry is malformed.
    #[error("invalid layer entry {path}: {reason}")]
    InvalidEntry {
        /// The entry's cleaned path.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A tar entry type that layers cannot contain.
    #[error("unsupported entry type {kind} for {path}")]
    UnsupportedEntry {
        /// The entry's cleaned path.
        path: PathBuf,
        /// The type.
        kind: String,
    },
    /// A hard link whose target does not exist inside the root.
    #[error("cannot hard link {path} to {target}")]
    HardLink {
        /// The link's path.
        path: PathBuf,
        /// The target, cleaned and confined to the root.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: FsError,
    },
    /// An old layer cannot be patched exactly (see `write_patched`); the layer is written
    /// the ordinary way instead.
    #[error("cannot patch the previous layer: {reason}")]
    PatchUnsupported {
        /// What stands in the way.
        reason: &'static str,
    },
    /// The stream uses a compression kiln cannot read.
    #[error("unsupported archive compression {0}")]
    UnsupportedCompression(&'static str),
    /// Applying a compressed layer blob failed (a base layer unpacked straight from its compressed blob).
    #[error("layer blob {blob}")]
    Packed {
        /// The compressed blob.
        blob: crate::content::Digest,
        /// What failed.
        #[source]
        source: Box<LayerError>,
    },
    /// A compressed layer blob decompressed to another tar than its diff_id names.
    #[error("layer blob {blob} decompresses to {actual}, not to its diff_id {expected}")]
    DiffIdMismatch {
        /// The compressed blob.
        blob: crate::content::Digest,
        /// The diff_id the image's config lists.
        expected: crate::content::Digest,
        /// The digest of the tar it holds.
        actual: crate::content::Digest,
    },
}

/// Applies the layer blob `digest` from the store onto `root`, then reads the blob to its end so
/// its digest is checked even though the tar reader stops at the end-of-archive blocks. A corrupt
/// blob fails after it was (partly) applied, so the caller discards `root` on error.
pub fn apply_blob(
    store: &ContentStore,
    digest: &crate::content::Digest,
    root: &Root,
    style: crate::changes::WhiteoutStyle,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    let mut reader = store.open_verified(digest)?;
    let stats = apply_layer(root, &mut reader, style, opts)?;
    io::copy(&mut reader, &mut io::sink())
        .map_err(|e| crate::content::unwrap_io_error(e, "read", store.blob_path(digest)))?;
    Ok(stats)
}

/// Writes the whole tree under `src` as an uncompressed layer blob; the blob's digest is the
/// layer's diff_id.
#[cfg(any(test, feature = "testing"))]
pub fn write_tree_to_store(
    store: &ContentStore,
    src: &Root,
    opts: &LayerOptions,
) -> Result<(BlobInfo, WriteStats), LayerError> {
    let (w, stats) = write_tree(src, opts, store.writer()?)?;
    Ok((w.commit(None)?, stats))
}

/// Writes the given changes of `src` as an uncompressed layer blob.
pub fn write_changes_to_store(
    store: &ContentStore,
    src: &Root,
    changes: &[Change],
    opts: &LayerOptions,
) -> Result<(BlobInfo, WriteStats), LayerError> {
    let (w, stats) = write_changes(src, changes, opts, store.writer()?)?;
    Ok((w.commit(None)?, stats))
}

/// Writes the layer of `src` that differs from the tree of the stored layer `old` by `changes`,
/// patching `old` (see [`write_patched`]), as an uncompressed layer blob. Unless the caller has
/// just checked `old` (`old_checked`: e.g. against a stamp of its verification), it is verified
/// against its digest as it is read, and a mismatch fails before anything is committed.
pub fn write_patched_to_store(
    store: &ContentStore,
    src: &Root,
    old: &crate::content::Digest,
    old_checked: bool,
    changes: &[Change],
    opts: &LayerOptions,
) -> Result<(BlobInfo, WriteStats), LayerError> {
    const BUF: usize = 1 << 20;
    let (w, stats) = if old_checked {
        let path = store.blob_path(old);
        let file = std::fs::File::open(&path)
            .map_err(|e| crate::content::ContentError::io("open", path, e))?;
        let reader = io::BufReader::with_capacity(BUF, file);
        write_patched(src, reader, changes, opts, store.writer()?)?
    } else {
        let reader = io::BufReader::with_capacity(BUF, store.open_verified(old)?);
        write_patched(src, reader, changes, opts, store.writer()?)?
    };
    Ok((w.commit(None)?, stats))
}
