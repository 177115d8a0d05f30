//! The build as a security boundary, through the `kiln` binary: entitlements, the store's
//! visibility to other local users, and build mounts that never reach the host's mount table.
//! These need root; with `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing capability fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::checks::*;
use common::{build, build_rootfs, dockerfile_context as context, kiln, try_build};

const BUSYBOX_BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

#[test]
fn insecure_steps_need_the_entitlement() {
    if !require_privileged("insecure_steps_need_the_entitlement") {
        return;
    }
    let dockerfile = format!(
        "{BUSYBOX_BASE}RUN --security=insecure grep -E '^(Seccomp|CapEff):' /proc/self/status > /status\n"
    );
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&dockerfile);
    let (ok, _, stderr) = try_build(root.path(), ctx.path(), &[]);
    assert!(!ok);
    assert!(stderr.contains("--allow security.insecure"), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:4"),
        "the error points at the line: {stderr}"
    );

    let out = kiln(root.path())
        .args(["build", "--allow", "network.everything"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown entitlement is a usage error"
    );

    let (fs, _) = build_rootfs(root.path(), ctx.path(), &["--allow", "security.insecure"]);
    let status = std::fs::read_to_string(fs.path().join("rootfs/status")).unwrap();
    assert!(status.contains("Seccomp:\t0"), "{status}");

    // Without the flag a step is filtered.
    let ctx = context(&format!(
        "{BUSYBOX_BASE}RUN grep -E '^Seccomp:' /proc/self/status > /status\n"
    ));
    let (fs, _) = build_rootfs(root.path(), ctx.path(), &[]);
    let status = std::fs::read_to_string(fs.path().join("rootfs/status")).unwrap();
    assert_eq!(status, "Seccomp:\t2\n");
}

fn find_setuid(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            find_setuid(&e.path(), name, out);
        } else if e.file_name() == name && meta.permissions().mode() & 0o4000 != 0 {
            out.push(e.path());
        }
    }
}

#[test]
fn the_store_is_closed_to_other_local_users() {
    if !require_privileged("the_store_is_closed_to_other_local_users") {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = parent.path().join("store");
    let ctx = context(&format!(
        "{BUSYBOX_BASE}RUN cp /bin/busybox /bin/suidbox && chmod 4755 /bin/suidbox\n"
    ));
    build(&root, ctx.path(), &["-t", "suid:1"]);
    let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "store root mode {mode:o}");

    // The setuid-root binary is in the store (a snapshot); an ordinary user cannot reach it.
    let mut found = Vec::new();
    find_setuid(&root, "suidbox", &mut found);
    assert!(!found.is_empty(), "no setuid binary in the store");
    for path in &found {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(path)
            .args(["id", "-u"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "nobody ran {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // A store made open by an older version is tightened when next used.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = kiln(&root).arg("images").output().unwrap();
    assert!(out.status.success());
    let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
}

fn mounts_mentioning(root: &Path) -> Vec<String> {
    let canon = root.canonicalize().unwrap();
    let needle = canon.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn build_mounts_never_reach_the_hosts_mount_table() {
    if !require_privileged("build_mounts_never_reach_the_hosts_mount_table") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let nap = format!("{}", 7000 + std::process::id() % 5000);
    let ctx = context(&format!(
        "{BUSYBOX_BASE}COPY Dockerfile /ctx/\nRUN sleep {nap}\n"
    ));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .arg("--root")
        .arg(root.path())
        .args(["build", "--progress", "plain"])
        .arg(ctx.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while host_processes(&["sleep", &nap]).is_empty() {
        assert!(Instant::now() < deadline, "the step never started");
        assert!(child.try_wait().unwrap().is_none(), "the build ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The step's rootfs (an overlay under the store) is mounted, but not in the host's table.
    let seen = mounts_mentioning(root.path());
    assert!(
        seen.is_empty(),
        "build mounts in the host's table: {seen:#?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_mounts_under(root.path());
    assert_no_processes_under(root.path());
}
