//! `kiln build`: build an image from a Dockerfile and a context.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use kiln_builder_core::graph::Network;
use kiln_builder_core::image::Platform;
use kiln_builder_core::plan::{Entitlements, PlanOptions};
use kiln_builder_core::progress::StepLogLimit;
use kiln_builder_core::{BuildRequest, Builder, BuilderOptions, ExecutorChoice};
use miette::{IntoDiagnostic, WrapErr, miette};

use crate::commands::export::Output;
use crate::commands::flags;
use crate::progress::{PlainRenderer, ProgressMode, event_json};
use crate::tty_progress::TtyRenderer;
use kiln_builder_core::secret::Secret;

/// Arguments of `kiln build`.
#[derive(Debug, Args)]
#[command(
    after_help = "Differences from `docker build`: there is no daemon, images go to kiln's \
    store (see --root; `kiln images` lists them); RUN steps reach the network from a \
    namespace of their own, not the host's loopback services (--network=host for those); other platforms' RUN steps need binfmt_misc emulators (qemu-user-static); -o type=image only tags the store. `# syntax=` \
    frontend images are not run: `docker/dockerfile:1.x` is kiln's own frontend, others need \
    --ignore-syntax. See docs/differences-from-docker.md. The context \
    `-` reads the Dockerfile from standard input and builds without a context."
)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`) for the image; repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]", value_parser = flags::tag)]
    tags: Vec<String>,

    /// The Dockerfile (default: PATH/Dockerfile; may lie outside the context); `-` reads stdin.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,

    /// A build argument `KEY=VALUE`, or `KEY` to take the value from the environment; repeatable.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]", value_parser = flags::build_arg)]
    build_args: Vec<flags::BuildArg>,

    /// Build this stage (and what it needs) instead of the last one.
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,

    /// Do not use the cache (results are still recorded for later builds).
    #[arg(long)]
    no_cache: bool,

    /// Do not use the cache for the steps of this stage (name or index); repeatable.
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    no_cache_filter: Vec<String>,

    /// Target platforms, comma-separated (`linux/arm64`, `linux/amd64,linux/arm64`); the host's
    /// by default. Several build one image each under an image index, which the tags name.
    #[arg(long, value_name = "OS/ARCH[/VARIANT],...", value_parser = parse_platforms)]
    platform: Option<PlatformList>,

    /// After the build, say for each step that missed the cache why, in plain words (on stderr;
    /// `kiln cache explain` shows it again later).
    #[arg(long)]
    explain_cache: bool,

    /// A label `KEY=VALUE` for the image; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = flags::label)]
    labels: Vec<(String, String)>,

    /// Network for RUN steps: `default` (outbound network in a namespace of the step's own),
    /// `none` (loopback only) or `host`. `RUN --network=` in the Dockerfile overrides it per step
    /// (`host` there needs `--allow network.host`).
    #[arg(long, value_enum, value_name = "MODE", default_value = "default")]
    network: NetworkArg,

    /// Grant the Dockerfile a privilege beyond the sandbox; repeatable. `security.insecure` lets
    /// `RUN --security=insecure` run with every capability and no system-call filter;
    /// `network.host` lets `RUN --network=host` use the host's network.
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_parser = ["security.insecure", "network.host"])]
    allow: Vec<String>,
    /// A named context, the only way a build reads local files besides its context:
    /// `NAME=DIR` (a directory, read like the context), `NAME=oci-layout://DIR[:TAG]` (or
    /// `@sha256:DIGEST`: an image of an OCI layout) or `NAME=docker-image://REF` (an image).
    /// The Dockerfile names it as `FROM NAME`, `COPY --from=NAME` or `RUN --mount=from=NAME`;
    /// it overrides a stage or image of that name. Repeatable.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    build_contexts: Vec<String>,

    /// An extra `/etc/hosts` line for RUN steps, `NAME:IP`; repeatable.
    #[arg(long = "add-host", value_name = "NAME:IP", value_parser = flags::add_host)]
    add_hosts: Vec<String>,

    /// Size of `/dev/shm` in RUN steps (`128m`, `1g`; default 64m).
    #[arg(long = "shm-size", value_name = "SIZE", value_parser = flags::shm_size)]
    shm_size: Option<String>,

    /// A resource limit for RUN steps, `NAME=SOFT[:HARD]` (`nofile=1024:2048`, `-1` for
    /// unlimited); repeatable.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]", value_parser = flags::ulimit)]
    ulimits: Vec<String>,

    /// A secret `id=ID,src=PATH` or `id=ID,env=VAR`, for `RUN --mount=type=secret`; repeatable.
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR", value_parser = flags::secret)]
    secrets: Vec<flags::SecretFlag>,

    /// An SSH agent for `RUN --mount=type=ssh`: `default` (from $SSH_AUTH_SOCK) or
    /// `ID=SOCKET`; repeatable. Only agent sockets are accepted, not key files.
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET]", value_parser = flags::ssh)]
    ssh: Vec<flags::SshFlag>,

    /// Also write the image out (Docker's syntax): `type=oci,dest=FILE` (OCI archive;
    /// `tar=false` for a directory), `type=docker,dest=FILE` (docker-archive),
    /// `type=local,dest=DIR` (the rootfs), `type=tar,dest=FILE` (the rootfs as a tar),
    /// `type=image,name=NAME` (tags in the store), `type=registry,name=NAME` (tags and pushes,
    /// as --push). `dest=-` writes a tar to stdout.
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH", value_parser = flags::output)]
    outputs: Vec<Output>,

    /// Progress on stderr: `auto` (tty on a terminal, else plain), `tty` (plain when stderr is
    /// not a terminal), `plain`, `json` (one event per line) or `quiet`.
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE")]
    progress: ProgressMode,

    /// Print only the image id (the config digest) on stdout; no progress or summary.
    #[arg(short, long)]
    quiet: bool,

    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,

    /// Write build metadata as JSON (`containerimage.digest`, the pushed one when pushed,
    /// `containerimage.config.digest`, `containerimage.descriptor`, `image.name`,
    /// `buildx.build.provenance` with --provenance) to this file.
    #[arg(long = "metadata-file", value_name = "FILE")]
    metadata_file: Option<PathBuf>,

    /// Run RUN steps with this OCI runtime (e.g. `runc`) instead of kiln's built-in sandbox.
    #[arg(long, value_name = "PATH")]
    runtime: Option<PathBuf>,

    /// Pull base images from their registries even when the store has them.
    #[arg(long)]
    pull: bool,

    /// Build with kiln's own Dockerfile frontend even when `# syntax=` (or the BUILDKIT_SYNTAX
    /// build arg) names another frontend image, which kiln cannot run. `docker/dockerfile:1.x`
    /// needs no flag: kiln's frontend follows BuildKit's syntax 1.x.
    #[arg(long)]
    ignore_syntax: bool,

    /// Push the image to the registry of every -t tag after the build (= `-o type=registry`).
    #[arg(long)]
    push: bool,

    /// Load the image into Docker (`docker load`) or, without docker, Podman (`podman load`)
    /// after the build, streamed as a docker-archive (one platform only).
    #[arg(long)]
    load: bool,

    /// An annotation `[TYPE:]KEY=VALUE` (BuildKit's syntax): TYPE is `manifest` (default),
    /// `index`, `manifest-descriptor` or `index-descriptor`, optionally with `[PLATFORM,...]`
    /// to annotate those platforms' images only; index annotations make a single platform's
    /// pushed image an index. Repeatable.
    #[arg(long = "annotation", value_name = "[TYPE:]KEY=VALUE", value_parser = flags::annotation)]
    annotations: Vec<String>,

    /// Attach SLSA provenance (an in-toto statement) to each platform's image: `mode=min` (the
    /// default: builder, Dockerfile and base image digests) or `mode=max` (also build args,
    /// target and the ids of secrets; never their values). Pushed as BuildKit pushes it: one
    /// attestation manifest per image in the index. `kiln inspect --attestations` shows it.
    #[arg(long, value_name = "mode=min|max", num_args = 0..=1, default_missing_value = "mode=min", value_parser = flags::provenance)]
    provenance: Option<flags::Provenance>,

    /// Attach an SPDX 2.3 SBOM that kiln makes from each image's package databases (dpkg,
    /// apk, Python dist-info, node_modules), as BuildKit attaches its scanner's.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    sbom: Option<bool>,

    /// Import cache records and layers: `type=registry,ref=REF` (a cache, or an image built
    /// with `--cache-to type=inline`; a bare `REF` is the same), `type=local,src=DIR[,tag=TAG]`
    /// (an OCI layout written by `--cache-to type=local`); repeatable. A cache that cannot be
    /// read is a warning.
    #[arg(long = "cache-from", value_name = "type=registry,ref=REF|type=local,src=DIR", value_parser = flags::cache_from)]
    cache_from: Vec<kiln_builder_core::cache_transfer::CacheSource>,

    /// Export cache records and layers after the build (every platform's): `type=registry,ref=REF`,
    /// `type=local,dest=DIR[,tag=TAG]` (an OCI layout) or `type=inline` (in the image's config,
    /// for `--cache-from IMAGE`); `mode=min` (default: the steps that made the image) or
    /// `mode=max` (every stage's); `ignore-error=true` makes a failed export a warning. Repeatable.
    #[arg(long = "cache-to", value_name = "type=TYPE,...[,mode=min|max]", value_parser = flags::cache_to)]
    cache_to: Vec<kiln_builder_core::cache_transfer::CacheExport>,

    /// Show at most this many bytes of each RUN step's output, then "output clipped" (the step
    /// keeps running); `-1` shows everything. A failing step's last lines are always reported.
    #[arg(
        long = "step-log-max-size",
        env = "KILN_STEP_LOG_MAX_SIZE",
        value_name = "BYTES",
        default_value = "2097152",
        allow_negative_numbers = true,
        value_parser = StepLogLimit::parse
    )]
    step_log_max_size: StepLogLimit,

    #[command(flatten)]
    push_flags: crate::commands::push::PushFlags,

    #[command(flatten)]
    registry: crate::commands::registry::RegistryArgs,

    /// The build context directory, or `-` for a Dockerfile on stdin and no context.
    #[arg(value_name = "PATH|-")]
    context: PathBuf,
}

/// `--network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkArg {
    /// Loopback only: a hermetic build.
    None,
    /// Outbound network with DNS in a namespace of the step's own (the host's loopback services
    /// are not reachable); the host's network where that is not available.
    Default,
    /// The host's network, its loopback services included.
    Host,
}

/// A `--platform` list.
#[derive(Debug, Clone)]
pub struct PlatformList(pub Vec<Platform>);

fn parse_platforms(s: &str) -> Result<PlatformList, String> {
    Platform::parse_list(s).map(PlatformList)
}

/// Reads a `--secret`'s value.
fn read_secret(flag: &flags::SecretFlag) -> miette::Result<(String, Secret)> {
    let value = match &flag.source {
        flags::SecretSource::File(path) => std::fs::read(path)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot read secret file {}", path.display()))?,
        flags::SecretSource::Env(var) => std::env::var(var)
            .map_err(|_| {
                miette!(
                    "--secret id={}: environment variable {var} is not set",
                    flag.id
                )
            })?
            .into_bytes(),
    };
    Ok((flag.id.clone(), Secret::new(value)))
}

/// The agent socket of an `--ssh`, which must be a socket.
fn ssh_socket(flag: &flags::SshFlag) -> miette::Result<(String, PathBuf)> {
    let id = &flag.id;
    let path = match &flag.socket {
        Some(p) => p.clone(),
        None => std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| miette!("--ssh {id} names no socket and $SSH_AUTH_SOCK is not set"))?,
    };
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(&path)
        .into_diagnostic()
        .wrap_err_with(|| format!("--ssh {id}: cannot use {}", path.display()))?;
    if !meta.file_type().is_socket() {
        return Err(miette!(
            "--ssh {id}: {} is not an SSH agent socket (key files are not supported; start \
             ssh-agent and ssh-add the key)",
            path.display()
        ));
    }
    Ok((id.clone(), path))
}

/// Runs `kiln build`.
pub fn run(args: &BuildArgs, root: &Path) -> miette::Result<ExitCode> {
    let no_context = args.context.as_os_str() == "-";
    let stdin_dockerfile = no_context || args.file.as_ref().is_some_and(|f| f.as_os_str() == "-");
    let (dockerfile_name, dockerfile, dockerfile_path) = match &args.file {
        _ if stdin_dockerfile => {
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
    };
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        // A bare NAME takes its value from the environment, and is left out when unset (Docker).
        let value = a.value.clone().or_else(|| std::env::var(&a.name).ok());
        if let Some(v) = value {
            build_args.insert(a.name.clone(), v);
        }
    }
    let labels: BTreeMap<String, String> = args.labels.iter().cloned().collect();
    let network = match args.network {
        NetworkArg::None => Network::None,
        NetworkArg::Default => Network::Default,
        NetworkArg::Host => Network::Host,
    };
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
    let mut contexts = kiln_builder_core::context::BuildContexts::new();
    for spec in &args.build_contexts {
        let (name, ctx) = kiln_builder_core::context::BuildContexts::parse_spec(spec)
            .map_err(|e| miette!("{e}"))?;
        contexts.insert(&name, ctx).map_err(|e| miette!("{e}"))?;
    }
    let secrets = args
        .secrets
        .iter()
        .map(read_secret)
        .collect::<miette::Result<BTreeMap<_, _>>>()?;
    let ssh = args
        .ssh
        .iter()
        .map(ssh_socket)
        .collect::<miette::Result<BTreeMap<_, _>>>()?;
    let outputs = &args.outputs;
    let to_stdout = outputs.iter().filter(|o| o.is_stdout()).count();
    if to_stdout > 1 || (to_stdout == 1 && args.quiet) {
        return Err(miette!(
            "only one thing can go to standard output: one -o dest=- and no --quiet"
        ));
    }
    let platforms = args.platform.clone().map(|p| p.0).unwrap_or_default();
    if platforms.len() > 1
        && let Some(o) = outputs.iter().find(|o| {
            !matches!(
                o,
                Output::OciArchive(_)
                    | Output::OciDir(_)
                    | Output::Image(_)
                    | Output::Registry(_)
                    | Output::Local(_)
            )
        })
    {
        return Err(miette!(
            "{} needs a single platform, and --platform names {}: pick one with --platform, or use -o type=oci or type=local for all of them",
            o.kind(),
            platforms.len()
        ));
    }
    if args.load && platforms.len() > 1 {
        return Err(miette!(
            "--load needs a single platform, and --platform names {}: pick one with --platform, or push the index (--push)",
            platforms.len()
        ));
    }
    let mut tags = args.tags.clone();
    let mut push = args.push;
    for o in outputs {
        match o {
            Output::Image(names) => tags.extend(names.iter().cloned()),
            Output::Registry(names) => {
                tags.extend(names.iter().cloned());
                push = true;
            }
            _ => {}
        }
    }
    if push && tags.is_empty() {
        return Err(miette!(
            "--push and -o type=registry need a name to push to (-t NAME[:TAG] or name=)"
        ));
    }
    let mut annotations = kiln_builder_core::image::Annotations::default();
    for a in &args.annotations {
        annotations.add(a).map_err(|e| miette!("{e}"))?;
    }
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
        context: (!no_context).then(|| args.context.clone()),
        plan: PlanOptions {
            build_args,
            target: args.target.clone(),
            labels,
            network,
            allow,
            contexts,
            step_settings,
            ignore_syntax: args.ignore_syntax,
            ..PlanOptions::default()
        },
        tags,
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        source_date_epoch,
        secrets,
        ssh,
        pull: args.pull,
        cache_from: args.cache_from.clone(),
        cache_to: args.cache_to.clone(),
        annotations,
        provenance: args.provenance.and_then(|p| p.0),
        sbom: args.sbom.unwrap_or(false),
        step_log_limit: args.step_log_max_size,
        platforms,
    };
    // Checked before the build, so that a build is not wasted.
    let loader = match args.load {
        true => Some(super::load_into::find_loader()?),
        false => None,
    };
    let executor = match &args.runtime {
        Some(path) => ExecutorChoice::Runc { path: path.clone() },
        None => ExecutorChoice::Sandbox { helper: None },
    };
    let builder = Builder::new(BuilderOptions {
        root: root.to_path_buf(),
        executor,
        registry: args.registry.options(),
    })
    .into_diagnostic()?;

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
    let (sink, mut rx) = kiln_builder_core::progress::channel();
    let render = runtime.spawn(async move {
        // One write per event: output lines are batched, not written one by one.
        let stderr = std::io::BufWriter::with_capacity(128 * 1024, std::io::stderr());
        let mut plain = PlainRenderer::new(stderr);
        let mut tty =
            (mode == ProgressMode::Tty).then(|| TtyRenderer::new(crate::render::colors()));
        while let Some(ev) = rx.recv().await {
            match mode {
                ProgressMode::Tty => {
                    if let Some(t) = tty.as_mut() {
                        t.event(&ev);
                    }
                }
                ProgressMode::Plain | ProgressMode::Auto => plain.event(&ev),
                ProgressMode::Json => eprintln!("{}", event_json(&ev)),
                ProgressMode::Quiet => {}
            }
        }
        tty
    });
    let built = crate::interrupt::run_until_interrupted(&runtime, builder.build(request, sink))?;
    // The build future is gone, and with it every sender: the renderer drains and ends. The
    // channel is bounded, so little is left to draw.
    let rendered = runtime
        .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(5), render).await });
    let mut tty = match rendered {
        Ok(Ok(r)) => r,
        _ => None,
    };
    if let Some(t) = tty.as_mut() {
        t.finish(!matches!(built, Some(Ok(_))));
    }
    let output = match built {
        None => return Ok(crate::interrupt::interrupted(runtime)),
        Some(Ok(o)) => o,
        Some(Err(e)) => {
            crate::render::print_build_error(&e, &dockerfile_name, &dockerfile);
            return Ok(ExitCode::from(1));
        }
    };
    let all_tags: Vec<String> = output
        .tags
        .iter()
        .map(|t| kiln_builder_core::worker::normalize_reference(t))
        .collect();
    // The outputs and the push read the image's blobs: no collection meanwhile.
    let lease = crate::commands::push::lease(builder.store())?;
    let delivery = super::build_output::Delivery {
        outputs,
        loader,
        push,
        push_flags: &args.push_flags,
        show_progress: mode == ProgressMode::Tty,
        quiet: args.quiet,
    };
    let pushed = super::build_output::deliver(&builder, &output, &all_tags, &delivery)?;
    drop(lease);
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
    if let Some(f) = &args.metadata_file {
        super::build_output::write_metadata(f, &output, pushed, &all_tags)?;
    }
    if !args.quiet {
        super::build_output::print_summary(builder.store(), &output, started, &all_tags);
    }
    if to_stdout == 0 {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}
