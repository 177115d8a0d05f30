//! Byte spans into the Dockerfile text and their line/column lookup.

use serde::Serialize;

/// A half-open byte range `start..end` into the text given to [`crate::parse`].
///
/// Offsets are bytes, not characters, so they can index the source directly (see
/// [`Span::range`]) and be handed to `miette` unchanged. Line and column numbers are computed on
/// demand with [`LineIndex`]. They are 32-bit: the parser refuses sources of 4 GiB or more, and
/// every word of the AST carries a span, so this halves their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize)]
pub struct Span {
    /// First byte of the range.
    pub start: u32,
    /// One past the last byte of the range.
    pub end: u32,
}

/// An offset as a span offset (offsets past `u32::MAX` are clamped; sources are smaller).
#[inline]
fn offset(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

impl Span {
    /// A span from `start` to `end` (swapped if given in the wrong order).
    #[inline]
    pub fn new(start: usize, end: usize) -> Self {
        let (start, end) = (offset(start), offset(end));
        if end < start {
            Span {
                start: end,
                end: start,
            }
        } else {
            Span { start, end }
        }
    }

    /// An empty span at `at`.
    #[inline]
    pub fn empty(at: usize) -> Self {
        let at = offset(at);
        Span { start: at, end: at }
    }

    /// The byte range, to index the source with.
    #[inline]
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// First byte, as an index.
    #[inline]
    pub fn start(&self) -> usize {
        self.start as usize
    }

    /// One past the last byte, as an index.
    #[inline]
    pub fn end(&self) -> usize {
        self.end as usize
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The smallest span covering both `self` and `other`.
    pub fn join(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The text this span covers in `src`, or `""` if it does not fall on character boundaries.
    pub fn slice<'a>(&self, src: &'a str) -> &'a str {
        src.get(self.range()).unwrap_or("")
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        miette::SourceSpan::new(span.start().into(), span.len())
    }
}

/// A value together with the span of text it was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spanned<T> {
    /// The value.
    pub node: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wrap `node` with `span`.
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

/// Maps byte offsets to 1-based line and column numbers.
///
/// Lines end at `\n` (a preceding `\r` belongs to the line it ends). Columns count characters,
/// starting at 1.
#[derive(Debug, Clone)]
pub struct LineIndex<'a> {
    src: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Index the lines of `src`.
    pub fn new(src: &'a str) -> Self {
        let mut line_starts = Vec::with_capacity(src.len() / 32 + 1);
        line_starts.push(0);
        line_starts.extend(memchr_newlines(src.as_bytes()).map(|i| i + 1));
        LineIndex { src, line_starts }
    }

    /// Number of lines (a trailing newline does not start a new, empty line).
    pub fn line_count(&self) -> usize {
        let n = self.line_starts.len();
        if n > 1 && self.line_starts[n - 1] == self.src.len() {
            n - 1
        } else {
            n
        }
    }

    /// The 1-based line containing `offset` (offsets past the end map to the last line).
    pub fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    /// The 1-based `(line, column)` of `offset`; the column counts characters.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.line(offset);
        let start = self.line_starts[line - 1];
        let col = self
            .src
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line, col + 1)
    }

    /// The byte offset where 1-based `line` starts, if it exists.
    pub fn line_start(&self, line: usize) -> Option<usize> {
        line.checked_sub(1)
            .and_then(|i| self.line_starts.get(i).copied())
    }
}

fn memchr_newlines(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let src = "FROM a\nRUN é x\n";
        let idx = LineIndex::new(src);
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(7), (2, 1));
        let x = src.find('x').unwrap_or(0);
        assert_eq!(idx.line_col(x), (2, 7));
        assert_eq!(idx.line_count(), 2);
        assert_eq!(idx.line_col(src.len()), (3, 1));
    }

    #[test]
    fn span_join_and_slice() {
        let a = Span::new(4, 2);
        assert_eq!(a, Span { start: 2, end: 4 });
        assert_eq!(a.join(Span::empty(9)), Span { start: 2, end: 9 });
        assert_eq!(Span::new(0, 4).slice("FROM x"), "FROM");
        assert_eq!(Span::new(0, 99).slice("FROM x"), "");
    }
}
