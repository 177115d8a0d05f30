//! The line pre-pass: physical lines → logical instructions.
//!
//! This is plain Rust rather than grammar rules because the rules it implements are line
//! oriented and stateful in ways a PEG expresses poorly: parser directives are only recognised in
//! the leading comment block and change the escape character for everything after them, a
//! continuation is "escape character followed by optional blanks at end of line" (unless the
//! escape character is itself escaped), comment and blank lines inside a continued instruction are
//! dropped, and heredoc bodies are raw lines whose terminators depend on the instruction that
//! introduced them. Each logical line is then handed to the pest grammar.

use crate::ast::{Directive, Warning};
use crate::error::{ParseError, ParseErrorKind};
use crate::span::Span;
use crate::text::Text;

const BOM: &str = "\u{feff}";

/// One logical instruction line with the map from its offsets back into the source.
#[derive(Debug, Clone)]
pub(crate) struct LogicalLine {
    /// Continuations joined, comment lines dropped, leading blanks of the first line removed: a
    /// slice of the source for a single-line instruction, a buffer of its own otherwise.
    pub text: Text,
    /// Source offset of logical offset 0.
    pub first: usize,
    /// `(logical offset, source offset)` at the start of each continuation segment, ascending
    /// (empty for single-line instructions, so they need no allocation).
    pub segments: Vec<(usize, usize)>,
    /// Source offset of the end of the last physical line (newline excluded).
    pub end: usize,
    /// 1-based first physical line.
    pub start_line: usize,
    /// 1-based last physical line.
    pub end_line: usize,
}

impl LogicalLine {
    /// Source offset of logical offset `at`.
    #[inline]
    pub fn source_offset(&self, at: usize) -> usize {
        if self.segments.is_empty() {
            // A single physical line (nearly every instruction): logical offsets are the source's.
            return self.first + at;
        }
        self.continued_offset(at)
    }

    /// [`LogicalLine::source_offset`] in a continued line.
    #[inline(never)]
    fn continued_offset(&self, at: usize) -> usize {
        let (l, s) = match self.segments.binary_search_by(|(l, _)| l.cmp(&at)) {
            Ok(i) => self.segments[i],
            Err(0) => (0, self.first),
            Err(i) => self.segments[i - 1],
        };
        s + at.saturating_sub(l)
    }

    /// Source span of logical range `start..end`.
    #[inline]
    pub fn span(&self, start: usize, end: usize) -> Span {
        if end <= start {
            return Span::empty(self.source_offset(start));
        }
        // Map the last byte rather than `end` so a word ending at a segment boundary does not
        // stretch into the next physical line.
        Span::new(self.source_offset(start), self.source_offset(end - 1) + 1)
    }
}

/// A physical line: its bytes without the line ending, and where it starts.
struct PhysLine<'a> {
    /// Line content without trailing `\r`/`\n`.
    text: &'a str,
    start: usize,
}

/// Reads a Dockerfile line by line.
pub(crate) struct Scanner<'a> {
    source: &'a Text,
    src: &'a str,
    pos: usize,
    line: usize,
    pub escape: char,
    pub directives: Vec<Directive>,
    directives_done: bool,
    pub warnings: Vec<Warning>,
    /// Scratch for joining a continued line, kept between lines so it is allocated once.
    pub(crate) join: String,
    /// A segment list handed back by [`Scanner::recycle`], reused for the next continued line.
    pub(crate) spare_segments: Vec<(usize, usize)>,
}

fn is_go_space(c: char) -> bool {
    c.is_whitespace()
}

impl<'a> Scanner<'a> {
    pub fn new(source: &'a Text) -> Self {
        Scanner {
            source,
            src: source.as_str(),
            pos: 0,
            line: 0,
            escape: '\\',
            directives: Vec::new(),
            directives_done: false,
            warnings: Vec::new(),
            join: String::new(),
            spare_segments: Vec::new(),
        }
    }

    /// Takes back a logical line's segment list once the line is read, for the next one.
    pub fn recycle(&mut self, mut segments: Vec<(usize, usize)>) {
        if segments.capacity() > self.spare_segments.capacity() {
            segments.clear();
            self.spare_segments = segments;
        }
    }

    /// Current line number (1-based) of the last line read.
    pub fn line(&self) -> usize {
        self.line
    }

    fn next_phys(&mut self) -> Option<PhysLine<'a>> {
        if self.pos >= self.src.len() {
            return None;
        }
        let rest = &self.src[self.pos..];
        let len = memchr::memchr(b'\n', rest.as_bytes()).map_or(rest.len(), |i| i + 1);
        let mut start = self.pos;
        let mut full = &rest[..len];
        if self.line == 0
            && let Some(stripped) = full.strip_prefix(BOM)
        {
            full = stripped;
            start += BOM.len();
        }
        self.pos += len;
        self.line += 1;
        let text = full.trim_end_matches(['\r', '\n']);
        Some(PhysLine { text, start })
    }

    fn parse_directive(&mut self, token: &str, span: Span) -> Result<(), ParseError> {
        if self.directives_done {
            return Ok(());
        }
        let Some(body) = token.strip_prefix('#') else {
            self.directives_done = true;
            return Ok(());
        };
        let body = body.trim_start_matches(is_go_space);
        let name_len = body
            .char_indices()
            .take_while(|(i, c)| {
                if *i == 0 {
                    c.is_ascii_alphabetic()
                } else {
                    c.is_ascii_alphanumeric()
                }
            })
            .count();
        let after = body[name_len..].trim_start_matches(is_go_space);
        let value = after.strip_prefix('=').map(|v| v.trim_matches(is_go_space));
        let (name, value) = match value {
            Some(v) if name_len > 0 && !v.is_empty() => (body[..name_len].to_ascii_lowercase(), v),
            _ => {
                self.directives_done = true;
                return Ok(());
            }
        };
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.directives_done = true;
            return Ok(());
        }
        if self.directives.iter().any(|d| d.name == name) {
            return Err(ParseError::new(
                ParseErrorKind::DuplicateDirective(name.clone()),
                span,
                format!("second `{name}` directive"),
                self.src,
            )
            .with_help("remove one of the two directives"));
        }
        if name == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(ParseError::new(
                        ParseErrorKind::InvalidEscape(value.to_string()),
                        span,
                        "expected `\\` or a backtick here",
                        self.src,
                    )
                    .with_help("use `# escape=\\` (the default) or `# escape=`` ` ``"));
                }
            };
        }
        self.directives.push(Directive {
            name,
            value: value.to_string(),
            span,
            line: self.line,
        });
        Ok(())
    }

    /// Strips a trailing continuation (escape character plus blanks); `None` if there is none.
    fn trim_continuation<'t>(&self, token: &'t str) -> Option<&'t str> {
        // The escape character is a backslash or a backtick: one byte.
        let esc = self.escape as u8;
        let t = token.trim_end_matches([' ', '\t']).as_bytes();
        let (&last, before) = t.split_last()?;
        if last != esc || before.last() == Some(&esc) {
            return None;
        }
        token.get(..before.len())
    }

    /// Reads the next logical instruction line, or `None` at the end of the file.
    pub fn next_logical(&mut self) -> Result<Option<LogicalLine>, ParseError> {
        loop {
            let Some(pl) = self.next_phys() else {
                return Ok(None);
            };
            let trimmed = crate::text::trim_start_whitespace(pl.text);
            let lead = pl.text.len() - trimmed.len();
            let tok_start = pl.start + lead;
            self.parse_directive(trimmed, Span::new(tok_start, pl.start + pl.text.len()))?;
            if trimmed.starts_with('#') {
                continue;
            }
            let start_line = self.line;
            let (first, mut ended) = match self.trim_continuation(trimmed) {
                Some(t) => (t, false),
                None => (trimmed, true),
            };
            if ended && first.is_empty() {
                continue;
            }
            if ended {
                return Ok(Some(LogicalLine {
                    text: self.source.slice_ref(first),
                    first: tok_start,
                    segments: Vec::new(),
                    end: pl.start + pl.text.len(),
                    start_line,
                    end_line: self.line,
                }));
            }
            let mut text = std::mem::take(&mut self.join);
            text.clear();
            text.push_str(first);
            let mut segments = std::mem::take(&mut self.spare_segments);
            let mut end = pl.start + pl.text.len();
            let mut last_start = tok_start;
            let mut empty_line = false;
            while !ended {
                let Some(cl) = self.next_phys() else { break };
                let span = Span::new(cl.start, cl.start + cl.text.len());
                self.parse_directive(cl.text, span)?;
                end = cl.start + cl.text.len();
                last_start = cl.start;
                let lead_trimmed = crate::text::trim_start_whitespace(cl.text);
                if lead_trimmed.starts_with('#') {
                    continue;
                }
                if lead_trimmed.is_empty() {
                    empty_line = true;
                    continue;
                }
                let piece = match self.trim_continuation(cl.text) {
                    Some(t) => t,
                    None => {
                        ended = true;
                        cl.text
                    }
                };
                segments.push((text.len(), cl.start));
                text.push_str(piece);
            }
            if empty_line {
                // BuildKit reports it on the instruction's last line, not on the empty one.
                self.warnings.push(Warning {
                    rule: "NoEmptyContinuation".to_string(),
                    message: format!("empty continuation line found in: {}", text.trim_end()),
                    span: Span::new(last_start, end),
                    line: self.line,
                });
            }
            // The joined line gets a buffer of its exact size; the scratch stays for the next.
            let joined = Text::from(text.as_str());
            self.join = text;
            return Ok(Some(LogicalLine {
                text: joined,
                first: tok_start,
                segments,
                end,
                start_line,
                end_line: self.line,
            }));
        }
    }

    /// Reads a heredoc body up to its terminator. Returns the body, the span of body plus
    /// terminator, or `None` if the file ends first.
    pub fn read_heredoc(&mut self, name: &str, chomp: bool) -> Option<(Text, Span)> {
        let start = self.pos;
        while let Some(pl) = self.next_phys() {
            let candidate = if chomp {
                pl.text.trim_start_matches('\t')
            } else {
                pl.text
            };
            if candidate == name {
                // The body is every line from `start` up to the terminator, as written.
                let content = self.source.slice(start..pl.start);
                return Some((content, Span::new(start, pl.start + pl.text.len())));
            }
        }
        None
    }
}
