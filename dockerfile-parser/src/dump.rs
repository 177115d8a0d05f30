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

/// A parse error as `{"error", "line", "column"}`.
pub fn error_to_json(err: &ParseError) -> Value {
    json!({
        "error": err.to_string(),
        "line": err.line(),
        "column": err.column(),
    })
}
