//! Image metadata: the Docker/OCI image config, manifests, indexes, descriptors, media types and
//! platform selection, with canonical JSON so the same image always has the same digests.
//!
//! This module does no I/O; the content store keeps the bytes, exporters and importers move them.
//!
//! ```
//! use kiln_builder_core::image::{ImageConfig, Platform};
//! let config = ImageConfig::scratch(&Platform::host());
//! let bytes = config.to_canonical_json().unwrap();
//! assert_eq!(ImageConfig::from_json(&bytes).unwrap(), config);
//! ```

mod annotations;
mod canonical;
mod config;
mod digest;
mod edit;
pub mod media;
mod oci;
mod platform;

pub use annotations::{AnnotationError, Annotations, PlatformAnnotation};
pub use canonical::{canonicalize, to_canonical_json};
pub(crate) use config::now_secs;
pub use config::{
    ContainerConfig, Healthcheck, History, ImageConfig, RootFs, format_rfc3339, parse_rfc3339,
};
pub use digest::{Digest, Hasher, InvalidDigest};
pub use edit::{DEFAULT_PATH, DEFAULT_SHELL};
pub use media::Compression;
pub use oci::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, ANNOTATION_REFERENCE_DIGEST,
    ANNOTATION_REFERENCE_TYPE, ATTESTATION_MANIFEST, Descriptor, Extra, Index, Manifest,
    OutManifest, Platform,
};

#[cfg(test)]
mod golden {
    //! Golden files in `testdata/oci/`: Docker-written JSON, and the canonical bytes kiln writes.
    use super::*;

    const CONFIG_DOCKER: &[u8] = include_bytes!("../../../testdata/oci/config.docker.json");
    const CONFIG_CANONICAL: &[u8] = include_bytes!("../../../testdata/oci/config.canonical.json");
    const MANIFEST_DOCKER: &[u8] = include_bytes!("../../../testdata/oci/manifest.docker.json");
    const MANIFEST_CANONICAL: &[u8] =
        include_bytes!("../../../testdata/oci/manifest.canonical.json");

    #[test]
    fn config_round_trips_byte_for_byte() {
        let config = ImageConfig::from_json(CONFIG_DOCKER).unwrap();
        assert_eq!(config.to_canonical_json().unwrap(), CONFIG_CANONICAL);
        let again = ImageConfig::from_json(CONFIG_CANONICAL).unwrap();
        assert_eq!(again, config);
        assert_eq!(again.to_canonical_json().unwrap(), CONFIG_CANONICAL);
        assert_eq!(canonicalize(CONFIG_DOCKER).unwrap(), CONFIG_CANONICAL);
    }

    #[test]
    fn config_fields_are_typed() {
        let config = ImageConfig::from_json(CONFIG_DOCKER).unwrap();
        let c = config.config.as_ref().unwrap();
        assert_eq!(c.user.as_deref(), Some("app:app"));
        assert!(c.exposed_ports.as_ref().unwrap().contains("53/udp"));
        assert_eq!(
            c.healthcheck.as_ref().unwrap().start_interval,
            Some(2_000_000_000)
        );
        assert_eq!(c.on_build.as_ref().unwrap(), &["COPY . /src"]);
        assert_eq!(c.shell.as_ref().unwrap(), &["/bin/bash", "-c"]);
        assert_eq!(c.args_escaped, Some(true));
        assert!(c.extra.contains_key("Hostname"));
        assert_eq!(config.rootfs.diff_ids.len(), 2);
        let history = config.history.as_ref().unwrap();
        assert_eq!(history[1].empty_layer, Some(true));
        assert!(config.extra.contains_key("moby.buildkit.buildinfo.v1"));
        assert_eq!(config.platform().to_string(), "linux/amd64/v1");
    }

    #[test]
    fn manifest_round_trips() {
        let m: Manifest = serde_json::from_slice(MANIFEST_DOCKER).unwrap();
        assert_eq!(m.to_canonical_json().unwrap(), MANIFEST_CANONICAL);
        assert_eq!(
            media::layer_compression(&m.layers[0].media_type),
            Some(Compression::Gzip)
        );
    }
}
