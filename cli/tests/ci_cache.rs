//! The build cache as CI uses it: a directory saved and restored between jobs
//! (`--cache-to type=local`), the image as its own cache (`--cache-to type=inline`), `mode=min`
//! against `mode=max`, several sources, `ignore-error`, and a multi-platform build's cache. Each
//! checks that a second build in an empty store runs no RUN step it should not (a step's output
//! in the log says it ran).

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use kiln_builder_core::testing::{foreign_busybox_dir, registry, require_privileged};

mod common;
use common::platforms::{context, emulator};
use common::{TWO_STAGES as DOCKERFILE, context_with, try_build, unique};

fn ran(stderr: &str) -> (bool, bool) {
    (stderr.contains("one-42"), stderr.contains("two-42"))
}

#[test]
fn a_local_cache_directory_lets_an_empty_store_run_nothing() {
    if !require_privileged("local cache") {
        return;
    }
    let ctx = context_with(&[("Dockerfile", DOCKERFILE)]);
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("max");
    let first = tempfile::tempdir().unwrap();
    let (ok, id, stderr) = try_build(
        first.path(),
        ctx.path(),
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", dir.display()),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("cache exported (type=local"), "{stderr}");
    // An OCI layout, as BuildKit writes one.
    assert!(dir.join("oci-layout").is_file() && dir.join("index.json").is_file());

    // Several sources: one that does not exist (a warning) and the real one.
    let second = tempfile::tempdir().unwrap();
    let (ok, again, stderr) = try_build(
        second.path(),
        ctx.path(),
        &[
            "--cache-from",
            &format!("type=local,src={}", cache.path().join("missing").display()),
            "--cache-from",
            &format!("type=local,src={}", dir.display()),
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(ran(&stderr), (false, false), "{stderr}");
    assert!(stderr.contains("3 of 3 steps cached"), "{stderr}");
    assert!(stderr.contains("cannot import cache from"), "{stderr}");
    assert_eq!(again, id);
}

#[test]
fn mode_min_exports_only_the_final_stage_locally_and_to_a_registry() {
    if !require_privileged("cache mode=min") {
        return;
    }
    let reg = registry("cache mode=min");
    let ctx = context_with(&[("Dockerfile", DOCKERFILE)]);
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("min");
    let mut to = vec![
        "--cache-to".to_string(),
        format!("type=local,dest={},mode=min", dir.display()),
    ];
    let remote = reg
        .as_ref()
        .map(|r| format!("{}/{}:c", r.addr, unique("cache-min")));
    if let Some(r) = &remote {
        to.extend([
            "--cache-to".into(),
            format!("type=registry,ref={r},mode=min"),
        ]);
    }
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    let first = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = try_build(first.path(), ctx.path(), &to);
    assert!(ok, "{stderr}");

    let mut sources = vec![format!("type=local,src={}", dir.display())];
    sources.extend(remote.iter().map(|r| format!("type=registry,ref={r}")));
    for source in sources {
        // The first stage is not in the cache and runs again; the final stage's RUN, whose
        // inputs are the same, comes from the cache.
        let fresh = tempfile::tempdir().unwrap();
        let (ok, _, stderr) = try_build(fresh.path(), ctx.path(), &["--cache-from", &source]);
        assert!(ok, "{stderr}");
        assert_eq!(ran(&stderr), (true, false), "{source}: {stderr}");
    }
}

#[test]
fn an_inline_cache_travels_with_the_pushed_image() {
    let Some(reg) = registry("inline cache") else {
        return;
    };
    if !require_privileged("inline cache") {
        return;
    }
    let dockerfile = "FROM scratch\nCOPY busybox /bin/busybox\n\
        RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo three-$((40+2)); echo x > /x\"]\n";
    let ctx = context_with(&[("Dockerfile", dockerfile)]);
    let image = format!("{}/{}:1", reg.addr, unique("inline"));
    let first = tempfile::tempdir().unwrap();
    let (ok, id, stderr) = try_build(
        first.path(),
        ctx.path(),
        &["-t", &image, "--push", "--cache-to", "type=inline"],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("three-42"), "{stderr}");

    let second = tempfile::tempdir().unwrap();
    let (ok, again, stderr) = try_build(second.path(), ctx.path(), &["--cache-from", &image]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("three-42"), "{stderr}");
    assert!(stderr.contains("2 of 2 steps cached"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("warning"), "{stderr}");
    // The cache is in the first image's config; the second build exports none, so the two
    // images differ in that field only.
    assert_ne!(again, id);

    // An image without one is a warning that says how to make one.
    let plain = format!("{}/{}:1", reg.addr, unique("plain"));
    let (ok, _, stderr) = try_build(first.path(), ctx.path(), &["-t", &plain, "--push"]);
    assert!(ok, "{stderr}");
    let third = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = try_build(third.path(), ctx.path(), &["--cache-from", &plain]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("without an inline cache"), "{stderr}");
}

#[test]
fn ignore_error_turns_a_failed_export_into_a_warning() {
    let ctx = context_with(&[("Dockerfile", "FROM scratch\nCOPY busybox /b\n")]);
    let root = tempfile::tempdir().unwrap();
    // A file where the cache directory should be: the export cannot succeed.
    let blocker = root.path().join("blocker");
    std::fs::write(&blocker, "x").unwrap();
    let dest = format!("type=local,dest={}", blocker.join("c").display());
    let (ok, _, stderr) = try_build(root.path(), ctx.path(), &["--cache-to", &dest]);
    assert!(!ok, "{stderr}");
    let (ok, id, stderr) = try_build(
        root.path(),
        ctx.path(),
        &["--cache-to", &format!("{dest},ignore-error=true")],
    );
    assert!(ok, "{stderr}");
    assert!(id.starts_with("sha256:"));
    assert!(stderr.contains("cannot export cache to"), "{stderr}");
}

/// A multi-platform build's cache carries every platform: a local cache directory and an inline
/// cache in the pushed index each let an empty store build both platforms running nothing.
#[test]
fn a_multi_platform_cache_carries_every_platform() {
    if !require_privileged("multi-platform cache") || !emulator("linux/arm64") {
        return;
    }
    let Some(bb) = foreign_busybox_dir("multi-platform cache", &["amd64", "arm64"]) else {
        return;
    };
    let dockerfile = "FROM scratch\nARG TARGETARCH\nCOPY busybox-${TARGETARCH} /bin/busybox\n\
        RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo multi-$((40+2)); /bin/busybox uname -m > /arch\"]\n";
    let ctx = context(&bb, &["amd64", "arm64"], dockerfile);
    let platforms = ["--platform", "linux/amd64,linux/arm64"];
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("c");
    let mut first: Vec<String> = platforms.iter().map(|s| s.to_string()).collect();
    first.extend([
        "--cache-to".into(),
        format!("type=local,dest={}", dir.display()),
    ]);
    let reg = registry("multi-platform inline cache");
    let image = reg
        .as_ref()
        .map(|r| format!("{}/{}:1", r.addr, unique("multi-inline")));
    if let Some(image) = &image {
        first.extend([
            "-t".into(),
            image.clone(),
            "--push".into(),
            "--cache-to".into(),
            "type=inline".into(),
        ]);
    }
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let root = tempfile::tempdir().unwrap();
    let (ok, id, stderr) = try_build(root.path(), ctx.path(), &first);
    assert!(ok, "{stderr}");
    assert_eq!(stderr.matches("multi-42").count(), 2, "{stderr}");

    let mut sources = vec![format!("type=local,src={}", dir.display())];
    sources.extend(image.iter().cloned());
    for source in sources {
        let fresh = tempfile::tempdir().unwrap();
        let mut args = platforms.to_vec();
        args.extend(["--cache-from", &source]);
        let (ok, again, stderr) = try_build(fresh.path(), ctx.path(), &args);
        assert!(ok, "{source}: {stderr}");
        assert!(!stderr.contains("multi-42"), "{source}: {stderr}");
        assert!(stderr.contains("4 of 4 steps cached"), "{source}: {stderr}");
        if !source.starts_with("type=local") {
            // The inline cache is in the first build's configs only.
            assert_ne!(again, id);
        }
    }
}
