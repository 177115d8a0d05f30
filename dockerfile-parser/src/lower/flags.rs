//! Instruction flags with BuildKit's `BFlags` rules: declared names, boolean / single / repeated
//! values, unknown flags rejected with a suggestion.

use crate::ast::{Flag, RawInstruction, Word};
use crate::error::{ParseError, ParseErrorKind, suggest};

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    /// `--link` or `--link=true|false`
    Bool,
    /// `--from=x`, once
    Str,
    /// `--mount=x`, repeatable
    Strs,
}

/// Flags of one instruction, checked against a declaration.
pub(crate) struct Flags<'a> {
    /// Flags given, in order, with their declared name: the first few in place (no allocation
    /// for nearly every instruction), the rest in `more`.
    first: [Option<(&'static str, &'a Flag)>; FIRST],
    more: Vec<(&'static str, &'a Flag)>,
}

/// How many flags [`Flags`] holds without allocating.
const FIRST: usize = 4;

impl<'a> Flags<'a> {
    /// Checks `raw.flags` against `spec`.
    pub fn parse(
        raw: &'a RawInstruction,
        spec: &[(&'static str, FlagKind)],
        src: &str,
    ) -> Result<Self, ParseError> {
        let mut used = Flags {
            first: [None; FIRST],
            more: Vec::new(),
        };
        for (i, flag) in raw.flags.iter().enumerate() {
            let Some(&(name, kind)) = spec.iter().find(|(n, _)| *n == flag.name) else {
                let keyword = raw.keyword.text.to_ascii_uppercase();
                let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
                let label = if names.is_empty() {
                    format!("{keyword} takes no flags, found `--{}`", flag.name)
                } else {
                    format!(
                        "expected one of {}, found `--{}`",
                        names
                            .iter()
                            .map(|n| format!("--{n}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        flag.name
                    )
                };
                return Err(ParseError::new(
                    ParseErrorKind::UnknownFlag {
                        flag: flag.name.to_string(),
                        suggestion: suggest(&flag.name, &names).map(str::to_string),
                    },
                    flag.span,
                    label,
                    src,
                ));
            };
            if kind != FlagKind::Strs && used.all().any(|(n, _)| n == name) {
                return Err(ParseError::new(
                    ParseErrorKind::DuplicateFlag(name.to_string()),
                    flag.span,
                    format!("`--{name}` was already given"),
                    src,
                )
                .with_help("give the flag once"));
            }
            match (kind, &flag.value) {
                (FlagKind::Bool, Some(v)) if v.is_empty() => {
                    return Err(missing(name, flag, src));
                }
                (FlagKind::Bool, Some(v))
                    if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
                {
                    return Err(ParseError::new(
                        ParseErrorKind::InvalidFlagValue {
                            flag: name.to_string(),
                            message: format!("expecting boolean value, not: {v}"),
                        },
                        flag.span,
                        format!("expected `true` or `false`, found `{v}`"),
                        src,
                    ));
                }
                (FlagKind::Str | FlagKind::Strs, None) => return Err(missing(name, flag, src)),
                _ => {}
            }
            match used.first.get_mut(i) {
                Some(slot) => *slot = Some((name, flag)),
                None => used.more.push((name, flag)),
            }
        }
        Ok(used)
    }

    /// The flags given, in order, with their declared names.
    fn all(&self) -> impl Iterator<Item = (&'static str, &'a Flag)> + '_ {
        self.first
            .iter()
            .map_while(|f| *f)
            .chain(self.more.iter().copied())
    }

    fn get<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a Flag> + 's {
        self.all().filter(move |(n, _)| *n == name).map(|(_, f)| f)
    }

    /// A single-valued flag's value.
    pub fn string(&self, name: &str) -> Option<Word> {
        self.get(name).next().map(|f| f.value_word())
    }

    /// The flag itself (for its span).
    pub fn flag(&self, name: &str) -> Option<&'a Flag> {
        self.get(name).next()
    }

    /// A repeated flag's values in order.
    pub fn strings(&self, name: &str) -> Vec<Word> {
        self.get(name).map(|f| f.value_word()).collect()
    }

    /// A boolean flag: `None` if absent.
    pub fn boolean(&self, name: &str) -> Option<bool> {
        self.get(name).next().map(|f| {
            f.value
                .as_deref()
                .is_none_or(|v| v.eq_ignore_ascii_case("true"))
        })
    }
}

fn missing(name: &str, flag: &Flag, src: &str) -> ParseError {
    ParseError::new(
        ParseErrorKind::MissingFlagValue(name.to_string()),
        flag.span,
        format!("expected `--{name}=<value>`, found no value"),
        src,
    )
}
