//! A Dockerfile cannot reach host paths: local sources come only from `--build-context`, errors
//! never quote what kiln read, `.dockerignore`d files stay out of bind mounts, and a name that
//! is a stage is that stage wherever it is defined.
//!
//! The refusal tests need no privileges (nothing runs); the builds need root, as in `build.rs`.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::Path;

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, context_with, dockerfile_context, try_build};

/// A file shaped like `/etc/shadow`, long enough for a tar reader to take its first bytes as a
/// header.
fn shadow_like(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from("root:$6$SHADOWSECRET$abc:19000:0:99999:7:::\n");
    for i in 0..40 {
        text.push_str(&format!(
            "user{i}:$6$SHADOWSECRET{i}$x:19000:0:99999:7:::\n"
        ));
    }
    let path = dir.join("shadow");
    std::fs::write(&path, text).unwrap();
    path
}

/// An OCI layout whose index names a private image (the tags must not be listed).
fn other_store(dir: &Path) -> std::path::PathBuf {
    let store = dir.join("other-store");
    std::fs::create_dir_all(store.join("blobs/sha256")).unwrap();
    std::fs::write(
        store.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    std::fs::write(
        store.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":2,"annotations":{{"org.opencontainers.image.ref.name":"private-project-tag"}}}}]}}"#
        ),
    )
    .unwrap();
    store
}

#[test]
fn host_paths_in_a_dockerfile_are_refused_and_nothing_is_quoted() {
    let tmp = tempfile::tempdir().unwrap();
    let shadow = shadow_like(tmp.path());
    let other = other_store(tmp.path());
    let cases = [
        (
            format!("FROM oci-archive:{}\n", shadow.display()),
            "SHADOWSECRET",
            "1:6",
        ),
        (
            format!("FROM docker-archive:{}\n", shadow.display()),
            "SHADOWSECRET",
            "1:6",
        ),
        (
            format!(
                "FROM scratch\nCOPY --from=oci-layout://{}:nope /a /b\n",
                other.display()
            ),
            "private-project-tag",
            "2:6",
        ),
        (
            format!(
                "FROM scratch\nRUN --mount=from=oci-layout://{},target=/o true\n",
                other.display()
            ),
            "private-project-tag",
            "2:5",
        ),
    ];
    for (dockerfile, secret, at) in cases {
        let root = tempfile::tempdir().unwrap();
        let ctx = dockerfile_context(&dockerfile);
        let (ok, _, stderr) = try_build(root.path(), ctx.path(), &[]);
        assert!(!ok, "{dockerfile} is refused");
        assert!(!stderr.contains(secret), "nothing is quoted: {stderr}");
        assert!(
            stderr.contains("--build-context") && stderr.contains("host path"),
            "the refusal names the flag: {stderr}"
        );
        assert!(
            stderr.contains(&format!("Dockerfile:{at}")),
            "the refusal points at the line: {stderr}"
        );
    }
}

#[test]
fn errors_name_the_file_but_never_quote_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    // A config.json-like file where an OCI layout index is expected: granted by the user, but
    // still never quoted.
    let layout = tmp.path().join("docker-config");
    std::fs::create_dir_all(&layout).unwrap();
    std::fs::write(
        layout.join("index.json"),
        r#"{"auths":{"r.example":{"auth":"TOKENSECRET123"}},"manifests":"TOKENSECRET123"}"#,
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    // An archive whose index.json is such a file.
    let archive = tmp.path().join("token.tar");
    let tarred = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .arg("index.json")
        .status()
        .unwrap();
    assert!(tarred.success());
    let out = common::kiln(root.path())
        .arg("load")
        .arg("-i")
        .arg(&archive)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("TOKENSECRET123"), "{stderr}");
    assert!(stderr.contains("index.json"), "the file is named: {stderr}");

    let ctx = dockerfile_context("FROM base\n");
    let (ok, _, stderr) = try_build(
        root.path(),
        ctx.path(),
        &[
            "--build-context",
            &format!("base=oci-layout://{}", layout.display()),
        ],
    );
    assert!(!ok);
    assert!(!stderr.contains("TOKENSECRET123"), "{stderr}");
    assert!(stderr.contains("index.json"), "the file is named: {stderr}");

    // The same for an archive that is not one.
    let shadow = shadow_like(tmp.path());
    let out = common::kiln(root.path())
        .arg("load")
        .arg("-i")
        .arg(&shadow)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("SHADOWSECRET"), "{stderr}");
}

#[test]
fn build_contexts_give_directories_layouts_and_images() {
    if !require_privileged("named build contexts") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    kiln_builder_core::testing::busybox_layout(&layout, "1").unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let named = tmp.path().join("named");
    std::fs::create_dir_all(&named).unwrap();
    std::fs::write(named.join("n.txt"), "named-file\n").unwrap();
    std::fs::write(named.join(".env"), "NAMED_SECRET\n").unwrap();
    std::fs::write(named.join(".dockerignore"), ".env\n").unwrap();

    let root = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context(
        "FROM base\nCOPY --from=src /n.txt /n.txt\n\
         RUN --mount=from=src,target=/s sh -c 'ls -a /s; cat /n.txt; echo built > /b'\n",
    );
    let by_tag = format!("base=oci-layout://{}:1", layout.display());
    let by_digest = format!("base=oci-layout://{}@{digest}", layout.display());
    let src = format!("src={}", named.display());
    for base in [&by_tag, &by_digest] {
        let (_, stderr) = build(
            root.path(),
            ctx.path(),
            &[
                "--progress=plain",
                "--no-cache",
                "-t",
                "named:1",
                "--build-context",
                base,
                "--build-context",
                &src,
            ],
        );
        assert!(stderr.contains("named-file"), "{stderr}");
        assert!(stderr.contains(" n.txt"), "{stderr}");
        assert!(
            !stderr.contains(".env"),
            "the context's .dockerignore applies: {stderr}"
        );
    }

    // docker-image:// replaces the name with a reference (here a store tag).
    let child = dockerfile_context("FROM base\nRUN cat /b\n");
    let (_, stderr) = build(
        root.path(),
        child.path(),
        &[
            "--progress=plain",
            "--build-context",
            "base=docker-image://named:1",
        ],
    );
    assert!(stderr.contains("built"), "{stderr}");

    // A directory is no base image; a bad value is refused before anything runs.
    let (ok, _, stderr) = try_build(
        root.path(),
        dockerfile_context("FROM src\n").path(),
        &["--build-context", &src],
    );
    assert!(!ok && stderr.contains("directory"), "{stderr}");
    let (ok, _, stderr) = try_build(
        root.path(),
        child.path(),
        &["--build-context", "Bad Name=/tmp"],
    );
    assert!(!ok && stderr.contains("build context"), "{stderr}");
}

#[test]
fn read_only_bind_mounts_of_the_context_hide_ignored_files() {
    if !require_privileged("read-only bind mounts") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context_with(&[
        (".dockerignore", ".env\n**/.env\n"),
        (".env", "TOP_SECRET=1\n"),
        ("sub/.env", "SUB_SECRET=1\n"),
        ("sub/a.txt", "visible\n"),
        (
            "Dockerfile",
            "FROM scratch\nCOPY busybox /bin/busybox\n\
             RUN --mount=type=bind,target=/ctx --mount=type=bind,source=sub,target=/sub \
             [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox ls -a /ctx /sub; /bin/busybox cat /ctx/.env /sub/.env /sub/a.txt; /bin/busybox touch /sub/w 2>&1 || echo read-only\"]\n",
        ),
    ]);
    let (_, stderr) = build(root.path(), ctx.path(), &["--progress=plain"]);
    assert!(!stderr.contains("SECRET"), "{stderr}");
    assert!(!stderr.contains(" .env"), "{stderr}");
    assert!(stderr.contains("visible"), "the rest is there: {stderr}");
    assert!(
        stderr.contains(" busybox") && stderr.contains(" a.txt"),
        "{stderr}"
    );
    assert!(
        stderr.contains("read-only"),
        "the mount is read-only: {stderr}"
    );
}

#[test]
fn later_stages_are_stages_never_images_and_cycles_are_errors() {
    if !require_privileged("later stages") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // A store tag named like the later stage: it must never be used.
    let decoy = context_with(&[
        ("decoy.txt", "from-the-store-tag\n"),
        ("Dockerfile", "FROM scratch\nCOPY decoy.txt /x\n"),
    ]);
    build(root.path(), decoy.path(), &["-t", "b"]);

    let ctx = context_with(&[
        (
            "Dockerfile",
            "FROM scratch AS a\nCOPY busybox /bin/busybox\nCOPY --from=b /x /x\n\
             RUN --mount=from=b,target=/m [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /x /m/x\"]\n\
             FROM scratch AS b\nCOPY real.txt /x\n",
        ),
        ("real.txt", "from-the-later-stage\n"),
    ]);
    let (_, stderr) = build(
        root.path(),
        ctx.path(),
        &["--progress=plain", "--target", "a"],
    );
    assert!(stderr.contains("from-the-later-stage"), "{stderr}");
    assert!(!stderr.contains("from-the-store-tag"), "{stderr}");

    let cycle = dockerfile_context(
        "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y\n",
    );
    let (ok, _, stderr) = try_build(root.path(), cycle.path(), &[]);
    assert!(!ok);
    assert!(
        stderr.contains("cycle") && stderr.contains("a (line 1)") && stderr.contains("b (line 3)"),
        "{stderr}"
    );
}
