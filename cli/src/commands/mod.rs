//! One module per subcommand.

pub mod build;
pub mod export;
pub mod login;
pub mod parse;
pub mod pull;
pub mod push;
pub mod registry;
