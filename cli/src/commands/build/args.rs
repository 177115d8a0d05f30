//! `kiln build`'s flags.

use std::path::PathBuf;

use clap::Args;
use clap::builder::TypedValueParser;
use kiln_builder_core::builder::Network;
use kiln_builder_core::deliver::Output;
use kiln_builder_core::image::Platform;
use kiln_builder_core::progress::StepLogLimit;

use crate::commands::flags;
use crate::progress::ProgressMode;

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
    pub(crate) tags: Vec<String>,

    /// The Dockerfile (default: PATH/Dockerfile; may lie outside the context); `-` reads stdin.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,

    /// A build argument `KEY=VALUE`, or `KEY` to take the value from the environment; repeatable.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]", value_parser = flags::build_arg)]
    pub(crate) build_args: Vec<flags::BuildArg>,

    /// Build this stage (and what it needs) instead of the last one.
    #[arg(long, value_name = "STAGE")]
    pub(crate) target: Option<String>,

    /// Do not use the cache (results are still recorded for later builds).
    #[arg(long)]
    pub(crate) no_cache: bool,

    /// Do not use the cache for the steps of this stage (name or index); repeatable.
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub(crate) no_cache_filter: Vec<String>,

    /// Target platforms, comma-separated (`linux/arm64`, `linux/amd64,linux/arm64`); the host's
    /// by default. Several build one image each under an image index, which the tags name.
    #[arg(long, value_name = "OS/ARCH[/VARIANT],...", value_parser = parse_platforms)]
    pub(crate) platform: Option<PlatformList>,

    /// After the build, say for each step that missed the cache why, in plain words (on stderr;
    /// `kiln cache explain` shows it again later).
    #[arg(long)]
    pub(crate) explain_cache: bool,

    /// A label `KEY=VALUE` for the image; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = flags::label)]
    pub(crate) labels: Vec<(String, String)>,

    /// Network for RUN steps: `default` (outbound network in a namespace of the step's own),
    /// `none` (loopback only) or `host`. `RUN --network=` in the Dockerfile overrides it per step
    /// (`host` there needs `--allow network.host`).
    #[arg(
        long,
        value_name = "MODE",
        default_value = "default",
        value_parser = clap::builder::PossibleValuesParser::new(["none", "default", "host"])
            .try_map(|s| s.parse::<Network>())
    )]
    pub(crate) network: Network,

    /// Grant the Dockerfile a privilege beyond the sandbox; repeatable. `security.insecure` lets
    /// `RUN --security=insecure` run with every capability and no system-call filter;
    /// `network.host` lets `RUN --network=host` use the host's network.
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_parser = ["security.insecure", "network.host"])]
    pub(crate) allow: Vec<String>,
    /// A named context, the only way a build reads local files besides its context:
    /// `NAME=DIR` (a directory, read like the context), `NAME=oci-layout://DIR[:TAG]` (or
    /// `@sha256:DIGEST`: an image of an OCI layout) or `NAME=docker-image://REF` (an image).
    /// The Dockerfile names it as `FROM NAME`, `COPY --from=NAME` or `RUN --mount=from=NAME`;
    /// it overrides a stage or image of that name. Repeatable.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub(crate) build_contexts: Vec<String>,

    /// An extra `/etc/hosts` line for RUN steps, `NAME:IP`; repeatable.
    #[arg(long = "add-host", value_name = "NAME:IP", value_parser = flags::add_host)]
    pub(crate) add_hosts: Vec<String>,

    /// Size of `/dev/shm` in RUN steps (`128m`, `1g`; default 64m).
    #[arg(long = "shm-size", value_name = "SIZE", value_parser = flags::shm_size)]
    pub(crate) shm_size: Option<String>,

    /// A resource limit for RUN steps, `NAME=SOFT[:HARD]` (`nofile=1024:2048`, `-1` for
    /// unlimited); repeatable.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]", value_parser = flags::ulimit)]
    pub(crate) ulimits: Vec<String>,

    /// A secret `id=ID,src=PATH` or `id=ID,env=VAR`, for `RUN --mount=type=secret`; repeatable.
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR", value_parser = flags::secret)]
    pub(crate) secrets: Vec<flags::SecretFlag>,

    /// An SSH agent for `RUN --mount=type=ssh`: `default` (from $SSH_AUTH_SOCK), `ID=SOCKET`, or
    /// `ID=KEYFILE[,KEYFILE...]` (unencrypted OpenSSH Ed25519 private keys, which kiln serves as
    /// an agent of its own during the build); repeatable.
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET|KEYFILE,...]", value_parser = flags::ssh)]
    pub(crate) ssh: Vec<flags::SshFlag>,

    /// Also write the image out (Docker's syntax): `type=oci,dest=FILE` (OCI archive;
    /// `tar=false` for a directory), `type=docker,dest=FILE` (docker-archive),
    /// `type=local,dest=DIR` (the rootfs), `type=tar,dest=FILE` (the rootfs as a tar),
    /// `type=image,name=NAME` (tags in the store), `type=registry,name=NAME` (tags and pushes,
    /// as --push). `dest=-` writes a tar to stdout.
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH", value_parser = flags::output)]
    pub(crate) outputs: Vec<Output>,

    /// Progress on stderr: `auto` (tty on a terminal, else plain), `tty` (plain when stderr is
    /// not a terminal), `plain`, `json` (one event per line) or `quiet`.
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE")]
    pub(crate) progress: ProgressMode,

    /// Print only the image id (the config digest) on stdout; no progress or summary.
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) iidfile: Option<PathBuf>,

    /// Write build metadata as JSON (`containerimage.digest`, the pushed one when pushed,
    /// `containerimage.config.digest`, `containerimage.descriptor`, `image.name`,
    /// `buildx.build.provenance` with --provenance) to this file.
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub(crate) metadata_file: Option<PathBuf>,

    /// Run RUN steps with this OCI runtime (e.g. `runc`) instead of kiln's built-in sandbox.
    #[arg(long, value_name = "PATH")]
    pub(crate) runtime: Option<PathBuf>,

    /// Pull base images from their registries even when the store has them.
    #[arg(long)]
    pub(crate) pull: bool,

    /// Build with kiln's own Dockerfile frontend even when `# syntax=` (or the BUILDKIT_SYNTAX
    /// build arg) names another frontend image, which kiln cannot run. `docker/dockerfile:1.x`
    /// needs no flag: kiln's frontend follows BuildKit's syntax 1.x.
    #[arg(long)]
    pub(crate) ignore_syntax: bool,

    /// Push the image to the registry of every -t tag after the build (= `-o type=registry`).
    #[arg(long)]
    pub(crate) push: bool,

    /// Load the image into Docker (`docker load`) or, without docker, Podman (`podman load`)
    /// after the build, streamed as a docker-archive (one platform only).
    #[arg(long)]
    pub(crate) load: bool,

    /// An annotation `[TYPE:]KEY=VALUE` (BuildKit's syntax): TYPE is `manifest` (default),
    /// `index`, `manifest-descriptor` or `index-descriptor`, optionally with `[PLATFORM,...]`
    /// to annotate those platforms' images only. `index` and `index-descriptor` need an index:
    /// several platforms, or attestations (`--provenance`, `--sbom`); on a single platform's
    /// plain manifest they are a usage error, as BuildKit refuses them. Repeatable.
    #[arg(long = "annotation", value_name = "[TYPE:]KEY=VALUE", value_parser = flags::annotation)]
    pub(crate) annotations: Vec<String>,

    /// Attach SLSA provenance (an in-toto statement) to each platform's image: `mode=min` (the
    /// default: builder, Dockerfile and base image digests) or `mode=max` (also build args,
    /// target and the ids of secrets; never their values). Pushed as BuildKit pushes it: one
    /// attestation manifest per image in the index. `kiln inspect --attestations` shows it.
    #[arg(long, value_name = "mode=min|max", num_args = 0..=1, default_missing_value = "mode=min", value_parser = flags::provenance)]
    pub(crate) provenance: Option<flags::Provenance>,

    /// Attach an SPDX 2.3 SBOM that kiln makes from each image's package databases (dpkg,
    /// apk, Python dist-info, node_modules), as BuildKit attaches its scanner's.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) sbom: Option<bool>,

    /// Import cache records and layers: `type=registry,ref=REF` (a cache, or an image built
    /// with `--cache-to type=inline`; a bare `REF` is the same), `type=local,src=DIR[,tag=TAG]`
    /// (an OCI layout written by `--cache-to type=local`); repeatable. A cache that cannot be
    /// read is a warning.
    #[arg(long = "cache-from", value_name = "type=registry,ref=REF|type=local,src=DIR", value_parser = flags::cache_from)]
    pub(crate) cache_from: Vec<kiln_builder_core::builder::CacheSource>,

    /// Export cache records and layers after the build (every platform's): `type=registry,ref=REF`,
    /// `type=local,dest=DIR[,tag=TAG]` (an OCI layout) or `type=inline` (in the image's config,
    /// for `--cache-from IMAGE`); `mode=min` (default: the steps that made the image) or
    /// `mode=max` (every stage's); `ignore-error=true` makes a failed export a warning. Repeatable.
    #[arg(long = "cache-to", value_name = "type=TYPE,...[,mode=min|max]", value_parser = flags::cache_to)]
    pub(crate) cache_to: Vec<kiln_builder_core::builder::CacheExport>,

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
    pub(crate) step_log_max_size: StepLogLimit,

    #[command(flatten)]
    pub(crate) push_flags: crate::commands::push::PushFlags,

    #[command(flatten)]
    pub(crate) registry: crate::commands::registry::RegistryArgs,

    /// The build context directory, or `-` for a Dockerfile on stdin and no context.
    #[arg(value_name = "PATH|-")]
    pub(crate) context: PathBuf,
}

/// A `--platform` list.
#[derive(Debug, Clone)]
pub struct PlatformList(pub Vec<Platform>);

fn parse_platforms(s: &str) -> Result<PlatformList, String> {
    Platform::parse_list(s).map(PlatformList)
}
