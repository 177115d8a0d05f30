//! `kiln push IMAGE [-t REF]...`: upload an image from the store to its registry (and to more
//! references), blobs first and the manifest last.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use kiln_builder_core::content::ContentStore;
use kiln_builder_core::image::{Compression, Descriptor};
use kiln_builder_core::registry::{
    PushOptions, PushProgress, Pushed, Reference, RegistryOptions, push,
};
use miette::{IntoDiagnostic, WrapErr, miette};

use super::registry::{RegistryArgs, report, runtime};

/// Layer compression in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// gzip (what every registry and runtime reads).
    Gzip,
    /// zstd.
    Zstd,
    /// Uncompressed tar layers.
    None,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::None => Compression::None,
        }
    }
}

/// How pushes upload, shared by `kiln push` and `kiln build --push`.
#[derive(Debug, Clone, Args)]
pub struct PushFlags {
    /// Layer compression in the registry.
    #[arg(long, value_enum, default_value = "gzip")]
    compression: CompressionArg,

    /// Upload blobs larger than this many bytes in chunks of this size (default: one request
    /// per blob).
    #[arg(long, value_name = "BYTES")]
    chunk_size: Option<u64>,

    /// Blobs uploaded at once.
    #[arg(long = "push-concurrency", value_name = "N", default_value_t = 4)]
    concurrency: usize,
}

impl PushFlags {
    /// The library's options.
    pub(crate) fn options(&self) -> PushOptions {
        let mut opts = PushOptions::default();
        opts.compression = self.compression.into();
        opts.chunk_size = self.chunk_size;
        opts.concurrency = self.concurrency.max(1);
        opts
    }
}

/// Arguments of `kiln push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image in the store, by tag (`app:1` means `docker.io/library/app:1`); it is pushed
    /// to that reference.
    #[arg(value_name = "IMAGE")]
    image: String,

    /// Push to this reference too (`registry/repo:tag`); repeatable.
    #[arg(short = 't', long = "tag", value_name = "REF")]
    tags: Vec<String>,

    /// Write the pushed manifest digest to this file.
    #[arg(long, value_name = "FILE")]
    digestfile: Option<PathBuf>,

    /// Print only the pushed references, `REF@DIGEST`, one a line on stdout (docker's
    /// `--quiet` prints the reference); no progress or summary on stderr.
    #[arg(short, long)]
    quiet: bool,

    #[command(flatten)]
    push: PushFlags,

    #[command(flatten)]
    registry: RegistryArgs,
}

fn parse_ref(s: &str) -> miette::Result<Reference> {
    Reference::parse(s).map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))
}

/// A shared lease on the store: `kiln prune` waits while it is held.
pub(crate) fn lease(store: &ContentStore) -> miette::Result<kiln_builder_core::gc::BuildLease> {
    kiln_builder_core::gc::BuildLease::acquire(store)
        .map_err(|e| miette::miette!("{e}", e = kiln_builder_core::error::chain(&e)))
}

/// Reports a push on stderr.
pub(crate) fn print_pushed(pushed: &Pushed) {
    for r in &pushed.references {
        eprintln!("pushed {r}@{}", pushed.digest);
    }
    eprintln!(
        "blobs: {} uploaded, {} mounted, {} already there",
        pushed.uploaded, pushed.mounted, pushed.existing
    );
}

/// Pushes `manifest` to `targets` and reports each on stderr (unless `quiet`).
fn push_image(
    store: Arc<ContentStore>,
    opts: &RegistryOptions,
    manifest: &Descriptor,
    targets: &[Reference],
    flags: &PushFlags,
    show_progress: bool,
    quiet: bool,
) -> miette::Result<Pushed> {
    let mut popts = flags.options();
    let bar = crate::tty_progress::byte_bar(show_progress, "pushing", true);
    let counter = bar.clone();
    popts.progress = Some(kiln_builder_core::registry::PushProgressFn(Arc::new(
        move |p| match p {
            PushProgress::Blob { size } => counter.inc_length(size),
            PushProgress::Sent(n) => counter.inc(n),
        },
    )));
    // The garbage collector must not remove the blobs being read.
    let _lease = lease(&store)?;
    let pushed = runtime()?.block_on(push(store, opts, manifest, targets, &popts));
    match &pushed {
        Ok(_) => crate::tty_progress::finish_bytes(&bar, "pushed"),
        Err(_) => bar.finish_and_clear(),
    }
    let pushed = pushed.map_err(|e| report(&e))?;
    if !quiet {
        print_pushed(&pushed);
    }
    Ok(pushed)
}

/// Runs `kiln push`: prints the pushed manifest digest on stdout.
pub fn run(args: &PushArgs, root: &Path) -> miette::Result<ExitCode> {
    let source = parse_ref(&args.image)?;
    let mut targets = vec![source.clone()];
    for t in &args.tags {
        let r = parse_ref(t)?;
        if !targets.contains(&r) {
            targets.push(r);
        }
    }
    let store = crate::commands::registry::open_store(root)?;
    let manifest = match store
        .get_tag(&args.image)
        .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?
    {
        Some(d) => d,
        None => store
            .get_tag(&source.to_string())
            .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?
            .ok_or_else(|| miette!("no image {source} in the store {}", root.display()))?,
    };
    let pushed = push_image(
        store,
        &args.registry.options(),
        &manifest,
        &targets,
        &args.push,
        std::io::stderr().is_terminal() && !args.quiet,
        args.quiet,
    )?;
    if let Some(f) = &args.digestfile {
        std::fs::write(f, pushed.digest.to_string())
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {}", f.display()))?;
    }
    if args.quiet {
        for r in &pushed.references {
            println!("{r}@{}", pushed.digest);
        }
    } else {
        println!("{}", pushed.digest);
    }
    Ok(ExitCode::SUCCESS)
}
