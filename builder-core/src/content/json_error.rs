//! A JSON parse error that never quotes the document.
//!
//! `serde_json`'s messages quote values from the input (`invalid type: string "hunter2",
//! expected u64`, unknown variants, unknown fields). The documents kiln reads can be anything a
//! user or an image points it at, including files with passwords or tokens, so errors keep only
//! the kind of problem and where it is.

use std::fmt;

/// What was wrong with a JSON document, and where; never the document's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct JsonError {
    /// The kind of problem.
    pub kind: JsonErrorKind,
    /// 1-based line of the problem (0 when unknown).
    pub line: usize,
    /// 1-based column of the problem (0 when unknown).
    pub column: usize,
}

/// The kind of a [`JsonError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonErrorKind {
    /// Not JSON at all, or broken JSON.
    Syntax,
    /// Valid JSON of an unexpected shape (a missing field, a value of the wrong type).
    Structure,
    /// The document ends early.
    Truncated,
    /// Reading failed.
    Io,
}

impl From<&serde_json::Error> for JsonError {
    fn from(e: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let kind = match e.classify() {
            Category::Syntax => JsonErrorKind::Syntax,
            Category::Data => JsonErrorKind::Structure,
            Category::Eof => JsonErrorKind::Truncated,
            Category::Io => JsonErrorKind::Io,
        };
        JsonError {
            kind,
            line: e.line(),
            column: e.column(),
        }
    }
}

impl From<serde_json::Error> for JsonError {
    fn from(e: serde_json::Error) -> Self {
        JsonError::from(&e)
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            JsonErrorKind::Syntax => "not valid JSON",
            JsonErrorKind::Structure => "JSON of an unexpected structure",
            JsonErrorKind::Truncated => "JSON that ends early",
            JsonErrorKind::Io => "unreadable",
        };
        write!(f, "{what}")?;
        if self.line > 0 {
            write!(f, " (line {}, column {})", self.line, self.column)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_from_the_document_are_never_quoted() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            n: u64,
        }
        for doc in [
            r#"{"n": "hunter2-token"}"#,
            r#"{"hunter2-token": 1}"#,
            "hunter2-token",
            r#"{"n": 1, "x": "hunter2-token"#,
        ] {
            let e = serde_json::from_str::<Doc>(doc).unwrap_err();
            let msg = JsonError::from(e).to_string();
            assert!(!msg.contains("hunter2"), "{msg}");
            assert!(msg.contains("line 1"), "{msg}");
        }
    }
}
