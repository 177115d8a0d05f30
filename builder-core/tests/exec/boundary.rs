//! The sandbox as a security boundary: host devices, the system-call filter, the signal state a
//! step starts with, and what `--security=insecure` lifts. Both executors.

use super::*;

mod cases {
    use super::*;
    use kiln_builder_core::exec::Security;

    /// A loop device over a file holding a marker, detached again on drop.
    struct Loop {
        dev: String,
        _file: tempfile::NamedTempFile,
    }

    const MARKER: &str = "HOST-DISK-MARKER-7f3a";

    impl Loop {
        fn new() -> Self {
            let file = tempfile::NamedTempFile::new().unwrap();
            let mut data = MARKER.as_bytes().to_vec();
            data.resize(1 << 20, 0);
            std::fs::write(file.path(), &data).unwrap();
            let out = std::process::Command::new("losetup")
                .args(["--find", "--show"])
                .arg(file.path())
                .output()
                .expect("losetup (util-linux)");
            assert!(out.status.success(), "losetup: {out:?}");
            let dev = String::from_utf8(out.stdout).unwrap().trim().to_owned();
            Loop { dev, _file: file }
        }

        /// `(major, minor)` of the device.
        fn numbers(&self) -> (u64, u64) {
            use std::os::unix::fs::MetadataExt;
            let rdev = std::fs::metadata(&self.dev).unwrap().rdev();
            (libc::major(rdev) as u64, libc::minor(rdev) as u64)
        }
    }

    impl Drop for Loop {
        fn drop(&mut self) {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &self.dev])
                .status();
        }
    }

    /// Python from the host, reachable in the rootfs through read-only binds of `/usr` (and the
    /// merged-usr links), to make raw system calls with `ctypes`.
    fn with_host_python(env: &Env, spec: &mut RunSpec) {
        for link in ["lib", "lib64"] {
            let p = env.root().join(link);
            if !p.exists() && Path::new("/").join(link).exists() {
                std::os::unix::fs::symlink(format!("usr/{link}"), p).unwrap();
            }
        }
        std::fs::create_dir_all(env.root().join("usr")).unwrap();
        spec.mounts.push(Mount::Bind {
            source: "/usr".into(),
            target: "/usr".into(),
            readonly: true,
        });
    }

    /// Calls each system call with harmless arguments and prints `name result errno`.
    const SYSCALLS_PY: &str = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
nr = {
    "x86_64": dict(keyctl=250, add_key=248, request_key=249, bpf=321, perf_event_open=298,
                   unshare=272, clone3=435, personality=135, socket=41, getpid=39),
    "aarch64": dict(keyctl=219, add_key=217, request_key=218, bpf=280, perf_event_open=241,
                    unshare=97, clone3=435, personality=92, socket=198, getpid=172),
}[os.uname().machine]
def call(label, name, *args):
    ctypes.set_errno(0)
    r = libc.syscall(nr[name], *[ctypes.c_long(a) for a in args])
    print(label, r, ctypes.get_errno() if r < 0 else 0)
call("keyctl", "keyctl", 0, -3, 0)              # KEYCTL_GET_KEYRING_ID of the session keyring
call("add_key", "add_key", 0, 0, 0, 0, 0)
call("request_key", "request_key", 0, 0, 0, 0)
call("bpf", "bpf", 0, 0, 0)
call("perf_event_open", "perf_event_open", 0, 0, -1, -1, 0)
call("unshare_user", "unshare", 0x10000000)     # CLONE_NEWUSER
call("unshare_net", "unshare", 0x40000000)      # CLONE_NEWNET
call("unshare_fs", "unshare", 0x200)            # CLONE_FS: no namespace, allowed
call("clone3", "clone3", 0, 0)
call("personality_query", "personality", 0xffffffff)
call("personality_bad", "personality", 0x0400000)  # READ_IMPLIES_EXEC
call("socket_vsock", "socket", 40, 1, 0)
call("getpid", "getpid")
"#;

    fn results(out: &str) -> std::collections::BTreeMap<String, (i64, i64)> {
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let name = w.next()?.to_owned();
                let r = w.next()?.parse().ok()?;
                let e = w.next()?.parse().ok()?;
                Some((name, (r, e)))
            })
            .collect()
    }

    pub async fn host_devices_cannot_be_opened(exec: &dyn Executor, env: &Env) {
        let disk = Loop::new();
        let (major, minor) = disk.numbers();
        // Creating the nodes works (layers keep device nodes, as Docker's do); opening them must not,
        // wherever they are made: the rootfs, the `/dev` tmpfs, a bind-mounted directory.
        let scratch = tempfile::tempdir().unwrap();
        let mut spec = env.spec(&format!(
            "for d in /tmp/disk /dev/disk /mnt/disk; do \
           mknod $d b {major} {minor} && echo MADE $d; \
           head -c 64 $d 2>&1; echo; \
           echo overwrite 2>&1 > $d; \
         done; \
         mknod /tmp/mem c 1 1 && head -c 1 /tmp/mem >/dev/null 2>&1 && echo MEM-OPENED; \
         echo ok > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c"
        ));
        spec.mounts.push(Mount::Bind {
            source: scratch.path().to_path_buf(),
            target: "/mnt".into(),
            readonly: false,
        });
        let (status, out, err) = run_ok(exec, spec).await;
        assert!(status.success(), "{out}{err}");
        assert!(!out.contains(MARKER), "a step read the host's disk:\n{out}");
        assert!(!out.contains("MEM-OPENED"), "{out}");
        for d in ["/tmp/disk", "/dev/disk", "/mnt/disk"] {
            assert!(
                out.contains(&format!("MADE {d}")),
                "{d} not created:\n{out}\n{err}"
            );
        }
        // The standard devices still work.
        assert!(out.ends_with("4\n4\n"), "{out}{err}");
        let mut head = vec![0u8; MARKER.len()];
        use std::io::Read;
        std::fs::File::open(&disk.dev)
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        assert_eq!(head, MARKER.as_bytes(), "the host's disk was written to");
    }

    pub async fn system_calls_are_filtered(exec: &dyn Executor, env: &Env) {
        let mut spec = RunSpec::new(
            env.root(),
            vec!["/usr/bin/python3".into(), "-c".into(), SYSCALLS_PY.into()],
        );
        with_host_python(env, &mut spec);
        let (status, out, err) = run_ok(exec, spec).await;
        assert!(status.success(), "{out}{err}");
        let r = results(&out);
        const EPERM: i64 = 1;
        for call in [
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "unshare_user",
            "unshare_net",
            "personality_bad",
            "socket_vsock",
        ] {
            assert_eq!(r.get(call), Some(&(-1, EPERM)), "{call}:\n{out}{err}");
        }
        assert_eq!(r.get("unshare_fs"), Some(&(0, 0)), "{out}");
        // ENOSYS, so the C library falls back to clone(2), whose flags the filter sees.
        assert_eq!(r.get("clone3"), Some(&(-1, 38)), "{out}");
        assert!(
            r.get("personality_query").is_some_and(|(v, _)| *v >= 0),
            "{out}"
        );
        assert!(r.get("getpid").is_some_and(|(v, _)| *v > 0), "{out}");

        // The filter is in force for the whole tree, and no_new_privs stays off (as in Docker).
        let (_, out, _) = run_ok(
            exec,
            env.spec("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"),
        )
        .await;
        assert!(out.contains("Seccomp:\t2"), "{out}");
        assert!(out.contains("NoNewPrivs:\t0"), "{out}");
        let (status, out, err) = run_ok(exec, env.spec("unshare -U true; echo rc=$?")).await;
        assert!(status.success());
        assert!(out.contains("rc=1") || !out.contains("rc=0"), "{out}{err}");
    }

    pub async fn signals_start_at_their_defaults(exec: &dyn Executor, env: &Env) {
        // Straight from exec, not through a shell (busybox sh ignores SIGQUIT itself).
        let spec = RunSpec::new(
            env.root(),
            vec![
                "/bin/grep".into(),
                "-E".into(),
                "^(SigIgn|SigBlk):".into(),
                "/proc/self/status".into(),
            ],
        );
        let (status, out, err) = run_ok(exec, spec).await;
        assert!(status.success(), "{err}");
        let ignored = out
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:\t"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        // runc leaves the C library's own real-time signals (32, 33) as it found them.
        let mask = if exec.name() == "runc" {
            0x7fff_ffff
        } else {
            u64::MAX
        };
        assert_eq!(ignored & mask, 0, "{out}");
        assert!(out.contains("SigBlk:\t0000000000000000"), "{out}");
        // A writer into a closed pipe dies of SIGPIPE quietly, as under Docker.
        let (_, out, err) = run_ok(exec, env.spec("yes | head -c 1 >/dev/null; echo done")).await;
        assert_eq!(out, "done\n");
        assert!(!err.contains("Broken pipe"), "{err}");
    }

    pub async fn insecure_lifts_the_filter_and_keeps_the_namespaces(
        exec: &dyn Executor,
        env: &Env,
    ) {
        let mut spec = env.spec(
        "grep -E '^(Seccomp|CapEff):' /proc/self/status; unshare -U true && echo UNSHARED; hostname",
    );
        spec.security = Security::Insecure;
        let (status, out, err) = run_ok(exec, spec).await;
        assert!(status.success(), "{out}{err}");
        assert!(out.contains("Seccomp:\t0"), "{out}");
        assert!(out.contains("UNSHARED"), "{out}{err}");
        let cap_eff = out
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:\t"))
            .unwrap();
        let caps = u64::from_str_radix(cap_eff.trim(), 16).unwrap();
        assert_ne!(caps & (1 << 21), 0, "no CAP_SYS_ADMIN: {out}");
        assert_eq!(out.lines().last(), Some("kiln-test"));
    }

    pub async fn private_network_is_its_own_with_a_way_out(exec: &dyn Executor, env: &Env) {
        if !kiln_builder_core::exec::user_mode_available() {
            if std::env::var_os("KILN_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
                panic!("slirp4netns is not installed");
            }
            return;
        }
        let mut spec =
            env.spec("cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort; ip route");
        spec.network = NetworkMode::Private;
        let (status, out, err) = run_ok(exec, spec).await;
        assert!(status.success(), "{out}{err}");
        assert!(out.starts_with("lo\ntap0\n"), "{out}");
        assert!(out.contains("default via 10.0.2.2 dev tap0"), "{out}");
    }
}

both!(in cases:
    host_devices_cannot_be_opened,
    system_calls_are_filtered,
    signals_start_at_their_defaults,
    insecure_lifts_the_filter_and_keeps_the_namespaces,
    private_network_is_its_own_with_a_way_out,
);
