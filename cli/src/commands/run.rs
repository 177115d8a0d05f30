//! `kiln run --rm IMAGE [COMMAND...]`: a quick check of a built image. The container runs with
//! the same executor and isolation as RUN steps (namespaces, outbound network by default) on a
//! throw-away snapshot of the image; its output is passed through and its exit code returned.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kiln_builder_core::container::{BindMount, RunImageOptions};
use kiln_builder_core::exec::{ExitStatus, NetworkMode, OutputSink, Stdin, Stream};
use kiln_builder_core::{Builder, BuilderOptions, ExecutorChoice};
use kiln_dockerfile_parser::bytes::{from_os_str, to_os_str};
use miette::{IntoDiagnostic, miette};

/// Arguments of `kiln run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Differences from `docker run`: the container is always removed when it ends \
                  (`--rm` is accepted and implied); out of scope: detached containers (-d, and so \
                  `logs` and `stop`), names (--name), a pseudo-terminal (-t) and port publishing. \
                  `-i` passes kiln's standard input straight through. The command is PID 1; \
                  `--init` puts a reaper in front of it."
)]
pub struct RunArgs {
    /// Remove the container when it ends (always the case; accepted for compatibility).
    #[arg(long)]
    rm: bool,

    /// The platform to run from a multi-platform image (the host's by default); another
    /// platform's binaries run through a binfmt_misc emulator.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = super::flags::platform)]
    platform: Option<kiln_builder_core::image::Platform>,

    /// Keep standard input attached to the command.
    #[arg(short, long)]
    interactive: bool,

    /// Run a minimal init as PID 1 that reaps orphaned zombies, with the command as its child
    /// (otherwise the command is PID 1, as with `docker run`).
    #[arg(long)]
    init: bool,

    /// Set an environment variable `KEY=VALUE`, or `KEY` to copy it from kiln's environment.
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<OsString>,

    /// Bind mount a host path: `HOST:CONTAINER[:ro|rw]`.
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    volumes: Vec<String>,

    /// Working directory inside the container (created if missing).
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<OsString>,

    /// User to run as: `name`, `uid`, `name:group` or `uid:gid` (from the image's /etc/passwd).
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    user: Option<String>,

    /// Replace the image's ENTRYPOINT (an empty string clears it).
    #[arg(long, value_name = "COMMAND")]
    entrypoint: Option<String>,

    /// Network: `default` (outbound network in a namespace of the container's own, as docker's
    /// bridge), `none` (loopback only) or `host`.
    #[arg(long, value_name = "MODE", default_value = "default")]
    network: String,

    /// Run with this OCI runtime (e.g. `runc`) instead of kiln's built-in sandbox.
    #[arg(long, value_name = "PATH")]
    runtime: Option<PathBuf>,

    /// The image: a name or an id.
    #[arg(value_name = "IMAGE")]
    image: String,

    /// The command and its arguments (replacing the image's CMD).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

fn parse_volume(spec: &str) -> miette::Result<BindMount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, ctr, readonly) = match parts.as_slice() {
        [h, c] => (*h, *c, false),
        [h, c, "ro"] => (*h, *c, true),
        [h, c, "rw"] => (*h, *c, false),
        [_, _, other] => {
            return Err(miette!(
                "invalid -v option {other:?} in {spec:?} (ro or rw)"
            ));
        }
        _ => return Err(miette!("invalid -v {spec:?}: expected HOST:CONTAINER[:ro]")),
    };
    if host.is_empty() || !ctr.starts_with('/') {
        return Err(miette!(
            "invalid -v {spec:?}: the container path must be absolute"
        ));
    }
    Ok(BindMount {
        source: PathBuf::from(host),
        target: PathBuf::from(ctr),
        readonly,
    })
}

/// The exit code of `kiln run` for the command's status: its own code, or 128 + the signal.
fn exit_code(status: ExitStatus) -> ExitCode {
    match status {
        ExitStatus::Code(c) => ExitCode::from(u8::try_from(c & 0xff).unwrap_or(1)),
        ExitStatus::Signal(s) => ExitCode::from(u8::try_from(128 + (s & 0x7f)).unwrap_or(1)),
    }
}

/// Runs `kiln run`.
pub fn run(args: &RunArgs, root: &Path) -> miette::Result<ExitCode> {
    // Arguments, environment and working directory keep their bytes, UTF-8 or not.
    let text = |s: &std::ffi::OsStr| from_os_str(s).into_owned();
    let mut env = Vec::new();
    for e in &args.env {
        let e = text(e);
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => env.push((k.to_string(), v.to_string())),
            Some(_) => return Err(miette!("invalid -e {e:?}: expected KEY=VALUE")),
            None => {
                if let Some(v) = std::env::var_os(to_os_str(&e)) {
                    env.push((e.clone(), text(&v)));
                }
            }
        }
    }
    let binds = args
        .volumes
        .iter()
        .map(|v| parse_volume(v))
        .collect::<miette::Result<Vec<_>>>()?;
    let network = match args.network.as_str() {
        "none" => NetworkMode::None,
        "default" | "bridge" if kiln_builder_core::exec::user_mode_available() => {
            NetworkMode::Private
        }
        "default" | "bridge" => {
            eprintln!(
                "kiln: no slirp4netns found (or not root): the container uses the host's network"
            );
            NetworkMode::Host
        }
        "host" => NetworkMode::Host,
        other => {
            return Err(miette!(
                "--network={other} is not supported (default, none or host)"
            ));
        }
    };
    let stdin = if args.interactive {
        Stdin::Inherit
    } else {
        Stdin::Null
    };
    let entrypoint = args.entrypoint.as_ref().map(|e| {
        if e.is_empty() {
            Vec::new()
        } else {
            vec![e.clone()]
        }
    });
    let opts = RunImageOptions {
        image: args.image.clone(),
        command: args.command.iter().map(|a| text(a)).collect(),
        entrypoint,
        env,
        workdir: args.workdir.as_deref().map(text),
        user: args.user.clone(),
        binds,
        network,
        stdin,
        init: args.init,
        platform: args.platform.clone(),
    };
    let executor = match &args.runtime {
        Some(path) => ExecutorChoice::Runc { path: path.clone() },
        None => ExecutorChoice::Sandbox { helper: None },
    };
    // `kiln run` uses images already in the store (`kiln pull` fetches them): default registry
    // options.
    let mut options = BuilderOptions::new(root);
    options.executor = executor;
    let builder = Builder::new(options).into_diagnostic()?;
    let out = OutputSink::new(|stream, data| {
        // A closed pipe on our side must not stop the container; its output is dropped.
        let _ = match stream {
            Stream::Stdout => {
                let mut o = std::io::stdout().lock();
                o.write_all(data).and_then(|()| o.flush())
            }
            Stream::Stderr => std::io::stderr().lock().write_all(data),
        };
    });
    let runtime = crate::interrupt::runtime()?;
    let lease = crate::commands::push::lease(builder.store())?;
    let result = crate::interrupt::run_until_interrupted(&runtime, builder.run_image(opts, out))?;
    drop(lease);
    match result {
        None => Ok(crate::interrupt::interrupted(runtime)),
        Some(Ok(status)) => Ok(exit_code(status)),
        Some(Err(e)) => Err(e).into_diagnostic(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse() {
        assert_eq!(
            parse_volume("/a:/b:ro").unwrap(),
            BindMount {
                source: "/a".into(),
                target: "/b".into(),
                readonly: true
            }
        );
        assert!(!parse_volume("./a:/b").unwrap().readonly);
        assert!(parse_volume("/a:b").is_err());
        assert!(parse_volume("/a:/b:x").is_err());
        assert!(parse_volume("/a").is_err());
    }
}
