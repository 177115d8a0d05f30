//! The checks of the common shapes (flag words, FROM, HEALTHCHECK, ONBUILD), as the lowering
//! makes them, and the lowering's warnings for the blocks that get one.

use super::build::fast_block;
use super::{Block, FlagView, Kind, WordRef, WordView};
use crate::ast::{MountSpec, Word};
use crate::lower::{self, FlagKind};
use crate::raw::{fast_head, keyword_name};
use crate::scan::LogicalLine;
use crate::span::Span;
use crate::text::{self, Text};

/// The warning the lowering gives for a block that [`fast_block`] flagged: the same rule, text,
/// span and line.
pub(super) fn warn_as_lowering(
    ctx: &mut lower::Ctx<'_>,
    name: &str,
    line: &LogicalLine,
    words: &[WordRef],
    start_line: u32,
) {
    let (rule, message, span) = match name {
        "env" | "label" => {
            let kw = if name == "env" { "ENV" } else { "LABEL" };
            (
                "LegacyKeyValueFormat",
                format!(
                    "\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"
                ),
                words[1].span,
            )
        }
        "maintainer" => (
            "MaintainerDeprecated",
            "the MAINTAINER instruction is deprecated, use a label instead to define an image \
             author"
                .to_string(),
            words[0].span,
        ),
        _ => {
            let kw = line.text[words[0].start as usize..words[0].end as usize].to_ascii_uppercase();
            (
                "JSONArgsRecommended",
                format!(
                    "JSON arguments recommended for {kw} to prevent unintended behavior related \
                     to OS signals"
                ),
                words[1].span,
            )
        }
    };
    ctx.warn(rule, message, span, start_line);
}

/// HEALTHCHECK's flags (as the lowering's).
pub(super) const HEALTHCHECK_FLAGS: &[(&str, FlagKind)] = &[
    ("interval", FlagKind::Str),
    ("timeout", FlagKind::Str),
    ("start-period", FlagKind::Str),
    ("start-interval", FlagKind::Str),
    ("retries", FlagKind::Str),
];

/// The blocks of an ONBUILD whose trigger is of [`fast_block`]'s shapes without a warning
/// (and not FROM, MAINTAINER or ONBUILD, which the lowering refuses): the ONBUILD's words
/// (keyword, rest) in `words`, the trigger's in `trigger_words`.
pub(super) fn fast_onbuild(
    line: &LogicalLine,
    escape: char,
    scratch: &mut Vec<(usize, usize, usize)>,
    words: &mut Vec<WordRef>,
    trigger_words: &mut Vec<WordRef>,
) -> Option<(Block, Block)> {
    words.clear();
    if crate::reference_mode() {
        return None;
    }
    let text = line.text.as_str();
    let head = fast_head(text)?;
    if !head.flags.as_slice().is_empty() || has_heredoc_marker(text.as_bytes()) {
        return None;
    }
    let (ks, ke) = head.keyword;
    if keyword_name(&text[ks..ke])? != "onbuild" {
        return None;
    }
    let after = &text[head.end..];
    let trimmed = text::trim_start_whitespace(after);
    let rest_start = head.end + (after.len() - trimmed.len());
    let rest = text::trim_end_whitespace(trimmed);
    let sub_keyword = rest.split(crate::raw::is_blank).next().unwrap_or("");
    if rest.is_empty()
        || ["onbuild", "from", "maintainer"]
            .iter()
            .any(|k| sub_keyword.eq_ignore_ascii_case(k))
    {
        return None;
    }
    let (mut trigger, _, warn) = fast_block(line, rest_start, escape, scratch, trigger_words)?;
    if warn {
        return None;
    }
    trigger.bits |= super::TRIGGER;
    let rest_end = rest_start + rest.len();
    words.push(WordRef {
        start: ks as u32,
        end: ke as u32,
        span: line.span(ks, ke),
    });
    words.push(WordRef {
        start: rest_start as u32,
        end: rest_end as u32,
        span: line.span(rest_start, rest_end),
    });
    let block = Block {
        line: line.text.clone(),
        first: 0,
        len: 2,
        span: Span::new(line.source_offset(0), line.end),
        start_line: line.start_line as u32,
        end_line: line.end_line as u32,
        orig_len: text.len() as u32,
        ext: 0,
        heredocs: 0,
        flags: 0,
        kind: Kind::Onbuild,
        bits: 0,
    };
    Some((block, trigger))
}

/// Whether `text` may hold a heredoc marker (`<<`).
pub(super) fn has_heredoc_marker(text: &[u8]) -> bool {
    memchr::memchr_iter(b'<', text).any(|i| text.get(i + 1) == Some(&b'<'))
}

/// Whether plain flag words (no quotes or backslashes) pass the checks of [`crate::lower`]'s
/// `Flags::parse` for `spec`, and a constant `--chmod` its value check.
pub(super) fn flags_valid(
    line: &Text,
    sp: impl Fn(usize, usize) -> Span,
    flags: &[(usize, usize)],
    spec: &[(&str, FlagKind)],
) -> bool {
    let mut seen = [""; 8];
    for (i, &(a, b)) in flags.iter().enumerate() {
        let f = FlagView::of(WordView {
            text: &line[a..b],
            span: Span::default(),
        });
        let Some(&(name, kind)) = spec.iter().find(|(n, _)| *n == f.name) else {
            return false;
        };
        if kind != FlagKind::Strs && seen[..i].contains(&name) {
            return false;
        }
        seen[i] = name;
        let ok = match (kind, f.value) {
            (FlagKind::Bool, Some(v)) => {
                v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
            }
            (FlagKind::Bool, None) => true,
            (_, None) => false,
            (_, Some(v)) => match name {
                "chmod" => v.contains('$') || crate::values::parse_chmod(v).is_ok(),
                "network" => matches!(v, "default" | "none" | "host"),
                "security" => matches!(v, "sandbox" | "insecure"),
                "mount" => mount_of(line, a, b, sp(a, b)).is_some(),
                "interval" | "timeout" | "start-period" | "start-interval" => {
                    crate::values::parse_go_duration(v)
                        .is_ok_and(|d| d.is_zero() || d.as_nanos() >= 1_000_000)
                }
                "retries" => v.parse::<u32>().is_ok(),
                _ => true,
            },
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The mount of the `--mount=` flag word at `a..b` of `line` as the lowering reads it (options
/// that BuildKit only checks when the stage runs are kept in [`MountSpec::invalid`]); `None`
/// when the lowering refuses it.
pub(super) fn mount_of(line: &Text, a: usize, b: usize, span: Span) -> Option<MountSpec> {
    let word = Word::new(line.slice(a + "--mount=".len()..b), span);
    match MountSpec::parse_word(&word, true) {
        Ok(m) => Some(m),
        Err(e) if crate::mount::is_csv_record(&word.text) => Some(MountSpec {
            raw: word,
            invalid: Some(e.message),
            ..MountSpec::default()
        }),
        Err(_) => None,
    }
}

/// A FROM that lowers without an error or a warning: `image`, or `image AS name` with a
/// lower-case name and `AS` cased as the keyword.
pub(super) fn valid_from(text: &str, words: &[WordRef], nh: usize) -> bool {
    let s = |w: &WordRef| &text[w.start as usize..w.end as usize];
    match words.len() - nh {
        1 => true,
        3 => {
            let (kw, as_word, alias) = (s(&words[0]), s(&words[nh + 1]), s(&words[nh + 2]));
            let mut chars = alias.chars();
            let alias_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            let upper = |t: &str| t.bytes().all(|c| c.is_ascii_uppercase());
            let lower = |t: &str| t.bytes().all(|c| c.is_ascii_lowercase());
            as_word.eq_ignore_ascii_case("as")
                && alias_ok
                && (!upper(kw) || upper(as_word))
                && (!lower(kw) || lower(as_word))
        }
        _ => false,
    }
}
