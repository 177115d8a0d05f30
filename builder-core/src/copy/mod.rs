//! `COPY` and `ADD` from the build context or another root filesystem, with BuildKit's
//! semantics.
//!
//! The work is split so the solver can decide a cache hit without touching the destination:
//!
//! 1. [`select()`] resolves the sources in a [`SourceFs`] (wildcards, symlinks followed inside the
//!    source, `--exclude`, `--parents`) into a [`Selection`]; it reads metadata only.
//! 2. [`Selection::digest`] is the cache-relevant digest of the step (see its docs): it reads the
//!    selected files' digests (through the context's stat cache) and nothing of the destination.
//! 3. [`apply()`] writes the selection into the step's root filesystem (a [`Root`]) and returns
//!    every path it created or changed, for the layer ([`crate::changes::Change::Upsert`]).
//!
//! Semantics (BuildKit's `dispatchCopy` and `fsutil/copy`):
//! - sources are relative to the source root (`..` cannot leave it); a directory source copies its
//!   contents; a source named explicitly is followed if it is a symlink, entries inside a copied
//!   directory are copied as they are (symlinks as symlinks, hard links within the copy kept);
//! - the destination is relative to WORKDIR; a trailing `/`, an existing directory or several
//!   sources make it a directory; missing parents are created with mode 0755, owned by the
//!   `--chown` owner if any (root otherwise), and are part of the layer;
//! - without `--chown`, context files become `0:0` and files from a stage keep their owner;
//!   modes, mtimes and xattrs are preserved; `--chmod` applies to every copied file and directory;
//! - `--link` does not change what is written: the layer holds exactly the paths [`apply()`]
//!   returns, so the caller may build it on an empty snapshot and rebase it freely;
//! - `ADD` extracts local tar archives (recognised by content) through an [`ArchiveExtractor`].
//!
//! This module never follows a symlink out of the source root or the destination root.

pub mod apply;
pub mod archive;
pub mod select;
pub mod source;

use std::path::PathBuf;

pub use apply::{ApplyOptions, Deferred, apply, apply_deferring};
pub use archive::ArchiveExtractor;
pub use select::{Selected, SelectedItem, Selection, select};
pub use source::{ContextSource, RootfsSource, SourceFs};
#[cfg(test)]
use {
    apply::CopyOutput,
    archive::{ArchiveKind, detect_archive, verify_checksum},
};

use crate::chmod::ChmodSpec;
use crate::context::glob::BadPattern;
use crate::context::{HashError, IgnoreError};
use crate::fsroot::{FsError, Root};
use crate::userdb::UserDbError;

/// One `COPY` or `ADD` instruction, after variable expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    /// The sources as written (relative to the source root; a leading `/` is the same).
    pub sources: Vec<String>,
    /// The destination as written.
    pub dest: String,
    /// The stage's WORKDIR (absolute), for a relative destination.
    pub workdir: String,
    /// `--chown` as written (`user[:group]`, names or numbers).
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<ChmodSpec>,
    /// `--exclude` patterns (`.dockerignore` syntax, relative to each source).
    pub excludes: Vec<String>,
    /// `--parents`.
    pub parents: bool,
    /// `--link` (no effect on what is written; part of the cache digest).
    pub link: bool,
    /// `ADD` rather than `COPY`: local archives are extracted.
    pub is_add: bool,
}

impl CopyRequest {
    /// A plain `COPY sources... dest` with WORKDIR `/`.
    pub fn new(sources: &[&str], dest: &str) -> Self {
        Self {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dest: dest.to_string(),
            workdir: "/".to_string(),
            chown: None,
            chmod: None,
            excludes: Vec::new(),
            parents: false,
            link: false,
            is_add: false,
        }
    }
}

/// An error from `COPY`/`ADD`.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source matched nothing.
    #[error("lstat {source_path}: no such file or directory (no source files were specified)")]
    SourceNotFound {
        /// The source as written.
        source_path: String,
    },
    /// A source pattern is malformed.
    #[error("invalid source pattern {source_path:?}")]
    BadPattern {
        /// The source as written.
        source_path: String,
        /// What is wrong.
        #[source]
        source: BadPattern,
    },
    /// An `--exclude` pattern is malformed.
    #[error("invalid --exclude pattern")]
    Exclude(#[from] IgnoreError),
    /// A source has too many levels of symlinks.
    #[error("too many levels of symbolic links resolving {path}")]
    SymlinkLoop {
        /// The path being resolved.
        path: PathBuf,
    },
    /// A file would replace a directory at the destination.
    #[error("cannot replace directory {path} with a file")]
    ReplaceDir {
        /// The destination path (inside the destination root).
        path: PathBuf,
    },
    /// A directory would be copied onto something that is not a directory.
    #[error("cannot copy to non-directory: {path}")]
    NotDir {
        /// The destination path (inside the destination root).
        path: PathBuf,
    },
    /// `--chown` cannot be resolved in the destination's user database.
    #[error("--chown")]
    Chown(#[from] UserDbError),
    /// Hashing a source file failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// A confined filesystem operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Another I/O error.
    #[error("cannot {op} {path} in {root}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The root directory.
        root: PathBuf,
        /// The path inside it.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An archive could not be extracted.
    #[error("cannot extract {path}: {message}")]
    Extract {
        /// The archive (inside the source root).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `ADD` of a URL (not supported by this module; the caller downloads).
    #[error("ADD from URL is not supported yet: {0}")]
    UrlNotSupported(String),
    /// The `--checksum` does not match.
    #[error("checksum mismatch for {source_path}: expected {expected}, got {actual}")]
    Checksum {
        /// The source.
        source_path: String,
        /// The digest asked for.
        expected: String,
        /// The digest found.
        actual: String,
    },
}

/// Whether a source is a URL (`ADD https://...`), which this module does not fetch.
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The host-independent real path of `rel` inside `root` (symlinks resolved inside the root),
/// relative to the root.
pub(crate) fn real_rel(root: &Root, rel: &std::path::Path) -> Result<PathBuf, FsError> {
    let base = root.real_path(std::path::Path::new(""))?;
    let full = root.real_path(rel)?;
    Ok(full
        .strip_prefix(&base)
        .map(|p| p.to_path_buf())
        .unwrap_or_default())
}

#[cfg(test)]
mod archive_tests;
#[cfg(test)]
mod tests;
