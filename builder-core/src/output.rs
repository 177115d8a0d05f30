//! Writing a build's result into the store: the config and manifest of the target stage, the
//! image index of a multi-platform build, and the tags.

use crate::content::{ContentStore, Digest};
use crate::image::{
    Descriptor, History, ImageConfig, Index, Manifest, Platform, RootFs, format_rfc3339, media,
};
use crate::solver::StageResult;
use crate::worker::WorkerError;

/// Points each tag at `desc` in the store.
pub fn set_tags(
    store: &ContentStore,
    desc: &Descriptor,
    tags: &[String],
) -> Result<(), crate::Error> {
    for tag in tags {
        let name = crate::worker::normalize_reference(tag);
        store.set_tag(&name, desc).map_err(WorkerError::from)?;
    }
    Ok(())
}

/// What an image gets besides its stage's result.
#[derive(Debug, Default)]
pub(crate) struct ImageExtras {
    /// An inline cache for the config (`--cache-to type=inline`).
    pub inline_cache: Option<serde_json::Value>,
    /// Annotations of the manifest (`--annotation`).
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Its attachments (`--provenance`, `--sbom`, the annotations outside the manifest).
    pub attach: crate::attest::AttachOptions,
}

/// An image written by [`write_image`].
pub(crate) struct Written {
    /// The manifest's descriptor as tagged (naming its attachments).
    pub manifest: Descriptor,
    /// The config's digest (the image id).
    pub config: Digest,
    /// The provenance predicate attached.
    pub provenance: Option<serde_json::Value>,
}

/// Writes the config and manifest of a stage result and its attachments into the store and
/// tags it.
pub(crate) fn write_image(
    store: &ContentStore,
    result: &StageResult,
    platform: &Platform,
    extras: ImageExtras,
    tags: &[String],
) -> Result<Written, crate::Error> {
    let mut config = ImageConfig::scratch(platform);
    config.created = Some(format_rfc3339(result.created));
    config.author = result.author.clone();
    // The planner's strings keep a Dockerfile's bytes; the JSON shows them as Docker's does.
    config.config = Some(result.config.clone().json_text());
    config.rootfs = RootFs {
        diff_ids: result.state.layers.iter().map(|l| l.diff_id).collect(),
        ..RootFs::default()
    };
    config.history = Some(
        result
            .history
            .iter()
            .map(|h| History {
                created: Some(
                    h.created_text
                        .clone()
                        .unwrap_or_else(|| format_rfc3339(h.created)),
                ),
                created_by: Some(h.created_by.clone()),
                author: h.author.clone(),
                comment: h.comment.clone(),
                empty_layer: h.empty_layer.then_some(true),
                ..History::default()
            })
            .collect(),
    );
    if let Some(v) = extras.inline_cache {
        config.extra.insert(
            crate::cache_transfer::inline::INLINE_CACHE_KEY.to_string(),
            v,
        );
    }
    let config_desc = store
        .put_json(&config, media::OCI_CONFIG)
        .map_err(WorkerError::from)?;
    let layers = result
        .state
        .layers
        .iter()
        .map(|l| match &l.packed {
            // A base layer the store keeps compressed is listed as that blob, as the base
            // image lists it.
            Some(p) => Descriptor::new(&p.media_type, p.digest, l.size),
            None => Descriptor::new(media::OCI_LAYER_TAR, l.diff_id, l.size),
        })
        .collect();
    let mut manifest = Manifest::oci(config_desc.clone(), layers);
    if !extras.annotations.is_empty() {
        manifest.annotations = Some(extras.annotations);
    }
    let manifest_desc = store
        .put_json(&manifest, media::OCI_MANIFEST)
        .map_err(WorkerError::from)?;
    if extras.attach.sbom {
        // The SBOM scan reads the layers' tars.
        for l in &result.state.layers {
            if let Some(p) = &l.packed {
                crate::export::ensure_uncompressed(store, &p.digest, &l.diff_id).map_err(|e| {
                    crate::Error::Attest(Box::new(crate::attest::AttestError::Layer(
                        p.digest,
                        crate::report::chain(&e),
                    )))
                })?;
            }
        }
    }
    let (tagged, provenance) = crate::attest::attach(
        store,
        &manifest_desc,
        &config.rootfs.diff_ids,
        &extras.attach,
    )
    .map_err(|e| crate::Error::Attest(Box::new(e)))?;
    set_tags(store, &tagged, tags)?;
    Ok(Written {
        manifest: tagged,
        config: config_desc.digest,
        provenance,
    })
}

/// Writes an OCI image index of `images` (each with its platform) and tags it.
pub fn write_index(
    store: &ContentStore,
    images: &[Descriptor],
    tags: &[String],
) -> Result<Descriptor, crate::Error> {
    let index = Index {
        manifests: images.to_vec(),
        ..Index::default()
    };
    let desc = store
        .put_json(&index, media::OCI_INDEX)
        .map_err(WorkerError::from)?;
    set_tags(store, &desc, tags)?;
    Ok(desc)
}
