//! `kiln completions SHELL` and `kiln man`: generated from the clap definition, so they never
//! drift from the real flags.

use std::process::ExitCode;

use clap::Args;
use clap_complete::Shell;
use miette::IntoDiagnostic;

/// Arguments of `kiln completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

/// Arguments of `kiln man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `kiln.1` and one `kiln-COMMAND.1` per subcommand into this directory instead.
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

/// Prints the completion script.
pub fn run(args: &CompletionsArgs, mut cmd: clap::Command) -> miette::Result<ExitCode> {
    clap_complete::generate(args.shell, &mut cmd, "kiln", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Prints the man page, or writes all of them into a directory.
pub fn man(args: &ManArgs, cmd: clap::Command) -> miette::Result<ExitCode> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).into_diagnostic()?;
            clap_mangen::generate_to(cmd, dir).into_diagnostic()?;
        }
        None => {
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .into_diagnostic()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
