//! `kiln parse`: the JSON dump and the error paths, through the real binary.

use assert_cmd::Command;

fn kiln() -> Command {
    Command::cargo_bin("kiln").expect("the kiln binary is built for tests")
}

#[test]
fn json_dump_of_stdin() {
    let out = kiln()
        .args(["parse", "--json", "-"])
        .write_stdin("# syntax=docker/dockerfile:1\nFROM golang:1.22 AS build\nRUN --mount=type=cache,target=/root/.cache go build\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("one JSON document");
    assert_eq!(v["directives"][0]["name"], "syntax");
    assert_eq!(v["directives"][0]["value"], "docker/dockerfile:1");
    assert_eq!(
        v["instructions"][0]["args"],
        serde_json::json!(["golang:1.22", "AS", "build"])
    );
    assert_eq!(
        v["instructions"][1]["flags"],
        serde_json::json!(["--mount=type=cache,target=/root/.cache"])
    );
    assert_eq!(
        v["instructions"][1]["args"],
        serde_json::json!(["go build"])
    );
    assert_eq!(v["instructions"][1]["start_line"], 3);
}

#[test]
fn parse_error_exits_1_with_location() {
    let assert = kiln()
        .args(["parse", "--json", "-"])
        .write_stdin("FROM scratch\nCOPYY a b\n")
        .assert()
        .code(1);
    let out = assert.get_output();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("error JSON on stdout");
    assert_eq!(v["line"], 2);
    assert_eq!(v["column"], 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("COPYY"), "{stderr}");
    assert!(stderr.contains("did you mean"), "{stderr}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let assert = kiln()
        .args(["parse", "/nonexistent/Dockerfile"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains("/nonexistent/Dockerfile"), "{stderr}");
}

#[test]
fn usage_error_exits_2() {
    kiln().args(["parse", "--no-such-flag"]).assert().code(2);
}

/// A Latin-1 comment and label (bytes that are not UTF-8) parse, as in BuildKit; the label's
/// invalid byte reads as U+FFFD, as BuildKit's image config shows it.
#[test]
fn latin1_bytes_parse_as_buildkit_parses_them() {
    let src: &[u8] = b"# caf\xe9 au lait\nFROM scratch\nLABEL drink=caf\xe9\n";
    let assert = kiln()
        .args(["parse", "--json", "-"])
        .write_stdin(src)
        .assert()
        .success();
    let out = assert.get_output();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(
        v["instructions"][1]["args"],
        serde_json::json!(["drink", "caf\u{fffd}", "="])
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not valid UTF-8"), "{stderr}");
}

/// `--json` prints an `{"error"}` object for a file it cannot read too.
#[test]
fn json_error_object_for_an_unreadable_file() {
    let assert = kiln()
        .args(["parse", "--json", "/nonexistent/Dockerfile"])
        .assert()
        .code(1);
    let out = assert.get_output();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("error JSON on stdout");
    let error = v["error"].as_str().expect("an error string");
    assert!(error.contains("/nonexistent/Dockerfile"), "{error}");
}

#[test]
fn a_reader_that_stops_early_is_no_error() {
    use std::fmt::Write as _;
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Dockerfile");
    // A dump of several megabytes: far more than a pipe holds.
    let mut text = String::from("FROM scratch\n");
    for i in 0..100_000 {
        writeln!(text, "ENV VAR_{i}=value-{i}").unwrap();
    }
    std::fs::write(&path, text).unwrap();
    for json in [true, false] {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"));
        cmd.arg("parse");
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 16];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "json {json}: {:?} {stderr}",
            out.status
        );
        assert!(stderr.is_empty(), "json {json}: {stderr}");
    }
}
