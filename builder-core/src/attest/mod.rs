//! Supply-chain attachments of a built image: provenance ([`provenance`]) and an SBOM kiln makes
//! itself from the image's package databases ([`scan`], [`sbom`]), as in-toto statements.
//!
//! In the store, each image stays a plain manifest (every command reads it as before); its
//! descriptor (the tag's for one platform, its entry in the index for several) names an
//! [`Attachments`] blob (annotation [`ANNOTATION_ATTACHMENTS`]) that lists the statements
//! (without a subject yet) and the index's annotations. Only when the image leaves the store (a
//! push, an OCI export) is the BuildKit layout made ([`crate::export::prepare_outgoing`], the one
//! place that assembles outgoing indexes): each platform's manifest as it leaves, then one
//! attestation manifest per image ([`index`]) whose layers are the statements, now with that
//! manifest's digest as their subject, marked `vnd.docker.reference.type:
//! attestation-manifest` and `vnd.docker.reference.digest`.

pub mod index;
pub mod provenance;
pub mod sbom;
pub mod scan;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::content::{ContentStore, Digest};
use crate::image::Descriptor;

/// The tag annotation naming the image's [`Attachments`] blob.
pub const ANNOTATION_ATTACHMENTS: &str = "dev.kiln.attachments";
/// The media type of an [`Attachments`] blob.
pub const ATTACHMENTS_MEDIA_TYPE: &str = "application/vnd.kiln.attachments.v1+json";
/// The media type of an in-toto statement.
pub const IN_TOTO_MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The annotation on a statement's descriptor naming its predicate type.
pub const ANNOTATION_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// The in-toto statement type BuildKit writes.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v0.1";

/// What goes with an image when it leaves the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attachments {
    /// Always [`ATTACHMENTS_MEDIA_TYPE`].
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The statements (without subject), each annotated with its predicate type. Named
    /// `layers` so that the garbage collector keeps them with the tag.
    pub layers: Vec<Descriptor>,
    /// Annotations of the index.
    #[serde(rename = "indexAnnotations", default)]
    pub index_annotations: BTreeMap<String, String>,
    /// Annotations of the image manifest's descriptor in the index.
    #[serde(rename = "manifestDescriptorAnnotations", default)]
    pub manifest_descriptor_annotations: BTreeMap<String, String>,
    /// Annotations of the index's descriptor in an OCI layout's `index.json`.
    #[serde(rename = "indexDescriptorAnnotations", default)]
    pub index_descriptor_annotations: BTreeMap<String, String>,
}

/// An error making or reading attachments.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The store failed.
    #[error(transparent)]
    Content(#[from] crate::content::ContentError),
    /// A layer cannot be read as a tar.
    #[error("cannot read layer {0} for the SBOM: {1}")]
    Layer(Digest, String),
    /// JSON cannot be written.
    #[error("cannot encode {what}")]
    Json {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl Attachments {
    /// Whether there is nothing to attach (no index is needed).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
            && self.index_annotations.is_empty()
            && self.manifest_descriptor_annotations.is_empty()
            && self.index_descriptor_annotations.is_empty()
    }

    /// Adds an in-toto statement (without subject) for `predicate` into the store.
    pub fn add_statement(
        &mut self,
        store: &ContentStore,
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> Result<(), AttestError> {
        let statement = serde_json::json!({
            "_type": STATEMENT_TYPE,
            "predicateType": predicate_type,
            "subject": [],
            "predicate": predicate,
        });
        let mut d = store.put_json(&statement, IN_TOTO_MEDIA_TYPE)?;
        d.set_annotation(ANNOTATION_PREDICATE_TYPE, predicate_type);
        self.layers.push(d);
        Ok(())
    }

    /// Writes the attachments blob; returns its descriptor.
    pub fn save(&mut self, store: &ContentStore) -> Result<Descriptor, AttestError> {
        self.media_type = ATTACHMENTS_MEDIA_TYPE.to_string();
        Ok(store.put_json(self, ATTACHMENTS_MEDIA_TYPE)?)
    }

    /// The attachments an image's descriptor (a tag's, or an index entry) names, if any.
    pub fn of(store: &ContentStore, image: &Descriptor) -> Result<Option<Self>, AttestError> {
        let Some(d) = image
            .annotation(ANNOTATION_ATTACHMENTS)
            .and_then(|d| d.parse::<Digest>().ok())
        else {
            return Ok(None);
        };
        Ok(Some(store.read_json(&d)?))
    }
}

/// The SBOM statement's predicate for the image whose layers (diff_ids) are `layers`.
pub fn sbom_predicate(
    store: &ContentStore,
    layers: &[Digest],
    image_name: &str,
    image_digest: &Digest,
    created: &str,
) -> Result<serde_json::Value, AttestError> {
    let files = scan::candidate_files(store, layers)?;
    let packages = scan::packages(&files);
    Ok(sbom::spdx_document(
        image_name,
        &image_digest.to_string(),
        created,
        &packages,
    ))
}

/// What a build attaches.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// Provenance, with its inputs (`--provenance`).
    pub provenance: Option<provenance::ProvenanceInputs>,
    /// An SBOM (`--sbom`).
    pub sbom: bool,
    /// The annotations that do not go into the manifest (`--annotation index:...`,
    /// `manifest-descriptor:...`, `index-descriptor:...`), for this image's platform.
    pub annotations: crate::image::Annotations,
    /// The image's name for the SBOM.
    pub name: String,
    /// When the statements were made (RFC 3339).
    pub created: String,
}

/// Makes the attachments of the image `manifest` (whose uncompressed layers are `layers`) and
/// returns the descriptor to tag it with (annotated with the attachments blob when there are
/// any) and the provenance predicate made, for the build's metadata.
pub fn attach(
    store: &ContentStore,
    manifest: &Descriptor,
    layers: &[Digest],
    opts: &AttachOptions,
) -> Result<(Descriptor, Option<serde_json::Value>), AttestError> {
    let mut att = Attachments {
        index_annotations: opts.annotations.index.clone(),
        manifest_descriptor_annotations: opts.annotations.manifest_descriptor.clone(),
        index_descriptor_annotations: opts.annotations.index_descriptor.clone(),
        ..Attachments::default()
    };
    let predicate = opts.provenance.as_ref().map(provenance::predicate);
    if let Some(p) = &predicate {
        att.add_statement(store, provenance::SLSA_PREDICATE_TYPE, p.clone())?;
    }
    if opts.sbom {
        let doc = sbom_predicate(store, layers, &opts.name, &manifest.digest, &opts.created)?;
        att.add_statement(store, sbom::SPDX_PREDICATE_TYPE, doc)?;
    }
    let mut tagged = manifest.clone();
    if !att.is_empty() {
        let d = att.save(store)?;
        tagged.set_annotation(ANNOTATION_ATTACHMENTS, d.digest.to_string());
    }
    Ok((tagged, predicate))
}

/// What [`attach`] needs from a build's request for the image of `platform`: the digests of
/// its base images (`materials`: reference, digest, platform), the build's id and start time.
pub(crate) fn options_for(
    req: &crate::BuildRequest,
    platform: &crate::image::Platform,
    materials: Vec<(String, String, crate::image::Platform)>,
    build_id: &str,
    started: i64,
) -> AttachOptions {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let created = crate::image::format_rfc3339(req.source_date_epoch.unwrap_or(now));
    let provenance = req.provenance.map(|mode| provenance::ProvenanceInputs {
        mode,
        dockerfile_name: req
            .dockerfile_path
            .as_ref()
            .and_then(|p| p.file_name())
            .map_or_else(|| "-".to_string(), |n| n.to_string_lossy().into_owned()),
        dockerfile_digest: Digest::of(req.dockerfile.as_bytes()).to_string(),
        platform: platform.clone(),
        materials,
        build_args: req.plan.build_args.clone().into_iter().collect(),
        target: req.plan.target.clone(),
        secret_ids: req.secrets.keys().cloned().collect(),
        ssh_ids: req.ssh.keys().cloned().collect(),
        build_id: build_id.to_string(),
        started: crate::image::format_rfc3339(started),
        finished: crate::image::format_rfc3339(now),
    });
    let mut annotations = req.annotations.for_platform(platform);
    // The manifest's own are in the manifest already.
    annotations.manifest.clear();
    AttachOptions {
        provenance,
        sbom: req.sbom,
        annotations,
        name: req
            .tags
            .first()
            .cloned()
            .unwrap_or_else(|| "image".to_string()),
        created,
    }
}

#[cfg(test)]
mod tests;
