//! The dump's text written directly: the same bytes as `serde_json::to_writer_pretty` (or
//! `serde_json::to_writer`) of [`super::to_json`] (two-space indent, sorted keys, serde_json's
//! string escapes), without a serializer in between. Strings that need no escape, nearly all of
//! them, are copied whole.

use std::io::{self, Write};

use crate::ast::{Directive, Heredoc, RawInstruction, TypedDockerfile, Warning};
use crate::error::ParseError;
use crate::text::Text;

use super::escape::{copy_plain, escape_into};

/// Writes the dump of `df` to `out` as indented JSON (no trailing newline).
pub fn write_pretty<W: Write>(df: &TypedDockerfile, out: W) -> io::Result<()> {
    write(df, out, true)
}

/// Writes the dump of `df` to `out` as JSON on one line (no trailing newline).
pub fn write_compact<W: Write>(df: &TypedDockerfile, out: W) -> io::Result<()> {
    write(df, out, false)
}

/// The size of the dump's blocks.
const BLOCK: usize = 1 << 20;

/// A parsed Dockerfile's dump, made while parsing.
#[derive(Debug)]
pub struct Dump {
    /// The document in pieces (its head is only known once the file is read), so the
    /// instructions, nearly all of it, are never copied: the body is a list of blocks of about
    /// [`BLOCK`] bytes, so it never holds much more than its size (a doubling buffer may hold
    /// twice as much) and is never moved as it grows.
    head: Vec<u8>,
    body: Vec<Vec<u8>>,
    tail: Vec<u8>,
    /// The warnings (also in the document), to show them.
    pub warnings: Vec<Warning>,
}

impl Dump {
    /// Writes the document, as [`write_pretty`] or [`write_compact`] writes it.
    pub fn write_to<W: Write>(&self, mut out: W) -> io::Result<()> {
        out.write_all(&self.head)?;
        for block in &self.body {
            out.write_all(block)?;
        }
        out.write_all(&self.tail)
    }

    /// The document as one string of bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut all = self.head.clone();
        for block in &self.body {
            all.extend_from_slice(block);
        }
        all.extend_from_slice(&self.tail);
        all
    }
}

/// Parses `source` and writes its dump (indented or on one line) as each instruction is read,
/// instead of building the AST first: the instructions are dropped once written, so the memory
/// is the text's and the document's. The same text as [`write_pretty`] and [`write_compact`] of
/// [`crate::parse_typed_shared`]'s result, and the same errors and warnings; the dump needs only
/// the raw layer, so an instruction whose lowering certainly succeeds without a warning (no
/// flags, arguments that cannot fail) is not lowered at all. `kiln parse --json` parses into
/// blocks and writes them with [`super::write_blocks`] instead: no document held in memory.
pub fn parse_to_json(source: &Text, indent: bool) -> Result<Dump, ParseError> {
    // The instructions are written at the depth they have in the document: inside its object and
    // its `instructions` array.
    // Blocks of BLOCK bytes and a little room for the instruction that fills one; less for a
    // small file (its dump is about five times its size).
    let block = (source.len() * 6).clamp(1 << 12, BLOCK);
    let room = block + block / 8;
    let full = block;
    let mut body = Pretty::new(io::sink(), indent, room);
    body.depth = 2;
    let mut blocks = Vec::new();
    let summary = crate::parse_each_raw(source, |raw, name| {
        body.elem();
        if indent {
            body.instruction(raw);
        } else {
            body.instruction_compact(raw, Some(name).filter(|n| !n.is_empty()));
        }
        if body.buf.len() >= full {
            let next = Vec::with_capacity(room);
            blocks.push(std::mem::replace(&mut body.buf, next));
        }
    })?;
    blocks.push(body.buf);
    let mut j = Pretty::new(io::sink(), indent, 0);
    j.head(&summary.directives, summary.escape);
    let head = std::mem::take(&mut j.buf);
    j.first = body.first;
    j.tail(&summary.warnings);
    Ok(Dump {
        head,
        body: blocks,
        tail: j.buf,
        warnings: summary.warnings,
    })
}

fn write<W: Write>(df: &TypedDockerfile, out: W, indent: bool) -> io::Result<()> {
    let mut j = Pretty::new(out, indent, FLUSH_AT);
    j.head(&df.directives, df.escape);
    for n in df.instructions() {
        j.elem();
        j.instruction(&n.raw);
        j.flush_some()?;
    }
    j.tail(&df.warnings);
    j.out.write_all(&j.buf)
}

impl<W: Write> Pretty<W> {
    /// The document up to the first instruction.
    pub(super) fn head(&mut self, directives: &[Directive], escape: char) {
        let j = self;
        j.open(b'{');
        j.key("directives");
        j.open(b'[');
        for d in directives {
            j.elem();
            j.open(b'{');
            j.key("line");
            j.num(d.line as u64);
            j.key("name");
            j.str(&d.name);
            j.key("value");
            j.str(&d.value);
            j.close(b'}');
        }
        j.close(b']');
        j.key("escape");
        let mut esc = [0u8; 4];
        j.str(escape.encode_utf8(&mut esc));
        j.key("instructions");
        j.open(b'[');
    }

    /// The document after the last instruction.
    pub(super) fn tail(&mut self, warnings: &[Warning]) {
        let j = self;
        j.close(b']');
        j.key("warnings");
        j.open(b'[');
        for w in warnings {
            j.elem();
            j.open(b'{');
            j.key("line");
            j.num(w.line as u64);
            j.key("message");
            j.str(&w.message);
            j.key("rule");
            j.str(&w.rule);
            j.close(b'}');
        }
        j.close(b']');
        j.close(b'}');
    }
}

pub(super) struct Pretty<W: Write> {
    pub(super) buf: Vec<u8>,
    pub(super) out: W,
    pub(super) depth: usize,
    /// Nothing written yet in the innermost open container.
    pub(super) first: bool,
    /// Newlines and indentation (serde_json's pretty form) or none (its compact form).
    pub(super) indent: bool,
}

/// From this many bytes in the buffer, [`Pretty::flush_some`] hands them to the output.
pub(super) const FLUSH_AT: usize = 64 << 10;

impl<W: Write> Pretty<W> {
    /// A writer at the document's top level with room for `capacity` bytes.
    pub(super) fn new(out: W, indent: bool, capacity: usize) -> Self {
        Pretty {
            buf: Vec::with_capacity(capacity),
            out,
            depth: 0,
            first: true,
            indent,
        }
    }

    /// Writes the buffer out once it holds [`FLUSH_AT`] bytes or more.
    pub(super) fn flush_some(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    pub(super) fn open(&mut self, c: u8) {
        self.buf.push(c);
        self.depth += 1;
        self.first = true;
    }

    pub(super) fn close(&mut self, c: u8) {
        self.depth -= 1;
        if !self.first {
            self.newline();
        }
        self.buf.push(c);
        self.first = false;
    }

    fn newline(&mut self) {
        if !self.indent {
            return;
        }
        const INDENT: &[u8] = b"\n                                ";
        match INDENT.get(..1 + 2 * self.depth) {
            Some(s) => self.buf.extend_from_slice(s),
            None => {
                self.buf.push(b'\n');
                for _ in 0..self.depth {
                    self.buf.extend_from_slice(b"  ");
                }
            }
        }
    }

    /// Before an array element.
    pub(super) fn elem(&mut self) {
        if !self.first {
            self.buf.push(b',');
        }
        self.newline();
        self.first = false;
    }

    /// A key of the dump's own (plain ASCII, nothing to escape).
    pub(super) fn key(&mut self, k: &str) {
        self.elem();
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.push(b'"');
        self.buf
            .extend_from_slice(if self.indent { b": " as &[u8] } else { b":" });
    }

    pub(super) fn num(&mut self, n: u64) {
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    pub(super) fn boolean(&mut self, b: bool) {
        self.buf
            .extend_from_slice(if b { b"true" as &[u8] } else { b"false" });
    }

    pub(super) fn str(&mut self, s: &str) {
        self.buf.push(b'"');
        let at = self.buf.len();
        // Nearly every string needs no escape: it is copied while it is scanned.
        let bytes = s.as_bytes();
        let plain = copy_plain(&mut self.buf, bytes);
        // Bytes that were not UTF-8 print as Go's JSON prints them (U+FFFD). Their code points
        // start with 0xF4, which the escape scan stops at: only then is the string converted.
        if plain < bytes.len() && !escape_into::<true>(&mut self.buf, &bytes[plain..]) {
            self.buf.truncate(at);
            let s = crate::bytes::to_json_text(s);
            escape_into::<false>(&mut self.buf, s.as_bytes());
        }
        self.buf.push(b'"');
    }

    /// The items of a JSON array of strings, without the brackets, on one line.
    pub(super) fn compact_items<'t>(&mut self, items: impl Iterator<Item = &'t str>) {
        let mut first = true;
        for s in items {
            if !first {
                self.buf.push(b',');
            }
            first = false;
            self.str(s);
        }
    }

    pub(super) fn strs<'t>(&mut self, items: impl Iterator<Item = &'t str>) {
        self.open(b'[');
        for s in items {
            self.elem();
            self.str(s);
        }
        self.close(b']');
    }

    pub(super) fn heredoc(&mut self, h: &Heredoc) {
        self.open(b'{');
        self.key("chomp");
        self.boolean(h.chomp);
        self.key("content");
        self.str(&h.content);
        self.key("expand");
        self.boolean(h.expand);
        self.key("fd");
        self.num(u64::from(h.fd));
        self.key("name");
        self.str(&h.name);
        self.close(b'}');
    }

    /// The items of an instruction's `heredocs` list on one line (the brackets are the
    /// caller's).
    pub(super) fn heredocs_compact(&mut self, heredocs: &[Heredoc]) {
        for (i, h) in heredocs.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.buf.extend_from_slice(if h.chomp {
                b"{\"chomp\":true,\"content\":" as &[u8]
            } else {
                b"{\"chomp\":false,\"content\":"
            });
            self.str(&h.content);
            self.buf.extend_from_slice(if h.expand {
                b",\"expand\":true,\"fd\":" as &[u8]
            } else {
                b",\"expand\":false,\"fd\":"
            });
            self.num(u64::from(h.fd));
            self.buf.extend_from_slice(b",\"name\":");
            self.str(&h.name);
            self.buf.push(b'}');
        }
    }

    /// One instruction's object on one line: the text between the values is constant, so each
    /// run of it (`],"end_line":`) is one copy.
    /// `name` is the keyword's lower-case name when already known.
    fn instruction_compact(&mut self, raw: &RawInstruction, name: Option<&'static str>) {
        // Room for the whole object, nearly always: the pushes below then never grow the buffer.
        self.buf.reserve(raw.original.len() * 2 + 192);
        self.buf.extend_from_slice(b"{\"args\":[");
        self.compact_items(raw.args.iter().map(|w| w.text.as_str()));
        self.buf.extend_from_slice(b"],\"end_line\":");
        self.num(u64::from(raw.end_line));
        self.buf.extend_from_slice(b",\"flags\":[");
        self.compact_items(raw.flags.iter().map(|f| f.text.as_str()));
        self.buf.extend_from_slice(b"],\"heredocs\":[");
        self.heredocs_compact(&raw.heredocs);
        self.buf.extend_from_slice(if raw.json {
            b"],\"json\":true,\"keyword\":" as &[u8]
        } else {
            b"],\"json\":false,\"keyword\":"
        });
        match name.or_else(|| crate::raw::keyword_name(&raw.keyword.text)) {
            // A known keyword and its name are ASCII letters: nothing to escape.
            Some(name) => {
                self.buf.push(b'"');
                self.buf.extend_from_slice(raw.keyword.text.as_bytes());
                self.buf.extend_from_slice(b"\",\"name\":\"");
                self.buf.extend_from_slice(name.as_bytes());
                self.buf.push(b'"');
            }
            None => {
                self.str(&raw.keyword.text);
                self.buf.extend_from_slice(b",\"name\":");
                self.str(&raw.name());
            }
        }
        self.buf.extend_from_slice(b",\"original\":");
        self.str(&raw.original);
        self.buf.extend_from_slice(b",\"start_line\":");
        self.num(u64::from(raw.start_line));
        self.buf.extend_from_slice(b",\"sub\":");
        match &raw.sub {
            Some(sub) => self.instruction_compact(sub, None),
            None => self.buf.extend_from_slice(b"null"),
        }
        self.buf.push(b'}');
    }

    fn instruction(&mut self, raw: &RawInstruction) {
        if !self.indent {
            return self.instruction_compact(raw, None);
        }
        self.open(b'{');
        self.key("args");
        self.strs(raw.args.iter().map(|w| w.text.as_str()));
        self.key("end_line");
        self.num(raw.end_line as u64);
        self.key("flags");
        self.strs(raw.flags.iter().map(|f| f.text.as_str()));
        self.key("heredocs");
        self.open(b'[');
        for h in &raw.heredocs {
            self.elem();
            self.heredoc(h);
        }
        self.close(b']');
        self.key("json");
        self.boolean(raw.json);
        self.key("keyword");
        self.str(&raw.keyword.text);
        self.key("name");
        match crate::raw::keyword_name(&raw.keyword.text) {
            Some(name) => self.str(name),
            None => self.str(&raw.name()),
        }
        self.key("original");
        self.str(&raw.original);
        self.key("start_line");
        self.num(raw.start_line as u64);
        self.key("sub");
        match &raw.sub {
            Some(sub) => self.instruction(sub),
            None => self.buf.extend_from_slice(b"null"),
        }
        self.close(b'}');
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
        /// A string is written as serde_json writes its JSON text (Go's U+FFFD for each byte
        /// that was not UTF-8), whether or not it holds a code point starting with 0xF4.
        #[test]
        fn strings_are_serde_json_text_of_the_json_text(
            s in "[a-z\"\\\u{1}\u{1f}\u{7f}é\u{100000}\u{10ff7f}\u{10ff80}\u{10ffff}]{0,40}",
        ) {
            let mut j = super::Pretty::new(std::io::sink(), false, 0);
            j.str(&s);
            let want = serde_json::to_string(&crate::bytes::to_json_text(&s)).expect("serializes");
            prop_assert_eq!(String::from_utf8(j.buf).expect("UTF-8"), want);
        }
    }
}
