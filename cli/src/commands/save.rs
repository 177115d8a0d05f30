//! `kiln save IMAGE... -o FILE`: a docker-archive (what `docker load` and
//! `skopeo copy docker-archive:` read) or, with `--format oci`, an OCI archive.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kiln_builder_core::images::{self, ArchiveFormat};
use miette::{IntoDiagnostic, miette};

/// Arguments of `kiln save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Names or ids; several names of one image are all recorded in the archive (kiln writes one
    /// image per archive).
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,
    /// The archive to write: a regular file is replaced only once complete, a device or FIFO is
    /// written into, a symlink is followed; `-` or omitted is standard output (not a terminal).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// `docker` (docker-archive, the default) or `oci` (OCI image layout tar).
    #[arg(long, value_name = "FORMAT", default_value = "docker")]
    format: Format,
    /// The platform to save from a multi-platform image (needed for `docker`; `oci` saves every
    /// platform without it).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = super::flags::platform)]
    platform: Option<kiln_builder_core::image::Platform>,
}

/// The archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// docker-archive, as `docker save` writes it.
    Docker,
    /// OCI archive, as `--output type=oci` writes it.
    Oci,
}

/// Runs `kiln save`.
pub fn run(args: &SaveArgs, root: &Path) -> miette::Result<ExitCode> {
    let store = super::images::open_store(root)?;
    // The garbage collector must not remove the blobs being read.
    let _lease = super::push::lease(&store)?;
    let format = match args.format {
        Format::Docker => ArchiveFormat::Docker,
        Format::Oci => ArchiveFormat::Oci,
    };
    match &args.output {
        Some(dest) if dest.as_os_str() != "-" => {
            kiln_builder_core::export::dest::write_stream(dest, |out| {
                images::save(&store, &args.images, format, args.platform.as_ref(), out)
                    .map(|(_, out)| out)
            })
            .into_diagnostic()?
        }
        _ => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                return Err(miette!(
                    help = "use -o FILE, or redirect standard output",
                    "refusing to write an archive to a terminal"
                ));
            }
            let out = std::io::BufWriter::new(stdout.lock());
            let (_, mut out) =
                images::save(&store, &args.images, format, args.platform.as_ref(), out)
                    .into_diagnostic()?;
            out.flush().into_diagnostic()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
