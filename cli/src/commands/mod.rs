//! One module per subcommand.

pub mod build;
pub mod cache;
pub mod export;
pub mod parse;
pub mod prune;
