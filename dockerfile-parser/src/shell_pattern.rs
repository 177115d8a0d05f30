//! Shell patterns for `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/repl}`.

/// A compiled shell pattern: `*`, `?` and literal characters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatTok {
    Star,
    Any,
    Lit(char),
}

#[derive(Debug)]
pub(super) struct Pattern {
    toks: Vec<PatTok>,
}

impl Pattern {
    /// Compiles BuildKit's pattern dialect: `\}` and `\/` are plain `}` and `/`; otherwise only
    /// `\*`, `\?` and `\\` are valid escapes (the escape here is always a backslash).
    pub(super) fn compile(pat: &str) -> Result<Pattern, String> {
        let mut toks = Vec::new();
        let mut it = pat.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '*' => {
                    if toks.last() != Some(&PatTok::Star) {
                        toks.push(PatTok::Star);
                    }
                }
                '?' => toks.push(PatTok::Any),
                '\\' => match it.peek() {
                    Some('}' | '/') => {}
                    Some(&n @ ('*' | '?' | '\\')) => {
                        it.next();
                        toks.push(PatTok::Lit(n));
                    }
                    Some(n) => return Err(format!("invalid escape '\\{n}'")),
                    None => return Err("trailing backslash".to_string()),
                },
                _ => toks.push(PatTok::Lit(c)),
            }
        }
        Ok(Pattern { toks })
    }

    /// The number of characters every match has, for a pattern without `*`: only that length
    /// needs trying, which keeps substitutions on long values linear.
    fn fixed_len(&self) -> Option<usize> {
        (!self.toks.contains(&PatTok::Star)).then_some(self.toks.len())
    }

    /// Whether the whole of `s` matches (classic wildcard matching with one backtrack point).
    fn matches(&self, s: &[char]) -> bool {
        let (mut p, mut i) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while i < s.len() {
            match self.toks.get(p) {
                Some(PatTok::Any) => {
                    p += 1;
                    i += 1;
                }
                Some(PatTok::Lit(c)) if *c == s[i] => {
                    p += 1;
                    i += 1;
                }
                Some(PatTok::Star) => {
                    star = Some((p, i));
                    p += 1;
                }
                _ => match star {
                    Some((sp, si)) => {
                        p = sp + 1;
                        i = si + 1;
                        star = Some((sp, si + 1));
                    }
                    None => return false,
                },
            }
        }
        self.toks[p..].iter().all(|t| *t == PatTok::Star)
    }

    /// `${VAR#pat}` (shortest) / `${VAR##pat}` (longest): remove a matching prefix.
    pub(super) fn trim_prefix<'v>(&self, value: &'v str, greedy: bool) -> &'v str {
        let chars: Vec<(usize, char)> = value.char_indices().collect();
        let cs: Vec<char> = chars.iter().map(|(_, c)| *c).collect();
        let offset = |n: usize| chars.get(n).map(|(o, _)| *o).unwrap_or(value.len());
        let ends: Box<dyn Iterator<Item = usize>> = if greedy {
            Box::new((0..=cs.len()).rev())
        } else {
            Box::new(0..=cs.len())
        };
        if let Some(n) = self.fixed_len() {
            return match cs.get(..n).filter(|head| self.matches(head)) {
                Some(_) => &value[offset(n)..],
                None => value,
            };
        }
        for end in ends {
            if self.matches(&cs[..end]) {
                return &value[offset(end)..];
            }
        }
        value
    }

    /// `${VAR%pat}` (shortest) / `${VAR%%pat}` (longest): remove a matching suffix.
    pub(super) fn trim_suffix<'v>(&self, value: &'v str, greedy: bool) -> &'v str {
        let chars: Vec<(usize, char)> = value.char_indices().collect();
        let cs: Vec<char> = chars.iter().map(|(_, c)| *c).collect();
        let offset = |n: usize| chars.get(n).map(|(o, _)| *o).unwrap_or(value.len());
        let starts: Box<dyn Iterator<Item = usize>> = if greedy {
            Box::new(0..=cs.len())
        } else {
            Box::new((0..=cs.len()).rev())
        };
        if let Some(n) = self.fixed_len() {
            let start = cs.len().checked_sub(n);
            return match start.filter(|&st| self.matches(&cs[st..])) {
                Some(st) => &value[..offset(st)],
                None => value,
            };
        }
        for start in starts {
            if self.matches(&cs[start..]) {
                return &value[..offset(start)];
            }
        }
        value
    }

    /// `${VAR/pat/repl}` and `${VAR//pat/repl}`: leftmost, longest matches.
    /// `None` once the result would pass `max` bytes.
    pub(super) fn replace(
        &self,
        value: &str,
        replacement: &str,
        all: bool,
        max: usize,
    ) -> Option<String> {
        let cs: Vec<char> = value.chars().collect();
        let mut out = String::with_capacity(value.len());
        let mut i = 0;
        let mut replaced = false;
        let mut last_end: Option<usize> = None;
        let fixed = self.fixed_len();
        while i <= cs.len() {
            let found = if replaced && !all {
                None
            } else if let Some(n) = fixed {
                Some(i + n)
                    .filter(|&end| end <= cs.len() && self.matches(&cs[i..end]))
                    .filter(|&end| !(end == i && last_end == Some(i)))
            } else {
                (i..=cs.len())
                    .rev()
                    .find(|&end| self.matches(&cs[i..end]))
                    // Go ignores an empty match right after a previous match.
                    .filter(|&end| !(end == i && last_end == Some(i)))
            };
            match found {
                Some(end) => {
                    if out.len() + replacement.len() > max {
                        return None;
                    }
                    out.push_str(replacement);
                    replaced = true;
                    last_end = Some(end);
                    if end == i {
                        // Empty match: keep the character and move on, as Go's regexp does.
                        if let Some(c) = cs.get(i) {
                            out.push(*c);
                        }
                        i += 1;
                    } else {
                        i = end;
                    }
                }
                None => {
                    if let Some(c) = cs.get(i) {
                        out.push(*c);
                    }
                    i += 1;
                }
            }
        }
        (out.len() <= max).then_some(out)
    }
}
