//! Robustness of `kiln build` through the binary: builds killed with SIGKILL at different moments
//! followed by a build that must succeed on the same store, concurrent builds on one store, and
//! failed steps. Every test checks the store afterwards.
//! These need root; with `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing capability fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command as Std, Stdio};
use std::time::{Duration, Instant};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::checks::*;
use common::{build, dockerfile_context as context, run_stdout as run_image, tool, try_build};

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

#[test]
fn a_stamp_write_killed_halfway_is_swept_by_the_next_build() {
    if !require_privileged("crash test") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context("FROM scratch\nCOPY a.txt /a.txt\n");
    std::fs::write(ctx.path().join("a.txt"), "a").unwrap();
    build(root.path(), ctx.path(), &["-t", "stamp:1"]);
    // What a build killed between creating a stamp's temp file and renaming it leaves (nobody
    // holds its lock), beside the stamps the build wrote.
    let verified = root.path().join("kiln/verified");
    assert!(verified.is_dir(), "the build stamped its layer");
    let stray = verified.join(".tmp-killed");
    std::fs::write(&stray, "1 2.3 4.5 6").unwrap();
    std::fs::write(ctx.path().join("a.txt"), "b").unwrap();
    build(root.path(), ctx.path(), &["-t", "stamp:1"]);
    assert!(
        !stray.exists(),
        "the next build removed {}",
        stray.display()
    );
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
