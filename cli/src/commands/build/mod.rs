//! `kiln build`: build an image from a Dockerfile and a context, then deliver it (outputs,
//! `--load`, `--push`) through the library's `deliver::deliver`.

mod args;
mod report;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use kiln_builder_core::builder::{Entitlements, PlanOptions};
use kiln_builder_core::deliver::{Delivery, Loader};
use kiln_builder_core::secret;
use kiln_builder_core::{BuildRequest, Builder, BuilderOptions, ExecutorChoice};
use miette::{IntoDiagnostic, WrapErr, miette};

pub use args::BuildArgs;

use crate::commands::flags;
use crate::progress::ProgressMode;

/// Reads a `--secret`'s value.
fn read_secret(flag: &flags::SecretFlag) -> miette::Result<(String, secret::Secret)> {
    let value = match &flag.source {
        flags::SecretSource::File(path) => secret::secret_from_file(path)?,
        flags::SecretSource::Env(var) => secret::secret_from_env(&flag.id, var)?,
    };
    Ok((flag.id.clone(), value))
}

/// The request the flags describe (the Dockerfile already read).
fn request(
    args: &BuildArgs,
    dockerfile: String,
    dockerfile_path: Option<std::path::PathBuf>,
    no_context: bool,
    delivery: &Delivery,
    agents: &mut Vec<kiln_builder_core::ssh_keys::KeyAgent>,
) -> miette::Result<BuildRequest> {
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        // A bare NAME takes its value from the environment, and is left out when unset (Docker).
        if let Some(v) = a.value.clone().or_else(|| std::env::var(&a.name).ok()) {
            build_args.insert(a.name.clone(), v);
        }
    }
    let mut allow = Entitlements::default();
    for a in &args.allow {
        allow.grant(a).map_err(|e| miette!("--allow: {e}"))?;
    }
    let mut step_settings = kiln_builder_core::exec::StepSettings::default();
    for h in &args.add_hosts {
        step_settings
            .add_host(h)
            .map_err(|e| miette!("--add-host {e}"))?;
    }
    if let Some(size) = &args.shm_size {
        step_settings
            .set_shm_size(size)
            .map_err(|e| miette!("--shm-size {e}"))?;
    }
    for u in &args.ulimits {
        step_settings
            .add_ulimit(u)
            .map_err(|e| miette!("--ulimit {e}"))?;
    }
    let mut contexts = kiln_builder_core::builder::BuildContexts::new();
    for spec in &args.build_contexts {
        let (name, ctx) = kiln_builder_core::builder::BuildContexts::parse_spec(spec)
            .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?;
        contexts
            .insert(&name, ctx)
            .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?;
    }
    let secrets = args
        .secrets
        .iter()
        .map(read_secret)
        .collect::<miette::Result<_>>()?;
    let mut ssh = std::collections::BTreeMap::new();
    for f in &args.ssh {
        use std::os::unix::fs::FileTypeExt;
        let socket = match f.paths.as_slice() {
            [] => secret::ssh_agent_socket(&f.id, None)?,
            [one] if std::fs::metadata(one).is_ok_and(|m| m.file_type().is_socket()) => {
                secret::ssh_agent_socket(&f.id, Some(one))?
            }
            // Key files: kiln serves them as an agent of its own for the build's lifetime.
            files => {
                let agent = kiln_builder_core::ssh_keys::KeyAgent::start(&f.id, files, None)?;
                let socket = agent.socket();
                agents.push(agent);
                socket
            }
        };
        ssh.insert(f.id.clone(), socket);
    }
    let mut annotations = kiln_builder_core::image::Annotations::default();
    for a in &args.annotations {
        annotations
            .add(a)
            .map_err(|e| miette!("{e}", e = kiln_builder_core::error::chain(&e)))?;
    }
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.parse::<i64>()
                .map_err(|_| miette!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        ),
        _ => None,
    };
    let mut tags = args.tags.clone();
    tags.extend(delivery.extra_tags());
    Ok({
        let mut v = BuildRequest::default();
        v.dockerfile = dockerfile;
        v.dockerfile_path = dockerfile_path;
        v.context = (!no_context).then(|| args.context.clone());
        v.plan = PlanOptions {
            build_args,
            target: args.target.clone(),
            labels: args.labels.iter().cloned().collect(),
            network: args.network,
            allow,
            contexts,
            step_settings,
            ignore_syntax: args.ignore_syntax,
            ..PlanOptions::default()
        };
        v.tags = tags;
        v.no_cache = args.no_cache;
        v.no_cache_filter = args.no_cache_filter.clone();
        v.source_date_epoch = source_date_epoch;
        v.secrets = secrets;
        v.ssh = ssh;
        v.pull = args.pull;
        v.cache_from = args.cache_from.clone();
        v.cache_to = args.cache_to.clone();
        v.annotations = annotations;
        v.provenance = args.provenance.and_then(|p| p.0);
        v.sbom = args.sbom.unwrap_or(false);
        v.step_log_limit = args.step_log_max_size;
        v.platforms = args.platform.clone().map(|p| p.0).unwrap_or_default();
        v
    })
}

/// The Dockerfile: its name for messages, its text and its path (none from stdin).
fn dockerfile(args: &BuildArgs) -> miette::Result<(String, String, Option<std::path::PathBuf>)> {
    let no_context = args.context.as_os_str() == "-";
    let stdin = no_context || args.file.as_ref().is_some_and(|f| f.as_os_str() == "-");
    Ok(match &args.file {
        _ if stdin => {
            if no_context && args.file.as_ref().is_some_and(|f| f.as_os_str() != "-") {
                return Err(miette!(
                    "the context `-` reads the Dockerfile from standard input; -f cannot name another"
                ));
            }
            let (n, t) = super::parse::read_dockerfile(Path::new("-"))?;
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
    })
}

/// Runs `kiln build`.
pub fn run(args: &BuildArgs, root: &Path) -> miette::Result<ExitCode> {
    let no_context = args.context.as_os_str() == "-";
    let (dockerfile_name, dockerfile, dockerfile_path) = dockerfile(args)?;
    let to_stdout = args.outputs.iter().filter(|o| o.is_stdout()).count();
    if to_stdout > 1 || (to_stdout == 1 && args.quiet) {
        return Err(miette!(
            "only one thing can go to standard output: one -o dest=- and no --quiet"
        ));
    }
    let mut delivery = Delivery::new(args.outputs.clone());
    if args.push || delivery.push.is_some() {
        delivery.push = Some(args.push_flags.options());
    }
    // Agents serving `--ssh id=KEYFILE` keys, until the build ends.
    let mut agents = Vec::new();
    let request = request(
        args,
        dockerfile.clone(),
        dockerfile_path,
        no_context,
        &delivery,
        &mut agents,
    )?;
    // A combination of flags BuildKit refuses: a usage error, before anything is built.
    let attestations = request.provenance.is_some() || request.sbom;
    if let Err(e) = request
        .annotations
        .check_index(request.platforms.len(), attestations)
    {
        crate::render::print_report(&miette!("{e}"));
        return Ok(ExitCode::from(2));
    }
    // Checked before the build, so that a build is not wasted.
    delivery.check(request.platforms.len(), &request.tags, args.load)?;
    if args.load {
        delivery.load = Some(Loader::find()?);
    }
    let executor = match &args.runtime {
        Some(path) => ExecutorChoice::Runc { path: path.clone() },
        None => ExecutorChoice::Sandbox { helper: None },
    };
    let mut options = BuilderOptions::new(root);
    options.executor = executor;
    options.registry = args.registry.options();
    let builder = Builder::new(options).into_diagnostic()?;

    let mode = match (args.quiet, args.progress) {
        (true, _) => ProgressMode::Quiet,
        (false, ProgressMode::Auto) | (false, ProgressMode::Tty) => {
            if std::io::stderr().is_terminal() {
                ProgressMode::Tty
            } else {
                ProgressMode::Plain
            }
        }
        (false, m) => m,
    };
    let started = Instant::now();
    let runtime = crate::interrupt::runtime()?;
    let (sink, render) = report::render_events(&runtime, mode);
    let built = crate::interrupt::run_until_interrupted(&runtime, builder.build(request, sink))?;
    report::finish_events(&runtime, render, !matches!(built, Some(Ok(_))));
    let output = match built {
        None => return Ok(crate::interrupt::interrupted(runtime)),
        Some(Ok(o)) => o,
        Some(Err(e)) => {
            crate::render::print_build_error(&e, &dockerfile_name, &dockerfile);
            return Ok(ExitCode::from(1));
        }
    };
    let bars = report::DeliveryBars::new(mode == ProgressMode::Tty, delivery.push.is_some());
    let delivered = runtime.block_on(kiln_builder_core::deliver::deliver(
        &builder,
        &output,
        &delivery,
        Some(bars.progress()),
    ));
    bars.finish();
    let delivered = delivered?;
    if let (Some(loaded), Some(loader)) = (&delivered.loaded, &delivery.load) {
        eprintln!("loaded into {}: {loaded}", loader.name());
    }
    if let Some(pushed) = &delivered.pushed
        && !args.quiet
    {
        super::push::print_pushed(pushed);
    }
    runtime.block_on(builder.auto_gc());
    if args.explain_cache {
        let _ = report::print_explanation(&output);
    }
    let id = output.config_digest.to_string();
    if let Some(f) = &args.iidfile {
        std::fs::write(f, &id)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {}", f.display()))?;
    }
    if let Some(f) = &args.metadata_file {
        let pushed = delivered.pushed.as_ref().map(|p| p.digest);
        kiln_builder_core::deliver::write_metadata(f, &output, pushed)?;
    }
    if !args.quiet {
        report::print_summary(builder.store(), &output, started);
    }
    if to_stdout == 0 {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}
