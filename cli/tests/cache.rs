//! The build cache through the `kiln` binary: `--explain-cache` and `kiln cache explain`, pruning
//! and the automatic GC, corrupted blobs, cache-mount sharing modes, concurrent builds on one store.
//! These need root; with `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing capability fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, context_with, kiln};

const EXPLAIN_DOCKERFILE: &str = "FROM scratch
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
COPY app/ /app/
ARG VERSION=1
RUN echo \"$VERSION\" > /version && cat /app/a.txt /app/b.txt > /app/all
";

#[test]
fn explain_cache_names_the_changed_file_and_arg() {
    if !require_privileged("explain build") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context_with(&[
        ("Dockerfile", EXPLAIN_DOCKERFILE),
        ("app/a.txt", "a\n"),
        ("app/b.txt", "b\n"),
    ]);
    let (_, stderr) = build(root.path(), ctx.path(), &["--explain-cache"]);
    assert!(stderr.contains("first build"), "{stderr}");

    std::fs::write(ctx.path().join("app/b.txt"), "b2\n").unwrap();
    let (_, stderr) = build(
        root.path(),
        ctx.path(),
        &["--explain-cache", "--build-arg", "VERSION=2"],
    );
    assert!(stderr.contains("file changed: app/b.txt"), "{stderr}");
    assert!(
        !stderr.contains("changed: app/a.txt"),
        "unchanged files are not named: {stderr}"
    );
    assert!(
        stderr.contains("build arg or ENV VERSION changed"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("VERSION changed: 1"),
        "values are digests only: {stderr}"
    );
    assert!(
        stderr.contains("#2 CACHE MISS") || stderr.contains("CACHE MISS: file changed"),
        "{stderr}"
    );
    assert!(
        stderr.contains(": cached"),
        "the first steps were cached: {stderr}"
    );

    // After the fact, from the store.
    let out = kiln(root.path())
        .args(["cache", "explain"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("file changed: app/b.txt"), "{text}");
    assert!(text.contains("VERSION"), "{text}");
    let list = kiln(root.path())
        .args(["cache", "explain", "--list"])
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let first = kiln(root.path())
        .args(["cache", "explain", "--json", &ids[0]])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(v["steps"][0]["reasons"][0]["reason"], "first_build");

    // A .dockerignore'd file changing explains nothing because nothing misses; --no-cache says so.
    let (_, stderr) = build(
        root.path(),
        ctx.path(),
        &["--explain-cache", "--build-arg", "VERSION=2", "--no-cache"],
    );
    assert!(stderr.contains("--no-cache"), "{stderr}");
}

const KEPT: &str = "FROM scratch
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
RUN echo kept > /kept
CMD [\"cat\", \"/kept\"]
";

const GONE: &str = "FROM scratch
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
RUN echo gone > /gone && dd if=/dev/zero of=/big bs=1k count=256
";

fn manifest_of(stderr: &str) -> String {
    let at = stderr.find("  digest sha256:").unwrap() + "  digest sha256:".len();
    stderr[at..at + 64].to_string()
}

fn json(root: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = kiln(root).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn blob(root: &std::path::Path, hex: &str) -> std::path::PathBuf {
    root.join("blobs/sha256").join(hex)
}

#[test]
fn gc_keeps_tagged_images_and_removes_the_rest() {
    if !require_privileged("gc build") || !common::tool("umoci") || !common::tool("runc") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let kept = context_with(&[("Dockerfile", KEPT)]);
    let gone = context_with(&[("Dockerfile", GONE)]);
    let (_, stderr) = build(root.path(), kept.path(), &["-t", "kept:1"]);
    let kept_manifest = manifest_of(&stderr);
    let (_, stderr) = build(root.path(), gone.path(), &[]);
    let gone_manifest = manifest_of(&stderr);
    let du = json(root.path(), &["cache", "du", "--json"]);
    assert_eq!(du["cache_records"], 4, "{du}");

    // Recently used records survive an age filter; an old one goes, with the layer only it kept.
    let out = kiln(root.path())
        .args(["cache", "prune", "--filter", "until=24h"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 0 cache records"));
    let records = json(root.path(), &["cache", "ls", "--json"]);
    let gone_record = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instruction"].as_str().unwrap().contains("echo gone"))
        .unwrap()
        .clone();
    let key = gone_record["key"].as_str().unwrap();
    let layer = gone_record["layer"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    assert!(blob(root.path(), &layer).exists());
    let record = root
        .path()
        .join("kiln/cache")
        .join(&key[..2])
        .join(format!("{key}.json"));
    let status = std::process::Command::new("touch")
        .args(["-m", "-d", "3 days ago"])
        .arg(&record)
        .status()
        .unwrap();
    assert!(status.success());
    let out = kiln(root.path())
        .args(["cache", "prune", "--filter", "until=24h"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("removed 1 cache records, 1 blobs"), "{text}");
    assert!(!record.exists());
    assert!(!blob(root.path(), &layer).exists());
    assert_eq!(
        json(root.path(), &["cache", "du", "--json"])["cache_records"],
        3
    );

    // `kiln prune` removes every record over the size and every unreferenced blob; the tagged
    // image stays complete.
    let out = kiln(root.path())
        .args(["prune", "--keep-storage", "0"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let du = json(root.path(), &["cache", "du", "--json"]);
    assert_eq!(du["cache_records"], 0, "{du}");
    assert_eq!(du["unreferenced_bytes"], 0, "{du}");
    assert_eq!(du["blob_bytes"], du["tagged_bytes"], "{du}");
    assert!(blob(root.path(), &kept_manifest).exists());
    assert!(!blob(root.path(), &gone_manifest).exists());
    let (stdout, _) = common::run_image(root.path(), "docker.io/library/kept:1");
    assert_eq!(stdout, "kept\n");

    // The automatic policy after a build: over the limit, everything untagged goes.
    let out = kiln(root.path())
        .args(["cache", "policy", "--keep-storage", "1B"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("on"));
    let (_, stderr) = build(root.path(), gone.path(), &[]);
    assert!(stderr.contains("0 of 3 steps cached"), "{stderr}");
    let du = json(root.path(), &["cache", "du", "--json"]);
    assert_eq!(du["cache_records"], 0, "{du}");
    assert_eq!(du["blob_bytes"], du["tagged_bytes"], "{du}");
    let (stdout, _) = common::run_image(root.path(), "docker.io/library/kept:1");
    assert_eq!(stdout, "kept\n");
    // A tagged build's blobs are kept, and the image exports.
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("kept.tar");
    build(
        root.path(),
        kept.path(),
        &[
            "-t",
            "kept:1",
            "-o",
            &format!("type=oci,dest={}", dest.display()),
        ],
    );
    assert!(dest.metadata().unwrap().len() > 0);
    let (stdout, _) = common::run_image(root.path(), "docker.io/library/kept:1");
    assert_eq!(stdout, "kept\n");
}

#[test]
fn a_corrupt_cached_blob_makes_its_step_run_again() {
    if !require_privileged("corrupt blob build") || !common::tool("umoci") || !common::tool("runc")
    {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context_with(&[("Dockerfile", KEPT)]);
    build(root.path(), ctx.path(), &["-t", "kept:1"]);
    let records = json(root.path(), &["cache", "ls", "--json"]);
    let layer = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instruction"].as_str().unwrap().contains("echo kept"))
        .unwrap()["layer"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    // Same size, different bytes: only a hash can tell.
    let path = blob(root.path(), &layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let (_, stderr) = build(
        root.path(),
        ctx.path(),
        &["-t", "kept:1", "--explain-cache"],
    );
    assert!(stderr.contains("2 of 3 steps cached"), "{stderr}");
    assert!(stderr.contains("failed verification"), "{stderr}");
    assert_all_blobs_intact(root.path());
    let (stdout, _) = common::run_image(root.path(), "docker.io/library/kept:1");
    assert_eq!(stdout, "kept\n");

    // A missing blob is a miss too.
    let records = json(root.path(), &["cache", "ls", "--json"]);
    let layer = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instruction"].as_str().unwrap().contains("echo kept"))
        .unwrap()["layer"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    std::fs::remove_file(blob(root.path(), &layer)).unwrap();
    let (_, stderr) = build(root.path(), ctx.path(), &["-t", "kept:1"]);
    assert!(stderr.contains("2 of 3 steps cached"), "{stderr}");
    assert_all_blobs_intact(root.path());
    let (stdout, _) = common::run_image(root.path(), "docker.io/library/kept:1");
    assert_eq!(stdout, "kept\n");
}

/// Every blob's content hashes to its name (a corrupt blob never survives a re-run).
fn assert_all_blobs_intact(root: &std::path::Path) {
    for e in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        assert_eq!(
            kiln_builder_core::content::Digest::of(&bytes).hex(),
            e.file_name().to_str().unwrap(),
            "blob {:?} is intact",
            e.path()
        );
    }
}

/// Stages a and b meet through a shared mount (so they surely run at the same time), then each
/// writes a marker into a `sharing=private` mount and lists it; c and d increment a counter in a
/// `sharing=locked` mount with a read-sleep-write that loses an update without the lock.
const SHARING: &str = r#"FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS a
ENV ME=a OTHER=b
RUN --mount=type=cache,target=/sync,id=sync --mount=type=cache,target=/c,id=priv,sharing=private touch /sync/$ME && i=0 && while [ ! -e /sync/$OTHER ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done && touch /c/$ME && sleep 0.5 && ls /c | tr '\n' ' ' > /seen

FROM base AS b
ENV ME=b OTHER=a
RUN --mount=type=cache,target=/sync,id=sync --mount=type=cache,target=/c,id=priv,sharing=private touch /sync/$ME && i=0 && while [ ! -e /sync/$OTHER ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done && touch /c/$ME && sleep 0.5 && ls /c | tr '\n' ' ' > /seen

FROM base AS c
ENV ME=c
RUN --mount=type=cache,target=/n,id=counter,sharing=locked n=$(cat /n/n 2>/dev/null || echo 0) && sleep 0.5 && echo $((n+1)) > /n/n && cat /n/n > /count

FROM base AS d
ENV ME=d
RUN --mount=type=cache,target=/n,id=counter,sharing=locked n=$(cat /n/n 2>/dev/null || echo 0) && sleep 0.5 && echo $((n+1)) > /n/n && cat /n/n > /count

FROM base AS owned
RUN --mount=type=cache,target=/o,id=owned,uid=1000,gid=1001,mode=0750 stat -c '%u %g %a' /o > /owner

FROM scratch
COPY --from=a /seen /a
COPY --from=b /seen /b
COPY --from=c /count /c
COPY --from=d /count /d
COPY --from=owned /owner /owner
"#;

#[test]
fn cache_mount_sharing_modes_and_owner() {
    if !require_privileged("cache mount build") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context_with(&[("Dockerfile", SHARING)]);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs");
    build(
        root.path(),
        ctx.path(),
        &["-o", &format!("type=local,dest={}", dest.display())],
    );
    let read = |n: &str| std::fs::read_to_string(dest.join(n)).unwrap();
    // private: each concurrent writer had its own directory.
    assert_eq!(read("a").trim(), "a", "a saw {:?}", read("a"));
    assert_eq!(read("b").trim(), "b", "b saw {:?}", read("b"));
    // locked: no lost update.
    let mut counts = [read("c").trim().to_string(), read("d").trim().to_string()];
    counts.sort();
    assert_eq!(counts, ["1".to_string(), "2".to_string()]);
    assert_eq!(read("owner").trim(), "1000 1001 750");

    // The directories are listed and prunable.
    let ls = kiln(root.path())
        .args(["cache", "ls", "--mounts", "--json"])
        .output()
        .unwrap();
    let mounts: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    // sync, two private instances, counter, owned.
    assert_eq!(mounts.as_array().unwrap().len(), 5, "{mounts}");
    let out = kiln(root.path())
        .args(["cache", "prune", "--mounts"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("5 cache mounts"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ls = kiln(root.path())
        .args(["cache", "ls", "--mounts", "--json"])
        .output()
        .unwrap();
    let mounts: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(mounts.as_array().unwrap().len(), 0, "{mounts}");
}

#[test]
fn four_concurrent_builds_on_one_store() {
    if !require_privileged("concurrent builds") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let variant = |name: &str| {
        format!(
            "FROM scratch
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
COPY shared.txt /shared.txt
RUN cat /shared.txt > /who && sleep 0.3
RUN echo {name} >> /who
"
        )
    };
    // Builds 0 and 2 use the same Dockerfile, so they race on every step; all four share the
    // first three steps.
    let ctx = context_with(&[
        ("shared.txt", "shared\n"),
        ("Dockerfile.0", &variant("zero")),
        ("Dockerfile.1", &variant("one")),
        ("Dockerfile.2", &variant("zero")),
        ("Dockerfile.3", &variant("three")),
    ]);
    let expected = ["zero", "one", "zero", "three"];
    for round in 0..2 {
        let outs = tempfile::tempdir().unwrap();
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let root = root.path().to_path_buf();
                let ctx = ctx.path().to_path_buf();
                let dest = outs.path().join(format!("out{i}"));
                std::thread::spawn(move || {
                    let out = kiln(&root)
                        .arg("build")
                        .arg("-f")
                        .arg(ctx.join(format!("Dockerfile.{i}")))
                        .args(["-t", &format!("concurrent:{i}")])
                        .arg("-o")
                        .arg(format!("type=local,dest={}", dest.display()))
                        .arg(&ctx)
                        .output()
                        .unwrap();
                    (
                        out.status.success(),
                        String::from_utf8_lossy(&out.stderr).to_string(),
                        dest,
                    )
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let (ok, stderr, dest) = h.join().unwrap();
            assert!(ok, "round {round} build {i} failed:\n{stderr}");
            let who = std::fs::read_to_string(dest.join("who")).unwrap();
            assert_eq!(
                who,
                format!("shared\n{}\n", expected[i]),
                "round {round} build {i}"
            );
            if round == 1 {
                assert!(stderr.contains("5 of 5 steps cached"), "{stderr}");
            }
        }
    }
    // The tags all point at complete images in the store.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 4, "{index}");
    assert_all_blobs_intact(root.path());
}
