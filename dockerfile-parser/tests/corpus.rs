//! Every Dockerfile in `testdata/dockerfiles/corpus` parses, and its instructions round-trip
//! through the JSON dump.

use std::path::Path;

use kiln_dockerfile_parser::{dump, parse_typed as parse};

#[test]
fn corpus_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dockerfiles/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    files.sort();
    assert!(files.len() >= 100, "corpus has {} files", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let src = std::fs::read_to_string(path).expect("read");
        match parse(&src) {
            Ok(df) => {
                assert!(!df.stages.is_empty());
                let json = dump::to_json(&df);
                let count = json["instructions"].as_array().map(Vec::len).unwrap_or(0);
                assert_eq!(count, df.instructions().count(), "{}", path.display());
            }
            Err(e) => failures.push(format!(
                "{}:{}:{}: {e}",
                path.display(),
                e.line(),
                e.column()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}
