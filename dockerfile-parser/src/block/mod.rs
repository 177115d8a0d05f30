//! A prototype of the compact AST: one block per instruction (see docs/architecture.md,
//! "Planned: one block per instruction").
//!
//! [`parse_blocks`] checks a Dockerfile exactly as [`crate::parse`] does (same errors, same
//! warnings) but keeps each instruction as a [`Block`]: the instruction's logical line (a
//! [`Text`], which for a single-line instruction is the source itself), its positions, and where
//! its [`WordRef`]s (keyword, the rest of the line, flags, arguments; each a byte range of the
//! line and a source span) start in the file's one list of words. A block allocates nothing of
//! its own, and dropping the file is a few frees and one reference count per block. Embedders
//! read a block through a [`BlockRef`] (the block and its words): [`BlockRef::view`] gives the
//! typed reading, borrowing the file.
//!
//! The prototype covers the shapes that make up most real files: FROM, RUN, CMD, ENTRYPOINT,
//! COPY, ADD, ENV, LABEL, ARG, EXPOSE, VOLUME, USER, WORKDIR and STOPSIGNAL without heredocs,
//! with plain flag words (no quotes or backslashes) for FROM, RUN, COPY and ADD, in the shapes
//! that lower without an error (legacy `ENV name value` with its warning). Every other
//! instruction keeps today's [`InstructionNode`] inside its block ([`View::Node`]).
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

use crate::ast::{Directive, InstructionNode, Warning};
use crate::span::Span;
use crate::text::Text;

mod build;
pub use build::parse_blocks;

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
    /// A block that holds an [`InstructionNode`].
    Node,
}

/// One instruction: its line, where its words are in the file's word list, and its positions.
/// No allocation of its own (read it through a [`BlockRef`]).
#[derive(Debug, Clone)]
pub struct Block {
    /// The logical line (the source itself for a single-line instruction).
    line: Text,
    /// Where `[keyword, rest, flags..., args...]` start in [`BlockFile`]'s word list.
    first: u32,
    /// How many words.
    len: u32,
    /// Instructions outside the prototype's shapes, in today's form.
    node: Option<Box<InstructionNode>>,
    span: Span,
    start_line: u32,
    end_line: u32,
    kind: Kind,
    json: bool,
    /// How many flag words follow the keyword and the rest.
    flags: u8,
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
        sources: Words<'a>,
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
    /// Any other instruction, in today's form.
    Node(&'a InstructionNode),
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
            refs: self.words[a.min(self.words.len())..b.min(self.words.len())].iter(),
        }
    }

    /// The arguments after the flags, split as BuildKit splits them for this keyword.
    pub fn args(self) -> Words<'a> {
        match &self.block.node {
            Some(_) => self.words_from(0, 0),
            None => self.words_from(self.first_arg(), self.words.len()),
        }
    }

    pub(super) fn first_arg(self) -> usize {
        2 + self.block.flags as usize
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
                build::mount_of(&self.block.line, w.start as usize, w.end as usize, w.span)
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
        match &self.block.node {
            Some(n) => WordView {
                text: n.raw.keyword.as_str(),
                span: n.raw.keyword.span,
            },
            None => self.word(0),
        }
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
        match &self.block.node {
            Some(n) => n.original(),
            None => self.block.line.as_str(),
        }
    }

    /// The typed reading.
    pub fn view(self) -> View<'a> {
        if let Some(n) = &self.block.node {
            return View::Node(n);
        }
        let n = self.words.len();
        let a = self.first_arg();
        let command = || {
            if self.block.json {
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
                sources: self.words_from(a, n - 1),
                dest: self.word(n - 1),
                json: self.block.json,
            },
            Kind::Env | Kind::Label => View::Pairs {
                label: self.block.kind == Kind::Label,
                pairs: Pairs {
                    line: self.block.line.as_str(),
                    triples: self.words[a..].chunks_exact(3),
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
            // A node block returned above.
            Kind::Node => View::Arg(self.words_from(0, 0)),
        }
    }

    /// The instruction in today's form, when the block keeps it.
    pub fn node(self) -> Option<&'a InstructionNode> {
        self.block.node.as_deref()
    }
}

/// `block` with its words out of the file's list.
fn with_words<'a>(block: &'a Block, words: &'a [WordRef]) -> BlockRef<'a> {
    let first = (block.first as usize).min(words.len());
    let end = (first + block.len as usize).min(words.len());
    BlockRef {
        block,
        words: &words[first..end],
    }
}

/// A stage: its FROM block and the blocks after it.
#[derive(Debug, Clone, Copy)]
pub struct StageView<'a> {
    name: Option<&'a str>,
    blocks: &'a [Block],
    words: &'a [WordRef],
}

impl<'a> StageView<'a> {
    /// The stage name, lower-cased.
    pub fn name(&self) -> Option<&'a str> {
        self.name
    }
    /// The FROM instruction.
    pub fn from(&self) -> BlockRef<'a> {
        with_words(&self.blocks[0], self.words)
    }
    /// The instructions after FROM.
    pub fn instructions(&self) -> impl ExactSizeIterator<Item = BlockRef<'a>> + 'a {
        let words = self.words;
        self.blocks[1..].iter().map(move |b| with_words(b, words))
    }
}

/// A parsed Dockerfile of blocks: one list of every instruction in file order, the stages as
/// positions in it (no list per stage).
#[derive(Debug, Clone)]
pub struct BlockFile {
    /// Parser directives in the order written.
    pub directives: Vec<Directive>,
    /// The escape character.
    pub escape: char,
    /// Warnings, sorted as [`crate::Dockerfile::warnings`].
    pub warnings: Vec<Warning>,
    blocks: Vec<Block>,
    /// The words of every block, in file order: the file's one list of words.
    words: Vec<WordRef>,
    /// Index of each stage's FROM in `blocks` and the stage's name.
    stages: Vec<(u32, Option<Text>)>,
}

impl BlockFile {
    /// Every instruction in file order (global ARGs first).
    pub fn instructions(&self) -> impl ExactSizeIterator<Item = BlockRef<'_>> + '_ {
        self.blocks.iter().map(|b| with_words(b, &self.words))
    }

    /// The ARGs before the first FROM.
    pub fn global_args(&self) -> impl ExactSizeIterator<Item = BlockRef<'_>> + '_ {
        let first = self
            .stages
            .first()
            .map_or(self.blocks.len(), |s| s.0 as usize);
        self.blocks[..first]
            .iter()
            .map(|b| with_words(b, &self.words))
    }

    /// The stages in order.
    pub fn stages(&self) -> impl ExactSizeIterator<Item = StageView<'_>> + '_ {
        (0..self.stages.len()).map(move |i| {
            let start = self.stages[i].0 as usize;
            let end = self
                .stages
                .get(i + 1)
                .map_or(self.blocks.len(), |s| s.0 as usize);
            StageView {
                name: self.stages[i].1.as_deref(),
                blocks: &self.blocks[start..end],
                words: &self.words,
            }
        })
    }
}

#[cfg(test)]
#[path = "tests.rs"]
pub(crate) mod tests;
