//! The state of a stage being planned (its input, scope, config and steps so far) and what the
//! planning of every instruction shares: expansion against its ENV and ARG values within the
//! plan's budget, steps with their origins, paths against WORKDIR, command forms as argv,
//! `--from` references, and the planner's view of words.

use std::collections::{BTreeMap, BTreeSet};

use kiln_dockerfile_parser::block::{BlockRef, CommandView, WordView};
use kiln_dockerfile_parser::shell::Expander;
use kiln_dockerfile_parser::{Span, Word};

use super::scope::{PROXY_ARGS, StageScope};
use super::{ContainerConfig, PlanError, PlanOptions, origin_of_block};
use crate::graph::{Base, ImageRef, Op, SourceRef, Step};

pub(super) struct StageInput<'a> {
    pub df: &'a kiln_dockerfile_parser::Dockerfile,
    pub index: usize,
    pub base: Base,
    pub globals: &'a [(String, Option<String>)],
    pub opts: &'a PlanOptions,
    pub is_target: bool,
    pub budget: &'a super::limits::Budget,
    /// The platform the stage runs on (`FROM --platform`, else its base stage's, else the
    /// target's).
    pub platform: crate::image::Platform,
}

pub(super) struct StageState<'a> {
    pub(super) input: &'a StageInput<'a>,
    pub(super) expander: Expander,
    pub(super) config: ContainerConfig,
    pub(super) author: Option<String>,
    pub(super) scope: StageScope,
    pub(super) steps: Vec<Step>,
    pub(super) depends_on: BTreeSet<usize>,
    /// The first reference to each stage in `depends_on`, for cycle errors.
    pub(super) dep_spans: BTreeMap<usize, Span>,
    pub(super) image_sources: BTreeSet<ImageRef>,
    pub(super) cmd_set: bool,
    /// Where each ENV and ARG of this stage got its value, for errors about them.
    pub(super) set_at: BTreeMap<String, Span>,
    /// The first error that counts only if the build runs this stage (a bad mount option).
    pub(super) deferred: Option<PlanError>,
    /// While a base image's ONBUILD trigger is planned: the span and lines of the FROM that
    /// inherited it, which its steps and errors point at.
    pub(super) at_from: Option<(Span, usize, usize)>,
}

/// Cleans an absolute container path the way Go's `path.Clean` does (keeping it absolute).
pub(crate) fn clean_abs(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

impl StageState<'_> {
    /// The value of `$name` for expansion: ENV wins over ARG.
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.config.env_get(name) {
            return Some(v.to_string());
        }
        self.scope.arg(name).map(str::to_string)
    }

    pub(super) fn expand(&self, word: WordView<'_>, what: &str) -> Result<String, PlanError> {
        let lookup = |k: &str| self.lookup(k);
        let value = self
            .expander
            .expand(word.text, &lookup)
            .map(|e| e.value)
            .map_err(|source| PlanError::Expand {
                what: what.to_string(),
                span: word.span,
                source,
            })?;
        self.input.budget.take(value.len(), word.span)?;
        Ok(value)
    }

    pub(super) fn expand_words(
        &self,
        word: WordView<'_>,
        what: &str,
    ) -> Result<Vec<String>, PlanError> {
        let lookup = |k: &str| self.lookup(k);
        let words = self
            .expander
            .expand_words(word.text, &lookup)
            .map(|e| e.words)
            .map_err(|source| PlanError::Expand {
                what: what.to_string(),
                span: word.span,
                source,
            })?;
        let size = words.iter().map(String::len).sum();
        self.input.budget.take(size, word.span)?;
        Ok(words)
    }

    pub(super) fn push(&mut self, block: BlockRef<'_>, op: Op, created_by: String) {
        let mut origin = origin_of_block(block);
        if let Some((span, start_line, end_line)) = self.at_from {
            origin.span = span;
            origin.start_line = start_line;
            origin.end_line = end_line;
        }
        self.steps.push(Step {
            origin,
            op,
            created_by,
        });
    }

    /// The span an instruction's own errors point at (the inheriting FROM for a trigger).
    pub(super) fn span_of(&self, block: BlockRef<'_>) -> Span {
        self.at_from.map_or(block.span(), |(span, ..)| span)
    }

    /// The first line of [`Self::span_of`].
    pub(super) fn line_of(&self, block: BlockRef<'_>) -> usize {
        self.at_from.map_or(block.start_line(), |(_, line, _)| line)
    }

    /// Build args in effect for RUN: declared in this stage, with a value, not shadowed by ENV.
    pub(super) fn run_args(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .scope
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .filter(|(k, _)| self.config.env_get(k).is_none())
            .collect();
        for proxy in PROXY_ARGS {
            if let Some(v) = self.input.opts.build_args.get(*proxy)
                && !out.iter().any(|(k, _)| k == proxy)
            {
                out.push((proxy.to_string(), v.clone()));
            }
        }
        out
    }

    pub(super) fn abs_path(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else {
            format!(
                "{}/{}",
                self.config.workdir_or_root().trim_end_matches('/'),
                path
            )
        }
    }

    pub(super) fn command_argv(&self, form: &CommandView<'_>) -> Vec<String> {
        match form {
            CommandView::Exec(v) => v.clone().map(|w| w.text.to_string()).collect(),
            CommandView::Shell(w) => self.shell_argv(w.text.to_string()),
        }
    }

    /// The stage's shell (`SHELL`, or `/bin/sh -c`) running `script`.
    pub(super) fn shell_argv(&self, script: String) -> Vec<String> {
        let mut argv = self.config.shell_or_default();
        argv.push(script);
        argv
    }

    pub(super) fn source_ref(&mut self, from: &str, span: Span) -> Result<SourceRef, PlanError> {
        let source = super::names::source_for(self.input.df, self.input.opts, from, span)?;
        match &source {
            SourceRef::Stage(i) => {
                self.depends_on.insert(*i);
                self.dep_spans.entry(*i).or_insert(span);
            }
            SourceRef::Image(r) => {
                self.image_sources.insert(r.clone());
            }
            SourceRef::Context | SourceRef::Dir(_) => {}
        }
        Ok(source)
    }
}

/// An ARG word split into its name and default (`name=default`), as the lowering splits it.
pub(super) fn arg_parts(w: WordView<'_>) -> (WordView<'_>, Option<WordView<'_>>) {
    match w.text.split_once('=') {
        Some((name, value)) => {
            let eq = w.span.start() + name.len();
            (
                WordView {
                    text: name,
                    span: Span::new(w.span.start(), eq),
                },
                Some(WordView {
                    text: value,
                    span: Span::new((eq + 1).min(w.span.end()), w.span.end()),
                }),
            )
        }
        None => (w, None),
    }
}

/// A parsed word as the planner reads it.
pub(super) fn view_of(w: &Word) -> WordView<'_> {
    WordView {
        text: w.as_str(),
        span: w.span,
    }
}
