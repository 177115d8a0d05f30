//! Assembling the OCI index an image with attachments is pushed as, as BuildKit lays it out: the
//! image manifest (with its platform and `manifest-descriptor` annotations), then one
//! attestation manifest per image, platform `unknown/unknown`, annotated
//! `vnd.docker.reference.type: attestation-manifest` and `vnd.docker.reference.digest: <the
//! image manifest>`, whose config is an empty image config and whose layers are the in-toto
//! statements with the image manifest as their subject. This module is the one place kiln
//! builds image indexes with attestations; an index of several platforms adds its manifests
//! here too.

use serde_json::json;

use super::{ANNOTATION_PREDICATE_TYPE, Attachments, AttestError, IN_TOTO_MEDIA_TYPE};
use crate::content::ContentStore;
use crate::image::{Descriptor, Index, Manifest, Platform, media};

/// The annotation naming the kind of an index entry that is not an image.
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The annotation naming the image manifest an attestation manifest is about.
pub const ANNOTATION_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The value of [`ANNOTATION_REFERENCE_TYPE`] for attestations.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// A manifest to push: its canonical bytes, descriptor and the blobs it names.
#[derive(Debug, Clone)]
pub struct ToPush {
    /// Canonical JSON.
    pub bytes: Vec<u8>,
    /// Its descriptor.
    pub desc: Descriptor,
    /// Blobs it names (all in the store).
    pub blobs: Vec<Descriptor>,
}

/// What to push after the image manifest: the attestation manifest (if any statement), then
/// the index.
#[derive(Debug, Clone)]
pub struct Assembled {
    /// The attestation manifest.
    pub attestation: Option<ToPush>,
    /// The index.
    pub index: ToPush,
}

fn put(store: &ContentStore, bytes: Vec<u8>, media_type: &str) -> Result<Descriptor, AttestError> {
    let info = store.put_bytes(&bytes)?;
    Ok(Descriptor::new(media_type, info.digest, info.size))
}

fn canonical<T: serde::Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, AttestError> {
    crate::image::to_canonical_json(v).map_err(|source| AttestError::Json { what, source })
}

/// `pkg:docker/NAME@TAG?platform=linux%2Famd64`: a statement subject's name for a reference.
fn subject_name(reference: &str) -> String {
    let (name, tag) = match reference.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (reference, "latest"),
    };
    format!("pkg:docker/{name}@{tag}?platform=linux%2Famd64")
}

/// Builds (into the store) the attestation manifest and the index for `image` (the image
/// manifest as it is pushed) with `attachments`; `names` are the references it is pushed to.
pub fn assemble(
    store: &ContentStore,
    image: &Descriptor,
    attachments: &Attachments,
    names: &[String],
) -> Result<Assembled, AttestError> {
    let mut image_entry = image.clone();
    image_entry.platform = Some(image.platform.clone().unwrap_or_else(Platform::linux_amd64));
    image_entry.annotations = (!attachments.manifest_descriptor_annotations.is_empty())
        .then(|| attachments.manifest_descriptor_annotations.clone());
    let mut index = Index::default();
    index.manifests.push(image_entry);
    let mut attestation = None;
    if !attachments.layers.is_empty() {
        let subject: Vec<serde_json::Value> = names
            .iter()
            .map(|n| json!({"name": subject_name(n), "digest": {"sha256": image.digest.hex()}}))
            .collect();
        let mut layers = Vec::new();
        for stored in &attachments.layers {
            let mut statement: serde_json::Value = store.read_json(&stored.digest)?;
            statement["subject"] = serde_json::Value::Array(subject.clone());
            let mut d = put(
                store,
                canonical("in-toto statement", &statement)?,
                IN_TOTO_MEDIA_TYPE,
            )?;
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
            canonical("attestation config", &config)?,
            media::OCI_CONFIG,
        )?;
        let manifest = Manifest::oci(config_desc.clone(), layers.clone());
        let bytes = canonical("attestation manifest", &manifest)?;
        let mut desc = put(store, bytes.clone(), media::OCI_MANIFEST)?;
        let mut blobs = vec![config_desc];
        blobs.extend(layers);
        let mut entry = desc.clone();
        entry.platform = Some(Platform::new("unknown", "unknown", None));
        entry.set_annotation(ANNOTATION_REFERENCE_DIGEST, image.digest.to_string());
        entry.set_annotation(ANNOTATION_REFERENCE_TYPE, ATTESTATION_MANIFEST);
        index.manifests.push(entry);
        desc.annotations = None;
        attestation = Some(ToPush { bytes, desc, blobs });
    }
    if !attachments.index_annotations.is_empty() {
        index.annotations = Some(attachments.index_annotations.clone());
    }
    let bytes = canonical("image index", &index)?;
    let desc = put(store, bytes.clone(), media::OCI_INDEX)?;
    Ok(Assembled {
        attestation,
        index: ToPush {
            bytes,
            desc,
            blobs: Vec::new(),
        },
    })
}
