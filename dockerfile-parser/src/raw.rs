//! Logical line → [`RawInstruction`]: keyword and flags through the pest grammar, arguments split
//! per keyword the way BuildKit's line parsers split them.

use pest::Parser;

use crate::ast::{Flag, Heredoc, RawInstruction, Word};
use crate::error::{ParseError, ParseErrorKind};
use crate::grammar::{DockerfileGrammar, Rule};
use crate::scan::LogicalLine;
use crate::shell::Expander;
use crate::span::Span;
use crate::text::Text;

#[path = "raw_words.rs"]
mod words;
pub(crate) use words::*;

/// ASCII blanks as in BuildKit's `[\t\v\f\r ]+`.
pub(crate) fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{0B}' | '\u{0C}' | '\r' | '\n')
}

/// A heredoc marker found in an instruction line, body not read yet.
#[derive(Debug, Clone)]
pub(crate) struct PendingHeredoc {
    pub name: String,
    pub fd: u32,
    pub expand: bool,
    pub chomp: bool,
    pub marker_span: Span,
}

/// Context for building raw instructions out of one logical line.
pub(crate) struct RawBuilder<'a> {
    pub line: &'a LogicalLine,
    pub escape: char,
    pub src: &'a str,
    /// Word ranges of ARG, ENV and LABEL arguments: one list reused from line to line.
    pub words: &'a std::cell::RefCell<Vec<(usize, usize, usize)>>,
}

/// Keyword and flag ranges of an instruction line, found without the grammar, or `None` when the
/// line needs the grammar (a flag word with quotes or backslashes, or no keyword at all).
///
/// A shortcut for the common case, exactly equivalent to the `head` rule when it returns `Some`
/// (a property test checks this): optional blanks, a keyword up to the first blank, then words
/// starting with `--` up to the next blank. Most instructions take it, which keeps the
/// per-instruction cost low (see the crate docs).
pub(crate) fn fast_head(text: &str) -> Option<FastHead> {
    // Byte-wise: the blanks are ASCII, and no byte of a multi-byte character is ASCII.
    let b = text.as_bytes();
    let blank = |c: &u8| matches!(c, b' ' | b'\t' | 0x0B | 0x0C | b'\r' | b'\n');
    let start = b.iter().position(|c| !blank(c))?;
    let len = b[start..].iter().position(blank).unwrap_or(b.len() - start);
    let keyword = (start, start + len);
    let mut flags = FlagRanges::default();
    let mut end = keyword.1;
    loop {
        let word_start = end
            + b[end..]
                .iter()
                .position(|c| !blank(c))
                .unwrap_or(b.len() - end);
        if word_start == end || !b[word_start..].starts_with(b"--") {
            break;
        }
        let word_len = b[word_start..]
            .iter()
            .position(blank)
            .unwrap_or(b.len() - word_start);
        let word = &b[word_start..word_start + word_len];
        if has_quote_or_backslash(word) {
            return None;
        }
        end = word_start + word_len;
        if word == b"--" {
            break;
        }
        if flags.len == flags.ranges.len() {
            // Rare: the grammar reads heads with many flags.
            return None;
        }
        flags.ranges[flags.len] = (word_start, end);
        flags.len += 1;
    }
    Some(FastHead {
        keyword,
        flags,
        end,
    })
}

/// Whether a word holds a quote or a backslash (what BuildKit's flag tokenizer changes).
fn has_quote_or_backslash(word: &[u8]) -> bool {
    word.iter().any(|c| matches!(c, b'"' | b'\'' | b'\\'))
}

/// Result of [`fast_head`]: byte ranges in the line.
pub(crate) struct FastHead {
    pub keyword: (usize, usize),
    pub flags: FlagRanges,
    pub end: usize,
}

/// The flag words of a head read by [`fast_head`], without an allocation.
#[derive(Default)]
pub(crate) struct FlagRanges {
    ranges: [(usize, usize); 8],
    len: usize,
}

impl FlagRanges {
    pub fn as_slice(&self) -> &[(usize, usize)] {
        &self.ranges[..self.len]
    }
}

impl RawBuilder<'_> {
    /// Keyword and flags through the pest `head` rule.
    fn pest_head(&self, text: &str, base: usize) -> Result<(Word, Vec<Flag>, usize), ParseError> {
        let head = DockerfileGrammar::parse(Rule::head, text)
            .ok()
            .and_then(|mut p| p.next())
            .ok_or_else(|| {
                let at = self.line.span(base, self.line.text.len());
                self.error(
                    ParseErrorKind::MissingKeyword,
                    at,
                    "expected an instruction keyword such as FROM or RUN, found nothing",
                )
            })?;
        let head_end = head.as_span().end();
        let mut keyword = Word::default();
        let mut flags = Vec::new();
        for p in head.into_inner() {
            let (s, e) = (base + p.as_span().start(), base + p.as_span().end());
            match p.as_rule() {
                Rule::keyword => keyword = self.word(p.as_str(), s, e),
                Rule::flag => flags.push(self.flag(p.as_str(), s, e, false)),
                _ => {}
            }
        }
        Ok((keyword, flags, head_end))
    }

    /// A flag from its word as written at logical range `s..e`; `plain` when the word is
    /// already known to hold no quote or backslash.
    fn flag(&self, raw: &str, s: usize, e: usize, plain: bool) -> Flag {
        // Without quotes or backslashes the tokenizer leaves the word as it is: share it.
        let text = if !plain && has_quote_or_backslash(raw.as_bytes()) {
            Text::from(unquote_flag(raw))
        } else {
            self.line.text.slice_ref(raw)
        };
        let body = text.get(2..).unwrap_or("");
        let (name, value) = match body.find('=') {
            Some(eq) => (
                text.slice(2..2 + eq),
                Some(text.slice(2 + eq + 1..text.len())),
            ),
            None => (text.slice_ref(body), None),
        };
        Flag {
            text,
            name,
            value,
            span: self.line.span(s, e),
        }
    }

    /// A word whose text is `text` (a slice of the logical line, shared; anything else is
    /// copied) written at logical range `start..end`.
    #[inline]
    fn word(&self, text: &str, start: usize, end: usize) -> Word {
        Word {
            text: self.line.text.slice_ref(text),
            span: self.line.span(start, end),
        }
    }

    fn error(&self, kind: ParseErrorKind, span: Span, label: impl Into<String>) -> ParseError {
        ParseError::new(kind, span, label, self.src)
    }

    /// Builds the raw instruction starting at logical offset `base` (non-zero for ONBUILD
    /// triggers). Heredoc markers are returned for the caller to read the bodies, with the
    /// keyword's lower-case name (empty for an unknown keyword), so it is looked up once.
    pub fn build(
        &self,
        base: usize,
    ) -> Result<(RawInstruction, Vec<PendingHeredoc>, &'static str), ParseError> {
        let text = &self.line.text[base..];
        let fast = if crate::reference_mode() {
            None
        } else {
            fast_head(text)
        };
        let (keyword, flags, head_end): (Word, Vec<Flag>, usize) = match fast {
            Some(h) => {
                let (ks, ke) = h.keyword;
                let flags = h
                    .flags
                    .as_slice()
                    .iter()
                    .map(|&(a, b)| self.flag(&text[a..b], base + a, base + b, true))
                    .collect();
                (self.word(&text[ks..ke], base + ks, base + ke), flags, h.end)
            }
            None => self.pest_head(text, base)?,
        };
        if flags.len() > crate::MAX_FLAGS {
            return Err(self.error(
                ParseErrorKind::TooManyFlags(flags.len()),
                self.line.span(base, base + head_end),
                "the instruction's flags",
            ));
        }
        let after = &text[head_end..];
        let rest_trimmed = crate::text::trim_start_whitespace(after);
        let rest_start = base + head_end + (after.len() - rest_trimmed.len());
        let rest_str = crate::text::trim_end_whitespace(rest_trimmed);
        let rest_end = rest_start + rest_str.len();
        let rest = self.word(rest_str, rest_start, rest_end);
        let name = keyword_name(&keyword.text).unwrap_or("");

        let mut json = false;
        let mut sub = None;
        let mut args: Vec<Word> = Vec::new();
        let mut pending = Vec::new();
        let split_into = |args: &mut Vec<Word>| {
            args.reserve_exact(split_blanks(rest_str).count());
            for (a, b) in split_blanks(rest_str) {
                args.push(self.word(&rest_str[a..b], rest_start + a, rest_start + b));
            }
        };
        match name {
            "add" | "copy" | "volume" => match self.json(rest_str, rest_start, &rest)? {
                Some(words) => {
                    json = true;
                    args = words;
                }
                None => split_into(&mut args),
            },
            "run" | "cmd" | "entrypoint" | "shell" if !rest_str.is_empty() => {
                match self.json(rest_str, rest_start, &rest)? {
                    Some(words) => {
                        json = true;
                        args = words;
                    }
                    None => args = vec![rest.clone()],
                }
            }
            "from" | "expose" => split_into(&mut args),
            "arg" => {
                let mut words = self.words.borrow_mut();
                parse_words_into(rest_str, self.escape, &mut words);
                args.reserve_exact(words.len());
                for &(a, b, t) in words.iter() {
                    args.push(self.word(&rest_str[a..t], rest_start + a, rest_start + b));
                }
            }
            "env" | "label" => args = self.name_values(rest_str, rest_start, name)?,
            "healthcheck" => {
                let typ_len = rest_str.find(is_blank).unwrap_or(rest_str.len());
                if typ_len > 0 {
                    args.push(self.word(&rest_str[..typ_len], rest_start, rest_start + typ_len));
                    let cmd = rest_str[typ_len..].trim_start_matches(is_blank);
                    let cmd_start = rest_end - cmd.len();
                    if !cmd.is_empty() {
                        let cmd_word = self.word(cmd, cmd_start, rest_end);
                        match self.json(cmd, cmd_start, &cmd_word)? {
                            Some(words) => {
                                json = true;
                                args.extend(words);
                            }
                            None => args.push(cmd_word),
                        }
                    }
                }
            }
            "maintainer" | "stopsignal" | "user" | "workdir" if !rest_str.is_empty() => {
                args = vec![rest.clone()];
            }
            "onbuild" if !rest_str.is_empty() => {
                let sub_keyword = rest_str.split(is_blank).next().unwrap_or("");
                if sub_keyword.eq_ignore_ascii_case("onbuild") {
                    return Err(self
                        .error(
                            ParseErrorKind::OnbuildTrigger(
                                "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                            ),
                            self.line.span(rest_start, rest_start + sub_keyword.len()),
                            "ONBUILD cannot trigger another ONBUILD",
                        )
                        .with_help("put the trigger instruction directly after ONBUILD"));
                }
                let (child, child_heredocs, _) = self.build(rest_start)?;
                pending = child_heredocs;
                sub = Some(Box::new(child));
            }
            _ => {}
        }

        if pending.is_empty() && heredoc_capable(name) && !json && text.contains("<<") {
            pending = self.heredocs(base)?;
        }

        // The caller replaces this with the line itself for top-level instructions.
        let original = if base == 0 {
            Text::default()
        } else {
            self.line.text.slice_ref(text)
        };
        let raw = RawInstruction {
            keyword,
            flags: flags.into_boxed_slice(),
            args: args.into_boxed_slice(),
            rest,
            json,
            sub,
            heredocs: Box::default(),
            original,
            span: Span::new(self.line.source_offset(base), self.line.end),
            start_line: self.line.start_line as u32,
            end_line: self.line.end_line as u32,
        };
        Ok((raw, pending, name))
    }

    /// JSON form of `rest`, if it is a JSON array of strings.
    fn json(
        &self,
        rest: &str,
        start: usize,
        whole: &Word,
    ) -> Result<Option<Vec<Word>>, ParseError> {
        // The common array (strings without escapes) straight into words: counted first, so
        // the list is allocated once at its size.
        if rest.starts_with('[') && !crate::reference_mode() {
            let mut count = 0;
            if simple_json_items(rest, |_, _| count += 1) {
                let mut words = Vec::with_capacity(count);
                simple_json_items(rest, |a, b| {
                    words.push(Word {
                        text: self.line.text.slice_ref(&rest[a + 1..b - 1]),
                        span: self.line.span(start + a, start + b),
                    });
                });
                return Ok(Some(words));
            }
        }
        match parse_json_args(rest) {
            JsonArgs::NotJson => Ok(None),
            JsonArgs::Strings(items) => Ok(Some(
                items
                    .into_iter()
                    .map(|(decoded, a, b)| {
                        // A string without escapes is the text between its quotes: share it.
                        let inner = rest.get(a + 1..b.saturating_sub(1)).unwrap_or("");
                        let text = match decoded {
                            Some(s) if s != inner => Text::from(s),
                            _ => self.line.text.slice_ref(inner),
                        };
                        Word {
                            text,
                            span: self.line.span(start + a, start + b),
                        }
                    })
                    .collect(),
            )),
            JsonArgs::NotStrings => Err(self
                .error(
                    ParseErrorKind::JsonNotStrings,
                    whole.span,
                    "expected a JSON array of strings, found an element that is not a string",
                )
                .with_help("quote every element, e.g. [\"sleep\", \"10\"]")),
        }
    }

    /// BuildKit's `parseNameVal` for ENV and LABEL: key, value, separator triples.
    fn name_values(&self, rest: &str, start: usize, name: &str) -> Result<Vec<Word>, ParseError> {
        let mut words = self.words.borrow_mut();
        parse_words_into(rest, self.escape, &mut words);
        let Some(&(fa, _, ft)) = words.first() else {
            return Ok(Vec::new());
        };
        // A byte loop: the words are short, and `=` is ASCII.
        let find_eq = |w: &str| w.bytes().position(|c| c == b'=');
        if find_eq(&rest[fa..ft]).is_none() {
            let upper = name.to_ascii_uppercase();
            let Some((ka, kb)) = split_blanks(rest).next() else {
                return Ok(Vec::new());
            };
            let value_start = rest[kb..].find(|c| !is_blank(c)).map(|i| kb + i);
            let Some(va) = value_start else {
                return Err(self
                    .error(
                        ParseErrorKind::Arguments(format!("{upper} must have two arguments")),
                        self.line.span(start + ka, start + kb),
                        "expected `name=value` or `name value`, found only a name",
                    )
                    .with_help(format!("give a value: `{upper} {}=value`", &rest[ka..kb])));
            };
            return Ok(vec![
                self.word(&rest[ka..kb], start + ka, start + kb),
                self.word(&rest[va..], start + va, start + rest.len()),
                self.word("", start + rest.len(), start + rest.len()),
            ]);
        }
        let mut out = Vec::with_capacity(words.len() * 3);
        for &(a, b, t) in words.iter() {
            let w = &rest[a..t];
            let Some(eq) = find_eq(w) else {
                return Err(self
                    .error(
                        ParseErrorKind::Arguments(format!(
                            "syntax error - can't find = in \"{w}\"; must be of the form: name=value"
                        )),
                        self.line.span(start + a, start + b),
                        "expected `name=value`, found a word without `=`",
                    )
                    .with_help("quote values that contain spaces: name=\"a value\""));
            };
            // Offsets inside `w` match the source except where an escape was dropped at the very
            // end, which cannot happen before the first `=`.
            let eq_at = start + a + eq;
            out.push(self.word(&w[..eq], start + a, eq_at));
            out.push(self.word(&w[eq + 1..], eq_at + 1, start + b));
            out.push(self.word(&w[eq..eq + 1], eq_at, eq_at + 1));
        }
        Ok(out)
    }

    /// Heredoc markers in the line, found the way BuildKit finds them: the whole line split into
    /// words (quotes and escapes kept, variables left alone), each word matched as a marker.
    fn heredocs(&self, base: usize) -> Result<Vec<PendingHeredoc>, ParseError> {
        let text = &self.line.text[base..];
        let lexer = Expander::new('\\')
            .raw_quotes(true)
            .raw_escapes(true)
            .skip_unset(true);
        let Ok(words) = lexer.expand_words(text, &|_| None) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut search_from = 0;
        let mut words = words.words.into_iter();
        while let Some(mut w) = words.next() {
            if !w.contains("<<") {
                continue;
            }
            let found = text[search_from..].find(&w).map(|i| search_from + i);
            let (a, mut b) = match found {
                Some(i) => (i, i + w.len()),
                None => (0, text.len()),
            };
            // BuildKit's word splitter keeps the blanks after an unquoted `<<` in the word, so
            // `RUN << EOF` and `3<< EOF` are markers (but `<<- EOF` is not: the `-` comes first).
            if is_bare_marker(&w)
                && let Some(next) = words.next()
            {
                if let Some(i) = text.get(b..).and_then(|t| t.find(&next)) {
                    b += i + next.len();
                }
                w = format!("{w} {next}");
            }
            search_from = b.min(text.len());
            let span = self.line.span(base + a, base + b);
            match parse_heredoc_marker(&w) {
                Ok(Some((name, fd, chomp, expand))) => out.push(PendingHeredoc {
                    name,
                    fd,
                    expand,
                    chomp,
                    marker_span: span,
                }),
                Ok(None) => {}
                Err(()) => {
                    return Err(self.error(
                        ParseErrorKind::BadHeredoc(format!("invalid heredoc marker {w}")),
                        span,
                        "expected `<<NAME` with a single-word name",
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// A word that is only `[fd]<<`: BuildKit's word splitter joins it with the next word.
fn is_bare_marker(word: &str) -> bool {
    word.trim_start_matches(|c: char| c.is_ascii_digit()) == "<<"
}

/// Turns a pending heredoc and its body into a [`Heredoc`].
pub(crate) fn finish_heredoc(p: PendingHeredoc, content: Text, body_span: Span) -> Heredoc {
    Heredoc {
        name: Text::from(p.name),
        fd: p.fd,
        expand: p.expand,
        chomp: p.chomp,
        content,
        marker_span: p.marker_span,
        body_span,
    }
}

#[cfg(test)]
#[path = "raw_tests.rs"]
mod tests;
