//! `kiln cache`: explain past builds' cache misses; list, measure and prune the build cache.

mod render;

pub(crate) use render::{human, print_explanation, print_report};

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kiln_builder_core::gc::{GcPolicy, PruneOptions, parse_duration, parse_size};
use kiln_builder_core::{Builder, BuilderOptions};
use miette::{IntoDiagnostic, miette};

/// Arguments of `kiln cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Explain why the steps of a past build missed the cache (default: the latest build).
    Explain(ExplainArgs),
    /// List cache records, least recently used first (or the cache-mount directories).
    Ls(LsArgs),
    /// Show how much space the store's blobs, cache and cache mounts take.
    Du(DuArgs),
    /// Remove cache records (and the layers and snapshots only they keep).
    Prune(PruneArgs),
    /// Show or set the automatic garbage-collection policy run after builds.
    Policy(PolicyArgs),
}

#[derive(Debug, Args)]
struct LsArgs {
    /// List the `RUN --mount=type=cache` directories instead.
    #[arg(long)]
    mounts: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DuArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Options shared by `kiln cache prune` and `kiln prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove everything the command covers, not only old entries.
    #[arg(short, long)]
    all: bool,
    /// Remove least recently used entries until the store's blobs take at most SIZE
    /// (e.g. `10GB`, `512MB`).
    #[arg(long, value_name = "SIZE")]
    keep_storage: Option<String>,
    /// `until=DURATION`: remove entries not used within DURATION (e.g. `24h`, `7d`).
    #[arg(long, value_name = "until=DURATION")]
    filter: Vec<String>,
    /// Also remove cache-mount directories (unused for the `until` filter, else all).
    #[arg(long)]
    mounts: bool,
}

#[derive(Debug, Args)]
struct PolicyArgs {
    /// Keep the store's blobs under SIZE after each build.
    #[arg(long, value_name = "SIZE")]
    keep_storage: Option<String>,
    /// Turn the automatic collection off.
    #[arg(long, conflicts_with = "enable")]
    disable: bool,
    /// Turn the automatic collection on.
    #[arg(long)]
    enable: bool,
}

pub(crate) fn open_builder(root: &Path) -> miette::Result<Builder> {
    Builder::new(BuilderOptions::new(root))
        .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))
}

/// Turns the shared prune flags into options.
pub(crate) fn prune_options(args: &PruneArgs) -> miette::Result<PruneOptions> {
    let mut opts = {
        let mut v = PruneOptions::default();
        v.all = args.all;
        v.mounts = args.mounts;
        v
    };
    if let Some(k) = &args.keep_storage {
        opts.keep_storage =
            Some(parse_size(k).ok_or_else(|| miette!("invalid --keep-storage {k:?} (e.g. 10GB)"))?);
    }
    for f in &args.filter {
        match f.split_once('=') {
            Some(("until", d)) => {
                opts.until = Some(
                    parse_duration(d)
                        .ok_or_else(|| miette!("invalid duration {d:?} (e.g. 24h, 7d, 90m)"))?,
                );
            }
            _ => {
                return Err(miette!(
                    "unsupported --filter {f:?} (expected until=DURATION)"
                ));
            }
        }
    }
    Ok(opts)
}

fn ls(args: &LsArgs, root: &Path) -> miette::Result<ExitCode> {
    let usage = open_builder(root)?
        .collector()
        .usage(args.mounts)
        .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?;
    render::print_ls(&usage, args.mounts, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn du(args: &DuArgs, root: &Path) -> miette::Result<ExitCode> {
    let usage = open_builder(root)?
        .collector()
        .usage(true)
        .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?;
    render::print_du(&usage, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn prune(args: &PruneArgs, root: &Path) -> miette::Result<ExitCode> {
    let opts = prune_options(args)?;
    let builder = open_builder(root)?;
    let r = builder
        .collector()
        .prune(&opts)
        .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?;
    print_report(&r);
    Ok(ExitCode::SUCCESS)
}

fn policy(args: &PolicyArgs, root: &Path) -> miette::Result<ExitCode> {
    let builder = open_builder(root)?;
    let store = builder.store();
    let mut p = GcPolicy::load(store);
    let mut changed = false;
    if let Some(k) = &args.keep_storage {
        p.keep_storage =
            parse_size(k).ok_or_else(|| miette!("invalid --keep-storage {k:?} (e.g. 10GB)"))?;
        changed = true;
    }
    if args.disable || args.enable {
        p.enabled = args.enable;
        changed = true;
    }
    if changed {
        p.save(store)
            .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?;
    }
    println!(
        "automatic collection {}, keep the store under {}",
        if p.enabled { "on" } else { "off" },
        human(p.keep_storage)
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// The build id (or a unique prefix), as `kiln build --explain-cache` or `--list` shows it.
    #[arg(value_name = "BUILD")]
    build: Option<String>,
    /// List the kept builds instead.
    #[arg(long)]
    list: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn explain(args: &ExplainArgs, root: &Path) -> miette::Result<ExitCode> {
    let builder = open_builder(root)?;
    let store = builder.explanations();
    if args.list {
        for id in store
            .build_ids()
            .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?
        {
            println!("{id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let b = store
        .build(args.build.as_deref())
        .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&b).into_diagnostic()?);
    } else {
        print_explanation(&mut std::io::stdout().lock(), &b).into_diagnostic()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `kiln cache`.
pub fn run(args: &CacheArgs, root: &Path) -> miette::Result<ExitCode> {
    match &args.command {
        CacheCommand::Explain(a) => explain(a, root),
        CacheCommand::Ls(a) => ls(a, root),
        CacheCommand::Du(a) => du(a, root),
        CacheCommand::Prune(a) => prune(a, root),
        CacheCommand::Policy(a) => policy(a, root),
    }
}
