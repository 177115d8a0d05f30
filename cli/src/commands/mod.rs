//! One module per subcommand.

pub mod build;
pub mod cache;
pub mod completions;
pub mod flags;
pub mod history;
pub mod images;
pub mod info;
pub mod inspect;
pub mod load;
pub mod login;
pub mod parse;
pub mod prune;
pub mod pull;
pub mod push;
pub mod registry;
pub mod rmi;
pub mod run;
pub mod save;
pub mod tag;
pub mod unshare;
