//! `kiln parse [--json] [FILE|-]`: the parser's view of a Dockerfile.

use std::io::Read;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use miette::{IntoDiagnostic, NamedSource, Report, WrapErr};

/// Arguments of `kiln parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Print one JSON document: directives, warnings and every instruction with its flags,
    /// arguments, heredocs and lines. On a parse error, `{"error", "line", "column"}`.
    #[arg(long)]
    json: bool,

    /// The Dockerfile to parse; `-` reads standard input.
    #[arg(value_name = "FILE|-", default_value = "Dockerfile")]
    file: PathBuf,
}

/// Reads a Dockerfile from a path, or from stdin for `-`. Returns its display name and text.
pub fn read_dockerfile(path: &std::path::Path) -> miette::Result<(String, String)> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .into_diagnostic()
            .wrap_err("cannot read the Dockerfile from standard input")?;
        return Ok(("<stdin>".to_string(), text));
    }
    let bytes = std::fs::read(path)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .into_diagnostic()
        .wrap_err_with(|| format!("{} is not valid UTF-8", path.display()))?;
    Ok((path.display().to_string(), text))
}

/// Runs `kiln parse`.
pub fn run(args: &ParseArgs) -> miette::Result<ExitCode> {
    let (name, text) = read_dockerfile(&args.file)?;
    match kiln_dockerfile_parser::parse(&text) {
        Ok(df) => {
            if args.json {
                // Streamed, one instruction at a time, through one buffer.
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                let dump = kiln_dockerfile_parser::dump::Streamed(&df);
                serde_json::to_writer_pretty(&mut out, &dump).into_diagnostic()?;
                writeln!(out).into_diagnostic()?;
                out.flush().into_diagnostic()?;
            } else {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                for node in df.instructions() {
                    writeln!(out, "{:>4}  {}", node.start_line(), node.original())
                        .into_diagnostic()?;
                }
                out.flush().into_diagnostic()?;
            }
            for w in &df.warnings {
                eprintln!("warning: {name}:{}: {}", w.line, w.message);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            if args.json {
                let value = kiln_dockerfile_parser::dump::error_to_json(&err);
                println!("{}", serde_json::to_string(&value).into_diagnostic()?);
            }
            let report = Report::new(err).with_source_code(NamedSource::new(name, text));
            crate::render::print_report(&report);
            Ok(ExitCode::from(1))
        }
    }
}
