//! The build context: `.dockerignore` matching with Docker's semantics, walking the context
//! directory, and content digests of its files with a stat cache.
//!
//! This module owns reading the context; it never writes to it and never follows a symlink out of
//! it (every path is resolved through a [`crate::fsroot::Root`], and the walk opens directories
//! with `O_NOFOLLOW`). What a `COPY` does with the entries lives in `crate::copy`.
//!
//! Open, walk, hash through the stat cache, save it and hash again reading only the changed
//! file: `tests::caching_hasher_reads_only_changed_files`.

pub mod glob;
pub mod hash;
pub mod ignore;
pub mod index;
pub mod named;
pub mod pattern;
mod records;
pub mod statcache;
pub mod walk;

use std::path::Path;

pub use hash::{
    CachingHasher, ContentDigest, DirectHasher, FileHasher, HashError, Sha256Digest, StatCache,
    StatKey, hash_all, hash_file,
};
pub use ignore::{IgnoreError, IgnoreFile, IgnoreMatcher, MatchState};
pub use named::{BuildContexts, NamedContext, NamedContextError};
pub use walk::{ContextIndex, Entry, EntryKind, WalkError, walk};

use crate::fsroot::{FsError, Root};

/// An error opening or walking a build context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context directory cannot be opened.
    #[error(transparent)]
    Open(#[from] FsError),
    /// The ignore file is unreadable or malformed.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// Walking failed.
    #[error(transparent)]
    Walk(#[from] WalkError),
}

/// A build context directory with its ignore rules.
#[derive(Debug)]
pub struct BuildContext {
    root: Root,
    matcher: IgnoreMatcher,
}

impl BuildContext {
    /// Opens the context at `dir` (a trusted host path) and loads its ignore rules: the
    /// `<dockerfile>.dockerignore` beside `dockerfile` if there is one, else the context's
    /// `.dockerignore`.
    pub fn open(dir: &Path, dockerfile: Option<&Path>) -> Result<Self, ContextError> {
        let root = Root::open(dir)?;
        Self::with_root(root, dockerfile)
    }

    /// Like [`BuildContext::open`] with an already opened root.
    pub fn with_root(root: Root, dockerfile: Option<&Path>) -> Result<Self, ContextError> {
        let matcher = match IgnoreFile::locate(&root, dockerfile)? {
            Some(f) => f.matcher()?,
            None => IgnoreMatcher::empty(),
        };
        Ok(Self { root, matcher })
    }

    /// The context root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The ignore rules.
    pub fn matcher(&self) -> &IgnoreMatcher {
        &self.matcher
    }

    /// Walks the context with the ignore rules applied.
    pub fn walk(&self) -> Result<ContextIndex, ContextError> {
        Ok(walk(&self.root, &self.matcher)?)
    }

    /// Walks the context with what the stat cache knows: unchanged files get their digest in
    /// the entry, and those known to have no extended attributes are not listed for them.
    pub fn walk_cached(&self, cache: &StatCache) -> Result<ContextIndex, ContextError> {
        Ok(walk::walk_with(&self.root, &self.matcher, &|p, k| {
            cache.known(p, k)
        })?)
    }
}

#[cfg(test)]
mod tests;
