//! kiln's build engine.
//!
//! Owns everything between a parsed Dockerfile and an image: planning, solving, the content store,
//! snapshots, isolated execution of RUN steps, layers, image configs and exports. It creates no
//! async runtime of its own: the public API is async and runs on the caller's tokio runtime.
#![deny(missing_docs)]

pub mod attest;
pub mod builder;
pub mod cache;
pub mod cache_transfer;
pub mod changes;
pub mod chmod;
pub mod container;
pub mod content;
pub mod context;
pub mod copy;
pub mod deliver;
pub mod error;
pub mod exec;
pub mod export;
pub mod fsroot;
pub mod gc;
pub mod graph;
pub mod image;
pub mod images;
pub mod import;
pub mod info;
pub mod layer;
pub mod output;
pub mod plan;
mod programs;
pub mod progress;
pub mod registry;
mod report;
pub mod rootless;
pub mod scratch;
pub mod secret;
pub mod snapshot;
pub mod solver;
#[cfg(feature = "testing")]
pub mod testing;
pub mod userdb;
pub mod worker;
pub mod xattr;

pub use builder::{BuildOutput, BuildRequest, Builder, BuilderOptions, ExecutorChoice};
pub use error::Error;

/// The README's Rust examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
