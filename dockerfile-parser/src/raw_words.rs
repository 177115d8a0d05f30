//! Splitting an instruction's argument text the way BuildKit's line parsers do: JSON arrays,
//! blank-separated words with quotes and escapes, heredoc markers, keyword names.

use pest::Parser;

use crate::grammar::{DockerfileGrammar, Rule};
use crate::shell::Expander;

/// Outcome of looking at an argument string as a JSON array.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JsonArgs {
    NotJson,
    /// Each string's decoded value (`None`: the text between its quotes as written) and the
    /// range of its literal, quotes included.
    Strings(Vec<(Option<String>, usize, usize)>),
    NotStrings,
}

/// BuildKit's `parseJSON`: a JSON array of strings; a JSON array with anything else is an error;
/// anything that is not a valid JSON array is not JSON (and falls back to shell form).
pub(crate) fn parse_json_args(rest: &str) -> JsonArgs {
    if !rest.starts_with('[') {
        return JsonArgs::NotJson;
    }
    let simple = if crate::reference_mode() {
        None
    } else {
        simple_json_strings(rest)
    };
    match simple {
        Some(items) => JsonArgs::Strings(items),
        None => parse_json_args_decoder(rest),
    }
}

/// The common case without the JSON decoder: an array of strings that hold no escape and no
/// control character, so each decodes to its text as written. `None` for anything else, which
/// the decoder then reads (a test checks the two agree wherever this one answers).
pub(super) fn simple_json_strings(rest: &str) -> Option<Vec<(Option<String>, usize, usize)>> {
    let mut out = Vec::new();
    simple_json_items(rest, |a, b| out.push((None, a, b))).then_some(out)
}

/// [`simple_json_strings`] without a list: hands the range of each string literal (quotes
/// included) to `each`, and says whether the whole text is such an array. On `false`, `each`
/// may have been called for some items.
pub(crate) fn simple_json_items(rest: &str, mut each: impl FnMut(usize, usize)) -> bool {
    simple_json_scan(rest, &mut each).is_some()
}

fn simple_json_scan(rest: &str, each: &mut impl FnMut(usize, usize)) -> Option<()> {
    let b = rest.as_bytes();
    let ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
            *i += 1;
        }
    };
    if b.first() != Some(&b'[') {
        return None;
    }
    let mut i = 1;
    ws(&mut i);
    if b.get(i) == Some(&b']') {
        i += 1;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let start = i;
            i += 1;
            loop {
                match b.get(i)? {
                    b'"' => break,
                    b'\\' | 0..=0x1F => return None,
                    _ => i += 1,
                }
            }
            i += 1;
            each(start, i);
            ws(&mut i);
            match b.get(i)? {
                b',' => {
                    i += 1;
                    ws(&mut i);
                }
                b']' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    ws(&mut i);
    (i == b.len()).then_some(())
}

/// [`parse_json_args`] through the JSON decoder.
pub(super) fn parse_json_args_decoder(rest: &str) -> JsonArgs {
    match serde_json::from_str::<Vec<serde_json::Value>>(rest) {
        Ok(values) => {
            let mut out = Vec::with_capacity(values.len());
            let spans = json_string_spans(rest);
            for (i, v) in values.into_iter().enumerate() {
                match v {
                    serde_json::Value::String(s) => {
                        let (a, b) = spans.get(i).copied().unwrap_or((0, rest.len()));
                        out.push((Some(s), a, b));
                    }
                    _ => return JsonArgs::NotStrings,
                }
            }
            JsonArgs::Strings(out)
        }
        // Nesting deeper than the decoder allows is not JSON (Go's decoder also gives up).
        Err(_) => JsonArgs::NotJson,
    }
}

/// Byte ranges of the string literals of a JSON array already known to be valid.
pub(super) fn json_string_spans(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            out.push((start, (i + 1).min(b.len())));
        }
        i += 1;
    }
    out
}

/// Splits on runs of ASCII blanks; yields `(start, end)` ranges of the pieces.
pub(crate) fn split_blanks(s: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let b = s.as_bytes();
    let blank = |c: u8| matches!(c, b' ' | b'\t' | 0x0B | 0x0C | b'\r' | b'\n');
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() && blank(b[i]) {
            i += 1;
        }
        if i == b.len() {
            return None;
        }
        let start = i;
        while i < b.len() && !blank(b[i]) {
            i += 1;
        }
        Some((start, i))
    })
}

/// Where the run of plain bytes starting at `pos` ends, sixteen bytes at a time (SSE2, in every
/// x86-64 processor): plain is ASCII other than the blanks `\t`..`\r` and space, quotes and
/// `esc` (0x80 when the escape character is not ASCII). Stops early, at the last whole block;
/// the caller finishes the run byte by byte.
#[cfg(target_arch = "x86_64")]
fn plain_run_end(bytes: &[u8], mut pos: usize, esc: u8) -> usize {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_sub_epi8,
    };
    while pos + 16 <= bytes.len() {
        // SAFETY: SSE2 is in the x86-64 baseline; `pos + 16 <= len`, and the load needs no
        // alignment.
        let mask = unsafe {
            let v = _mm_loadu_si128(bytes.as_ptr().add(pos).cast());
            // 0x09..=0x0D: the byte minus 9 is at most 4 (unsigned).
            let d = _mm_sub_epi8(v, _mm_set1_epi8(0x09));
            let blank = _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(4)), d);
            let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            let special = _mm_or_si128(
                _mm_or_si128(blank, eq(b' ')),
                _mm_or_si128(_mm_or_si128(eq(b'\''), eq(b'"')), eq(esc)),
            );
            // The sign bit is set for bytes of 0x80 and above.
            _mm_movemask_epi8(special) | _mm_movemask_epi8(v)
        };
        if mask != 0 {
            return pos + mask.trailing_zeros() as usize;
        }
        pos += 16;
    }
    pos
}

/// [`plain_run_end`] elsewhere: the caller's byte loop does the work.
#[cfg(not(target_arch = "x86_64"))]
fn plain_run_end(_bytes: &[u8], pos: usize, _esc: u8) -> usize {
    pos
}

/// BuildKit's `parseWords`: quote-aware words, quotes and escapes kept in the text.
///
/// Returns `(start, end, text_end)`: the word spans `start..end` and its text is
/// `rest[start..text_end]`, which differs from `end` only when an escape character at the very
/// end of the line is dropped (as BuildKit drops it).
#[cfg(test)]
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<(usize, usize, usize)> {
    let mut words = Vec::new();
    parse_words_into(rest, escape, &mut words);
    words
}

/// [`parse_words`] into `words` (cleared first), so a caller reuses one list from line to line.
pub(crate) fn parse_words_into(rest: &str, escape: char, words: &mut Vec<(usize, usize, usize)>) {
    words.clear();
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let bytes = rest.as_bytes();
    // The next character and its length, without decoding ASCII (nearly all of the text).
    let char_at = |pos: usize| -> (char, usize) {
        match bytes[pos] {
            b if b < 0x80 => (b as char, 1),
            _ => {
                let c = rest[pos..].chars().next().unwrap_or('\u{FFFD}');
                (c, c.len_utf8())
            }
        }
    };
    // ASCII that is neither a blank (as `char::is_whitespace` has it), a quote nor the escape
    // character: such runs are skipped without looking at each character.
    let esc = u8::try_from(escape).unwrap_or(0x80);
    let plain = |b: u8| b < 0x80 && !matches!(b, b' ' | 0x09..=0x0D | b'\'' | b'"') && b != esc;
    let mut phase = Phase::Spaces;
    let mut blank_ok = false;
    let mut start = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        match phase {
            Phase::Word => {
                pos = plain_run_end(bytes, pos, esc);
                while pos < bytes.len() && plain(bytes[pos]) {
                    pos += 1;
                }
            }
            Phase::Quote(q) => {
                while pos < bytes.len()
                    && bytes[pos] < 0x80
                    && bytes[pos] != q as u8
                    && bytes[pos] != esc
                {
                    pos += 1;
                }
            }
            Phase::Spaces => {}
        }
        if pos >= bytes.len() {
            break;
        }
        let (ch, len) = char_at(pos);
        let next = pos + len;
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                pos = next;
                continue;
            }
            phase = Phase::Word;
            start = pos;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    if blank_ok || pos > start {
                        words.push((start, pos, pos));
                    }
                    blank_ok = false;
                    phase = Phase::Spaces;
                    pos = next;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if next >= bytes.len() {
                        // Escape at the very end: dropped.
                        if blank_ok || pos > start {
                            words.push((start, rest.len(), pos));
                        }
                        return;
                    }
                    pos = next + char_at(next).1;
                    continue;
                }
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                } else if ch == escape && q != '\'' {
                    if next >= bytes.len() {
                        words.push((start, rest.len(), pos));
                        return;
                    }
                    pos = next + char_at(next).1;
                    continue;
                }
            }
            Phase::Spaces => {}
        }
        pos = next;
    }
    if phase != Phase::Spaces && (blank_ok || rest.len() > start) {
        words.push((start, rest.len(), rest.len()));
    }
}

/// Removes the quotes and backslash escapes of a flag word, as BuildKit's flag tokenizer does.
pub(super) fn unquote_flag(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut quote: Option<char> = None;
    let mut it = raw.chars();
    while let Some(c) = it.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = it.next() {
                    out.push(n);
                }
            }
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => out.push(c),
        }
    }
    out
}

/// Keywords whose instruction may carry heredocs.
pub(crate) fn heredoc_capable(name: &str) -> bool {
    matches!(name, "run" | "copy" | "add")
}

/// Parses a heredoc marker word (`<<EOF`, `3<<-"EOF"`); `None` if the word is not one.
pub(crate) fn parse_heredoc_marker(word: &str) -> Result<Option<(String, u32, bool, bool)>, ()> {
    // Cheap rejection first: a failed pest parse builds a detailed error, which is costly.
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    if !word[digits..].starts_with("<<") {
        return Ok(None);
    }
    if !crate::reference_mode()
        && let Some(marker) = plain_heredoc_marker(word, digits)
    {
        return Ok(Some(marker));
    }
    let Ok(mut pairs) = DockerfileGrammar::parse(Rule::heredoc_marker, word) else {
        return Ok(None);
    };
    let Some(marker) = pairs.next() else {
        return Ok(None);
    };
    let mut fd = 0u32;
    let mut chomp = false;
    let mut rest = "";
    for p in marker.into_inner() {
        match p.as_rule() {
            Rule::heredoc_fd => fd = p.as_str().parse().unwrap_or(0),
            Rule::heredoc_chomp => chomp = true,
            Rule::heredoc_name => rest = p.as_str(),
            _ => {}
        }
    }
    let plain = Expander::new('\\').skip_unset(true);
    let words = plain.expand_words(rest, &|_| None).map_err(|_| ())?.words;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = plain
        .raw_quotes(true)
        .expand_words(rest, &|_| None)
        .map_err(|_| ())?
        .words;
    let quotes = |s: &str| s.chars().filter(|c| *c == '"' || *c == '\'').count();
    let expand = raw.first().map(|r| quotes(r)) == Some(quotes(&words[0]));
    Ok(Some((words[0].clone(), fd, chomp, expand)))
}

/// The common markers without the grammar and the word splitter: `[fd]<<[-]NAME`,
/// `[fd]<<[-]"NAME"` and `[fd]<<[-]'NAME'` where NAME is printable ASCII without quotes,
/// backslashes, `$`, `<` or backticks (`EOF`, `env.sh`). `None`
/// for anything else (the caller then takes the general path). `digits` is the length of the fd.
/// A property test checks it against the general path.
pub(super) fn plain_heredoc_marker(word: &str, digits: usize) -> Option<(String, u32, bool, bool)> {
    let rest = word.get(digits + 2..)?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let b = rest.as_bytes();
    let (name, expand) = match b.first()? {
        q @ (b'"' | b'\'') if b.len() > 2 && b[b.len() - 1] == *q => {
            (&rest[1..rest.len() - 1], false)
        }
        _ => (rest, true),
    };
    // Printable ASCII that the word splitter leaves alone: no blanks, quotes, escapes or
    // variables (and no `<`, which the grammar refuses in a name).
    let plain =
        |c: u8| c.is_ascii_graphic() && !matches!(c, b'$' | b'"' | b'\'' | b'\\' | b'<' | b'`');
    if name.is_empty() || !name.bytes().all(plain) {
        return None;
    }
    let fd = word[..digits].parse().unwrap_or(0);
    Some((name.to_string(), fd, chomp, expand))
}

/// The lower-case name of a known instruction keyword (case-insensitive), without allocating.
pub(crate) fn keyword_name(keyword: &str) -> Option<&'static str> {
    const NAMES: [&str; 18] = *crate::lower::KEYWORDS;
    /// The bytes of `b` (at most 16) as one little-endian number, zero-padded.
    const fn packed(b: &[u8]) -> u128 {
        let mut v = 0u128;
        let mut i = 0;
        while i < b.len() {
            v |= (b[i] as u128) << (8 * i);
            i += 1;
        }
        v
    }
    const PACKED: [u128; 18] = {
        let mut out = [0u128; 18];
        let mut i = 0;
        while i < 18 {
            out[i] = packed(NAMES[i].as_bytes());
            i += 1;
        }
        out
    };
    let b = keyword.as_bytes();
    if !(3..=11).contains(&b.len()) {
        return None;
    }
    // Setting bit 5 of every byte lower-cases ASCII letters. Every name is lower-case letters,
    // and the only bytes that become a lower-case letter `l` this way are `l` and its upper-case
    // form: equality after it is `eq_ignore_ascii_case`.
    let mut buf = [0u8; 16];
    for (d, s) in buf.iter_mut().zip(b) {
        *d = s | 0x20;
    }
    let word = u128::from_le_bytes(buf);
    // The names of each length, as indexes into NAMES.
    let candidates: &[usize] = match b.len() {
        3 => &[0, 1, 2, 5, 12],
        4 => &[3, 7, 15],
        5 => &[9, 13],
        6 => &[6, 16],
        7 => &[11, 17],
        10 => &[4, 10, 14],
        11 => &[8],
        _ => &[],
    };
    candidates
        .iter()
        .find(|&&i| PACKED[i] == word)
        .map(|&i| NAMES[i])
}
