//! What [`crate::parse`] returns: one block per instruction (see docs/architecture.md, "One
//! block per instruction").
//!
//! [`parse_blocks`] (which [`crate::parse`] calls) checks a Dockerfile exactly as the typed layer
//! ([`crate::parse_typed`]) does (same errors, same warnings) but keeps each instruction as a
//! [`Block`]: the instruction's logical line (a [`Text`], which for a single-line instruction is
//! the source itself), its positions, and where its [`WordRef`]s (keyword, the rest of the line,
//! flags, arguments; each a byte range of the line and a source span) start in the file's one list
//! of words. A block allocates nothing of its own, and dropping the file is a few frees and one
//! reference count per block. Embedders read a block through a [`BlockRef`] (the block and its
//! words): [`BlockRef::view`] gives the typed reading, borrowing the file.
//!
//! The common shapes (plain flag words, no heredoc, JSON strings without escapes) are read
//! straight into blocks. The others (heredocs, ONBUILD, HEALTHCHECK, quoted flags, escaped
//! JSON strings) go through the raw layer and its lowering, for the checks, and are then kept
//! as blocks too: heredocs in the file's side list (the block holds a range of it), an
//! ONBUILD's trigger as a block of the file's trigger list, texts that are not slices of the
//! line (unquoted flags, decoded JSON strings) appended to the block's own copy of the line.
//!
//! ```
//! use kiln_dockerfile_parser::block::{parse_blocks, View};
//! use kiln_dockerfile_parser::Text;
//!
//! let file = parse_blocks(&Text::from("FROM alpine AS build\nRUN make\nCOPY a b /dst/\n"))?;
//! let stage = file.stages().next().unwrap();
//! assert_eq!(stage.name(), Some("build"));
//! for block in stage.instructions() {
//!     match block.view() {
//!         View::Run(cmd) => assert_eq!(cmd.shell().map(|w| w.text), Some("make")),
//!         View::Copy { sources, dest, .. } => {
//!             assert_eq!(sources.map(|w| w.text).collect::<Vec<_>>(), ["a", "b"]);
//!             assert_eq!(dest.text, "/dst/");
//!         }
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! # Ok::<(), kiln_dockerfile_parser::ParseError>(())
//! ```

use crate::ast::Heredoc;
use crate::span::Span;
use crate::text::Text;

mod build;
mod checks;
mod file;
pub use file::Dockerfile;
mod node;
pub use build::parse_blocks;

/// [`Block::bits`]: the block is an ONBUILD's trigger.
const TRIGGER: u8 = 1;
/// [`Block::bits`]: an ONBUILD whose trigger does not lower (a warning, as in BuildKit).
const TRIGGER_INVALID: u8 = 2;
/// [`Block::bits`]: the exec (JSON) form was used.
const JSON: u8 = 4;

/// A word of a block: a byte range of the block's line and where it was written. 16 bytes, no
/// reference count: the block holds the line once for all its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WordRef {
    start: u32,
    end: u32,
    span: Span,
}

/// A word read from a block: its text (unexpanded) and where it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordView<'a> {
    /// The text as written (quotes kept, variables unexpanded).
    pub text: &'a str,
    /// Where it was written in the source.
    pub span: Span,
}

/// What kind of instruction a fast block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    From,
    Run,
    Cmd,
    Entrypoint,
    Copy,
    Add,
    Env,
    Label,
    Arg,
    Expose,
    Volume,
    User,
    Workdir,
    Stopsignal,
    Shell,
    Maintainer,
    Healthcheck,
    Onbuild,
}

/// One instruction: its line, where its words are in the file's word list, and its positions.
/// No allocation of its own (read it through a [`BlockRef`]).
#[derive(Debug, Clone)]
pub struct Block {
    /// The logical line (the source itself for a single-line instruction), followed by the
    /// texts of words that are not slices of it, if any.
    line: Text,
    /// Where `[keyword, rest, flags..., args...]` start in [`Dockerfile`]'s word list.
    first: u32,
    /// How many words.
    len: u32,
    span: Span,
    start_line: u32,
    end_line: u32,
    /// The length of the logical line in `line`.
    orig_len: u32,
    /// ONBUILD: its trigger's index in [`Dockerfile`]'s triggers; otherwise where the block's
    /// heredocs start in the file's heredoc list.
    ext: u32,
    /// How many heredocs.
    heredocs: u32,
    /// How many flag words follow the keyword and the rest.
    flags: u16,
    kind: Kind,
    /// [`JSON`], [`TRIGGER`], [`TRIGGER_INVALID`].
    bits: u8,
}

impl Block {
    fn json(&self) -> bool {
        self.bits & JSON != 0
    }
}

/// A flag word as written (`--from=build`), read from a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagView<'a> {
    /// The whole flag word.
    pub text: &'a str,
    /// The name without `--`.
    pub name: &'a str,
    /// The value after the first `=`, if any (unexpanded).
    pub value: Option<&'a str>,
    /// Where the flag was written.
    pub span: Span,
}

impl<'a> FlagView<'a> {
    pub(super) fn of(w: WordView<'a>) -> Self {
        let body = w.text.get(2..).unwrap_or("");
        let (name, value) = match body.find('=') {
            Some(eq) => (&body[..eq], Some(&body[eq + 1..])),
            None => (body, None),
        };
        FlagView {
            text: w.text,
            name,
            value,
            span: w.span,
        }
    }

    /// The value as a word spanning the whole flag (as [`crate::Flag::value_word`]).
    pub fn value_word(&self) -> WordView<'a> {
        WordView {
            text: self.value.unwrap_or(""),
            span: self.span,
        }
    }
}

/// The words of a block, in order (an exact-size iterator of [`WordView`]s).
#[derive(Debug, Clone)]
pub struct Words<'a> {
    line: &'a str,
    refs: std::slice::Iter<'a, WordRef>,
}

impl<'a> Iterator for Words<'a> {
    type Item = WordView<'a>;
    fn next(&mut self) -> Option<WordView<'a>> {
        self.refs.next().map(|w| view_of(self.line, w))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.refs.size_hint()
    }
}

impl ExactSizeIterator for Words<'_> {}

/// `key=value` pairs of ENV and LABEL, in order.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    line: &'a str,
    triples: std::slice::ChunksExact<'a, WordRef>,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (WordView<'a>, WordView<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        self.triples
            .next()
            .map(|t| (view_of(self.line, &t[0]), view_of(self.line, &t[1])))
    }
}

/// A command in shell form (the rest of the line) or exec form (the JSON array's strings).
#[derive(Debug, Clone)]
pub enum CommandView<'a> {
    /// `RUN make all`
    Shell(WordView<'a>),
    /// `RUN ["make", "all"]`
    Exec(Words<'a>),
}

impl<'a> CommandView<'a> {
    /// The shell-form command, if it is one.
    pub fn shell(&self) -> Option<WordView<'a>> {
        match self {
            CommandView::Shell(w) => Some(*w),
            CommandView::Exec(_) => None,
        }
    }
}

/// The typed reading of a block, borrowing it.
#[derive(Debug, Clone)]
pub enum View<'a> {
    /// `FROM image [AS name]`
    From {
        /// The image or stage, unexpanded.
        image: WordView<'a>,
        /// The alias as written.
        alias: Option<WordView<'a>>,
    },
    /// `RUN`
    Run(CommandView<'a>),
    /// `CMD`
    Cmd(CommandView<'a>),
    /// `ENTRYPOINT`
    Entrypoint(CommandView<'a>),
    /// `COPY` (`add` false) or `ADD` (`add` true)
    Copy {
        /// Whether it is ADD.
        add: bool,
        /// Sources, unexpanded.
        sources: Sources<'a>,
        /// Destination, unexpanded.
        dest: WordView<'a>,
        /// The JSON form was used.
        json: bool,
    },
    /// `ENV` (`label` false) or `LABEL` (`label` true)
    Pairs {
        /// Whether it is LABEL.
        label: bool,
        /// The pairs.
        pairs: Pairs<'a>,
    },
    /// `ARG name[=default] ...`: the words as written.
    Arg(Words<'a>),
    /// `EXPOSE`
    Expose(Words<'a>),
    /// `VOLUME`
    Volume(Words<'a>),
    /// `USER`
    User(WordView<'a>),
    /// `WORKDIR`
    Workdir(WordView<'a>),
    /// `STOPSIGNAL`
    Stopsignal(WordView<'a>),
    /// `SHELL ["executable", "params"]`
    Shell(Words<'a>),
    /// `MAINTAINER name` (deprecated)
    Maintainer(WordView<'a>),
    /// `HEALTHCHECK CMD command` (the durations and retries through
    /// [`BlockRef::healthcheck_duration`] and [`BlockRef::healthcheck_retries`]), or `None` for
    /// `HEALTHCHECK NONE`.
    Healthcheck(Option<CommandView<'a>>),
    /// `ONBUILD trigger`: the trigger, `None` when it does not lower (accepted with a warning,
    /// as in BuildKit); the expression through [`BlockRef::onbuild_expression`].
    Onbuild(Option<BlockRef<'a>>),
}

pub(super) fn view_of<'a>(line: &'a str, w: &WordRef) -> WordView<'a> {
    WordView {
        // The ranges are made on character boundaries of this line.
        text: line.get(w.start as usize..w.end as usize).unwrap_or(""),
        span: w.span,
    }
}

/// A block with its words: what an embedder reads.
#[derive(Debug, Clone, Copy)]
pub struct BlockRef<'a> {
    block: &'a Block,
    words: &'a [WordRef],
    file: &'a Dockerfile,
}

impl<'a> BlockRef<'a> {
    fn word(self, i: usize) -> WordView<'a> {
        self.words
            .get(i)
            .map(|w| view_of(self.block.line.as_str(), w))
            .unwrap_or(WordView {
                text: "",
                span: self.block.span,
            })
    }

    fn words_from(self, a: usize, b: usize) -> Words<'a> {
        Words {
            line: self.block.line.as_str(),
            refs: self
                .words
                .get(a..b.min(self.words.len()))
                .unwrap_or(&[])
                .iter(),
        }
    }

    /// The arguments after the flags, split as BuildKit splits them for this keyword.
    pub fn args(self) -> Words<'a> {
        self.words_from(self.first_arg(), self.words.len())
    }

    pub(super) fn first_arg(self) -> usize {
        2 + self.block.flags as usize
    }

    /// The flag words as written (`--from=build`), in order: [`Self::flags`] without splitting
    /// them into name and value.
    pub fn flag_words(self) -> Words<'a> {
        self.words_from(2, self.first_arg())
    }

    /// The flags as written, in order.
    pub fn flags(self) -> impl ExactSizeIterator<Item = FlagView<'a>> + 'a {
        self.words_from(2, self.first_arg()).map(FlagView::of)
    }

    /// The value of the flag called `name` as a word spanning the flag (`--from=`, `--chown=`,
    /// `--platform=`), if it was given.
    pub fn flag_value(self, name: &str) -> Option<WordView<'a>> {
        self.flags()
            .find(|f| f.name == name)
            .map(|f| f.value_word())
    }

    /// RUN's `--mount=` flags, parsed as the lowering parses them (each time this is called: the
    /// block keeps the flag words only).
    pub fn mounts(self) -> impl Iterator<Item = crate::ast::MountSpec> + 'a {
        self.words[2.min(self.words.len())..self.first_arg().min(self.words.len())]
            .iter()
            .filter(|w| self.block.line[w.start as usize..w.end as usize].starts_with("--mount="))
            .filter_map(|w| {
                checks::mount_of(&self.block.line, w.start as usize, w.end as usize, w.span)
            })
    }

    /// Whether the boolean flag `name` (`--link`) is on.
    pub fn flag_on(self, name: &str) -> bool {
        self.flags()
            .find(|f| f.name == name)
            .is_some_and(|f| f.value.is_none_or(|v| v.eq_ignore_ascii_case("true")))
    }

    /// The keyword as written.
    pub fn keyword(self) -> WordView<'a> {
        self.word(0)
    }

    /// The rest of the line after the flags (trimmed), unsplit.
    pub fn rest(self) -> WordView<'a> {
        self.word(1)
    }

    /// The lower-case keyword (`run`, `copy`, ...).
    pub fn name(self) -> &'static str {
        node::name_of(self.block.kind)
    }

    /// Whether the exec (JSON) form was used.
    pub fn is_json(self) -> bool {
        self.block.json()
    }

    /// Byte span of the whole instruction.
    pub fn span(self) -> Span {
        self.block.span
    }

    /// 1-based first line.
    pub fn start_line(self) -> usize {
        self.block.start_line as usize
    }

    /// 1-based last line.
    pub fn end_line(self) -> usize {
        self.block.end_line as usize
    }

    /// The logical line (continuations joined).
    pub fn original(self) -> &'a str {
        self.block
            .line
            .get(..self.block.orig_len as usize)
            .unwrap_or("")
    }

    /// The typed reading.
    pub fn view(self) -> View<'a> {
        let n = self.words.len();
        let a = self.first_arg();
        let command = || {
            if self.block.json() {
                CommandView::Exec(self.words_from(a, n))
            } else {
                CommandView::Shell(self.word(1))
            }
        };
        match self.block.kind {
            Kind::From => View::From {
                image: self.word(a),
                alias: (n == a + 3).then(|| self.word(a + 2)),
            },
            Kind::Run => View::Run(command()),
            Kind::Cmd => View::Cmd(command()),
            Kind::Entrypoint => View::Entrypoint(command()),
            Kind::Copy | Kind::Add => View::Copy {
                add: self.block.kind == Kind::Add,
                sources: Sources {
                    words: self.words_from(a, n.saturating_sub(1)),
                    heredocs: if self.block.json() {
                        &[]
                    } else {
                        self.heredocs()
                    },
                },
                dest: self.word(n.saturating_sub(1)),
                json: self.block.json(),
            },
            Kind::Env | Kind::Label => View::Pairs {
                label: self.block.kind == Kind::Label,
                pairs: Pairs {
                    line: self.block.line.as_str(),
                    triples: self.words.get(a..).unwrap_or(&[]).chunks_exact(3),
                },
            },
            Kind::Arg => View::Arg(self.args()),
            Kind::Expose => View::Expose(self.args()),
            Kind::Volume => View::Volume(self.args()),
            Kind::User => View::User(self.word(a)),
            Kind::Workdir => View::Workdir(self.word(a)),
            Kind::Stopsignal => View::Stopsignal(self.word(a)),
            Kind::Shell => View::Shell(self.args()),
            Kind::Maintainer => View::Maintainer(self.word(a)),
            Kind::Healthcheck => {
                if self.word(a).text.eq_ignore_ascii_case("none") {
                    View::Healthcheck(None)
                } else if self.block.json() {
                    View::Healthcheck(Some(CommandView::Exec(self.words_from(a + 1, n))))
                } else {
                    View::Healthcheck(Some(CommandView::Shell(self.word(a + 1))))
                }
            }
            Kind::Onbuild => View::Onbuild(
                self.trigger()
                    .filter(|_| self.block.bits & TRIGGER_INVALID == 0),
            ),
        }
    }
}

/// The sources of COPY and ADD: its arguments but the last, without the heredoc markers whose
/// bodies are inline files ([`BlockRef::heredocs`]).
#[derive(Debug, Clone)]
pub struct Sources<'a> {
    words: Words<'a>,
    heredocs: &'a [Heredoc],
}

impl<'a> Iterator for Sources<'a> {
    type Item = WordView<'a>;
    fn next(&mut self) -> Option<WordView<'a>> {
        if self.heredocs.is_empty() {
            return self.words.next();
        }
        self.words.by_ref().find(|w| {
            !matches!(crate::raw::parse_heredoc_marker(w.text),
                Ok(Some((name, ..))) if self.heredocs.iter().any(|h| h.name == name))
        })
    }
}

/// `block` with its words out of the file's list.
fn with_words<'a>(block: &'a Block, file: &'a Dockerfile) -> BlockRef<'a> {
    let words = &file.words;
    let first = (block.first as usize).min(words.len());
    let end = (first + block.len as usize).min(words.len());
    BlockRef {
        block,
        words: &words[first..end],
        file,
    }
}

/// A stage: its FROM block and the blocks after it.
#[derive(Debug, Clone, Copy)]
pub struct StageView<'a> {
    name: Option<&'a str>,
    blocks: &'a [Block],
    file: &'a Dockerfile,
}

impl<'a> StageView<'a> {
    /// The stage name, lower-cased.
    pub fn name(&self) -> Option<&'a str> {
        self.name
    }
    /// The FROM instruction.
    pub fn from(&self) -> BlockRef<'a> {
        with_words(&self.blocks[0], self.file)
    }
    /// The instructions after FROM.
    pub fn instructions(&self) -> impl ExactSizeIterator<Item = BlockRef<'a>> + 'a {
        let file = self.file;
        self.blocks[1..].iter().map(move |b| with_words(b, file))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
pub(crate) mod tests;
