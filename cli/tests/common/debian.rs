//! The Debian base image for the tests that build real Dockerfiles: a debootstrap of bookworm
//! that `scripts/test.sh` makes in the background (`scripts/lib/debian.sh`); the tests wait for it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The Debian root filesystem tar, once `scripts/lib/debian.sh` has made it.
pub fn debian_tar() -> Option<PathBuf> {
    let required = std::env::var_os("KILN_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1");
    let Some(dir) = std::env::var_os("KILN_TEST_DEBIAN_DIR").map(PathBuf::from) else {
        assert!(
            !required,
            "KILN_TEST_DEBIAN_DIR is not set: run the tests with scripts/test.sh"
        );
        eprintln!("skipping: no Debian base (run scripts/test.sh)");
        return None;
    };
    let deadline = Instant::now() + Duration::from_secs(20 * 60);
    loop {
        if dir.join("ready").exists() {
            return Some(dir.join("rootfs.tar"));
        }
        if dir.join("failed").exists() {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!(
                "debootstrap failed:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        assert!(
            Instant::now() < deadline,
            "the Debian base was not ready in time"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Builds the base image `kiln-test/debian:bookworm` into the store at `root`.
pub fn build_base(root: &std::path::Path) -> bool {
    let Some(tar) = debian_tar() else {
        return false;
    };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nADD rootfs.tar /\nCMD [\"/bin/bash\"]\n",
    )
    .unwrap();
    if std::fs::hard_link(&tar, ctx.path().join("rootfs.tar")).is_err() {
        std::fs::copy(&tar, ctx.path().join("rootfs.tar")).unwrap();
    }
    super::build(root, ctx.path(), &["-t", "kiln-test/debian:bookworm"]);
    true
}
