#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;
use crate::cache::{FileCacheStore, KeyBuilder};

fn key(name: &str) -> CacheKey {
    let mut b = KeyBuilder::new("test", None);
    b.str("name", name);
    b.finish()
}

/// A store with a record for `a` (a layer) and one for `b` (no layer).
fn source() -> (
    tempfile::TempDir,
    Arc<ContentStore>,
    Vec<(CacheKey, CacheRecord)>,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ContentStore::open(dir.path().join("store")).unwrap());
    let blob = store.put_bytes(&vec![7u8; 300_000]).unwrap();
    let layer = LayerRef {
        diff_id: blob.digest,
        size: blob.size,
        packed: None,
    };
    let records = vec![
        (
            key("a"),
            CacheRecord {
                layer: Some(layer),
                created: 10,
                chain: None,
            },
        ),
        (
            key("b"),
            CacheRecord {
                layer: None,
                created: 11,
                chain: None,
            },
        ),
    ];
    (dir, store, records)
}

fn fresh() -> (tempfile::TempDir, Arc<ContentStore>, FileCacheStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ContentStore::open(dir.path().join("store")).unwrap());
    let cache = FileCacheStore::new(dir.path().join("records"));
    (dir, store, cache)
}

#[test]
fn a_local_cache_round_trips_into_an_empty_store() {
    let (src_dir, store, records) = source();
    let dest = src_dir.path().join("cache");
    let d = local::export_local(&store, &records, CacheMode::Max, &dest, "latest").unwrap();
    // An OCI layout as BuildKit writes it: the cache manifest tagged in index.json.
    assert!(dest.join("oci-layout").is_file());
    let index = crate::content::read_index(&dest.join("index.json")).unwrap();
    assert_eq!(index.manifests.len(), 1);
    assert_eq!(index.manifests[0].digest, d.digest);
    assert_eq!(crate::content::tag_of(&index.manifests[0]), Some("latest"));

    let (_t, store2, cache2) = fresh();
    let got = local::import_local(&store2, &cache2, &dest, "latest").unwrap();
    assert_eq!((got.records, got.dropped), (2, 0), "{:?}", got.problems);
    assert!(got.problems.is_empty(), "{:?}", got.problems);
    let rec = cache2.get(&key("a")).unwrap();
    assert_eq!(rec.layer, records[0].1.layer);
    let layer = rec.layer.unwrap();
    assert_eq!(store2.verify(&layer.diff_id).unwrap(), layer.size);
    assert_eq!(cache2.get(&key("b")).unwrap().created, 11);

    // Another tag is another cache; a missing tag is an error, not an empty import.
    assert!(local::import_local(&store2, &cache2, &dest, "other").is_err());
}

#[test]
fn a_corrupt_local_layer_drops_its_record_and_stores_nothing_corrupt() {
    let (src_dir, store, records) = source();
    let dest = src_dir.path().join("cache");
    let d = local::export_local(&store, &records, CacheMode::Max, &dest, "latest").unwrap();
    let manifest: Manifest = store.read_json(&d.digest).unwrap();
    let layer = &manifest.layers[0];
    let path = dest.join("blobs/sha256").join(layer.digest.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let (_t, store2, cache2) = fresh();
    let got = local::import_local(&store2, &cache2, &dest, "latest").unwrap();
    assert_eq!((got.records, got.dropped), (1, 1));
    assert!(!got.problems.is_empty());
    assert!(cache2.get(&key("a")).is_none());
    assert!(!store2.has(&layer.digest));
}

#[test]
fn mode_min_keeps_only_the_final_stages_records() {
    let (_d, _store, records) = source();
    let finals: BTreeSet<CacheKey> = [key("b")].into_iter().collect();
    let min = select_records(records.clone(), CacheMode::Min, &finals);
    assert_eq!(min.len(), 1);
    assert_eq!(min[0].0, key("b"));
    assert_eq!(select_records(records, CacheMode::Max, &finals).len(), 2);
}

#[test]
fn an_older_format_is_a_warning_and_a_newer_one_an_error() {
    let mut config = describe(&[], CacheMode::Min, &Default::default());
    assert_eq!(check_version(&config, "c").unwrap(), None);
    config.version = 1;
    let warning = check_version(&config, "c").unwrap().unwrap();
    assert!(warning.contains("older cache format 1"), "{warning}");
    config.version = CACHE_FORMAT_VERSION + 1;
    assert!(matches!(
        check_version(&config, "c"),
        Err(CacheTransferError::NewerFormat { .. })
    ));
    // Version 1 configs (every layer with a digest, no mode) still parse.
    let v1 = format!(
        r#"{{"version":1,"records":[],"layers":[{{"diff_id":"{0}","size":1,"digest":"{0}"}}]}}"#,
        Digest::of(b"x")
    );
    let parsed: CacheConfig = serde_json::from_str(&v1).unwrap();
    assert_eq!(parsed.layers[0].digest, Some(Digest::of(b"x")));
}

#[test]
fn an_inline_cache_keeps_the_images_layers_and_pairs_them_by_position() {
    let (_d, _store, mut records) = source();
    let image_layer = records[0].1.layer.clone().unwrap();
    // A record whose layer is not in the image is left out.
    records.push((
        key("c"),
        CacheRecord {
            layer: Some(LayerRef {
                diff_id: Digest::of(b"elsewhere"),
                size: 9,
                packed: None,
            }),
            created: 1,
            chain: None,
        },
    ));
    let value = inline::inline_value(&records, std::slice::from_ref(&image_layer)).unwrap();
    let mut config = crate::image::ImageConfig::default();
    config.rootfs.diff_ids = vec![image_layer.diff_id];
    config
        .extra
        .insert(inline::INLINE_CACHE_KEY.to_string(), value);
    let pushed = Descriptor::new(media::OCI_LAYER_GZIP, Digest::of(b"gz"), 5);
    let (cache, blobs) = inline::from_image(&config, std::slice::from_ref(&pushed), "img")
        .unwrap()
        .unwrap();
    assert_eq!(cache.records.len(), 2);
    assert_eq!(cache.layers.len(), 1);
    assert_eq!(cache.layers[0].digest, Some(pushed.digest));
    assert_eq!(blobs, vec![pushed]);
    // An image without one says so.
    let plain = crate::image::ImageConfig::default();
    assert!(inline::from_image(&plain, &[], "img").unwrap().is_none());
}

#[test]
fn mode_min_covers_the_stages_the_image_is_built_from() {
    let df = kiln_dockerfile_parser::parse(
        "FROM scratch AS a\nCOPY x /x\nFROM a AS b\nCOPY y /y\n\
         FROM scratch AS c\nCOPY --from=b /y /z\nFROM b\nCOPY --from=c /z /z\n",
    )
    .unwrap();
    let graph = crate::plan::plan(&df, &crate::plan::PlanOptions::default(), &|_, _| None).unwrap();
    // The image's layers come from stages 3, 1 and 0; stage 2 only lends a file.
    assert_eq!(run::image_stages(&graph), BTreeSet::from([0, 1, 3]));
}
