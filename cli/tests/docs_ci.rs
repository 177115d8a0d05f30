//! docs/ci.md cannot rot: its `bash tested` blocks run as they are against the local registry
//! (twice, the second time in an empty store, which must get every step from the cache), and
//! every line of them must appear in the page's workflow files.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::Path;
use std::process::Command as Std;

use kiln_builder_core::testing::{registry, require_privileged};

mod common;
use common::{git, tool, unique};

/// The fenced blocks of a markdown file: (info string, text).
fn blocks(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some((_, text)), None) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn page() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ci.md")).unwrap()
}

#[test]
fn the_workflows_run_the_tested_commands() {
    let blocks = blocks(&page());
    let yaml: Vec<&str> = blocks
        .iter()
        .filter(|(i, _)| i == "yaml")
        .flat_map(|(_, t)| t.lines().map(str::trim))
        .collect();
    let tested: Vec<&String> = blocks
        .iter()
        .filter(|(i, _)| i == "bash tested")
        .map(|(_, t)| t)
        .collect();
    assert_eq!(tested.len(), 2);
    for block in tested {
        for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
            assert!(
                yaml.contains(&line),
                "docs/ci.md: no workflow runs {line:?}"
            );
        }
    }
}

#[test]
fn the_tested_blocks_build_push_and_hit_the_cache_on_a_fresh_runner() {
    let Some(reg) = registry("docs/ci.md") else {
        return;
    };
    if !require_privileged("docs/ci.md") || !tool("git") {
        return;
    }
    let repo = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", repo.path().join("busybox")).unwrap();
    std::fs::write(
        repo.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo step-ran-$((40+2)); echo x > /x\"]\n",
    )
    .unwrap();
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "image"]);
    let kiln = assert_cmd::cargo::cargo_bin("kiln");
    let path = format!(
        "{}:{}",
        kiln.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let image = unique("docs");
    let empty = tempfile::tempdir().unwrap();
    for (n, (_, block)) in blocks(&page())
        .iter()
        .filter(|(i, _)| i == "bash tested")
        .enumerate()
    {
        for run in ["first", "second"] {
            // Each run is a fresh runner: an empty store.
            let store = tempfile::tempdir().unwrap();
            let out = Std::new("bash")
                .args(["-euo", "pipefail", "-c", block])
                .current_dir(repo.path())
                .env("PATH", &path)
                .env("KILN_ROOT", store.path())
                .env("DOCKER_CONFIG", empty.path())
                .env("REGISTRY", &reg.addr)
                .env("IMAGE", &image)
                .env("TAG", format!("{n}"))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "block {n}, {run} run: {stderr}");
            if run == "first" {
                // Each block's first run has no cache of its kind yet: the step runs.
                assert!(stderr.contains("step-ran-42"), "block {n}: {stderr}");
            }
            if run == "second" {
                // The marker cannot come from the image name (`docs-<pid>-...`, a pid may
                // start with 42): only the RUN step prints it.
                assert!(!stderr.contains("step-ran-42"), "block {n}: {stderr}");
                assert!(
                    stderr.contains("2 of 2 steps cached"),
                    "block {n}: {stderr}"
                );
            }
        }
    }
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.path().join("build-metadata.json")).unwrap(),
    )
    .unwrap();
    assert!(meta["buildx.build.provenance"].is_object(), "{meta}");
}
