//! Dockerfiles that are not UTF-8, read without losing a byte.
//!
//! A Dockerfile is bytes. Most are UTF-8; some carry Latin-1 (a comment, a label, a file name in
//! a `COPY`). The parser works on `str`, so [`decode`] maps every byte that is not part of valid
//! UTF-8 to a reserved code point, `U+10FF00 + byte` (the last 128 code points of the
//! supplementary private use area B, `U+10FF80..=U+10FFFF`: only bytes `0x80..=0xFF` are ever
//! invalid). The mapping is reversible: [`to_bytes`], [`to_os_str`] and [`to_path`] turn each
//! reserved code point back into its byte where a string reaches the system (a command's
//! arguments and environment, a path), and [`to_json_text`] gives what Go's `encoding/json` writes
//! for the original bytes (each invalid byte as U+FFFD), which is what Docker's image config shows.
//!
//! Two rules keep this exact and safe:
//! * A file that legitimately holds a reserved code point gets the four bytes of its UTF-8 form
//!   mapped as if they were invalid, so every decoded string turns back into exactly the file's
//!   bytes, whatever the file holds.
//! * A reserved code point only ever becomes a byte of `0x80..=0xFF`: never `/`, `.`, NUL or any
//!   other ASCII byte, so a path's components, and the checks that confine it, are the same
//!   before and after [`to_path`].
//!
//! Strings that enter a build from elsewhere (a base image's config, a file name read from disk)
//! go through [`decode`] (or [`from_os_str`]) too, so they round-trip the same way.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The first of the 256 code points whose last 128 stand for the bytes `0x80..=0xFF`.
const BASE: u32 = 0x10FF00;

/// The byte a reserved code point stands for, if `c` is one.
#[inline]
pub fn reserved_byte(c: char) -> Option<u8> {
    let c = u32::from(c);
    if c >= BASE + 0x80 {
        // `c - BASE` is 0x80..=0xFF here: char values end at 0x10FFFF.
        u8::try_from(c - BASE).ok()
    } else {
        None
    }
}

/// The reserved code point standing for byte `b` (`0x80..=0xFF`).
#[inline]
fn reserved_char(b: u8) -> char {
    char::from_u32(BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Whether UTF-8 text holds a reserved code point: `F4 8F BE xx` or `F4 8F BF xx`.
#[inline]
fn has_reserved(bytes: &[u8]) -> bool {
    // `memchr` (SIMD) rather than `contains`: a whole Dockerfile is scanned once per parse.
    if memchr::memchr(0xF4, bytes).is_none() {
        return false;
    }
    bytes
        .windows(3)
        .any(|w| w[0] == 0xF4 && w[1] == 0x8F && (w[2] == 0xBE || w[2] == 0xBF))
}

/// The text of a Dockerfile (or any string from outside) read as bytes: valid UTF-8 as it is,
/// every other byte as its reserved code point (see the module docs). The second value says
/// whether the input was not valid UTF-8.
pub fn decode(bytes: &[u8]) -> (Cow<'_, str>, bool) {
    if let Ok(s) = std::str::from_utf8(bytes)
        && !has_reserved(bytes)
    {
        return (Cow::Borrowed(s), false);
    }
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 2);
    let mut invalid = false;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if reserved_byte(c).is_some() {
                let mut buf = [0u8; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    out.push(reserved_char(b));
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            invalid = true;
            out.push(reserved_char(b));
        }
    }
    (Cow::Owned(out), invalid)
}

/// [`decode`] of text already known to be UTF-8 (a `String` read from a file), without
/// checking that again: the text itself unless it holds a reserved code point.
pub fn decode_str(s: &str) -> Cow<'_, str> {
    if has_reserved(s.as_bytes()) {
        decode(s.as_bytes()).0
    } else {
        Cow::Borrowed(s)
    }
}

/// [`decode`] of an `OsStr` (a file name, a command-line argument).
pub fn from_os_str(s: &OsStr) -> Cow<'_, str> {
    decode(s.as_bytes()).0
}

/// The bytes a decoded string stands for.
pub fn to_bytes(s: &str) -> Cow<'_, [u8]> {
    if !has_reserved(s.as_bytes()) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut buf = [0u8; 4];
    for c in s.chars() {
        match reserved_byte(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    Cow::Owned(out)
}

/// A decoded string as the `OsStr` it stands for.
pub fn to_os_str(s: &str) -> Cow<'_, OsStr> {
    match to_bytes(s) {
        Cow::Borrowed(b) => Cow::Borrowed(OsStr::from_bytes(b)),
        Cow::Owned(b) => Cow::Owned(std::os::unix::ffi::OsStringExt::from_vec(b)),
    }
}

/// A decoded string as the path it stands for.
pub fn to_path(s: &str) -> Cow<'_, Path> {
    match to_os_str(s) {
        Cow::Borrowed(o) => Cow::Borrowed(Path::new(o)),
        Cow::Owned(o) => Cow::Owned(o.into()),
    }
}

/// What Go's `encoding/json` writes for the bytes a decoded string stands for: valid UTF-8 as
/// it is, each invalid byte as U+FFFD. Docker's image config (labels, environment, commands,
/// history) shows such bytes this way; so does `kiln parse --json`.
pub fn to_json_text(s: &str) -> Cow<'_, str> {
    match to_bytes(s) {
        Cow::Borrowed(_) => Cow::Borrowed(s),
        Cow::Owned(bytes) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                // Go's decoder takes one byte at a time out of an invalid sequence.
                for _ in chunk.invalid() {
                    out.push(char::REPLACEMENT_CHARACTER);
                }
            }
            Cow::Owned(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn utf8_is_borrowed() {
        let (s, invalid) = decode("café ☕".as_bytes());
        assert!(matches!(s, Cow::Borrowed("café ☕")));
        assert!(!invalid);
        assert!(matches!(to_bytes("café"), Cow::Borrowed(_)));
        assert!(matches!(to_json_text("café"), Cow::Borrowed(_)));
        assert!(matches!(decode_str("café ☕"), Cow::Borrowed("café ☕")));
        let held = "a\u{10FF80}b";
        assert_eq!(decode_str(held), decode(held.as_bytes()).0);
        assert_ne!(decode_str(held), held);
    }

    #[test]
    fn latin1_round_trips() {
        let (s, invalid) = decode(b"caf\xe9 \xff\xfe");
        assert!(invalid);
        assert_eq!(s.chars().count(), 7);
        assert_eq!(to_bytes(&s).as_ref(), b"caf\xe9 \xff\xfe");
        assert_eq!(to_json_text(&s), "caf\u{FFFD} \u{FFFD}\u{FFFD}");
        assert_eq!(
            to_path(&s).as_os_str().as_bytes(),
            b"caf\xe9 \xff\xfe",
            "paths get the bytes"
        );
    }

    #[test]
    fn a_reserved_code_point_in_the_file_is_kept() {
        let text = "a\u{10FFE9}b\u{10FF80}";
        let (s, invalid) = decode(text.as_bytes());
        assert!(!invalid);
        assert_ne!(s, text, "escaped, so that it does not stand for a byte");
        assert_eq!(to_bytes(&s).as_ref(), text.as_bytes());
        assert_eq!(to_json_text(&s), text);
    }

    #[test]
    fn json_text_is_gos() {
        // Go: one U+FFFD per byte of an invalid or truncated sequence.
        let (s, _) = decode(b"\xe2\x82A\xf0\x90\x80\xed\xa0\x80");
        assert_eq!(
            to_json_text(&s),
            "\u{FFFD}\u{FFFD}A\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        // Bytes that make valid UTF-8 again make its character.
        let (s, _) = decode(b"\xc3\xa9");
        assert_eq!(to_json_text(&s), "é");
    }

    proptest! {
        #[test]
        fn decode_then_encode_is_identity(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let (s, invalid) = decode(&bytes);
            let back = to_bytes(&s);
            prop_assert_eq!(back.as_ref(), &bytes[..]);
            prop_assert_eq!(invalid, std::str::from_utf8(&bytes).is_err());
            // Every byte mapped is one of 0x80..=0xFF: no ASCII byte (`/`, `.`, NUL) is made.
            for c in s.chars() {
                if let Some(b) = reserved_byte(c) {
                    prop_assert!(b >= 0x80);
                }
            }
            let ascii_in: Vec<u8> = bytes.iter().copied().filter(u8::is_ascii).collect();
            let ascii_out: Vec<u8> = s.bytes().filter(u8::is_ascii).collect();
            prop_assert_eq!(ascii_in, ascii_out);
            let json = to_json_text(&s);
            if bytes.utf8_chunks().all(|c| c.invalid().len() <= 1) {
                let lossy = String::from_utf8_lossy(&bytes);
                prop_assert_eq!(json.as_ref(), lossy.as_ref());
            }
        }

        #[test]
        fn any_str_round_trips(s in "(\\PC|[\u{10FF7F}-\u{10FFFF}])*") {
            let (d, invalid) = decode(s.as_bytes());
            prop_assert!(!invalid);
            let back = to_bytes(&d);
            prop_assert_eq!(back.as_ref(), s.as_bytes());
            let json = to_json_text(&d);
            prop_assert_eq!(json.as_ref(), s.as_str());
        }
    }
}
