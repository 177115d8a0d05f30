//! Real Dockerfiles on a real Debian base: `apt-get install` from Debian's mirror through the
//! default network, `SHELL` with pipefail, `useradd`, `COPY --chown`, `USER`, checked by running
//! the image. The base is a debootstrap of bookworm that `scripts/test.sh` makes in the background
//! (`scripts/lib/debian.sh`); these tests wait for it. They need root and the mirror; with
//! `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing base fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, context_with, kiln, run_image};

/// The Debian root filesystem tar, once `scripts/lib/debian.sh` has made it.
fn debian_tar() -> Option<PathBuf> {
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
fn debian_base(root: &std::path::Path) -> bool {
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
    build(root, ctx.path(), &["-t", "kiln-test/debian:bookworm"]);
    true
}

#[test]
fn apt_get_install_useradd_and_chown_on_debian() {
    if !require_privileged("apt_get_install_useradd_and_chown_on_debian") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    if !debian_base(root.path()) {
        return;
    }
    let dockerfile = r#"FROM kiln-test/debian:bookworm
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends hello \
 && rm -rf /var/lib/apt/lists/* \
 && hello | tr a-z A-Z > /greeting
RUN useradd --create-home --uid 1234 app
COPY --chown=app:app note.txt /home/app/
USER app
WORKDIR /home/app
RUN id -u > id && stat -c '%U:%G' note.txt > owner && (false | cat) || echo pipefail-works > pipefail
CMD ["hello", "-g", "hi from apt"]
"#;
    let ctx = context_with(&[("Dockerfile", dockerfile), ("note.txt", "a note\n")]);
    build(root.path(), ctx.path(), &["-t", "apt:1"]);
    let out = kiln(root.path())
        .args(["run", "--rm", "apt:1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi from apt\n");
    let out = kiln(root.path())
        .args([
            "run",
            "--rm",
            "apt:1",
            "cat",
            "/greeting",
            "id",
            "owner",
            "pipefail",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "HELLO, WORLD!\n1234\napp:app\npipefail-works\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The config as Docker writes it, and the image runs under runc as well.
    let (stdout, config) = run_image(root.path(), "docker.io/library/apt:1");
    assert_eq!(stdout, "hi from apt\n");
    assert_eq!(config["process"]["user"]["uid"], 1234);
}
