//! Importers for `FROM`: an image from an OCI layout directory, an OCI archive tar or a
//! docker-archive tar is copied into the content store, every blob verified against its digest
//! and size, and its manifest (converted to OCI when it came in Docker's format) and config are
//! returned. When the source names an index, the manifest for the requested platform is picked.
//!
//! Layers are kept as they came (compressed or not); the applier reads any of them. An archive is
//! read in one streaming pass, so every blob in it is stored, including those of platforms that
//! were not picked.

mod diff;
mod docker;
mod resolve;

#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod tests;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[cfg(test)]
pub(crate) use docker::import_docker_archive;

use crate::content::{ContentError, ContentStore, Digest, unwrap_io_error};
use crate::image::{Descriptor, ImageConfig, Index, Manifest, Platform};
use crate::layer::LayerError;
pub(crate) use resolve::finish;
use resolve::{BlobSource, resolve};

/// Which image of an OCI layout a context names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutSelector {
    /// The entry with this `org.opencontainers.image.ref.name` (or containerd name).
    Tag(String),
    /// The entry with this manifest (or index) digest.
    Digest(crate::content::Digest),
}

/// An error while importing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The content store failed, or a blob did not match its digest or size.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Reading the source failed.
    #[error(transparent)]
    Io(#[from] crate::report::IoError),
    /// Reading the archive failed.
    #[error("cannot read image archive")]
    Archive(#[source] io::Error),
    /// A JSON document is malformed.
    #[error("invalid {what}")]
    Json {
        /// Which document.
        what: String,
        /// The parse error.
        #[source]
        source: crate::content::JsonError,
    },
    /// No image carries the requested tag.
    #[error("no image tagged {tag:?} in {source_name} (tags: {available:?})")]
    TagNotFound {
        /// The tag asked for.
        tag: String,
        /// The source.
        source_name: String,
        /// The tags that exist.
        available: Vec<String>,
    },
    /// The source holds several images and no tag was given.
    #[error("{source_name} holds {count} images; name one with a tag (tags: {available:?})")]
    Ambiguous {
        /// The source.
        source_name: String,
        /// How many images.
        count: usize,
        /// The tags that exist.
        available: Vec<String>,
    },
    /// The source holds no image.
    #[error("{0} holds no image")]
    Empty(String),
    /// No manifest in the index is for the requested platform.
    #[error("no image for platform {platform} in index {index} (it has: {})", available.join(", "))]
    NoPlatform {
        /// The platform asked for.
        platform: String,
        /// The index.
        index: Digest,
        /// The platforms the index lists.
        available: Vec<String>,
    },
    /// A blob the image needs is not in the source.
    #[error("{source_name} lacks {what} {name}")]
    MissingBlob {
        /// The source.
        source_name: String,
        /// What the blob is.
        what: &'static str,
        /// Its digest or path.
        name: String,
    },
    /// A descriptor of a type that cannot be imported.
    #[error("unsupported media type {media_type} for {digest}")]
    UnsupportedMediaType {
        /// The blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// Indexes nested too deep.
    #[error("indexes nested more than {0} deep")]
    TooDeep(usize),
    /// The config and the manifest disagree on the number of layers.
    #[error("image config lists {diff_ids} diff_ids but the manifest has {layers} layers")]
    LayerCount {
        /// Entries in `rootfs.diff_ids`.
        diff_ids: usize,
        /// Layers in the manifest.
        layers: usize,
    },
    /// A layer's content is not what the image config's `rootfs.diff_ids` says.
    #[error(
        "layer {index} ({layer}) does not match the image config: rootfs.diff_ids[{index}] is \
         {expected}, but the layer's uncompressed content is {actual}"
    )]
    DiffIdMismatch {
        /// The layer's position in the manifest (0 is the base).
        index: usize,
        /// The layer as the archive names it (path or digest).
        layer: String,
        /// The config's diff_id.
        expected: Digest,
        /// The digest of the layer's uncompressed content.
        actual: Digest,
    },
    /// A layer that starts like gzip or zstd does not decompress.
    #[error("layer {index} ({layer}) is compressed but does not decompress")]
    LayerCorrupt {
        /// The layer's position in the manifest.
        index: usize,
        /// The layer as the archive names it.
        layer: String,
    },
    /// A layer's compression cannot be read.
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// An image now in the store.
#[derive(Debug, Clone)]
pub struct ImportedImage {
    /// The OCI manifest's descriptor (digest in the store).
    pub manifest_desc: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// The config.
    pub config: ImageConfig,
}

impl ImportedImage {
    /// The config blob's digest.
    pub fn config_digest(&self) -> Digest {
        self.manifest.config.digest
    }
}

/// The layout directory as a blob source; the blobs it copies are hashed uncompressed on the
/// way, and the layers among them checked against the config's diff_ids.
struct DirSource<'a> {
    dir: &'a Path,
    diffs: std::cell::RefCell<diff::Diffs>,
}

impl BlobSource for DirSource<'_> {
    fn name(&self) -> String {
        self.dir.display().to_string()
    }

    fn copy_into(&self, store: &ContentStore, d: &Descriptor) -> Result<(), ImportError> {
        if store.size(&d.digest).ok() == Some(d.size) {
            return Ok(());
        }
        let path = self.dir.join("blobs").join("sha256").join(d.digest.hex());
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImportError::MissingBlob {
                    source_name: self.name(),
                    what: "blob",
                    name: d.digest.to_string(),
                });
            }
            Err(source) => {
                return Err(ImportError::Io(crate::report::IoError {
                    op: "open",
                    path,
                    source,
                }));
            }
        };
        let mut w = store.writer()?;
        let mut hash = diff::DiffHasher::new();
        // Never read more than the descriptor promises.
        let mut limited = (&mut f).take(d.size + 1);
        io::copy(&mut limited, &mut diff::Tee(&mut w, &mut hash)).map_err(|source| {
            ImportError::Io(crate::report::IoError {
                op: "read",
                path: path.clone(),
                source,
            })
        })?;
        w.commit(Some((&d.digest, d.size)))?;
        self.diffs.borrow_mut().insert(d.digest, hash.finish().2);
        Ok(())
    }

    fn check_layers(&self, store: &ContentStore, manifest: &Manifest) -> Result<(), ImportError> {
        let config: ImageConfig = store.read_json(&manifest.config.digest)?;
        // Layers the store had already were checked when they came in; only new ones are read.
        diff::verify_layers(
            store,
            &config,
            &manifest.layers,
            &[],
            &self.diffs.borrow(),
            false,
        )
    }
}

/// Reads an OCI layout's index.
fn read_layout_index(dir: &Path) -> Result<Index, ImportError> {
    Ok(crate::content::read_index(&dir.join("index.json"))?)
}

/// Imports an image from an OCI layout directory, by tag (`org.opencontainers.image.ref.name` or
/// `io.containerd.image.name`) or, without a tag, the layout's only image.
pub fn import_oci_dir(
    store: &ContentStore,
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<ImportedImage, ImportError> {
    resolve_in_dir(store, dir, &read_layout_index(dir)?, tag, platform)
}

/// Resolves an image of `index` with the blobs of the layout directory `dir`.
fn resolve_in_dir(
    store: &ContentStore,
    dir: &Path,
    index: &Index,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<ImportedImage, ImportError> {
    let src = DirSource {
        dir,
        diffs: Default::default(),
    };
    resolve(store, &src, index, tag, platform)
}

/// Imports the image a named build context selects from an OCI layout directory: by tag, by
/// manifest (or index) digest, or the layout's only image.
pub fn import_oci_layout(
    store: &ContentStore,
    dir: &Path,
    select: Option<&LayoutSelector>,
    platform: &Platform,
) -> Result<ImportedImage, ImportError> {
    match select {
        None => import_oci_dir(store, dir, None, platform),
        Some(LayoutSelector::Tag(tag)) => import_oci_dir(store, dir, Some(tag), platform),
        Some(LayoutSelector::Digest(digest)) => {
            let mut index = read_layout_index(dir)?;
            index.manifests.retain(|d| d.digest == *digest);
            index.manifests.truncate(1);
            if index.manifests.is_empty() {
                return Err(ImportError::MissingBlob {
                    source_name: dir.display().to_string(),
                    what: "index entry",
                    name: digest.to_string(),
                });
            }
            resolve_in_dir(store, dir, &index, None, platform)
        }
    }
}

/// Imports an image from an OCI archive tar, read in one pass: every blob is stored (verified
/// against its name), then the image is resolved from `index.json` as for a directory. The
/// library loads archives with [`import_archive`]; this one image at a time is the tests'.
#[cfg(test)]
pub(crate) fn import_oci_archive(
    store: &ContentStore,
    reader: impl Read,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<ImportedImage, ImportError> {
    let mut new = diff::NewBlobs::new(store);
    let streamed = docker::stream_archive(store, reader, true, &mut new)?;
    let index_bytes = streamed
        .meta
        .get("index.json")
        .ok_or_else(|| ImportError::MissingBlob {
            source_name: "OCI archive".into(),
            what: "file",
            name: "index.json".into(),
        })?;
    let index: Index =
        serde_json::from_slice(index_bytes).map_err(|source: serde_json::Error| {
            ImportError::Json {
                what: "index.json".into(),
                source: source.into(),
            }
        })?;
    let src = resolve::StoreSource {
        diffs: Some(&streamed.diffs),
    };
    let image = resolve(store, &src, &index, tag, platform)?;
    new.keep();
    Ok(image)
}

/// An image read from an archive by [`import_archive`], with the names the archive gives it.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// Names from `RepoTags` (docker-archive) or `org.opencontainers.image.ref.name` (OCI
    /// archive), as written there; empty for an untagged image.
    pub tags: Vec<String>,
    /// The image, now in the store.
    pub image: ImportedImage,
}

/// Imports every image of a docker-archive or an OCI archive, read in one pass: a
/// `manifest.json` makes it a docker-archive (kiln's and Docker 25's archives also carry an
/// `index.json`), otherwise `index.json` is read as an OCI layout index and each tagged entry (or
/// the only untagged one) is resolved for `platform`.
///
/// Every layer must decompress to its config's diff_id. A refused archive leaves nothing in the
/// store: every image is checked before the first manifest is stored, and the blobs the archive
/// added are deleted again.
pub fn import_archive(
    store: &ContentStore,
    reader: impl Read,
    platform: &Platform,
) -> Result<Vec<LoadedImage>, ImportError> {
    let mut new = diff::NewBlobs::new(store);
    let streamed = docker::stream_archive(store, reader, false, &mut new)?;
    let images = archive_images(store, &streamed, platform)?;
    new.keep();
    Ok(images)
}

fn archive_images(
    store: &ContentStore,
    streamed: &docker::Streamed,
    platform: &Platform,
) -> Result<Vec<LoadedImage>, ImportError> {
    if streamed.meta.contains_key("manifest.json") {
        return Ok(docker::load_docker_streamed(store, streamed)?
            .into_iter()
            .map(|(tags, image)| LoadedImage { tags, image })
            .collect());
    }
    let src = resolve::StoreSource {
        diffs: Some(&streamed.diffs),
    };
    let index_bytes = streamed
        .meta
        .get("index.json")
        .ok_or_else(|| ImportError::MissingBlob {
            source_name: "image archive".into(),
            what: "file",
            name: "manifest.json or index.json".into(),
        })?;
    let index: Index =
        serde_json::from_slice(index_bytes).map_err(|source: serde_json::Error| {
            ImportError::Json {
                what: "index.json".into(),
                source: source.into(),
            }
        })?;
    let mut tags: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| crate::content::tag_of(d).map(str::to_string))
        .collect();
    tags.dedup();
    if tags.is_empty() {
        let image = resolve(store, &src, &index, None, platform)?;
        return Ok(vec![LoadedImage {
            tags: Vec::new(),
            image,
        }]);
    }
    // Every image is checked before the first one's manifest may be stored.
    for tag in &tags {
        resolve::pick_manifest(store, &src, &index, Some(tag), platform)?;
    }
    tags.into_iter()
        .map(|tag| {
            let image = resolve(store, &src, &index, Some(&tag), platform)?;
            Ok(LoadedImage {
                tags: vec![tag],
                image,
            })
        })
        .collect()
}

pub(crate) fn read_err(e: io::Error, path: PathBuf) -> ImportError {
    ImportError::Content(unwrap_io_error(e, "read", path))
}
