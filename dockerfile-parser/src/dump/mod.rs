//! The JSON dump behind `kiln parse --json`: a stable debugging interface.
//!
//! Shape (extra keys may be added, never removed):
//! `{"escape", "directives": [{name, value, line}], "warnings": [{message, line, rule}],
//! "instructions": [{name, keyword, flags, args, json, sub, heredocs, start_line, end_line,
//! original}]}`. `args` follows BuildKit's parser node chain per keyword (see the crate docs).

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use crate::ast::{Directive, Heredoc, RawInstruction, TypedDockerfile, Warning};
use crate::error::ParseError;

mod blocks;
mod escape;
mod pretty;
pub use blocks::write_blocks;
pub use pretty::{Dump, parse_to_json, write_compact, write_pretty};

fn heredoc(h: &Heredoc) -> Value {
    json!({
        "name": h.name,
        "fd": h.fd,
        "expand": h.expand,
        "chomp": h.chomp,
        "content": h.content,
    })
}

/// One raw instruction in the dump's shape.
pub fn instruction(raw: &RawInstruction) -> Value {
    json!({
        "name": raw.name(),
        "keyword": raw.keyword.text,
        "flags": raw.flags.iter().map(|f| f.text.as_str()).collect::<Vec<_>>(),
        "args": raw.args.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(),
        "json": raw.json,
        "sub": raw.sub.as_deref().map(instruction),
        "heredocs": raw.heredocs.iter().map(heredoc).collect::<Vec<_>>(),
        "start_line": raw.start_line,
        "end_line": raw.end_line,
        "original": raw.original,
    })
}

/// The whole parse result as one JSON document.
pub fn to_json(df: &TypedDockerfile) -> Value {
    json!({
        "escape": df.escape.to_string(),
        "directives": df.directives.iter().map(|d| json!({
            "name": d.name, "value": d.value, "line": d.line,
        })).collect::<Vec<_>>(),
        "warnings": df.warnings.iter().map(|w| json!({
            "message": w.message, "line": w.line, "rule": w.rule,
        })).collect::<Vec<_>>(),
        "instructions": df.instructions().map(|n| instruction(&n.raw)).collect::<Vec<_>>(),
    })
}

/// The same document as [`to_json`], serialized straight from the AST: no `Value` is built, so
/// dumping a huge Dockerfile costs little beyond its AST. Keys come in the sorted order
/// `to_json`'s maps have, so the text is the same.
pub struct Streamed<'a>(pub &'a TypedDockerfile);

/// One raw instruction in the dump's shape, serialized without building a `Value`.
pub struct RawJson<'a>(pub &'a RawInstruction);

struct Strs<'a, T>(&'a [T], fn(&T) -> &str);

impl<T> Serialize for Strs<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(self.1))
    }
}

struct HeredocJson<'a>(&'a Heredoc);

struct Heredocs<'a>(&'a [Heredoc]);

impl Serialize for Heredocs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(HeredocJson))
    }
}

impl Serialize for HeredocJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("chomp", &h.chomp)?;
        map.serialize_entry("content", h.content.as_str())?;
        map.serialize_entry("expand", &h.expand)?;
        map.serialize_entry("fd", &h.fd)?;
        map.serialize_entry("name", h.name.as_str())?;
        map.end()
    }
}

impl Serialize for RawJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = self.0;
        let mut map = serializer.serialize_map(Some(10))?;
        map.serialize_entry("args", &Strs(&raw.args, |w| w.text.as_str()))?;
        map.serialize_entry("end_line", &raw.end_line)?;
        map.serialize_entry("flags", &Strs(&raw.flags, |f| f.text.as_str()))?;
        map.serialize_entry("heredocs", &Heredocs(&raw.heredocs))?;
        map.serialize_entry("json", &raw.json)?;
        map.serialize_entry("keyword", raw.keyword.text.as_str())?;
        match crate::raw::keyword_name(&raw.keyword.text) {
            Some(name) => map.serialize_entry("name", name)?,
            None => map.serialize_entry("name", &raw.name())?,
        }
        map.serialize_entry("original", raw.original.as_str())?;
        map.serialize_entry("start_line", &raw.start_line)?;
        map.serialize_entry("sub", &raw.sub.as_deref().map(RawJson))?;
        map.end()
    }
}

impl Serialize for Streamed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Instructions<'a>(&'a TypedDockerfile);
        impl Serialize for Instructions<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.instructions().map(|n| RawJson(&n.raw)))
            }
        }
        struct Directives<'a>(&'a [Directive]);
        impl Serialize for Directives<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(|d| {
                    let mut m = std::collections::BTreeMap::new();
                    m.insert("line", Value::from(d.line));
                    m.insert("name", Value::from(d.name.as_str()));
                    m.insert("value", Value::from(d.value.as_str()));
                    m
                }))
            }
        }
        struct Warnings<'a>(&'a [Warning]);
        impl Serialize for Warnings<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                struct One<'a>(&'a Warning);
                impl Serialize for One<'_> {
                    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                        let mut map = serializer.serialize_map(Some(3))?;
                        map.serialize_entry("line", &self.0.line)?;
                        map.serialize_entry("message", self.0.message.as_str())?;
                        map.serialize_entry("rule", self.0.rule.as_str())?;
                        map.end()
                    }
                }
                serializer.collect_seq(self.0.iter().map(One))
            }
        }
        let df = self.0;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("directives", &Directives(&df.directives))?;
        let mut escape = [0u8; 4];
        map.serialize_entry("escape", df.escape.encode_utf8(&mut escape) as &str)?;
        map.serialize_entry("instructions", &Instructions(df))?;
        map.serialize_entry("warnings", &Warnings(&df.warnings))?;
        map.end()
    }
}

/// A parse error as `{"error", "line", "column"}`.
pub fn error_to_json(err: &ParseError) -> Value {
    json!({
        "error": crate::bytes::to_json_text(&err.to_string()),
        "line": err.line(),
        "column": err.column(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_streamed_dump_is_the_same_text() {
        let src = "# syntax=docker/dockerfile:1\nFROM a AS b\nRUN --mount=type=cache,target=/c <<EOF\nx\nEOF\nONBUILD RUN y\n\\\n\nENV A=1 B=2\n";
        let df = crate::parse_typed(src).expect("parses");
        for pretty in [false, true] {
            let (whole, streamed) = if pretty {
                (
                    serde_json::to_string_pretty(&to_json(&df)),
                    serde_json::to_string_pretty(&Streamed(&df)),
                )
            } else {
                (
                    serde_json::to_string(&to_json(&df)),
                    serde_json::to_string(&Streamed(&df)),
                )
            };
            assert_eq!(whole.expect("serializes"), streamed.expect("serializes"));
        }
    }

    /// The hand-written text is serde_json's, escapes included.
    pub(crate) fn assert_same_pretty_text(df: &TypedDockerfile) {
        let mut mine = Vec::new();
        write_pretty(df, &mut mine).expect("writes");
        let serde = serde_json::to_string_pretty(&to_json(df)).expect("serializes");
        assert_eq!(String::from_utf8(mine).expect("UTF-8"), serde);
        let mut mine = Vec::new();
        write_compact(df, &mut mine).expect("writes");
        let serde = serde_json::to_string(&to_json(df)).expect("serializes");
        assert_eq!(String::from_utf8(mine).expect("UTF-8"), serde);
    }

    /// The dump made while parsing is the dump of the AST, and the errors are the same.
    pub(crate) fn assert_streamed_same(src: &str) {
        let source = crate::Text::from(src);
        let parsed = crate::parse_typed_shared(&source);
        for indent in [true, false] {
            match (&parsed, parse_to_json(&source, indent)) {
                (Ok(df), Ok(dump)) => {
                    let mut mine = Vec::new();
                    let written = if indent {
                        write_pretty(df, &mut mine)
                    } else {
                        write_compact(df, &mut mine)
                    };
                    written.expect("writes");
                    assert_eq!(
                        String::from_utf8_lossy(&dump.to_bytes()),
                        String::from_utf8_lossy(&mine)
                    );
                    assert_eq!(dump.warnings, df.warnings);
                }
                (Err(a), Err(b)) => assert_eq!(a, &b),
                (a, b) => panic!("parse ok: {}, streamed ok: {}", a.is_ok(), b.is_ok()),
            }
        }
    }

    /// The dump written from the blocks of [`crate::parse_shared`] is the typed parse's dump,
    /// byte for byte, in both forms, and the errors and warnings are the same.
    pub(crate) fn assert_blocks_same(src: &str) {
        let source = crate::Text::from(src);
        match (
            crate::parse_typed_shared(&source),
            crate::parse_shared(&source),
        ) {
            (Ok(df), Ok(file)) => {
                for indent in [true, false] {
                    let mut want = Vec::new();
                    let written = if indent {
                        write_pretty(&df, &mut want)
                    } else {
                        write_compact(&df, &mut want)
                    };
                    written.expect("writes");
                    let mut got = Vec::new();
                    write_blocks(&file, &mut got, indent).expect("writes");
                    assert_eq!(
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(&want)
                    );
                    assert_eq!(got, want);
                }
                assert_eq!(file.warnings, df.warnings);
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("typed parse ok: {}, blocks ok: {}", a.is_ok(), b.is_ok()),
        }
    }

    #[test]
    fn the_written_dump_is_serde_json_text() {
        let src = "# syntax=docker/dockerfile:1\n# escape=\\\nFROM a AS b\nRUN --mount=type=cache,target=/c <<EOF\nx \\ \"y\" \t\u{1}\u{7f}\u{8}\u{c}\r\n\u{e9}\u{1F600}\nEOF\nONBUILD RUN y\n\\\n\nENV A=1 B=2\nCMD []\nCOPY [\"a\\\"b\", \"/c\"]\n";
        let df = crate::parse_typed(src).expect("parses");
        assert_same_pretty_text(&df);
        let escaped = crate::parse_typed("# escape=`\nFROM a\nRUN x\n").expect("parses");
        assert_same_pretty_text(&escaped);
        for src in [
            src,
            "# escape=`\nFROM a\nRUN x\n",
            "ARG A\nFROM a\n",
            "ARG A\n",
            "",
            "FROM a\nRUNN x\nCOPY a\n",
        ] {
            assert_streamed_same(src);
            assert_blocks_same(src);
        }
    }
}
