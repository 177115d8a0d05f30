//! `kiln rmi IMAGE...`: remove names from the store. Blobs stay until garbage collection.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use kiln_builder_core::images;

/// Arguments of `kiln rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Names or ids. An id removes the image's only name; with several, `--force` removes all.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,
    /// Remove every name of an image given by id.
    #[arg(short, long)]
    force: bool,
}

/// Runs `kiln rmi`: each removed name is printed as `Untagged: NAME`; a missing image is an
/// error, but the others are still removed.
pub fn run(args: &RmiArgs, root: &Path) -> miette::Result<ExitCode> {
    let store = super::images::open_store(root)?;
    let mut failed = false;
    for image in &args.images {
        match images::remove(&store, image, args.force) {
            Ok(names) => {
                for n in names {
                    println!("Untagged: {n}");
                }
            }
            Err(e) => {
                crate::render::print_report(&miette::Report::new_boxed(Box::new(
                    miette::MietteDiagnostic::new(kiln_builder_core::error::chain(&e)),
                )));
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
