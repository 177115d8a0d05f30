//! The typed Dockerfile AST.
//!
//! Two layers live here:
//!
//! * the *raw* layer ([`RawInstruction`]): keyword, flags and arguments exactly as BuildKit's parser
//!   node chain holds them, lossless enough for a linter or formatter;
//! * the *typed* layer ([`Instruction`]): one variant per instruction with typed flags.
//!
//! Every value that may contain variables (`$VAR`) is kept unexpanded as a [`Word`]; the planner
//! expands it with [`crate::shell::Expander`].

use std::borrow::Cow;
use std::time::Duration;

use serde::Serialize;

use crate::span::Span;
use crate::text::Text;

/// A piece of Dockerfile text as written (unexpanded) and where it was written.
///
/// When a word spans a line continuation, `text` is the logical text (the escape character and the
/// line break removed, as BuildKit joins lines) and `span` covers the whole physical range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Word {
    /// The text, unexpanded, quotes and escapes included (usually a slice of the source).
    pub text: Text,
    /// Where it was written.
    pub span: Span,
}

impl Word {
    /// A word with `text` at `span`.
    pub fn new(text: impl Into<Text>, span: Span) -> Self {
        Word {
            text: text.into(),
            span,
        }
    }

    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// Whether the text may need variable expansion (contains `$`).
    pub fn has_variables(&self) -> bool {
        self.text.contains('$')
    }
}

/// A parser directive from the top of the file (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Lower-cased name: `syntax`, `escape` or `check`.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// The whole comment line.
    pub span: Span,
    /// 1-based line.
    pub line: usize,
}

/// A non-fatal finding, returned beside the AST instead of printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Stable rule name, in BuildKit's check names where one exists (e.g. `NoEmptyContinuation`).
    pub rule: String,
    /// Human-readable message.
    pub message: String,
    /// What the warning points at.
    pub span: Span,
    /// 1-based line of `span.start`.
    pub line: usize,
}

/// A flag word as written before an instruction's arguments, such as `--from=build`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// The flag word after BuildKit's flag tokenizer (quotes removed), e.g. `--mount=type=cache`.
    pub text: Text,
    /// Name without the leading `--`, e.g. `mount`.
    pub name: Text,
    /// Value after the first `=`, if any (unexpanded).
    pub value: Option<Text>,
    /// Where the flag was written.
    pub span: Span,
}

impl Flag {
    /// The value as a [`Word`] spanning the whole flag (for flags whose value the planner expands).
    pub fn value_word(&self) -> Word {
        Word::new(self.value.clone().unwrap_or_default(), self.span)
    }
}

/// A heredoc attached to RUN, COPY or ADD (`<<EOF` … `EOF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF`).
    pub name: Text,
    /// File descriptor written before `<<` (`3<<EOF`); 0 when none.
    pub fd: u32,
    /// False when any part of the delimiter was quoted: the body is then taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines and the terminator.
    pub chomp: bool,
    /// The body exactly as written (line endings kept, tabs not yet stripped).
    pub content: Text,
    /// The `<<EOF` marker in the instruction line.
    pub marker_span: Span,
    /// The body plus its terminator line.
    pub body_span: Span,
}

impl Heredoc {
    /// The body with `<<-` tab stripping applied.
    pub fn body(&self) -> Cow<'_, str> {
        if !self.chomp {
            return Cow::Borrowed(self.content.as_str());
        }
        let mut out = String::with_capacity(self.content.len());
        for line in self.content.split_inclusive('\n') {
            out.push_str(line.trim_start_matches('\t'));
        }
        Cow::Owned(out)
    }
}

/// Shell form or exec (JSON) form of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CommandForm {
    /// `RUN make all`: the rest of the line, run through the stage's SHELL.
    Shell(Word),
    /// `RUN ["make", "all"]`: the decoded JSON array.
    Exec(Box<[Text]>),
}

impl CommandForm {
    /// Whether this is the exec (JSON) form.
    pub fn is_exec(&self) -> bool {
        matches!(self, CommandForm::Exec(_))
    }
}

/// `RUN --network=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum NetworkMode {
    /// `default`
    Default,
    /// `none`
    None,
    /// `host`
    Host,
}

/// `RUN --security=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SecurityMode {
    /// `sandbox`
    Sandbox,
    /// `insecure`
    Insecure,
}

/// `RUN --mount=type=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub enum MountType {
    /// `bind` (the default)
    #[default]
    Bind,
    /// `cache`
    Cache,
    /// `tmpfs`
    Tmpfs,
    /// `secret`
    Secret,
    /// `ssh`
    Ssh,
}

/// Cache mount `sharing=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum MountSharing {
    /// `shared` (the default)
    Shared,
    /// `private`
    Private,
    /// `locked`
    Locked,
}

/// One `RUN --mount=...` flag, parsed.
///
/// String options are kept unexpanded. If [`MountSpec::raw`] contains variables, the typed
/// non-string fields hold what could be read without expansion; the planner should expand `raw`
/// and call [`MountSpec::parse`] on the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct MountSpec {
    /// The flag value as written (`type=cache,target=/root/.cache`).
    pub raw: Word,
    /// `type=`
    pub kind: MountType,
    /// `target=`, `dst=`, `destination=`
    pub target: Option<String>,
    /// `source=`, `src=`
    pub source: Option<String>,
    /// `from=` (a stage or image; never expanded, as in BuildKit)
    pub from: Option<String>,
    /// `readonly`/`ro`/`readwrite`/`rw`; `None` means the type's default.
    pub readonly: Option<bool>,
    /// `id=`
    pub id: Option<String>,
    /// `sharing=` (cache mounts)
    pub sharing: Option<MountSharing>,
    /// `uid=`
    pub uid: Option<u32>,
    /// `gid=`
    pub gid: Option<u32>,
    /// `mode=` (octal)
    pub mode: Option<u32>,
    /// `required` (secret and ssh mounts)
    pub required: Option<bool>,
    /// `env=` (secret mounts: expose the secret as this environment variable)
    pub env: Option<String>,
    /// `size=` in bytes (tmpfs mounts)
    pub size: Option<u64>,
    /// Why the options are invalid (an unknown key such as `z`, a bad type...), if they are. As
    /// in BuildKit, that is an error only when a stage the build runs holds the mount, so the
    /// parser keeps it here for the planner. Only `raw` is meaningful then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

impl Default for Word {
    fn default() -> Self {
        Word::new("", Span::default())
    }
}

impl MountSpec {
    /// Whether the mount is read-only once the type's default is applied (cache and tmpfs mounts
    /// are writable by default, others read-only).
    pub fn is_readonly(&self) -> bool {
        self.readonly
            .unwrap_or(!matches!(self.kind, MountType::Cache | MountType::Tmpfs))
    }
}

/// `FROM [--platform=...] image [AS name]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FromInstruction {
    /// `--platform=` value, unexpanded.
    pub platform: Option<Word>,
    /// The base image or stage reference, unexpanded.
    pub image: Word,
    /// The `AS name` word as written.
    pub alias: Option<Word>,
}

/// `RUN [--mount=...] [--network=...] [--security=...] command`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInstruction {
    /// `--mount=` flags in order.
    pub mounts: Box<[MountSpec]>,
    /// `--network=`
    pub network: Option<NetworkMode>,
    /// `--security=`
    pub security: Option<SecurityMode>,
    /// The command.
    pub command: CommandForm,
    /// Heredocs in the command line, in order.
    pub heredocs: Box<[Heredoc]>,
}

/// `COPY` and `ADD`. Flags that only one of them accepts are rejected for the other at parse time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CopyInstruction {
    /// `--from=` (COPY only), unexpanded.
    pub from: Option<Word>,
    /// `--chown=`, unexpanded.
    pub chown: Option<Word>,
    /// `--chmod=`, unexpanded (octal such as `0755` or symbolic such as `u+x,g-w`).
    pub chmod: Option<Word>,
    /// `--link`
    pub link: bool,
    /// `--parents` (COPY only)
    pub parents: bool,
    /// `--exclude=` patterns, unexpanded, in order.
    pub exclude: Box<[Word]>,
    /// `--checksum=` (ADD only), unexpanded.
    pub checksum: Option<Word>,
    /// `--keep-git-dir` (ADD only); `None` when not given.
    pub keep_git_dir: Option<bool>,
    /// `--unpack` (ADD only); `None` when not given.
    pub unpack: Option<bool>,
    /// Source paths (heredoc markers excluded; see `heredocs`), unexpanded.
    pub sources: Box<[Word]>,
    /// Destination, unexpanded.
    pub dest: Word,
    /// Inline files given as heredoc sources (`COPY <<EOF /dest`), in order.
    pub heredocs: Box<[Heredoc]>,
    /// The JSON array form was used.
    pub json_form: bool,
}

/// A duration flag of HEALTHCHECK: the text as written and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DurationFlag {
    /// The flag value as written (e.g. `30s`).
    pub raw: Word,
    /// The parsed value.
    pub value: Duration,
}

/// `HEALTHCHECK CMD ...` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthcheckCmd {
    /// `--interval=`
    pub interval: Option<DurationFlag>,
    /// `--timeout=`
    pub timeout: Option<DurationFlag>,
    /// `--start-period=`
    pub start_period: Option<DurationFlag>,
    /// `--start-interval=`
    pub start_interval: Option<DurationFlag>,
    /// `--retries=`
    pub retries: Option<u32>,
    /// The check command.
    pub command: CommandForm,
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [flags] CMD command`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK CMD ...`
    Cmd(Box<HealthcheckCmd>),
}

/// `ONBUILD trigger`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnbuildInstruction {
    /// The trigger, parsed; `None` when its arguments are invalid. As in BuildKit, such an
    /// ONBUILD is accepted (with a warning): the trigger only fails when a child build runs it.
    pub trigger: Option<Box<Instruction>>,
    /// The trigger text as stored in the image config (BuildKit's expression: the original line
    /// without `ONBUILD`, heredoc bodies appended).
    pub expression: String,
}

/// One Dockerfile instruction, typed. Keywords are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Instruction {
    /// `FROM`
    From(Box<FromInstruction>),
    /// `RUN`
    Run(Box<RunInstruction>),
    /// `CMD`
    Cmd(CommandForm),
    /// `LABEL k=v ...` (keys and values unexpanded, quotes kept)
    Label {
        /// Key/value pairs in order.
        pairs: Box<[(Word, Word)]>,
    },
    /// `MAINTAINER` (deprecated)
    Maintainer(String),
    /// `EXPOSE 80 443/tcp ...` (unexpanded words)
    Expose(Box<[Word]>),
    /// `ENV k=v ...` or legacy `ENV k v` (keys and values unexpanded, quotes kept)
    Env {
        /// Key/value pairs in order.
        pairs: Box<[(Word, Word)]>,
    },
    /// `ADD`
    Add(Box<CopyInstruction>),
    /// `COPY`
    Copy(Box<CopyInstruction>),
    /// `ENTRYPOINT`
    Entrypoint(CommandForm),
    /// `VOLUME` (JSON or whitespace-separated, unexpanded)
    Volume(Box<[Word]>),
    /// `USER user[:group]`
    User(Word),
    /// `WORKDIR path`
    Workdir(Word),
    /// `ARG name[=default] ...`
    Arg {
        /// Names with optional default values (unexpanded, quotes kept).
        args: Box<[(Word, Option<Word>)]>,
    },
    /// `ONBUILD trigger`
    Onbuild(OnbuildInstruction),
    /// `STOPSIGNAL signal`
    Stopsignal(Word),
    /// `HEALTHCHECK`
    Healthcheck(Healthcheck),
    /// `SHELL ["executable", "params"]`
    Shell(Box<[Text]>),
}

impl Instruction {
    /// The lower-cased keyword (`run`, `copy`, ...).
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From(_) => "from",
            Instruction::Run(_) => "run",
            Instruction::Cmd(_) => "cmd",
            Instruction::Label { .. } => "label",
            Instruction::Maintainer(_) => "maintainer",
            Instruction::Expose(_) => "expose",
            Instruction::Env { .. } => "env",
            Instruction::Add(_) => "add",
            Instruction::Copy(_) => "copy",
            Instruction::Entrypoint(_) => "entrypoint",
            Instruction::Volume(_) => "volume",
            Instruction::User(_) => "user",
            Instruction::Workdir(_) => "workdir",
            Instruction::Arg { .. } => "arg",
            Instruction::Onbuild(_) => "onbuild",
            Instruction::Stopsignal(_) => "stopsignal",
            Instruction::Healthcheck(_) => "healthcheck",
            Instruction::Shell(_) => "shell",
        }
    }
}

/// The untyped, lossless view of one instruction: what BuildKit's parser node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawInstruction {
    /// The keyword as written (`run`, `RUN`, `Run`).
    pub keyword: Word,
    /// Flag words before the arguments, in order.
    pub flags: Box<[Flag]>,
    /// Arguments after the flags, split the way BuildKit's parser splits them for this keyword
    /// (see the crate docs). For ENV and LABEL: key, value, separator triples.
    pub args: Box<[Word]>,
    /// The rest of the logical line after the flags (trimmed), unsplit.
    pub rest: Word,
    /// The exec/JSON form was used.
    pub json: bool,
    /// ONBUILD: the trigger instruction.
    pub sub: Option<Box<RawInstruction>>,
    /// Heredoc bodies, in order.
    pub heredocs: Box<[Heredoc]>,
    /// The logical line (continuations joined, comments removed), as BuildKit's `Original`.
    pub original: Text,
    /// The instruction from its first character to the end of its last line (heredoc bodies
    /// included).
    pub span: Span,
    /// 1-based first physical line.
    pub start_line: u32,
    /// 1-based last physical line (heredoc terminators included).
    pub end_line: u32,
}

impl RawInstruction {
    /// The lower-cased keyword.
    pub fn name(&self) -> String {
        self.keyword.text.to_ascii_lowercase()
    }
}

/// One instruction: its typed form and its raw form (spans, lines, original text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstructionNode {
    /// The typed instruction.
    pub instruction: Instruction,
    /// Keyword, flags, arguments and positions as written.
    pub raw: RawInstruction,
}

impl InstructionNode {
    /// Byte span of the whole instruction (heredoc bodies included).
    pub fn span(&self) -> Span {
        self.raw.span
    }
    /// 1-based first line.
    pub fn start_line(&self) -> usize {
        self.raw.start_line as usize
    }
    /// 1-based last line (heredoc bodies included).
    pub fn end_line(&self) -> usize {
        self.raw.end_line as usize
    }
    /// The logical line as written (continuations joined).
    pub fn original(&self) -> &str {
        &self.raw.original
    }
    /// The keyword as written.
    pub fn keyword(&self) -> &Word {
        &self.raw.keyword
    }
    /// The flags as written.
    pub fn flags(&self) -> &[Flag] {
        &self.raw.flags
    }
}

/// A build stage: a FROM instruction and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// The FROM instruction (its `instruction` is always [`Instruction::From`]).
    pub from: InstructionNode,
    /// The stage name from `AS name`, lower-cased as BuildKit does.
    pub name: Option<String>,
    /// Instructions after FROM, in order.
    pub instructions: Vec<InstructionNode>,
}

impl Stage {
    /// The typed FROM instruction.
    pub fn from_instruction(&self) -> Option<&FromInstruction> {
        match &self.from.instruction {
            Instruction::From(f) => Some(f.as_ref()),
            _ => None,
        }
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypedDockerfile {
    /// Parser directives in the order written.
    pub directives: Vec<Directive>,
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// ARG instructions before the first FROM (global build args).
    pub global_args: Vec<InstructionNode>,
    /// Build stages in order.
    pub stages: Vec<Stage>,
    /// Warnings found while parsing.
    pub warnings: Vec<Warning>,
}

impl TypedDockerfile {
    /// The directive called `name` (`syntax`, `escape`, `check`), if present.
    pub fn directive(&self, name: &str) -> Option<&Directive> {
        self.directives.iter().find(|d| d.name == name)
    }

    /// `# syntax=` directive.
    pub fn syntax(&self) -> Option<&Directive> {
        self.directive("syntax")
    }

    /// `# check=` directive.
    pub fn check(&self) -> Option<&Directive> {
        self.directive("check")
    }

    /// All instructions in file order: global ARGs, then each stage's FROM and instructions.
    pub fn instructions(&self) -> impl Iterator<Item = &InstructionNode> + '_ {
        self.global_args.iter().chain(
            self.stages
                .iter()
                .flat_map(|s| std::iter::once(&s.from).chain(s.instructions.iter())),
        )
    }

    /// The stage called `name` (compared case-insensitively) and its index.
    pub fn stage_by_name(&self, name: &str) -> Option<(usize, &Stage)> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .enumerate()
            .find(|(_, s)| s.name.as_deref() == Some(lower.as_str()))
    }
}
