//! Parse errors: typed, with a span, a plain-words explanation and a `miette` diagnostic.

use miette::{Diagnostic, LabeledSpan};
use thiserror::Error;

use crate::span::{LineIndex, Span};

/// What is wrong with the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The file holds no instruction at all.
    #[error("file with no instructions")]
    Empty,
    /// A line with no instruction keyword (only an escape character).
    #[error("expected an instruction keyword")]
    MissingKeyword,
    /// A keyword that is not a Dockerfile instruction.
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    /// A flag the instruction does not accept.
    #[error("unknown flag: --{flag}{}", did_you_mean(.suggestion.as_deref()))]
    UnknownFlag {
        /// The flag name without `--`.
        flag: String,
        /// The closest flag the instruction takes, without `--`, if one is close.
        suggestion: Option<String>,
    },
    /// A flag given twice that may only be given once.
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    /// `--flag` without `=value` where a value is required, or `--flag=` for a boolean.
    #[error("missing a value on flag: --{0}")]
    MissingFlagValue(String),
    /// A flag value that is not allowed.
    #[error("invalid value for flag --{flag}: {message}")]
    InvalidFlagValue {
        /// The flag name without `--`.
        flag: String,
        /// What is wrong with it.
        message: String,
    },
    /// A `--mount` option problem.
    #[error("invalid --mount: {0}")]
    InvalidMount(String),
    /// Wrong number or shape of arguments.
    #[error("{0}")]
    Arguments(String),
    /// A JSON array with an element that is not a string.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStrings,
    /// SHELL not in JSON form.
    #[error("SHELL requires the arguments to be in JSON form")]
    ShellNotJson,
    /// A heredoc without its terminator line.
    #[error("unterminated heredoc {0}")]
    UnterminatedHeredoc(String),
    /// A heredoc used where it is not allowed.
    #[error("{0}")]
    BadHeredoc(String),
    /// `# escape=` with a value other than `\` or `` ` ``.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// A parser directive given twice.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// `FROM ... AS name` with an invalid name.
    #[error(
        "invalid name for build stage: \"{0}\", name can't start with a number or contain symbols"
    )]
    InvalidStageName(String),
    /// Two stages with the same name.
    #[error("duplicate stage name \"{0}\"")]
    DuplicateStageName(String),
    /// An instruction other than ARG before the first FROM.
    #[error("no build stage in current context")]
    NoStage,
    /// ONBUILD with a forbidden trigger.
    #[error("{0}")]
    OnbuildTrigger(String),
    /// A HEALTHCHECK duration or retry count that does not parse.
    #[error("{0}")]
    Healthcheck(String),
    /// A file larger than the parser takes (4 GiB).
    #[error("Dockerfile too large: {0} bytes")]
    TooLarge(usize),

    /// The parser disagreed with itself on this file: a bug of the parser, not of the file.
    #[error("internal parser error: {0}")]
    Internal(&'static str),

    /// An instruction with more flags than the parser keeps (65,535).
    #[error("too many flags on one instruction: {0} (at most {max})", max = crate::MAX_FLAGS)]
    TooManyFlags(usize),
}

/// ` (did you mean --x?)` after a message, as BuildKit words it, or nothing.
fn did_you_mean(flag: Option<&str>) -> String {
    flag.map(|f| format!(" (did you mean --{f}?)"))
        .unwrap_or_default()
}

/// A parse error with its location.
///
/// The CLI renders it with `miette` after attaching the Dockerfile text as source code. The details
/// are boxed so `Result<_, ParseError>` stays small on the happy path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", .0.kind)]
pub struct ParseError(Box<Details>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    kind: ParseErrorKind,
    span: Span,
    label: String,
    help: Option<String>,
    line: usize,
    column: usize,
}

impl ParseError {
    /// Build an error at `span`, computing line and column from `src`.
    pub(crate) fn new(
        kind: ParseErrorKind,
        span: Span,
        label: impl Into<String>,
        src: &str,
    ) -> Self {
        let (line, column) = LineIndex::new(src).line_col(span.start());
        ParseError(Box::new(Details {
            kind,
            span,
            label: label.into(),
            help: None,
            line,
            column,
        }))
    }

    /// Attach a help line.
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    /// What is wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.0.kind
    }

    /// The offending text.
    pub fn span(&self) -> Span {
        self.0.span
    }

    /// Expected/found explanation in plain words, shown under the caret.
    pub fn label(&self) -> &str {
        &self.0.label
    }

    /// A hint such as "did you mean `RUN`?".
    pub fn help(&self) -> Option<&str> {
        self.0.help.as_deref()
    }

    /// 1-based line of the start of the span.
    pub fn line(&self) -> usize {
        self.0.line
    }

    /// 1-based column (in characters) of the start of the span.
    pub fn column(&self) -> usize {
        self.0.column
    }
}

impl Diagnostic for ParseError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new("kiln::dockerfile::parse"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = LabeledSpan::new_with_span(Some(self.0.label.clone()), self.0.span);
        Some(Box::new(std::iter::once(label)))
    }
}

/// Edit distance counting insertions, deletions, substitutions and adjacent transpositions
/// (optimal string alignment), for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, row) in d.chunks_mut(w).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(w).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The closest candidate to `word` (case-insensitive), if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    if lower.len() > 64 {
        return None;
    }
    let max = (lower.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(suggest("RUNN", &["run", "cmd"]), Some("run"));
        assert_eq!(suggest("copx", &["copy", "cmd"]), Some("copy"));
        assert_eq!(suggest("form", &["chown", "from"]), Some("from"));
        assert_eq!(suggest("zzzzzz", &["copy", "cmd"]), None);
    }
}
