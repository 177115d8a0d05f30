//! The outputs and auth files CI jobs use: `-o type=registry`, `--annotation`,
//! `--metadata-file`, `--load` into podman, podman's auth files and `REGISTRY_AUTH_FILE`, and
//! the quiet `pull`/`push` scripts read.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::Path;
use std::process::Command as Std;

use kiln_builder_core::testing::{basic_auth_registry, registry, require_privileged};

mod common;
use common::{assert_ok, context_with, kiln, raw_manifest_bytes, tool, try_build, unique};

const DOCKERFILE: &str = "FROM scratch\nCOPY busybox /bin/busybox\n";

/// The raw manifest a registry serves for `reference`.
fn raw_manifest(reference: &str) -> serde_json::Value {
    serde_json::from_slice(&raw_manifest_bytes(reference)).unwrap()
}

#[test]
fn output_type_registry_pushes_with_annotations_and_metadata() {
    let Some(reg) = registry("-o type=registry") else {
        return;
    };
    if !tool("skopeo") {
        return;
    }
    let ctx = context_with(&[("Dockerfile", DOCKERFILE)]);
    let root = tempfile::tempdir().unwrap();
    let image = format!("{}/{}:1", reg.addr, unique("out-registry"));
    let meta = root.path().join("meta.json");
    let (ok, _, stderr) = try_build(
        root.path(),
        ctx.path(),
        &[
            "-o",
            &format!("type=registry,name={image}"),
            "--annotation",
            "org.opencontainers.image.source=https://example.com/repo",
            "--annotation",
            "manifest:dev.example.k=v",
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains(&format!("pushed {image}@")), "{stderr}");
    let manifest = raw_manifest(&image);
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.source"],
        "https://example.com/repo"
    );
    assert_eq!(manifest["annotations"]["dev.example.k"], "v");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    assert!(meta["image.name"].as_str().unwrap().contains(&image));
    assert!(
        meta["containerimage.digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    // A registry output needs a name; a bad annotation is a usage error.
    let (ok, _, stderr) = try_build(root.path(), ctx.path(), &["-o", "type=registry"]);
    assert!(!ok && stderr.contains("need a name to push to"), "{stderr}");
    let out = kiln(root.path())
        .args(["build", "--annotation", "bogus:k=v"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn quiet_pull_and_push_print_only_references() {
    let Some(reg) = registry("quiet pull and push") else {
        return;
    };
    let ctx = context_with(&[("Dockerfile", DOCKERFILE)]);
    let root = tempfile::tempdir().unwrap();
    let image = format!("{}/{}:1", reg.addr, unique("quiet"));
    let (ok, _, stderr) = try_build(root.path(), ctx.path(), &["-t", &image]);
    assert!(ok, "{stderr}");
    // Quiet: nothing on stderr, only references on stdout.
    let quiet = |root: &Path, args: &[&str]| {
        let out = kiln(root).args(args).output().unwrap();
        assert_ok(&out);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let stdout = quiet(root.path(), &["push", "-q", &image]);
    assert!(
        stdout.starts_with(&format!("{image}@sha256:")) && stdout.lines().count() == 1,
        "{stdout}"
    );
    let fresh = tempfile::tempdir().unwrap();
    let stdout = quiet(fresh.path(), &["pull", "-q", &image]);
    assert_eq!(stdout, format!("{image}\n"));
}

fn auth_json(path: &Path, registry: &str, user: &str, password: &str) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        serde_json::json!({"auths": {registry: {"auth": auth}}}).to_string(),
    )
    .unwrap();
}

#[test]
fn podman_auth_files_and_registry_auth_file_are_used() {
    let Some(reg) = basic_auth_registry("podman auth files") else {
        return;
    };
    let (user, password) = reg.credentials.clone().unwrap();
    let ctx = context_with(&[("Dockerfile", DOCKERFILE)]);
    let root = tempfile::tempdir().unwrap();
    let image = format!("{}/{}:1", reg.addr, unique("auth-files"));
    let (ok, _, stderr) = try_build(root.path(), ctx.path(), &["-t", &image]);
    assert!(ok, "{stderr}");
    let empty = tempfile::tempdir().unwrap();
    let push = |env: &[(&str, &Path)]| {
        let mut c = kiln(root.path());
        c.args(["push", &image])
            .env("DOCKER_CONFIG", empty.path())
            .env("HOME", empty.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("REGISTRY_AUTH_FILE");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // No credentials anywhere: refused.
    let (ok, stderr) = push(&[]);
    assert!(!ok, "{stderr}");

    // podman login's file under $XDG_RUNTIME_DIR.
    let run = tempfile::tempdir().unwrap();
    auth_json(
        &run.path().join("containers/auth.json"),
        &reg.addr,
        &user,
        &password,
    );
    let (ok, stderr) = push(&[("XDG_RUNTIME_DIR", run.path())]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains(&password));

    // A file named by REGISTRY_AUTH_FILE.
    let other = tempfile::tempdir().unwrap();
    let file = other.path().join("ci-auth.json");
    auth_json(&file, &reg.addr, &user, &password);
    let (ok, stderr) = push(&[("REGISTRY_AUTH_FILE", &file)]);
    assert!(ok, "{stderr}");
}

#[test]
fn load_streams_the_image_into_podman_or_says_what_is_missing() {
    let ctx = context_with(&[("Dockerfile", DOCKERFILE)]);
    let root = tempfile::tempdir().unwrap();
    // Neither docker nor podman on $PATH: a clear error before anything is built.
    let bin = tempfile::tempdir().unwrap();
    let out = kiln(root.path())
        .env("PATH", bin.path())
        .args(["build", "--load", "-t", "kiln-load-test:1"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--load needs docker"), "{stderr}");
    assert!(!stderr.contains("steps cached"), "{stderr}");
    // One image only: an index cannot be loaded.
    let out = kiln(root.path())
        .args(["build", "--load", "--platform", "linux/amd64,linux/arm64"])
        .arg(ctx.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--load needs a single platform"),
        "{stderr}"
    );

    if !require_privileged("--load into podman") || !tool("podman") {
        return;
    }
    let name = format!("localhost/kiln-load-test-{}:1", std::process::id());
    // Podman alone on $PATH: `--load` prefers docker when its daemon answers (as buildx
    // does), and a machine may have both.
    let podman = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("podman"))
                .find(|candidate| candidate.is_file())
        })
        .expect("podman is on $PATH");
    let only_podman = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&podman, only_podman.path().join("podman")).unwrap();
    let out = kiln(root.path())
        .env("PATH", only_podman.path())
        .args(["build", "--load", "-t", &name])
        .arg(ctx.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("loaded into podman"), "{stderr}");
    let out = Std::new("podman")
        .args(["image", "inspect", "--format", "{{.Id}}", &name])
        .output()
        .unwrap();
    assert_ok(&out);
    let _ = Std::new("podman").args(["rmi", "-f", &name]).output();
}

#[test]
fn index_annotations_on_one_platform_without_attestations_are_refused_as_buildkit_does() {
    let ctx = context_with(&[("Dockerfile", DOCKERFILE)]);
    let root = tempfile::tempdir().unwrap();
    // One platform and no attestations: the image is a plain manifest, there is no index to
    // annotate. A usage error naming the flag, before anything is built.
    for spec in [
        "index:org.opencontainers.image.title=t",
        "index-descriptor:org.opencontainers.image.title=t",
    ] {
        for platform in [None, Some("linux/amd64")] {
            let mut cmd = kiln(root.path());
            cmd.args(["build", "--annotation", spec]);
            if let Some(p) = platform {
                cmd.args(["--platform", p]);
            }
            let out = cmd.arg(ctx.path()).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{spec} {platform:?}: {stderr}");
            let kind = spec.split(':').next().unwrap();
            assert!(
                stderr.contains(&format!(
                    "--annotation {kind}:org.opencontainers.image.title"
                )),
                "{stderr}"
            );
            assert!(stderr.contains("--provenance"), "{stderr}");
            assert!(!stderr.contains("steps cached"), "{stderr}");
        }
    }

    // `manifest-descriptor` alone makes no index either: it goes on the manifest's own
    // descriptor, the entry of an OCI layout's index.json.
    let dest = root.path().join("layout");
    let (ok, _, stderr) = try_build(
        root.path(),
        ctx.path(),
        &[
            "--annotation",
            "manifest-descriptor:dev.example.d=1",
            "-o",
            &format!("type=oci,tar=false,dest={}", dest.display()),
        ],
    );
    assert!(ok, "{stderr}");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{index}"
    );
    assert_eq!(entry["annotations"]["dev.example.d"], "1", "{index}");
}
