//! The crate's error: one variant per module error, plus the context the solver adds.
//!
//! Every error's `Display` is its own message only; the cause is its
//! [`source`](std::error::Error::source). [`chain`] renders an error with all its causes on one
//! line, the form the library uses wherever it turns an error into text; [`IoError`] is the one
//! shape of a failed file operation that the module errors carry.

/// Any error of the build engine.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum Error {
    /// The Dockerfile does not parse.
    #[error(transparent)]
    #[diagnostic(code(kiln::parse))]
    Parse(Box<kiln_dockerfile_parser::ParseError>),
    /// The Dockerfile could not be planned.
    #[error(transparent)]
    #[diagnostic(code(kiln::plan))]
    Plan(#[from] crate::plan::PlanError),
    /// A cache record could not be written.
    #[error(transparent)]
    #[diagnostic(code(kiln::cache))]
    Cache(#[from] crate::cache::CacheError),
    /// A confined filesystem operation failed.
    #[error(transparent)]
    #[diagnostic(code(kiln::fs))]
    Fs(#[from] crate::fsroot::FsError),
    /// The local worker failed (boxed: it is the largest error and results stay small).
    #[error(transparent)]
    #[diagnostic(code(kiln::worker))]
    Worker(Box<crate::worker::WorkerError>),
    /// A step failed; `origin` is the Dockerfile instruction.
    #[error("{} (line {})", origin.text, origin.start_line)]
    #[diagnostic(code(kiln::step))]
    Step {
        /// The instruction that failed.
        origin: Origin,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A RUN command exited unsuccessfully.
    #[error(
        "process {argv:?} did not complete successfully: {status}{}",
        if *no_network { " (the step had no network: --network none or RUN --network=none)" } else { "" }
    )]
    #[diagnostic(code(kiln::run_failed))]
    RunFailed {
        /// The command.
        argv: Vec<String>,
        /// `exit code: N` or `killed by signal N`.
        status: String,
        /// The step ran without network, which may be why it failed.
        no_network: bool,
        /// The last lines the step printed (both streams, at most
        /// `TAIL_LINES`), kept whatever the log limit.
        output: Vec<String>,
    },
    /// An `--annotation` names a platform the build does not make.
    #[error(transparent)]
    #[diagnostic(code(kiln::annotation))]
    Annotation(#[from] crate::image::AnnotationError),
    /// Exporting the build cache failed (`--cache-to` without `ignore-error=true`).
    #[error(transparent)]
    #[diagnostic(code(kiln::cache_transfer))]
    CacheTransfer(Box<crate::cache_transfer::CacheTransferError>),
    /// Making the image's attachments (provenance, SBOM) failed.
    #[error(transparent)]
    #[diagnostic(code(kiln::attest))]
    Attest(Box<crate::attest::AttestError>),
    /// The store's garbage-collection lock could not be taken.
    #[error(transparent)]
    #[diagnostic(code(kiln::gc))]
    Gc(Box<crate::gc::GcError>),
    /// A build task ended abnormally (panicked or was cancelled).
    #[error("build task failed: {0}")]
    #[diagnostic(code(kiln::task))]
    TaskFailed(String),
}

impl From<crate::worker::WorkerError> for Error {
    fn from(e: crate::worker::WorkerError) -> Self {
        Error::Worker(Box::new(e))
    }
}

pub use crate::report::{IoError, chain};

// The module errors the roll-up carries, and what they carry, by name.
pub use crate::attest::AttestError;
pub use crate::cache::CacheError;
pub use crate::cache_transfer::{CacheSpecError, CacheTransferError};
pub use crate::chmod::ChmodError;
pub use crate::context::glob::BadPattern;
pub use crate::context::hash::HashError;
pub use crate::context::statcache::SaveError;
pub use crate::context::{ContextError, IgnoreError, WalkError};
pub use crate::copy::CopyError;
pub use crate::fsroot::FsError;
pub use crate::graph::Origin;
pub use crate::import::ImportError;
pub use crate::layer::LayerError;
pub use crate::plan::PlanError;
pub use crate::userdb::UserDbError;
pub use crate::worker::WorkerError;
pub use crate::worker::download::DownloadError;
