//! The scanner behind [`Expander`]: BuildKit's `shell.Lex` walked character by character
//! (quotes, the escape character, `$VAR` and every `${...}` modifier), producing the joined
//! word and the split words at once, with the nesting and word-size limits checked as it goes.

use super::pattern::Pattern;
use super::{ExpandError, ExpandErrorKind, Expander, MAX_DEPTH};

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

pub(super) struct Lexer<'a> {
    opts: &'a Expander,
    src: &'a str,
    pos: usize,
    env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) used: Vec<String>,
    pub(super) unset: Vec<String>,
    depth: usize,
}

fn err(kind: ExpandErrorKind, offset: usize) -> ExpandError {
    ExpandError { kind, offset }
}

impl<'a> Lexer<'a> {
    pub(super) fn new(
        opts: &'a Expander,
        src: &'a str,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> Self {
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
    pub(super) fn process_stop_on(
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
