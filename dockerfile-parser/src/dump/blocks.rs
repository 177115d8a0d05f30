//! The dump written from a parsed file of blocks ([`crate::parse_shared`]'s result): the same
//! text as [`super::write_pretty`] and [`super::write_compact`] of the typed parse, read from the
//! blocks' words instead of raw instructions, and written through one small buffer. A caller that
//! must print nothing for a file that fails to parse parses first (the blocks cost less than the
//! document, about five times the input) and then streams the document out.

use std::io::{self, Write};

use super::pretty::{FLUSH_AT, Pretty};
use crate::ast::Heredoc;
use crate::block::{BlockRef, Dockerfile};

/// Writes the dump of `file` to `out`, indented (serde_json's pretty form) or on one line (its
/// compact form), with no trailing newline: the same bytes as [`super::write_pretty`] or
/// [`super::write_compact`] of [`crate::parse_typed_shared`]'s result for the same source.
/// Writes in pieces of about 64 KiB: `out` needs no buffer of its own.
pub fn write_blocks<W: Write>(file: &Dockerfile, out: W, indent: bool) -> io::Result<()> {
    // Twice the mark at which the buffer is written out: the instruction that crosses it rarely
    // grows the buffer.
    let mut j = Pretty::new(out, indent, 2 * FLUSH_AT);
    j.head(&file.directives, file.escape);
    for block in file.instructions() {
        j.elem();
        if indent {
            j.block_pretty(block, false);
        } else {
            j.block_compact(block, false);
        }
        j.flush_some()?;
    }
    j.tail(&file.warnings);
    j.out.write_all(&j.buf)
}

/// The heredocs the raw form of `block` holds: an ONBUILD holds its trigger's, the trigger (the
/// `sub` object) none (as [`BlockRef::to_raw`] builds them).
fn heredocs_of(block: BlockRef<'_>, sub: bool) -> &[Heredoc] {
    if sub { &[] } else { block.heredocs() }
}

impl<W: Write> Pretty<W> {
    /// One block's object on one line (as `instruction_compact` writes a raw instruction).
    fn block_compact(&mut self, block: BlockRef<'_>, sub: bool) {
        let original = block.original();
        // Room for the whole object, nearly always: the pushes below then never grow the buffer.
        self.buf.reserve(original.len() * 2 + 192);
        self.buf.extend_from_slice(b"{\"args\":[");
        self.compact_items(block.args().map(|w| w.text));
        self.buf.extend_from_slice(b"],\"end_line\":");
        // Nearly every instruction is on one line: its number is formatted once for both.
        let mut digits = itoa::Buffer::new();
        let end_line = digits.format(block.end_line()).as_bytes();
        self.buf.extend_from_slice(end_line);
        self.buf.extend_from_slice(b",\"flags\":[");
        self.compact_items(block.flag_words().map(|w| w.text));
        self.buf.extend_from_slice(b"],\"heredocs\":[");
        self.heredocs_compact(heredocs_of(block, sub));
        self.buf.extend_from_slice(if block.is_json() {
            b"],\"json\":true,\"keyword\":" as &[u8]
        } else {
            b"],\"json\":false,\"keyword\":"
        });
        // A block's keyword is a known one (its name is the keyword lower-cased): ASCII letters,
        // nothing to escape.
        debug_assert_eq!(
            crate::raw::keyword_name(block.keyword().text),
            Some(block.name())
        );
        self.buf.push(b'"');
        self.buf.extend_from_slice(block.keyword().text.as_bytes());
        self.buf.extend_from_slice(b"\",\"name\":\"");
        self.buf.extend_from_slice(block.name().as_bytes());
        self.buf.extend_from_slice(b"\",\"original\":");
        self.str(original);
        self.buf.extend_from_slice(b",\"start_line\":");
        if block.start_line() == block.end_line() {
            self.buf.extend_from_slice(end_line);
        } else {
            self.num(block.start_line() as u64);
        }
        self.buf.extend_from_slice(b",\"sub\":");
        match block.trigger() {
            Some(trigger) => self.block_compact(trigger, true),
            None => self.buf.extend_from_slice(b"null"),
        }
        self.buf.push(b'}');
    }

    /// One block's object, indented (as `instruction` writes a raw instruction).
    fn block_pretty(&mut self, block: BlockRef<'_>, sub: bool) {
        self.open(b'{');
        self.key("args");
        self.strs(block.args().map(|w| w.text));
        self.key("end_line");
        self.num(block.end_line() as u64);
        self.key("flags");
        self.strs(block.flag_words().map(|w| w.text));
        self.key("heredocs");
        self.open(b'[');
        for h in heredocs_of(block, sub) {
            self.elem();
            self.heredoc(h);
        }
        self.close(b']');
        self.key("json");
        self.boolean(block.is_json());
        self.key("keyword");
        self.str(block.keyword().text);
        self.key("name");
        self.str(block.name());
        self.key("original");
        self.str(block.original());
        self.key("start_line");
        self.num(block.start_line() as u64);
        self.key("sub");
        match block.trigger() {
            Some(trigger) => self.block_pretty(trigger, true),
            None => self.buf.extend_from_slice(b"null"),
        }
        self.close(b'}');
    }
}
