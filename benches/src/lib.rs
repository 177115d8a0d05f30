//! Input generators shared by kiln's benchmarks.
