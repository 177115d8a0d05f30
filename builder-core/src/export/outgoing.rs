//! An image as it leaves the store, for a push and an OCI export alike: each platform's manifest
//! prepared ([`super::prepare`]: layers compressed as asked), then, for an image with
//! attachments (provenance, SBOM, index annotations, see [`crate::attest`]), one attestation
//! manifest per image, and the OCI index that lists them, as BuildKit lays it out. A single
//! image without statements or index annotations leaves as its manifest alone; a
//! multi-platform image always as an index. This is the one place that assembles outgoing indexes.

use std::collections::BTreeMap;

use super::{ExportError, prepare};
use crate::attest::{ANNOTATION_ATTACHMENTS, Attachments};
use crate::content::{ContentStore, Digest};
use crate::image::{ANNOTATION_REFERENCE_DIGEST, ANNOTATION_REFERENCE_TYPE, Compression};
use crate::image::{Descriptor, Index, Manifest, media};
use crate::layer::CompressOptions;

pub use crate::image::OutManifest;

/// What leaves the store for an image.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The image manifests (one per platform), then the attestation manifests.
    pub manifests: Vec<OutManifest>,
    /// The index listing them; `None` for a single image without attachments.
    pub index: Option<OutManifest>,
    /// Annotations for the top descriptor in an OCI layout's `index.json`
    /// (`--annotation index-descriptor:...`).
    pub descriptor_annotations: BTreeMap<String, String>,
}

impl Outgoing {
    /// The top descriptor: the index, or the single image manifest.
    pub fn top(&self) -> Option<&Descriptor> {
        match &self.index {
            Some(i) => Some(&i.desc),
            None => self.manifests.first().map(|m| &m.desc),
        }
    }

    /// Every blob, manifests and index included, sorted and without duplicates.
    pub fn blob_digests(&self) -> Vec<Digest> {
        let mut v: Vec<Digest> = self
            .manifests
            .iter()
            .chain(self.index.iter())
            .flat_map(|m| std::iter::once(m.desc.digest).chain(m.blobs.iter().map(|b| b.digest)))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

fn attest_err(e: crate::attest::AttestError) -> ExportError {
    ExportError::Attachments(Box::new(e))
}

fn manifest_blobs(m: &Manifest) -> Vec<Descriptor> {
    std::iter::once(m.config.clone())
        .chain(m.layers.iter().cloned())
        .collect()
}

/// Prepares the image `top` (an image manifest, or the index of a multi-platform image) to
/// leave the store with its layers in `compression`; `names` are the references it leaves as
/// (the subjects of its attestations).
pub fn prepare_outgoing(
    store: &ContentStore,
    top: &Descriptor,
    compression: Compression,
    copts: &CompressOptions,
    names: &[String],
) -> Result<Outgoing, ExportError> {
    let is_index = media::is_index(&top.media_type);
    let (entries, mut index_annotations) = if is_index {
        let index: Index = store.read_json_as(&top.digest, "index")?;
        (index.manifests, index.annotations.unwrap_or_default())
    } else {
        // A tag's descriptor: only its attachments count, not its names.
        let mut entry = Descriptor::new(top.media_type.clone(), top.digest, top.size);
        if let Some(a) = top.annotation(ANNOTATION_ATTACHMENTS) {
            entry.set_annotation(ANNOTATION_ATTACHMENTS, a);
        }
        (vec![entry], BTreeMap::new())
    };
    let mut images = Vec::new();
    let mut attestations = Vec::new();
    let mut kept = Vec::new();
    let mut renamed: BTreeMap<Digest, Digest> = BTreeMap::new();
    let mut descriptor_annotations = BTreeMap::new();
    let mut attached = false;
    for entry in &entries {
        if entry.annotation(ANNOTATION_REFERENCE_TYPE).is_some() {
            // Attestations already in a stored index (an imported BuildKit image).
            kept.push(entry.clone());
            continue;
        }
        let att = Attachments::of(store, entry).map_err(attest_err)?;
        let p = prepare(store, entry, compression, copts)?;
        renamed.insert(entry.digest, p.manifest_desc.digest);
        let mut desc = p.manifest_desc.clone();
        desc.platform = entry.platform.clone().or(desc.platform);
        let mut annotations = entry.annotations.clone().unwrap_or_default();
        annotations.remove(ANNOTATION_ATTACHMENTS);
        if let Some(att) = att.filter(|a| !a.is_empty()) {
            // An index for statements or index annotations; `manifest-descriptor` ones alone
            // go on the manifest's own descriptor (an OCI layout's `index.json`), as BuildKit.
            attached |= !att.layers.is_empty()
                || !att.index_annotations.is_empty()
                || !att.index_descriptor_annotations.is_empty();
            annotations.extend(att.manifest_descriptor_annotations.clone());
            index_annotations.extend(att.index_annotations.clone());
            descriptor_annotations.extend(att.index_descriptor_annotations.clone());
            if !att.layers.is_empty() {
                let a = crate::attest::index::attestation_manifest(store, &desc, &att, names)
                    .map_err(attest_err)?;
                attestations.push(a);
            }
        }
        desc.annotations = (!annotations.is_empty()).then_some(annotations);
        images.push(OutManifest {
            bytes: store.read_verified_bytes(&p.manifest_desc.digest)?,
            blobs: manifest_blobs(&p.manifest),
            desc,
        });
    }
    for entry in kept {
        // Kept only while the image it is about leaves unchanged: its statements name it.
        let about = entry
            .annotation(ANNOTATION_REFERENCE_DIGEST)
            .and_then(|d| d.parse::<Digest>().ok());
        if about.is_some_and(|d| renamed.get(&d) == Some(&d)) {
            let manifest: Manifest = store.read_json_as(&entry.digest, "attestation manifest")?;
            attestations.push(OutManifest {
                bytes: store.read_verified_bytes(&entry.digest)?,
                blobs: manifest_blobs(&manifest),
                desc: entry,
            });
        }
    }
    let mut manifests = images;
    manifests.extend(attestations);
    if !is_index && !attached {
        return Ok(Outgoing {
            manifests,
            index: None,
            descriptor_annotations,
        });
    }
    let index = Index {
        manifests: manifests.iter().map(|m| m.desc.clone()).collect(),
        annotations: (!index_annotations.is_empty()).then_some(index_annotations),
        ..Index::default()
    };
    let bytes = index
        .to_canonical_json()
        .map_err(|source| ExportError::Json {
            what: "index",
            digest: top.digest,
            source: source.into(),
        })?;
    // Kept in the store too, so that what left can be read back locally.
    let info = store.put_bytes(&bytes)?;
    Ok(Outgoing {
        manifests,
        index: Some(OutManifest {
            desc: Descriptor::new(media::OCI_INDEX, info.digest, info.size),
            bytes,
            blobs: Vec::new(),
        }),
        descriptor_annotations,
    })
}
