//! `kiln info`: one screen (or JSON) with what `docker info` users look for. These need root for
//! the snapshotter probe; with `KILN_REQUIRE_PRIVILEGED=1` (CI, which also registers qemu-user-static's
//! emulators) a missing capability or emulator fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use kiln_builder_core::testing::require_privileged;

mod common;
use common::kiln;

#[test]
fn info_reports_the_store_the_sandbox_and_the_emulators() {
    if !require_privileged("info_reports_the_store_the_sandbox_and_the_emulators") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    let out = kiln(&store)
        .args(["info", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["store"], store.display().to_string());
    assert_eq!(v["rootless"], false);
    assert_eq!(v["seccomp"], true);
    assert!(
        ["overlayfs", "copy"].contains(&v["snapshotter"].as_str().unwrap()),
        "{v}"
    );
    assert!(v["store_size"].as_u64().unwrap() > 0, "{v}");
    let host = v["platform"].as_str().unwrap().to_owned();
    let emulated: Vec<&str> = v["emulated_platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(!emulated.contains(&host.as_str()), "{v}");
    if std::env::var_os("KILN_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
        let foreign = if host == "linux/arm64" {
            "linux/amd64"
        } else {
            "linux/arm64"
        };
        assert!(
            emulated.contains(&foreign),
            "CI registers qemu-user-static: {v}"
        );
        assert!(
            v["network"].as_str().unwrap().contains("slirp4netns"),
            "{v}"
        );
    }
    let out = kiln(&store).arg("info").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for field in [
        "Store:",
        "Snapshotter:",
        "Rootless:",
        "Network:",
        "Seccomp:",
        "Emulated platforms:",
    ] {
        assert!(text.contains(field), "{text}");
    }
    let out = kiln(&store)
        .args(["info", "--format", "yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
