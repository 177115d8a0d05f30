//! The build cache through the `kiln` binary: `--explain-cache` and `kiln cache explain`, pruning
//! and the automatic GC, corrupted blobs, cache-mount sharing modes, concurrent builds on one store.
//! These need root; with `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing capability fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, context_with, kiln};

const EXPLAIN_DOCKERFILE: &str = "FROM scratch
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
COPY app/ /app/
ARG VERSION=1
RUN echo \"$VERSION\" > /version && cat /app/a.txt /app/b.txt > /app/all
";

#[test]
fn explain_cache_names_the_changed_file_and_arg() {
    if !require_privileged("explain build") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context_with(&[
        ("Dockerfile", EXPLAIN_DOCKERFILE),
        ("app/a.txt", "a\n"),
        ("app/b.txt", "b\n"),
    ]);
    let (_, stderr) = build(root.path(), ctx.path(), &["--explain-cache"]);
    assert!(stderr.contains("first build"), "{stderr}");

    std::fs::write(ctx.path().join("app/b.txt"), "b2\n").unwrap();
    let (_, stderr) = build(
        root.path(),
        ctx.path(),
        &["--explain-cache", "--build-arg", "VERSION=2"],
    );
    assert!(stderr.contains("file changed: app/b.txt"), "{stderr}");
    assert!(
        !stderr.contains("changed: app/a.txt"),
        "unchanged files are not named: {stderr}"
    );
    assert!(
        stderr.contains("build arg or ENV VERSION changed"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("VERSION changed: 1"),
        "values are digests only: {stderr}"
    );
    assert!(
        stderr.contains("#2 CACHE MISS") || stderr.contains("CACHE MISS: file changed"),
        "{stderr}"
    );
    assert!(
        stderr.contains(": cached"),
        "the first steps were cached: {stderr}"
    );

    // After the fact, from the store.
    let out = kiln(root.path())
        .args(["cache", "explain"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("file changed: app/b.txt"), "{text}");
    assert!(text.contains("VERSION"), "{text}");
    let list = kiln(root.path())
        .args(["cache", "explain", "--list"])
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let first = kiln(root.path())
        .args(["cache", "explain", "--json", &ids[0]])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(v["steps"][0]["reasons"][0]["reason"], "first_build");

    // A .dockerignore'd file changing explains nothing because nothing misses; --no-cache says so.
    let (_, stderr) = build(
        root.path(),
        ctx.path(),
        &["--explain-cache", "--build-arg", "VERSION=2", "--no-cache"],
    );
    assert!(stderr.contains("--no-cache"), "{stderr}");
}
