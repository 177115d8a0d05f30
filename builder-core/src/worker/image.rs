//! Resolving images for FROM and `COPY --from`: kiln's store (a tag set by a build or an
//! earlier pull, or a digest pulled before), a registry, or the OCI layout of a named build
//! context (`--build-context NAME=oci-layout://DIR`). A registry reference that the store
//! already knows is used offline unless the build asks to pull. Every layer is made available
//! uncompressed under its diff_id, which is how kiln's store keeps layers.
//!
//! A Dockerfile never reaches a host path through here: local image sources come only from the
//! build's named contexts, which the person running the build grants.

use super::{LocalWorkerConfig, WorkerError};
use crate::cache::{LayerRef, PackedBlob};
use crate::context::NamedContext;
use crate::graph::ImageRef;
use crate::image::{Compression, Descriptor, ImageConfig, Manifest, Platform, parse_rfc3339};
use crate::registry::Reference;
use crate::solver::{HistoryEntry, ResolvedImage};

pub use crate::registry::normalize_reference;

/// Resolves an image of the graph: a named context's OCI layout, or a reference.
pub async fn resolve_image_ref(
    cfg: &LocalWorkerConfig,
    image: &ImageRef,
    platform: &Platform,
) -> Result<ResolvedImage, WorkerError> {
    match image {
        ImageRef::Reference(r) => resolve_any(cfg, r, platform).await,
        ImageRef::Layout(key) => {
            let Some(NamedContext::OciLayout { dir, select }) = cfg.contexts.by_key(key) else {
                return Err(WorkerError::ImageNotFound {
                    reference: image.to_string(),
                    reason: "no oci-layout build context of that name".into(),
                });
            };
            let (cfg2, dir, select, r, platform) = (
                cfg.clone(),
                dir.clone(),
                select.clone(),
                image.to_string(),
                platform.clone(),
            );
            super::blocking(move || {
                let img = crate::import::import_oci_layout(
                    &cfg2.store,
                    &dir,
                    select.as_ref(),
                    &platform,
                )?;
                finish(&cfg2, &r, img.manifest_desc, img.manifest, img.config)
            })
            .await
        }
    }
}

/// Resolves `reference` for `platform`: images the store knows without the network (unless
/// `cfg.pull` asks to re-resolve registry references), others from their registry.
pub async fn resolve_any(
    cfg: &LocalWorkerConfig,
    reference: &str,
    platform: &Platform,
) -> Result<ResolvedImage, WorkerError> {
    let parsed = match Reference::parse(reference) {
        Ok(p) => p,
        Err(e) => {
            // A store tag that is not a valid reference (set by another tool) still resolves.
            let cfg2 = cfg.clone();
            let r = reference.to_string();
            if super::blocking(move || Ok(cfg2.store.get_tag(&r)?.is_some())).await? {
                let cfg2 = cfg.clone();
                let r = reference.to_string();
                let platform = platform.clone();
                return super::blocking(move || resolve(&cfg2, &r, &platform)).await;
            }
            return Err(WorkerError::Registry(Box::new(e.into())));
        }
    };
    // A pull for another platform does not move a tag that the host's image may hold, unless
    // the store has no such tag yet.
    let mut retag = platform.is_native();
    if !cfg.pull {
        let cfg2 = cfg.clone();
        let (r, p, platform2) = (reference.to_string(), parsed.clone(), platform.clone());
        let local = super::blocking(move || {
            if let Some(digest) = p.digest() {
                let img = crate::registry::resolve_local(&cfg2.store, digest, &platform2)
                    .map_err(|e| WorkerError::Registry(Box::new(e)))?;
                return img
                    .map(|i| finish(&cfg2, &r, i.manifest_desc, i.manifest, i.config))
                    .transpose()
                    .map(|img| (img, false));
            }
            let found = match cfg2.store.get_tag(&r)? {
                Some(d) => Some(d),
                None => cfg2.store.get_tag(&p.to_string())?,
            };
            let Some(desc) = found else {
                return Ok((None, true));
            };
            match resolve_store_tag(&cfg2, &r, desc.clone(), &platform2) {
                Ok(img) => Ok((img, false)),
                // A pulled image whose blobs were removed since is pulled again.
                Err(e)
                    if desc
                        .annotation(crate::registry::ANNOTATION_SOURCE_DIGEST)
                        .is_some() =>
                {
                    tracing::info!(reference = %r, "pulling again: {e}", e = crate::report::chain(&e));
                    Ok((None, false))
                }
                Err(e) => Err(e),
            }
        })
        .await?;
        match local {
            (Some(img), _) => return Ok(img),
            (None, untagged) => retag |= untagged,
        }
    }
    let popts = crate::registry::PullOptions {
        platform: platform.clone(),
        tag: retag,
        ..Default::default()
    };
    let pulled = crate::registry::pull(cfg.store.clone(), &cfg.registry, &parsed, &popts)
        .await
        .map_err(|e| WorkerError::Registry(Box::new(e)))?;
    tracing::info!(reference = %parsed, digest = %pulled.digest, "pulled");
    let cfg2 = cfg.clone();
    let r = reference.to_string();
    super::blocking(move || {
        let i = pulled.image;
        finish(&cfg2, &r, i.manifest_desc, i.manifest, i.config)
    })
    .await
}

/// The image a store tag holds for `platform`: the tag's manifest, or its index's entry for the
/// platform. A pulled image for another platform gives `None` when the store does not have the
/// platform's image from the same source (the caller pulls it); an image kiln built or imported
/// for another platform is used as it is, as BuildKit does.
fn resolve_store_tag(
    cfg: &LocalWorkerConfig,
    reference: &str,
    desc: Descriptor,
    platform: &Platform,
) -> Result<Option<ResolvedImage>, WorkerError> {
    let (desc, manifest) = match pick_for_platform(cfg, reference, desc, platform)? {
        Some(picked) => picked,
        None => return Ok(None),
    };
    let config: ImageConfig = cfg.store.read_json(&manifest.config.digest)?;
    if !config.platform().matches(platform) {
        if let Some(source) = desc
            .annotation(crate::registry::ANNOTATION_SOURCE_DIGEST)
            .and_then(|d| d.parse::<crate::content::Digest>().ok())
        {
            let img = crate::registry::resolve_local(&cfg.store, &source, platform)
                .map_err(|e| WorkerError::Registry(Box::new(e)))?;
            return img
                .map(|i| finish(cfg, reference, i.manifest_desc, i.manifest, i.config))
                .transpose();
        }
        tracing::warn!(
            reference,
            image = %config.platform(),
            wanted = %platform,
            "the image is for another platform than the stage"
        );
    }
    finish(cfg, reference, desc, manifest, config).map(Some)
}

/// The manifest a store tag names for `platform` (through an index when the tag names one).
fn pick_for_platform(
    cfg: &LocalWorkerConfig,
    reference: &str,
    desc: Descriptor,
    platform: &Platform,
) -> Result<Option<(Descriptor, Manifest)>, WorkerError> {
    let mut desc = desc;
    for _ in 0..4 {
        if !crate::image::media::is_index(&desc.media_type) {
            let manifest: Manifest = cfg.store.read_json(&desc.digest)?;
            return Ok(Some((desc, manifest)));
        }
        let index: crate::image::Index = cfg.store.read_json(&desc.digest)?;
        match index.select_platform(platform) {
            Some(d) => desc = d.clone(),
            None => {
                return Err(WorkerError::ImageNotFound {
                    reference: reference.to_string(),
                    reason: format!(
                        "no image for platform {platform} in its index (it has: {})",
                        index
                            .manifests
                            .iter()
                            .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
    }
    Ok(None)
}

/// Resolves a store tag for a platform (blocking).
pub fn resolve(
    cfg: &LocalWorkerConfig,
    reference: &str,
    platform: &Platform,
) -> Result<ResolvedImage, WorkerError> {
    let store = &cfg.store;
    let normalized = normalize_reference(reference);
    let desc = match store.get_tag(reference)? {
        Some(d) => d,
        None => store
            .get_tag(&normalized)?
            .ok_or_else(|| WorkerError::ImageNotFound {
                reference: reference.to_string(),
                reason: format!(
                    "no tag {normalized} in the local store {}",
                    store.root().display()
                ),
            })?,
    };
    resolve_store_tag(cfg, reference, desc, platform)?.ok_or_else(|| WorkerError::ImageNotFound {
        reference: reference.to_string(),
        reason: format!("the store has no image for platform {platform}"),
    })
}

/// A layer the store holds only compressed, kept that way: its snapshot is unpacked straight
/// from the compressed blob (`layer::apply_packed`, which checks both digests), and its tar is
/// written out only when something needs it. `None` when the store has the tar (or the layer
/// is not compressed, or its blob is missing: [`finish`] then reports it as before).
pub(crate) fn packed_layer(
    store: &crate::content::ContentStore,
    desc: &Descriptor,
    diff_id: &crate::content::Digest,
) -> Option<LayerRef> {
    if desc.digest == *diff_id || store.has(diff_id) {
        return None;
    }
    let compression = match crate::image::media::layer_compression(&desc.media_type) {
        Some(c @ (Compression::Gzip | Compression::Zstd)) => c,
        _ => return None,
    };
    match store.size(&desc.digest) {
        Ok(size) if size == desc.size => Some(LayerRef {
            diff_id: *diff_id,
            size,
            packed: Some(PackedBlob {
                digest: desc.digest,
                media_type: compression.oci_layer_media_type().to_string(),
            }),
        }),
        _ => None,
    }
}

/// Turns the image into what the solver needs: every layer available uncompressed, or (for
/// layers the store holds compressed) as its compressed blob.
fn finish(
    cfg: &LocalWorkerConfig,
    reference: &str,
    manifest_desc: Descriptor,
    manifest: Manifest,
    config: ImageConfig,
) -> Result<ResolvedImage, WorkerError> {
    let store = &cfg.store;
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(WorkerError::ImageNotFound {
            reference: reference.to_string(),
            reason: format!(
                "manifest {} has {} layers but its config lists {} diff_ids",
                manifest_desc.digest,
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        if let Some(layer) = packed_layer(store, desc, diff_id) {
            layers.push(layer);
            continue;
        }
        let had = store.has(diff_id);
        let digest =
            crate::export::ensure_uncompressed(store, &desc.digest, diff_id).map_err(|e| {
                WorkerError::ImageNotFound {
                    reference: reference.to_string(),
                    reason: format!("layer {}: {e}", desc.digest, e = crate::report::chain(&e)),
                }
            })?;
        if !had && digest != desc.digest {
            // Decompressed and hashed just now: its first unpack need not hash it again.
            super::verify::stamp(store, &digest);
        }
        layers.push(LayerRef::plain(digest, store.size(&digest)?));
    }
    let history = config
        .history
        .iter()
        .flatten()
        .map(|h| HistoryEntry {
            created: h.created.as_deref().and_then(parse_rfc3339).unwrap_or(0),
            created_text: h.created.clone(),
            created_by: h.created_by.clone().unwrap_or_default(),
            empty_layer: h.empty_layer.unwrap_or(false),
            author: h.author.clone(),
            comment: h.comment.clone(),
        })
        .collect();
    Ok(ResolvedImage {
        digest: manifest_desc.digest,
        config: config.config.clone().unwrap_or_default(),
        layers,
        history,
        created: config.created.as_deref().and_then(parse_rfc3339),
        author: config.author.clone(),
    })
}
