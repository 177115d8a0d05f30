//! Applying compressed layer blobs straight from the store: both digests are checked, every
//! failure names the blob, and confinement is the applier's own.

use std::fs;
use std::os::unix::fs::symlink;

use super::tarfmt::Kind;
use super::tests::{hdr, link, raw_tar};
use super::*;
use crate::changes::WhiteoutStyle;
use crate::content::Digest;

struct Fixture {
    _store_dir: tempfile::TempDir,
    store: ContentStore,
    outer: tempfile::TempDir,
    root: Root,
}

impl Fixture {
    fn new() -> Self {
        let store_dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(store_dir.path()).unwrap();
        let outer = tempfile::tempdir().unwrap();
        fs::write(outer.path().join("sentinel"), b"untouched").unwrap();
        fs::create_dir(outer.path().join("root")).unwrap();
        let root = Root::open(outer.path().join("root")).unwrap();
        Self {
            _store_dir: store_dir,
            store,
            outer,
            root,
        }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.outer.path().join("root").join(rel)
    }

    fn apply(&self, blob: &Digest, diff_id: &Digest) -> Result<ApplyStats, LayerError> {
        apply_packed(
            &self.store,
            blob,
            diff_id,
            &self.root,
            WhiteoutStyle::Apply,
            &ApplyOptions::default(),
        )
    }
}

/// A tar of `files` (path, size) with contents that do not compress to nothing, so that the
/// stream spans several chunks when the sizes are large.
fn tar_of(files: &[(&str, usize)]) -> Vec<u8> {
    let contents: Vec<Vec<u8>> = files
        .iter()
        .enumerate()
        .map(|(i, (_, size))| {
            (0..*size)
                .map(|j| ((j * 31 + i * 7) % 251) as u8 ^ (j >> 9) as u8)
                .collect()
        })
        .collect();
    let entries: Vec<_> = files
        .iter()
        .zip(&contents)
        .map(|((name, _), data)| (hdr(name, Kind::File), data.as_slice()))
        .collect();
    raw_tar(&entries)
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    gzip_parallel(tar, Vec::new(), 2).unwrap()
}

#[test]
fn gzip_and_zstd_blobs_are_applied_and_checked() {
    let tar = tar_of(&[("small", 10), ("big", 3 << 20), ("last", 100)]);
    let diff_id = Digest::of(&tar);
    for packed in [gzip(&tar), zstd::encode_all(&tar[..], 1).unwrap()] {
        let fx = Fixture::new();
        let blob = fx.store.put_bytes(&packed).unwrap().digest;
        let stats = fx.apply(&blob, &diff_id).unwrap();
        assert_eq!(stats.entries, 3);
        assert_eq!(fs::read(fx.path("big")).unwrap().len(), 3 << 20);
        assert_eq!(fs::read(fx.path("small")).unwrap().len(), 10);
        assert!(!fx.store.has(&diff_id), "no uncompressed copy is stored");
    }
}

#[test]
fn a_corrupt_compressed_byte_fails_naming_the_blob() {
    let tar = tar_of(&[("a", 1 << 20), ("b", 1 << 20)]);
    let diff_id = Digest::of(&tar);
    let packed = gzip(&tar);
    // Flip one byte at several places: in the deflate stream it breaks decompression or the
    // CRC; anywhere it breaks the blob's digest.
    for at in [20, packed.len() / 2, packed.len() - 3] {
        let fx = Fixture::new();
        let blob = fx.store.put_bytes(&packed).unwrap().digest;
        let path = fx.store.blob_path(&blob);
        let mut bytes = fs::read(&path).unwrap();
        bytes[at] ^= 0x55;
        fs::write(&path, &bytes).unwrap();
        let err = fx.apply(&blob, &diff_id).unwrap_err();
        let text = crate::report::chain(&err);
        assert!(text.contains(&blob.to_string()), "byte {at}: {text}");
    }
}

#[test]
fn a_wrong_diff_id_fails_naming_both_digests() {
    let fx = Fixture::new();
    let tar = tar_of(&[("f", 1000)]);
    let blob = fx.store.put_bytes(&gzip(&tar)).unwrap().digest;
    let wrong = Digest::of(b"another tar");
    let err = fx.apply(&blob, &wrong).unwrap_err();
    assert!(
        matches!(&err, LayerError::DiffIdMismatch { blob: b, expected, actual }
            if *b == blob && *expected == wrong && *actual == Digest::of(&tar)),
        "{err:?}"
    );
    let text = crate::report::chain(&err);
    assert!(
        text.contains(&blob.to_string()) && text.contains(&wrong.to_string()),
        "{text}"
    );
}

#[test]
fn trailing_bytes_after_the_tar_count_for_the_diff_id() {
    // The tar reader stops at the end-of-archive blocks; the diff_id covers what follows too.
    let fx = Fixture::new();
    let mut tar = tar_of(&[("f", 1000)]);
    let without = Digest::of(&tar);
    tar.extend_from_slice(&[0u8; 4096]);
    let blob = fx.store.put_bytes(&gzip(&tar)).unwrap().digest;
    assert!(fx.apply(&blob, &Digest::of(&tar)).is_ok());
    let fx = Fixture::new();
    let blob = fx.store.put_bytes(&gzip(&tar)).unwrap().digest;
    assert!(matches!(
        fx.apply(&blob, &without),
        Err(LayerError::DiffIdMismatch { .. })
    ));
}

#[test]
fn a_truncated_blob_fails_naming_the_blob() {
    let tar = tar_of(&[("a", 2 << 20), ("b", 10)]);
    let diff_id = Digest::of(&tar);
    let packed = gzip(&tar);
    for keep in [0, 10, packed.len() / 3, packed.len() - 1] {
        let fx = Fixture::new();
        let blob = fx.store.put_bytes(&packed).unwrap().digest;
        let path = fx.store.blob_path(&blob);
        fs::write(&path, &packed[..keep]).unwrap();
        let err = fx.apply(&blob, &diff_id).unwrap_err();
        let text = crate::report::chain(&err);
        assert!(text.contains(&blob.to_string()), "{keep} bytes: {text}");
    }
}

#[test]
fn a_missing_blob_is_an_error() {
    let fx = Fixture::new();
    let blob = Digest::of(b"not stored");
    let err = fx.apply(&blob, &blob).unwrap_err();
    assert!(crate::report::chain(&err).contains(&blob.to_string()));
}

#[test]
fn confinement_is_as_strict_as_for_plain_layers() {
    let fx = Fixture::new();
    symlink(fx.outer.path(), fx.path("escape")).unwrap();
    let tar = raw_tar(&[
        (hdr("../sentinel", Kind::File), b"pwned"),
        (hdr("/abs/file", Kind::File), b"abs"),
        (link("up", Kind::Symlink, "../../.."), b""),
        (hdr("up/sentinel", Kind::File), b"through a symlink"),
        (
            hdr("escape/sentinel", Kind::File),
            b"through a planted symlink",
        ),
        (link("hard", Kind::HardLink, "../sentinel"), b""),
    ]);
    let blob = fx.store.put_bytes(&gzip(&tar)).unwrap().digest;
    let _ = fx.apply(&blob, &Digest::of(&tar));
    assert_eq!(
        fs::read(fx.outer.path().join("sentinel")).unwrap(),
        b"untouched"
    );
    let names: Vec<_> = fs::read_dir(fx.outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}
