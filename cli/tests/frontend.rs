//! `# syntax=` and `BUILDKIT_SYNTAX`: BuildKit's Dockerfile frontend 1.x is kiln's own (the build
//! says so once); any other frontend image is an error naming its line, unless
//! `--ignore-syntax`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{dockerfile_context, kiln};

/// Builds `dockerfile` (no RUN: needs no privileges); returns (exit code, stderr).
fn build(dockerfile: &str, args: &[&str]) -> (Option<i32>, String) {
    let root = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context(dockerfile);
    let out = kiln(root.path())
        .args(["build", "--progress", "plain"])
        .args(args)
        .arg(ctx.path())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const NOTICE: &str = "kiln builds with its own Dockerfile frontend";

#[test]
fn dockerfile_1x_is_kilns_own_frontend_said_once() {
    for syntax in [
        "docker/dockerfile:1",
        "docker/dockerfile:1.7",
        "docker/dockerfile:1.4-labs",
    ] {
        let (code, err) = build(
            &format!("# syntax={syntax}\nFROM scratch\nCOPY Dockerfile /\n"),
            &[],
        );
        assert_eq!(code, Some(0), "{syntax}:\n{err}");
        assert_eq!(
            err.matches(NOTICE).count(),
            1,
            "{syntax}: said once:\n{err}"
        );
        assert!(err.contains(syntax), "{err}");
    }
    let (code, err) = build("FROM scratch\nCOPY Dockerfile /\n", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains(NOTICE), "no directive, no notice:\n{err}");
}

#[test]
fn another_frontend_is_an_error_naming_the_line_unless_ignored() {
    let df = "# syntax=example.com/made/up:1\nFROM scratch\nCOPY Dockerfile /\n";
    let (code, err) = build(df, &[]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("line 1"), "names the line:\n{err}");
    assert!(err.contains("example.com/made/up:1"), "{err}");
    assert!(
        err.contains("kiln runs only its own Dockerfile frontend"),
        "{err}"
    );
    assert!(err.contains("--ignore-syntax"), "names the flag:\n{err}");

    let (code, err) = build(df, &["--ignore-syntax"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err.matches(NOTICE).count(), 1, "{err}");
}

#[test]
fn buildkit_syntax_build_arg_comes_before_the_directive() {
    let df = "# syntax=example.com/made/up:1\nFROM scratch\nCOPY Dockerfile /\n";
    let (code, err) = build(df, &["--build-arg", "BUILDKIT_SYNTAX=docker/dockerfile:1"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err.matches(NOTICE).count(), 1, "{err}");
    assert!(!err.contains("no ARG declares it"), "{err}");

    let (code, err) = build(
        "FROM scratch\nCOPY Dockerfile /\n",
        &["--build-arg", "BUILDKIT_SYNTAX=example.com/made/up:1"],
    );
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("BUILDKIT_SYNTAX"), "{err}");
    assert!(
        err.contains("kiln runs only its own Dockerfile frontend"),
        "{err}"
    );
}
