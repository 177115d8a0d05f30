use std::io::{Read, Write};

use super::*;
use crate::image::{self, Descriptor};

fn store() -> (tempfile::TempDir, ContentStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    (dir, store)
}

fn tmp_count(store: &ContentStore) -> usize {
    std::fs::read_dir(store.state_dir().join("tmp"))
        .unwrap()
        .count()
}

#[test]
fn creates_layout_and_reopens() {
    let (dir, _store) = store();
    assert_eq!(
        std::fs::read(dir.path().join("oci-layout")).unwrap(),
        OCI_LAYOUT_JSON
    );
    let idx = read_index(&dir.path().join("index.json")).unwrap();
    assert!(idx.manifests.is_empty());
    ContentStore::open(dir.path()).unwrap();
    std::fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"9"}"#,
    )
    .unwrap();
    let err = ContentStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, ContentError::LayoutVersion { .. }), "{err}");
}

#[test]
fn writer_commits_and_verifies_expected() {
    let (_d, store) = store();
    let mut w = store.writer().unwrap();
    w.write_all(b"hello world").unwrap();
    assert_eq!(w.written(), 11);
    let info = w.commit(None).unwrap();
    assert_eq!(info.digest, Digest::of(b"hello world"));
    assert!(store.has(&info.digest));
    assert_eq!(store.size(&info.digest).unwrap(), 11);

    // Wrong digest: nothing stored, temp file gone.
    let mut w = store.writer().unwrap();
    w.write_all(b"other").unwrap();
    let err = w.commit(Some((&info.digest, 5))).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert!(!store.has(&Digest::of(b"other")));
    // Wrong size.
    let mut w = store.writer().unwrap();
    w.write_all(b"hello world").unwrap();
    let err = w.commit(Some((&info.digest, 12))).unwrap_err();
    assert!(matches!(err, ContentError::SizeMismatch { .. }), "{err}");
    // Same blob again is fine.
    let mut w = store.writer().unwrap();
    w.write_all(b"hello world").unwrap();
    assert_eq!(w.commit(Some((&info.digest, 11))).unwrap(), info);
    assert_eq!(tmp_count(&store), 0);
}

#[test]
fn dropped_writer_leaves_nothing() {
    let (_d, store) = store();
    let mut w = store.writer().unwrap();
    w.write_all(&[7u8; 4096]).unwrap();
    assert_eq!(tmp_count(&store), 1);
    drop(w);
    assert_eq!(tmp_count(&store), 0);
    assert!(!store.has(&Digest::of(&[7u8; 4096])));
}

#[test]
fn flipped_byte_is_detected() {
    let (_d, store) = store();
    let data = vec![42u8; 100_000];
    let info = store.put_bytes(&data).unwrap();
    assert_eq!(store.put_bytes(&data).unwrap(), info);
    assert_eq!(store.verify(&info.digest).unwrap(), 100_000);
    let path = store.blob_path(&info.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5000] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = store.read_verified_bytes(&info.digest).unwrap_err();
    assert!(
        matches!(err, ContentError::DigestMismatch { expected, .. } if expected == info.digest),
        "{err}"
    );
    assert!(err.to_string().contains(&info.digest.hex()));
    // A streaming reader fails too, at the end.
    let mut r = store.open_verified(&info.digest).unwrap();
    let e = r.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    // A truncated blob is a size error.
    std::fs::write(&path, &bytes[..10]).unwrap();
    let mut r = store.open_verified(&info.digest).unwrap();
    std::fs::write(&path, &bytes).unwrap(); // grew after open
    let err = unwrap_io_error(
        r.read_to_end(&mut Vec::new()).unwrap_err(),
        "read",
        path.clone(),
    );
    assert!(err.is_corrupt(), "{err}");
    assert!(store.delete(&info.digest).unwrap());
    assert!(!store.delete(&info.digest).unwrap());
    assert!(
        store
            .read_verified_bytes(&info.digest)
            .unwrap_err()
            .is_not_found()
    );
}

fn manifest_desc(store: &ContentStore, n: u32) -> Descriptor {
    let info = store.put_bytes(format!("manifest {n}").as_bytes()).unwrap();
    Descriptor::new(image::media::OCI_MANIFEST, info.digest, info.size)
}

#[test]
fn tags_set_get_list_remove() {
    let (_d, store) = store();
    let a = manifest_desc(&store, 1);
    let b = manifest_desc(&store, 2);
    store.set_tag("docker.io/library/app:1", &a).unwrap();
    store.set_tag("docker.io/library/app:2", &a).unwrap();
    store.set_tag("docker.io/library/app:1", &b).unwrap();
    let got = store.get_tag("docker.io/library/app:1").unwrap().unwrap();
    assert_eq!(got.digest, b.digest);
    assert_eq!(
        got.annotation(image::ANNOTATION_REF_NAME),
        Some("docker.io/library/app:1")
    );
    let tags: Vec<String> = store.list().unwrap().into_iter().map(|t| t.0).collect();
    assert_eq!(tags, ["docker.io/library/app:1", "docker.io/library/app:2"]);
    assert!(store.remove_tag("docker.io/library/app:2").unwrap());
    assert!(!store.remove_tag("docker.io/library/app:2").unwrap());
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(store.set_tag("bad tag", &a).is_err());
    assert!(store.set_tag("", &a).is_err());
}

#[test]
fn concurrent_tag_updates_are_not_lost() {
    let (dir, store) = store();
    let descs: Vec<Descriptor> = (0..8).map(|i| manifest_desc(&store, i)).collect();
    std::thread::scope(|s| {
        for (t, d) in descs.iter().enumerate() {
            let root = dir.path().to_path_buf();
            s.spawn(move || {
                // A separate store handle per thread: the lock is per open file, as across
                // processes.
                let store = ContentStore::open(&root).unwrap();
                for i in 0..10 {
                    store.set_tag(&format!("app:{t}-{i}"), d).unwrap();
                    // Readers never see a torn file.
                    store.index().unwrap();
                }
            });
        }
    });
    assert_eq!(store.list().unwrap().len(), 80);
}

#[test]
fn write_atomic_for_metadata() {
    let (_d, store) = store();
    let p = store.state_dir().join("record.json");
    write_atomic(&p, b"{}").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"{}");
}

#[test]
fn clean_tmp_removes_stale_files() {
    let (_d, store) = store();
    let w = store.writer().unwrap();
    let p = w.temp_path().to_path_buf();
    std::mem::forget(w); // as if the process had been killed
    assert!(p.exists());
    assert_eq!(store.clean_tmp(std::time::Duration::ZERO).unwrap(), 1);
    assert!(!p.exists());
}

#[test]
fn open_removes_abandoned_temp_blobs_but_not_live_ones() {
    let (d, store) = store();
    let tmp = store.state_dir().join("tmp");
    // What a killed writer leaves: a temp file nobody holds a lock on.
    let stale = tmp.join("blob-killed");
    std::fs::write(&stale, b"half a layer").unwrap();
    let mut live = store.writer().unwrap();
    live.write_all(b"still writing").unwrap();
    let live_path = live.temp_path().to_path_buf();

    let reopened = ContentStore::open(d.path()).unwrap();
    assert!(!stale.exists(), "the abandoned temp file is removed");
    assert!(live_path.exists(), "a live writer's temp file is kept");
    assert_eq!(reopened.clean_abandoned().unwrap(), 0);
    let blob = live.commit(None).unwrap();
    assert_eq!(
        reopened.read_verified_bytes(&blob.digest).unwrap(),
        b"still writing"
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

/// podman and skopeo must find kiln's tags through the `oci:` transport.
#[test]
fn skopeo_finds_tag() {
    if std::process::Command::new("skopeo")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skopeo not installed; skipping");
        return;
    }
    let (dir, store) = store();
    let layer = store.put_bytes(&[0u8; 1024]).unwrap();
    let mut config = image::ImageConfig::scratch(&image::Platform::host());
    config.rootfs.diff_ids.push(layer.digest);
    let config = store.put_json(&config, image::media::OCI_CONFIG).unwrap();
    let manifest = image::Manifest::oci(
        config,
        vec![Descriptor::new(
            image::media::OCI_LAYER_TAR,
            layer.digest,
            layer.size,
        )],
    );
    let desc = store
        .put_json(&manifest, image::media::OCI_MANIFEST)
        .unwrap();
    store.set_tag("docker.io/library/app:1", &desc).unwrap();
    let out = std::process::Command::new("skopeo")
        .arg("inspect")
        .arg(format!(
            "oci:{}:docker.io/library/app:1",
            dir.path().display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], desc.digest.to_string());
}

#[test]
fn abandoned_atomic_temps_are_swept_and_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    // A killed writer's temp file: nobody holds its lock.
    let dead = dir.path().join(".tmp-killed");
    std::fs::write(&dead, b"half a record").unwrap();
    // A live writer's: locked.
    let live = dir.path().join(".tmp-live");
    let held = std::fs::File::create(&live).unwrap();
    held.lock().unwrap();
    // Not a temp file at all.
    std::fs::write(dir.path().join("record.json"), b"{}").unwrap();
    assert_eq!(super::sweep_abandoned_temps(dir.path()), 1);
    assert!(!dead.exists());
    assert!(live.exists());
    assert!(dir.path().join("record.json").exists());
    drop(held);
    write_atomic(&dir.path().join("record.json"), b"{\"a\":1}").unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("record.json")).unwrap(),
        b"{\"a\":1}"
    );
}

#[test]
fn the_store_root_is_private_and_an_open_store_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh");
    ContentStore::open(&fresh).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&fresh), 0o700);
    // A store made by an older version, open to everyone.
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    ContentStore::open(&old).unwrap();
    assert_eq!(mode(&old), 0o700);
}
