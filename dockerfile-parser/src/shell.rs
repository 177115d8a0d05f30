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

#[path = "shell_lexer.rs"]
mod lexer;
#[path = "shell_pattern.rs"]
mod pattern;
use lexer::Lexer;

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

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
