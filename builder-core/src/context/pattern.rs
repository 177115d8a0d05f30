//! One `.dockerignore` pattern with Docker's exact matching semantics (moby `patternmatcher`).
//!
//! Docker translates a cleaned pattern into a regular expression, except for three literal
//! shortcuts it detects first; the shortcuts and the expression disagree on edge cases, so both
//! are reproduced here:
//!
//! - *exact*: no wildcard at all: the path must equal the pattern;
//! - *prefix*: a literal followed by a trailing `**` (`dir/**`): the path starts with the literal;
//! - *suffix*: `**` followed by a literal (`**/name`, `**name`): the path ends with the literal,
//!   or equals it without its leading `/`;
//! - otherwise an expression: `*` is `[^/]*`, `?` is `[^/]`, `**` (and `**/`) is `(.*/)?`, a
//!   trailing `**` is `.*` (where `.` does not match a newline), classes match one character
//!   (possibly `/`), `\` escapes the next character.
//!
//! Docker validates a pattern with Go's `filepath.Match` when the matcher is built and compiles
//! the expression lazily; kiln rejects both kinds of error up front. Known deviations, all in
//! constructs no real `.dockerignore` uses: `*` and `?` inside a class are literal characters
//! (Go's expression makes them part of a class), an escaped letter or digit (`\d`, `\t`) is an
//! error (Go's expression gives it its regular-expression meaning), and `^` outside a class is a
//! literal (an anchor in Go's expression, so such a pattern never matches there).
//!
//! This module does no I/O.

use super::glob::{self, BadPattern, Class};

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    exclusion: bool,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    Prefix(String),
    Suffix(String),
    Expr(Vec<Tok>),
}

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` in the middle: empty, or any run without a newline that ends with `/`.
    DirStar,
    /// `**` at the end in an expression: any run without a newline.
    Rest,
    Class(Class),
}

impl Pattern {
    /// Compiles one pattern as Docker's `patternmatcher.New` does: trims it, cleans it like Go's
    /// `filepath.Clean` and takes a leading `!` as an exclusion (a re-inclusion).
    pub fn new(raw: &str) -> Result<Self, BadPattern> {
        let trimmed = raw.trim();
        let cleaned = go_clean(trimmed);
        let (exclusion, body) = match cleaned.strip_prefix('!') {
            Some("") => {
                return Err(BadPattern {
                    reason: "illegal exclusion pattern \"!\"",
                });
            }
            Some(rest) => (true, rest.to_string()),
            None => (false, cleaned),
        };
        glob::validate(&body)?;
        let kind = compile(&body)?;
        Ok(Self {
            text: body,
            exclusion,
            kind,
        })
    }

    /// The cleaned pattern without its `!`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern starts with `!` (re-includes what earlier patterns excluded).
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// Whether the pattern matches `path` itself (slash-separated, relative, clean).
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Expr(toks) => {
                let chars: Vec<char> = path.chars().collect();
                match_toks(toks, &chars)
            }
        }
    }

    /// The pattern without a trailing `/**` or `/*`, as BuildKit uses it to decide whether an
    /// excluded directory may hold re-included entries.
    pub(crate) fn without_trailing_glob(&self) -> &str {
        let t = self.text.as_str();
        t.strip_suffix("/**")
            .or_else(|| t.strip_suffix("/*"))
            .unwrap_or(t)
    }
}

/// Go's `filepath.Clean` for slash-separated paths.
pub fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|c| *c != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Detected {
    Exact,
    Prefix,
    Suffix,
    Expr,
}

fn compile(pattern: &str) -> Result<Kind, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut detected = Detected::Exact;
    let mut i = 0;
    let mut first = true;
    while i < p.len() {
        let c = p[i];
        let at_start = first;
        first = false;
        match c {
            '*' if p.get(i + 1) == Some(&'*') => {
                i += 2;
                if p.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= p.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        toks.push(Tok::Rest);
                        detected = Detected::Expr;
                    }
                } else {
                    toks.push(Tok::DirStar);
                    detected = Detected::Expr;
                }
                if at_start {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                detected = Detected::Expr;
                i += 1;
            }
            '?' => {
                toks.push(Tok::One);
                detected = Detected::Expr;
                i += 1;
            }
            '\\' => {
                let Some(&next) = p.get(i + 1) else {
                    return Err(BadPattern {
                        reason: "trailing backslash",
                    });
                };
                check_escape(next)?;
                toks.push(Tok::Lit(next));
                detected = Detected::Expr;
                i += 2;
            }
            '[' => {
                let (class, next) = glob::parse_class(&p, i)?;
                check_class(&p[i..next], &class)?;
                toks.push(Tok::Class(class));
                detected = Detected::Expr;
                i = next;
            }
            ']' => {
                toks.push(Tok::Lit(']'));
                detected = Detected::Expr;
                i += 1;
            }
            c => {
                toks.push(Tok::Lit(c));
                i += 1;
            }
        }
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        Detected::Suffix => Kind::Suffix(pattern[2..].to_string()),
        Detected::Expr => Kind::Expr(toks),
    })
}

/// Go's regular expressions accept an escaped ASCII punctuation character as itself; other escapes
/// either mean something else there or are errors.
fn check_escape(c: char) -> Result<(), BadPattern> {
    if c.is_ascii_punctuation() {
        Ok(())
    } else {
        Err(BadPattern {
            reason: "only punctuation characters may be escaped",
        })
    }
}

fn check_class(src: &[char], class: &Class) -> Result<(), BadPattern> {
    for w in src.windows(2) {
        if w[0] == '\\' {
            check_escape(w[1])?;
        }
    }
    if class.ranges.iter().any(|&(lo, hi)| lo > hi) {
        return Err(BadPattern {
            reason: "invalid character class range",
        });
    }
    Ok(())
}

/// Backtracking match of an expression against the whole path.
fn match_toks(toks: &[Tok], s: &[char]) -> bool {
    let Some((tok, rest)) = toks.split_first() else {
        return s.is_empty();
    };
    match tok {
        Tok::Lit(c) => s.first() == Some(c) && match_toks(rest, &s[1..]),
        Tok::One => s.first().is_some_and(|&c| c != '/') && match_toks(rest, &s[1..]),
        Tok::Class(class) => {
            s.first().is_some_and(|&c| class.matches(c)) && match_toks(rest, &s[1..])
        }
        Tok::Star => {
            let mut n = 0;
            loop {
                if match_toks(rest, &s[n..]) {
                    return true;
                }
                if n >= s.len() || s[n] == '/' {
                    return false;
                }
                n += 1;
            }
        }
        Tok::Rest => !s.contains(&'\n') && match_toks(rest, &[]),
        Tok::DirStar => {
            if match_toks(rest, s) {
                return true;
            }
            for (i, &c) in s.iter().enumerate() {
                if c == '\n' {
                    return false;
                }
                if c == '/' && match_toks(rest, &s[i + 1..]) {
                    return true;
                }
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_like_go() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("./a/", "a"),
            ("a//b/./c/..", "a/b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("**/", "**"),
            ("!./x", "!./x"),
        ] {
            assert_eq!(go_clean(input), want, "{input:?}");
        }
    }

    #[test]
    fn bad_patterns() {
        for p in ["[", "!", "a[", "\\", "[z-a]", "a\\qb", "[Local-Only]/"] {
            assert!(Pattern::new(p).is_err(), "{p:?} should be rejected");
        }
    }
}
