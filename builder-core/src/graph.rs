//! The build graph: what the planner produces and the solver runs.
//!
//! A [`BuildGraph`] is a list of stages; each stage starts from a [`Base`] and applies [`Step`]s in
//! order. Stages depend on each other through `FROM <stage>`, `COPY --from` and
//! `RUN --mount=from=`, which is what lets independent stages run concurrently. Every value in the
//! graph is already expanded: the solver never looks at Dockerfile text again, except to point at
//! the [`Origin`] of a failing step.

use std::collections::{BTreeMap, BTreeSet};

use kiln_dockerfile_parser::Span;

use crate::image::ContainerConfig;

/// Where in the Dockerfile a step came from, so errors underline the right line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Byte span of the instruction in the Dockerfile.
    pub span: Span,
    /// 1-based first line.
    pub start_line: usize,
    /// 1-based last line.
    pub end_line: usize,
    /// The instruction as written (continuations joined), for messages and history.
    pub text: String,
}

/// Identifies a step: stage index and step index within the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepId {
    /// Index of the stage in `BuildGraph::stages`.
    pub stage: usize,
    /// Index of the step in `StagePlan::steps`.
    pub index: usize,
}

/// An image a stage starts from or reads files from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ImageRef {
    /// A registry reference or a store tag, as written after expansion (`alpine:3`), or as a
    /// `docker-image://` build context replaced the name.
    Reference(String),
    /// The image of an `oci-layout://` build context, by the context's key
    /// ([`BuildContexts::key`](crate::context::BuildContexts::key)).
    Layout(String),
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageRef::Reference(r) => f.write_str(r),
            ImageRef::Layout(name) => write!(f, "build context {name}"),
        }
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`: an empty root filesystem and an empty config.
    Scratch,
    /// An image.
    Image(ImageRef),
    /// Another stage of the same Dockerfile.
    Stage(usize),
}

/// Where COPY sources or a bind mount's files come from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SourceRef {
    /// The build context.
    Context,
    /// The final root filesystem of another stage.
    Stage(usize),
    /// The root filesystem of an image (`COPY --from=alpine:3`).
    Image(ImageRef),
    /// A directory build context (`--build-context NAME=DIR`), by the context's key.
    Dir(String),
}

/// A file written by a heredoc (`COPY <<EOF /dest` or a RUN script).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The heredoc name, used as the file name when the destination is a directory.
    pub name: String,
    /// The content, expanded when the heredoc delimiter was unquoted.
    pub content: String,
}

/// A COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOp {
    /// ADD rather than COPY (archives are extracted, URLs downloaded).
    pub add: bool,
    /// Where the sources are read from.
    pub from: SourceRef,
    /// Source paths or patterns, expanded, as written relative to the source root.
    pub sources: Vec<String>,
    /// Inline sources from heredocs.
    pub inline: Vec<InlineFile>,
    /// Destination, expanded and made absolute against WORKDIR; a trailing `/` is kept.
    pub dest: String,
    /// `--chown`, expanded, unresolved (`user:group`, names resolved in the destination rootfs).
    pub chown: Option<String>,
    /// `--chmod`, expanded.
    pub chmod: Option<String>,
    /// `--exclude` patterns, expanded.
    pub exclude: Vec<String>,
    /// `--parents`
    pub parents: bool,
    /// `--link`
    pub link: bool,
    /// `--checksum` (ADD), expanded.
    pub checksum: Option<String>,
    /// `--unpack` (ADD); `None` means the default (unpack local archives, not URLs).
    pub unpack: Option<bool>,
    /// `--keep-git-dir` (ADD)
    pub keep_git_dir: bool,
}

/// A mount for a RUN step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// `type=bind`: files from the context, a stage or an image.
    Bind {
        /// Where the files come from.
        from: SourceRef,
        /// Path inside the source root.
        source: String,
        /// Absolute target inside the container.
        target: String,
        /// Read-only (the default for bind mounts).
        readonly: bool,
    },
    /// `type=cache`: a directory kept across builds.
    Cache {
        /// Cache id (defaults to the target).
        id: String,
        /// Absolute target.
        target: String,
        /// `sharing=`: `shared`, `private` or `locked`.
        sharing: String,
        /// Read-only.
        readonly: bool,
        /// Owner and mode of a new cache directory.
        uid: u32,
        /// Owner group of a new cache directory.
        gid: u32,
        /// Mode of a new cache directory.
        mode: u32,
    },
    /// `type=tmpfs`
    Tmpfs {
        /// Absolute target.
        target: String,
        /// Size limit in bytes, if any.
        size: Option<u64>,
    },
    /// `type=secret`: a secret given to the build, never stored.
    Secret {
        /// Secret id.
        id: String,
        /// Target file (default `/run/secrets/<id>`); `None` with `env` only.
        target: Option<String>,
        /// Expose the secret as this environment variable instead of (or besides) a file.
        env: Option<String>,
        /// Fail when the secret was not given.
        required: bool,
        /// File mode.
        mode: u32,
        /// File owner.
        uid: u32,
        /// File group.
        gid: u32,
    },
    /// `type=ssh`: an SSH agent socket.
    Ssh {
        /// Agent id (default `default`).
        id: String,
        /// Socket path.
        target: String,
        /// Fail when no agent was given.
        required: bool,
        /// Mode of the socket.
        mode: u32,
        /// Owner of the socket.
        uid: u32,
        /// Group of the socket.
        gid: u32,
    },
}

/// Network mode of a RUN step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    /// Own network namespace with only loopback.
    None,
    /// The host's network.
    Host,
    /// Outbound network as `docker build` gives it: an own network namespace with user-mode
    /// networking where the machine allows, else the host's network.
    Default,
}

impl std::str::FromStr for Network {
    type Err = String;

    /// `none`, `default` or `host`, as `--network` and `RUN --network=` spell them.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Network::None),
            "default" => Ok(Network::Default),
            "host" => Ok(Network::Host),
            other => Err(format!(
                "invalid network mode {other:?} (expected none, default or host)"
            )),
        }
    }
}

/// A RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOp {
    /// The command, after the shell form was wrapped in the stage's SHELL.
    pub argv: Vec<String>,
    /// Environment: the image's ENV plus the stage's build args, `KEY=value`, sorted by key.
    pub env: Vec<(String, String)>,
    /// Names in `env` that must not reach cache keys or history (proxy variables).
    pub env_not_cached: BTreeSet<String>,
    /// USER, unresolved (`name[:group]` or numeric); empty means root.
    pub user: String,
    /// Working directory (absolute).
    pub cwd: String,
    /// Network mode.
    pub network: Network,
    /// Extra mounts.
    pub mounts: Vec<RunMount>,
    /// Files from heredocs that the command reads (RUN <<EOF with a shebang script).
    pub inline: Vec<InlineFile>,
    /// `--security=insecure` was asked for.
    pub insecure: bool,
    /// `--add-host`, `--shm-size`, `--ulimit` of the build.
    pub settings: crate::exec::StepSettings,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Run a command in an isolated container.
    Run(RunOp),
    /// Copy files in.
    Copy(CopyOp),
    /// Create the working directory (WORKDIR); owned by the USER in effect, as BuildKit does.
    Workdir {
        /// Absolute path.
        path: String,
        /// USER in effect, unresolved.
        user: String,
    },
    /// A change to the image config only (ENV, LABEL, CMD, ...): no filesystem change.
    Config,
}

impl Op {
    /// Whether the step may change the filesystem (and so may produce a layer).
    pub fn changes_filesystem(&self) -> bool {
        !matches!(self, Op::Config)
    }
}

/// One step of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Where it came from.
    pub origin: Origin,
    /// What it does.
    pub op: Op,
    /// The history `created_by` text, with build args that reach it (`|1 A=b /bin/sh -c ...`
    /// for RUN as Docker writes it), proxy args excluded.
    pub created_by: String,
}

/// One stage as the solver runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    /// Position in the Dockerfile (0-based).
    pub index: usize,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// What it starts from.
    pub base: Base,
    /// Origin of its FROM.
    pub from_origin: Origin,
    /// Steps in order (ONBUILD triggers of the base image first).
    pub steps: Vec<Step>,
    /// The image config after the last step (rootfs and history are added by the solver).
    pub config: ContainerConfig,
    /// MAINTAINER, the image's `author`.
    pub author: Option<String>,
    /// Stages this one needs finished first.
    pub depends_on: BTreeSet<usize>,
    /// Images this stage reads files from (`COPY --from=image`, bind mounts from images).
    pub image_sources: BTreeSet<ImageRef>,
    /// The platform the stage's base image is resolved for and its RUN steps run on.
    pub platform: crate::image::Platform,
}

/// The plan of a whole build.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildGraph {
    /// Stages that the target needs, in Dockerfile order; stages it does not need are left out
    /// and the remaining indices keep their Dockerfile positions via [`StagePlan::index`].
    pub stages: BTreeMap<usize, StagePlan>,
    /// The stage whose result is the image.
    pub target: usize,
    /// Non-fatal findings (unused build args, ...).
    pub warnings: Vec<String>,
}

impl BuildGraph {
    /// The target stage.
    pub fn target_stage(&self) -> &StagePlan {
        // The planner always inserts the target; a graph without it cannot be built.
        &self.stages[&self.target]
    }
}
