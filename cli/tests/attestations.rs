//! Supply chain: `--sbom` (an SPDX 2.3 document kiln makes from the image's package databases,
//! checked with the `spdx-tools` validator and against `dpkg-query -W` on the same database) and
//! `--provenance` (SLSA provenance), attached as BuildKit attaches them and pushed to a real
//! registry as an index with an attestation manifest (one per platform image of a multi-platform
//! build); `kiln inspect --attestations`.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command as Std;

use kiln_builder_core::testing::{foreign_busybox_dir, privileged_required, registry};

mod common;
use common::platforms::context;
use common::{assert_ok, context_with, kiln, tool, try_build, unique};

/// The `pyspdxtools` validator (`KILN_TEST_SPDX_VALIDATOR`, else the venv scripts/test.sh
/// makes); `None` (or a panic in CI) when it is missing.
fn spdx_validator() -> Option<PathBuf> {
    let path = std::env::var_os("KILN_TEST_SPDX_VALIDATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/kiln-spdx-venv/bin/pyspdxtools"));
    if path.is_file() {
        return Some(path);
    }
    if privileged_required() {
        panic!(
            "{} is missing (scripts/test.sh installs spdx-tools)",
            path.display()
        );
    }
    eprintln!("skipping the SPDX validation: no {}", path.display());
    None
}

fn attestations(root: &Path, image: &str) -> Vec<serde_json::Value> {
    let out = kiln(root)
        .args(["inspect", "--attestations", image])
        .output()
        .unwrap();
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn predicate<'a>(statements: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    statements
        .iter()
        .find(|s| s["predicateType"] == kind)
        .unwrap_or_else(|| panic!("no {kind} statement in {statements:?}"))
}

#[test]
fn the_sbom_lists_what_dpkg_query_lists_and_validates() {
    if !tool("dpkg-query") {
        return;
    }
    // A Debian package database (this machine's), a Python and a node package.
    let status = std::fs::read_to_string("/var/lib/dpkg/status").unwrap();
    let ctx = context_with(&[
        ("status", status.as_str()),
        (
            "six-1.16.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n",
        ),
        (
            "left-pad/package.json",
            r#"{"name": "left-pad", "version": "1.3.0"}"#,
        ),
        (
            "Dockerfile",
            "FROM scratch\nCOPY status /var/lib/dpkg/status\n\
             COPY six-1.16.0.dist-info /usr/lib/python3/dist-packages/six-1.16.0.dist-info\n\
             COPY left-pad /app/node_modules/left-pad\n",
        ),
    ]);
    let root = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = try_build(root.path(), ctx.path(), &["--sbom", "-t", "sbom-test:1"]);
    assert!(ok, "{stderr}");
    let statements = attestations(root.path(), "sbom-test:1");
    let doc = &predicate(&statements, "https://spdx.dev/Document")["predicate"];
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");

    // What dpkg-query lists from the same database.
    let admin = tempfile::tempdir().unwrap();
    std::fs::copy(ctx.path().join("status"), admin.path().join("status")).unwrap();
    let out = Std::new("dpkg-query")
        .arg(format!("--admindir={}", admin.path().display()))
        .args(["-W", "-f", "${Package}\t${Version}\n"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let want: BTreeSet<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, v)| !v.is_empty())
        .map(|(p, v)| (p.to_string(), v.to_string()))
        .collect();
    let packages = doc["packages"].as_array().unwrap();
    let purl = |p: &serde_json::Value| {
        p["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let got: BTreeSet<(String, String)> = packages
        .iter()
        .filter(|p| purl(p).starts_with("pkg:deb/"))
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["versionInfo"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(want.len() > 10, "{want:?}");
    assert_eq!(got, want);
    assert!(packages.iter().any(|p| purl(p) == "pkg:pypi/six@1.16.0"));
    assert!(packages.iter().any(|p| purl(p) == "pkg:npm/left-pad@1.3.0"));

    // An off-the-shelf validator accepts the document.
    if let Some(validator) = spdx_validator() {
        let file = root.path().join("sbom.spdx.json");
        std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
        let out = Std::new(validator).arg("-i").arg(&file).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(!text.to_lowercase().contains("invalid"), "{text}");
    }
}

fn get_json(url: &str) -> serde_json::Value {
    let out = Std::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
            url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "GET {url}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn provenance_and_sbom_are_pushed_as_an_attestation_manifest() {
    let Some(reg) = registry("provenance push") else {
        return;
    };
    if !tool("curl") {
        return;
    }
    let ctx = context_with(&[(
        "Dockerfile",
        "FROM scratch\nARG GREETING\nCOPY busybox /bin/busybox\n",
    )]);
    let root = tempfile::tempdir().unwrap();
    let repo = unique("attest");
    let image = format!("{}/{repo}:1", reg.addr);
    let meta = root.path().join("meta.json");
    let out = kiln(root.path())
        .env("KILN_TEST_TOKEN", "s3cr3t-value-never-shown")
        .args([
            "build",
            "--provenance=mode=max",
            "--sbom",
            "--build-arg",
            "GREETING=hello",
            "--secret",
            "id=token,env=KILN_TEST_TOKEN",
            "--annotation",
            "index:org.opencontainers.image.title=attested",
            "--push",
            "-t",
            &image,
            "--metadata-file",
            meta.to_str().unwrap(),
        ])
        .arg(ctx.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let meta_text = std::fs::read_to_string(&meta).unwrap();
    assert!(!meta_text.contains("s3cr3t"), "{meta_text}");
    let meta: serde_json::Value = serde_json::from_str(&meta_text).unwrap();
    let provenance = &meta["buildx.build.provenance"];
    assert_eq!(
        provenance["invocation"]["parameters"]["args"]["build-arg:GREETING"],
        "hello"
    );
    assert_eq!(
        provenance["invocation"]["parameters"]["secrets"][0]["id"],
        "token"
    );

    // The tag is an index: the image, then its attestation manifest.
    let base = format!("http://{}/v2/{repo}", reg.addr);
    let index = get_json(&format!("{base}/manifests/1"));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        meta["containerimage.digest"],
        kiln_builder_core::content::Digest::of(
            &Std::new("curl")
                .args([
                    "-sf",
                    "-H",
                    "Accept: application/vnd.oci.image.index.v1+json",
                    &format!("{base}/manifests/1"),
                ])
                .output()
                .unwrap()
                .stdout
        )
        .to_string()
    );
    assert_eq!(
        index["annotations"]["org.opencontainers.image.title"],
        "attested"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    let image_digest = manifests[0]["digest"].as_str().unwrap();
    assert_eq!(manifests[0]["platform"]["architecture"], "amd64");
    let att = &manifests[1];
    assert_eq!(
        att["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        att["annotations"]["vnd.docker.reference.digest"],
        image_digest
    );
    let att_manifest = get_json(&format!(
        "{base}/manifests/{}",
        att["digest"].as_str().unwrap()
    ));
    let layers = att_manifest["layers"].as_array().unwrap();
    let types: BTreeSet<&str> = layers
        .iter()
        .map(|l| {
            l["annotations"]["in-toto.io/predicate-type"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        types,
        BTreeSet::from([
            "https://slsa.dev/provenance/v0.2",
            "https://spdx.dev/Document"
        ])
    );
    for l in layers {
        assert_eq!(l["mediaType"], "application/vnd.in-toto+json");
        let statement = get_json(&format!("{base}/blobs/{}", l["digest"].as_str().unwrap()));
        assert_eq!(statement["_type"], "https://in-toto.io/Statement/v0.1");
        assert_eq!(
            statement["subject"][0]["digest"]["sha256"],
            image_digest.trim_start_matches("sha256:")
        );
        assert!(!statement.to_string().contains("s3cr3t"));
    }

    // The image itself pulls as before, and the store shows the attestations.
    let fresh = tempfile::tempdir().unwrap();
    let out = kiln(fresh.path()).args(["pull", &image]).output().unwrap();
    assert_ok(&out);
    let statements = attestations(root.path(), &image);
    assert_eq!(statements.len(), 2);
    predicate(&statements, "https://slsa.dev/provenance/v0.2");

    // Collection keeps them while the tag lives.
    let out = kiln(root.path()).args(["prune", "--all"]).output().unwrap();
    assert_ok(&out);
    assert_eq!(attestations(root.path(), &image).len(), 2);
}

/// A multi-platform image gets one attestation manifest per platform image, in the pushed index
/// and in an OCI layout; platform annotations go to their platform's manifest only.
#[test]
fn each_platform_gets_its_attestation_manifest() {
    let Some(reg) = registry("multi-platform provenance") else {
        return;
    };
    if !tool("curl") {
        return;
    }
    let Some(bb) = foreign_busybox_dir("multi-platform provenance", &["amd64", "arm64"]) else {
        return;
    };
    let ctx = context(
        &bb,
        &["amd64", "arm64"],
        "FROM scratch\nARG TARGETARCH\nCOPY busybox-${TARGETARCH} /bin/busybox\n",
    );
    let root = tempfile::tempdir().unwrap();
    let repo = unique("attest-multi");
    let image = format!("{}/{repo}:1", reg.addr);
    let meta = root.path().join("meta.json");
    let layout = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = try_build(
        root.path(),
        ctx.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--provenance",
            "--sbom",
            "--annotation",
            "index:org.opencontainers.image.title=multi",
            "--annotation",
            "manifest[linux/arm64]:dev.example.arch=arm64",
            "--annotation",
            "index-descriptor:dev.example.layout=1",
            "--push",
            "-t",
            &image,
            "--metadata-file",
            meta.to_str().unwrap(),
            "-o",
            &format!("type=oci,dest={},tar=false", layout.path().display()),
        ],
    );
    assert!(ok, "{stderr}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    for platform in ["linux/amd64", "linux/arm64"] {
        let p = &meta[format!("buildx.build.provenance/{platform}")];
        assert_eq!(
            p["invocation"]["environment"]["platform"], platform,
            "{meta}"
        );
    }

    let base = format!("http://{}/v2/{repo}", reg.addr);
    let index = get_json(&format!("{base}/manifests/1"));
    assert_eq!(
        index["annotations"]["org.opencontainers.image.title"],
        "multi"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 4, "{index}");
    for (n, arch) in ["amd64", "arm64"].iter().enumerate() {
        let img = &manifests[n];
        assert_eq!(img["platform"]["architecture"], *arch);
        let att = manifests
            .iter()
            .find(|m| m["annotations"]["vnd.docker.reference.digest"] == img["digest"])
            .unwrap_or_else(|| panic!("no attestation manifest for {arch}: {index}"));
        assert_eq!(
            att["annotations"]["vnd.docker.reference.type"],
            "attestation-manifest"
        );
        assert_eq!(att["platform"]["architecture"], "unknown");
        let att_manifest = get_json(&format!(
            "{base}/manifests/{}",
            att["digest"].as_str().unwrap()
        ));
        let layers = att_manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        for l in layers {
            let statement = get_json(&format!("{base}/blobs/{}", l["digest"].as_str().unwrap()));
            let subject = &statement["subject"][0];
            assert_eq!(
                subject["digest"]["sha256"],
                img["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:")
            );
            assert!(
                subject["name"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("platform=linux%2F{arch}")),
                "{statement}"
            );
        }
        let manifest = get_json(&format!(
            "{base}/manifests/{}",
            img["digest"].as_str().unwrap()
        ));
        let annotated = manifest["annotations"]["dev.example.arch"] == "arm64";
        assert_eq!(annotated, *arch == "arm64", "{manifest}");
    }

    // The OCI layout holds the same index.
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        top["manifests"][0]["annotations"]["dev.example.layout"],
        "1"
    );
    let digest = top["manifests"][0]["digest"].as_str().unwrap();
    let local: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .path()
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(local["manifests"].as_array().unwrap().len(), 4, "{local}");

    // The store shows each platform's statements.
    let out = kiln(root.path())
        .args([
            "inspect",
            "--attestations",
            "--platform",
            "linux/arm64",
            &image,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let statements: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let p = predicate(&statements, "https://slsa.dev/provenance/v0.2");
    assert_eq!(
        p["predicate"]["invocation"]["environment"]["platform"],
        "linux/arm64"
    );
}
