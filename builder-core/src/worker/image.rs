//! Resolving image references for FROM and `COPY --from`: an OCI image layout directory, an OCI
//! archive, a docker archive, kiln's store (a tag set by a build or an earlier pull, or a digest
//! pulled before) or a registry. A registry reference that the store already knows is used
//! offline unless the build asks to pull. Every layer is made available uncompressed under its
//! diff_id, which is how kiln's store keeps layers.

use std::path::Path;

use super::{LocalWorkerConfig, WorkerError};
use crate::cache::LayerRef;
use crate::image::{Descriptor, ImageConfig, Manifest, parse_rfc3339};
use crate::registry::Reference;
use crate::solver::{HistoryEntry, ResolvedImage};

/// Prefix of an OCI image layout directory reference: `oci-layout://PATH[:TAG]`.
pub const OCI_LAYOUT_PREFIX: &str = "oci-layout://";
/// Prefix of an OCI archive reference: `oci-archive:PATH`.
pub const OCI_ARCHIVE_PREFIX: &str = "oci-archive:";
/// Prefix of a docker archive reference: `docker-archive:PATH`.
pub const DOCKER_ARCHIVE_PREFIX: &str = "docker-archive:";

pub use crate::registry::normalize_reference;

fn split_layout_ref(rest: &str) -> (&str, Option<&str>) {
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    }
}

fn open_file(path: &Path) -> Result<std::fs::File, WorkerError> {
    std::fs::File::open(path).map_err(|source| WorkerError::Io {
        what: "cannot open",
        path: path.to_path_buf(),
        source,
    })
}

/// Whether `reference` names a local file source rather than a store tag or registry image.
fn is_file_source(reference: &str) -> bool {
    reference.starts_with(OCI_LAYOUT_PREFIX)
        || reference.starts_with(OCI_ARCHIVE_PREFIX)
        || reference.starts_with(DOCKER_ARCHIVE_PREFIX)
}

/// Resolves `reference`: file sources and images the store knows without the network (unless
/// `cfg.pull` asks to re-resolve registry references), others from their registry.
pub async fn resolve_any(
    cfg: &LocalWorkerConfig,
    reference: &str,
) -> Result<ResolvedImage, WorkerError> {
    if is_file_source(reference) {
        let cfg2 = cfg.clone();
        let r = reference.to_string();
        return super::blocking(move || resolve(&cfg2, &r)).await;
    }
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

/// Resolves a file source or a store tag (blocking).
pub fn resolve(cfg: &LocalWorkerConfig, reference: &str) -> Result<ResolvedImage, WorkerError> {
    let store = &cfg.store;
    let (manifest_desc, manifest, config): (Descriptor, Manifest, ImageConfig) = if let Some(rest) =
        reference.strip_prefix(OCI_LAYOUT_PREFIX)
    {
        let (dir, tag) = split_layout_ref(rest);
        let img = crate::import::import_oci_dir(store, Path::new(dir), tag, &cfg.platform)?;
        (img.manifest_desc, img.manifest, img.config)
    } else if let Some(path) = reference.strip_prefix(OCI_ARCHIVE_PREFIX) {
        let img = crate::import::import_oci_archive(
            store,
            open_file(Path::new(path))?,
            None,
            &cfg.platform,
        )?;
        (img.manifest_desc, img.manifest, img.config)
    } else if let Some(path) = reference.strip_prefix(DOCKER_ARCHIVE_PREFIX) {
        let img = crate::import::import_docker_archive(store, open_file(Path::new(path))?, None)?;
        (img.manifest_desc, img.manifest, img.config)
    } else {
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
        (desc, manifest, config)
    };
    finish(cfg, reference, manifest_desc, manifest, config)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_refs_split_tag_after_last_slash() {
        assert_eq!(split_layout_ref("/a:b/c:tag"), ("/a:b/c", Some("tag")));
        assert_eq!(split_layout_ref("/a/c"), ("/a/c", None));
    }
}
