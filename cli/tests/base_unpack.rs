//! First use of a base image whose layers the store holds compressed (loaded or pulled): the
//! snapshots are unpacked straight from the compressed blobs, no uncompressed copy is written,
//! and a corrupt or truncated blob fails the build naming it and leaves no snapshot behind.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::{Path, PathBuf};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, context_with, example_context, kiln, try_build};

fn ok_stdout(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A store holding `app:1` (the hello example) loaded from an OCI archive: gzip layers only.
fn loaded_store() -> tempfile::TempDir {
    let built = tempfile::tempdir().unwrap();
    let ctx = example_context("hello");
    build(built.path(), ctx.path(), &["-t", "app:1"]);
    let archive = built.path().join("app-oci.tar");
    kiln(built.path())
        .args(["save", "--format", "oci", "app:1", "-o"])
        .arg(&archive)
        .assert()
        .success();
    let store = tempfile::tempdir().unwrap();
    kiln(store.path())
        .args(["load", "-i"])
        .arg(&archive)
        .assert()
        .success();
    store
}

fn blob(root: &Path, digest: &str) -> PathBuf {
    root.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The loaded image's (layer digests, diff_ids).
fn layers(root: &Path, name: &str) -> (Vec<String>, Vec<String>) {
    let inspect: serde_json::Value =
        serde_json::from_str(&ok_stdout(kiln(root).args(["inspect", name]))).unwrap();
    let manifest = &inspect["Manifest"];
    let digests = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(root, config_digest)).unwrap()).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (digests, diff_ids)
}

/// Committed snapshots and temporary entries of the store's snapshotter.
fn snapshot_entries(root: &Path) -> Vec<PathBuf> {
    ["snapshots", "tmp"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join("kiln/snapshots").join(d)).into_iter())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .collect()
}

#[test]
fn a_loaded_base_is_unpacked_from_its_compressed_blobs() {
    if !require_privileged("base image unpack") {
        return;
    }
    let store = loaded_store();
    let root = store.path();
    let (digests, diff_ids) = layers(root, "app:1");
    assert!(digests.iter().zip(&diff_ids).all(|(d, i)| d != i));
    let ctx = context_with(&[(
        "Dockerfile",
        "FROM app:1\nRUN test -f /srv/message && test -x /bin/busybox\n",
    )]);
    build(root, ctx.path(), &["-t", "use:1"]);
    for d in &diff_ids {
        assert!(!blob(root, d).exists(), "no uncompressed copy of {d}");
    }
    // The built image lists the base's blobs as they are, and runs.
    let (built, built_ids) = layers(root, "use:1");
    assert_eq!(built, digests);
    assert_eq!(built_ids, diff_ids);
    let out = ok_stdout(kiln(root).args(["run", "--rm", "use:1"]));
    assert!(out.starts_with("hello from kiln\n"), "{out}");
    // It also exports as an uncompressed docker archive and loads elsewhere.
    let archive = root.join("use.tar");
    kiln(root)
        .args(["save", "use:1", "-o"])
        .arg(&archive)
        .assert()
        .success();
    let other = tempfile::tempdir().unwrap();
    kiln(other.path())
        .args(["load", "-i"])
        .arg(&archive)
        .assert()
        .success();
    let out = ok_stdout(kiln(other.path()).args(["run", "--rm", "use:1"]));
    assert!(out.starts_with("hello from kiln\n"), "{out}");
}

#[test]
fn a_corrupt_or_truncated_base_layer_fails_naming_it_and_leaves_no_snapshot() {
    if !require_privileged("base image unpack") {
        return;
    }
    let store = loaded_store();
    let root = store.path();
    let (digests, _) = layers(root, "app:1");
    // The biggest layer (busybox).
    let victim = digests
        .iter()
        .max_by_key(|d| std::fs::metadata(blob(root, d)).unwrap().len())
        .unwrap()
        .clone();
    let path = blob(root, &victim);
    let good = std::fs::read(&path).unwrap();
    let ctx = context_with(&[("Dockerfile", "FROM app:1\nRUN true\n")]);
    let mut corrupt = good.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x55;
    let truncated = good[..good.len() / 2].to_vec();
    for bad in [corrupt, truncated] {
        std::fs::write(&path, &bad).unwrap();
        let (ok, _, stderr) = try_build(root, ctx.path(), &["-t", "use:1"]);
        assert!(!ok, "a bad layer must fail the build");
        let hex = victim.trim_start_matches("sha256:");
        assert!(stderr.contains(hex), "the error names the layer: {stderr}");
        // Layers below the bad one may be committed; nothing of the bad one (or above) is, and
        // no temporary tree is left.
        let below = digests.iter().position(|d| *d == victim).unwrap();
        let left = snapshot_entries(root);
        assert!(left.len() <= below, "left behind: {left:?}");
    }
    // With the good blob back the same build works.
    std::fs::write(&path, &good).unwrap();
    build(root, ctx.path(), &["-t", "use:1"]);
    assert!(
        snapshot_entries(root).len() >= digests.len(),
        "the snapshots are where the check above looks"
    );
}
