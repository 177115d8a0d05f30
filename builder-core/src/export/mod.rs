//! Exporters: an image in the store written out as an OCI layout directory, an OCI archive tar
//! (what BuildKit's `--output type=oci` writes), a docker-archive tar (what `docker load` and
//! `skopeo copy docker-archive:` read), or a plain root filesystem directory.
//!
//! Layers are compressed on the way out (gzip by default, zstd on request, or left as they are)
//! through `layer::compress_layer`, which remembers each result so a second export does
//! not compress again; the compressed blobs and the export's manifest are stored in the content
//! store too. Tar exports are deterministic: same image and options, same bytes.
//!
//! Tags are written the way the store writes them: `org.opencontainers.image.ref.name` and
//! `io.containerd.image.name` both carry the name as given (kiln passes full references such as
//! `docker.io/library/app:1`), and a docker-archive lists them in `RepoTags`.

pub mod dest;
mod docker;
mod exporter;
mod oci;
mod outgoing;
mod tarball;

#[cfg(test)]
pub(crate) mod tests;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use crate::layer::CompressOptions;
pub use docker::export_docker_archive;
pub use exporter::{
    ByteProgress, Cancel, DockerArchiveExporter, Exporter, LocalExporter, OciArchiveExporter,
    OciLayoutExporter, TarExporter,
};
pub(crate) use oci::write_layout;
pub use oci::{export_oci_archive, export_oci_dir};
pub use outgoing::OutManifest;
pub(crate) use outgoing::{Outgoing, prepare_outgoing};

use crate::changes::WhiteoutStyle;
use crate::content::{ContentError, ContentStore, Digest, unwrap_io_error};
use crate::fsroot::Root;
use crate::image::{Compression, Descriptor, ImageConfig, Manifest, media};
use crate::layer::{self, ApplyOptions, LayerError};

/// An error while exporting an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The content store failed (missing or corrupt blob, I/O).
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Compressing, decompressing or applying a layer failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Writing the output failed.
    #[error("cannot write export")]
    Write(#[source] io::Error),
    /// The export was cancelled ([`ExportOptions::cancel`]); what it had written is removed (an
    /// OCI layout directory is left as it was before), or (a root filesystem directory) whole
    /// files only.
    #[error("export cancelled")]
    Cancelled,
    /// A filesystem operation on the destination failed.
    #[error(transparent)]
    Io(#[from] crate::report::IoError),
    /// A JSON document in the store is not what its descriptor says.
    #[error("invalid {what} {digest}")]
    Json {
        /// What kind of document.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// The parse error.
        #[source]
        source: crate::content::JsonError,
    },
    /// The descriptor does not name an image manifest, or a layer has an unknown media type.
    #[error("cannot export {digest}: unsupported media type {media_type}")]
    UnsupportedMediaType {
        /// The blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// The config lists a different number of layers than the manifest.
    #[error(
        "image {manifest}: config has {diff_ids} diff_ids but the manifest has {layers} layers"
    )]
    LayerCount {
        /// The manifest.
        manifest: Digest,
        /// Entries in `rootfs.diff_ids`.
        diff_ids: usize,
        /// Layers in the manifest.
        layers: usize,
    },
    /// An image's attachments (provenance, SBOM) cannot be read or laid out.
    #[error(transparent)]
    Attachments(Box<crate::attest::AttestError>),
    /// The destination cannot be written.
    #[error(transparent)]
    Dest(#[from] dest::DestError),
    /// Writing to a destination failed.
    #[error("cannot export to {}", dest.display())]
    To {
        /// The destination.
        dest: PathBuf,
        /// Why.
        #[source]
        source: Box<ExportError>,
    },
    /// A decompressed layer does not match the config's diff_id.
    #[error("layer {layer} decompresses to {actual}, but the config says {expected}")]
    DiffIdMismatch {
        /// The compressed layer.
        layer: Digest,
        /// The config's diff_id.
        expected: Digest,
        /// What it decompressed to.
        actual: Digest,
    },
}

/// Options shared by the exporters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Layer compression in the output (gzip by default).
    pub compression: Compression,
    /// Threads and levels for compressing.
    pub compress: CompressOptions,
    /// Names to tag the image with in the output.
    pub tags: Vec<String>,
    /// Told how many bytes a tar export wrote, as it goes.
    pub progress: Option<ByteProgress>,
    /// Stops the export at its next write, blob or layer once cancelled.
    pub cancel: Cancel,
}

impl ExportOptions {
    /// `Err(Cancelled)` once [`cancel`](Self::cancel) is cancelled: the export's checkpoint,
    /// between blobs and layers.
    pub fn checkpoint(&self) -> Result<(), ExportError> {
        if self.cancel.is_cancelled() {
            Err(ExportError::Cancelled)
        } else {
            Ok(())
        }
    }
}

impl ExportError {
    /// This error, as the failure to export to `dest` (a cancellation stays one).
    pub fn to(self, dest: &Path) -> ExportError {
        if matches!(self, ExportError::Cancelled) {
            return self;
        }
        ExportError::To {
            dest: dest.to_path_buf(),
            source: Box::new(self),
        }
    }
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            compression: Compression::Gzip,
            compress: CompressOptions::default(),
            tags: Vec::new(),
            progress: None,
            cancel: Cancel::default(),
        }
    }
}

/// An image ready to write out: every blob it names is in the store.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The (possibly new) manifest's descriptor, with the image's platform.
    pub manifest_desc: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// The config.
    pub config: ImageConfig,
}

/// Reads an image's manifest and config from the store and makes sure its layers exist in the
/// store with `compression`, compressing (or decompressing) them where needed. The manifest is
/// rewritten as an OCI manifest when anything changed.
pub(crate) fn prepare(
    store: &ContentStore,
    manifest_desc: &Descriptor,
    compression: Compression,
    copts: &CompressOptions,
) -> Result<Prepared, ExportError> {
    if !media::is_manifest(&manifest_desc.media_type) {
        return Err(ExportError::UnsupportedMediaType {
            digest: manifest_desc.digest,
            media_type: manifest_desc.media_type.clone(),
        });
    }
    let manifest: Manifest = store.read_json_as(&manifest_desc.digest, "manifest")?;
    let config: ImageConfig = store.read_json_as(&manifest.config.digest, "image config")?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ExportError::LayerCount {
            manifest: manifest_desc.digest,
            diff_ids: config.rootfs.diff_ids.len(),
            layers: manifest.layers.len(),
        });
    }
    let mut changed = manifest.media_type.as_deref() != Some(media::OCI_MANIFEST);
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let have = media::layer_compression(&layer.media_type).ok_or_else(|| {
            ExportError::UnsupportedMediaType {
                digest: layer.digest,
                media_type: layer.media_type.clone(),
            }
        })?;
        if have == compression {
            let mut l = layer.clone();
            l.media_type = compression.oci_layer_media_type().to_string();
            layers.push(l);
            continue;
        }
        changed = true;
        let uncompressed = if have == Compression::None {
            layer.digest
        } else {
            ensure_uncompressed(store, &layer.digest, diff_id)?
        };
        let blob = layer::compress_layer(store, &uncompressed, compression, copts)?;
        let mut l = Descriptor::new(compression.oci_layer_media_type(), blob.digest, blob.size);
        l.annotations = layer.annotations.clone();
        layers.push(l);
    }
    let mut manifest = manifest;
    let mut manifest_desc = manifest_desc.clone();
    if changed {
        manifest.media_type = Some(media::OCI_MANIFEST.to_string());
        if manifest.config.media_type == media::DOCKER_CONFIG {
            manifest.config.media_type = media::OCI_CONFIG.to_string();
        }
        manifest.layers = layers;
        manifest_desc = store.put_json(&manifest, media::OCI_MANIFEST)?;
    }
    manifest_desc.annotations = None;
    manifest_desc.platform = Some(config.platform());
    Ok(Prepared {
        manifest_desc,
        manifest,
        config,
    })
}

/// Makes sure the uncompressed form of a compressed layer is in the store (decompressing it if
/// needed and checking it against the config's diff_id) and returns its digest.
pub(crate) fn ensure_uncompressed(
    store: &ContentStore,
    layer: &Digest,
    diff_id: &Digest,
) -> Result<Digest, ExportError> {
    if store.has(diff_id) {
        return Ok(*diff_id);
    }
    let mut reader = store.open_verified(layer)?;
    let mut w = store.writer()?;
    let tmp = w.temp_path().to_path_buf();
    let mut dec = layer::decompress(&mut reader)?;
    io::copy(&mut dec, &mut w).map_err(|e| unwrap_io_error(e, "decompress into", tmp))?;
    drop(dec);
    drain(&mut reader, store, layer)?;
    let info = w.commit(None)?;
    if info.digest != *diff_id {
        return Err(ExportError::DiffIdMismatch {
            layer: *layer,
            expected: *diff_id,
            actual: info.digest,
        });
    }
    Ok(info.digest)
}

/// Reads a verified reader to its end so that the digest check runs even when the consumer
/// stopped early (a tar reader stops at the end-of-archive blocks).
fn drain(r: &mut impl Read, store: &ContentStore, digest: &Digest) -> Result<(), ExportError> {
    io::copy(r, &mut io::sink())
        .map(|_| ())
        .map_err(|e| unwrap_io_error(e, "read", store.blob_path(digest)).into())
}

/// Applies every layer of the image, base first, into `dest` (created if missing) as a plain
/// root filesystem. A layer is verified against its digest as it is read; a corrupt one fails
/// the export after it was (partly) applied, so `dest` should be a fresh directory.
/// Checks `export` before each layer.
pub(crate) fn export_rootfs(
    store: &ContentStore,
    manifest_desc: &Descriptor,
    dest: &Path,
    opts: &ApplyOptions,
    export: &ExportOptions,
) -> Result<(), ExportError> {
    let manifest: Manifest = store.read_json_as(&manifest_desc.digest, "manifest")?;
    std::fs::create_dir_all(dest).map_err(|source| {
        ExportError::Io(crate::report::IoError {
            op: "create directory",
            path: dest.to_path_buf(),
            source,
        })
    })?;
    let root = Root::open(dest).map_err(LayerError::from)?;
    for l in &manifest.layers {
        export.checkpoint()?;
        layer::apply_blob(store, &l.digest, &root, WhiteoutStyle::Apply, opts)?;
    }
    Ok(())
}

/// Writes the image's root filesystem as one tar (`--output type=tar`): the layers are applied
/// into a scratch directory under `scratch_parent` (removed afterwards), which is then archived
/// with owners, modes and times kept, symlinks as links, entries sorted by name. For an index
/// (several platforms) each platform's root filesystem goes into a directory of the tar named
/// after it (`linux_amd64/`, `linux_arm_v7/`), as BuildKit's tar exporter writes them;
/// attestation manifests are left out. Checks `export` before each layer and file.
pub(crate) fn export_rootfs_tar<W: io::Write>(
    store: &ContentStore,
    manifest_desc: &Descriptor,
    scratch_parent: &Path,
    out: W,
    export: &ExportOptions,
) -> Result<W, ExportError> {
    let io_err = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io(crate::report::IoError { op, path, source })
    };
    let images: Vec<(Option<String>, Descriptor)> = if media::is_index(&manifest_desc.media_type) {
        let index: crate::image::Index = store.read_json_as(&manifest_desc.digest, "index")?;
        index
            .manifests
            .into_iter()
            .filter(|m| {
                !m.annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key("vnd.docker.reference.type"))
            })
            .map(|m| {
                let name = m
                    .platform
                    .as_ref()
                    .map(|p| p.to_string().replace('/', "_"))
                    .unwrap_or_else(|| m.digest.hex().to_owned());
                (Some(name), m)
            })
            .collect()
    } else {
        vec![(None, manifest_desc.clone())]
    };
    std::fs::create_dir_all(scratch_parent).map_err(io_err("create directory", scratch_parent))?;
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    for (name, image) in &images {
        let scratch = tempfile::Builder::new()
            .prefix("rootfs-")
            .tempdir_in(scratch_parent)
            .map_err(io_err("create a directory in", scratch_parent))?;
        let dir = scratch.path().join("rootfs");
        export_rootfs(store, image, &dir, &ApplyOptions::default(), export)?;
        let min_depth = if name.is_some() { 0 } else { 1 };
        let mut entries: Vec<PathBuf> = walkdir::WalkDir::new(&dir)
            .follow_links(false)
            .min_depth(min_depth)
            .into_iter()
            .map(|e| {
                e.map(|e| e.into_path())
                    .map_err(|e| ExportError::Write(io::Error::other(e)))
            })
            .collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries {
            export.checkpoint()?;
            let rel = path.strip_prefix(&dir).unwrap_or(&path);
            let rel = match name {
                Some(n) => Path::new(n).join(rel),
                None => rel.to_path_buf(),
            };
            builder
                .append_path_with_name(&path, &rel)
                .map_err(ExportError::Write)?;
        }
    }
    builder.into_inner().map_err(ExportError::Write)
}
