//! Dockerfile parser for kiln.
//!
//! Owns the Dockerfile language: it turns text into a typed AST with spans, following BuildKit's
//! Dockerfile frontend (syntax 1.x) where the reference and BuildKit disagree. It performs no I/O,
//! knows nothing of async runtimes and never expands variables itself: values are kept as written
//! in [`Word`]s, and [`shell::Expander`] gives the planner BuildKit's expansion semantics.
//!
//! ```
//! use kiln_dockerfile_parser::block::{CommandView, View};
//! use kiln_dockerfile_parser::parse;
//!
//! let df = parse("ARG BASE=alpine\nFROM $BASE AS build\nRUN --network=none make\n")?;
//! assert_eq!(df.global_args().len(), 1);
//! let stage = df.stages().next().unwrap();
//! assert_eq!(stage.name(), Some("build"));
//! let run = stage.instructions().next().unwrap();
//! assert_eq!(run.start_line(), 3);
//! assert_eq!(run.flag_value("network").map(|w| w.text), Some("none"));
//! match run.view() {
//!     View::Run(CommandView::Shell(w)) => assert_eq!(w.text, "make"),
//!     other => panic!("unexpected {other:?}"),
//! }
//!
//! // Expansion with BuildKit's rules, reporting what was used and what was unset.
//! let env = |name: &str| (name == "BASE").then(|| "alpine:3.20".to_string());
//! let e = kiln_dockerfile_parser::shell::Expander::new(df.escape).expand("${BASE%:*} $TAG", &env)?;
//! assert_eq!(e.value, "alpine ");
//! assert_eq!(e.unset, ["TAG"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//!
//! * [`parse_raw`] gives the untyped, lossless layer ([`RawInstruction`]: keyword, flags and
//!   arguments as BuildKit's parser node chain holds them), for linters, formatters and the JSON
//!   dump ([`dump::to_json`], behind `kiln parse --json`).
//! * [`parse`] checks every instruction (flags, argument counts, mounts, durations, stage names,
//!   ONBUILD triggers) and keeps each as one block ([`Dockerfile`], see [`block`]): the global
//!   ARGs and the stages are positions in one list of blocks, and the typed reading of a block
//!   ([`block::View`]) borrows it. [`parse_typed`] gives the same instructions as boxed typed
//!   nodes ([`TypedDockerfile`], [`Stage`]), the reference the blocks are tested against.
//!
//! Errors are [`ParseError`]s with a span, a plain-words expected/found label and a help line,
//! and implement [`miette::Diagnostic`]. Warnings (empty continuation lines, MAINTAINER, legacy
//! `ENV k v`, casing, shell-form CMD/ENTRYPOINT, duplicate stage names) are returned in
//! [`TypedDockerfile::warnings`], never printed.
//!
//! # How the work is split, and why
//!
//! 1. A line pre-pass in plain Rust (`scan`) handles what is line-oriented and stateful: the BOM,
//!    CRLF, parser directives and where they stop, the escape character, continuations (with
//!    comment and blank lines inside them) and heredoc bodies. It produces one logical line per
//!    instruction plus a map from logical offsets back to source offsets, so every span points
//!    into the original text.
//! 2. The pest grammar (`grammar.pest`) describes an instruction head (keyword and flag words with
//!    BuildKit's quoting) and heredoc markers. A plain-Rust shortcut handles heads whose flag words
//!    contain no quotes or backslashes (the vast majority); property tests check that it agrees
//!    with the grammar on every input it accepts. pest's fixed cost per call and per character
//!    would otherwise dominate (about 11 MB/s when every line went through it).
//! 3. Arguments are split per keyword exactly as BuildKit's line parsers do (JSON arrays with the
//!    shell-form fallback, whitespace lists, quote-aware `key=value` words), then lowered to typed
//!    instructions (`lower/`, one file per instruction family). JSON arrays whose strings hold no
//!    escape are read without the JSON decoder.
//! 4. Each instruction is lowered as soon as it is read, so the raw layer of the whole file never
//!    sits beside the typed one.
//!
//! The shortcuts change nothing: a differential test parses the corpus, the golden cases and
//! generated text with them and without them (every head through the grammar, every JSON array
//! through the decoder) and requires the same AST and the same errors.
//!
//! Strings in the AST are [`Text`]s: slices of one shared buffer (the source, or a continued
//! instruction's joined line), not copies, so the AST costs a few times the file's size rather
//! than tens of times, and building it allocates little per token.
//!
//! # Differences from BuildKit
//!
//! * ONBUILD triggers are parsed and checked when the ONBUILD is parsed, not when a child image
//!   triggers them, so `ONBUILD COPY onlyone` is an error here.
//! * Duplicate stage names are a warning (`DuplicateStageName`), as BuildKit's linter reports them.
//! * `--chmod` values without variables are validated at parse time.
//! * Lines longer than 64 KiB are accepted (BuildKit refuses them).
//! * Input that is not UTF-8 goes through [`decode`], which keeps every byte: each invalid byte
//!   becomes a reserved code point that [`bytes::to_bytes`] turns back into it (see [`bytes`]).
//!
//! The full list, with the planner's and the builder's, is in `docs/differences-from-docker.md`.
#![deny(missing_docs)]

pub mod ast;
pub mod block;
pub mod bytes;
pub mod dump;
pub mod error;
mod grammar;
mod lower;
pub mod mount;
mod raw;
mod scan;
pub mod shell;
pub mod span;
pub mod text;
pub mod values;

#[cfg(test)]
mod differential_tests;

#[cfg(test)]
thread_local! {
    /// Set by the differential tests: every line goes through the grammar and every JSON array
    /// through the decoder, with no shortcut.
    static REFERENCE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the shortcuts are off (only ever in the differential tests).
#[inline]
fn reference_mode() -> bool {
    #[cfg(test)]
    return REFERENCE.with(|r| r.get());
    #[cfg(not(test))]
    false
}

pub use ast::*;
pub use block::Dockerfile;
pub use error::{ParseError, ParseErrorKind};
pub use span::{LineIndex, Span, Spanned};
pub use text::Text;

/// The most flags one instruction may carry (a block counts them in 16 bits); more is
/// [`ParseErrorKind::TooManyFlags`].
pub const MAX_FLAGS: usize = u16::MAX as usize;

use crate::raw::{RawBuilder, finish_heredoc};
use crate::scan::Scanner;

/// The untyped, lossless view of a Dockerfile: every instruction as BuildKit's parser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDockerfile {
    /// Parser directives in the order written.
    pub directives: Vec<Directive>,
    /// The escape character.
    pub escape: char,
    /// All instructions in file order.
    pub instructions: Vec<RawInstruction>,
    /// Warnings found by the line pre-pass (empty continuation lines).
    pub warnings: Vec<Warning>,
}

/// Parse a Dockerfile into its untyped instructions, without checking instruction semantics.
pub fn parse_raw(src: &str) -> Result<RawDockerfile, ParseError> {
    parse_raw_shared(&source_text(src)?)
}

/// The source as one shared buffer the AST's [`Text`]s slice (refused past 4 GiB).
fn source_text(src: &str) -> Result<Text, ParseError> {
    if src.len() > text::MAX_TEXT_LEN {
        return Err(too_large(src.len()));
    }
    Ok(Text::from(src))
}

fn too_large(len: usize) -> ParseError {
    ParseError::new(
        ParseErrorKind::TooLarge(len),
        Span::empty(0),
        "this file is too large to parse",
        "",
    )
    .with_help("a Dockerfile can hold at most 4 GiB")
}

/// [`parse_raw`] over a source already in a [`Text`] (its buffer is shared, not copied).
pub fn parse_raw_shared(source: &Text) -> Result<RawDockerfile, ParseError> {
    let mut reader = RawReader::new(source);
    let mut instructions = Vec::new();
    while let Some((raw, _)) = reader.next_instruction()? {
        instructions.push(raw);
    }
    let (directives, escape, warnings) = reader.finish()?;
    Ok(RawDockerfile {
        directives,
        escape,
        instructions,
        warnings,
    })
}

/// Raw instructions one at a time, so [`parse`] lowers each as it is read instead of holding
/// the whole raw layer next to the typed one.
struct RawReader<'a> {
    scanner: Scanner<'a>,
    src: &'a str,
    count: usize,
    /// Scratch for the raw layer's word splitting, kept from line to line.
    words: std::cell::RefCell<Vec<(usize, usize, usize)>>,
}

impl<'a> RawReader<'a> {
    fn new(source: &'a Text) -> Self {
        RawReader {
            scanner: Scanner::new(source),
            src: source.as_str(),
            count: 0,
            words: std::cell::RefCell::default(),
        }
    }

    /// The next instruction and its keyword's lower-case name (empty when unknown).
    fn next_instruction(&mut self) -> Result<Option<(RawInstruction, &'static str)>, ParseError> {
        let Some(line) = self.scanner.next_logical()? else {
            return Ok(None);
        };
        self.build_line(line).map(Some)
    }

    /// The raw instruction of a logical line the scanner gave, its heredoc bodies read.
    fn build_line(
        &mut self,
        line: scan::LogicalLine,
    ) -> Result<(RawInstruction, &'static str), ParseError> {
        let src = self.src;
        let scanner = &mut self.scanner;
        let builder = RawBuilder {
            line: &line,
            escape: scanner.escape,
            src,
            words: &self.words,
        };
        let (mut raw, pending, name) = builder.build(0)?;
        let mut heredocs = Vec::with_capacity(pending.len());
        for p in pending {
            let marker = p.marker_span;
            let Some((content, body)) = scanner.read_heredoc(&p.name, p.chomp) else {
                return Err(ParseError::new(
                    ParseErrorKind::UnterminatedHeredoc(p.name.clone()),
                    marker,
                    format!("this heredoc is never closed: expected a line `{}`", p.name),
                    src,
                )
                .with_help(format!(
                    "end the heredoc with a line containing only `{}`",
                    p.name
                )));
            };
            raw.span.end = body.end;
            heredocs.push(finish_heredoc(p, content, body));
        }
        if !heredocs.is_empty() {
            raw.heredocs = heredocs.into_boxed_slice();
        }
        raw.end_line = scanner.line() as u32;
        // The logical line is the original text; hand it over instead of copying it.
        raw.original = line.text;
        self.scanner.recycle(line.segments);
        self.count += 1;
        Ok((raw, name))
    }

    /// Directives, escape character and the pre-pass's warnings, once every instruction is read.
    fn finish(mut self) -> Result<(Vec<Directive>, char, Vec<Warning>), ParseError> {
        if self.count == 0 {
            return Err(ParseError::new(
                ParseErrorKind::Empty,
                Span::empty(self.src.len()),
                "expected at least a FROM instruction",
                self.src,
            )
            .with_help("a Dockerfile needs at least `FROM <image>`"));
        }
        Ok((
            std::mem::take(&mut self.scanner.directives),
            self.scanner.escape,
            std::mem::take(&mut self.scanner.warnings),
        ))
    }
}

pub use bytes::decode;

/// Whether `word` is a heredoc marker and nothing else (`<<EOF`, `<< EOF`, `3<<-"EOF"`), read
/// as BuildKit reads a shell-form RUN command: such a RUN runs the heredoc's body as its script.
pub fn is_heredoc_marker(word: &str) -> bool {
    matches!(raw::parse_heredoc_marker(word), Ok(Some(_)))
}

/// Parse a Dockerfile into one block per instruction ([`Dockerfile`]).
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    parse_shared(&source_text(src)?)
}

/// [`parse`] of a Dockerfile held in a shared buffer: the blocks' lines slice `source` instead
/// of copying it (see [`Text`]). `Text::new(string)` makes one without copying.
pub fn parse_shared(source: &Text) -> Result<Dockerfile, ParseError> {
    block::parse_blocks(source)
}

/// Parse a Dockerfile into the typed layer ([`TypedDockerfile`]: a boxed node per
/// instruction with its raw and typed forms). [`parse`] gives the same instructions, checks,
/// errors and warnings as blocks, at a third of the cost; this form is the reference the blocks
/// are tested against, and [`block::BlockRef::to_node`] gives it for one block.
pub fn parse_typed(src: &str) -> Result<TypedDockerfile, ParseError> {
    parse_typed_shared(&source_text(src)?)
}

/// [`parse_typed`] over a shared buffer.
pub fn parse_typed_shared(source: &Text) -> Result<TypedDockerfile, ParseError> {
    let mut asm = lower::Assembler::default();
    let head = parse_each(source, |node, place, _| asm.push(node, place))?;
    Ok(asm.finish(head.directives, head.escape, head.warnings))
}

/// What a parse finds besides the instructions (see [`parse_streamed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Parser directives in the order written.
    pub directives: Vec<Directive>,
    /// The escape character.
    pub escape: char,
    /// Sorted as [`TypedDockerfile::warnings`].
    pub warnings: Vec<Warning>,
}

/// Parses `source` and hands each instruction, checked, to `each` in file order (global ARGs,
/// then each stage's FROM and its instructions, as [`TypedDockerfile::instructions`]) without keeping
/// them: for a reader that needs one instruction at a time, the memory is the text's, not the
/// AST's. An error anywhere in the file fails the whole parse, with the error [`parse`] gives,
/// after some instructions may have been handed over: buffer what `each` produces until this
/// returns `Ok` if nothing must come out of a file that does not parse.
pub fn parse_streamed(
    source: &Text,
    mut each: impl FnMut(&InstructionNode),
) -> Result<Summary, ParseError> {
    parse_each(source, |node, _, _| each(&node))
}

/// Parses `source` and hands each instruction, checked, to `each` in file order, without
/// keeping them: [`parse_shared`] keeps them in a [`TypedDockerfile`], the JSON dump writes them out
/// as they come. The errors are the same either way: an error found after some instructions
/// were handed over makes the whole parse fail.
pub(crate) fn parse_each(
    source: &Text,
    mut each: impl FnMut(InstructionNode, lower::Place, &'static str),
) -> Result<Summary, ParseError> {
    parse_loop(source, true, |raw, instruction, place, name| {
        if let Some(instruction) = instruction {
            each(InstructionNode { instruction, raw }, place, name);
        }
    })
}

/// [`parse_each`] for a reader of the raw layer alone: the instructions are checked as
/// [`parse`] checks them (the same errors and warnings), but the typed form is only built where
/// [`lower::valid_without_lowering`] cannot tell that it would lower cleanly.
pub(crate) fn parse_each_raw(
    source: &Text,
    mut each: impl FnMut(&RawInstruction, &'static str),
) -> Result<Summary, ParseError> {
    parse_loop(source, false, |raw, _, _, name| each(&raw, name))
}

/// The loop of [`parse_each`] and [`parse_each_raw`]: `each` gets the raw instruction and its
/// typed form (always when `typed`).
fn parse_loop(
    source: &Text,
    typed: bool,
    mut each: impl FnMut(RawInstruction, Option<Instruction>, lower::Place, &'static str),
) -> Result<Summary, ParseError> {
    if source.len() >= text::MAX_TEXT_LEN {
        return Err(too_large(source.len()));
    }
    let src = source.as_str();
    let mut reader = RawReader::new(source);
    let mut ctx = lower::Ctx {
        src,
        warnings: Vec::new(),
    };
    let mut checker = lower::Checker::default();
    while let Some((r, name)) = reader.next_instruction()? {
        let lowered = if !typed && lower::valid_without_lowering(&r, name) {
            #[cfg(test)]
            lower::assert_lowers_cleanly(&r, name, src);
            Ok(None)
        } else {
            lower::lower_named(&r, name, &mut ctx).map(Some)
        };
        let checked = lowered.and_then(|instruction| {
            checker
                .check(&r, instruction.as_ref(), name, &mut ctx)
                .map(|place| (instruction, place))
        });
        match checked {
            Ok((instruction, place)) => each(r, instruction, place, name),
            Err(e) => {
                // An error of the line pre-pass or of the raw layer anywhere in the file comes
                // first, as when the whole raw layer was read before lowering.
                while reader.next_instruction()?.is_some() {}
                return Err(e);
            }
        }
    }
    let (directives, escape, mut warnings) = reader.finish()?;
    if !checker.has_stage {
        return Err(ParseError::new(
            ParseErrorKind::NoStage,
            checker.last_global_arg.unwrap_or_default(),
            "expected a FROM instruction after the global ARGs, found the end of the file",
            src,
        )
        .with_help("add `FROM <image>` to start a build stage"));
    }
    warnings.append(&mut ctx.warnings);
    warnings.sort_by_key(|w| (w.span.start, w.line));
    Ok(Summary {
        directives,
        escape,
        warnings,
    })
}
