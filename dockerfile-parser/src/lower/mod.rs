//! Raw instructions → typed [`Instruction`]s, and instructions → stages.
//!
//! One file per instruction family. The checks mirror BuildKit's `instructions` package: argument
//! counts, allowed flags and their values, stage names, ONBUILD triggers.

mod command;
mod copy;
mod flags;
mod from_run;
mod simple;

use crate::ast::{
    CommandForm, Instruction, InstructionNode, RawInstruction, Stage, TypedDockerfile, Warning,
    Word,
};
use crate::error::{ParseError, ParseErrorKind, suggest};
use crate::span::Span;

pub(crate) use copy::{ADD_FLAGS, COPY_FLAGS};
pub(crate) use flags::{FlagKind, Flags};
pub(crate) use from_run::RUN_FLAGS;

/// Every instruction keyword, lower-case.
pub(crate) const KEYWORDS: &[&str; 18] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Shared state while lowering one file.
pub(crate) struct Ctx<'a> {
    pub src: &'a str,
    pub warnings: Vec<Warning>,
}

impl Ctx<'_> {
    pub fn error(&self, kind: ParseErrorKind, span: Span, label: impl Into<String>) -> ParseError {
        ParseError::new(kind, span, label, self.src)
    }

    pub fn warn(&mut self, rule: &str, message: String, span: Span, line: u32) {
        self.warnings.push(Warning {
            rule: rule.to_string(),
            message,
            span,
            line: line as usize,
        });
    }

    /// "X requires exactly one argument" and friends, pointing at the arguments or the keyword.
    pub fn arg_error(&self, raw: &RawInstruction, message: String, label: &str) -> ParseError {
        let span = if raw.rest.text.is_empty() {
            raw.keyword.span
        } else {
            raw.rest.span
        };
        self.error(ParseErrorKind::Arguments(message), span, label)
    }
}

/// The command of RUN, CMD, ENTRYPOINT: exec form from JSON, shell form otherwise.
pub(crate) fn command_form(raw: &RawInstruction, args: &[Word]) -> CommandForm {
    if raw.json {
        CommandForm::Exec(args.iter().map(|w| w.text.clone()).collect())
    } else {
        match args.first() {
            Some(w) => CommandForm::Shell(w.clone()),
            None => CommandForm::Shell(Word::new("", Span::empty(raw.rest.span.start()))),
        }
    }
}

/// Lowers one raw instruction.
pub(crate) fn lower(raw: &RawInstruction, ctx: &mut Ctx<'_>) -> Result<Instruction, ParseError> {
    lower_named(
        raw,
        crate::raw::keyword_name(&raw.keyword.text).unwrap_or(""),
        ctx,
    )
}

/// [`lower`] with the keyword's lower-case name already looked up (empty when unknown).
pub(crate) fn lower_named(
    raw: &RawInstruction,
    name: &str,
    ctx: &mut Ctx<'_>,
) -> Result<Instruction, ParseError> {
    match name {
        "from" => from_run::from(raw, ctx),
        "run" => from_run::run(raw, ctx),
        "cmd" => command::cmd(raw, ctx).map(Instruction::Cmd),
        "entrypoint" => command::entrypoint(raw, ctx).map(Instruction::Entrypoint),
        "shell" => command::shell(raw, ctx),
        "healthcheck" => command::healthcheck(raw, ctx),
        "copy" => copy::copy(raw, ctx, false).map(|c| Instruction::Copy(Box::new(c))),
        "add" => copy::copy(raw, ctx, true).map(|c| Instruction::Add(Box::new(c))),
        "env" => simple::key_values(raw, ctx, "ENV").map(|pairs| Instruction::Env { pairs }),
        "label" => simple::key_values(raw, ctx, "LABEL").map(|pairs| Instruction::Label { pairs }),
        "arg" => simple::arg(raw, ctx),
        "expose" => simple::expose(raw, ctx),
        "volume" => simple::volume(raw, ctx),
        "user" => simple::one_word(raw, ctx, "USER").map(Instruction::User),
        "workdir" => simple::one_word(raw, ctx, "WORKDIR").map(Instruction::Workdir),
        "stopsignal" => simple::one_word(raw, ctx, "STOPSIGNAL").map(Instruction::Stopsignal),
        "maintainer" => simple::maintainer(raw, ctx),
        "onbuild" => simple::onbuild(raw, ctx),
        _ => {
            let kw = &raw.keyword.text;
            let mut err = ctx.error(
                ParseErrorKind::UnknownInstruction(kw.to_string()),
                raw.keyword.span,
                format!("expected an instruction such as FROM, RUN or COPY, found `{kw}`"),
            );
            if let Some(s) = suggest(kw, KEYWORDS) {
                err = err.with_help(format!("did you mean `{}`?", s.to_ascii_uppercase()));
            }
            Err(err)
        }
    }
}

/// Whether `raw` certainly lowers without an error and without a warning, found without
/// building its typed form: for readers of the raw layer alone (the JSON dump), which then skip
/// the lowering. Only the common shapes answer `true` (no flags, the argument counts and values
/// that cannot fail); anything else is lowered as usual, so errors and warnings are the
/// lowering's own. Tests check every `true` against the lowering.
pub(crate) fn valid_without_lowering(raw: &RawInstruction, name: &str) -> bool {
    if !raw.flags.is_empty() {
        return false;
    }
    let args = &raw.args[..];
    match name {
        "run" => true,
        "cmd" | "entrypoint" => raw.json || raw.rest.text.is_empty(),
        "user" | "workdir" | "stopsignal" => args.len() == 1,
        "expose" => !args.is_empty(),
        "volume" => !args.is_empty() && args.iter().all(|w| !w.text.trim().is_empty()),
        "arg" => !args.is_empty() && args.iter().all(|w| !w.text.starts_with('=')),
        "env" | "label" => {
            !args.is_empty()
                && args
                    .chunks_exact(3)
                    .all(|t| !t[0].text.is_empty() && !t[2].text.is_empty())
        }
        "copy" | "add" => match args.split_last() {
            Some((dest, sources)) => !sources.is_empty() && (raw.json || !dest.text.contains("<<")),
            None => false,
        },
        _ => false,
    }
}

/// What [`valid_without_lowering`] promises: the lowering succeeds and warns of nothing.
#[cfg(test)]
pub(crate) fn assert_lowers_cleanly(raw: &RawInstruction, name: &str, src: &str) {
    let mut ctx = Ctx {
        src,
        warnings: Vec::new(),
    };
    let lowered = lower_named(raw, name, &mut ctx);
    assert!(
        lowered.is_ok() && ctx.warnings.is_empty(),
        "{name} taken as valid without lowering: {lowered:?} {:?}",
        ctx.warnings
    );
}

/// Where an instruction goes: the checks of stage structure, as instructions come.
#[derive(Default)]
pub(crate) struct Checker {
    /// The stage names so far: searched in order while there are few (most files have one to
    /// three stages, and a hash set per file cost more than the search), then in `name_set`.
    names: Vec<crate::text::Text>,
    name_set: std::collections::HashSet<crate::text::Text>,
    /// A FROM was seen.
    pub has_stage: bool,
    /// The span of the last global ARG (for the "no FROM" error).
    pub last_global_arg: Option<Span>,
}

/// Where [`Checker::check`] puts an instruction.
pub(crate) enum Place {
    /// A FROM: a new stage, with its lower-cased name.
    Stage(Option<crate::text::Text>),
    /// An instruction of the current stage.
    InStage,
    /// An ARG before the first FROM.
    GlobalArg,
}

impl Checker {
    /// Checks the next instruction in file order (warning on duplicate stage names).
    /// `instruction` is the typed form, `None` when it was not built (never for a FROM), and
    /// `name` the keyword's lower-case name.
    pub fn check(
        &mut self,
        raw: &RawInstruction,
        instruction: Option<&Instruction>,
        name: &str,
        ctx: &mut Ctx<'_>,
    ) -> Result<Place, ParseError> {
        if let Some(Instruction::From(f)) = instruction {
            // The alias itself when it is lower-case already (no copy).
            let name = f.alias.as_ref().map(|a| {
                if a.text.bytes().any(|c| c.is_ascii_uppercase()) {
                    crate::text::Text::from(a.text.to_ascii_lowercase())
                } else {
                    a.text.clone()
                }
            });
            let span = f.alias.as_ref().map(|a| a.span).unwrap_or(raw.span);
            return Ok(self.stage(name, span, raw.start_line, ctx));
        }
        if self.has_stage {
            return Ok(Place::InStage);
        }
        if name == "arg" {
            self.last_global_arg = Some(raw.span);
            return Ok(Place::GlobalArg);
        }
        let kw = raw.keyword.text.to_ascii_uppercase();
        Err(ctx
            .error(
                ParseErrorKind::NoStage,
                raw.keyword.span,
                format!("expected FROM (only ARG may come before it), found {kw}"),
            )
            .with_help("start the build stage with `FROM <image>` before this line"))
    }
}

impl Checker {
    /// A FROM starting a stage called `name` (lower-cased), whose alias is at `span`: warns when
    /// the name was taken by an earlier stage.
    pub fn stage(
        &mut self,
        name: Option<crate::text::Text>,
        span: Span,
        line: u32,
        ctx: &mut Ctx<'_>,
    ) -> Place {
        if let Some(n) = &name
            && !self.insert_name(n)
        {
            ctx.warn(
                "DuplicateStageName",
                format!("duplicate stage name \"{n}\", stage names should be unique"),
                span,
                line,
            );
        }
        self.has_stage = true;
        Place::Stage(name)
    }

    /// Adds a stage name; false when it was there already.
    fn insert_name(&mut self, name: &crate::text::Text) -> bool {
        const FEW: usize = 16;
        if self.names.len() < FEW {
            if self.names.contains(name) {
                return false;
            }
            self.names.push(name.clone());
            if self.names.len() == FEW {
                self.name_set.extend(self.names.iter().cloned());
            }
            return true;
        }
        self.name_set.insert(name.clone())
    }
}

/// Groups checked instructions into global ARGs and stages.
#[derive(Default)]
pub(crate) struct Assembler {
    pub global_args: Vec<InstructionNode>,
    pub stages: Vec<Stage>,
    /// The instructions of the last stage while it is read: one list that keeps its room from
    /// stage to stage, so a short stage's own list is allocated once, at its size, when it ends
    /// (a long one takes the list itself).
    current: Vec<InstructionNode>,
}

impl Assembler {
    /// Adds the next instruction where [`Checker::check`] put it.
    pub fn push(&mut self, node: InstructionNode, place: Place) {
        match place {
            Place::Stage(name) => {
                self.end_stage();
                self.stages.push(Stage {
                    from: node,
                    name: name.map(String::from),
                    instructions: Vec::new(),
                });
            }
            Place::InStage => match self.stages.last_mut() {
                Some(_) => self.current.push(node),
                None => self.global_args.push(node),
            },
            Place::GlobalArg => self.global_args.push(node),
        }
    }

    /// Moves the instructions read since the last FROM into its stage.
    fn end_stage(&mut self) {
        if let Some(stage) = self.stages.last_mut()
            && !self.current.is_empty()
        {
            stage.instructions = if self.current.len() > 64 {
                // A long stage keeps the list itself, given back the room it grew ahead: a
                // copy would hold the instructions twice at once.
                let mut list = std::mem::take(&mut self.current);
                list.shrink_to_fit();
                list
            } else {
                let mut list = Vec::with_capacity(self.current.len());
                list.append(&mut self.current);
                list
            };
        }
    }

    /// Builds the [`TypedDockerfile`] from the instructions and the rest of the parse.
    pub fn finish(
        mut self,
        directives: Vec<crate::ast::Directive>,
        escape: char,
        warnings: Vec<Warning>,
    ) -> TypedDockerfile {
        self.end_stage();
        TypedDockerfile {
            directives,
            escape,
            global_args: self.global_args,
            stages: self.stages,
            warnings,
        }
    }
}
