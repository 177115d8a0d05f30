//! Resolving images for FROM and `COPY --from`: kiln's store (a tag set by a build or an
//! earlier pull, or a digest pulled before), a registry, or the OCI layout of a named build
//! context (`--build-context NAME=oci-layout://DIR`). A registry reference that the store
//! already knows is used offline unless the build asks to pull. Every layer is made available
//! uncompressed under its diff_id, which is how kiln's store keeps layers.
//!
//! A Dockerfile never reaches a host path through here: local image sources come only from the
//! build's named contexts, which the person running the build grants.

use super::{LocalWorkerConfig, WorkerError};
use crate::cache::LayerRef;
use crate::context::NamedContext;
use crate::graph::ImageRef;
use crate::image::{Descriptor, ImageConfig, Manifest, parse_rfc3339};
use crate::registry::Reference;
use crate::solver::{HistoryEntry, ResolvedImage};

pub use crate::registry::normalize_reference;

/// Resolves an image of the graph: a named context's OCI layout, or a reference.
pub async fn resolve_image_ref(
    cfg: &LocalWorkerConfig,
    image: &ImageRef,
) -> Result<ResolvedImage, WorkerError> {
    match image {
        ImageRef::Reference(r) => resolve_any(cfg, r).await,
        ImageRef::Layout(key) => {
            let Some(NamedContext::OciLayout { dir, select }) = cfg.contexts.by_key(key) else {
                return Err(WorkerError::ImageNotFound {
                    reference: image.to_string(),
                    reason: "no oci-layout build context of that name".into(),
                });
            };
            let (cfg2, dir, select, r) =
                (cfg.clone(), dir.clone(), select.clone(), image.to_string());
            super::blocking(move || {
                let img = crate::import::import_oci_layout(
                    &cfg2.store,
                    &dir,
                    select.as_ref(),
                    &cfg2.platform,
                )?;
                finish(&cfg2, &r, img.manifest_desc, img.manifest, img.config)
            })
            .await
        }
    }
}

/// Resolves `reference`: images the store knows without the network (unless `cfg.pull` asks to
/// re-resolve registry references), others from their registry.
pub async fn resolve_any(
    cfg: &LocalWorkerConfig,
    reference: &str,
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
                return super::blocking(move || resolve(&cfg2, &r)).await;
            }
            return Err(WorkerError::Registry(Box::new(e.into())));
        }
    };
    if !cfg.pull {
        let cfg2 = cfg.clone();
        let (r, p) = (reference.to_string(), parsed.clone());
        let local = super::blocking(move || {
            if let Some(digest) = p.digest() {
                let img = crate::registry::resolve_local(&cfg2.store, digest, &cfg2.platform)
                    .map_err(|e| WorkerError::Registry(Box::new(e)))?;
                return img
                    .map(|i| finish(&cfg2, &r, i.manifest_desc, i.manifest, i.config))
                    .transpose();
            }
            let found = match cfg2.store.get_tag(&r)? {
                Some(d) => Some(d),
                None => cfg2.store.get_tag(&p.to_string())?,
            };
            match found {
                Some(desc) => match resolve_store_tag(&cfg2, &r, desc.clone()) {
                    Ok(img) => Ok(Some(img)),
                    // A pulled image whose blobs were removed since is pulled again.
                    Err(e)
                        if desc
                            .annotation(crate::registry::ANNOTATION_SOURCE_DIGEST)
                            .is_some() =>
                    {
                        tracing::info!(reference = %r, "pulling again: {e}");
                        Ok(None)
                    }
                    Err(e) => Err(e),
                },
                None => Ok(None),
            }
        })
        .await?;
        if let Some(img) = local {
            return Ok(img);
        }
    }
    let popts = crate::registry::PullOptions {
        platform: cfg.platform.clone(),
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

fn resolve_store_tag(
    cfg: &LocalWorkerConfig,
    reference: &str,
    desc: Descriptor,
) -> Result<ResolvedImage, WorkerError> {
    let manifest: Manifest = cfg.store.read_json(&desc.digest)?;
    let config: ImageConfig = cfg.store.read_json(&manifest.config.digest)?;
    finish(cfg, reference, desc, manifest, config)
}

/// Resolves a store tag (blocking).
pub fn resolve(cfg: &LocalWorkerConfig, reference: &str) -> Result<ResolvedImage, WorkerError> {
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
    let manifest: Manifest = store.read_json(&desc.digest)?;
    let config: ImageConfig = store.read_json(&manifest.config.digest)?;
    finish(cfg, reference, desc, manifest, config)
}

/// Makes every layer available uncompressed and turns the image into what the solver needs.
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
        let digest =
            crate::export::ensure_uncompressed(store, &desc.digest, diff_id).map_err(|e| {
                WorkerError::ImageNotFound {
                    reference: reference.to_string(),
                    reason: format!("layer {}: {e}", desc.digest),
                }
            })?;
        layers.push(LayerRef {
            diff_id: digest,
            size: store.size(&digest)?,
        });
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
