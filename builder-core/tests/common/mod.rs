//! Shared helpers for integration tests: privileged-test gating and busybox root filesystems.
#![allow(dead_code)]

use std::path::Path;

/// Whether privileged tests may run here. They need root (mounts, namespaces, chown). With
/// `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing privilege fails the test instead of skipping it.
pub fn privileged(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if root {
        return true;
    }
    if std::env::var_os("KILN_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
        panic!("{test}: KILN_REQUIRE_PRIVILEGED=1 but not running as root");
    }
    eprintln!("skipping {test}: needs root (set KILN_REQUIRE_PRIVILEGED=1 to make this a failure)");
    false
}

/// Where busybox is installed on the host.
pub const BUSYBOX: &str = "/bin/busybox";

/// Fills `dir` with a minimal busybox root filesystem: `/bin/busybox`, a symlink per applet, and
/// empty `/tmp` and `/etc` (no `/proc`, `/dev` or `/sys`, as in a `FROM scratch` image).
pub fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("create bin");
    std::fs::copy(BUSYBOX, bin.join("busybox"))
        .expect("copy busybox (is busybox-static installed?)");
    let out = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for name in String::from_utf8_lossy(&out.stdout).lines() {
        if name != "busybox" && !name.is_empty() {
            std::os::unix::fs::symlink("busybox", bin.join(name)).expect("applet symlink");
        }
    }
    std::fs::create_dir_all(dir.join("tmp")).expect("create tmp");
    std::fs::create_dir_all(dir.join("etc")).expect("create etc");
}

/// Whether any host process has `needle` in its command line.
pub fn host_process_with(needle: &str) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                c.contains(needle)
            })
            .unwrap_or(false)
    })
}
