//! `--add-host`, `--shm-size` and `--ulimit`: what every RUN step gets besides the Dockerfile,
//! with the built-in sandbox and with runc, and part of the steps' cache keys. These need root;
//! with `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing capability fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build_rootfs, dockerfile_context as context, kiln};

const DOCKERFILE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN mkdir /out && cat /etc/hosts > /out/hosts && grep ' /dev/shm ' /proc/mounts > /out/shm && grep 'open files' /proc/self/limits > /out/nofile\n";

#[test]
fn add_host_shm_size_and_ulimit_reach_run_steps() {
    if !require_privileged("add_host_shm_size_and_ulimit_reach_run_steps") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(DOCKERFILE);
    let flags = [
        "--add-host",
        "db.internal:10.9.8.7",
        "--add-host",
        "v6:fd00::5",
        "--shm-size",
        "16m",
        "--ulimit",
        "nofile=100:200",
    ];
    for runtime in [None, Some("runc")] {
        let mut args = flags.to_vec();
        if let Some(r) = runtime {
            args.extend(["--runtime", r, "--no-cache"]);
        }
        let (fs, _) = build_rootfs(root.path(), ctx.path(), &args);
        let out = fs.path().join("rootfs/out");
        let read = |n: &str| std::fs::read_to_string(out.join(n)).unwrap();
        let hosts = read("hosts");
        assert!(
            hosts.contains("10.9.8.7\tdb.internal\n"),
            "{runtime:?}: {hosts}"
        );
        assert!(hosts.contains("fd00::5\tv6\n"), "{runtime:?}: {hosts}");
        assert!(
            read("shm").contains("size=16384k"),
            "{runtime:?}: {}",
            read("shm")
        );
        let nofile: Vec<String> = read("nofile")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert_eq!(nofile[3..5], ["100", "200"], "{runtime:?}: {nofile:?}");
    }
    // Without them, the defaults: no extra hosts and Docker's 64 MiB /dev/shm; the step ran again
    // (the settings are in its cache key).
    let (fs, stderr) = build_rootfs(root.path(), ctx.path(), &["--progress", "plain"]);
    let out = fs.path().join("rootfs/out");
    assert!(
        !std::fs::read_to_string(out.join("hosts"))
            .unwrap()
            .contains("db.internal")
    );
    assert!(
        std::fs::read_to_string(out.join("shm"))
            .unwrap()
            .contains("size=65536k"),
        "{stderr}"
    );

    // Bad values are usage errors.
    for bad in [
        ["--add-host", "nohost"],
        ["--shm-size", "big"],
        ["--ulimit", "files=3"],
    ] {
        let out = kiln(root.path())
            .arg("build")
            .args(bad)
            .arg(ctx.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}
