//! The build context: `.dockerignore` matching with Docker's semantics, walking the context
//! directory, and content digests of its files.
//!
//! This module owns reading the context; it never writes to it and never follows a symlink out of
//! it (every path is resolved through a [`crate::fsroot::Root`]). What a `COPY` does with the
//! entries lives in `crate::copy`.

pub mod glob;
pub mod ignore;
pub mod pattern;

pub use ignore::{IgnoreError, IgnoreFile, IgnoreMatcher, MatchState};
pub use pattern::Pattern;
