//! `kiln pull REF`: fetch an image from its registry into the store and tag it there.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use kiln_builder_core::image::Platform;
use kiln_builder_core::registry::{PullOptions, Reference, pull};
use miette::miette;

use super::registry::{RegistryArgs, report, runtime};

/// Arguments of `kiln pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image: `NAME[:TAG][@DIGEST]` (`busybox` means `docker.io/library/busybox:latest`).
    #[arg(value_name = "REF")]
    reference: String,

    /// The platform to pick from a multi-platform image (the host's by default).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = super::flags::platform)]
    platform: Option<Platform>,

    /// Blobs downloaded at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    concurrency: usize,

    /// Print only the image's full reference on stdout (as `docker pull -q`); nothing on
    /// stderr unless it fails.
    #[arg(short, long)]
    quiet: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs `kiln pull`: prints the digest the reference resolved to on stdout (with `-q`, the
/// full reference).
pub fn run(args: &PullArgs, root: &Path) -> miette::Result<ExitCode> {
    let reference = Reference::parse(&args.reference)
        .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?;
    let platform = args.platform.clone().unwrap_or_else(Platform::host);
    let store = crate::commands::registry::open_store(root)?;
    let popts = PullOptions {
        platform,
        concurrency: args.concurrency.max(1),
        tag: true,
    };
    let opts = args.registry.options();
    let pulled = runtime()?
        .block_on(pull(store, &opts, &reference, &popts))
        .map_err(|e| report(&e))?;
    if args.quiet {
        println!("{reference}");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "pulled {} ({}), image {}",
        reference, pulled.digest, pulled.image.manifest.config.digest
    );
    println!("{}", pulled.digest);
    Ok(ExitCode::SUCCESS)
}
