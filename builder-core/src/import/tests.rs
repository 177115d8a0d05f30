//! Import tests: platform selection through nested indexes, tags, and verification.

use std::fs;

use super::*;
use crate::content::ContentStore;
use crate::export::tests::{have, run, setup};
use crate::export::{ExportOptions, export_oci_dir};
use crate::image::{Index, media};

/// An OCI layout whose one tag points at an index with an arm64 and an amd64 image.
fn multi_platform_layout(dir: &Path) -> (tempfile::TempDir, Descriptor) {
    let (keep, store, img) = setup();
    let amd64 = export_oci_dir(&store, &img, dir, &ExportOptions::default()).unwrap();
    // A fake arm64 manifest: same blobs, different platform in the index.
    let mut arm = amd64.clone();
    arm.platform = Some(Platform::new("linux", "arm64", Some("v8")));
    arm.digest = crate::content::Digest::of(b"not stored");
    let mut amd = amd64.clone();
    amd.platform = Some(Platform::host());
    let nested = Index {
        manifests: vec![arm, amd],
        ..Index::default()
    };
    let bytes = nested.to_canonical_json().unwrap();
    let info = crate::content::Digest::of(&bytes);
    fs::write(dir.join("blobs/sha256").join(info.hex()), &bytes).unwrap();
    let mut top = Index::default();
    crate::content::index_set_tag(
        &mut top,
        "multi",
        &Descriptor::new(media::OCI_INDEX, info, bytes.len() as u64),
    );
    top.manifests.push(amd64.clone()); // an untagged entry too
    crate::content::write_index(&dir.join("index.json"), &top).unwrap();
    (keep, amd64)
}

#[test]
fn oci_dir_import_picks_platform_through_index() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let (_src, amd64) = multi_platform_layout(&layout);
    let target = ContentStore::open(dir.path().join("target")).unwrap();
    let img = import_oci_dir(&target, &layout, Some("multi"), &Platform::host()).unwrap();
    assert_eq!(img.manifest_desc.digest, amd64.digest);
    assert_eq!(img.config.rootfs.diff_ids.len(), 2);
    for l in &img.manifest.layers {
        target.verify(&l.digest).unwrap();
    }
    let err = import_oci_dir(
        &target,
        &layout,
        Some("multi"),
        &Platform::parse("linux/s390x").unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, ImportError::NoPlatform { .. }), "{err}");
    let err = import_oci_dir(&target, &layout, Some("nope"), &Platform::host()).unwrap_err();
    assert!(
        matches!(&err, ImportError::TagNotFound { available, .. } if available == &["multi"]),
        "{err}"
    );
    let err = import_oci_dir(&target, &layout, None, &Platform::host()).unwrap_err();
    assert!(
        matches!(err, ImportError::Ambiguous { count: 2, .. }),
        "{err}"
    );
}

#[test]
fn corrupt_or_missing_blobs_are_rejected() {
    let (dir, store, img) = setup();
    let layout = dir.path().join("layout");
    let opts = ExportOptions {
        tags: vec!["t".into()],
        ..Default::default()
    };
    let exported = export_oci_dir(&store, &img, &layout, &opts).unwrap();
    let m: Manifest = store.read_json(&exported.digest).unwrap();
    let layer = layout.join("blobs/sha256").join(m.layers[0].digest.hex());
    let mut bytes = fs::read(&layer).unwrap();
    bytes[20] ^= 1;
    fs::write(&layer, &bytes).unwrap();
    let target = ContentStore::open(dir.path().join("target")).unwrap();
    let err = import_oci_dir(&target, &layout, Some("t"), &Platform::host()).unwrap_err();
    assert!(
        matches!(&err, ImportError::Content(c) if c.is_corrupt()),
        "{err}"
    );
    assert!(!target.has(&m.layers[0].digest));
    fs::remove_file(&layer).unwrap();
    let err = import_oci_dir(&target, &layout, Some("t"), &Platform::host()).unwrap_err();
    assert!(matches!(err, ImportError::MissingBlob { .. }), "{err}");
}

#[test]
fn skopeo_written_docker_manifest_is_converted_to_oci() {
    if !have("skopeo") {
        return;
    }
    let (dir, store, img) = setup();
    let layout = dir.path().join("layout");
    export_oci_dir(
        &store,
        &img,
        &layout,
        &ExportOptions {
            tags: vec!["t".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let docker_layout = dir.path().join("docker-layout");
    run(std::process::Command::new("skopeo")
        .args(["copy", "--format", "v2s2"])
        .arg(format!("oci:{}:t", layout.display()))
        .arg(format!("oci:{}:d", docker_layout.display())));
    let target = ContentStore::open(dir.path().join("target")).unwrap();
    let got = import_oci_dir(&target, &docker_layout, Some("d"), &Platform::host()).unwrap();
    assert_eq!(
        got.manifest.media_type.as_deref(),
        Some(media::OCI_MANIFEST)
    );
    assert_eq!(got.manifest.config.media_type, media::OCI_CONFIG);
    assert!(
        got.manifest
            .layers
            .iter()
            .all(|l| l.media_type == media::OCI_LAYER_GZIP)
    );
    assert_eq!(
        target
            .read_json::<Manifest>(&got.manifest_desc.digest)
            .unwrap(),
        got.manifest
    );
}

#[test]
fn archives_written_by_skopeo_import() {
    if !have("skopeo") {
        return;
    }
    let (dir, store, img) = setup();
    let layout = dir.path().join("layout");
    let opts = ExportOptions {
        tags: vec!["t".into()],
        ..Default::default()
    };
    let exported = export_oci_dir(&store, &img, &layout, &opts).unwrap();
    let oci_tar = dir.path().join("oci.tar");
    let docker_tar = dir.path().join("docker.tar");
    run(std::process::Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:t", layout.display()))
        .arg(format!("oci-archive:{}:t", oci_tar.display())));
    // skopeo writes the pre-Docker-25 layout: <hex>.tar layers and <hex>.json config.
    run(std::process::Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:t", layout.display()))
        .arg(format!(
            "docker-archive:{}:example.com/app:7",
            docker_tar.display()
        )));
    let target = ContentStore::open(dir.path().join("target")).unwrap();
    let from_oci = import_oci_archive(
        &target,
        fs::File::open(&oci_tar).unwrap(),
        Some("t"),
        &Platform::host(),
    )
    .unwrap();
    assert_eq!(from_oci.manifest_desc.digest, exported.digest);
    let from_docker = import_docker_archive(
        &target,
        fs::File::open(&docker_tar).unwrap(),
        Some("example.com/app:7"),
    )
    .unwrap();
    assert_eq!(from_docker.config, from_oci.config);
    assert_eq!(from_docker.manifest.layers.len(), 2);
    // skopeo decompresses layers for docker-archive: the blobs are the diff_ids.
    let diff_ids: Vec<_> = from_docker
        .manifest
        .layers
        .iter()
        .map(|l| l.digest)
        .collect();
    assert_eq!(diff_ids, from_docker.config.rootfs.diff_ids);
    let err = import_docker_archive(&target, fs::File::open(&docker_tar).unwrap(), Some("other"))
        .unwrap_err();
    assert!(matches!(err, ImportError::TagNotFound { .. }), "{err}");
}
