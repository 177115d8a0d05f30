//! Robustness of `kiln build` through the binary: builds killed with SIGKILL at different moments
//! followed by a build that must succeed on the same store, concurrent builds on one store, the
//! isolation of RUN steps as a build sees it, and the confinement of COPY and ADD to the rootfs.
//! Every test checks the store afterwards: blobs hash to their names, `index.json` parses, no
//! temp files, mounts or sandbox processes are left behind.
//! These need root; with `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing capability fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Std, Stdio};
use std::time::{Duration, Instant};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, tool, try_build};

/// A build context holding the static busybox and `dockerfile`.
fn context(dockerfile: &str) -> tempfile::TempDir {
    common::context_with(&[("Dockerfile", dockerfile)])
}

/// Unpacks and runs `name`; returns its stdout.
fn run_image(root: &Path, name: &str) -> String {
    common::run_image(root, name).0
}

/// Builds and exports the image's root filesystem to a fresh directory.
fn build_rootfs(root: &Path, ctx: &Path, extra: &[&str]) -> (tempfile::TempDir, String) {
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs");
    let mut args = extra.to_vec();
    let output = format!("type=local,dest={}", dest.display());
    args.extend(["--output", &output]);
    let (_, stderr) = build(root, ctx, &args);
    (out, stderr)
}

// ---- store and host checks -------------------------------------------------------------------

/// Every file under `dir`, recursively (symlinks not followed).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out);
        }
        out.push(p);
    }
}

/// The store is consistent: every blob hashes to its name, `index.json` parses and each tagged
/// manifest's blobs are present, no temp file or temp snapshot is left, nothing is mounted under
/// `root` and no sandbox process survives.
fn assert_store_consistent(root: &Path) {
    assert_store_consistent_but(root, false);
}

/// [`assert_store_consistent`], optionally tolerating per-run state directories (`kiln/run/`).
fn assert_store_consistent_but(root: &Path, tolerate_run_dirs: bool) {
    let blobs = root.join("blobs/sha256");
    let names: Vec<PathBuf> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!names.is_empty(), "the store has blobs");
    for chunk in names.chunks(64) {
        let out = Std::new("sha256sum").args(chunk).output().unwrap();
        assert!(out.status.success());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (hash, path) = line.split_once("  ").unwrap();
            let name = Path::new(path).file_name().unwrap().to_string_lossy();
            assert_eq!(hash, name, "blob {path} hashes to its name");
        }
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap())
            .expect("index.json parses");
    for m in index["manifests"].as_array().unwrap() {
        let digest = m["digest"].as_str().unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blobs.join(hex)).unwrap()).unwrap();
        let mut wanted = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
        for l in manifest["layers"].as_array().unwrap() {
            wanted.push(l["digest"].as_str().unwrap().to_string());
        }
        for d in wanted {
            let p = blobs.join(d.strip_prefix("sha256:").unwrap());
            assert!(p.is_file(), "{digest} references a missing blob {d}");
        }
    }

    let mut files = Vec::new();
    walk(&root.join("kiln"), &mut files);
    let leftovers: Vec<&PathBuf> = files
        .iter()
        .filter(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let name = p.file_name().unwrap().to_string_lossy();
            // Temp blobs, temp snapshot entries and their locks, per-run state, and the temp
            // files of atomic metadata writes.
            (rel.starts_with("kiln/tmp/") && !rel.ends_with("kiln/tmp"))
                || (rel.starts_with("kiln/snapshots/tmp/"))
                || (rel.starts_with("kiln/run/") && !tolerate_run_dirs)
                || name.starts_with(".tmp")
        })
        .collect();
    assert!(leftovers.is_empty(), "leftover temp files: {leftovers:#?}");

    assert_no_mounts_under(root);
    assert_no_processes_under(root);
}

fn assert_no_mounts_under(root: &Path) {
    let canon = root.canonicalize().unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let under: Vec<&str> = mountinfo
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|mp| Path::new(mp).starts_with(&canon))
        })
        .collect();
    assert!(under.is_empty(), "mounts left under the store: {under:#?}");
}

/// Processes that are sandbox helpers or whose cwd, root or command line mention `root`.
fn processes_under(root: &Path) -> Vec<String> {
    let canon = root.canonicalize().unwrap();
    let needle = canon.to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let dir = e.path();
        let cmdline = std::fs::read(dir.join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
        let helper = String::from_utf8_lossy(&environ).contains("KILN_SANDBOX_HELPER=");
        let in_root = ["cwd", "root"]
            .iter()
            .any(|l| std::fs::read_link(dir.join(l)).is_ok_and(|t| t.starts_with(&canon)));
        if helper || in_root || cmdline.contains(&needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn assert_no_processes_under(root: &Path) {
    // A killed build's helpers notice the hang-up at once; allow a moment for the kernel.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = processes_under(root);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("processes survive the build: {left:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Host processes whose command line is exactly `args`.
fn host_processes(args: &[&str]) -> Vec<String> {
    let want = args.join("\0") + "\0";
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            (cmd == want.as_bytes()).then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

// ---- crash: SIGKILL mid-build, then build again ------------------------------------------------

/// A 160 MB file whose bytes are not all alike (so nothing on the way can treat it as sparse).
fn write_big_file(path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut block = vec![0u8; 1 << 20];
    for i in 0..160u32 {
        for (j, chunk) in block.chunks_mut(4).enumerate() {
            chunk.copy_from_slice(&(i.wrapping_mul(2_654_435_761) ^ j as u32).to_le_bytes());
        }
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

const CRASH_DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
COPY big.bin /data/big.bin
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox head -c 40000000 /data/big.bin > /data/head && /bin/busybox sleep 0.2"]
CMD ["/bin/busybox", "wc", "-c", "/data/big.bin", "/data/head"]
"#;

/// Starts `kiln build` in its own process group.
fn spawn_build(root: &Path, ctx: &Path, tag: &str) -> std::process::Child {
    Std::new(assert_cmd::cargo::cargo_bin("kiln"))
        .arg("--root")
        .arg(root)
        .args(["build", "-t", tag])
        .arg(ctx)
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Kills `child` (and its process group when `group`) with SIGKILL and reaps it.
fn kill_build(child: &mut std::process::Child, group: bool) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: plain syscalls on a child this test started (and its own process group).
    unsafe {
        libc::kill(if group { -pid } else { pid }, libc::SIGKILL);
    }
    child.wait().unwrap();
}

/// Whether a temp blob of at least `min` bytes is being written (a layer is in progress).
fn layer_in_progress(root: &Path, min: u64) -> bool {
    std::fs::read_dir(root.join("kiln/tmp")).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.metadata().is_ok_and(|m| m.is_file() && m.len() >= min))
    })
}

#[test]
fn sigkill_at_any_moment_leaves_a_store_the_next_build_uses() {
    if !require_privileged("crash test") || !tool("umoci") || !tool("runc") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(CRASH_DOCKERFILE);
    write_big_file(&ctx.path().join("big.bin"));

    // Kill at fixed moments (start-up, context hashing, COPY, layer writing), alternating between
    // the whole process group and the kiln process alone (whose helpers must notice by themselves).
    for (i, ms) in [50u64, 300, 800, 1500].into_iter().enumerate() {
        let mut child = spawn_build(root.path(), ctx.path(), "crash:1");
        std::thread::sleep(Duration::from_millis(ms));
        kill_build(&mut child, i % 2 == 0);
        assert_no_processes_under(root.path());
    }
    // And once exactly while a big layer blob is being written: poll (bounded) for a temp blob.
    let mut child = spawn_build(root.path(), ctx.path(), "crash:1");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut caught = false;
    while Instant::now() < deadline {
        if layer_in_progress(root.path(), 8 << 20) {
            caught = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    kill_build(&mut child, false);
    assert_no_processes_under(root.path());
    // The blob writing may have been too quick to see when an earlier attempt cached the layer;
    // that is fine, but the first time round it must have been seen.
    eprintln!("killed while a layer blob was being written: {caught}");

    let (id, _) = build(root.path(), ctx.path(), &["-t", "crash:1"]);
    // The next build swept the run directories the kills left behind.
    assert_store_consistent_but(root.path(), false);
    let out = run_image(root.path(), "docker.io/library/crash:1");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        [
            "167772160",
            "/data/big.bin",
            "40000000",
            "/data/head",
            "207772160",
            "total"
        ],
        "{out}"
    );
    // And the store still works as a cache.
    let (again, stderr) = build(root.path(), ctx.path(), &["-t", "crash:1"]);
    assert_eq!(again, id);
    assert!(stderr.contains("3 of 3 steps cached"), "{stderr}");
}

#[test]
fn sigkill_while_a_layer_is_written_leaves_no_temp_blob_after_the_next_build() {
    if !require_privileged("crash test") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context(CRASH_DOCKERFILE);
    write_big_file(&ctx.path().join("big.bin"));
    let mut child = spawn_build(root.path(), ctx.path(), "crash:2");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut caught = false;
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        if layer_in_progress(root.path(), 1 << 20) {
            caught = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    kill_build(&mut child, true);
    assert!(caught, "the build was killed while it wrote a layer blob");
    build(root.path(), ctx.path(), &["-t", "crash:2"]);
    assert_store_consistent(root.path());
}

// ---- concurrency: builds at once on one store ---------------------------------------------------

/// A Dockerfile whose image prints `msg`; all share the first two steps.
fn printing_dockerfile(msg: &str, extra_run: &str) -> String {
    format!(
        r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN echo {msg} > /msg{extra_run}
CMD ["sh", "-c", "cat /msg"]
"#
    )
}

/// Starts every (context, tag) build at the same moment and waits for all; each must succeed.
fn build_concurrently(root: &Path, builds: &[(&Path, &str)]) {
    let barrier = std::sync::Barrier::new(builds.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = builds
            .iter()
            .map(|(ctx, tag)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    try_build(root, ctx, &["-t", tag])
                })
            })
            .collect();
        for (h, (_, tag)) in handles.into_iter().zip(builds) {
            let (ok, id, stderr) = h.join().unwrap();
            assert!(ok, "concurrent build of {tag} failed:\n{stderr}");
            assert!(id.starts_with("sha256:"), "{tag}: {id:?}");
        }
    });
}

fn index_tags(root: &Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    let mut tags: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_string)
        .collect();
    tags.sort();
    tags
}

#[test]
fn two_then_four_concurrent_builds_on_one_store_all_succeed() {
    if !require_privileged("concurrent builds") || !tool("umoci") || !tool("runc") {
        return;
    }
    // Two identical builds on a fresh store race on every step and blob.
    let root = tempfile::tempdir().unwrap();
    let same = printing_dockerfile("same", "");
    let (a, b) = (context(&same), context(&same));
    build_concurrently(root.path(), &[(a.path(), "same:a"), (b.path(), "same:b")]);
    assert_eq!(
        index_tags(root.path()),
        ["docker.io/library/same:a", "docker.io/library/same:b"]
    );
    for tag in ["same:a", "same:b"] {
        assert_eq!(
            run_image(root.path(), &format!("docker.io/library/{tag}")),
            "same\n"
        );
    }
    assert_store_consistent(root.path());

    // Four builds on another fresh store: two identical, two sharing a prefix, one of which
    // writes a bigger layer.
    let root = tempfile::tempdir().unwrap();
    let ctxs = [
        context(&printing_dockerfile("one", "")),
        context(&printing_dockerfile("one", "")),
        context(&printing_dockerfile("three", "")),
        context(&printing_dockerfile(
            "four",
            " && head -c 8000000 /bin/busybox > /big",
        )),
    ];
    let tags = ["multi:one", "multi:one-again", "multi:three", "multi:four"];
    let builds: Vec<(&Path, &str)> = ctxs.iter().map(|c| c.path()).zip(tags).collect();
    build_concurrently(root.path(), &builds);
    let mut want: Vec<String> = tags
        .iter()
        .map(|t| format!("docker.io/library/{t}"))
        .collect();
    want.sort();
    assert_eq!(index_tags(root.path()), want);
    for (tag, msg) in tags.iter().zip(["one", "one", "three", "four"]) {
        assert_eq!(
            run_image(root.path(), &format!("docker.io/library/{tag}")),
            format!("{msg}\n"),
            "{tag}"
        );
    }
    assert_store_consistent(root.path());
}

// ---- isolation of RUN as a build sees it -----------------------------------------------------

/// A file in the host's /tmp that no RUN may read.
fn host_sentinel() -> (tempfile::NamedTempFile, String) {
    let mut f = tempfile::Builder::new()
        .prefix("kiln-sentinel-")
        .tempfile_in("/tmp")
        .unwrap();
    f.write_all(b"host secret\n").unwrap();
    let path = f.path().display().to_string();
    (f, path)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn host_interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn run_steps_are_isolated_from_the_host() {
    if !require_privileged("isolation build") {
        return;
    }
    let (_sentinel, sentinel) = host_sentinel();
    // A duration no other process on the host uses, to find the background sleep afterwards.
    let nap = format!("{}", 3000 + std::process::id() % 5000);
    let dockerfile = format!(
        r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /out /tmp && hostname > /out/hostname && (cat {sentinel} > /out/sentinel 2>&1; echo $? > /out/sentinel_rc) && ls /tmp > /out/tmp && ls /proc | grep -E '^[0-9]+$' > /out/pids && ps -o pid,args > /out/ps && cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort > /out/netdev
RUN sleep {nap} & echo started > /out/bg
"#
    );
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&dockerfile);
    let started = Instant::now();
    let (out, _) = build_rootfs(root.path(), ctx.path(), &["-t", "iso:1"]);
    let took = started.elapsed();
    let fs = out.path().join("rootfs/out");

    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(read(&fs, "hostname"), "kiln\n");
    assert_ne!(host_name.trim(), "kiln");

    assert_ne!(
        read(&fs, "sentinel_rc").trim(),
        "0",
        "the host's /tmp is not visible"
    );
    assert!(!read(&fs, "sentinel").contains("host secret"));
    assert_eq!(read(&fs, "tmp"), "", "the step's /tmp is its own");

    // Only the step's processes: the sandbox's init, the shell and ps (ls and grep for pids).
    let pids: Vec<u32> = read(&fs, "pids")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(
        !pids.is_empty() && pids.len() <= 6 && pids.iter().all(|p| *p < 20),
        "pids seen by the step: {pids:?}"
    );
    let ps = read(&fs, "ps");
    assert!(ps.lines().count() <= 7, "ps shows only the step:\n{ps}");
    assert!(
        !ps.contains("--root") && !ps.contains("cargo") && !ps.contains("robustness"),
        "no host process is visible:\n{ps}"
    );

    assert_eq!(
        read(&fs, "netdev"),
        "lo\n",
        "network none has only loopback"
    );

    // The background sleep died with its step, and the step did not wait for it.
    assert_eq!(read(&fs, "bg"), "started\n");
    assert!(took < Duration::from_secs(60), "the build took {took:?}");
    assert!(
        host_processes(&["sleep", &nap]).is_empty(),
        "the background sleep survived its step"
    );
    assert_store_consistent(root.path());

    // With --network host the step sees the host's interfaces.
    let ctx = context(
        r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /out && cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort > /out/hostnet
"#,
    );
    let (out, _) = build_rootfs(root.path(), ctx.path(), &["--network", "host"]);
    let seen: Vec<String> = read(&out.path().join("rootfs/out"), "hostnet")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(seen, host_interfaces());
    assert_store_consistent(root.path());
}

// ---- confinement of COPY and ADD ---------------------------------------------------------------

enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// A tar with these entries, names and link targets written as given (the `tar` crate refuses to
/// build `..` and absolute names through its checked setters).
fn evil_tar(path: &Path, entries: &[Entry<'_>]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, link, data, kind) = match e {
            Entry::File(n, d) => (*n, None, *d, tar::EntryType::Regular),
            Entry::Symlink(n, t) => (*n, Some(*t), &b""[..], tar::EntryType::Symlink),
            Entry::Hardlink(n, t) => (*n, Some(*t), &b""[..], tar::EntryType::Link),
        };
        assert!(name.len() < 100 && link.is_none_or(|l| l.len() < 100));
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.finish().unwrap();
}

/// What a host file looks like, to tell that nothing wrote to or linked it.
fn fingerprint(path: &Path) -> (Vec<u8>, u64) {
    use std::os::unix::fs::MetadataExt;
    (
        std::fs::read(path).unwrap(),
        std::fs::metadata(path).unwrap().nlink(),
    )
}

#[test]
fn add_of_a_hostile_tar_never_writes_outside_the_rootfs() {
    if !require_privileged("confinement build") {
        return;
    }
    // Every escape aims at this host directory; afterwards it must hold only `target`, unchanged.
    let host = tempfile::Builder::new()
        .prefix("kiln-escape-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::write(host.path().join("target"), b"original\n").unwrap();
    let h = host.path().display().to_string();
    let h_rel = h.trim_start_matches('/');
    let passwd_before = fingerprint(Path::new("/etc/passwd"));

    let dotdot = format!("../../../../../../../../../../../../{h_rel}/dotdot");
    let absolute = format!("{h}/absolute");
    let through_root = format!("rootlink/{h_rel}/through-root-symlink");
    let target = format!("{h}/target");
    let through_up = format!("up/{h_rel}/through-up-symlink");
    let cases: Vec<(&str, Vec<Entry<'_>>)> = vec![
        ("dotdot", vec![Entry::File(&dotdot, b"escaped\n")]),
        ("absolute", vec![Entry::File(&absolute, b"escaped\n")]),
        (
            "through-root-symlink",
            vec![
                Entry::Symlink("rootlink", "/"),
                Entry::File(&through_root, b"escaped\n"),
            ],
        ),
        (
            "through-dir-symlink",
            vec![
                Entry::Symlink("dirlink", &h),
                Entry::File("dirlink/through-dir-symlink", b"escaped\n"),
            ],
        ),
        (
            "through-up-symlink",
            vec![
                Entry::Symlink("up", "../../../../../../../../../../.."),
                Entry::File(&through_up, b"escaped\n"),
            ],
        ),
        ("passwd", vec![Entry::Hardlink("pw", "/etc/passwd")]),
        (
            "target",
            vec![
                Entry::Hardlink("hl", &target),
                Entry::File("hl", b"pwned\n"),
            ],
        ),
    ];

    let root = tempfile::tempdir().unwrap();
    for (name, entries) in &cases {
        let ctx = context(
            "FROM scratch\nCOPY busybox /bin/busybox\nADD evil.tar /dst/\nCMD [\"/bin/busybox\"]\n",
        );
        evil_tar(&ctx.path().join("evil.tar"), entries);
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("rootfs");
        let (ok, _, stderr) = try_build(
            root.path(),
            ctx.path(),
            &["--output", &format!("type=local,dest={}", dest.display())],
        );

        let mut left: Vec<String> = std::fs::read_dir(host.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["target"],
            "{name}: nothing is written outside the rootfs"
        );
        assert_eq!(
            std::fs::read(host.path().join("target")).unwrap(),
            b"original\n",
            "{name}: the host file is untouched"
        );
        assert_eq!(
            fingerprint(Path::new("/etc/passwd")),
            passwd_before,
            "{name}: the host's /etc/passwd is untouched"
        );
        if ok {
            // Confined: whatever landed is inside the image and holds no host bytes.
            let mut files = Vec::new();
            walk(&dest, &mut files);
            for f in files.iter().filter(|f| f.is_file()) {
                let bytes = std::fs::read(f).unwrap();
                assert_ne!(
                    bytes,
                    passwd_before.0,
                    "{name}: {} is the host's passwd",
                    f.display()
                );
                assert_ne!(
                    bytes,
                    b"original\n",
                    "{name}: {} is the host's file",
                    f.display()
                );
            }
            eprintln!(
                "{name}: confined; image has {:?}",
                files
                    .iter()
                    .map(|f| f.strip_prefix(&dest).unwrap())
                    .collect::<Vec<_>>()
            );
        } else {
            assert!(
                stderr.contains(name) || stderr.contains(entries_first_name(entries)),
                "{name}: the error names the entry:\n{stderr}"
            );
            eprintln!(
                "{name}: rejected:
{stderr}"
            );
        }
    }
    assert_store_consistent(root.path());
}

fn entries_first_name<'a>(entries: &[Entry<'a>]) -> &'a str {
    match entries[0] {
        Entry::File(n, _) | Entry::Symlink(n, _) | Entry::Hardlink(n, _) => n,
    }
}

#[test]
fn copy_keeps_context_symlinks_as_symlinks_and_never_reads_the_host() {
    if !require_privileged("confinement build") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context("FROM scratch\nCOPY busybox /bin/busybox\nCOPY . /app\n");
    std::os::unix::fs::symlink("/etc", ctx.path().join("evil")).unwrap();
    std::os::unix::fs::symlink("../../..", ctx.path().join("up")).unwrap();
    let (out, _) = build_rootfs(root.path(), ctx.path(), &[]);
    let app = out.path().join("rootfs/app");
    for (link, target) in [("evil", "/etc"), ("up", "../../..")] {
        let meta = std::fs::symlink_metadata(app.join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} stays a symlink");
        assert_eq!(
            std::fs::read_link(app.join(link)).unwrap(),
            Path::new(target)
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(&app)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Dockerfile", "busybox", "evil", "up"]);

    // Sources that go through the links resolve inside the context, never on the host.
    let passwd = std::fs::read("/etc/passwd").unwrap();
    for (source, what) in [
        ("evil/passwd", "a file behind a link to /etc"),
        ("up/etc/passwd", "a file behind a link out of the context"),
    ] {
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM scratch\nCOPY {source} /leak\n"),
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("rootfs");
        let (ok, _, stderr) = try_build(
            root.path(),
            ctx.path(),
            &["--output", &format!("type=local,dest={}", dest.display())],
        );
        if ok {
            let leak = std::fs::read(dest.join("leak")).unwrap_or_default();
            assert_ne!(leak, passwd, "{what}: the host's /etc/passwd was copied");
        } else {
            assert!(
                stderr.contains(source.split('/').next().unwrap()) || stderr.contains("passwd"),
                "{what}: {stderr}"
            );
            eprintln!(
                "{source}: rejected:
{stderr}"
            );
        }
    }
    assert_store_consistent(root.path());
}

// ---- failed steps and --no-cache ---------------------------------------------------------------

/// The cache records in the store.
fn cache_records(root: &Path) -> usize {
    let mut files = Vec::new();
    walk(&root.join("kiln/cache"), &mut files);
    files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
        .count()
}

#[test]
fn a_failed_run_leaves_no_snapshot_or_record_and_no_cache_runs_every_step() {
    if !require_privileged("failed build") {
        return;
    }
    let prefix = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";
    let failing = format!(
        "{prefix}RUN echo doomed-step && head -c 3000000 /bin/busybox > /partial && exit 3\n"
    );

    // How many records the steps before the failing one make on their own.
    let reference = tempfile::tempdir().unwrap();
    build(reference.path(), context(prefix).path(), &[]);
    let before_failure = cache_records(reference.path());
    assert!(before_failure >= 2);

    let root = tempfile::tempdir().unwrap();
    let ctx = context(&failing);
    for attempt in 0..2 {
        let (ok, _, stderr) = try_build(root.path(), ctx.path(), &["--progress=plain"]);
        assert!(!ok, "attempt {attempt}: the build fails");
        assert!(stderr.contains("exit code 3"), "{stderr}");
        // The failing step ran again rather than coming from a cache.
        assert!(
            stderr.matches("doomed-step").count() >= 2,
            "attempt {attempt}: the step ran and printed:\n{stderr}"
        );
        assert_eq!(
            cache_records(root.path()),
            before_failure,
            "attempt {attempt}: no record for the failed step"
        );
        assert_store_consistent(root.path());
    }

    // --no-cache runs every step even though all are cached.
    let ctx = context(&format!("{prefix}RUN echo ran-again > /x\n"));
    let (first, stderr) = build(root.path(), ctx.path(), &[]);
    assert!(stderr.contains("of 3 steps cached"), "{stderr}");
    let (_, stderr) = build(root.path(), ctx.path(), &[]);
    assert!(stderr.contains("3 of 3 steps cached"), "{stderr}");
    let (second, stderr) = build(root.path(), ctx.path(), &["--no-cache", "--progress=plain"]);
    assert!(stderr.contains("0 of 3 steps cached"), "{stderr}");
    assert!(stderr.contains("ran-again"), "the RUN ran:\n{stderr}");
    assert!(first.starts_with("sha256:") && second.starts_with("sha256:"));
    assert_store_consistent(root.path());
}

#[test]
fn sigkill_during_a_run_step_kills_the_step_and_releases_its_mounts() {
    sigkill_during_run(true);
}

/// The per-run state directory (`kiln/run/run-*`, holding the `hosts` and `resolv.conf` files
/// bind-mounted into the step) of a build killed during a RUN is swept by the next build: it is
/// locked while its run lives, and the next build removes the ones nobody holds.
#[test]
fn sigkill_during_a_run_step_leaves_no_run_state_after_the_next_build() {
    sigkill_during_run(false);
}

fn sigkill_during_run(tolerate_run_dirs: bool) {
    if !require_privileged("crash test") {
        return;
    }
    let nap = format!("{}", 8000 + std::process::id() % 1000);
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sleep\", \"{nap}\"]\n"
    ));
    let nap_args = ["/bin/busybox", "sleep", nap.as_str()];
    for group in [false, true] {
        let mut child = spawn_build(root.path(), ctx.path(), "sleepy:1");
        let deadline = Instant::now() + Duration::from_secs(30);
        while host_processes(&nap_args).is_empty() {
            assert!(Instant::now() < deadline, "the RUN step never started");
            assert!(child.try_wait().unwrap().is_none(), "the build ended early");
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_build(&mut child, group);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !host_processes(&nap_args).is_empty() {
            assert!(
                Instant::now() < deadline,
                "the step's process survived a SIGKILL of kiln (group: {group})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_no_processes_under(root.path());
    }
    // The next build on the store (here a different one, the sleep would take too long) succeeds
    // and cleans up the killed builds' snapshots and mounts.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"true\"]\n",
    )
    .unwrap();
    build(root.path(), ctx.path(), &[]);
    assert_store_consistent_but(root.path(), tolerate_run_dirs);
}
