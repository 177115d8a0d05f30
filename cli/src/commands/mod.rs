//! One module per subcommand.

pub mod build;
pub mod export;
pub mod parse;
