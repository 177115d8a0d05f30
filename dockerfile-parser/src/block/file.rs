//! The parsed file: its blocks, words, stages, heredocs and triggers.

use super::{Block, BlockRef, StageView, WordRef, with_words};
use crate::ast::{Directive, Heredoc, Warning};
use crate::text::Text;

/// A parsed Dockerfile of blocks: one list of every instruction in file order, the stages as
/// positions in it (no list per stage).
#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// Parser directives in the order written.
    pub directives: Vec<Directive>,
    /// The escape character.
    pub escape: char,
    /// Warnings, sorted as [`crate::TypedDockerfile::warnings`].
    pub warnings: Vec<Warning>,
    pub(super) blocks: Vec<Block>,
    /// The words of every block, in file order: the file's one list of words.
    pub(super) words: Vec<WordRef>,
    /// Index of each stage's FROM in `blocks` and the stage's name.
    pub(super) stages: Vec<(u32, Option<Text>)>,
    /// Every heredoc, in file order (a block holds a range).
    pub(super) heredocs: Vec<Heredoc>,
    /// ONBUILD triggers (an ONBUILD block holds an index).
    pub(super) triggers: Vec<Block>,
}

impl Dockerfile {
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

    /// The stage at `index`.
    pub fn stage(&self, index: usize) -> Option<StageView<'_>> {
        (index < self.stages.len()).then(|| self.stage_at(index))
    }

    /// The stage at `index`, which is below `stages.len()`: stages start at increasing block
    /// indices, each with its FROM block.
    fn stage_at(&self, index: usize) -> StageView<'_> {
        let start = self.stages[index].0 as usize;
        let end = self
            .stages
            .get(index + 1)
            .map_or(self.blocks.len(), |s| s.0 as usize);
        StageView {
            name: self.stages[index].1.as_deref(),
            blocks: &self.blocks[start..end],
            file: self,
        }
    }

    /// How many stages.
    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    /// The stage called `name` (compared case-insensitively) and its index.
    pub fn stage_by_name(&self, name: &str) -> Option<(usize, StageView<'_>)> {
        let i = self
            .stages
            .iter()
            .position(|s| s.1.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))?;
        Some((i, self.stage(i)?))
    }

    /// Every instruction in file order (global ARGs first).
    pub fn instructions(&self) -> impl ExactSizeIterator<Item = BlockRef<'_>> + '_ {
        self.blocks.iter().map(|b| with_words(b, self))
    }

    /// The ARGs before the first FROM.
    pub fn global_args(&self) -> impl ExactSizeIterator<Item = BlockRef<'_>> + '_ {
        let first = self
            .stages
            .first()
            .map_or(self.blocks.len(), |s| s.0 as usize);
        self.blocks[..first].iter().map(|b| with_words(b, self))
    }

    /// The stages in order.
    pub fn stages(&self) -> impl ExactSizeIterator<Item = StageView<'_>> + '_ {
        (0..self.stages.len()).map(move |i| self.stage_at(i))
    }
}
