use super::*;

#[test]
fn references_split_at_the_tag_or_digest() {
    assert_eq!(
        split_reference("docker.io/library/app:1"),
        ("docker.io/library/app", "1")
    );
    assert_eq!(
        split_reference("localhost:5000/app"),
        ("localhost:5000/app", "")
    );
    assert_eq!(
        split_reference("localhost:5000/app:2"),
        ("localhost:5000/app", "2")
    );
    assert_eq!(split_reference("a/b@sha256:00"), ("a/b", "sha256:00"));
}

#[test]
fn ids_need_four_hex_digits() {
    assert_eq!(id_prefix("sha256:abcd"), Some("abcd"));
    assert_eq!(id_prefix("abc"), None);
    assert_eq!(id_prefix("app"), None);
    assert_eq!(id_prefix("ABCD"), None);
}

fn store_with_image(dir: &std::path::Path) -> (ContentStore, Descriptor) {
    let store = ContentStore::open(dir).unwrap();
    let config = ImageConfig::scratch(&Platform::host());
    let cdesc = store
        .put_json(&config, crate::image::media::OCI_CONFIG)
        .unwrap();
    let manifest = Manifest::oci(cdesc, Vec::new());
    let mdesc = store
        .put_json(&manifest, crate::image::media::OCI_MANIFEST)
        .unwrap();
    store.set_tag("docker.io/library/app:1", &mdesc).unwrap();
    (store, mdesc)
}

#[test]
fn tag_resolve_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mdesc) = store_with_image(dir.path());
    assert_eq!(resolve(&store, "app:1").unwrap().1.digest, mdesc.digest);
    assert_eq!(
        tag(&store, "app:1", "other").unwrap(),
        "docker.io/library/other:latest"
    );
    let (names, _) = resolve(&store, &mdesc.digest.hex()[..8]).unwrap();
    assert_eq!(names.len(), 2);
    assert!(matches!(
        remove(&store, &mdesc.digest.to_string(), false),
        Err(ImagesError::SeveralNames { .. })
    ));
    assert_eq!(
        remove(&store, "other", false).unwrap(),
        vec!["docker.io/library/other:latest".to_string()]
    );
    assert!(matches!(
        resolve(&store, "other"),
        Err(ImagesError::NotFound { .. })
    ));
    assert!(store.has(&mdesc.digest), "blobs stay");
    assert!(matches!(
        tag(&store, "app:1", "bad name"),
        Err(ImagesError::InvalidName(_))
    ));
}

#[test]
fn save_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mdesc) = store_with_image(dir.path());
    for format in [ArchiveFormat::Docker, ArchiveFormat::Oci] {
        let (_, bytes) = save(&store, &["app:1".to_string()], format, None, Vec::new()).unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let other = ContentStore::open(other_dir.path()).unwrap();
        let loaded = load(&other, bytes.as_slice()).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].names, vec!["docker.io/library/app:1".to_string()]);
        assert_eq!(
            list(&other).unwrap()[0].id,
            list(&store).unwrap()[0].id,
            "{format:?}"
        );
        let _ = mdesc;
    }
}
