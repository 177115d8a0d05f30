//! Building blocks: the line loop of [`parse_blocks`] and the reading of the common shapes.

use std::cell::Cell;

use super::checks::{
    HEALTHCHECK_FLAGS, fast_onbuild, flags_valid, has_heredoc_marker, valid_from, warn_as_lowering,
};
use super::{Block, Dockerfile, Kind, WordRef};
use crate::error::{ParseError, ParseErrorKind};
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
    // Block offsets are 32-bit: one more byte than the largest offset is refused here, before
    // the full parse could accept it.
    if source.len() >= text::MAX_TEXT_LEN {
        return Err(crate::too_large(source.len()));
    }
    let blocks = parse_blocks_inner(source);
    if let Ok(Some(file)) = blocks {
        return Ok(file);
    }
    // Any error: the full parse gives it, with its order of errors. Should the full parse
    // accept the file, the block builder's own answer stands (it is deterministic: running it
    // again would give the same).
    crate::parse_typed_shared(source)?;
    match blocks {
        Err(e) => Err(e),
        // The builder gives up only on files the full parse refuses; should the two ever
        // disagree, that is a bug of this crate, said as such rather than blamed on the file.
        Ok(_) => Err(ParseError::new(
            ParseErrorKind::Internal("the block reader gave up on a file the full parse accepts"),
            Span::empty(0),
            "the parser could not read this file",
            "",
        )
        .with_help("this is a bug in the parser: please report it with the Dockerfile")),
    }
}

/// The block builder; `None` where the full parse must give the answer. `source` is below
/// [`text::MAX_TEXT_LEN`] ([`parse_blocks`] refused the rest).
fn parse_blocks_inner(source: &Text) -> Result<Option<Dockerfile>, ParseError> {
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
    let mut trigger_words: Vec<WordRef> = Vec::new();
    while let Some(line) = reader.scanner.next_logical()? {
        let escape = reader.scanner.escape;
        let fast = {
            let mut scratch = reader.words.borrow_mut();
            fast_block(&line, 0, escape, &mut scratch, &mut line_words)
        };
        let onbuild = if fast.is_none() && checker.has_stage {
            let mut scratch = reader.words.borrow_mut();
            fast_onbuild(
                &line,
                escape,
                &mut scratch,
                &mut line_words,
                &mut trigger_words,
            )
        } else {
            None
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
            None if onbuild.is_some() => {
                // ONBUILD and a trigger of the common shapes: two blocks, no lowering.
                let Some((mut block, mut trigger)) = onbuild else {
                    return Ok(None);
                };
                block.end_line = reader.scanner.line() as u32;
                block.first = words.len() as u32;
                words.extend_from_slice(&line_words);
                trigger.first = words.len() as u32;
                words.extend_from_slice(&trigger_words);
                block.ext = triggers.len() as u32;
                triggers.push(trigger);
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

/// The block of a line in one of the common shapes, with its keyword's name; `None` for
/// anything else (flags, heredocs, shapes the lowering may refuse or warn about).
pub(super) fn fast_block(
    line: &LogicalLine,
    base: usize,
    escape: char,
    scratch: &mut Vec<(usize, usize, usize)>,
    words: &mut Vec<WordRef>,
) -> Option<(Block, &'static str, bool)> {
    // The bool: the lowering warns about this instruction (see `warn_as_lowering`).
    words.clear();
    if crate::reference_mode() {
        return None;
    }
    // An ONBUILD's trigger starts at `base` of the line: its block's line is the rest.
    let sub;
    let line_text = if base == 0 {
        &line.text
    } else {
        sub = line.text.slice(base..line.text.len());
        &sub
    };
    let text = line_text.as_str();
    let sp = |a: usize, b: usize| line.span(base + a, base + b);
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
        "healthcheck" => HEALTHCHECK_FLAGS,
        _ => return None,
    };
    if !flags_valid(line_text, sp, flag_ranges, spec) {
        return None;
    }
    // ONBUILD always takes the general path (its trigger is an instruction of its own).
    let kind = match super::node::kind_of(name) {
        Some(Kind::Onbuild) | None => return None,
        Some(kind) => kind,
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
        span: sp(rest_start + a, rest_start + b),
    };
    let mut head_words = [WordRef::default(); 2 + 8];
    head_words[0] = WordRef {
        start: ks as u32,
        end: ke as u32,
        span: sp(ks, ke),
    };
    head_words[1] = WordRef {
        start: rest_start as u32,
        end: rest_end as u32,
        span: sp(rest_start, rest_end),
    };
    for (i, &(a, b)) in flag_ranges.iter().enumerate() {
        head_words[2 + i] = WordRef {
            start: a as u32,
            end: b as u32,
            span: sp(a, b),
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
                span: sp(rest_start + a, rest_start + b),
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
            // A byte loop: `str::contains` goes through the generic `memchr`, about 90
            // instructions for a short word.
            if !rest[fa..ft].bytes().any(|c| c == b'=') {
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
                        span: sp(rest_start + eq_at + 1, rest_start + b),
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
        Kind::Healthcheck => {
            // `NONE`, or `CMD` and a command (JSON strings without escapes, or shell form).
            let typ_len = rest.find(crate::raw::is_blank).unwrap_or(rest.len());
            let typ = &rest[..typ_len];
            let cmd = rest[typ_len..].trim_start_matches(crate::raw::is_blank);
            let cmd_at = rest.len() - cmd.len();
            if typ.eq_ignore_ascii_case("none") {
                if !cmd.is_empty() || !flag_ranges.is_empty() {
                    return None;
                }
                words.extend_from_slice(head_words);
                words.push(word(0, typ_len, typ_len));
            } else if typ.eq_ignore_ascii_case("cmd") && !cmd.is_empty() {
                words.extend_from_slice(head_words);
                words.push(word(0, typ_len, typ_len));
                if cmd.starts_with('[') {
                    let n = words.len();
                    let at = rest_start + cmd_at;
                    if !simple_json_items(cmd, |a, b| {
                        words.push(WordRef {
                            start: (at + a + 1) as u32,
                            end: (at + b - 1) as u32,
                            span: sp(at + a, at + b),
                        });
                    }) || words.len() == n
                    {
                        return None;
                    }
                    json = true;
                } else {
                    words.push(word(cmd_at, rest.len(), rest.len()));
                }
            } else {
                return None;
            }
        }
        Kind::Onbuild => return None,
    }
    Some((
        Block {
            first: 0,
            len: words.len() as u32,
            span: Span::new(line.source_offset(base), line.end),
            start_line: line.start_line as u32,
            end_line: line.end_line as u32,
            kind,
            flags: flag_ranges.len() as u16,
            orig_len: text.len() as u32,
            ext: 0,
            heredocs: 0,
            bits: if json { super::JSON } else { 0 },
            line: line_text.clone(),
        },
        name,
        legacy,
    ))
}
