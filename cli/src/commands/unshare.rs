//! `kiln unshare`: a command inside kiln's user namespace, where the store's files have the
//! owners kiln gave them (as `buildah unshare`): to look at or remove a rootless store.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use clap::Args;

/// Arguments of `kiln unshare`.
#[derive(Debug, Args)]
pub struct UnshareArgs {
    /// The command and its arguments (default: `$SHELL`, else `/bin/sh`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// Runs `kiln unshare`; the process is already in the namespace (or root): it becomes the
/// command.
pub fn run(args: &UnshareArgs, root: &std::path::Path) -> miette::Result<ExitCode> {
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".to_owned());
    let (program, rest) = match args.command.split_first() {
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (shell, Vec::new()),
    };
    let err = std::process::Command::new(&program)
        .args(rest)
        .env("KILN_ROOT", root)
        .exec();
    Err(miette::miette!(
        "cannot run {program}: {err}",
        err = kiln_builder_core::error::chain(&err)
    ))
}
