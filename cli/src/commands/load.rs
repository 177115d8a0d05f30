//! `kiln load -i FILE`: images from a docker-archive or an OCI archive into the store, tagged
//! with the names the archive gives them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kiln_builder_core::images;
use miette::{IntoDiagnostic, WrapErr};

/// Arguments of `kiln load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive (docker-archive or OCI archive, uncompressed tar); standard input when omitted.
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print only the loaded image ids.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs `kiln load`: prints `Loaded image: NAME` per name, `Loaded image ID: ID` for untagged ones.
pub fn run(args: &LoadArgs, root: &Path) -> miette::Result<ExitCode> {
    let store = super::images::open_store(root)?;
    let loaded = match &args.input {
        Some(path) => {
            let f = std::fs::File::open(path)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot open {}", path.display()))?;
            images::load(&store, std::io::BufReader::new(f))
        }
        None => images::load(&store, std::io::stdin().lock()),
    }
    .into_diagnostic()
    .wrap_err("cannot load the archive")?;
    for l in loaded {
        if args.quiet {
            println!("{}", l.id);
        } else if l.names.is_empty() {
            println!("Loaded image ID: {}", l.id);
        } else {
            for n in &l.names {
                println!("Loaded image: {n}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
