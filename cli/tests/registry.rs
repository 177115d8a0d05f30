//! Registries end to end, against the real CNCF distribution registries the test command starts
//! on loopback (`KILN_TEST_REGISTRY`, `KILN_TEST_REGISTRY_BASIC`): push, pull back with skopeo
//! and with kiln into a fresh store, build on the pulled image, basic auth through a temporary
//! `DOCKER_CONFIG`, an interrupted push, and bad input (unknown host, missing manifest, a
//! corrupted blob, an index without our platform). Corruption and interruption go through a
//! small TCP proxy in this file.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command as Std;

use kiln_builder_core::testing::{basic_auth_registry, registry, require_privileged};

mod common;
use common::proxy::{Fault, proxy};
use common::{build, context_with, kiln, raw_manifest_bytes, tool, unique};

/// `s` without whitespace and the report's frame characters, so that messages can be matched
/// however the report wrapped them.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '│' | '×' | '╰' | '─' | '╭'))
        .collect()
}

/// Whether the report `stderr` says `needle` (wrapping ignored).
fn says(stderr: &str, needle: &str) -> bool {
    squash(stderr).contains(&squash(needle))
}

/// Runs kiln with `args`; returns (success, stdout, stderr).
fn run(root: &Path, args: &[&str], docker_config: Option<&Path>) -> (bool, String, String) {
    let mut cmd = kiln(root);
    cmd.args(args);
    match docker_config {
        Some(d) => cmd.env("DOCKER_CONFIG", d),
        None => cmd.env("DOCKER_CONFIG", root.join("no-docker-config")),
    };
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A context whose image is busybox plus a file of `random_kib` KiB of random bytes (so that
/// its layer is large enough to interrupt or corrupt in flight).
fn image_context(random_kib: usize) -> tempfile::TempDir {
    let ctx = context_with(&[(
        "Dockerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY blob /blob\nCMD [\"/bin/busybox\", \"sh\"]\n",
    )]);
    let mut data = vec![0u8; random_kib * 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(ctx.path().join("blob"), data).unwrap();
    ctx
}

/// The files of the store's `kiln/tmp` (blobs being written): empty after any failure.
fn temp_files(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("kiln/tmp"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn push_pull_back_with_skopeo_and_kiln_and_build_on_it() {
    let Some(reg) = registry("registry round trip") else {
        return;
    };
    if !require_privileged("registry round trip") || !tool("skopeo") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = image_context(64);
    let repo = unique("roundtrip");
    let image = format!("{}/{repo}:1", reg.addr);
    let extra = format!("{}/{}:2", reg.addr, unique("roundtrip-extra"));
    build(root.path(), ctx.path(), &["-t", &image]);
    let (ok, digest, stderr) = run(root.path(), &["push", &image, "-t", &extra], None);
    assert!(ok, "{stderr}");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert!(
        says(&stderr, &format!("pushed {image}@{digest}")),
        "{stderr}"
    );
    // The second repository gets its blobs by cross-repository mount.
    assert!(says(&stderr, "blobs: 3 uploaded, 3 mounted"), "{stderr}");

    // skopeo sees the same manifest.
    let oci = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:x", oci.path().join("layout").display());
    let out = Std::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{image}"))
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.path().join("layout/index.json")).unwrap())
            .unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());

    // A second push finds every blob there.
    let (ok, again, stderr) = run(root.path(), &["push", &image], None);
    assert!(ok, "{stderr}");
    assert_eq!(again, digest);
    assert!(
        says(&stderr, "0 uploaded, 0 mounted, 3 already there"),
        "{stderr}"
    );

    // kiln pulls it into a fresh store (through a proxy that then goes away, so that what
    // follows must work offline) and builds on it, by tag and by digest.
    let p = proxy(&reg.addr, Fault::DropUploadAfter(usize::MAX));
    let via = format!("{}/{repo}:1", p.addr);
    let fresh = tempfile::tempdir().unwrap();
    let (ok, pulled, stderr) = run(fresh.path(), &["pull", &via], None);
    assert!(ok, "{stderr}");
    assert_eq!(pulled, digest);
    drop(p);
    let store_index = std::fs::read_to_string(fresh.path().join("index.json")).unwrap();
    assert!(
        store_index.contains(&format!("\"dev.kiln.registry.digest\":\"{digest}\"")),
        "the pulled tag records its registry digest: {store_index}"
    );
    let ctx2 = context_with(&[(
        "Dockerfile",
        &format!(
            "FROM {via}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"wc -c < /blob > /size\"]\nFROM {}/{repo}@{digest}\nCOPY --from=0 /size /size\nCMD [\"/bin/busybox\", \"cat\", \"/size\"]\n",
            reg.addr
        ),
    )]);
    let (_, stderr) = build(fresh.path(), ctx2.path(), &["-t", "second:1"]);
    assert!(says(&stderr, "0 of 1 steps cached"), "{stderr}");
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs");
    let (_, stderr) = build(
        fresh.path(),
        ctx2.path(),
        &["-o", &format!("type=local,dest={}", dest.display())],
    );
    assert!(says(&stderr, "1 of 1 steps cached"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dest.join("size")).unwrap().trim(),
        "65536"
    );
    assert!(dest.join("bin/busybox").is_file());

    // --pull resolves again, and the registry behind the proxy is gone.
    let (ok, _, stderr) = run(
        fresh.path(),
        &["build", "--pull", ctx2.path().to_str().unwrap()],
        None,
    );
    assert!(!ok);
    assert!(
        says(&stderr, &format!("cannot reach registry {}", p_addr(&via))),
        "{stderr}"
    );
}

fn p_addr(reference: &str) -> &str {
    reference.split('/').next().unwrap()
}

#[test]
fn build_push_and_chunked_upload() {
    let Some(reg) = registry("build --push") else {
        return;
    };
    if !require_privileged("build --push") || !tool("skopeo") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = image_context(300);
    let a = format!("{}/{}:a", reg.addr, unique("chunked"));
    let b = format!("{}:b", a.rsplit_once(':').unwrap().0);
    let (ok, _, stderr) = run(
        root.path(),
        &[
            "build",
            "--push",
            "--chunk-size",
            "65536",
            "-t",
            &a,
            "-t",
            &b,
            ctx.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{stderr}");
    let pushed: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("pushed "))
        .collect();
    assert_eq!(pushed.len(), 2, "{stderr}");
    let digest = pushed[0].rsplit_once('@').unwrap().1;
    for r in [&a, &b] {
        let got = kiln_builder_core::content::Digest::of(&raw_manifest_bytes(r));
        assert_eq!(got.to_string(), digest);
    }
    // The pulled layer verifies: the chunks were assembled in order.
    let fresh = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(fresh.path(), &["pull", &a], None);
    assert!(ok, "{stderr}");
}

#[test]
fn basic_auth_needs_credentials_from_docker_config() {
    let Some(reg) = basic_auth_registry("basic-auth push") else {
        return;
    };
    if !require_privileged("basic-auth push") {
        return;
    }
    let (user, password) = reg.credentials.clone().unwrap();
    let root = tempfile::tempdir().unwrap();
    let ctx = image_context(16);
    let image = format!("{}/{}:1", reg.addr, unique("auth"));
    build(root.path(), ctx.path(), &["-t", &image]);

    let (ok, _, stderr) = run(root.path(), &["push", &image], None);
    assert!(!ok);
    assert!(
        says(&stderr, "unauthorized") && stderr.contains(&reg.addr),
        "{stderr}"
    );
    assert!(says(&stderr, "kiln login"), "{stderr}");

    // Wrong credentials in the config are rejected and not echoed.
    let docker_config = tempfile::tempdir().unwrap();
    std::fs::write(
        docker_config.path().join("config.json"),
        serde_json::json!({"auths": {reg.addr.clone(): {"username": user, "password": "not-the-password"}}})
            .to_string(),
    )
    .unwrap();
    let (ok, _, stderr) = run(root.path(), &["push", &image], Some(docker_config.path()));
    assert!(!ok);
    assert!(
        says(&stderr, "unauthorized") && says(&stderr, "rejected"),
        "{stderr}"
    );
    assert!(!says(&stderr, "not-the-password"), "{stderr}");

    // `kiln login` checks and writes the credentials; the push then succeeds.
    let login = kiln(root.path())
        .env("DOCKER_CONFIG", docker_config.path())
        .args(["login", "-u", &user, "--password-stdin", &reg.addr])
        .write_stdin(format!("{password}\n"))
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let (ok, digest, stderr) = run(root.path(), &["push", &image], Some(docker_config.path()));
    assert!(ok, "{stderr}");
    assert!(!stderr.contains(&password));
    let fresh = tempfile::tempdir().unwrap();
    let (ok, pulled, stderr) = run(fresh.path(), &["pull", &image], Some(docker_config.path()));
    assert!(ok, "{stderr}");
    assert_eq!(pulled, digest);

    // After logout the registry refuses again.
    let (ok, _, stderr) = run(
        root.path(),
        &["logout", &reg.addr],
        Some(docker_config.path()),
    );
    assert!(ok, "{stderr}");
    let other = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(other.path(), &["pull", &image], Some(docker_config.path()));
    assert!(!ok && says(&stderr, "unauthorized"), "{stderr}");
}

#[test]
fn interrupted_push_leaves_no_tag_and_the_next_push_completes() {
    let Some(reg) = registry("interrupted push") else {
        return;
    };
    if !require_privileged("interrupted push") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = image_context(2048);
    let repo = unique("interrupted");
    let direct = format!("{}/{repo}:1", reg.addr);
    // Every connection through the proxy dies after 256 KiB of upload.
    let p = proxy(&reg.addr, Fault::DropUploadAfter(256 * 1024));
    let via_proxy = format!("{}/{repo}:1", p.addr);
    build(root.path(), ctx.path(), &["-t", &direct, "-t", &via_proxy]);
    let (ok, _, stderr) = run(root.path(), &["push", &via_proxy], None);
    assert!(!ok, "{stderr}");
    assert!(
        says(&stderr, &format!("cannot push {via_proxy}")),
        "{stderr}"
    );
    drop(p);

    let fresh = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(fresh.path(), &["pull", &direct], None);
    assert!(!ok, "the tag must not exist after a failed push");
    assert!(says(&stderr, "not found"), "{stderr}");

    let (ok, digest, stderr) = run(root.path(), &["push", &direct], None);
    assert!(ok, "{stderr}");
    let (ok, pulled, stderr) = run(fresh.path(), &["pull", &direct], None);
    assert!(ok, "{stderr}");
    assert_eq!(pulled, digest);
}

/// PUTs a manifest or index with a minimal HTTP/1.1 client (the registry is plain HTTP).
fn put_manifest(addr: &str, repo: &str, tag: &str, media_type: &str, body: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PUT /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
}

#[test]
fn bad_input_gives_clear_errors_and_leaves_nothing_behind() {
    let Some(reg) = registry("registry errors") else {
        return;
    };
    if !require_privileged("registry errors") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let fresh = tempfile::tempdir().unwrap();

    // Unknown host.
    let (ok, _, stderr) = run(fresh.path(), &["pull", "no-such-host.invalid/a/b:1"], None);
    assert!(!ok);
    assert!(
        says(&stderr, "cannot pull no-such-host.invalid/a/b:1")
            && says(&stderr, "cannot reach registry no-such-host.invalid"),
        "{stderr}"
    );

    // Invalid reference.
    let (ok, _, stderr) = run(fresh.path(), &["pull", "Bad/Name:x"], None);
    assert!(!ok && says(&stderr, "invalid image reference"), "{stderr}");

    // Missing manifest, by tag in a build (the error names the FROM line).
    let missing = format!("{}/{}:nope", reg.addr, unique("missing"));
    let ctx = context_with(&[("Dockerfile", &format!("FROM {missing}\nCOPY busybox /\n"))]);
    let (ok, _, stderr) = run(fresh.path(), &["build", ctx.path().to_str().unwrap()], None);
    assert!(!ok);
    assert!(
        says(&stderr, &format!("cannot pull {missing}")) && says(&stderr, "not found"),
        "{stderr}"
    );

    // A blob corrupted in flight.
    let ctx = image_context(512);
    let repo = unique("corrupt");
    let image = format!("{}/{repo}:1", reg.addr);
    build(root.path(), ctx.path(), &["-t", &image]);
    let (ok, digest, stderr) = run(root.path(), &["push", &image], None);
    assert!(ok, "{stderr}");
    let p = proxy(&reg.addr, Fault::CorruptDownloadAt(200_000));
    let bad = format!("{}/{repo}:1", p.addr);
    let (ok, _, stderr) = run(fresh.path(), &["pull", &bad], None);
    assert!(!ok);
    assert!(
        says(&stderr, &format!("cannot pull {bad}")) && says(&stderr, "does not match its digest"),
        "{stderr}"
    );
    drop(p);
    assert!(
        temp_files(fresh.path()).is_empty(),
        "{:?}",
        temp_files(fresh.path())
    );
    let stored = std::fs::read_dir(fresh.path().join("blobs/sha256")).unwrap();
    for entry in stored.flatten() {
        // Every blob in the store is intact.
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            kiln_builder_core::content::Digest::of(&bytes).hex(),
            entry.file_name().to_string_lossy()
        );
    }

    // An index with only another platform.
    let manifest_size = Std::new("sh")
        .arg("-c")
        .arg(format!(
            "wc -c < {}/blobs/sha256/{}",
            root.path().display(),
            digest.trim_start_matches("sha256:")
        ))
        .output()
        .unwrap();
    let size: u64 = String::from_utf8_lossy(&manifest_size.stdout)
        .trim()
        .parse()
        .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}
        }]
    });
    put_manifest(
        &reg.addr,
        &repo,
        "armonly",
        "application/vnd.oci.image.index.v1+json",
        index.to_string().as_bytes(),
    );
    let arm = format!("{}/{repo}:armonly", reg.addr);
    let (ok, _, stderr) = run(fresh.path(), &["pull", &arm], None);
    assert!(!ok);
    assert!(
        says(&stderr, &format!("cannot pull {arm}"))
            && says(&stderr, "no image for platform linux/amd64")
            && says(&stderr, "linux/arm64/v8"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(
        fresh.path(),
        &["pull", "--platform", "linux/arm64", &arm],
        None,
    );
    assert!(ok, "{stderr}");
}

#[test]
fn a_download_that_breaks_is_resumed() {
    let Some(reg) = registry("resumed pull") else {
        return;
    };
    if !require_privileged("resumed pull") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = image_context(1024);
    let repo = unique("resume");
    let image = format!("{}/{repo}:1", reg.addr);
    build(root.path(), ctx.path(), &["-t", &image]);
    let (ok, digest, stderr) = run(root.path(), &["push", &image], None);
    assert!(ok, "{stderr}");

    // The first connection that carries 600 KB down is cut there; the pull goes on from the
    // bytes it has (a Range request) and the blob verifies.
    let p = proxy(&reg.addr, Fault::DropDownloadOnceAfter(600_000));
    let via = format!("{}/{repo}:1", p.addr);
    let fresh = tempfile::tempdir().unwrap();
    let out = kiln(fresh.path())
        .env("DOCKER_CONFIG", fresh.path().join("none"))
        .env("RUST_LOG", "kiln_builder_core=debug")
        .args(["pull", &via])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
    assert!(temp_files(fresh.path()).is_empty());
    // Resumed, not restarted: what came down is the blobs once plus headers, not 600 KB more.
    let blobs: u64 = std::fs::read_dir(fresh.path().join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let down = p.down.load(std::sync::atomic::Ordering::SeqCst) as u64;
    assert!(blobs > 1_000_000, "{blobs}");
    assert!(
        down < blobs + 100_000,
        "{down} bytes came down for {blobs} bytes of blobs"
    );
}

#[test]
fn a_pulled_image_whose_blobs_are_gone_is_pulled_again() {
    let Some(reg) = registry("re-pull") else {
        return;
    };
    if !require_privileged("re-pull") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = image_context(8);
    let image = format!("{}/{}:1", reg.addr, unique("repull"));
    build(root.path(), ctx.path(), &["-t", &image]);
    let (ok, _, stderr) = run(root.path(), &["push", &image], None);
    assert!(ok, "{stderr}");

    let fresh = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(fresh.path(), &["pull", &image], None);
    assert!(ok, "{stderr}");
    // Remove every blob but the JSON documents: the tag stays, its layers are gone.
    for entry in std::fs::read_dir(fresh.path().join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        if entry.metadata().unwrap().len() > 10_000 {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let ctx2 = context_with(&[(
        "Dockerfile",
        &format!("FROM {image}\nRUN [\"/bin/busybox\", \"test\", \"-f\", \"/blob\"]\n"),
    )]);
    let (ok, _, stderr) = run(
        fresh.path(),
        &["build", ctx2.path().to_str().unwrap()],
        None,
    );
    assert!(ok, "{stderr}");
}
