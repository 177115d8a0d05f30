//! The pest grammar (`grammar.pest`). Pest types stay inside the crate.

use pest_derive::Parser;

/// Parser generated from `grammar.pest`.
#[derive(Parser)]
#[grammar = "grammar.pest"]
pub(crate) struct DockerfileGrammar;
