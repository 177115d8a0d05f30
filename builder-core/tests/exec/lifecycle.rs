//! The sandbox's cost, its work in a snapshot, rootless runs, and what happens when kiln dies.

use super::*;

/// Per-RUN overhead of `RUN true` with the built-in sandbox (mean of 50 runs). Run with
/// `cargo test --release -p kiln-builder-core --test exec -- --ignored --nocapture overhead`.
#[tokio::test]
#[ignore = "timing, not a check"]
async fn overhead() {
    if !common::privileged("overhead") {
        return;
    }
    let env = Env::new();
    for (name, make) in [("sandbox", sandbox as MakeExec), ("runc", runc as MakeExec)] {
        let Some(exec) = make(&env) else { continue };
        let spec = RunSpec::new(env.root(), vec!["/bin/true".into()]);
        // Warm up caches.
        run_ok(exec.as_ref(), spec.clone()).await;
        let n = 50;
        let start = std::time::Instant::now();
        for _ in 0..n {
            let (status, _, _) = run_ok(exec.as_ref(), spec.clone()).await;
            assert!(status.success());
        }
        let mean = start.elapsed() / n;
        println!("{name}: RUN true mean over {n} runs: {mean:?}");
    }
}

/// A RUN in a snapshot leaves exactly its own writes as changes: no mount points, no generated
/// files, no parent directory touched by them. Both snapshotters, built-in sandbox.
#[tokio::test]
async fn run_in_snapshot_changes_only_what_the_step_wrote() {
    use kiln_builder_core::testing::internals::{
        Change, CopySnapshotter, OverlaySnapshotter, Snapshotter,
    };
    if !common::privileged("run_in_snapshot_changes_only_what_the_step_wrote") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snapshotters: Vec<Box<dyn Snapshotter>> = vec![
        Box::new(OverlaySnapshotter::open(dir.path().join("overlay")).unwrap()),
        Box::new(CopySnapshotter::open(dir.path().join("copy")).unwrap()),
    ];
    let env = Env::new();
    let exec = sandbox(&env).unwrap();
    for s in snapshotters {
        s.import("busybox", None, &mut |root, _| {
            common::busybox_rootfs(root.path());
            Ok(())
        })
        .unwrap();
        let active = s.prepare(Some("busybox")).unwrap();
        let mut spec = RunSpec::new(
            active.root(),
            vec![
                "sh".into(),
                "-c".into(),
                "echo hi > /tmp/out; cat /etc/hosts >/dev/null".into(),
            ],
        );
        spec.mounts.push(Mount::Tmpfs {
            target: "/var/cache/x".into(),
            size: None,
        });
        let (status, _, err) = run_ok(exec.as_ref(), spec).await;
        assert!(status.success(), "{err}");
        assert_eq!(
            s.changes(&active).unwrap(),
            vec![
                Change::Upsert("tmp".into()),
                Change::Upsert("tmp/out".into())
            ],
            "{}",
            s.name()
        );
    }
}

/// Rootless mode: the helper started as an unprivileged user maps it to root in a user namespace
/// and still sets up every namespace and mount. Speaks the helper protocol directly, since the
/// executor has no way to drop privileges before starting it.
#[test]
fn rootless_helper_runs_as_mapped_root() {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    if !common::privileged("rootless_helper_runs_as_mapped_root") {
        return;
    }
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rootfs = dir.path().join("rootfs");
    common::busybox_rootfs(&rootfs);
    for d in ["proc", "dev", "sys"] {
        std::fs::create_dir(rootfs.join(d)).unwrap();
    }
    for f in ["etc/hosts", "etc/resolv.conf"] {
        std::fs::write(rootfs.join(f), "").unwrap();
    }
    for e in walkdir::WalkDir::new(&rootfs) {
        std::os::unix::fs::lchown(e.unwrap().path(), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let spec = serde_json::json!({
        "run": {
            "argv": ["/bin/sh", "-c", "id -u; hostname; cat /proc/self/uid_map; ls /proc | grep -c '^[0-9]'"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0, "additional_gids": []},
            "hostname": "rootless",
            "network": "None",
            "security": "Sandbox",
            "rootfs": rootfs,
            "init": true,
            "settings": {"extra_hosts": [], "shm_size": null, "ulimits": []},
        },
        "env": ["PATH=/bin"],
        "mounts": [],
    });
    let (child, ours) = spawn_helper(&spec, Some(NOBODY));
    let mut reports = String::new();
    (&ours).read_to_string(&mut reports).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if reports.contains("unshare user namespace") {
        eprintln!("skipping: unprivileged user namespaces are disabled here: {reports}");
        return;
    }
    assert!(reports.contains(r#"{"Exit":{"Code":0}}"#), "{reports}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "0", "{stdout}");
    assert_eq!(lines[1], "rootless");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["0", "65534", "1"]
    );
    assert!(lines[3].trim().parse::<u32>().unwrap() <= 4, "{stdout}");
}

/// Starts the `kiln-sandbox` helper with `spec` on its control socket, optionally as another user,
/// and returns it with the executor's end of the socket.
fn spawn_helper(
    spec: &serde_json::Value,
    as_user: Option<u32>,
) -> (std::process::Child, std::os::unix::net::UnixStream) {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let raw = theirs.as_raw_fd();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kiln-sandbox"));
    cmd.env_clear()
        .env("KILN_SANDBOX_HELPER", "2")
        .stdout(std::process::Stdio::piped());
    // SAFETY: async-signal-safe calls only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // When the socket already is descriptor 3, dup2 would be a no-op that leaves
            // close-on-exec set, and the helper would start without its control socket.
            let moved = if raw == 3 {
                libc::fcntl(raw, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if moved < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(id) = as_user
                && (libc::setgroups(0, std::ptr::null()) < 0
                    || libc::setgid(id) < 0
                    || libc::setuid(id) < 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(theirs);
    (&ours).write_all(spec.to_string().as_bytes()).unwrap();
    ours.shutdown(std::net::Shutdown::Write).unwrap();
    (child, ours)
}

/// When kiln itself dies (its end of the control socket closes), the helper kills the step.
#[test]
fn helper_kills_the_step_when_kiln_dies() {
    if !common::privileged("helper_kills_the_step_when_kiln_dies") {
        return;
    }
    let env = Env::new();
    for d in ["proc", "dev", "sys"] {
        std::fs::create_dir(env.root().join(d)).unwrap();
    }
    for f in ["etc/hosts", "etc/resolv.conf"] {
        std::fs::write(env.root().join(f), "").unwrap();
    }
    let marker = 600000 + (std::process::id() % 1000) * 7 + 4;
    let spec = serde_json::json!({
        "run": {
            "argv": ["/bin/sh", "-c", format!("sleep {marker} & sleep {marker}")],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0, "additional_gids": []},
            "hostname": "orphan",
            "network": "None",
            "security": "Sandbox",
            "rootfs": env.root(),
            "init": true,
            "settings": {"extra_hosts": [], "shm_size": null, "ulimits": []},
        },
        "env": ["PATH=/bin"],
        "mounts": [],
    });
    let (mut child, ours) = spawn_helper(&spec, None);
    for _ in 0..100 {
        if common::host_process_with(&format!("sleep {marker}")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        common::host_process_with(&format!("sleep {marker}")),
        "step did not start"
    );
    drop(ours);
    let mut status = None;
    for _ in 0..100 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("the helper kept running after its executor went away");
    };
    assert!(!status.success());
    for _ in 0..40 {
        if !common::host_process_with(&format!("sleep {marker}")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("`sleep {marker}` survived its helper's executor");
}
