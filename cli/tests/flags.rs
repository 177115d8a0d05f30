//! Malformed values of `kiln build`'s flags are usage errors: exit code 2, and a message that
//! names the flag and the value, before anything is built.
#![allow(clippy::unwrap_used)]

mod common;

use common::{dockerfile_context, kiln};

/// Runs `kiln build ARGS CTX`; returns (exit code, stderr).
fn build(args: &[&str]) -> (Option<i32>, String) {
    let root = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context("FROM scratch\nARG A\nCOPY Dockerfile /\n");
    let out = kiln(root.path())
        .arg("build")
        .args(args)
        .arg(ctx.path())
        .env("FROM_ENV", "v")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_usage_error(args: &[&str], flag: &str, value: &str, why: &str) {
    let (code, err) = build(args);
    assert_eq!(code, Some(2), "{args:?} should be a usage error:\n{err}");
    assert!(
        err.contains(flag) && err.contains(value) && err.contains(why),
        "{args:?}: the message should name {flag}, {value:?} and say {why:?}:\n{err}"
    );
}

#[test]
fn invalid_build_arg_names_are_usage_errors() {
    assert_usage_error(&["--build-arg", "=x"], "--build-arg", "=x", "name is empty");
    assert_usage_error(&["--build-arg", ""], "--build-arg", "''", "name is empty");
    assert_usage_error(
        &["--build-arg", "A B=1"],
        "--build-arg",
        "A B=1",
        "whitespace",
    );
}

#[test]
fn valid_build_args_still_build() {
    // A bare name takes its value from the environment, as Docker does; one that is unset is
    // left out.
    for args in [
        &["--build-arg", "A=1"][..],
        &["--build-arg", "A="],
        &["--build-arg", "FROM_ENV"],
        &["--build-arg", "UNSET_IN_ENV"],
    ] {
        let (code, err) = build(&["-q"].iter().chain(args).copied().collect::<Vec<_>>());
        assert_eq!(code, Some(0), "{args:?}:\n{err}");
    }
}

#[test]
fn bad_output_and_cache_options_are_usage_errors() {
    assert_usage_error(
        &["-o", "type=oci,dest=x.tar,tar=maybe"],
        "--output",
        "tar=maybe",
        "not a boolean",
    );
    assert_usage_error(
        &["-o", "type=oci,dest=x.tar,compresion=gzip"],
        "--output",
        "compresion",
        "unknown --output field",
    );
    assert_usage_error(
        &["-o", "type=registry,dest=x"],
        "--output",
        "type=registry",
        "not dest=",
    );
    assert_usage_error(
        &["--cache-to", "type=inline,mode=max"],
        "--cache-to",
        "type=inline",
        "final stage only",
    );
    assert_usage_error(
        &["--cache-to", "type=registry,ref=r,mode=all"],
        "--cache-to",
        "mode=all",
        "not min or max",
    );
    assert_usage_error(
        &["--cache-from", "type=registry,ref=r,colour=red"],
        "--cache-from",
        "colour",
        "unknown --cache-from field",
    );
    assert_usage_error(
        &["--secret", "id=a,src=/x,bogus=1"],
        "--secret",
        "bogus",
        "unknown --secret field",
    );
    assert_usage_error(&["--secret", "src=/x"], "--secret", "src=/x", "needs id=");
    assert_usage_error(
        &["--ssh", "=/sock"],
        "--ssh",
        "=/sock",
        "expected `default`",
    );
}

#[test]
fn tags_must_be_tags() {
    let digest = format!("app@sha256:{}", "a".repeat(64));
    assert_usage_error(&["-t", &digest], "--tag", &digest, "has a digest");
    assert_usage_error(&["-t", "App:1"], "--tag", "App:1", "lowercase");
    assert_usage_error(&["-t", "app:-bad"], "--tag", "app:-bad", "tag");
    assert_usage_error(&["-t", ""], "--tag", "''", "empty");
}
