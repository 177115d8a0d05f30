//! Export tests, checked with skopeo and umoci when they are installed.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::*;
use crate::changes::Change;
use crate::content::ContentStore;
use crate::image::{ContainerConfig, History, ImageConfig, Index, Manifest, Platform};
use crate::layer::LayerOptions;

pub(crate) fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A two-layer image (the second deletes a file of the first) stored uncompressed, as a build
/// leaves it, and tagged `docker.io/library/test:1`.
pub(crate) fn test_image(store: &ContentStore) -> Descriptor {
    let src = tempfile::tempdir().unwrap();
    let p = src.path();
    fs::create_dir_all(p.join("etc")).unwrap();
    fs::write(p.join("etc/hello"), b"hello from kiln\n").unwrap();
    fs::write(p.join("etc/old"), b"to be deleted\n").unwrap();
    std::os::unix::fs::symlink("hello", p.join("etc/link")).unwrap();
    let opts = LayerOptions {
        source_date_epoch: Some(1_700_000_000),
    };
    let root = Root::open(p).unwrap();
    let (l1, _) = layer::write_tree_to_store(store, &root, &opts).unwrap();
    fs::remove_file(p.join("etc/old")).unwrap();
    fs::write(p.join("etc/new"), b"second layer\n").unwrap();
    let (l2, _) = layer::write_changes_to_store(
        store,
        &root,
        &[
            Change::Delete("etc/old".into()),
            Change::Upsert("etc/new".into()),
        ],
        &opts,
    )
    .unwrap();
    let mut config = ImageConfig::scratch(&Platform::host());
    config.created = Some(crate::image::format_rfc3339(1_700_000_000));
    config.config = Some(ContainerConfig {
        env: Some(vec!["PATH=/bin".into(), "GREETING=hi".into()]),
        cmd: Some(vec!["/bin/cat".into(), "/etc/hello".into()]),
        working_dir: Some("/etc".into()),
        ..Default::default()
    });
    config.rootfs.diff_ids = vec![l1.digest, l2.digest];
    config.history = Some(vec![
        History {
            created_by: Some("COPY . /".into()),
            ..Default::default()
        },
        History {
            created_by: Some("RUN rm /etc/old".into()),
            ..Default::default()
        },
    ]);
    let config = store.put_json(&config, media::OCI_CONFIG).unwrap();
    let manifest = Manifest::oci(
        config,
        vec![
            Descriptor::new(media::OCI_LAYER_TAR, l1.digest, l1.size),
            Descriptor::new(media::OCI_LAYER_TAR, l2.digest, l2.size),
        ],
    );
    let desc = store.put_json(&manifest, media::OCI_MANIFEST).unwrap();
    store.set_tag("docker.io/library/test:1", &desc).unwrap();
    desc
}

pub(crate) fn setup() -> (tempfile::TempDir, ContentStore, Descriptor) {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path().join("store")).unwrap();
    let img = test_image(&store);
    (dir, store, img)
}

fn tagged(tag: &str) -> ExportOptions {
    ExportOptions {
        tags: vec![tag.to_string()],
        ..Default::default()
    }
}

#[test]
fn oci_dir_export_is_read_by_skopeo_and_umoci() {
    let (dir, store, img) = setup();
    let dest = dir.path().join("layout");
    let exported = export_oci_dir(&store, &img, &dest, &tagged("test:1")).unwrap();
    let again = export_oci_dir(&store, &img, &dest, &tagged("test:2")).unwrap();
    assert_eq!(exported, again);
    let idx = crate::content::read_index(&dest.join("index.json")).unwrap();
    assert_eq!(idx.manifests.len(), 2);
    let m: Manifest = serde_json::from_slice(
        &fs::read(dest.join("blobs/sha256").join(exported.digest.hex())).unwrap(),
    )
    .unwrap();
    assert!(
        m.layers
            .iter()
            .all(|l| l.media_type == media::OCI_LAYER_GZIP)
    );
    if have("skopeo") {
        let out = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:test:1", dest.display())));
        assert!(out.contains(&exported.digest.to_string()), "{out}");
    }
    if have("umoci") && rustix::process::geteuid().is_root() {
        let bundle = dir.path().join("bundle");
        run(Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:test:1", dest.display()))
            .arg(&bundle));
        let rootfs = bundle.join("rootfs");
        assert_eq!(
            fs::read(rootfs.join("etc/hello")).unwrap(),
            b"hello from kiln\n"
        );
        assert!(!rootfs.join("etc/old").exists());
        assert_eq!(fs::read(rootfs.join("etc/new")).unwrap(), b"second layer\n");
        let config = fs::read_to_string(bundle.join("config.json")).unwrap();
        assert!(
            config.contains("GREETING=hi") && config.contains("\"/etc\""),
            "{config}"
        );
    }
}

/// Every file under `dir` with its bytes, for comparing a layout before and after.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.unwrap();
        let bytes = if entry.file_type().is_file() {
            fs::read(entry.path()).unwrap()
        } else {
            Vec::new()
        };
        out.push((entry.path().strip_prefix(dir).unwrap().to_path_buf(), bytes));
    }
    out
}

#[test]
fn cancelled_or_failed_oci_dir_export_leaves_the_layout_as_it_was() {
    let (dir, store, img) = setup();
    let dest = dir.path().join("layout");
    let had = export_oci_dir(&store, &img, &dest, &tagged("test:1"))
        .unwrap()
        .digest;
    let before = files_under(&dest);
    let layout_blob = |d: &Digest| dest.join("blobs/sha256").join(d.hex());

    // Cancelled before its first blob: a new tag of the same image changes nothing.
    let cancelled = tagged("test:2");
    cancelled.cancel.cancel();
    let err = export_oci_dir(&store, &img, &dest, &cancelled).unwrap_err();
    assert!(matches!(err, ExportError::Cancelled), "{err}");
    assert_eq!(files_under(&dest), before);

    // Failed after copying: a blob the layout had, two it did not, then one the store lacks.
    let new1 = store
        .put_json(&serde_json::json!({"a": 1}), media::OCI_CONFIG)
        .unwrap()
        .digest;
    let new2 = store
        .put_json(&serde_json::json!({"b": 2}), media::OCI_CONFIG)
        .unwrap()
        .digest;
    let missing = Digest::of(b"not in the store");
    let mut entries = Index::default();
    entries.manifests.push(img.clone());
    let err = write_layout(&store, &[had, new1, new2, missing], &entries, &dest).unwrap_err();
    assert!(!matches!(err, ExportError::Cancelled), "{err}");
    assert!(layout_blob(&had).is_file());
    assert!(!layout_blob(&new1).exists() && !layout_blob(&new2).exists());
    assert_eq!(files_under(&dest), before);

    // Into a directory that did not exist: nothing is left, not even the directory.
    let fresh = dir.path().join("fresh");
    let err = write_layout(&store, &[new1, missing], &entries, &fresh).unwrap_err();
    assert!(!matches!(err, ExportError::Cancelled), "{err}");
    assert!(!fresh.exists());

    // And the same layout still takes a whole export afterwards.
    export_oci_dir(&store, &img, &dest, &tagged("test:2")).unwrap();
    let idx = crate::content::read_index(&dest.join("index.json")).unwrap();
    assert_eq!(idx.manifests.len(), 2);
}

#[test]
fn oci_archive_is_deterministic_and_round_trips() {
    let (dir, store, img) = setup();
    let (d1, a) = export_oci_archive(&store, &img, Vec::new(), &tagged("test:1")).unwrap();
    let (d2, b) = export_oci_archive(&store, &img, Vec::new(), &tagged("test:1")).unwrap();
    assert_eq!(d1, d2);
    assert!(a == b, "archive bytes differ");
    // A fresh store compressing from scratch gives the same bytes.
    let other = ContentStore::open(dir.path().join("other")).unwrap();
    let img2 = test_image(&other);
    assert_eq!(img2.digest, img.digest);
    let (_, c) = export_oci_archive(&other, &img2, Vec::new(), &tagged("test:1")).unwrap();
    assert!(a == c, "archive bytes differ across stores");

    let target = ContentStore::open(dir.path().join("target")).unwrap();
    let imported =
        crate::import::import_oci_archive(&target, &a[..], Some("test:1"), &Platform::host())
            .unwrap();
    assert_eq!(imported.manifest_desc.digest, d1.digest);
    assert_eq!(imported.manifest.config.digest, {
        let m: Manifest = store.read_json(&img.digest).unwrap();
        m.config.digest
    });
    let (_, again) = export_oci_archive(
        &target,
        &imported.manifest_desc,
        Vec::new(),
        &tagged("test:1"),
    )
    .unwrap();
    assert!(again == a, "export(import(export(img))) differs");

    let path = dir.path().join("img.tar");
    fs::write(&path, &a).unwrap();
    if have("skopeo") {
        let out = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}:test:1", path.display())));
        assert!(out.contains(&d1.digest.to_string()), "{out}");
    }
}

#[test]
fn docker_archive_is_read_by_skopeo_and_round_trips() {
    let (dir, store, img) = setup();
    let orig: Manifest = store.read_json(&img.digest).unwrap();
    for compression in [Compression::Gzip, Compression::None] {
        let opts = ExportOptions {
            compression,
            ..tagged("docker.io/library/test:1")
        };
        let (_, bytes) = export_docker_archive(&store, &img, Vec::new(), &opts).unwrap();
        let (_, again) = export_docker_archive(&store, &img, Vec::new(), &opts).unwrap();
        assert!(bytes == again, "docker archive not deterministic");
        let target = ContentStore::open(dir.path().join(compression.name())).unwrap();
        let imported =
            crate::import::import_docker_archive(&target, &bytes[..], Some("test:1")).unwrap();
        assert_eq!(imported.manifest.config.digest, orig.config.digest);
        assert_eq!(imported.manifest.layers.len(), 2);
        if compression == Compression::None {
            assert_eq!(imported.manifest.layers, orig.layers);
        }
        if have("skopeo") {
            let path = dir
                .path()
                .join(format!("docker-{}.tar", compression.name()));
            fs::write(&path, &bytes).unwrap();
            let layout = dir.path().join(format!("copied-{}", compression.name()));
            run(Command::new("skopeo")
                .arg("copy")
                .arg(format!("docker-archive:{}", path.display()))
                .arg(format!("oci:{}:copied", layout.display())));
            let out = run(Command::new("skopeo")
                .arg("inspect")
                .arg("--config")
                .arg(format!("oci:{}:copied", layout.display())));
            let config: ImageConfig = serde_json::from_str(&out).unwrap();
            let ours: ImageConfig = store.read_json(&orig.config.digest).unwrap();
            assert_eq!(config, ours);
        }
    }
}

#[test]
fn zstd_oci_export() {
    let (_dir, store, img) = setup();
    let opts = ExportOptions {
        compression: Compression::Zstd,
        ..Default::default()
    };
    let (desc, _) = export_oci_archive(&store, &img, Vec::new(), &opts).unwrap();
    let m: Manifest = store.read_json(&desc.digest).unwrap();
    assert!(
        m.layers
            .iter()
            .all(|l| l.media_type == media::OCI_LAYER_ZSTD)
    );
    // gzip from zstd goes through the uncompressed layer, checked against the diff_id.
    let p = prepare(&store, &desc, Compression::Gzip, &Default::default()).unwrap();
    assert!(
        p.manifest
            .layers
            .iter()
            .all(|l| l.media_type == media::OCI_LAYER_GZIP)
    );
}

#[test]
fn rootfs_export_applies_all_layers() {
    let (dir, store, img) = setup();
    let dest = dir.path().join("rootfs");
    export_rootfs(
        &store,
        &img,
        &dest,
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        fs::read(dest.join("etc/hello")).unwrap(),
        b"hello from kiln\n"
    );
    assert_eq!(
        fs::read_link(dest.join("etc/link")).unwrap(),
        Path::new("hello")
    );
    assert!(!dest.join("etc/old").exists());
    assert!(dest.join("etc/new").exists());
    // A corrupt layer is reported even though the tar reader stops before its end.
    let m: Manifest = store.read_json(&img.digest).unwrap();
    let path = store.blob_path(&m.layers[1].digest);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let err = export_rootfs(
        &store,
        &img,
        &dir.path().join("rootfs2"),
        &Default::default(),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ExportError::Layer(LayerError::Content(c)) if c.is_corrupt()),
        "{err}"
    );
}
