//! kiln's build engine.
//!
//! Owns everything between a parsed Dockerfile and an image: planning, solving, the content store,
//! snapshots, isolated execution of RUN steps, layers, image configs and exports.
#![deny(missing_docs)]

pub mod changes;
pub mod exec;
pub mod fsroot;
pub mod snapshot;
