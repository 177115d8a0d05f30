//! OCI descriptors, manifests and indexes, read from OCI or Docker schema 2 JSON and written
//! canonically. Fields kiln does not know are kept in `extra` so nothing is lost on a round trip.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Digest;
use super::media;
pub use super::platform::Platform;

/// The annotation naming a manifest in an OCI layout's `index.json` (a tag).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and BuildKit use for the full image name.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Unknown fields, kept verbatim.
pub type Extra = BTreeMap<String, Value>;

/// A content descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The blob's media type.
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// Alternative download locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Arbitrary metadata; tags live here in an `index.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The platform of a manifest listed in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of an artifact manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Fields kiln does not interpret (e.g. `data`).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Descriptor {
    /// A descriptor with no optional fields.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            extra: Extra::new(),
        }
    }

    /// The value of an annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// Sets an annotation.
    pub fn set_annotation(&mut self, key: &str, value: impl Into<String>) {
        self.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.into());
    }
}

/// An image manifest (OCI or Docker schema 2: they share this shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json` or the Docker type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Manifest {
    /// An OCI manifest for a config and layers.
    pub fn oci(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        Self {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.to_string()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: None,
            extra: Extra::new(),
        }
    }

    /// Canonical JSON bytes (what is stored and hashed).
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        super::to_canonical_json(self)
    }
}

/// An image index (OCI) or manifest list (Docker); also the shape of an OCI layout's `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json` or the Docker list type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests (or nested indexes).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_string()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: None,
            extra: Extra::new(),
        }
    }
}

impl Index {
    /// Canonical JSON bytes.
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        super::to_canonical_json(self)
    }

    /// The manifest for `want` among the index's entries, matched as containerd does: the exact
    /// platform first (after normalizing, so `arm64` is `arm64/v8`), then the older variants of the
    /// same architecture in order (`arm/v7` falls back to `arm/v6`, then `arm/v5`). Entries
    /// without a platform match only when they are the index's sole entry.
    pub fn select_platform(&self, want: &Platform) -> Option<&Descriptor> {
        let usable =
            |d: &&Descriptor| media::is_manifest(&d.media_type) || media::is_index(&d.media_type);
        let found = want.compatible().into_iter().find_map(|candidate| {
            self.manifests
                .iter()
                .filter(usable)
                .find(|d| d.platform.as_ref().is_some_and(|p| p.matches(&candidate)))
        });
        match (found, self.manifests.as_slice()) {
            (Some(d), _) => Some(d),
            (None, [only]) if only.platform.is_none() => Some(only),
            _ => None,
        }
    }

    /// The image manifests the index lists, without the manifests attached to them
    /// (attestations, marked with [`ANNOTATION_REFERENCE_TYPE`]) and without nested indexes.
    pub fn images(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests.iter().filter(|d| {
            media::is_manifest(&d.media_type) && d.annotation(ANNOTATION_REFERENCE_TYPE).is_none()
        })
    }
}

/// The annotation that marks an index entry that is not an image but is about one (BuildKit's
/// attestation manifests).
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The annotation naming the image manifest such an entry is about.
pub const ANNOTATION_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The value of [`ANNOTATION_REFERENCE_TYPE`] for attestations.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// A manifest ready to leave the store: its bytes, its descriptor as the index lists it (with
/// platform and annotations) and the blobs it names (all in the store).
#[derive(Debug, Clone)]
pub struct OutManifest {
    /// The descriptor.
    pub desc: Descriptor,
    /// The manifest's bytes.
    pub bytes: Vec<u8>,
    /// Its config and layers.
    pub blobs: Vec<Descriptor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(arch: &str, variant: Option<&str>) -> Descriptor {
        let mut d = Descriptor::new(
            media::OCI_MANIFEST,
            Digest::of(format!("{arch}{variant:?}").as_bytes()),
            1,
        );
        d.platform = Some(Platform::new("linux", arch, variant));
        d
    }

    #[test]
    fn selects_platform_with_variants() {
        let idx = Index {
            manifests: vec![
                desc("arm", Some("v6")),
                desc("arm", None),
                desc("arm64", Some("v8")),
                desc("amd64", None),
            ],
            ..Index::default()
        };
        let pick = |s: &str| {
            idx.select_platform(&Platform::parse(s).unwrap())
                .map(|d| d.platform.clone().unwrap().to_string())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("linux/amd64"));
        assert_eq!(pick("linux/x86_64/v1").as_deref(), Some("linux/amd64"));
        assert_eq!(pick("linux/aarch64").as_deref(), Some("linux/arm64/v8"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("linux/arm"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("linux/arm/v6"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64"), None);
        assert!(Platform::parse("linux").is_none());
    }

    #[test]
    fn older_variants_are_fallbacks_but_exact_matches_win() {
        let only_v6 = Index {
            manifests: vec![desc("arm64", None), desc("arm", Some("v6"))],
            ..Index::default()
        };
        let want = Platform::parse("linux/arm/v7").unwrap();
        let picked = only_v6.select_platform(&want).unwrap();
        assert_eq!(
            picked.platform.as_ref().unwrap().to_string(),
            "linux/arm/v6"
        );
        let both = Index {
            manifests: vec![desc("arm", Some("v6")), desc("arm", Some("v7"))],
            ..Index::default()
        };
        let picked = both.select_platform(&want).unwrap();
        assert_eq!(
            picked.platform.as_ref().unwrap().to_string(),
            "linux/arm/v7"
        );
        // Never a newer variant, nor another architecture.
        let v8_only = Index {
            manifests: vec![desc("arm", Some("v8")), desc("amd64", None)],
            ..Index::default()
        };
        assert!(v8_only.select_platform(&want).is_none());
    }

    #[test]
    fn descriptor_keeps_unknown_fields() {
        let json = r#"{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0,"data":"","x-custom":{"a":1}}"#;
        let d: Descriptor = serde_json::from_str(json).unwrap();
        assert!(d.extra.contains_key("x-custom"));
        assert_eq!(
            super::super::to_canonical_json(&d).unwrap(),
            super::super::canonicalize(json.as_bytes()).unwrap()
        );
    }
}
