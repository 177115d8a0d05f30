//! OCI layout directory and OCI archive exports.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::tarball::{TarOut, blob_name};
use super::{ExportError, ExportOptions};
use crate::content::{
    ContentStore, Digest, OCI_LAYOUT_JSON, fsync_dir, read_index, unwrap_io_error, write_index,
};
use crate::fsroot::{Root, proc_fd_path};
use crate::image::{Descriptor, Index};
use crate::layer::LayerError;
use rustix::fs::FileType;

/// What an OCI export writes: the top descriptor (an image manifest, or the image index of a
/// multi-platform image or of an image with attachments) and every blob under it.
struct Top {
    desc: Descriptor,
    blobs: Vec<Digest>,
}

/// Prepares the image as it leaves the store ([`super::prepare_outgoing`]); the top descriptor
/// carries the `index-descriptor` annotations.
fn prepare_top(
    store: &ContentStore,
    desc: &Descriptor,
    opts: &ExportOptions,
) -> Result<Top, ExportError> {
    let out = super::prepare_outgoing(store, desc, opts.compression, &opts.compress, &opts.tags)?;
    let mut top = out
        .top()
        .cloned()
        .ok_or_else(|| ExportError::UnsupportedMediaType {
            digest: desc.digest,
            media_type: desc.media_type.clone(),
        })?;
    for (k, v) in &out.descriptor_annotations {
        top.set_annotation(k, v.clone());
    }
    Ok(Top {
        desc: top,
        blobs: out.blob_digests(),
    })
}

/// The index entries for a prepared image: one per tag, or one untagged entry.
fn entries(p: &Top, tags: &[String]) -> Index {
    let mut index = Index::default();
    if tags.is_empty() {
        index.manifests.push(p.desc.clone());
    }
    for tag in tags {
        crate::content::index_set_tag(&mut index, tag, &p.desc);
    }
    index
}

/// Writes the image into an OCI layout directory (created if missing). An existing layout is
/// added to: its other images are kept and tags of the same names are replaced. Returns the
/// exported manifest's descriptor. Not safe against concurrent writers of the same directory.
pub fn export_oci_dir(
    store: &ContentStore,
    manifest: &Descriptor,
    dest: &Path,
    opts: &ExportOptions,
) -> Result<Descriptor, ExportError> {
    for tag in &opts.tags {
        crate::content::validate_tag(tag)?;
    }
    let p = prepare_top(store, manifest, opts)?;
    write_layout_cancellable(store, &p.blobs, &entries(&p, &opts.tags), dest, opts)?;
    Ok(p.desc)
}

/// Writes `blobs` (copied verified from the store) and the `entries` of an index into the OCI
/// layout directory `dest` (created if missing). An existing layout is added to: its other
/// manifests are kept and tags of the same names are replaced. Not safe against concurrent
/// writers of the same directory.
pub fn write_layout(
    store: &ContentStore,
    blobs: &[Digest],
    entries: &Index,
    dest: &Path,
) -> Result<(), ExportError> {
    write_layout_cancellable(store, blobs, entries, dest, &ExportOptions::default())
}

/// [`write_layout`] with a checkpoint of `export` before each blob. A cancelled or failed
/// export leaves the layout as it was: the blobs, directories and `oci-layout` file it added are
/// removed again (blobs that were there before are never touched), and `index.json`, written
/// last and atomically, is unchanged. A directory `dest` it created is removed too.
fn write_layout_cancellable(
    store: &ContentStore,
    blobs: &[Digest],
    entries: &Index,
    dest: &Path,
    export: &ExportOptions,
) -> Result<(), ExportError> {
    let dest_existed = std::fs::symlink_metadata(dest).is_ok();
    std::fs::create_dir_all(dest).map_err(|source| {
        ExportError::Io(crate::report::IoError {
            op: "create directory",
            path: dest.to_path_buf(),
            source,
        })
    })?;
    let written = Root::open(dest)
        .map_err(|e| ExportError::from(LayerError::from(e)))
        .and_then(|root| {
            let mut added = Vec::new();
            let written = write_into(store, blobs, entries, dest, &root, export, &mut added);
            if written.is_err() {
                // Newest first: a directory it created goes after the blobs in it. Best effort:
                // the export's own error is what the caller hears of.
                for rel in added.iter().rev() {
                    let _ = root.remove_all(rel);
                }
            }
            written
        });
    if written.is_err() && !dest_existed {
        let _ = std::fs::remove_dir(dest);
    }
    written
}

/// The body of [`write_layout_cancellable`] in the opened layout `root`; `added` collects what it
/// creates (paths relative to the layout), in order.
fn write_into(
    store: &ContentStore,
    blobs: &[Digest],
    entries: &Index,
    dest: &Path,
    root: &Root,
    export: &ExportOptions,
    added: &mut Vec<PathBuf>,
) -> Result<(), ExportError> {
    // `dest` itself may be a symlink (the user named it), but nothing inside it is followed out
    // of it: every path below is resolved through the directory's descriptor, confined.
    for dir in ["blobs", "blobs/sha256"] {
        if root.lstat(Path::new(dir)).is_err_and(|e| e.is_not_found()) {
            added.push(PathBuf::from(dir));
        }
    }
    let blobs_fd = root
        .mkdir_all(Path::new("blobs/sha256"), 0o755)
        .map_err(LayerError::from)?;
    let blobs_dir = proc_fd_path(&blobs_fd);
    let shown = dest.join("blobs").join("sha256");
    for d in blobs {
        export.checkpoint()?;
        if copy_blob(store, d, &blobs_dir, &shown)? {
            added.push(Path::new("blobs/sha256").join(d.hex()));
        }
    }
    fsync_dir(&blobs_dir)?;
    let top_fd = root.open_dir(Path::new("")).map_err(LayerError::from)?;
    let top = proc_fd_path(&top_fd);
    if !is_regular(root, "oci-layout") {
        if root
            .lstat(Path::new("oci-layout"))
            .is_err_and(|e| e.is_not_found())
        {
            added.push(PathBuf::from("oci-layout"));
        }
        crate::content::write_atomic(&top.join("oci-layout"), OCI_LAYOUT_JSON)?;
    }
    let index_path = top.join("index.json");
    let mut index = if is_regular(root, "index.json") {
        read_index(&index_path)?
    } else {
        Index::default()
    };
    for entry in &entries.manifests {
        match crate::content::tag_of(entry) {
            Some(tag) => crate::content::index_set_tag(&mut index, tag, entry),
            None => {
                index
                    .manifests
                    .retain(|d| d.digest != entry.digest || crate::content::tag_of(d).is_some());
                index.manifests.push(entry.clone());
            }
        }
    }
    export.checkpoint()?;
    write_index(&index_path, &index)?;
    Ok(())
}

/// Whether `name` in the layout is a regular file (not a symlink, which is replaced instead).
fn is_regular(root: &Root, name: &str) -> bool {
    root.lstat(Path::new(name))
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
}

/// Copies a blob, verified, into a layout's `blobs/sha256` directory (`blobs_dir`, a path through
/// the directory's descriptor; `shown` is its name for messages) via a temp file there. An
/// existing blob of the right size that is a regular file is kept; anything else is replaced.
/// Returns whether the blob is new to the layout (nothing was at its name before).
fn copy_blob(
    store: &ContentStore,
    digest: &Digest,
    blobs_dir: &Path,
    shown: &Path,
) -> Result<bool, ExportError> {
    let target = blobs_dir.join(digest.hex());
    let mut r = store.open_verified(digest)?;
    let before = std::fs::symlink_metadata(&target);
    if before
        .as_ref()
        .is_ok_and(|m| m.is_file() && m.len() == r.size())
    {
        return Ok(false);
    }
    let shown = shown.join(digest.hex());
    let io_err = |op, source| {
        ExportError::Io(crate::report::IoError {
            op,
            path: shown.clone(),
            source,
        })
    };
    // Readable by others like any exported file (a temp file would be 0600).
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(blobs_dir)
        .map_err(|e| io_err("create temp file for", e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| unwrap_io_error(e, "read", store.blob_path(digest)))?;
        if n == 0 {
            break;
        }
        tmp.write_all(&buf[..n]).map_err(|e| io_err("write", e))?;
    }
    tmp.as_file().sync_data().map_err(|e| io_err("fsync", e))?;
    tmp.persist(&target)
        .map_err(|e| io_err("rename into place", e.error))?;
    Ok(before.is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound))
}

/// Writes the image as an OCI archive (a tar of an OCI layout) to `out`: `blobs/` with every
/// blob sorted by digest, then `index.json` and `oci-layout`. Returns the exported manifest's
/// descriptor and `out`.
pub fn export_oci_archive<W: Write>(
    store: &ContentStore,
    manifest: &Descriptor,
    out: W,
    opts: &ExportOptions,
) -> Result<(Descriptor, W), ExportError> {
    for tag in &opts.tags {
        crate::content::validate_tag(tag)?;
    }
    let p = prepare_top(store, manifest, opts)?;
    let mut tar = TarOut::new(out);
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;
    for d in &p.blobs {
        opts.checkpoint()?;
        tar.blob(&blob_name(d), store, d)?;
    }
    let index =
        entries(&p, &opts.tags)
            .to_canonical_json()
            .map_err(|source: serde_json::Error| ExportError::Json {
                what: "index",
                digest: p.desc.digest,
                source: source.into(),
            })?;
    tar.file("index.json", &index)?;
    tar.file("oci-layout", OCI_LAYOUT_JSON)?;
    Ok((p.desc, tar.finish()?))
}
