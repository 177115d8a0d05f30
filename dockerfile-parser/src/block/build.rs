//! Building blocks: the line loop of [`parse_blocks`] and the reading of the common shapes.

use std::cell::Cell;

use super::{Block, Dockerfile, FlagView, Kind, WordRef, WordView};
use crate::ast::{MountSpec, Word};
use crate::error::ParseError;
use crate::lower::{self, ADD_FLAGS, COPY_FLAGS, FlagKind, Place, RUN_FLAGS};
use crate::raw::{fast_head, keyword_name, parse_words_into, simple_json_items, split_blanks};
use crate::scan::LogicalLine;
use crate::span::Span;
use crate::text::Text;
use crate::{RawReader, text};

/// Scratch lists of a parse, kept for the thread's next parse so that parsing many small files
/// does not allocate them again for each.
#[derive(Default)]
struct Scratch {
    join: String,
    segments: Vec<(usize, usize)>,
    words: Vec<(usize, usize, usize)>,
    line_words: Vec<WordRef>,
}

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::default();
}

/// `buf` if it is small enough to keep between parses (64 KiB), otherwise an empty one.
fn small<T: Default + Capacity>(buf: T) -> T {
    if buf.bytes() <= 64 << 10 {
        buf
    } else {
        T::default()
    }
}

trait Capacity {
    fn bytes(&self) -> usize;
}

impl Capacity for String {
    fn bytes(&self) -> usize {
        self.capacity()
    }
}

impl<T> Capacity for Vec<T> {
    fn bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>()
    }
}

/// Parses `source` into blocks, with [`crate::parse`]'s checks, errors and warnings.
pub fn parse_blocks(source: &Text) -> Result<Dockerfile, ParseError> {
    match parse_blocks_inner(source) {
        Ok(Some(file)) => Ok(file),
        // Any error: the full parse gives it, with its order of errors.
        Ok(None) | Err(_) => match crate::parse_typed_shared(source) {
            Err(e) => Err(e),
            Ok(_) => parse_blocks_inner(source)?.ok_or_else(|| crate::too_large(source.len())),
        },
    }
}

fn parse_blocks_inner(source: &Text) -> Result<Option<Dockerfile>, ParseError> {
    if source.len() >= text::MAX_TEXT_LEN {
        return Ok(None);
    }
    let src = source.as_str();
    let mut reader = RawReader::new(source);
    let mut ctx = lower::Ctx {
        src,
        warnings: Vec::new(),
    };
    let mut checker = lower::Checker::default();
    // Sized once from the size (real instructions are about 50 bytes with six words; no pass
    // to count the lines), so the lists rarely grow by copies.
    let estimate = src.len() / 48 + 4;
    let mut blocks: Vec<Block> = Vec::with_capacity(estimate);
    // Every block's words in one list; a line's words are read into `line_words` first.
    let mut words: Vec<WordRef> = Vec::with_capacity(estimate * 6);
    let kept = SCRATCH.with(Cell::take);
    reader.scanner.join = kept.join;
    reader.scanner.spare_segments = kept.segments;
    reader.words = kept.words.into();
    let mut line_words = kept.line_words;
    let mut stages = Vec::new();
    let mut heredocs = Vec::new();
    let mut triggers = Vec::new();
    while let Some(line) = reader.scanner.next_logical()? {
        let escape = reader.scanner.escape;
        let fast = {
            let mut scratch = reader.words.borrow_mut();
            fast_block(&line, escape, &mut scratch, &mut line_words)
        };
        let block = match fast {
            Some((mut block, name, warn)) => {
                block.end_line = reader.scanner.line() as u32;
                block.first = words.len() as u32;
                words.extend_from_slice(&line_words);
                if warn {
                    warn_as_lowering(&mut ctx, name, &line, &line_words, block.start_line);
                }
                let place = if name == "from" {
                    let a = 2 + block.flags as usize;
                    let alias = (line_words.len() == a + 3).then(|| line_words[a + 2]);
                    let name = alias.map(|a| block.line.slice(a.start as usize..a.end as usize));
                    let span = alias.map_or(block.span, |a| a.span);
                    checker.stage(name, span, block.start_line, &mut ctx)
                } else if checker.has_stage {
                    Place::InStage
                } else if name == "arg" {
                    checker.last_global_arg = Some(block.span);
                    Place::GlobalArg
                } else {
                    return Ok(None);
                };
                if let Place::Stage(name) = place {
                    stages.push((blocks.len() as u32, name));
                }
                reader.scanner.recycle(line.segments);
                reader.count += 1;
                block
            }
            None => {
                let (mut raw, name) = reader.build_line(line)?;
                let instruction = lower::lower_named(&raw, name, &mut ctx)?;
                let place = checker.check(&raw, Some(&instruction), name, &mut ctx)?;
                if let Place::Stage(name) = place {
                    stages.push((blocks.len() as u32, name));
                }
                let Some(kind) = super::node::kind_of(name) else {
                    return Ok(None);
                };
                let mut block = super::node::block_of_raw(&raw, kind, &mut words);
                let first_heredoc = heredocs.len() as u32;
                let count = raw.heredocs.len() as u32;
                heredocs.extend(std::mem::take(&mut raw.heredocs).into_vec());
                match (&raw.sub, &instruction) {
                    (Some(sub), crate::ast::Instruction::Onbuild(o)) => {
                        let sub_name = crate::raw::keyword_name(&sub.keyword.text).unwrap_or("");
                        let Some(sub_kind) = super::node::kind_of(sub_name) else {
                            return Ok(None);
                        };
                        let mut t = super::node::block_of_raw(sub, sub_kind, &mut words);
                        t.ext = first_heredoc;
                        t.heredocs = count;
                        t.bits |= super::TRIGGER;
                        block.ext = triggers.len() as u32;
                        if o.trigger.is_none() {
                            block.bits |= super::TRIGGER_INVALID;
                        }
                        triggers.push(t);
                    }
                    _ => {
                        block.ext = first_heredoc;
                        block.heredocs = count;
                    }
                }
                block
            }
        };
        blocks.push(block);
    }
    SCRATCH.with(|s| {
        s.set(Scratch {
            join: small(std::mem::take(&mut reader.scanner.join)),
            segments: small(std::mem::take(&mut reader.scanner.spare_segments)),
            words: small(reader.words.take()),
            line_words: small(line_words),
        })
    });
    let (directives, escape, mut warnings) = reader.finish()?;
    if !checker.has_stage {
        return Ok(None);
    }
    warnings.append(&mut ctx.warnings);
    warnings.sort_by_key(|w| (w.span.start, w.line));
    Ok(Some(Dockerfile {
        directives,
        escape,
        warnings,
        blocks,
        words,
        stages,
        heredocs,
        triggers,
    }))
}

/// The warning the lowering gives for a block that [`fast_block`] flagged: the same rule, text,
/// span and line.
fn warn_as_lowering(
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

/// The block of a line in one of the prototype's shapes, with its keyword's name; `None` for
/// anything else (flags, heredocs, shapes the lowering may refuse or warn about).
fn fast_block(
    line: &LogicalLine,
    escape: char,
    scratch: &mut Vec<(usize, usize, usize)>,
    words: &mut Vec<WordRef>,
) -> Option<(Block, &'static str, bool)> {
    // The bool: the lowering warns about this instruction (see `warn_as_lowering`).
    words.clear();
    if crate::reference_mode() {
        return None;
    }
    let text = line.text.as_str();
    let head = fast_head(text)?;
    if has_heredoc_marker(text.as_bytes()) {
        return None;
    }
    let (ks, ke) = head.keyword;
    let name = keyword_name(&text[ks..ke])?;
    let flag_ranges = head.flags.as_slice();
    let spec: &[(&str, FlagKind)] = match name {
        _ if flag_ranges.is_empty() => &[],
        "copy" => COPY_FLAGS,
        "add" => ADD_FLAGS,
        "from" => &[("platform", FlagKind::Str)],
        "run" => RUN_FLAGS,
        _ => return None,
    };
    if !flags_valid(line, flag_ranges, spec) {
        return None;
    }
    let kind = match name {
        "from" => Kind::From,
        "run" => Kind::Run,
        "cmd" => Kind::Cmd,
        "entrypoint" => Kind::Entrypoint,
        "copy" => Kind::Copy,
        "add" => Kind::Add,
        "env" => Kind::Env,
        "label" => Kind::Label,
        "arg" => Kind::Arg,
        "expose" => Kind::Expose,
        "volume" => Kind::Volume,
        "user" => Kind::User,
        "workdir" => Kind::Workdir,
        "stopsignal" => Kind::Stopsignal,
        "shell" => Kind::Shell,
        "maintainer" => Kind::Maintainer,
        _ => return None,
    };
    let after = &text[head.end..];
    let trimmed = text::trim_start_whitespace(after);
    let rest_start = head.end + (after.len() - trimmed.len());
    let rest = text::trim_end_whitespace(trimmed);
    if rest.is_empty() {
        return None;
    }
    let rest_end = rest_start + rest.len();
    let word = |a: usize, b: usize, t: usize| WordRef {
        start: (rest_start + a) as u32,
        end: (rest_start + t) as u32,
        span: line.span(rest_start + a, rest_start + b),
    };
    let mut head_words = [WordRef::default(); 2 + 8];
    head_words[0] = WordRef {
        start: ks as u32,
        end: ke as u32,
        span: line.span(ks, ke),
    };
    head_words[1] = WordRef {
        start: rest_start as u32,
        end: rest_end as u32,
        span: line.span(rest_start, rest_end),
    };
    for (i, &(a, b)) in flag_ranges.iter().enumerate() {
        head_words[2 + i] = WordRef {
            start: a as u32,
            end: b as u32,
            span: line.span(a, b),
        };
    }
    let head_words = &head_words[..2 + flag_ranges.len()];
    let nh = head_words.len();
    let mut json = false;
    let mut legacy = false; // a warning to give
    // JSON arrays of plain strings, counted first so the words are allocated once.
    let json_words = |words: &mut Vec<WordRef>| -> Option<()> {
        if !rest.starts_with('[') {
            return None;
        }
        let mut count = 0;
        if !simple_json_items(rest, |_, _| count += 1) {
            return None;
        }
        words.reserve_exact(nh + count);
        words.extend_from_slice(head_words);
        simple_json_items(rest, |a, b| {
            words.push(WordRef {
                start: (rest_start + a + 1) as u32,
                end: (rest_start + b - 1) as u32,
                span: line.span(rest_start + a, rest_start + b),
            })
        });
        Some(())
    };
    let blanks = |words: &mut Vec<WordRef>| {
        words.reserve_exact(nh + split_blanks(rest).count());
        words.extend_from_slice(head_words);
        words.extend(split_blanks(rest).map(|(a, b)| word(a, b, b)));
    };
    match kind {
        Kind::Run | Kind::Cmd | Kind::Entrypoint => {
            if rest.starts_with('[') {
                json_words(words)?;
                json = true;
            } else {
                // Shell-form CMD and ENTRYPOINT warn.
                legacy = kind != Kind::Run;
                words.reserve_exact(3);
                words.extend_from_slice(head_words);
                words.push(head_words[1]);
            }
        }
        Kind::Shell => {
            json_words(words)?;
            json = true;
            if words.len() == nh {
                return None;
            }
        }
        Kind::Copy | Kind::Add | Kind::Volume => {
            if rest.starts_with('[') {
                json_words(words)?;
                json = true;
            } else {
                blanks(words);
            }
            let args = &words[nh..];
            let ok = match kind {
                Kind::Volume => {
                    !args.is_empty()
                        && args
                            .iter()
                            .all(|w| !text[w.start as usize..w.end as usize].trim().is_empty())
                }
                _ => args.len() >= 2,
            };
            if !ok {
                return None;
            }
        }
        Kind::From | Kind::Expose => {
            blanks(words);
            if kind == Kind::From && !valid_from(text, words, nh) {
                return None;
            }
        }
        Kind::Arg => {
            parse_words_into(rest, escape, scratch);
            if scratch.is_empty() || scratch.iter().any(|&(a, _, _)| rest[a..].starts_with('=')) {
                return None;
            }
            words.reserve_exact(nh + scratch.len());
            words.extend_from_slice(head_words);
            words.extend(scratch.iter().map(|&(a, b, t)| word(a, b, t)));
        }
        Kind::Env | Kind::Label => {
            parse_words_into(rest, escape, scratch);
            let &(fa, _, ft) = scratch.first()?;
            if !rest[fa..ft].contains('=') {
                // Legacy `ENV name value`: one pair, and a warning.
                let (ka, kb) = split_blanks(rest).next()?;
                let va = kb + rest[kb..].find(|c| !crate::raw::is_blank(c))?;
                words.reserve_exact(nh + 3);
                words.extend_from_slice(head_words);
                words.push(word(ka, kb, kb));
                words.push(word(va, rest.len(), rest.len()));
                words.push(word(rest.len(), rest.len(), rest.len()));
                legacy = true;
            } else {
                words.reserve_exact(nh + 3 * scratch.len());
                words.extend_from_slice(head_words);
                for &(a, b, t) in scratch.iter() {
                    let eq = rest[a..t].bytes().position(|c| c == b'=')?;
                    if eq == 0 {
                        return None;
                    }
                    let eq_at = a + eq;
                    words.push(word(a, eq_at, eq_at));
                    words.push(WordRef {
                        start: (rest_start + eq_at + 1) as u32,
                        end: (rest_start + t) as u32,
                        span: line.span(rest_start + eq_at + 1, rest_start + b),
                    });
                    words.push(word(eq_at, eq_at + 1, eq_at + 1));
                }
            }
        }
        Kind::User | Kind::Workdir | Kind::Stopsignal | Kind::Maintainer => {
            legacy = kind == Kind::Maintainer;
            words.reserve_exact(nh + 1);
            words.extend_from_slice(head_words);
            words.push(head_words[1]);
        }
        Kind::Healthcheck | Kind::Onbuild => return None,
    }
    Some((
        Block {
            first: 0,
            len: words.len() as u32,
            span: Span::new(line.source_offset(0), line.end),
            start_line: line.start_line as u32,
            end_line: line.end_line as u32,
            kind,
            flags: flag_ranges.len() as u16,
            orig_len: text.len() as u32,
            ext: 0,
            heredocs: 0,
            bits: if json { super::JSON } else { 0 },
            line: line.text.clone(),
        },
        name,
        legacy,
    ))
}

/// Whether `text` may hold a heredoc marker (`<<`).
fn has_heredoc_marker(text: &[u8]) -> bool {
    memchr::memchr_iter(b'<', text).any(|i| text.get(i + 1) == Some(&b'<'))
}

/// Whether plain flag words (no quotes or backslashes) pass the checks of [`crate::lower`]'s
/// `Flags::parse` for `spec`, and a constant `--chmod` its value check.
fn flags_valid(line: &LogicalLine, flags: &[(usize, usize)], spec: &[(&str, FlagKind)]) -> bool {
    let mut seen = [""; 8];
    for (i, &(a, b)) in flags.iter().enumerate() {
        let f = FlagView::of(WordView {
            text: &line.text[a..b],
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
                "mount" => mount_of(&line.text, a, b, line.span(a, b)).is_some(),
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
fn valid_from(text: &str, words: &[WordRef], nh: usize) -> bool {
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
