//! The JSON dump behind `kiln parse --json`: a stable debugging interface.
//!
//! Shape (extra keys may be added, never removed):
//! `{"escape", "directives": [{name, value, line}], "warnings": [{message, line, rule}],
//! "instructions": [{name, keyword, flags, args, json, sub, heredocs, start_line, end_line,
//! original}]}`. `args` follows BuildKit's parser node chain per keyword (see the crate docs).

use serde_json::{Value, json};

use crate::ast::{Dockerfile, Heredoc, RawInstruction};
use crate::error::ParseError;

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
pub fn to_json(df: &Dockerfile) -> Value {
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

/// The same document as [`to_json`], serialized one instruction at a time: only one
/// instruction's `Value` exists at once, so dumping a huge Dockerfile costs little beyond its AST.
/// Keys come in the sorted order `to_json`'s maps have, so the text is the same.
pub struct Streamed<'a>(pub &'a Dockerfile);

impl serde::Serialize for Streamed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Instructions<'a>(&'a Dockerfile);
        impl serde::Serialize for Instructions<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.instructions().map(|n| instruction(&n.raw)))
            }
        }
        let df = self.0;
        let mut map = serializer.serialize_map(Some(4))?;
        let directives: Vec<Value> = df
            .directives
            .iter()
            .map(|d| json!({"name": d.name, "value": d.value, "line": d.line}))
            .collect();
        map.serialize_entry("directives", &directives)?;
        map.serialize_entry("escape", &df.escape.to_string())?;
        map.serialize_entry("instructions", &Instructions(df))?;
        let warnings: Vec<Value> = df
            .warnings
            .iter()
            .map(|w| json!({"message": w.message, "line": w.line, "rule": w.rule}))
            .collect();
        map.serialize_entry("warnings", &warnings)?;
        map.end()
    }
}

/// A parse error as `{"error", "line", "column"}`.
pub fn error_to_json(err: &ParseError) -> Value {
    json!({
        "error": err.to_string(),
        "line": err.line(),
        "column": err.column(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_dump_is_the_same_text() {
        let src = "# syntax=docker/dockerfile:1\nFROM a AS b\nRUN --mount=type=cache,target=/c <<EOF\nx\nEOF\nONBUILD RUN y\n\\\n\nENV A=1 B=2\n";
        let df = crate::parse(src).expect("parses");
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
}
