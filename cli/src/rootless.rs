//! Rootless mode at the command line: which commands need kiln's user namespace, and the notice
//! when it maps only the user's own id.

use std::process::ExitCode;

use kiln_builder_core::rootless::{self, IdPlan, RootlessError};

use crate::Command;

/// Runs the command again in a user namespace when kiln is not root and the command touches the
/// store or runs something; returns the exit code to end with, or `None` to carry on here.
pub fn enter(command: &Command) -> Option<ExitCode> {
    let needs_namespace = !matches!(
        command,
        Command::Parse(_)
            | Command::Completions(_)
            | Command::Man(_)
            | Command::Login(_)
            | Command::Logout(_)
    );
    // SAFETY: geteuid cannot fail and touches no memory.
    if !needs_namespace || unsafe { libc::geteuid() } == 0 {
        return None;
    }
    let plan = rootless::plan();
    if let IdPlan::Single { why, .. } = &plan
        && matches!(command, Command::Build(_) | Command::Run(_))
    {
        eprintln!(
            "note: rootless with your own id only ({why}): inside builds only root exists, so \
             chown to other users, COPY --chown to them and programs that switch users (apt-get's \
             _apt) fail; add ranges for your user to /etc/subuid and /etc/subgid to lift this"
        );
    }
    Some(match rootless::reexec(&plan) {
        Ok(None) => return None,
        Ok(Some(code)) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            print_error(&e);
            ExitCode::from(1)
        }
    })
}

fn print_error(e: &RootlessError) {
    let mut msg = kiln_builder_core::error::chain(&e);
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        msg.push_str(&format!(": {c}"));
        cause = c.source();
    }
    let mut diagnostic = miette::MietteDiagnostic::new(msg);
    if let Some(help) = e.help() {
        diagnostic = diagnostic.with_help(help);
    }
    crate::render::print_report(&miette::Report::new(diagnostic));
}
