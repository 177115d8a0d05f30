//! The real-world Dockerfiles of `testdata/real/` (see its README): each is built with default
//! flags into one store, run with `kiln run`, and its output and config compared with the
//! expected ones. The `debian-*` cases build on a Debian base made from Debian's mirror by
//! `scripts/test.sh`. These need root; with `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing capability
//! or base fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::{Path, PathBuf};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, kiln};

/// Files of a case that are not part of its build context.
const NOT_CONTEXT: &[&str] = &[
    "expected-output",
    "expected-config.json",
    "needs-ca",
    "Dockerfile.base",
];

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if NOT_CONTEXT.iter().any(|n| name == *n) {
            continue;
        }
        let target = to.join(&name);
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn context_of(case: &Path) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    copy_tree(case, ctx.path());
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    if case.join("needs-ca").exists() {
        std::fs::copy(
            "/etc/ssl/certs/ca-certificates.crt",
            ctx.path().join("ca-certificates.crt"),
        )
        .unwrap();
    }
    ctx
}

fn config_of(root: &Path, image: &str) -> serde_json::Value {
    let out = kiln(root).args(["inspect", image]).output().unwrap();
    assert!(out.status.success(), "inspect {image}: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Config"]["config"].clone()
}

/// Every key of `want` is in `have` with the same value (objects compared key by key).
fn assert_subset(case: &str, want: &serde_json::Value, have: &serde_json::Value) {
    match (want, have) {
        (serde_json::Value::Object(w), serde_json::Value::Object(h)) => {
            for (k, v) in w {
                let Some(hv) = h.get(k) else {
                    panic!("{case}: config has no {k}: {have:#}");
                };
                assert_subset(case, v, hv);
            }
        }
        _ => assert_eq!(want, have, "{case}"),
    }
}

#[test]
fn real_world_dockerfiles_build_and_run_as_expected() {
    if !require_privileged("real_world_dockerfiles_build_and_run_as_expected") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/real");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let root = tempfile::tempdir().unwrap();
    let mut debian = None;
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("debian-") {
            if debian.is_none() {
                debian = Some(common::debian::build_base(root.path()));
            }
            if debian == Some(false) {
                continue;
            }
        }
        let ctx = context_of(case);
        if case.join("Dockerfile.base").exists() {
            std::fs::copy(
                case.join("Dockerfile.base"),
                ctx.path().join("Dockerfile.base"),
            )
            .unwrap();
            build(
                root.path(),
                ctx.path(),
                &[
                    "-f",
                    &ctx.path().join("Dockerfile.base").display().to_string(),
                    "-t",
                    &format!("{name}-base:1"),
                ],
            );
        }
        let image = format!("real-{name}:1");
        build(root.path(), ctx.path(), &["-t", &image]);
        let out = kiln(root.path())
            .args(["run", "--rm", &image])
            .output()
            .unwrap();
        let want = std::fs::read_to_string(case.join("expected-output")).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{name}: {out:?}");
        if let Ok(text) = std::fs::read_to_string(case.join("expected-config.json")) {
            let want: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_subset(&name, &want, &config_of(root.path(), &image));
        }
    }
}
