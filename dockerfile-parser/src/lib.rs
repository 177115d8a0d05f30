//! Dockerfile parser for kiln.
//!
//! Owns the Dockerfile language: it turns text into a typed AST with spans. It performs no I/O and
//! knows nothing of async runtimes.
#![deny(missing_docs)]

pub mod ast;
pub mod dump;
pub mod error;
mod grammar;
mod lower;
pub mod mount;
mod raw;
mod scan;
pub mod shell;
pub mod span;
pub mod values;

pub use ast::*;
pub use error::{ParseError, ParseErrorKind};
pub use span::{LineIndex, Span, Spanned};

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
    let mut scanner = Scanner::new(src);
    let mut instructions = Vec::with_capacity(src.len() / 64 + 1);
    while let Some(line) = scanner.next_logical()? {
        let builder = RawBuilder {
            line: &line,
            escape: scanner.escape,
            src,
        };
        let (mut raw, pending) = builder.build(0)?;
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
            raw.heredocs.push(finish_heredoc(p, content, body));
        }
        raw.end_line = scanner.line();
        // The logical line is the original text; hand it over instead of copying it.
        raw.original = line.text;
        instructions.push(raw);
    }
    if instructions.is_empty() {
        return Err(ParseError::new(
            ParseErrorKind::Empty,
            Span::empty(src.len()),
            "expected at least a FROM instruction",
            src,
        )
        .with_help("a Dockerfile needs at least `FROM <image>`"));
    }
    Ok(RawDockerfile {
        directives: std::mem::take(&mut scanner.directives),
        escape: scanner.escape,
        instructions,
        warnings: std::mem::take(&mut scanner.warnings),
    })
}

/// Parse a Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    let raw = parse_raw(src)?;
    let mut ctx = lower::Ctx {
        src,
        warnings: raw.warnings,
    };
    let mut asm = lower::Assembler::default();
    for r in raw.instructions {
        let instruction = lower::lower(&r, &mut ctx)?;
        asm.push(
            InstructionNode {
                instruction,
                raw: r,
            },
            &mut ctx,
        )?;
    }
    let (global_args, stages) = (asm.global_args, asm.stages);
    if stages.is_empty() {
        let at = global_args.last().map(|n| n.raw.span).unwrap_or_default();
        return Err(ParseError::new(
            ParseErrorKind::NoStage,
            at,
            "expected a FROM instruction after the global ARGs, found the end of the file",
            src,
        )
        .with_help("add `FROM <image>` to start a build stage"));
    }
    Ok(lower::finish(
        raw.directives,
        raw.escape,
        global_args,
        stages,
        ctx.warnings,
    ))
}
