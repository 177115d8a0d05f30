//! The `kiln` command line: a daemonless Dockerfile image builder.
//!
//! stdout carries only results (digests, JSON, tables) so scripts can pipe them; diagnostics and
//! progress go to stderr. Exit codes: 0 success, 1 build or command failure, 2 usage error.

mod commands;
mod progress;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kiln builds OCI images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, max_term_width = 100)]
struct Cli {
    /// Directory of kiln's store (an OCI image layout plus kiln's state).
    /// Default: $XDG_DATA_HOME/kiln, else ~/.local/share/kiln.
    #[arg(long, global = true, env = "KILN_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile and a context directory.
    Build(Box<commands::build::BuildArgs>),
    /// Explain cache misses of past builds; list, measure and prune the build cache.
    Cache(commands::cache::CacheArgs),
    /// Remove unreferenced blobs and old build cache (tagged images are kept).
    Prune(commands::cache::PruneArgs),
    /// Parse a Dockerfile and print its instructions (or, with --json, the stable JSON form).
    Parse(commands::parse::ParseArgs),
}

fn main() -> ExitCode {
    // When this process was started as the RUN sandbox's helper, this runs the helper and never
    // returns. It must come before anything starts a thread.
    kiln_builder_core::exec::sandbox_main_if_requested();
    let cli = Cli::parse();
    let root = cli
        .root
        .clone()
        .unwrap_or_else(kiln_builder_core::builder::default_root);
    let result = match cli.command {
        Command::Build(args) => commands::build::run(&args, &root),
        Command::Parse(args) => commands::parse::run(&args),
        Command::Cache(args) => commands::cache::run(&args, &root),
        Command::Prune(args) => commands::prune::run(&args, &root),
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            render::print_report(&report);
            ExitCode::from(1)
        }
    }
}
