//! Archives whose layers do not match their config's `rootfs.diff_ids` are refused by `load`
//! (docker-archive and OCI archive), naming both digests, and leave the store as it was.

use std::io::Write;

use super::ImportError;
use crate::content::{ContentStore, Digest};
use crate::image::{Descriptor, ImageConfig, Index, Manifest, Platform, media, to_canonical_json};
use crate::images::{ImagesError, load};

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *bytes).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn blob(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// A one-layer image archive whose config says the layer's diff_id is `diff_id`; returns the
/// archive and the layer's real uncompressed digest.
fn archive(docker: bool, diff_id: Option<Digest>) -> (Vec<u8>, Digest) {
    let layer = tar_of(&[("hello", b"hi\n")]);
    let actual = Digest::of(&layer);
    let gz = gzip(&layer);
    let gz_digest = Digest::of(&gz);
    let mut config = ImageConfig::scratch(&Platform::host());
    config.rootfs.diff_ids = vec![diff_id.unwrap_or(actual)];
    let config = to_canonical_json(&config).unwrap();
    let config_digest = Digest::of(&config);
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (blob(&gz_digest), gz.clone()),
        (blob(&config_digest), config.clone()),
    ];
    if docker {
        let m = serde_json::json!([{
            "Config": blob(&config_digest),
            "RepoTags": ["bad:1"],
            "Layers": [blob(&gz_digest)],
        }]);
        files.push(("manifest.json".into(), serde_json::to_vec(&m).unwrap()));
    } else {
        let manifest = Manifest::oci(
            Descriptor::new(media::OCI_CONFIG, config_digest, config.len() as u64),
            vec![Descriptor::new(
                media::OCI_LAYER_GZIP,
                gz_digest,
                gz.len() as u64,
            )],
        );
        let m = to_canonical_json(&manifest).unwrap();
        let md = Digest::of(&m);
        let mut index = Index::default();
        crate::content::index_set_tag(
            &mut index,
            "bad:1",
            &Descriptor::new(media::OCI_MANIFEST, md, m.len() as u64),
        );
        files.push((blob(&md), m));
        files.push(("index.json".into(), index.to_canonical_json().unwrap()));
        files.push((
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    (tar_of(&refs), actual)
}

fn blob_files(store: &ContentStore) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.root().join("blobs/sha256"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn load_refuses_layers_that_do_not_match_the_diff_ids() {
    let wrong = Digest::of(b"some other layer");
    for docker in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let (bytes, actual) = archive(docker, Some(wrong));
        let err = load(&store, bytes.as_slice()).unwrap_err();
        let ImagesError::Import(e) = &err else {
            panic!("docker={docker}: {err}");
        };
        match &**e {
            ImportError::DiffIdMismatch {
                index: 0,
                expected,
                actual: got,
                ..
            } => {
                assert_eq!((*expected, *got), (wrong, actual), "docker={docker}");
            }
            other => panic!("docker={docker}: {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&wrong.to_string()) && msg.contains(&actual.to_string()),
            "{msg}"
        );
        assert_eq!(blob_files(&store), Vec::<String>::new(), "docker={docker}");
        assert!(store.list().unwrap().is_empty(), "docker={docker}");
    }
}

#[test]
fn matching_archives_load_and_a_refused_one_keeps_older_blobs() {
    for docker in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let (good, _) = archive(docker, None);
        let loaded = load(&store, good.as_slice()).unwrap();
        assert_eq!(loaded[0].names, vec!["docker.io/library/bad:1".to_string()]);
        let before = blob_files(&store);
        store.remove_tag("docker.io/library/bad:1").unwrap();
        // The same layer again, under a config that disagrees: refused, and the blobs that were
        // there before (the layer among them) stay.
        let (bad, _) = archive(docker, Some(Digest::of(b"x")));
        assert!(load(&store, bad.as_slice()).is_err());
        assert_eq!(blob_files(&store), before, "docker={docker}");
        assert!(store.list().unwrap().is_empty());
    }
}

#[test]
fn an_oci_layout_directory_is_checked_too() {
    let wrong = Digest::of(b"some other layer");
    let (bytes, actual) = archive(false, Some(wrong));
    let layout = tempfile::tempdir().unwrap();
    tar::Archive::new(bytes.as_slice())
        .unpack(layout.path())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let err =
        super::import_oci_dir(&store, layout.path(), Some("bad:1"), &Platform::host()).unwrap_err();
    assert!(
        matches!(err, ImportError::DiffIdMismatch { expected, actual: got, .. }
            if expected == wrong && got == actual),
        "{err}"
    );
    let (good, _) = archive(false, None);
    let layout = tempfile::tempdir().unwrap();
    tar::Archive::new(good.as_slice())
        .unpack(layout.path())
        .unwrap();
    super::import_oci_dir(&store, layout.path(), Some("bad:1"), &Platform::host()).unwrap();
}
