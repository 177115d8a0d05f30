//! Errors of the content store; each names the path or digest it is about.

use std::io;
use std::path::PathBuf;

use super::Digest;

/// An error from the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// A filesystem operation on the store failed.
    #[error(transparent)]
    Io(#[from] crate::report::IoError),
    /// The blob is not in the store.
    #[error("blob {0} not found in the content store")]
    NotFound(Digest),
    /// The bytes written or read do not hash to the expected digest.
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest that was asked for.
        expected: Digest,
        /// The digest of the bytes actually seen.
        actual: Digest,
    },
    /// The blob does not have the expected size.
    #[error("blob {digest} size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The size that was asked for.
        expected: u64,
        /// The size actually seen.
        actual: u64,
    },
    /// A metadata file is not valid JSON of the expected shape.
    #[error("invalid JSON in {path}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: crate::content::JsonError,
    },
    /// A JSON blob is not the document its descriptor says (`what`: manifest, index, ...).
    #[error("invalid {what} {digest}")]
    InvalidJson {
        /// What the document should be.
        what: &'static str,
        /// The blob.
        digest: Digest,
        /// The parse error.
        #[source]
        source: crate::content::JsonError,
    },
    /// The layout is of a version kiln does not know.
    #[error("unsupported OCI layout version {version:?} in {path}")]
    LayoutVersion {
        /// The `oci-layout` file.
        path: PathBuf,
        /// The version found.
        version: String,
    },
    /// A tag name that cannot be stored.
    #[error("invalid tag name {0:?}")]
    InvalidTag(String),
}

/// Result of a content store operation.
pub type Result<T, E = ContentError> = std::result::Result<T, E>;

impl ContentError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ContentError::Io(crate::report::IoError {
            op,
            path: path.into(),
            source,
        })
    }

    /// Whether the error says the blob is missing (as opposed to corrupt or unreadable).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ContentError::NotFound(_))
    }

    /// Whether the error says stored bytes do not match their digest or size.
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. }
        )
    }
}
