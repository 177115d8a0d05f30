//! The build cache through a real registry (`KILN_TEST_REGISTRY`): a build exports the records
//! and layers of all its stages with `--cache-to`, and a build in an empty store with
//! `--cache-from` gets every step from that cache and runs nothing.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use kiln_builder_core::testing::{registry, require_privileged};

mod common;
use common::proxy::{Fault, proxy};
use common::{TWO_STAGES as DOCKERFILE, context_with, try_build};

#[test]
fn cache_exported_to_a_registry_lets_an_empty_store_run_nothing() {
    let Some(reg) = registry("registry cache") else {
        return;
    };
    if !require_privileged("registry cache") {
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let cache_ref = format!(
        "{}/kiln-test/cache-{}-{nanos}:buildcache",
        reg.addr,
        std::process::id()
    );
    let ctx = context_with(&[("Dockerfile", DOCKERFILE)]);
    let ctx_path = ctx.path();

    // Nothing to import yet: a warning, and the build runs everything.
    let first = tempfile::tempdir().unwrap();
    let (ok, id, stderr) = try_build(
        first.path(),
        ctx_path,
        &[
            "--cache-from",
            &format!("type=registry,ref={cache_ref}"),
            "--cache-to",
            &format!("type=registry,ref={cache_ref},mode=max"),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("cannot import cache from"), "{stderr}");
    assert!(
        stderr.contains("one-42") && stderr.contains("two-42"),
        "{stderr}"
    );
    assert!(stderr.contains("cache exported"), "{stderr}");

    // An empty store with the cache: every step of both stages is a hit, no RUN executes, and
    // the image is the same.
    let second = tempfile::tempdir().unwrap();
    let (ok, again, stderr) = try_build(
        second.path(),
        ctx_path,
        &["--cache-from", &format!("type=registry,ref={cache_ref}")],
    );
    assert!(ok, "{stderr}");
    // (The step titles show the command; only its output says it ran.)
    assert!(
        !stderr.contains("one-42") && !stderr.contains("two-42"),
        "{stderr}"
    );
    assert!(stderr.contains("3 of 3 steps cached"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("warning"), "{stderr}");
    assert_eq!(again, id);

    // A changed Dockerfile still reuses what matches and runs only the rest.
    let changed = DOCKERFILE.replace("two-$", "changed-$");
    std::fs::write(ctx_path.join("Dockerfile"), changed).unwrap();
    let third = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = try_build(
        third.path(),
        ctx_path,
        &["--cache-from", &format!("type=registry,ref={cache_ref}")],
    );
    assert!(ok, "{stderr}");
    assert!(
        !stderr.contains("one-42") && stderr.contains("changed-42"),
        "{stderr}"
    );
    assert!(stderr.contains("2 of 3 steps cached"), "{stderr}");
}

#[test]
fn a_corrupt_cache_layer_drops_its_records_and_nothing_corrupt_is_stored() {
    let Some(reg) = registry("corrupt registry cache") else {
        return;
    };
    if !require_privileged("corrupt registry cache") {
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let repo = format!("kiln-test/cache-corrupt-{}-{nanos}", std::process::id());
    let ctx = context_with(&[("Dockerfile", DOCKERFILE)]);
    let first = tempfile::tempdir().unwrap();
    let (ok, id, stderr) = try_build(
        first.path(),
        ctx.path(),
        &[
            "--cache-to",
            &format!("type=registry,ref={}/{repo}:c,mode=max", reg.addr),
        ],
    );
    assert!(ok, "{stderr}");

    // Through a proxy that flips a byte deep into the download: the busybox layer (the only
    // large one) fails verification, so the COPY records that point at it are not imported and
    // COPY runs again (once: the second stage's identical COPY then hits its fresh record); the
    // RUN records, whose layers verified, are used.
    let p = proxy(&reg.addr, Fault::CorruptDownloadAt(200_000));
    let second = tempfile::tempdir().unwrap();
    let (ok, again, stderr) = try_build(
        second.path(),
        ctx.path(),
        &[
            "--cache-from",
            &format!("type=registry,ref={}/{repo}:c", p.addr),
        ],
    );
    drop(p);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("does not match its digest"), "{stderr}");
    assert!(
        !stderr.contains("one-42") && !stderr.contains("two-42"),
        "{stderr}"
    );
    let cached = stderr.lines().filter(|l| l.ends_with(" CACHED")).count();
    assert!(
        (3..5).contains(&cached),
        "a COPY of busybox ran again: {stderr}"
    );
    // (The image differs from the first only in the re-run step's history time.)
    assert!(again.starts_with("sha256:") && id.starts_with("sha256:"));
    for entry in std::fs::read_dir(second.path().join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            kiln_builder_core::content::Digest::of(&bytes).hex(),
            entry.file_name().to_string_lossy()
        );
    }
}
