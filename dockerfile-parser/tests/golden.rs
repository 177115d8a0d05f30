//! Golden tests over `testdata/dockerfiles/{valid,invalid}/<case>/Dockerfile`.
//!
//! Valid files snapshot the JSON dump plus a compact typed AST (words as `text @start..end`);
//! invalid files snapshot the rendered miette report and the JSON error.

use std::path::{Path, PathBuf};

use kiln_dockerfile_parser::{dump, parse_typed as parse};
use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource};
use serde_json::{Value, json};

fn cases(kind: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/dockerfiles")
        .join(kind);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("testdata dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .map(|p: PathBuf| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let src = std::fs::read_to_string(p.join("Dockerfile")).expect("read Dockerfile");
            (name, src)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no cases in {}", dir.display());
    out
}

/// Replaces `{"text": t, "span": {start, end}}` objects by `"t @start..end"`.
fn compact(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            if map.len() == 2
                && let (Some(Value::String(t)), Some(Value::Object(span))) =
                    (map.get("text"), map.get("span"))
            {
                return Value::String(format!("{t} @{}..{}", span["start"], span["end"]));
            }
            if map.len() == 2
                && let (Some(Value::Number(s)), Some(Value::Number(e))) =
                    (map.get("start"), map.get("end"))
            {
                return Value::String(format!("@{s}..{e}"));
            }
            Value::Object(map.into_iter().map(|(k, v)| (k, compact(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(compact).collect()),
        v => v,
    }
}

#[test]
fn valid_dockerfiles() {
    for (name, src) in cases("valid") {
        let df = match parse(&src) {
            Ok(df) => df,
            Err(e) => panic!("{name}: {e} at {}:{}", e.line(), e.column()),
        };
        let typed: Vec<Value> = df
            .instructions()
            .map(|n| {
                compact(json!({
                    "lines": format!("{}-{}", n.start_line(), n.end_line()),
                    "span": n.span(),
                    "instruction": serde_json::to_value(&n.instruction).expect("serialize"),
                }))
            })
            .collect();
        let doc = json!({ "dump": dump::to_json(&df), "typed": typed });
        insta::assert_yaml_snapshot!(format!("valid__{name}"), doc);
    }
}

#[test]
fn invalid_dockerfiles() {
    for (name, src) in cases("invalid") {
        let err = match parse(&src) {
            Ok(_) => panic!("{name}: expected a parse error"),
            Err(e) => e,
        };
        let json = dump::error_to_json(&err);
        let report =
            miette::Report::new(err).with_source_code(NamedSource::new("Dockerfile", src.clone()));
        let mut rendered = String::new();
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .with_width(100)
            .render_report(&mut rendered, report.as_ref())
            .expect("render");
        let out = format!("{rendered}\n{json}\n");
        insta::assert_snapshot!(format!("invalid__{name}"), out);
    }
}
