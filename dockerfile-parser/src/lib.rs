//! Dockerfile parser for kiln.
//!
//! Owns the Dockerfile language: it turns text into a typed AST with spans. It performs no I/O and
//! knows nothing of async runtimes.
#![deny(missing_docs)]
