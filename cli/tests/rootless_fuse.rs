//! Rootless mode with fuse-overlayfs, the snapshotter for kernels whose overlayfs cannot be
//! mounted in a user namespace (before Linux 5.11). This kernel can, so the tests ask for it with
//! `--storage-driver`: its layers are the kernel overlay's to the byte (whiteouts, opaque
//! directories, owners), `kiln info` names it, a store made by one driver is refused by the other,
//! and a killed build leaves no fuse-overlayfs process behind. Also the runc executor rootless, on
//! such a mount. With `KILN_REQUIRE_PRIVILEGED=1` (CI) these never skip.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::rootless::{User, user};

/// A multi-stage build with everything the upper directory has to record: owners set by RUN
/// chown and COPY --chown, a file of a lower layer removed (whiteout), a directory of a lower
/// layer replaced (opaque), mount points a step made and removed, and COPY --from.
const DOCKERFILE: &str = r#"FROM scratch AS build
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /data/old /data/keep && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd \
 && echo 'root:x:0:' > /etc/group && echo 'app:x:1234:1234::/home/app:/bin/sh' >> /etc/passwd \
 && echo 'app:x:1234:' >> /etc/group && echo a > /data/old/a && echo b > /data/old/b \
 && echo k > /data/keep/k && echo gone > /etc/gone
RUN rm /etc/gone && rm -rf /data/old && mkdir /data/old && echo new > /data/old/n \
 && chown 1234:1234 /data/old/n
COPY --chown=1234:1234 data.txt /home/app/data.txt
RUN touch /data/keep/k && mkdir -p /shared && chown 2000:3000 /shared && chmod 2775 /shared

FROM build
RUN rm -rf /data/keep && mkdir /data/keep && rm /home/app/data.txt && chown -R 1234:1234 /home/app
COPY --from=build --chown=1234:1234 /data/old /copied
"#;

fn fuse_required(test: &str) -> bool {
    let installed = ["/usr/bin/fuse-overlayfs", "/bin/fuse-overlayfs"]
        .iter()
        .any(|p| Path::new(p).exists());
    if !installed {
        assert!(
            std::env::var_os("KILN_REQUIRE_PRIVILEGED").is_none_or(|v| v != "1"),
            "{test}: fuse-overlayfs is not installed (scripts/test.sh installs it)"
        );
        eprintln!("skipping {test}: fuse-overlayfs is not installed");
    }
    installed
}

fn context(user: &User) -> std::path::PathBuf {
    let ctx = user.dir("fuse");
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("data.txt"), "data\n").unwrap();
    std::fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
    user.give(&ctx);
    ctx
}

/// `kiln build` with `driver` into the store `store`; the image id it prints.
fn build(user: &User, store: &Path, driver: &str, ctx: &Path) -> String {
    common::ok_stdout(
        user.kiln()
            .env("SOURCE_DATE_EPOCH", "0")
            .arg("--root")
            .arg(store)
            .args(["--storage-driver", driver, "build", "-t", "fuse:1"])
            .arg(ctx),
    )
}

fn info(user: &User, store: &Path, driver: &str) -> serde_json::Value {
    let out = user
        .kiln()
        .arg("--root")
        .arg(store)
        .args(["--storage-driver", driver, "info", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "info: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The pids of fuse-overlayfs processes serving mounts under `home`.
fn fuse_daemons(home: &Path) -> Vec<u32> {
    let home = home.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            comm.trim() == "fuse-overlayfs" && String::from_utf8_lossy(&cmdline).contains(&home)
        })
        .collect()
}

#[test]
fn fuse_overlayfs_layers_equal_the_kernel_overlays_and_stores_are_not_mixed() {
    let test = "fuse_overlayfs_layers_equal_the_kernel_overlays_and_stores_are_not_mixed";
    let Some(user) = user(test) else {
        return;
    };
    if !fuse_required(test) {
        return;
    }
    let ctx = context(&user);
    let (kernel_store, fuse_store) = (user.dir("store-kernel"), user.dir("store-fuse"));
    let kernel = build(&user, &kernel_store, "overlay", &ctx);
    let fuse = build(&user, &fuse_store, "fuse-overlayfs", &ctx);
    assert!(kernel.starts_with("sha256:"), "{kernel}");
    assert_eq!(
        fuse, kernel,
        "fuse-overlayfs and overlayfs give other images"
    );

    let i = info(&user, &fuse_store, "fuse-overlayfs");
    assert_eq!(i["snapshotter"], "fuse-overlayfs", "{i:#}");
    assert_eq!(i["storage_driver"], "fuse-overlayfs", "{i:#}");
    // Chosen automatically, a store keeps the driver it was made with.
    let i = info(&user, &fuse_store, "auto");
    assert_eq!(i["snapshotter"], "fuse-overlayfs", "{i:#}");
    assert_eq!(i["storage_driver"], "auto", "{i:#}");
    let i = info(&user, &kernel_store, "auto");
    assert_eq!(i["snapshotter"], "overlayfs", "{i:#}");
    // A rebuild with fuse-overlayfs hits the cache and gives the same image.
    assert_eq!(build(&user, &fuse_store, "auto", &ctx), kernel);

    for (store, other, made) in [
        (&fuse_store, "overlay", "fuse-overlayfs"),
        (
            &kernel_store,
            "fuse-overlayfs",
            "overlayfs in rootless mode",
        ),
        (&kernel_store, "copy", "overlayfs in rootless mode"),
    ] {
        let out = user
            .kiln()
            .arg("--root")
            .arg(store)
            .args(["--storage-driver", other, "info"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{other} on a store of {made} worked");
        assert!(
            err.contains(&format!("were made with {made}")) && err.contains("--storage-driver"),
            "{err}"
        );
    }
    assert!(fuse_daemons(user.home.path()).is_empty());
}

#[test]
fn a_killed_fuse_overlayfs_build_leaves_no_daemon_and_the_store_works_after() {
    let test = "a_killed_fuse_overlayfs_build_leaves_no_daemon_and_the_store_works_after";
    let Some(user) = user(test) else {
        return;
    };
    if !fuse_required(test) {
        return;
    }
    let ctx = user.dir("killed");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN touch /started && sleep 613\n",
    )
    .unwrap();
    std::fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
    user.give(&ctx);
    let store = user.dir("store");
    let mut cmd = user.kiln_process();
    cmd.arg("--root")
        .arg(&store)
        .args([
            "--storage-driver",
            "fuse-overlayfs",
            "build",
            "--progress",
            "plain",
        ])
        .arg(&ctx)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut outer = cmd.spawn().unwrap();
    // The sleeping step runs on a fuse-overlayfs mount.
    let start = Instant::now();
    let sleeping = loop {
        let found = std::fs::read_dir("/proc").unwrap().flatten().find(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c.starts_with(b"sleep\x00613"))
        });
        if let Some(e) = found {
            break e.file_name();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the step never started"
        );
        assert!(outer.try_wait().unwrap().is_none(), "the build ended early");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!fuse_daemons(user.home.path()).is_empty());
    // SIGKILL to kiln inside its user namespace (the outer process only waits for it).
    let inner: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    .is_some_and(|ppid| ppid == outer.id().to_string())
            })
        })
        .collect();
    assert_eq!(inner.len(), 1, "kiln's inner process: {inner:?}");
    // SAFETY: kill(2) on a process this test started.
    assert_eq!(unsafe { libc::kill(inner[0] as i32, libc::SIGKILL) }, 0);
    let _ = outer.wait();
    let start = Instant::now();
    while !fuse_daemons(user.home.path()).is_empty() || Path::new("/proc").join(&sleeping).exists()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "left behind: fuse-overlayfs {:?}, step alive: {}",
            fuse_daemons(user.home.path()),
            Path::new("/proc").join(&sleeping).exists()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The store works after, and the killed build's entries are cleaned.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN rm /bin/ls\n",
    )
    .unwrap();
    user.give(&ctx);
    let out = user
        .kiln()
        .arg("--root")
        .arg(&store)
        .args(["--storage-driver", "fuse-overlayfs", "build"])
        .arg(&ctx)
        .output()
        .unwrap();
    common::assert_ok(&out);
    let tmp = store.join("kiln/snapshots/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(fuse_daemons(user.home.path()).is_empty());
}

/// `--runtime runc` rootless: runc runs inside kiln's user namespace, where it is root, finds
/// itself in a user namespace and runs rootless (no cgroup unless delegated); steps create files
/// of other owners and drop to `USER`, and `kiln run --runtime runc` runs the image. On the
/// fuse-overlayfs snapshotter, so that runc's rootfs is a fuse mount.
#[test]
fn runc_runs_steps_and_images_rootless() {
    let test = "runc_runs_steps_and_images_rootless";
    let Some(user) = user(test) else {
        return;
    };
    if !fuse_required(test) {
        return;
    }
    let Some(runc) = ["/usr/sbin/runc", "/usr/bin/runc", "/sbin/runc"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        assert!(
            std::env::var_os("KILN_REQUIRE_RUNC").is_none_or(|v| v != "1"),
            "{test}: KILN_REQUIRE_RUNC=1 but runc is not installed"
        );
        eprintln!("skipping {test}: runc is not installed");
        return;
    };
    let ctx = user.dir("runc");
    std::fs::write(
        ctx.join("Dockerfile"),
        r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /d && echo 'app:x:1234:1234::/:/bin/sh' > /etc/passwd && chown 1234:1234 /d && rm /bin/ls
USER app
RUN id -u > /d/uid && touch /d/mine
CMD ["sh", "-c", "id -u; stat -c '%u:%g' /d /d/mine; cat /d/uid"]
"#,
    )
    .unwrap();
    std::fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
    user.give(&ctx);
    let store = user.dir("store-runc");
    let out = user
        .kiln()
        .arg("--root")
        .arg(&store)
        .args([
            "--storage-driver",
            "fuse-overlayfs",
            "build",
            "-t",
            "runc:1",
        ])
        .args(["--runtime", runc])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = user
        .kiln()
        .arg("--root")
        .arg(&store)
        .args(["run", "--rm", "--runtime", runc, "runc:1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1234\n1234:1234\n1234:1234\n1234\n"
    );
    assert!(fuse_daemons(user.home.path()).is_empty());
}
