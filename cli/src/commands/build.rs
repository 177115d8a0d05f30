//! `kiln build`: build an image from a Dockerfile and a context.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kiln_builder_core::graph::Network;
use kiln_builder_core::plan::PlanOptions;
use kiln_builder_core::progress::EventSink;
use kiln_builder_core::{BuildRequest, Builder, BuilderOptions, ExecutorChoice};
use miette::{IntoDiagnostic, WrapErr, miette};

use crate::progress::{PlainRenderer, ProgressMode, event_json};

/// Arguments of `kiln build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`) for the image; repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,

    /// The Dockerfile (default: PATH/Dockerfile); `-` reads it from standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,

    /// A build argument `KEY=VALUE`, or `KEY` to take the value from the environment; repeatable.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_args: Vec<String>,

    /// Build this stage (and what it needs) instead of the last one.
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,

    /// Do not use the cache (results are still recorded for later builds).
    #[arg(long)]
    no_cache: bool,

    /// After the build, say for each step that missed the cache why, in plain words (on stderr;
    /// `kiln cache explain` shows it again later).
    #[arg(long)]
    explain_cache: bool,

    /// A label `KEY=VALUE` for the image; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,

    /// Network for RUN steps: `none` (the default, as in BuildKit's sandbox) or `host`.
    #[arg(long, value_name = "MODE", default_value = "none")]
    network: String,

    /// A secret `id=ID,src=PATH` or `id=ID,env=VAR`, for `RUN --mount=type=secret`; repeatable.
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR")]
    secrets: Vec<String>,

    /// Also write the image out: `type=oci,dest=FILE` (an OCI archive; `tar=false` for a
    /// directory), `type=docker,dest=FILE` (docker-archive), `type=local,dest=DIR` (the rootfs).
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH")]
    outputs: Vec<String>,

    /// Progress output on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,

    /// Print only the image id (the config digest) on stdout.
    #[arg(short, long)]
    quiet: bool,

    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,

    /// Run RUN steps with this OCI runtime (e.g. `runc`) instead of kiln's built-in sandbox.
    #[arg(long, value_name = "PATH")]
    runtime: Option<PathBuf>,

    /// The build context directory.
    #[arg(value_name = "PATH")]
    context: PathBuf,
}

pub(crate) fn parse_kv(s: &str, what: &str) -> miette::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(miette!("invalid {what} {s:?}: expected KEY=VALUE")),
    }
}

fn parse_secret(spec: &str) -> miette::Result<(String, Vec<u8>)> {
    let mut id = None;
    let mut value = None;
    for part in spec.split(',') {
        let (k, v) = parse_kv(part, "--secret field")?;
        match k.as_str() {
            "id" => id = Some(v),
            "src" | "source" => {
                value = Some(
                    std::fs::read(&v)
                        .into_diagnostic()
                        .wrap_err_with(|| format!("cannot read secret file {v}"))?,
                )
            }
            "env" => {
                value = Some(
                    std::env::var(&v)
                        .map_err(|_| miette!("secret environment variable {v} is not set"))?
                        .into_bytes(),
                )
            }
            "type" => {}
            other => {
                return Err(miette!(
                    "unknown --secret field {other:?} (expected id, src or env)"
                ));
            }
        }
    }
    let id = id.ok_or_else(|| miette!("--secret {spec:?} needs id="))?;
    // Docker's default: the secret comes from the environment variable named like its id.
    let value = match value {
        Some(v) => v,
        None => std::env::var(&id)
            .map_err(|_| miette!("--secret id={id} has no src= or env=, and ${id} is not set"))?
            .into_bytes(),
    };
    Ok((id, value))
}

/// Runs `kiln build`.
pub fn run(args: &BuildArgs, root: &Path) -> miette::Result<ExitCode> {
    let (dockerfile_name, dockerfile, dockerfile_path) = match &args.file {
        Some(f) if f.as_os_str() == "-" => {
            let (n, t) = super::parse::read_dockerfile(f)?;
            (n, t, None)
        }
        Some(f) => {
            let (n, t) = super::parse::read_dockerfile(f)?;
            (n, t, Some(f.clone()))
        }
        None => {
            let f = args.context.join("Dockerfile");
            let (n, t) = super::parse::read_dockerfile(&f)?;
            (n, t, Some(f))
        }
    };
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        match a.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    build_args.insert(a.clone(), v);
                }
            }
        }
    }
    let labels = args
        .labels
        .iter()
        .map(|l| parse_kv(l, "--label"))
        .collect::<miette::Result<BTreeMap<_, _>>>()?;
    let network = match args.network.as_str() {
        "none" | "default" => Network::None,
        "host" => Network::Host,
        other => return Err(miette!("--network={other} is not supported (none or host)")),
    };
    let secrets = args
        .secrets
        .iter()
        .map(|s| parse_secret(s))
        .collect::<miette::Result<BTreeMap<_, _>>>()?;
    let outputs = args
        .outputs
        .iter()
        .map(|o| crate::commands::export::parse_output(o))
        .collect::<miette::Result<Vec<_>>>()?;
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.parse::<i64>()
                .map_err(|_| miette!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        ),
        _ => None,
    };
    let request = BuildRequest {
        dockerfile: dockerfile.clone(),
        dockerfile_path,
        context: Some(args.context.clone()),
        plan: PlanOptions {
            build_args,
            target: args.target.clone(),
            labels,
            network,
            ..PlanOptions::default()
        },
        tags: args.tags.clone(),
        no_cache: args.no_cache,
        source_date_epoch,
        secrets,
    };
    let executor = match &args.runtime {
        Some(path) => ExecutorChoice::Runc { path: path.clone() },
        None => ExecutorChoice::Sandbox { helper: None },
    };
    let builder = Builder::new(BuilderOptions {
        root: root.to_path_buf(),
        executor,
    })
    .map_err(|e| miette!("{e}"))?;

    let mode = match (args.quiet, args.progress) {
        (true, _) => ProgressMode::Quiet,
        (false, ProgressMode::Auto) | (false, ProgressMode::Tty) => {
            // The live display is not built yet; plain lines work everywhere.
            let _ = std::io::stderr().is_terminal();
            ProgressMode::Plain
        }
        (false, m) => m,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    let result = runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let render = tokio::spawn(async move {
            let mut plain = PlainRenderer::new(std::io::stderr());
            while let Some(ev) = rx.recv().await {
                match mode {
                    ProgressMode::Plain | ProgressMode::Auto | ProgressMode::Tty => {
                        plain.event(&ev)
                    }
                    ProgressMode::Json => eprintln!("{}", event_json(&ev)),
                    ProgressMode::Quiet => {}
                }
            }
        });
        let out = builder.build(request, EventSink::new(tx)).await;
        let _ = render.await;
        out
    });
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            crate::render::print_build_error(&e, &dockerfile_name, &dockerfile);
            return Ok(ExitCode::from(1));
        }
    };
    for o in &outputs {
        crate::commands::export::write_output(builder.store(), &output.manifest, o, &output.tags)?;
    }
    runtime.block_on(builder.auto_gc());
    if args.explain_cache {
        let explanation = kiln_builder_core::cache::BuildExplanation {
            id: output.build_id.clone(),
            time: 0,
            dockerfile: None,
            steps: output.explanations.clone(),
        };
        let _ =
            crate::commands::cache::print_explanation(&mut std::io::stderr().lock(), &explanation);
    }
    let id = output.config_digest.to_string();
    if let Some(f) = &args.iidfile {
        std::fs::write(f, &id)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {}", f.display()))?;
    }
    if args.quiet {
        println!("{id}");
    } else {
        let cached = output.steps.iter().filter(|s| s.cached).count();
        eprintln!(
            "image {} (manifest {}), {} of {} steps cached",
            id,
            output.manifest.digest,
            cached,
            output.steps.len()
        );
        for t in &output.tags {
            eprintln!(
                "tagged {}",
                kiln_builder_core::worker::normalize_reference(t)
            );
        }
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}
