//! Rendering errors for people: miette reports with the Dockerfile line underlined.

use miette::Report;

/// Prints a report to stderr, honouring `NO_COLOR`.
pub fn print_report(report: &Report) {
    eprintln!("{report:?}");
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
            let report = miette::miette!(
                labels = vec![LabeledSpan::at(span.start..span.end, "this step failed")],
                "{source}"
            )
            .with_source_code(NamedSource::new(name, dockerfile.to_string()));
            print_report(&report);
        }
        other => {
            if let Some(span) = plan_span(other) {
                let report = miette::miette!(
                    labels = vec![LabeledSpan::at(span.start..span.end, "here")],
                    "{other}"
                )
                .with_source_code(NamedSource::new(name, dockerfile.to_string()));
                print_report(&report);
            } else {
                eprintln!("Error: {other}");
                let mut source = std::error::Error::source(other);
                while let Some(s) = source {
                    eprintln!("  caused by: {s}");
                    source = s.source();
                }
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
