//! From an index (a layout's `index.json` or an image index) to one image manifest: pick by tag
//! and platform, copy the manifest, config and layers into the store verified, and convert a
//! Docker manifest to OCI.

use super::diff::{Diffs, verify_layers};
use super::{ImportError, ImportedImage};
use crate::content::{ContentStore, tag_of};
use crate::image::{
    ANNOTATION_CONTAINERD_NAME, Descriptor, ImageConfig, Index, Manifest, Platform, media,
};

const MAX_DEPTH: usize = 4;

/// Where blobs come from.
pub(super) trait BlobSource {
    /// For messages.
    fn name(&self) -> String;
    /// Puts the blob into the store, verified against the descriptor's digest and size.
    fn copy_into(&self, store: &ContentStore, d: &Descriptor) -> Result<(), ImportError>;
    /// Checks the manifest's layers against its config's diff_ids, where the source knows the
    /// layers' uncompressed digests.
    fn check_layers(&self, _store: &ContentStore, _manifest: &Manifest) -> Result<(), ImportError> {
        Ok(())
    }
}

/// Blobs already streamed into the store (from an archive), with their uncompressed digests.
pub(super) struct StoreSource<'a> {
    pub(super) diffs: Option<&'a Diffs>,
}

impl BlobSource for StoreSource<'_> {
    fn check_layers(&self, store: &ContentStore, manifest: &Manifest) -> Result<(), ImportError> {
        let Some(diffs) = self.diffs else {
            return Ok(());
        };
        let config: ImageConfig = store.read_json_as(&manifest.config.digest, "image config")?;
        verify_layers(store, &config, &manifest.layers, &[], diffs, true)
    }

    fn name(&self) -> String {
        "image archive".into()
    }

    fn copy_into(&self, store: &ContentStore, d: &Descriptor) -> Result<(), ImportError> {
        match store.size(&d.digest) {
            Ok(size) if size == d.size => Ok(()),
            Ok(size) => Err(ImportError::Content(
                crate::content::ContentError::SizeMismatch {
                    digest: d.digest,
                    expected: d.size,
                    actual: size,
                },
            )),
            Err(e) if e.is_not_found() => Err(ImportError::MissingBlob {
                source_name: self.name(),
                what: "blob",
                name: d.digest.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

fn tags(index: &Index) -> Vec<String> {
    index
        .manifests
        .iter()
        .filter_map(|d| tag_of(d).map(str::to_string))
        .collect()
}

/// Picks the entry of a layout index.
fn pick<'a>(
    index: &'a Index,
    tag: Option<&str>,
    source_name: &str,
) -> Result<&'a Descriptor, ImportError> {
    match tag {
        Some(tag) => index
            .manifests
            .iter()
            .find(|d| {
                tag_of(d) == Some(tag) || d.annotation(ANNOTATION_CONTAINERD_NAME) == Some(tag)
            })
            .ok_or_else(|| ImportError::TagNotFound {
                tag: tag.to_string(),
                source_name: source_name.to_string(),
                available: tags(index),
            }),
        None => match index.manifests.as_slice() {
            [] => Err(ImportError::Empty(source_name.to_string())),
            [only] => Ok(only),
            many => Err(ImportError::Ambiguous {
                source_name: source_name.to_string(),
                count: many.len(),
                available: tags(index),
            }),
        },
    }
}

pub(super) fn resolve(
    store: &ContentStore,
    src: &dyn BlobSource,
    index: &Index,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<ImportedImage, ImportError> {
    let (desc, manifest) = pick_manifest(store, src, index, tag, platform)?;
    finish(store, desc, manifest)
}

/// Picks the manifest, copies its blobs and checks its layers; stores no manifest.
pub(super) fn pick_manifest(
    store: &ContentStore,
    src: &dyn BlobSource,
    index: &Index,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<(Descriptor, Manifest), ImportError> {
    let mut desc = pick(index, tag, &src.name())?.clone();
    let mut depth = 0;
    while media::is_index(&desc.media_type) {
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(ImportError::TooDeep(MAX_DEPTH));
        }
        src.copy_into(store, &desc)?;
        let inner: Index = store.read_json_as(&desc.digest, "index")?;
        desc = inner
            .select_platform(platform)
            .ok_or_else(|| ImportError::NoPlatform {
                platform: platform.to_string(),
                index: desc.digest,
                available: inner
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                    .collect(),
            })?
            .clone();
    }
    if !media::is_manifest(&desc.media_type) {
        return Err(ImportError::UnsupportedMediaType {
            digest: desc.digest,
            media_type: desc.media_type,
        });
    }
    src.copy_into(store, &desc)?;
    let manifest: Manifest = store.read_json_as(&desc.digest, "manifest")?;
    src.copy_into(store, &manifest.config)?;
    for l in &manifest.layers {
        src.copy_into(store, l)?;
    }
    src.check_layers(store, &manifest)?;
    Ok((desc, manifest))
}

/// Checks the config against the manifest and stores an OCI version of a Docker manifest.
pub(crate) fn finish(
    store: &ContentStore,
    desc: Descriptor,
    mut manifest: Manifest,
) -> Result<ImportedImage, ImportError> {
    let config: ImageConfig = store.read_json_as(&manifest.config.digest, "image config")?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ImportError::LayerCount {
            diff_ids: config.rootfs.diff_ids.len(),
            layers: manifest.layers.len(),
        });
    }
    let mut manifest_desc = desc;
    if manifest.media_type.as_deref() != Some(media::OCI_MANIFEST) {
        manifest.media_type = Some(media::OCI_MANIFEST.to_string());
        manifest.config.media_type = media::OCI_CONFIG.to_string();
        for l in &mut manifest.layers {
            let c = media::layer_compression(&l.media_type).ok_or_else(|| {
                ImportError::UnsupportedMediaType {
                    digest: l.digest,
                    media_type: l.media_type.clone(),
                }
            })?;
            l.media_type = c.oci_layer_media_type().to_string();
        }
        manifest_desc = store.put_json(&manifest, media::OCI_MANIFEST)?;
    }
    manifest_desc.annotations = None;
    manifest_desc.platform = Some(config.platform());
    Ok(ImportedImage {
        manifest_desc,
        manifest,
        config,
    })
}
