//! `kiln prune`: remove what nothing needs: blobs no tag or cache record references (untagged
//! images, base images, stale export blobs), cache records by age or size, and with `--mounts`
//! cache-mount directories. Tagged images and builds in progress are never touched.

use std::path::Path;
use std::process::ExitCode;

use miette::miette;

use super::cache::{PruneArgs, open_builder, print_report, prune_options};

/// Runs `kiln prune`.
pub fn run(args: &PruneArgs, root: &Path) -> miette::Result<ExitCode> {
    let mut opts = prune_options(args)?;
    opts.unreferenced = true;
    let builder = open_builder(root)?;
    let r = builder
        .collector()
        .prune(&opts)
        .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?;
    print_report(&r);
    Ok(ExitCode::SUCCESS)
}
