//! Isolation tests for both executors: one list of cases, run against the built-in sandbox (with
//! the `kiln-sandbox` helper binary) and against runc when it is installed.
//!
//! They need root; see `common::privileged` for the gating.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_builder_core::exec::{
    ExecError, Executor, ExitStatus, Mount, NetworkMode, OutputSink, RunResult, RunSpec, Stdin,
    Stream, User,
};

/// A busybox rootfs and a state directory for one test.
struct Env {
    rootfs: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let rootfs = tempfile::tempdir().unwrap();
        common::busybox_rootfs(rootfs.path());
        Env {
            rootfs,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn spec(&self, script: &str) -> RunSpec {
        let mut spec = RunSpec::new(
            self.rootfs.path(),
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        );
        spec.hostname = "kiln-test".into();
        spec
    }

    fn root(&self) -> &Path {
        self.rootfs.path()
    }
}

#[derive(Default, Clone)]
struct Captured(Arc<Mutex<(Vec<u8>, Vec<u8>)>>);

impl Captured {
    fn sink(&self) -> OutputSink {
        let c = self.0.clone();
        OutputSink::new(move |s, b| {
            let mut g = c.lock().unwrap();
            match s {
                Stream::Stdout => g.0.extend_from_slice(b),
                Stream::Stderr => g.1.extend_from_slice(b),
            }
        })
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().0).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().1).into_owned()
    }
}

async fn run(exec: &dyn Executor, spec: RunSpec) -> (Result<RunResult, ExecError>, Captured) {
    let cap = Captured::default();
    let r = exec.run(spec, cap.sink()).await;
    (r, cap)
}

async fn run_ok(exec: &dyn Executor, spec: RunSpec) -> (ExitStatus, String, String) {
    let (r, cap) = run(exec, spec).await;
    let r = r.unwrap_or_else(|e| panic!("{}: {e}", exec.name()));
    (r.status, cap.stdout(), cap.stderr())
}

type MakeExec = fn(&Env) -> Option<Box<dyn Executor>>;

fn sandbox(env: &Env) -> Option<Box<dyn Executor>> {
    Some(Box::new(kiln_builder_core::exec::SandboxExecutor::new(
        kiln_builder_core::exec::SandboxConfig::new(env.state.path())
            .with_helper(env!("CARGO_BIN_EXE_kiln-sandbox")),
    )))
}

fn runc(env: &Env) -> Option<Box<dyn Executor>> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("runc").is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var_os("KILN_REQUIRE_RUNC").is_some_and(|v| v == "1") {
            panic!("KILN_REQUIRE_RUNC=1 but runc is not in PATH");
        }
        eprintln!("skipping: runc is not installed");
        return None;
    }
    Some(Box::new(kiln_builder_core::exec::RuncExecutor::new(
        kiln_builder_core::exec::RuncConfig::new(env.state.path()),
    )))
}

mod cases {
    use super::*;

    pub async fn output_and_exit_code(exec: &dyn Executor, env: &Env) {
        let (status, out, err) = run_ok(exec, env.spec("echo out; echo err >&2; exit 3")).await;
        assert_eq!(status, ExitStatus::Code(3));
        assert_eq!(out, "out\n");
        assert_eq!(err, "err\n");
        // runc runs the command as PID 1, which ignores SIGKILL from inside its namespace; the
        // sandbox runs it under a reaper, as an ordinary process.
        if exec.name() == "sandbox" {
            let (status, _, _) = run_ok(exec, env.spec("kill -9 $$")).await;
            assert_eq!(status, ExitStatus::Signal(9));
        }
    }

    pub async fn own_hostname(exec: &dyn Executor, env: &Env) {
        let (status, out, _) = run_ok(exec, env.spec("hostname; cat /etc/hosts")).await;
        assert!(status.success());
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("kiln-test"));
        assert_ne!(host, "kiln-test");
        assert!(out.contains("127.0.0.1\tlocalhost kiln-test"), "{out}");
    }

    pub async fn host_files_invisible(exec: &dyn Executor, env: &Env) {
        let host_dir = tempfile::tempdir().unwrap();
        let sentinel = host_dir.path().join("sentinel");
        std::fs::write(&sentinel, "host secret").unwrap();
        let script = format!(
            "cat {s} 2>/dev/null && echo VISIBLE; ls / | sort | tr '\\n' ' '",
            s = sentinel.display()
        );
        let (status, out, _) = run_ok(exec, env.spec(&script)).await;
        assert!(status.success());
        assert!(!out.contains("VISIBLE"), "{out}");
        assert!(!out.contains("host secret"), "{out}");
        assert!(out.contains("bin") && !out.contains("usr"), "{out}");
    }

    pub async fn host_processes_invisible(exec: &dyn Executor, env: &Env) {
        let (status, out, _) = run_ok(
            exec,
            env.spec("ls /proc | grep -c '^[0-9]'; ps -o pid,comm"),
        )
        .await;
        assert!(status.success(), "{out}");
        let count: usize = out.lines().next().unwrap().trim().parse().unwrap();
        assert!(count <= 4, "sees {count} processes:\n{out}");
        let me = std::process::id().to_string();
        assert!(
            !out.lines()
                .skip(1)
                .any(|l| l.split_whitespace().next() == Some(&me)),
            "{out}"
        );
    }

    pub async fn background_process_dies_with_step(exec: &dyn Executor, env: &Env) {
        let marker = 900000 + (std::process::id() % 1000) * 7 + 1;
        let script = format!("sleep {marker} & sleep {marker} & echo started");
        let (status, out, _) = run_ok(exec, env.spec(&script)).await;
        assert!(status.success());
        assert_eq!(out, "started\n");
        // Killing is done by the time the run returns; allow a moment for the runtime's bookkeeping.
        for _ in 0..20 {
            if !common::host_process_with(&format!("sleep {marker}")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("background `sleep {marker}` survived the step");
    }

    pub async fn network_none_has_only_loopback(exec: &dyn Executor, env: &Env) {
        let (status, out, _) = run_ok(
            exec,
            env.spec("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ip link show lo"),
        )
        .await;
        assert!(status.success(), "{out}");
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("lo"), "{out}");
        let rest: String = lines.collect::<Vec<_>>().join("\n");
        assert!(rest.contains("lo:") && rest.contains("UP"), "{out}");
    }

    pub async fn host_network_sees_host_interfaces(exec: &dyn Executor, env: &Env) {
        let mut spec = env.spec("tail -n +3 /proc/net/dev | wc -l");
        spec.network = NetworkMode::Host;
        let host_ifaces = std::fs::read_to_string("/proc/net/dev")
            .unwrap()
            .lines()
            .count()
            - 2;
        let (status, out, _) = run_ok(exec, spec).await;
        assert!(status.success());
        assert_eq!(out.trim(), host_ifaces.to_string());
    }

    pub async fn hostile_hosts_symlink_stays_inside(exec: &dyn Executor, env: &Env) {
        let host_dir = tempfile::tempdir().unwrap();
        let host_hosts = host_dir.path().join("hosts");
        std::fs::write(&host_hosts, "HOST CONTENT\n").unwrap();
        std::os::unix::fs::symlink(&host_hosts, env.root().join("etc/hosts")).unwrap();
        let missing = host_dir.path().join("resolv-missing");
        std::os::unix::fs::symlink(&missing, env.root().join("etc/resolv.conf")).unwrap();
        let (status, out, _) = run_ok(exec, env.spec("cat /etc/hosts")).await;
        assert!(status.success());
        assert!(out.contains("localhost kiln-test"), "{out}");
        assert!(!out.contains("HOST CONTENT"), "{out}");
        assert_eq!(
            std::fs::read_to_string(&host_hosts).unwrap(),
            "HOST CONTENT\n"
        );
        assert!(!missing.exists(), "a file was created on the host");
        // The image's links are untouched and the stubs made at their targets are gone.
        assert!(env.root().join("etc/hosts").is_symlink());
        let inside = env.root().join(host_hosts.strip_prefix("/").unwrap());
        assert!(!inside.exists());
    }

    pub async fn env_cwd_user_applied(exec: &dyn Executor, env: &Env) {
        std::fs::create_dir_all(env.root().join("work")).unwrap();
        let mut spec = RunSpec::new(env.root(), vec!["env".into()]);
        spec.env = vec![
            ("PATH".into(), "/bin".into()),
            ("FOO".into(), "bar baz".into()),
        ];
        let (status, out, _) = run_ok(exec, spec.clone()).await;
        assert!(status.success());
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort();
        // HOME is added as runc (and so Docker) does: from /etc/passwd, else `/`.
        assert_eq!(lines, vec!["FOO=bar baz", "HOME=/", "PATH=/bin"]);

        spec.argv = vec![
            "sh".into(),
            "-c".into(),
            "pwd; id -u; id -g; id -G; grep CapEff /proc/self/status".into(),
        ];
        spec.cwd = "/work".into();
        spec.user = User {
            uid: 1000,
            gid: 1001,
            additional_gids: vec![1001, 1002],
        };
        let (status, out, _) = run_ok(exec, spec.clone()).await;
        assert!(status.success(), "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[..3], ["/work", "1000", "1001"], "{out}");
        assert_eq!(lines[3], "1001 1002", "{out}");
        assert!(lines[4].ends_with("0000000000000000"), "{out}");

        spec.user = User::default();
        spec.argv = vec![
            "grep".into(),
            "Cap[EB][fn][fd]".into(),
            "/proc/self/status".into(),
        ];
        let (_, out, _) = run_ok(exec, spec).await;
        // Docker's default capability set, nothing more.
        assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
        assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    }

    pub async fn stdin_bytes(exec: &dyn Executor, env: &Env) {
        let mut spec = env.spec("cat; echo; cat </dev/null; echo done");
        spec.stdin = Stdin::Bytes(b"from stdin".to_vec());
        let (status, out, _) = run_ok(exec, spec).await;
        assert!(status.success());
        assert_eq!(out, "from stdin\ndone\n");
    }

    pub async fn missing_executable_is_an_error(exec: &dyn Executor, env: &Env) {
        let spec = RunSpec::new(env.root(), vec!["no-such-program".into()]);
        let (r, _) = run(exec, spec).await;
        let e = r.expect_err("ran a missing program");
        assert!(e.to_string().contains("no-such-program"), "{e}");
        let mut spec = env.spec("true");
        spec.cwd = "/missing".into();
        let (r, _) = run(exec, spec).await;
        let e = r.expect_err("ran in a missing directory");
        assert!(e.to_string().contains("/missing"), "{e}");
    }

    pub async fn timeout_kills_everything(exec: &dyn Executor, env: &Env) {
        let marker = 800000 + (std::process::id() % 1000) * 7 + 2;
        let mut spec = env.spec(&format!("sleep {marker} & sleep {marker}"));
        spec.timeout = Some(Duration::from_millis(700));
        let (r, _) = run(exec, spec).await;
        assert!(matches!(r, Err(ExecError::Timeout { .. })), "{r:?}");
        for _ in 0..40 {
            if !common::host_process_with(&format!("sleep {marker}")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`sleep {marker}` survived the timeout");
    }

    pub async fn cancel_by_drop_kills_everything(exec: &dyn Executor, env: &Env) {
        let marker = 700000 + (std::process::id() % 1000) * 7 + 3;
        let spec = env.spec(&format!("sleep {marker} & sleep {marker}"));
        let fut = exec.run(spec, OutputSink::discard());
        let r = tokio::time::timeout(Duration::from_millis(700), fut).await;
        assert!(r.is_err(), "finished early: {r:?}");
        for _ in 0..60 {
            if !common::host_process_with(&format!("sleep {marker}")) {
                assert!(!env.root().join("proc").exists(), "stub left behind");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`sleep {marker}` survived cancellation");
    }

    pub async fn extra_mounts_and_no_leftovers(exec: &dyn Executor, env: &Env) {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("file"), "context file").unwrap();
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "s3cret").unwrap();
        let mut spec = env.spec(
            "cat /mnt/ctx/file; echo; touch /mnt/ctx/new 2>/dev/null && echo WROTE; \
             echo x > /cache/f && cat /cache/f; cat /run/secrets/token; echo; \
             echo 3 > /proc/sys/vm/drop_caches 2>/dev/null && echo SYSCTL; \
             touch /sys/x 2>/dev/null && echo SYS; \
             echo kept > /tmp/out",
        );
        spec.mounts = vec![
            Mount::Bind {
                source: ctx.path().to_path_buf(),
                target: "/mnt/ctx".into(),
                readonly: true,
            },
            Mount::Tmpfs {
                target: "/cache".into(),
                size: Some(1 << 20),
            },
            Mount::Secret {
                source: secret.path().to_path_buf(),
                target: "/run/secrets/token".into(),
            },
        ];
        let before = listing(env.root());
        let (status, out, err) = run_ok(exec, spec).await;
        assert!(status.success(), "{out}{err}");
        assert_eq!(out, "context file\nx\ns3cret\n", "{err}");
        assert!(!ctx.path().join("new").exists());
        // Only the step's own write remains: no mount points, no /etc/hosts, no secret.
        let mut after = listing(env.root());
        after.retain(|p| p != Path::new("tmp/out"));
        assert_eq!(before, after);
        assert_eq!(
            std::fs::read_to_string(env.root().join("tmp/out")).unwrap(),
            "kept\n"
        );
    }

    fn listing(root: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = walkdir::WalkDir::new(root)
            .into_iter()
            .flatten()
            .map(|e| e.path().strip_prefix(root).unwrap().to_path_buf())
            .collect();
        v.sort();
        v
    }
}

macro_rules! suite {
    ($exec:ident: $($case:ident),* $(,)?) => {
        suite!($exec in cases: $($case),*);
    };
    ($exec:ident in $cases:ident: $($case:ident),* $(,)?) => {
        mod $exec {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    if !common::privileged(stringify!($case)) {
                        return;
                    }
                    let env = Env::new();
                    let Some(exec) = (super::$exec as MakeExec)(&env) else { return };
                    super::$cases::$case(exec.as_ref(), &env).await;
                }
            )*
        }
    };
}

macro_rules! both {
    (in $cases:ident: $($case:ident),* $(,)?) => {
        suite!(sandbox in $cases: $($case),*);
        suite!(runc in $cases: $($case),*);
    };
    ($($case:ident),* $(,)?) => {
        both!(in cases: $($case),*);
    };
}

both!(
    output_and_exit_code,
    own_hostname,
    host_files_invisible,
    host_processes_invisible,
    background_process_dies_with_step,
    network_none_has_only_loopback,
    host_network_sees_host_interfaces,
    hostile_hosts_symlink_stays_inside,
    env_cwd_user_applied,
    stdin_bytes,
    missing_executable_is_an_error,
    timeout_kills_everything,
    cancel_by_drop_kills_everything,
    extra_mounts_and_no_leftovers,
);

#[path = "exec/lifecycle.rs"]
mod lifecycle;

#[path = "exec/boundary.rs"]
mod boundary;
