//! Blocks of the rarer shapes (heredocs, ONBUILD, HEALTHCHECK, quoted flags, JSON strings with
//! escapes), made from the raw instruction the full path reads, and the raw and typed forms of
//! any block read back from it.

use super::{Block, BlockRef, Kind, TRIGGER, WordRef, WordView, with_words};
use crate::ast::{DurationFlag, Flag, Heredoc, InstructionNode, RawInstruction, Word};
use crate::lower;
use crate::span::Span;
use crate::text::Text;

/// The kind of a keyword's lower-case name; `None` for an unknown keyword.
pub(super) fn kind_of(name: &str) -> Option<Kind> {
    Some(match name {
        "from" => Kind::From,
        "run" => Kind::Run,
        "cmd" => Kind::Cmd,
        "entrypoint" => Kind::Entrypoint,
        "copy" => Kind::Copy,
        "add" => Kind::Add,
        "env" => Kind::Env,
        "label" => Kind::Label,
        "arg" => Kind::Arg,
        "expose" => Kind::Expose,
        "volume" => Kind::Volume,
        "user" => Kind::User,
        "workdir" => Kind::Workdir,
        "stopsignal" => Kind::Stopsignal,
        "shell" => Kind::Shell,
        "maintainer" => Kind::Maintainer,
        "healthcheck" => Kind::Healthcheck,
        "onbuild" => Kind::Onbuild,
        _ => return None,
    })
}

/// The lower-case name of a kind.
pub(super) fn name_of(kind: Kind) -> &'static str {
    match kind {
        Kind::From => "from",
        Kind::Run => "run",
        Kind::Cmd => "cmd",
        Kind::Entrypoint => "entrypoint",
        Kind::Copy => "copy",
        Kind::Add => "add",
        Kind::Env => "env",
        Kind::Label => "label",
        Kind::Arg => "arg",
        Kind::Expose => "expose",
        Kind::Volume => "volume",
        Kind::User => "user",
        Kind::Workdir => "workdir",
        Kind::Stopsignal => "stopsignal",
        Kind::Shell => "shell",
        Kind::Maintainer => "maintainer",
        Kind::Healthcheck => "healthcheck",
        Kind::Onbuild => "onbuild",
    }
}

/// Words of one raw instruction as ranges of its line; a text that is not a slice of the line
/// (an unquoted flag, a decoded JSON string) is appended after the line, in `extra`.
struct Placer<'a> {
    line: &'a str,
    extra: String,
}

impl Placer<'_> {
    fn place(&mut self, text: &str, span: Span) -> WordRef {
        let base = self.line.as_ptr() as usize;
        let at = text.as_ptr() as usize;
        if !text.is_empty() && at >= base && at + text.len() <= base + self.line.len() {
            let start = at - base;
            return WordRef {
                start: start as u32,
                end: (start + text.len()) as u32,
                span,
            };
        }
        let start = self.line.len() + self.extra.len();
        self.extra.push_str(text);
        WordRef {
            start: start as u32,
            end: (start + text.len()) as u32,
            span,
        }
    }
}

/// The block of `raw` (already checked and lowered), its words pushed to `words`: keyword, rest,
/// flags, arguments. The caller sets the heredoc range and, for ONBUILD, the trigger.
pub(super) fn block_of_raw(raw: &RawInstruction, kind: Kind, words: &mut Vec<WordRef>) -> Block {
    let line = raw.original.as_str();
    let mut placer = Placer {
        line,
        extra: String::new(),
    };
    let first = words.len();
    words.push(placer.place(&raw.keyword.text, raw.keyword.span));
    words.push(placer.place(&raw.rest.text, raw.rest.span));
    for f in raw.flags.iter() {
        words.push(placer.place(&f.text, f.span));
    }
    for a in raw.args.iter() {
        words.push(placer.place(&a.text, a.span));
    }
    let text = if placer.extra.is_empty() {
        raw.original.clone()
    } else {
        let mut s = String::with_capacity(line.len() + placer.extra.len());
        s.push_str(line);
        s.push_str(&placer.extra);
        Text::from(s)
    };
    Block {
        line: text,
        first: first as u32,
        len: (words.len() - first) as u32,
        span: raw.span,
        start_line: raw.start_line,
        end_line: raw.end_line,
        orig_len: line.len() as u32,
        ext: 0,
        heredocs: 0,
        kind,
        // The raw layer refuses more than `MAX_FLAGS` flags.
        flags: raw.flags.len().min(crate::MAX_FLAGS) as u16,
        bits: if raw.json { super::JSON } else { 0 },
    }
}

impl<'a> BlockRef<'a> {
    /// The heredocs of RUN, COPY, ADD (and of an ONBUILD and its trigger), in order.
    pub fn heredocs(self) -> &'a [Heredoc] {
        if self.block.kind == Kind::Onbuild && self.block.bits & TRIGGER == 0 {
            return self.trigger().map_or(&[], |t| t.heredocs());
        }
        let a = self.block.ext as usize;
        let b = a + self.block.heredocs as usize;
        self.file.heredocs.get(a..b).unwrap_or(&[])
    }

    /// COPY's and ADD's inline files: for each source that is a heredoc marker, in order, the
    /// heredoc it names (as the lowering's `CopyInstruction::heredocs`).
    pub fn inline_files(self) -> impl Iterator<Item = &'a Heredoc> + 'a {
        let heredocs = if self.block.json() {
            &[]
        } else {
            self.heredocs()
        };
        let n = self.words.len();
        let sources = if heredocs.is_empty() {
            self.words_from(0, 0)
        } else {
            self.words_from(self.first_arg(), n.saturating_sub(1))
        };
        sources.filter_map(move |w| match crate::raw::parse_heredoc_marker(w.text) {
            Ok(Some((name, ..))) => heredocs.iter().find(|h| h.name == name),
            _ => None,
        })
    }

    /// ONBUILD's trigger (whether or not it lowers).
    pub fn trigger(self) -> Option<BlockRef<'a>> {
        if self.block.kind != Kind::Onbuild || self.block.bits & TRIGGER != 0 {
            return None;
        }
        let t = self.file.triggers.get(self.block.ext as usize)?;
        Some(with_words(t, self.file))
    }

    /// ONBUILD's trigger text as the image config stores it (BuildKit's expression: the line
    /// without `ONBUILD`, heredoc bodies appended).
    pub fn onbuild_expression(self) -> String {
        let line = self.original().trim_start();
        let mut expression = line
            .get(self.keyword().text.len()..)
            .unwrap_or("")
            .trim_start()
            .to_string();
        for h in self.heredocs() {
            expression.push('\n');
            expression.push_str(&h.content);
            expression.push_str(&h.name);
        }
        expression
    }

    /// A HEALTHCHECK duration flag (`interval`, `timeout`, `start-period`, `start-interval`),
    /// checked while parsing.
    pub fn healthcheck_duration(self, name: &str) -> Option<DurationFlag> {
        let w = self.flag_value(name)?;
        let value = crate::values::parse_go_duration(w.text).ok()?;
        Some(DurationFlag {
            raw: crate::ast::Word::new(self.block.line.slice_ref(w.text), w.span),
            value,
        })
    }

    /// HEALTHCHECK's `--retries=`, checked while parsing.
    pub fn healthcheck_retries(self) -> Option<u32> {
        self.flag_value("retries")?.text.parse().ok()
    }

    fn text_word(self, w: &WordRef) -> Word {
        let line = &self.block.line;
        let (a, b) = (w.start as usize, w.end as usize);
        let text = if line.get(a..b).is_some() {
            line.slice(a..b)
        } else {
            Text::default()
        };
        Word { text, span: w.span }
    }

    /// The instruction in the raw layer's form ([`crate::parse_raw`]'s), built from the block.
    pub fn to_raw(self) -> RawInstruction {
        let w = |i: usize| {
            self.words
                .get(i)
                .map(|w| self.text_word(w))
                .unwrap_or_default()
        };
        let flags = self.words[2.min(self.words.len())..self.first_arg().min(self.words.len())]
            .iter()
            .map(|r| {
                let word = self.text_word(r);
                let f = super::FlagView::of(WordView {
                    text: &word.text,
                    span: r.span,
                });
                let (name, value) = (
                    word.text.slice_ref(f.name),
                    f.value.map(|v| word.text.slice_ref(v)),
                );
                Flag {
                    name,
                    value,
                    text: word.text,
                    span: r.span,
                }
            })
            .collect();
        let args = self.words[self.first_arg().min(self.words.len())..]
            .iter()
            .map(|r| self.text_word(r))
            .collect();
        let sub = self.trigger().map(|t| Box::new(t.to_raw()));
        let heredocs: Box<[Heredoc]> = if self.block.bits & super::TRIGGER != 0 {
            Box::default()
        } else {
            self.heredocs().into()
        };
        RawInstruction {
            keyword: w(0),
            flags,
            args,
            rest: w(1),
            json: self.block.json(),
            sub,
            heredocs,
            original: self.block.line.slice(0..self.original().len()),
            span: self.block.span,
            start_line: self.block.start_line,
            end_line: self.block.end_line,
        }
    }

    /// The instruction in today's typed form (the raw layer and its lowering), built from the
    /// block: `None` only if the lowering refuses what the parse accepted, which it does not.
    pub fn to_node(self) -> Option<InstructionNode> {
        let mut raw = self.to_raw();
        if self.block.bits & super::TRIGGER != 0 {
            // A trigger is lowered with its ONBUILD's heredocs.
            raw.heredocs = self.heredocs().into();
        }
        let mut ctx = lower::Ctx {
            src: "",
            warnings: Vec::new(),
        };
        let instruction = lower::lower_named(&raw, name_of(self.block.kind), &mut ctx).ok()?;
        Some(InstructionNode { instruction, raw })
    }
}
