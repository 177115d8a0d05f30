#![allow(clippy::unwrap_used)]

use super::*;
use crate::export::prepare_outgoing;
use crate::image::{
    ANNOTATION_REFERENCE_DIGEST, ANNOTATION_REFERENCE_TYPE, Annotations, Compression, Index,
    Platform, media,
};
use crate::layer::CompressOptions;

fn options() -> AttachOptions {
    let mut annotations = Annotations::default();
    annotations
        .add("index:org.opencontainers.image.title=t")
        .unwrap();
    annotations.add("manifest-descriptor:d=1").unwrap();
    AttachOptions {
        sbom: true,
        annotations,
        name: "docker.io/library/test:1".into(),
        created: "2026-01-01T00:00:00Z".into(),
        ..AttachOptions::default()
    }
}

fn diff_ids(store: &ContentStore, image: &Descriptor) -> Vec<Digest> {
    let m: crate::image::Manifest = store.read_json(&image.digest).unwrap();
    let c: crate::image::ImageConfig = store.read_json(&m.config.digest).unwrap();
    c.rootfs.diff_ids
}

fn statement_subject(store: &ContentStore, layer: &Descriptor) -> String {
    let s: serde_json::Value = store.read_json(&layer.digest).unwrap();
    s["subject"][0]["digest"]["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_image_with_attachments_leaves_as_an_index_with_its_attestation_manifest() {
    let (_dir, store, image) = crate::export::tests::setup();
    let layers = diff_ids(&store, &image);
    let (tagged, _) = attach(&store, &image, &layers, &options()).unwrap();
    assert!(tagged.annotation(ANNOTATION_ATTACHMENTS).is_some());
    let names = vec!["docker.io/library/test:1".to_string()];
    let out = prepare_outgoing(
        &store,
        &tagged,
        Compression::Gzip,
        &CompressOptions::default(),
        &names,
    )
    .unwrap();
    let index = out.index.as_ref().unwrap();
    let parsed: Index = serde_json::from_slice(&index.bytes).unwrap();
    assert_eq!(
        parsed.annotations.unwrap()["org.opencontainers.image.title"],
        "t"
    );
    let [img, att] = out.manifests.as_slice() else {
        panic!("{:?}", out.manifests);
    };
    assert_eq!(img.desc.annotation("d"), Some("1"));
    assert_eq!(img.desc.annotation(ANNOTATION_ATTACHMENTS), None);
    assert_eq!(
        att.desc.annotation(ANNOTATION_REFERENCE_TYPE),
        Some("attestation-manifest")
    );
    let about = img.desc.digest.to_string();
    assert_eq!(
        att.desc.annotation(ANNOTATION_REFERENCE_DIGEST),
        Some(about.as_str())
    );
    assert_eq!(att.desc.platform.as_ref().unwrap().os, "unknown");
    // The statements name the image as it leaves (its layers compressed), not as stored.
    assert_ne!(img.desc.digest, image.digest);
    let statements = &att.blobs[1..];
    assert_eq!(statements.len(), 1);
    assert_eq!(
        statement_subject(&store, &statements[0]),
        img.desc.digest.hex()
    );
    // Every blob is in the store.
    for d in out.blob_digests() {
        assert!(store.has(&d), "{d}");
    }

    // Without attachments, the image leaves as itself.
    let plain = prepare_outgoing(
        &store,
        &image,
        Compression::Gzip,
        &CompressOptions::default(),
        &names,
    )
    .unwrap();
    assert!(plain.index.is_none());
    assert_eq!(plain.manifests.len(), 1);
}

#[test]
fn each_platform_of_an_index_gets_its_own_attestation_manifest() {
    let (_dir, store, image) = crate::export::tests::setup();
    let layers = diff_ids(&store, &image);
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let mut opts = options();
        opts.name = format!("docker.io/library/test:{arch}");
        let (mut tagged, _) = attach(&store, &image, &layers, &opts).unwrap();
        tagged.platform = Some(Platform::new("linux", arch, None));
        entries.push(tagged);
    }
    let index = crate::output::write_index(&store, &entries, &[]).unwrap();
    let out = prepare_outgoing(
        &store,
        &index,
        Compression::Gzip,
        &CompressOptions::default(),
        &[],
    )
    .unwrap();
    let listed: Index = serde_json::from_slice(&out.index.as_ref().unwrap().bytes).unwrap();
    let arches: Vec<(String, Option<&str>)> = listed
        .manifests
        .iter()
        .map(|d| {
            (
                d.platform.as_ref().unwrap().architecture.clone(),
                d.annotation(ANNOTATION_REFERENCE_TYPE),
            )
        })
        .collect();
    assert_eq!(
        arches,
        vec![
            ("amd64".to_string(), None),
            ("arm64".to_string(), None),
            ("unknown".to_string(), Some("attestation-manifest")),
            ("unknown".to_string(), Some("attestation-manifest")),
        ]
    );
    for (image, att) in listed.manifests[..2].iter().zip(&listed.manifests[2..]) {
        let about = image.digest.to_string();
        assert_eq!(
            att.annotation(ANNOTATION_REFERENCE_DIGEST),
            Some(about.as_str())
        );
        assert_eq!(att.media_type, media::OCI_MANIFEST);
    }
    // The stored index's entries are what `kiln images` lists: no attestations there.
    let images = crate::images::manifests_under(&store, &index).unwrap();
    assert_eq!(images.len(), 2);
}
