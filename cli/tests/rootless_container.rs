//! kiln inside an unprivileged container, as CI pods and GitLab runners use it: an image with
//! kiln and the id mappers (`testdata/rootless-container`) is built, loaded into podman and run
//! as an ordinary user with the relaxations `docs/isolation.md` lists; the build inside works
//! rootless. With the container runtime's default seccomp profile it fails. Needs root, podman
//! and the Debian base (`scripts/test.sh`); with `KILN_REQUIRE_PRIVILEGED=1` it never skips.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::Path;
use std::process::Command;

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, kiln, tool};

/// A hard limit of this process, from /proc/self/limits.
fn hard_limit(name: &str) -> String {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = text.lines().find(|l| l.starts_with(name)).unwrap();
    let fields: Vec<&str> = line[name.len()..].split_whitespace().collect();
    fields[1].to_owned()
}

fn podman_run(image: &str, opts: &[&str]) -> std::process::Output {
    // podman asks for higher limits than some machines' root may set: keep the current ones.
    let nofile = hard_limit("Max open files");
    let nproc = hard_limit("Max processes")
        .parse::<u64>()
        .map_or(20000, |n| n.min(20000));
    Command::new("timeout")
        .args(["300", "podman", "run", "--rm"])
        .arg(format!("--ulimit=nofile={nofile}:{nofile}"))
        .arg(format!("--ulimit=nproc={nproc}:{nproc}"))
        .args(opts)
        .arg(image)
        .output()
        .unwrap()
}

#[test]
fn kiln_builds_rootless_inside_an_unprivileged_container() {
    let test = "kiln_builds_rootless_inside_an_unprivileged_container";
    if !require_privileged(test) || !tool("podman") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    if !common::debian::build_base(root.path()) {
        return;
    }
    let ctx = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/rootless-container");
    std::fs::copy(src.join("Dockerfile"), ctx.path().join("Dockerfile")).unwrap();
    std::fs::copy(
        assert_cmd::cargo::cargo_bin("kiln"),
        ctx.path().join("kiln"),
    )
    .unwrap();
    let inner = ctx.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    std::fs::copy("/bin/busybox", inner.join("busybox")).unwrap();
    std::fs::write(
        inner.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox mkdir /d && /bin/busybox chown 1234:1234 /d && /bin/busybox stat -c 'owner %u:%g' /d\"]\n",
    )
    .unwrap();
    let image = format!("localhost/kiln-rootless-container-{}:1", std::process::id());
    build(root.path(), ctx.path(), &["-t", &image]);
    let archive = root.path().join("image.tar");
    let out = kiln(root.path())
        .args(["save", &image, "-o"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "save: {out:?}");
    let out = Command::new("podman")
        .args(["load", "-q", "-i"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "podman load: {out:?}");

    let relaxed = [
        "--security-opt=seccomp=unconfined",
        "--security-opt=apparmor=unconfined",
        "--security-opt=systempaths=unconfined",
        "--device=/dev/net/tun",
    ];
    let out = podman_run(&image, &relaxed);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The container's user is not root, and the build's step saw its own ids.
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("owner 1234:1234"), "{stderr}");
    assert!(
        stderr.contains("tagged docker.io/library/inner:1"),
        "{stderr}"
    );

    // The runtime's default profile refuses what the sandbox needs: the build fails, saying
    // which step of the setup was refused.
    let out = podman_run(&image, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Operation not permitted"), "{stderr}");

    let _ = Command::new("podman").args(["rmi", "-f", &image]).output();
}
