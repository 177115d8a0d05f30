//! A COPY of a context directory that runs again after a few of its files changed starts from
//! its previous result (a snapshot on top of the old one, the old layer patched); the image must
//! be the one a build from nothing gives. Needs root.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::Path;

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{context_with, kiln};

const EPOCH: &str = "1700000000";

fn build_id(root: &Path, ctx: &Path) -> String {
    common::ok_stdout(
        kiln(root)
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .args(["build", "-q"])
            .arg(ctx),
    )
}

/// The image id a build of `ctx` into a store of its own gives.
fn cold_id(ctx: &Path) -> String {
    let root = tempfile::tempdir().unwrap();
    build_id(root.path(), ctx)
}

/// Committed overlay snapshots of the store at `root` holding `path` in their own layer.
fn snapshots_holding(root: &Path, path: &str) -> usize {
    let dir = root.join("kiln/snapshots/snapshots");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().join("fs").join(path).exists())
        })
        .count()
}

fn overlay(root: &Path) -> bool {
    std::fs::read_to_string(root.join("kiln/snapshots/.driver"))
        .is_ok_and(|d| d.trim().starts_with("overlayfs"))
}

fn write(ctx: &Path, rel: &str, content: &str) {
    let p = ctx.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

const DOCKERFILE: &str = "FROM scratch
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox mkdir -p /app/base && echo base > /app/base/z.txt\"]
COPY app /app
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox ls -R /app > /listing\"]
";

#[test]
fn a_copy_after_a_few_changes_gives_the_image_of_a_build_from_nothing() {
    if !require_privileged("copy reuse") {
        return;
    }
    let ctx = context_with(&[
        ("Dockerfile", DOCKERFILE),
        ("app/src/a.txt", "aaaaaaaa and more"),
        ("app/src/b.txt", "b"),
        ("app/gone/x.txt", "x"),
        ("app/keep/y.txt", "y"),
        ("app/base/z.txt", "from the context"),
    ]);
    let c = ctx.path();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let first = build_id(r, c);

    // An 8-byte change (size kept), a new directory, a removed one.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(c, "app/src/a.txt", "AAAAAAAA and more");
    write(c, "app/new/n.txt", "new");
    std::fs::remove_dir_all(c.join("app/gone")).unwrap();
    let second = build_id(r, c);
    assert_ne!(second, first);
    assert_eq!(second, cold_id(c), "the same image as a build from nothing");
    if overlay(r) {
        // The new snapshot holds only what changed: `keep/y.txt` stays in the old one.
        assert_eq!(snapshots_holding(r, "app/keep/y.txt"), 1);
        assert_eq!(snapshots_holding(r, "app/src/a.txt"), 2);
    }

    // Again on top of that result.
    write(c, "app/src/b.txt", "B");
    let third = build_id(r, c);
    assert_eq!(third, cold_id(c));
    if overlay(r) {
        assert_eq!(snapshots_holding(r, "app/src/b.txt"), 2);
    }

    // A file the parent state has as well: removing it from the context must show the
    // parent's file again, which only a copy from nothing does.
    std::fs::remove_file(c.join("app/base/z.txt")).unwrap();
    let fourth = build_id(r, c);
    assert_eq!(fourth, cold_id(c));
}
