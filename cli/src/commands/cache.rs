//! `kiln cache`: explain past builds' cache misses; list, measure and prune the build cache.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kiln_builder_core::cache::{BuildExplanation, ExplainStore};
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

/// Writes a build's explanation in plain words: one line per step, its reasons indented below.
pub fn print_explanation(out: &mut dyn Write, b: &BuildExplanation) -> std::io::Result<()> {
    writeln!(out, "build {}", b.id)?;
    for s in &b.steps {
        if s.cached {
            writeln!(out, "  {}: cached", s.name)?;
        } else {
            writeln!(out, "  {}: ran", s.name)?;
            for r in &s.reasons {
                writeln!(out, "    - {r}")?;
            }
        }
    }
    Ok(())
}

fn explain(args: &ExplainArgs, root: &Path) -> miette::Result<ExitCode> {
    let store = ExplainStore::new(root.join("kiln").join("explain"));
    if args.list {
        for id in store.build_ids().map_err(|e| miette!("{e}"))? {
            println!("{id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let b = store
        .build(args.build.as_deref())
        .map_err(|e| miette!("{e}"))?;
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
    }
}
