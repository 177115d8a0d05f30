//! Word expansion and splitting with BuildKit's semantics (its `shell.Lex`).
//!
//! The planner calls [`Expander::expand`] for instructions that take one word (WORKDIR, USER,
//! ENV/ARG/LABEL values, flag values) and [`Expander::expand_words`] for those that take several
//! (EXPOSE, VOLUME, COPY/ADD sources in shell form). Both report which variables were looked up and
//! found (`used`) and which were looked up and not found (`unset`), in first-use order.
//!
//! Supported: `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`,
//! `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`,
//! `${VAR/pat/repl}`, `${VAR//pat/repl}`, nested expansions, single and double quotes and the
//! escape character. Patterns support `*`, `?` and escaped `\*`, `\?`, `\\`.
//!
//! Nesting is limited to [`MAX_DEPTH`] levels so hostile input cannot exhaust the stack, and an
//! expanded word to [`MAX_WORD_BYTES`] so that doubling variables (`ARG b=$a$a`, `ARG c=$b$b`,
//! ...) cannot exhaust memory: the expansion stops with [`ExpandErrorKind::TooLong`] as soon as
//! the word passes the limit.

use thiserror::Error;

#[path = "shell_pattern.rs"]
mod pattern;
use pattern::Pattern;

/// Maximum nesting of `${...}` expansions.
pub const MAX_DEPTH: usize = 64;

/// Maximum size of one expanded word (1 MiB), in bytes. Docker has no such limit, but the kernel
/// refuses a single argument or environment string over 128 KiB anyway, and no legitimate
/// Dockerfile value comes close.
pub const MAX_WORD_BYTES: usize = 1024 * 1024;

/// Expands variables in words the way BuildKit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expander {
    escape: char,
    skip_unset: bool,
    raw_quotes: bool,
    raw_escapes: bool,
    max_word: usize,
}

/// Result of [`Expander::expand`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    /// The expanded word, quotes removed.
    pub value: String,
    /// Variables that were looked up and found, in first-use order.
    pub used: Vec<String>,
    /// Variables that were looked up and not found, in first-use order.
    pub unset: Vec<String>,
}

/// Result of [`Expander::expand_words`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WordsExpansion {
    /// The words after expansion and splitting.
    pub words: Vec<String>,
    /// Variables that were looked up and found, in first-use order.
    pub used: Vec<String>,
    /// Variables that were looked up and not found, in first-use order.
    pub unset: Vec<String>,
}

/// What went wrong in an expansion.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExpandErrorKind {
    /// `${` without its closing `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${}`, `${:x}`, `${{x}` and similar.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${VAR/pat` without the second `/`.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${VAR!x}` and other unknown operators.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// A quote that is never closed.
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(&'static str),
    /// `${VAR:?msg}` / `${VAR?msg}` with VAR unset (or empty for `:?`).
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The message after `?`, or the default message.
        message: String,
    },
    /// A pattern with an escape BuildKit rejects.
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern {
        /// The pattern as written.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
    /// More than [`MAX_DEPTH`] nested `${...}`.
    #[error("expansion nested more than {MAX_DEPTH} levels deep")]
    TooDeep,
    /// The expanded word grew past the limit ([`MAX_WORD_BYTES`] unless set otherwise).
    #[error("the expanded word is longer than the limit of {limit} bytes per word")]
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
}

/// An expansion error and the byte offset in the word where it was detected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind}")]
pub struct ExpandError {
    /// What went wrong.
    pub kind: ExpandErrorKind,
    /// Byte offset into the expanded word.
    pub offset: usize,
}

impl ExpandError {
    /// The variable named in a `${VAR?msg}` failure.
    pub fn variable(&self) -> Option<&str> {
        match &self.kind {
            ExpandErrorKind::Required { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl Default for Expander {
    fn default() -> Self {
        Expander::new('\\')
    }
}

impl Expander {
    /// An expander using `escape` (`\` or `` ` ``) as escape character.
    pub fn new(escape: char) -> Self {
        Expander {
            escape,
            skip_unset: false,
            raw_quotes: false,
            raw_escapes: false,
            max_word: MAX_WORD_BYTES,
        }
    }

    /// Fail with [`ExpandErrorKind::TooLong`] when a word grows past `bytes`
    /// (default [`MAX_WORD_BYTES`]).
    pub fn max_word_bytes(mut self, bytes: usize) -> Self {
        self.max_word = bytes;
        self
    }

    /// Leave references to unset variables as written instead of expanding them to `""`.
    pub fn skip_unset(mut self, skip: bool) -> Self {
        self.skip_unset = skip;
        self
    }

    /// Keep quote characters in the output (BuildKit's `RawQuotes`).
    pub fn raw_quotes(mut self, raw: bool) -> Self {
        self.raw_quotes = raw;
        self
    }

    /// Keep escape characters in the output (BuildKit's `RawEscapes`).
    pub fn raw_escapes(mut self, raw: bool) -> Self {
        self.raw_escapes = raw;
        self
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Expand `word` as one word (BuildKit's `ProcessWord`): quotes removed, whitespace kept.
    pub fn expand(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Expansion, ExpandError> {
        let mut lx = Lexer::new(self, word, env);
        let (value, _) = lx.process_stop_on(None, self.raw_escapes)?;
        Ok(Expansion {
            value,
            used: lx.used,
            unset: lx.unset,
        })
    }

    /// Expand `word` and split it into words (BuildKit's `ProcessWords`): unquoted whitespace and
    /// whitespace produced by unquoted expansions separate words; quoted text never splits.
    pub fn expand_words(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WordsExpansion, ExpandError> {
        let mut lx = Lexer::new(self, word, env);
        let (_, words) = lx.process_stop_on(None, self.raw_escapes)?;
        Ok(WordsExpansion {
            words,
            used: lx.used,
            unset: lx.unset,
        })
    }
}

/// Splits words as BuildKit's `wordsStruct`.
#[derive(Default)]
struct WordSplitter {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl WordSplitter {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Lexer<'a> {
    opts: &'a Expander,
    src: &'a str,
    pos: usize,
    env: &'a dyn Fn(&str) -> Option<String>,
    used: Vec<String>,
    unset: Vec<String>,
    depth: usize,
}

fn err(kind: ExpandErrorKind, offset: usize) -> ExpandError {
    ExpandError { kind, offset }
}

impl<'a> Lexer<'a> {
    fn new(opts: &'a Expander, src: &'a str, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Lexer {
            opts,
            src,
            pos: 0,
            env,
            used: Vec::new(),
            unset: Vec::new(),
            depth: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Fails once a word would grow past the limit.
    fn check(&self, len: usize) -> Result<(), ExpandError> {
        if len > self.opts.max_word {
            return Err(err(
                ExpandErrorKind::TooLong {
                    limit: self.opts.max_word,
                },
                self.pos,
            ));
        }
        Ok(())
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        let v = (self.env)(name);
        let list = if v.is_some() {
            &mut self.used
        } else {
            &mut self.unset
        };
        if !list.iter().any(|n| n == name) {
            list.push(name.to_string());
        }
        v
    }

    /// Reads until `stop` (consumed) or the end; returns the joined text and the split words.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let mut result = String::new();
        let mut words = WordSplitter::default();
        let escape = self.opts.escape;
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += ch.len_utf8();
                self.check(result.len())?;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let s = self.process_dollar()?;
                    self.check(result.len() + s.len())?;
                    result.push_str(&s);
                    words.add_string(&s);
                }
                '\'' => {
                    let s = self.process_single_quote()?;
                    self.check(result.len() + s.len())?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '"' => {
                    let s = self.process_double_quote(raw_escapes)?;
                    self.check(result.len() + s.len())?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                _ => {
                    self.pos += ch.len_utf8();
                    if ch == escape {
                        if raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        match self.next() {
                            // An escape at the very end is dropped.
                            None => break,
                            Some(next) => {
                                words.add_raw_char(next);
                                result.push(next);
                            }
                        }
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(c) => Err(err(
                ExpandErrorKind::Unterminated(if c == '}' { "}" } else { "/" }),
                self.pos,
            )),
            None => {
                self.check(result.len())?;
                Ok((result, words.finish()))
            }
        }
    }

    fn process_single_quote(&mut self) -> Result<String, ExpandError> {
        let start = self.pos;
        let mut result = String::new();
        self.pos += 1;
        if self.opts.raw_quotes {
            result.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(err(ExpandErrorKind::Unterminated("single-quote"), start));
                }
                Some('\'') => {
                    if self.opts.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self, raw_escapes: bool) -> Result<String, ExpandError> {
        let start = self.pos;
        let mut result = String::new();
        self.pos += 1;
        if self.opts.raw_quotes {
            result.push('"');
        }
        let escape = self.opts.escape;
        loop {
            match self.peek() {
                None => return Err(err(ExpandErrorKind::Unterminated("double-quote"), start)),
                Some('"') => {
                    self.pos += 1;
                    if self.opts.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let s = self.process_dollar()?;
                    self.check(result.len() + s.len())?;
                    result.push_str(&s);
                }
                Some(mut ch) => {
                    self.pos += ch.len_utf8();
                    if ch == escape {
                        if raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == escape => {
                                self.pos += n.len_utf8();
                                ch = n;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.pos += 1;
                name.push(ch);
                return name;
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            self.pos += ch.len_utf8();
            name.push(ch);
        }
        name
    }

    fn process_dollar(&mut self) -> Result<String, ExpandError> {
        let dollar_at = self.pos;
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.opts.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(ExpandErrorKind::TooDeep, dollar_at));
        }
        let r = self.process_braced(dollar_at);
        self.depth -= 1;
        r
    }

    fn process_braced(&mut self, dollar_at: usize) -> Result<String, ExpandError> {
        self.pos += 1; // '{'
        match self.peek() {
            None => return Err(err(ExpandErrorKind::MissingBrace, dollar_at)),
            Some('{' | '}' | ':') => return Err(err(ExpandErrorKind::BadSubstitution, dollar_at)),
            _ => {}
        }
        let name = self.process_name();
        let Some(mut op) = self.next() else {
            return Err(err(ExpandErrorKind::MissingBrace, dollar_at));
        };
        let mut ops = op.to_string();
        match op {
            '}' => {
                return Ok(match self.lookup(&name) {
                    Some(v) => v,
                    None if self.opts.skip_unset => format!("${{{name}}}"),
                    None => String::new(),
                });
            }
            '/' => return self.process_replace(&name, dollar_at),
            ':' | '+' | '-' | '?' | '#' | '%' => {}
            _ => return Err(err(ExpandErrorKind::UnsupportedModifier(ops), dollar_at)),
        }
        let null_is_unset = op == ':';
        if null_is_unset {
            let Some(next) = self.next() else {
                return Err(err(ExpandErrorKind::MissingBrace, dollar_at));
            };
            op = next;
            ops.push(op);
            // BuildKit has no `${FOO:#x}` or `${FOO:%x}`, set or not.
            if op == '#' || op == '%' {
                return Err(err(ExpandErrorKind::UnsupportedModifier(ops), dollar_at));
            }
        }
        let raw = op == '#' || op == '%';
        let word = match self.process_stop_on(Some('}'), raw) {
            Ok((w, _)) => w,
            Err(e)
                if self.peek().is_none() && matches!(e.kind, ExpandErrorKind::Unterminated(_)) =>
            {
                return Err(err(ExpandErrorKind::MissingBrace, dollar_at));
            }
            Err(e) => return Err(e),
        };
        let value = self.lookup(&name);
        if self.opts.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{ops}{word}}}"));
        }
        let empty = value
            .as_deref()
            .is_none_or(|v| null_is_unset && v.is_empty());
        match op {
            '-' => Ok(if empty {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if empty { String::new() } else { word }),
            '?' => {
                let default = match &value {
                    None => "is not allowed to be unset",
                    Some(_) if empty => "is not allowed to be empty",
                    Some(v) => return Ok(v.clone()),
                };
                let message = if word.is_empty() {
                    default.to_string()
                } else {
                    word
                };
                Err(err(ExpandErrorKind::Required { name, message }, dollar_at))
            }
            '#' | '%' => {
                let (greedy, pat) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let pattern = Pattern::compile(pat).map_err(|reason| {
                    err(
                        ExpandErrorKind::InvalidPattern {
                            pattern: pat.to_string(),
                            reason,
                        },
                        dollar_at,
                    )
                })?;
                let value = value.unwrap_or_default();
                Ok(if op == '#' {
                    pattern.trim_prefix(&value, greedy).to_string()
                } else {
                    pattern.trim_suffix(&value, greedy).to_string()
                })
            }
            _ => Err(err(ExpandErrorKind::UnsupportedModifier(ops), dollar_at)),
        }
    }

    fn process_replace(&mut self, name: &str, dollar_at: usize) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(e)
                if self.peek().is_none() && matches!(e.kind, ExpandErrorKind::Unterminated(_)) =>
            {
                return Err(err(ExpandErrorKind::MissingSlash, dollar_at));
            }
            Err(e) => return Err(e),
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(e)
                if self.peek().is_none() && matches!(e.kind, ExpandErrorKind::Unterminated(_)) =>
            {
                return Err(err(ExpandErrorKind::MissingBrace, dollar_at));
            }
            Err(e) => return Err(e),
        };
        let value = self.lookup(name);
        let Some(value) = value else {
            if self.opts.skip_unset {
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        let pat = Pattern::compile(&pattern).map_err(|reason| {
            err(
                ExpandErrorKind::InvalidPattern {
                    pattern: pattern.clone(),
                    reason,
                },
                dollar_at,
            )
        })?;
        pat.replace(&value, &replacement, all, self.opts.max_word)
            .ok_or_else(|| {
                err(
                    ExpandErrorKind::TooLong {
                        limit: self.opts.max_word,
                    },
                    dollar_at,
                )
            })
    }
}

fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
