//! `kiln inspect IMAGE`: the image's names, manifest and config as one JSON document.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use kiln_builder_core::images;
use miette::IntoDiagnostic;

/// Arguments of `kiln inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: a name or an id.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Print only the config (`config`) or only the manifest (`manifest`).
    #[arg(long, value_name = "PART")]
    only: Option<Part>,
    /// The platform to show from a multi-platform image (the host's by default); for another
    /// image, it must be the image's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = super::flags::platform)]
    platform: Option<kiln_builder_core::image::Platform>,
    /// Print the image's attestations (provenance, SBOM) instead: a JSON array of in-toto
    /// statements, each with its predicate type (empty when there are none). A multi-platform
    /// image's are per platform (see --platform).
    #[arg(long, conflicts_with = "only")]
    attestations: bool,
}

/// One part of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// The image config.
    Config,
    /// The image manifest.
    Manifest,
}

/// Runs `kiln inspect`.
pub fn run(args: &InspectArgs, root: &Path) -> miette::Result<ExitCode> {
    let store = super::images::open_store(root)?;
    let d =
        images::inspect_platform(&store, &args.image, args.platform.as_ref()).into_diagnostic()?;
    if args.attestations {
        let statements = images::attestations(&store, &d.manifest_desc).into_diagnostic()?;
        println!(
            "{}",
            serde_json::to_string_pretty(&statements).into_diagnostic()?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let value = match args.only {
        Some(Part::Config) => serde_json::to_value(&d.config).into_diagnostic()?,
        Some(Part::Manifest) => serde_json::to_value(&d.manifest).into_diagnostic()?,
        None => serde_json::json!({
            "Id": d.id().to_string(),
            "Digest": d.manifest_desc.digest.to_string(),
            "RepoTags": d.names,
            "Size": d.size(),
            "Platform": d.config.platform().normalized().to_string(),
            "Manifest": d.manifest,
            "Config": d.config,
        }),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&value).into_diagnostic()?
    );
    Ok(ExitCode::SUCCESS)
}
