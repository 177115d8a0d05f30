//! Resolving image references for FROM and `COPY --from` from local sources: kiln's store (by
//! tag), an OCI image layout directory, an OCI archive or a docker archive. Every layer is made
//! available uncompressed under its diff_id, which is how kiln's store keeps layers.

use std::path::Path;

use super::{LocalWorkerConfig, WorkerError};
use crate::cache::LayerRef;
use crate::image::{Descriptor, ImageConfig, Manifest, parse_rfc3339};
use crate::solver::{HistoryEntry, ResolvedImage};

/// Prefix of an OCI image layout directory reference: `oci-layout://PATH[:TAG]`.
pub const OCI_LAYOUT_PREFIX: &str = "oci-layout://";
/// Prefix of an OCI archive reference: `oci-archive:PATH`.
pub const OCI_ARCHIVE_PREFIX: &str = "oci-archive:";
/// Prefix of a docker archive reference: `docker-archive:PATH`.
pub const DOCKER_ARCHIVE_PREFIX: &str = "docker-archive:";

/// Docker's normalisation of a short reference: `busybox` → `docker.io/library/busybox:latest`.
pub fn normalize_reference(reference: &str) -> String {
    let (name, suffix) = match reference.find('@') {
        Some(at) => (&reference[..at], reference[at..].to_string()),
        None => {
            let last = reference.rsplit('/').next().unwrap_or(reference);
            if last.contains(':') {
                let colon = reference.len() - last.len() + last.find(':').unwrap_or(0);
                (&reference[..colon], reference[colon..].to_string())
            } else {
                (reference, ":latest".to_string())
            }
        }
    };
    let first = name.split('/').next().unwrap_or("");
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{full}{suffix}")
}

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

/// Resolves `reference` (blocking).
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
                None => store.get_tag(&normalized)?.ok_or_else(|| WorkerError::ImageNotFound {
                    reference: reference.to_string(),
                    reason: format!(
                        "no tag {normalized} in the local store {} (registries are not supported yet; use {OCI_LAYOUT_PREFIX}PATH, {OCI_ARCHIVE_PREFIX}PATH or {DOCKER_ARCHIVE_PREFIX}PATH)",
                        store.root().display()
                    ),
                })?,
            };
        let manifest: Manifest = store.read_json(&desc.digest)?;
        let config: ImageConfig = store.read_json(&manifest.config.digest)?;
        (desc, manifest, config)
    };

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
    fn normalizes_like_docker() {
        assert_eq!(
            normalize_reference("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_reference("app:1"), "docker.io/library/app:1");
        assert_eq!(normalize_reference("me/app"), "docker.io/me/app:latest");
        assert_eq!(
            normalize_reference("localhost:5000/a/b:t"),
            "localhost:5000/a/b:t"
        );
        assert_eq!(normalize_reference("ghcr.io/x/y"), "ghcr.io/x/y:latest");
        let d = format!("alpine@sha256:{}", "a".repeat(64));
        assert_eq!(normalize_reference(&d), format!("docker.io/library/{d}"));
    }

    #[test]
    fn layout_refs_split_tag_after_last_slash() {
        assert_eq!(split_layout_ref("/a:b/c:tag"), ("/a:b/c", Some("tag")));
        assert_eq!(split_layout_ref("/a/c"), ("/a/c", None));
    }
}
