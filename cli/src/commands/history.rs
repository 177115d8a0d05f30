//! `kiln history IMAGE`: one row per history entry, newest first, with the layer each made.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use kiln_builder_core::images;
use miette::IntoDiagnostic;

use super::images::{ListFormat, ago, human_size, print_table, short_id};

/// Arguments of `kiln history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The image: a name or an id.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Do not shorten the instructions and digests.
    #[arg(long)]
    no_trunc: bool,
    /// `table` (default) or `json` (one object per line).
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    format: ListFormat,
}

/// Runs `kiln history`.
pub fn run(args: &HistoryArgs, root: &Path) -> miette::Result<ExitCode> {
    let store = super::images::open_store(root)?;
    let rows = images::history(&store, &args.image).into_diagnostic()?;
    if args.format == ListFormat::Json {
        for r in &rows {
            let v = serde_json::json!({
                "created": r.created,
                "created_by": r.created_by,
                "size": r.size,
                "layer": r.layer.map(|d| d.to_string()),
                "comment": r.comment,
            });
            println!("{v}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = vec![vec![
        "LAYER".to_string(),
        "CREATED".into(),
        "CREATED BY".into(),
        "SIZE".into(),
    ]];
    for r in &rows {
        let mut by = r.created_by.replace('\n', " ");
        if !args.no_trunc && by.chars().count() > 60 {
            by = by.chars().take(59).collect::<String>() + "…";
        }
        table.push(vec![
            r.layer
                .map_or("<none>".into(), |d| short_id(&d.to_string(), args.no_trunc)),
            ago(r.created.as_deref()),
            by,
            human_size(r.size),
        ]);
    }
    print_table(&table);
    Ok(ExitCode::SUCCESS)
}
