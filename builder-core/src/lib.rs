//! kiln's build engine.
//!
//! Owns everything between a parsed Dockerfile and an image: planning, solving, the content store,
//! snapshots, isolated execution of RUN steps, layers, image configs and exports. It creates no
//! async runtime of its own: the public API is async and runs on the caller's tokio runtime.
//!
//! A build, then its outputs (what `kiln build -t app:1 -o type=oci,dest=app.tar .` does):
//!
//! ```no_run
//! use kiln_builder_core::deliver::{Delivery, deliver};
//! use kiln_builder_core::{BuildRequest, Builder, BuilderOptions};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let builder = Builder::new(BuilderOptions::new("/var/lib/kiln"))?;
//! let mut request = BuildRequest::default();
//! request.dockerfile = std::fs::read_to_string("Dockerfile")?;
//! request.context = Some(".".into());
//! request.tags = vec!["app:1".into()];
//! let (events, mut rx) = kiln_builder_core::progress::channel();
//! tokio::spawn(async move { while rx.recv().await.is_some() {} });
//! let built = builder.build(request, events).await?;
//! let delivery = Delivery::new(vec!["type=oci,dest=app.tar".parse()?]);
//! deliver(&builder, &built, &delivery, None).await?;
//! # Ok(()) }
//! ```
//!
//! Errors are typed per module and rolled up into [`Error`], a `miette::Diagnostic`; each
//! `Display` is its own message, and [`error::chain`] renders one with its causes. Public enums
//! and option structs are `#[non_exhaustive]`: build options from their `Default` (or `new`)
//! and set fields, and match events with a wildcard arm.
#![deny(missing_docs)]
#![warn(unnameable_types)]
// Some internals are reached only by the unit tests and, through `testing::internals`, by the
// integration tests and benches; a build without them must not warn that they are unused.
#![cfg_attr(not(any(test, feature = "testing")), allow(dead_code, unused_imports))]

pub(crate) mod attest;
pub mod builder;
pub(crate) mod cache;
pub(crate) mod cache_transfer;
pub(crate) mod changes;
pub(crate) mod chmod;
pub mod container;
pub mod content;
pub(crate) mod context;
pub(crate) mod copy;
pub mod deliver;
pub mod error;
pub mod exec;
pub mod export;
pub(crate) mod fsroot;
pub mod gc;
pub(crate) mod graph;
pub mod image;
pub mod images;
pub(crate) mod import;
pub mod info;
pub(crate) mod layer;
pub(crate) mod output;
pub(crate) mod plan;
mod programs;
pub mod progress;
pub mod registry;
mod report;
pub mod rootless;
pub(crate) mod scratch;
pub mod secret;
pub(crate) mod snapshot;
pub(crate) mod solver;
pub mod ssh_keys;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;
pub(crate) mod userdb;
pub(crate) mod worker;
pub(crate) mod xattr;

pub use builder::{BuildOutput, BuildRequest, Builder, BuilderOptions, ExecutorChoice};
pub use error::Error;

/// The README's Rust examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
