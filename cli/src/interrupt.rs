//! Ctrl-C: a build or container future is raced against SIGINT (and SIGTERM); when a signal
//! wins, the future is dropped, which kills the running command and discards its snapshot, and
//! the command exits with 130 (128 + SIGINT), as shells expect.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use miette::IntoDiagnostic;

/// The exit code after an interrupt.
pub const INTERRUPTED: u8 = 130;

/// A multi-threaded runtime for one command.
pub fn runtime() -> miette::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()
}

/// Runs `fut` to completion, or until SIGINT/SIGTERM arrives: then the future is dropped (its
/// cleanup runs) and `None` is returned.
pub fn run_until_interrupted<F: Future>(
    runtime: &tokio::runtime::Runtime,
    fut: F,
) -> miette::Result<Option<F::Output>> {
    let out = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).into_diagnostic()?;
        let mut term = signal(SignalKind::terminate()).into_diagnostic()?;
        tokio::select! {
            out = fut => Ok::<_, miette::Report>(Some(out)),
            _ = int.recv() => Ok(None),
            _ = term.recv() => Ok(None),
        }
    })?;
    Ok(out)
}

/// Shuts the runtime down after an interrupt, giving blocking cleanup (snapshot removal) a
/// moment, and returns exit code 130.
pub fn interrupted(runtime: tokio::runtime::Runtime) -> ExitCode {
    runtime.shutdown_timeout(Duration::from_secs(10));
    eprintln!("interrupted");
    ExitCode::from(INTERRUPTED)
}
