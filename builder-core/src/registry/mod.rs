//! OCI distribution registries: references with Docker's normalisation ([`Reference`]), a client
//! with anonymous, basic and bearer-token authentication ([`Client`]), credentials from Docker's
//! `config.json` and the containers tools' auth files ([`auth`], `auth_files`), pulling images into the content store ([`pull`]) and pushing them
//! from it ([`push`]), and what the build cache in a registry uses (`cache_transfer::registry`).
//!
//! It owns the network side of images only: what it pulls goes through the content store's
//! [`BlobWriter`](crate::content::BlobWriter) (temp file, digest and size verified, rename), so a
//! failed or corrupt download leaves nothing behind; what it pushes is the store's image as the
//! exporters prepare it (layers compressed once and remembered). A push uploads every blob first
//! and the manifest last, so a tag never points at missing blobs.
//!
//! Secrets are held in [`auth::Secret`], which never prints its value.

pub mod auth;
pub(crate) mod auth_files;
mod client;
mod pull;
mod push;
mod push_index;
mod reference;

pub(crate) use pull::{fetch_blob, fetch_manifest};
pub(crate) use push::push_prepared;

use std::path::PathBuf;

pub use crate::import::ImportedImage;
pub use auth::{Credentials, DockerConfig, Secret};
pub use client::Client;
pub(crate) use pull::resolve_local;
pub use pull::{PullOptions, Pulled, pull};
pub use push::{PushOptions, PushProgress, PushProgressFn, Pushed, push};
pub use reference::{DOCKER_HUB, InvalidReference, Reference, normalize_reference};

use crate::content::{ContentError, Digest};

/// The annotation on a store tag that records the registry digest the tag resolved to when it
/// was pulled (the index's or manifest's digest as the registry serves it).
pub(crate) const ANNOTATION_SOURCE_DIGEST: &str = "dev.kiln.registry.digest";

/// How registries are reached.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RegistryOptions {
    /// Registries (`host:port`) that may be reached over plain HTTP besides loopback.
    pub insecure_registries: Vec<String>,
    /// Extra PEM files of CA certificates to trust.
    pub ca_files: Vec<PathBuf>,
    /// Docker's configuration directory (default: `$DOCKER_CONFIG`, else `~/.docker`).
    pub docker_config: Option<PathBuf>,
    /// Credentials to use instead of looking them up (for `kiln login`'s check).
    pub credentials: Option<Credentials>,
}

impl RegistryOptions {
    /// A client for the registry of `reference`.
    pub fn client(&self, reference: &Reference) -> Result<Client, RegistryError> {
        Client::new(reference.registry(), reference.api_host(), self)
    }
}

/// An error talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] InvalidReference),
    /// Pulling failed.
    #[error("cannot pull {reference}")]
    Pull {
        /// The reference.
        reference: String,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// Pushing failed.
    #[error("cannot push {reference}")]
    Push {
        /// The reference.
        reference: String,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// The registry cannot be reached (DNS, connection, TLS).
    #[error("cannot reach registry {registry}: {reason}")]
    Connect {
        /// The registry.
        registry: String,
        /// Why, with the causes.
        reason: String,
    },
    /// The registry refused our credentials or wants some.
    #[error("unauthorized: registry {registry}: {reason}")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// The manifest (tag or digest) does not exist.
    #[error("manifest {what} not found in registry {registry}")]
    ManifestNotFound {
        /// The registry.
        registry: String,
        /// `repo:tag` or `repo@digest`.
        what: String,
    },
    /// An unexpected HTTP status.
    #[error("registry {registry}: {what}: HTTP {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status {
        /// The registry.
        registry: String,
        /// What was asked for.
        what: String,
        /// The status code.
        status: u16,
        /// The registry's error message.
        detail: String,
    },
    /// The registry sent bytes that do not match the digest asked for.
    #[error("{what} from registry {registry} does not match its digest {expected} (got {actual})")]
    DigestMismatch {
        /// The registry.
        registry: String,
        /// What it was (manifest, blob).
        what: &'static str,
        /// The digest asked for.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// The registry sent more or fewer bytes than the descriptor says.
    #[error("{what} {digest} from registry {registry} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The registry.
        registry: String,
        /// What it was.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// What arrived.
        actual: u64,
    },
    /// No manifest in the index is for the platform asked for.
    #[error("no image for platform {platform} (the index lists: {})", if available.is_empty() { "no platforms".to_string() } else { available.join(", ") })]
    NoPlatform {
        /// The platform asked for.
        platform: String,
        /// The platforms the index has.
        available: Vec<String>,
    },
    /// A manifest of a kind kiln cannot use.
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type.
        media_type: String,
    },
    /// A manifest or index is not valid JSON of its kind.
    #[error("invalid {what}: {reason}")]
    InvalidManifest {
        /// What it was.
        what: String,
        /// Why.
        reason: String,
    },
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Preparing the image for the push (compressing layers) failed.
    #[error(transparent)]
    Export(Box<crate::export::ExportError>),
    /// Converting a pulled image failed.
    #[error(transparent)]
    Import(Box<crate::import::ImportError>),
    /// The local image to push does not exist.
    #[error("no image {0} in the local store")]
    NoLocalImage(String),
    /// Docker's `config.json` is unusable.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A credential helper failed.
    #[error("credential helper {helper}: {reason}")]
    CredentialHelper {
        /// The program.
        helper: String,
        /// Why.
        reason: String,
    },
    /// A CA file is unusable.
    #[error("CA file {path}: {reason}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Local I/O failed.
    #[error(transparent)]
    Io(#[from] crate::report::IoError),
    /// A blocking task panicked.
    #[error("registry task failed: {0}")]
    Task(String),
}

impl From<crate::export::ExportError> for RegistryError {
    fn from(e: crate::export::ExportError) -> Self {
        RegistryError::Export(Box::new(e))
    }
}

impl From<crate::import::ImportError> for RegistryError {
    fn from(e: crate::import::ImportError) -> Self {
        RegistryError::Import(Box::new(e))
    }
}
