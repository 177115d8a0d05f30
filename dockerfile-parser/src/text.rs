//! [`Text`]: the strings of the AST, as slices of a shared buffer.
//!
//! Nearly every string the parser hands out (keywords, words, flags, heredoc bodies, the logical
//! line) is a piece of the Dockerfile as written. Copying each into its own `String` made the AST
//! many times the size of the file and cost an allocation per token; a `Text` is instead a
//! reference-counted buffer (the source, or one joined logical line) and a byte range in it, 16
//! bytes in all. Cloning one is a reference count increment. Strings that are not in the source
//! (a flag with its quotes removed, a decoded JSON string) get a buffer of their own.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

/// An immutable string: a byte range of a shared buffer. Derefs to `&str` and compares, hashes,
/// orders, prints and serializes as its text.
#[derive(Clone)]
pub struct Text {
    // `Arc<String>` rather than `Arc<str>`: a thin pointer keeps a `Text` at 16 bytes, and a
    // `String` read from a file becomes the buffer without being copied.
    buf: Arc<String>,
    start: u32,
    end: u32,
}

static EMPTY: LazyLock<Arc<String>> = LazyLock::new(|| Arc::new(String::new()));

/// The largest buffer a [`Text`] can slice (offsets are 32-bit to keep words small).
pub const MAX_TEXT_LEN: usize = u32::MAX as usize;

impl Text {
    /// The whole of `buf`, which becomes the shared buffer (not copied). Buffers longer than
    /// [`MAX_TEXT_LEN`] are cut at a character boundary at or below it (the parser refuses such
    /// input before it gets here).
    pub fn new(buf: String) -> Text {
        Text::shared(Arc::new(buf))
    }

    /// The whole of a buffer that may already be shared.
    pub fn shared(buf: Arc<String>) -> Text {
        let mut end = buf.len().min(MAX_TEXT_LEN);
        while !buf.is_char_boundary(end) {
            end -= 1;
        }
        Text {
            buf,
            start: 0,
            end: end as u32,
        }
    }

    /// The text as a `&str`.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks that `start..end` lies within the buffer on character
        // boundaries, and the buffer is never modified.
        unsafe {
            self.buf
                .get_unchecked(self.start as usize..self.end as usize)
        }
    }

    /// A sub-slice sharing this buffer; `range` is relative to this text. An out-of-range or
    /// mid-character range gives the empty text.
    #[inline]
    pub fn slice(&self, range: std::ops::Range<usize>) -> Text {
        let s = self.as_str();
        if range.start > range.end || s.get(range.clone()).is_none() {
            return Text::default();
        }
        Text {
            buf: self.buf.clone(),
            start: self.start + range.start as u32,
            end: self.start + range.end as u32,
        }
    }

    /// `sub` as a slice of this buffer when it points into this text, else a copy of it.
    #[inline]
    pub fn slice_ref(&self, sub: &str) -> Text {
        let s = self.as_str();
        let base = s.as_ptr() as usize;
        let at = sub.as_ptr() as usize;
        if at >= base && at + sub.len() <= base + s.len() {
            // `sub` is a `&str` inside `s`, so both of its ends are character boundaries.
            let off = (at - base) as u32;
            return Text {
                buf: self.buf.clone(),
                start: self.start + off,
                end: self.start + off + sub.len() as u32,
            };
        }
        Text::from(sub)
    }

    /// Whether this text and `other` slice the same buffer (used by tests).
    pub fn shares_buffer(&self, other: &Text) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }
}

/// `s.trim_start_matches(char::is_whitespace)`, reading ASCII bytes without decoding them.
#[inline]
pub(crate) fn trim_start_whitespace(s: &str) -> &str {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t'..=b'\r') {
        i += 1;
    }
    match b.get(i) {
        // Past ASCII: Unicode has more blanks.
        Some(&c) if c >= 0x80 => s[i..].trim_start_matches(char::is_whitespace),
        _ => &s[i..],
    }
}

/// `s.trim_end_matches(char::is_whitespace)`, reading ASCII bytes without decoding them.
#[inline]
pub(crate) fn trim_end_whitespace(s: &str) -> &str {
    let b = s.as_bytes();
    let mut i = b.len();
    while i > 0 && matches!(b[i - 1], b' ' | b'\t'..=b'\r') {
        i -= 1;
    }
    match i.checked_sub(1).map(|j| b[j]) {
        Some(c) if c >= 0x80 => s[..i].trim_end_matches(char::is_whitespace),
        _ => &s[..i],
    }
}

impl Default for Text {
    fn default() -> Self {
        Text {
            buf: EMPTY.clone(),
            start: 0,
            end: 0,
        }
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        if s.is_empty() {
            return Text::default();
        }
        Text::new(s.to_owned())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        if s.is_empty() {
            return Text::default();
        }
        Text::new(s)
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Text::from(s.as_str())
    }
}

impl From<&Text> for Text {
    fn from(t: &Text) -> Self {
        t.clone()
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.as_str().to_owned()
    }
}

impl From<&Text> for String {
    fn from(t: &Text) -> Self {
        t.as_str().to_owned()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Text) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Text) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_the_buffer() {
        let whole = Text::from("FROM alpine AS build");
        let image = whole.slice_ref(&whole[5..11]);
        assert_eq!(image, "alpine");
        assert!(image.shares_buffer(&whole));
        let copy = whole.slice_ref("elsewhere");
        assert_eq!(copy, "elsewhere");
        assert!(!copy.shares_buffer(&whole));
        let (from, to) = (5, 3);
        assert_eq!(whole.slice(from..to), "");
        assert_eq!(whole.slice(0..99), "");
        assert_eq!(Text::from("é").slice(0..1), "");
        assert_eq!(image.slice(1..3), "lp");
    }

    #[test]
    fn trims_as_char_is_whitespace() {
        for s in [
            "",
            " ",
            " a ",
            "\t\x0b\x0c\r\n a b \r\n",
            "\u{a0}a\u{2003}",
            " \u{85} é ",
            "é",
            "a\u{3000}",
            "\u{1680}\u{1680}",
            " \u{feff}x",
        ] {
            assert_eq!(
                trim_start_whitespace(s),
                s.trim_start_matches(char::is_whitespace)
            );
            assert_eq!(
                trim_end_whitespace(s),
                s.trim_end_matches(char::is_whitespace)
            );
        }
    }

    #[test]
    fn compares_as_str() {
        let t = Text::from("run");
        assert_eq!(t, "run");
        assert_eq!("run", t);
        assert_eq!(t, String::from("run"));
        let (a, b) = (Text::from("a"), Text::from("b"));
        assert!(a < b);
        assert_eq!(format!("{t} {t:?}"), "run \"run\"");
        assert_eq!(Text::default(), "");
    }
}
