//! Rendering errors for people: miette reports with the Dockerfile line underlined.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_builder_core::error::chain;
use miette::Report;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// When stderr is a terminal and `NO_COLOR` is unset or empty.
    Auto,
    /// Always (even with `NO_COLOR`).
    Always,
    /// Never.
    Never,
}

static COLOR: AtomicBool = AtomicBool::new(false);

/// Whether messages and progress use colors.
pub fn colors() -> bool {
    COLOR.load(Ordering::Relaxed)
}

/// Decides on colors once, for miette reports and the progress display.
pub fn setup_colors(choice: ColorChoice) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !no_color && std::io::stderr().is_terminal(),
    };
    COLOR.store(on, Ordering::Relaxed);
    let _ = miette::set_hook(Box::new(move |_| {
        // Box-drawing characters whatever the colors, so that logs read the same everywhere.
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(on)
                .unicode(true)
                .build(),
        )
    }));
}

/// Prints a report to stderr, honouring `NO_COLOR`. The message is the error and its causes on
/// one line ([`chain`]), each cause once.
pub fn print_report(report: &Report) {
    if report.labels().is_some() || report.source_code().is_some() {
        eprintln!("{report:?}");
        return;
    }
    let flat = Flat::of(report.as_ref());
    eprintln!("{:?}", Report::new(flat));
}

/// A report whose message is the whole chain of causes, with the code and help of the original.
#[derive(Debug)]
struct Flat {
    text: String,
    code: Option<String>,
    help: Option<String>,
}

impl Flat {
    fn of(d: &dyn miette::Diagnostic) -> Flat {
        Flat {
            text: chain(d),
            code: d.code().map(|c| c.to_string()),
            help: d.help().map(|h| h.to_string()),
        }
    }
}

impl std::fmt::Display for Flat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Flat {}

impl miette::Diagnostic for Flat {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.code.as_ref().map(|c| Box::new(c) as _)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as _)
    }
}

/// Prints a build error; a failing step shows its Dockerfile line underlined.
pub fn print_build_error(err: &kiln_builder_core::Error, name: &str, dockerfile: &str) {
    use kiln_builder_core::Error;
    use miette::{LabeledSpan, NamedSource};
    match err {
        Error::Parse(p) => {
            let report = Report::new((**p).clone())
                .with_source_code(NamedSource::new(name, dockerfile.to_string()));
            print_report(&report);
        }
        Error::Step { origin, source } => {
            let span = origin.span;
            let (label, output) = match &**source {
                Error::RunFailed {
                    status,
                    output,
                    no_network: true,
                    ..
                } => (
                    format!(
                        "this step failed ({status}); it ran without network (--network none or RUN --network=none)"
                    ),
                    &output[..],
                ),
                Error::RunFailed { status, output, .. } => {
                    (format!("this step failed ({status})"), &output[..])
                }
                _ => ("this step failed".to_string(), &[][..]),
            };
            if !output.is_empty() {
                eprintln!(
                    "------\n > {}:\n{}\n------",
                    origin.text,
                    output
                        .iter()
                        .map(|l| format!("   {l}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            let report = miette::miette!(
                labels = vec![LabeledSpan::at(span.range(), label)],
                "{}",
                chain(&**source)
            )
            .with_source_code(NamedSource::new(name, dockerfile.to_string()));
            print_report(&report);
        }
        other => {
            if let Some(span) = plan_span(other) {
                let report = miette::miette!(
                    labels = vec![LabeledSpan::at(span.range(), "here")],
                    "{}",
                    chain(other)
                )
                .with_source_code(NamedSource::new(name, dockerfile.to_string()));
                print_report(&report);
            } else {
                eprintln!("Error: {}", chain(other));
            }
        }
    }
}

fn plan_span(err: &kiln_builder_core::Error) -> Option<kiln_dockerfile_parser::Span> {
    match err {
        kiln_builder_core::Error::Plan(p) => p.span(),
        _ => None,
    }
}
