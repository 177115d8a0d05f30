//! Input generators shared by kiln's benchmarks.

pub mod dockerfiles;
pub mod trees;
