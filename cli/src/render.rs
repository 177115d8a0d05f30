//! Rendering errors for people: miette reports with the Dockerfile line underlined.

use miette::Report;

/// Prints a report to stderr, honouring `NO_COLOR`.
pub fn print_report(report: &Report) {
    eprintln!("{report:?}");
}
