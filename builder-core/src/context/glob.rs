//! Go's `path/filepath.Match` on Unix, which Dockerfile `COPY`/`ADD` sources use for wildcards and
//! which `.dockerignore` uses to validate its patterns.
//!
//! Syntax: `*` matches any run of characters other than `/`, `?` one character other than `/`,
//! `[...]` a character class (`[^...]` negated; `!` is an ordinary character, as in Go), `\`
//! escapes the next character. A class may match `/`. Matching works on Unicode scalar values, as
//! Go works on runes; names and patterns that are not UTF-8 are compared in the lossless form of
//! `kiln_dockerfile_parser::bytes`, where each invalid byte is one character, as Go reads it.
//!
//! This module owns only the matching algorithm: it does no I/O.

/// A malformed pattern (Go's `filepath.ErrBadPattern`), with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern: {reason}")]
pub struct BadPattern {
    /// What is wrong, e.g. "unterminated character class".
    pub reason: &'static str,
}

fn bad(reason: &'static str) -> BadPattern {
    BadPattern { reason }
}

/// Whether a path component contains an unescaped wildcard character (`*`, `?` or `[`), as
/// BuildKit decides whether a source needs wildcard expansion.
pub fn has_wildcards(component: &str) -> bool {
    let mut chars = component.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Checks the whole pattern's syntax, as Go's `filepath.Match` does whatever the name.
pub fn validate(pattern: &str) -> Result<(), BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(bad("trailing backslash"));
                }
                i += 2;
            }
            '[' => {
                let (_, next) = parse_class(&p, i)?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// A parsed character class: inclusive ranges and whether it is negated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    pub(crate) negated: bool,
    pub(crate) ranges: Vec<(char, char)>,
}

impl Class {
    pub(crate) fn matches(&self, c: char) -> bool {
        let hit = self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
        hit != self.negated
    }
}

fn class_char(p: &[char], i: usize) -> Result<(char, usize), BadPattern> {
    match p.get(i) {
        None => Err(bad("unterminated character class")),
        Some('-') | Some(']') => Err(bad("unescaped '-' or ']' in character class")),
        Some('\\') => match p.get(i + 1) {
            None => Err(bad("trailing backslash")),
            Some(&c) => Ok((c, i + 2)),
        },
        Some(&c) => Ok((c, i + 1)),
    }
}

/// Parses the class starting at `p[start] == '['`; returns it and the index after its `]`.
pub(crate) fn parse_class(p: &[char], start: usize) -> Result<(Class, usize), BadPattern> {
    let mut i = start + 1;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if p.get(i) == Some(&']') && !ranges.is_empty() {
            return Ok((Class { negated, ranges }, i + 1));
        }
        let (lo, next) = class_char(p, i)?;
        i = next;
        let mut hi = lo;
        if p.get(i) == Some(&'-') {
            let (h, next) = class_char(p, i + 1)?;
            hi = h;
            i = next;
        }
        ranges.push((lo, hi));
        if i >= p.len() {
            return Err(bad("unterminated character class"));
        }
    }
}

/// Go's `filepath.Match(pattern, name)` on Unix.
pub fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    validate(pattern)?;
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    Ok(match_from(&p, &n))
}

/// One element of a compiled pattern.
enum Tok {
    Lit(char),
    Any,
    Class(Class),
}

fn next_tok(p: &[char], i: usize) -> (Tok, usize) {
    match p[i] {
        '?' => (Tok::Any, i + 1),
        '\\' => (Tok::Lit(p.get(i + 1).copied().unwrap_or('\\')), i + 2),
        '[' => match parse_class(p, i) {
            Ok((class, next)) => (Tok::Class(class), next),
            // Unreachable after validation; treat as a literal to stay total.
            Err(_) => (Tok::Lit('['), i + 1),
        },
        c => (Tok::Lit(c), i + 1),
    }
}

/// Matches a validated pattern against a name. `*` never crosses `/`; classes may.
fn match_from(p: &[char], n: &[char]) -> bool {
    // Iterative glob matching with single-star backtracking, restarting the backtrack point at the
    // latest star; a star cannot consume '/', so backtracking stops at a separator.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() && p[pi] == '*' {
            while pi < p.len() && p[pi] == '*' {
                pi += 1;
            }
            star = Some((pi, ni));
            continue;
        }
        if pi >= p.len() && ni >= n.len() {
            return true;
        }
        if pi < p.len() && ni < n.len() {
            let (tok, next) = next_tok(p, pi);
            let ok = match tok {
                Tok::Lit(c) => n[ni] == c,
                Tok::Any => n[ni] != '/',
                Tok::Class(class) => class.matches(n[ni]),
            };
            if ok {
                pi = next;
                ni += 1;
                continue;
            }
        }
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pattern, name, Some(matched) | None for a bad pattern): Go's own `filepath.Match` cases.
    const CASES: &[(&str, &str, Option<bool>)] = &[
        ("abc", "abc", Some(true)),
        ("*", "abc", Some(true)),
        ("*c", "abc", Some(true)),
        ("a*", "a", Some(true)),
        ("a*", "abc", Some(true)),
        ("a*", "ab/c", Some(false)),
        ("a*/b", "abc/b", Some(true)),
        ("a*/b", "a/c/b", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
        ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
        ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
        ("ab[c]", "abc", Some(true)),
        ("ab[b-d]", "abc", Some(true)),
        ("ab[e-g]", "abc", Some(false)),
        ("ab[^c]", "abc", Some(false)),
        ("ab[^b-d]", "abc", Some(false)),
        ("ab[^e-g]", "abc", Some(true)),
        ("a\\*b", "a*b", Some(true)),
        ("a\\*b", "ab", Some(false)),
        ("a?b", "a☺b", Some(true)),
        ("a[^a]b", "a☺b", Some(true)),
        ("a???b", "a☺b", Some(false)),
        ("a[^a][^a][^a]b", "a☺b", Some(false)),
        ("[a-ζ]*", "α", Some(true)),
        ("*[a-ζ]", "A", Some(false)),
        ("a?b", "a/b", Some(false)),
        ("a*b", "a/b", Some(false)),
        ("[\\]a]", "]", Some(true)),
        ("[\\-]", "-", Some(true)),
        ("[x\\-]", "x", Some(true)),
        ("[x\\-]", "-", Some(true)),
        ("[x\\-]", "z", Some(false)),
        ("[\\-x]", "x", Some(true)),
        ("[\\-x]", "-", Some(true)),
        ("[\\-x]", "a", Some(false)),
        ("[]a]", "]", None),
        ("[-]", "-", None),
        ("[x-]", "x", None),
        ("[x-]", "-", None),
        ("[x-]", "z", None),
        ("[-x]", "x", None),
        ("[-x]", "-", None),
        ("[-x]", "a", None),
        ("\\", "a", None),
        ("[a-b-c]", "a", None),
        ("[", "a", None),
        ("[^", "a", None),
        ("[^bc", "a", None),
        ("a[", "a", None),
        ("a[", "ab", None),
        ("a[", "x", None),
        ("a/b[", "x", None),
        ("*x", "xxx", Some(true)),
        // `!` is not negation in Go.
        ("[!a]", "b", Some(false)),
        ("[!a]", "!", Some(true)),
        // A class may match the separator.
        ("a[/]b", "a/b", Some(true)),
        ("a[^x]b", "a/b", Some(true)),
    ];

    #[test]
    fn go_match_table() {
        for &(pattern, name, want) in CASES {
            let got = matches(pattern, name).ok();
            assert_eq!(got, want, "Match({pattern:?}, {name:?})");
        }
    }

    #[test]
    fn wildcard_detection() {
        assert!(has_wildcards("*.txt"));
        assert!(has_wildcards("a[bc]"));
        assert!(has_wildcards("a?"));
        assert!(!has_wildcards("plain"));
        assert!(!has_wildcards("a\\*b"));
    }
}
