//! How errors are put into words: [`chain`], an error with its causes on one line, and
//! [`IoError`], the one shape of a failed file operation that module errors carry. Both are
//! public as `kiln_builder_core::error::{chain, IoError}`.

use std::path::PathBuf;

/// An error and its causes on one line, joined with `: `, each cause printed once.
///
/// A cause whose text the line already shows (some foreign errors repeat their cause in their
/// message) is left out.
///
/// ```
/// use std::io;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot read {path}")]
/// struct ReadError {
///     path: String,
///     source: io::Error,
/// }
///
/// let e = ReadError { path: "/etc/x".into(), source: io::Error::other("denied") };
/// assert_eq!(e.to_string(), "cannot read /etc/x");
/// assert_eq!(kiln_builder_core::error::chain(&e), "cannot read /etc/x: denied");
/// ```
pub fn chain(err: &(dyn std::error::Error + '_)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// A file operation that failed: what was attempted, on which path, and the system's error.
///
/// ```
/// use kiln_builder_core::error::{IoError, chain};
///
/// let e = IoError::new("open", "/store/index.json", std::io::Error::other("denied"));
/// assert_eq!(e.to_string(), "cannot open /store/index.json");
/// assert_eq!(chain(&e), "cannot open /store/index.json: denied");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {path}")]
pub struct IoError {
    /// What was attempted (`open`, `create directory`, ...).
    pub op: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The system's error.
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    /// `op` on `path` failed with `source`.
    pub fn new(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self {
            op,
            path: path.into(),
            source,
        }
    }

    /// The system error's kind.
    pub fn kind(&self) -> std::io::ErrorKind {
        self.source.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("repeats: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn chain_joins_every_cause_once() {
        let e = Outer(Middle(std::io::Error::other("root cause")));
        assert_eq!(chain(&e), "outer: middle: root cause");
        let e = Repeats(std::io::Error::other("root cause"));
        assert_eq!(chain(&e), "repeats: root cause");
    }
}
