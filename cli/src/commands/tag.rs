//! `kiln tag SOURCE TARGET`: another name for an image.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use kiln_builder_core::images;
use miette::IntoDiagnostic;

/// Arguments of `kiln tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image: a name or an id.
    #[arg(value_name = "SOURCE")]
    source: String,
    /// The new name, `NAME[:TAG]`.
    #[arg(value_name = "TARGET")]
    target: String,
}

/// Runs `kiln tag`.
pub fn run(args: &TagArgs, root: &Path) -> miette::Result<ExitCode> {
    let store = super::images::open_store(root)?;
    let name = images::tag(&store, &args.source, &args.target).into_diagnostic()?;
    eprintln!("tagged {name}");
    Ok(ExitCode::SUCCESS)
}
