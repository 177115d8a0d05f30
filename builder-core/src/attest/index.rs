//! The attestation manifest of an image as BuildKit lays it out: platform `unknown/unknown`,
//! annotated `vnd.docker.reference.type: attestation-manifest` and `vnd.docker.reference.digest:
//! <the image manifest>`, its config an empty image config, its layers the in-toto statements
//! with the image manifest (as it leaves the store) as their subject. The index that lists it
//! after the images is made by [`crate::export::prepare_outgoing`].

use serde_json::json;

use super::{ANNOTATION_PREDICATE_TYPE, Attachments, AttestError, IN_TOTO_MEDIA_TYPE};
use crate::content::ContentStore;
use crate::image::OutManifest;
use crate::image::{
    ANNOTATION_REFERENCE_DIGEST, ANNOTATION_REFERENCE_TYPE, ATTESTATION_MANIFEST, Descriptor,
    Manifest, Platform, media,
};

fn put(store: &ContentStore, bytes: &[u8], media_type: &str) -> Result<Descriptor, AttestError> {
    let info = store.put_bytes(bytes)?;
    Ok(Descriptor::new(media_type, info.digest, info.size))
}

fn canonical<T: serde::Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, AttestError> {
    crate::image::to_canonical_json(v).map_err(|source| AttestError::Json { what, source })
}

/// Builds (into the store) the attestation manifest of `image` (the image manifest as it
/// leaves the store, with its platform) from the statements of `attachments`; `names` are the
/// references the image goes out as (the statements' subjects, one per name, or one by digest).
/// Its descriptor is the index entry, annotated as BuildKit annotates it.
pub fn attestation_manifest(
    store: &ContentStore,
    image: &Descriptor,
    attachments: &Attachments,
    names: &[String],
) -> Result<OutManifest, AttestError> {
    let platform = image.platform.clone().unwrap_or_else(Platform::host);
    let digest = json!({"sha256": image.digest.hex()});
    let mut subject: Vec<serde_json::Value> = names
        .iter()
        .map(|n| json!({"name": super::provenance::image_purl(n, &platform), "digest": digest}))
        .collect();
    if subject.is_empty() {
        subject.push(json!({"name": "_", "digest": digest}));
    }
    let mut layers = Vec::new();
    for stored in &attachments.layers {
        let mut statement: serde_json::Value = store.read_json(&stored.digest)?;
        statement["subject"] = serde_json::Value::Array(subject.clone());
        let bytes = canonical("in-toto statement", &statement)?;
        let mut d = put(store, &bytes, IN_TOTO_MEDIA_TYPE)?;
        if let Some(t) = stored.annotation(ANNOTATION_PREDICATE_TYPE) {
            d.set_annotation(ANNOTATION_PREDICATE_TYPE, t);
        }
        layers.push(d);
    }
    let config = json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
        },
    });
    let config_desc = put(
        store,
        &canonical("attestation config", &config)?,
        media::OCI_CONFIG,
    )?;
    let manifest = Manifest::oci(config_desc.clone(), layers.clone());
    let bytes = canonical("attestation manifest", &manifest)?;
    let mut desc = put(store, &bytes, media::OCI_MANIFEST)?;
    desc.platform = Some(Platform::new("unknown", "unknown", None));
    desc.set_annotation(ANNOTATION_REFERENCE_DIGEST, image.digest.to_string());
    desc.set_annotation(ANNOTATION_REFERENCE_TYPE, ATTESTATION_MANIFEST);
    let mut blobs = vec![config_desc];
    blobs.extend(layers);
    Ok(OutManifest { desc, bytes, blobs })
}
