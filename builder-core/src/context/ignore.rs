//! `.dockerignore` files and the matcher built from them, with Docker's semantics (moby
//! `patternmatcher` and `ignorefile.ReadAll`, as BuildKit applies them when it loads a context).
//!
//! Reading a file: a UTF-8 byte-order mark is dropped, lines starting with `#` (in the first
//! column) are comments, every other line is trimmed and skipped when empty, `!` marks a
//! re-inclusion (the text after it is trimmed again), the pattern is cleaned like Go's
//! `filepath.Clean` and a leading `/` is removed, so `/a`, `./a` and `a` are the same pattern.
//!
//! Matching: patterns apply in order and the last one that matches decides; a pattern matching a
//! parent directory matches everything below it. The build context root itself is never excluded.
//! BuildKit applies the patterns to every entry of the context alike, the Dockerfile and the
//! `.dockerignore` included: the builder reads those two files directly, so excluding them only
//! keeps them out of `COPY .`. kiln does the same.
//!
//! `<Dockerfile>.dockerignore` beside the Dockerfile takes precedence over the context's
//! `.dockerignore` ([`IgnoreFile::locate`]).
//!
//! This module owns pattern files and matching, not walking (see `context::walk`).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::pattern::{Pattern, go_clean};
use crate::fsroot::Root;

/// The name of the ignore file at the context root.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// An error reading or parsing an ignore file.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// A pattern is malformed.
    #[error("{file}:{line}: invalid pattern {pattern:?}")]
    Pattern {
        /// The ignore file (or a description of where the patterns came from).
        file: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The offending line, trimmed.
        pattern: String,
        /// What is wrong with it.
        #[source]
        source: super::glob::BadPattern,
    },
    /// The ignore file exists but cannot be read.
    #[error("cannot read {file}")]
    Read {
        /// The ignore file.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The contents of an ignore file and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreFile {
    /// Where it was read from, for error messages.
    pub path: PathBuf,
    /// Its bytes.
    pub contents: Vec<u8>,
}

impl IgnoreFile {
    /// Finds the ignore file for a build as BuildKit does: `<dockerfile>.dockerignore` beside the
    /// Dockerfile (a trusted host path, which may lie outside the context) wins; otherwise the
    /// context's `.dockerignore`, resolved inside the context root. `None` when neither exists.
    pub fn locate(context: &Root, dockerfile: Option<&Path>) -> Result<Option<Self>, IgnoreError> {
        if let Some(df) = dockerfile {
            let mut name = df.as_os_str().to_os_string();
            name.push(".dockerignore");
            let path = PathBuf::from(name);
            match std::fs::read(&path) {
                Ok(contents) => return Ok(Some(Self { path, contents })),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(IgnoreError::Read { file: path, source }),
            }
        }
        let rel = Path::new(DOCKERIGNORE);
        let shown = context.path().join(DOCKERIGNORE);
        let mut file = match context.open_file(rel) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => {
                return Err(IgnoreError::Read {
                    file: shown,
                    source: e.source,
                });
            }
        };
        let mut contents = Vec::new();
        file.read_to_end(&mut contents)
            .map_err(|source| IgnoreError::Read {
                file: shown.clone(),
                source,
            })?;
        Ok(Some(Self {
            path: shown,
            contents,
        }))
    }

    /// Parses the file into a matcher.
    pub fn matcher(&self) -> Result<IgnoreMatcher, IgnoreError> {
        IgnoreMatcher::from_lines(&self.path, &read_patterns(&self.contents))
    }
}

/// The patterns of an ignore file with their 1-based line numbers, normalised as
/// `ignorefile.ReadAll` does (see the module docs).
pub fn read_patterns(contents: &[u8]) -> Vec<(usize, String)> {
    let contents = contents
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(contents);
    // Bytes that are not UTF-8 are kept (one character each), as names are when matched.
    let text = kiln_dockerfile_parser::bytes::decode(contents).0;
    let mut out = Vec::new();
    for (idx, raw) in text.split('\n').enumerate() {
        // Go's bufio.Scanner drops the `\r` of a CRLF line ending.
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = go_clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        out.push((idx + 1, cleaned));
    }
    out
}

/// Per-pattern results for a directory, handed down to its children so that a pattern matching
/// a parent matches its whole subtree (moby's `MatchInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchState {
    parent_matched: Vec<bool>,
}

/// An ordered list of ignore patterns.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
    /// Every `!` pattern is a literal path (once a trailing `/**` or `/*` is removed), so an
    /// excluded directory needs walking only when such a path lies below it.
    literal_exclusions: bool,
}

/// Characters that make a pattern more than a literal path, as BuildKit's walker checks them.
const PATTERN_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];

impl IgnoreMatcher {
    /// A matcher that excludes nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds a matcher from patterns with their line numbers; `origin` names them in errors.
    pub fn from_lines(origin: &Path, lines: &[(usize, String)]) -> Result<Self, IgnoreError> {
        let mut patterns = Vec::with_capacity(lines.len());
        for (line, text) in lines {
            if text.trim().is_empty() {
                continue;
            }
            let p = Pattern::new(text).map_err(|source| IgnoreError::Pattern {
                file: origin.to_path_buf(),
                line: *line,
                pattern: text.clone(),
                source,
            })?;
            patterns.push(p);
        }
        Ok(Self::from_patterns(patterns))
    }

    /// Builds a matcher from already compiled patterns.
    pub fn from_patterns(patterns: Vec<Pattern>) -> Self {
        let exclusions = patterns.iter().any(Pattern::is_exclusion);
        let literal_exclusions = patterns
            .iter()
            .filter(|p| p.is_exclusion())
            .all(|p| !p.without_trailing_glob().contains(PATTERN_CHARS));
        Self {
            patterns,
            exclusions,
            literal_exclusions,
        }
    }

    /// Builds a matcher from pattern strings (as `COPY --exclude` gives them), each compiled as
    /// Docker's `patternmatcher.New` does.
    pub fn from_strings<S: AsRef<str>>(origin: &Path, patterns: &[S]) -> Result<Self, IgnoreError> {
        let lines: Vec<(usize, String)> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, p.as_ref().to_string()))
            .collect();
        Self::from_lines(origin, &lines)
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is a `!` re-inclusion.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// The compiled patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether `path` (relative, slash-separated, clean) is excluded, checking its parent
    /// directories too (moby's `MatchesOrParentMatches`). The root (`""` or `.`) never is.
    pub fn matches(&self, path: &str) -> bool {
        if path.is_empty() || path == "." {
            return false;
        }
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.is_exclusion() != matched {
                continue;
            }
            let mut hit = p.matches(path);
            if !hit {
                let mut prefix = String::new();
                for (i, dir) in parents.iter().enumerate() {
                    if i > 0 {
                        prefix.push('/');
                    }
                    prefix.push_str(dir);
                    if p.matches(&prefix) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !p.is_exclusion();
            }
        }
        matched
    }

    /// Whether `path` is excluded, given the state of its parent directory (the default state for
    /// entries at the root); returns the state to hand to its children (moby's
    /// `MatchesUsingParentResults`, which BuildKit's context walker uses).
    pub fn matches_with_parent(&self, path: &str, parent: &MatchState) -> (bool, MatchState) {
        let inherited = parent.parent_matched.len() == self.patterns.len();
        let mut state = MatchState {
            parent_matched: vec![false; self.patterns.len()],
        };
        let mut matched = false;
        for (i, p) in self.patterns.iter().enumerate() {
            let mut hit = inherited && parent.parent_matched[i];
            if !hit {
                if p.is_exclusion() != matched {
                    continue;
                }
                hit = p.matches(path);
                if !hit
                    && !inherited
                    && let Some(idx) = path.rfind('/')
                {
                    let dir = &path[..idx];
                    hit = dir
                        .match_indices('/')
                        .map(|(j, _)| &dir[..j])
                        .chain(std::iter::once(dir))
                        .any(|prefix| p.matches(prefix));
                }
            }
            state.parent_matched[i] = hit;
            if hit {
                matched = !p.is_exclusion();
            }
        }
        (matched, state)
    }

    /// Whether the walker may skip the subtree of the excluded directory `dir` because no `!`
    /// pattern could re-include anything below it (BuildKit's pruning rule).
    pub fn can_skip_excluded_dir(&self, dir: &str) -> bool {
        if !self.exclusions {
            return true;
        }
        if !self.literal_exclusions {
            return false;
        }
        let dir_slash = format!("{dir}/");
        !self
            .patterns
            .iter()
            .filter(|p| p.is_exclusion())
            .any(|p| format!("{}/", p.without_trailing_glob()).starts_with(&dir_slash))
    }
}

#[cfg(test)]
#[path = "ignore_tests.rs"]
mod tests;
