//! ADD's archives: recognised by content, checksums, bzip2 and xz.

use super::archive::decompress;
use super::tests::{RecordingExtractor, fixture, paths, write};
use super::*;
use crate::context::{CachingHasher, Sha256Digest, StatCache};
use std::path::Path;

fn tar_bytes() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "hello.txt", &b"hello"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn add_extracts_archives_recognised_by_content() {
    use std::io::Write;
    let raw = tar_bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&raw[..], 1).unwrap();
    let f = fixture(|d| {
        write(d, "plain.bin", &raw);
        write(d, "archive.tgz.renamed", &gz);
        write(d, "a.zst", &zst);
        write(d, "notatar.gz", b"\x1f\x8bnot really gzip");
        write(d, "text.tar", b"just text");
    });
    let root = f.ctx.root();
    assert_eq!(
        detect_archive(root, Path::new("plain.bin")).unwrap(),
        Some(ArchiveKind::Tar)
    );
    assert_eq!(
        detect_archive(root, Path::new("archive.tgz.renamed")).unwrap(),
        Some(ArchiveKind::Gzip)
    );
    assert_eq!(
        detect_archive(root, Path::new("a.zst")).unwrap(),
        Some(ArchiveKind::Zstd)
    );
    assert_eq!(detect_archive(root, Path::new("notatar.gz")).unwrap(), None);
    assert_eq!(detect_archive(root, Path::new("text.tar")).unwrap(), None);

    let ex = RecordingExtractor(Default::default());
    let hasher = CachingHasher::new(StatCache::new());
    let src = ContextSource::new(f.ctx.root(), &f.index, &hasher);
    let mut req = CopyRequest::new(&["archive.tgz.renamed", "text.tar"], "/add");
    req.is_add = true;
    let sel = select(&src, &req).unwrap();
    let opts = ApplyOptions {
        extractor: Some(&ex),
        ..Default::default()
    };
    let out = apply(&src, &sel, &req, &f.dest, &opts).unwrap();
    assert_eq!(
        *ex.0.lock().unwrap(),
        raw,
        "the extractor gets the decompressed tar"
    );
    assert!(f.exists("add/extracted"));
    assert_eq!(f.read("add/text.tar"), "just text");
    assert_eq!(paths(&out), ["add", "add/extracted", "add/text.tar"]);
    // COPY never extracts.
    req.is_add = false;
    req.dest = "/copy/".into();
    let sel = select(&src, &req).unwrap();
    assert!(sel.items.iter().all(|i| i.archive.is_none()));
    req.sources = vec!["https://example.invalid/x.tar".into()];
    assert!(matches!(
        select(&src, &req),
        Err(CopyError::UrlNotSupported(_))
    ));
}

#[test]
fn checksum_verification() {
    let good = format!("sha256:{}", Sha256Digest::of(b"data").hex());
    verify_checksum("x", &good, &mut &b"data"[..]).unwrap();
    let err = verify_checksum("x", &good, &mut &b"other"[..]).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch for x"), "{err}");
    assert!(verify_checksum("x", "md5:abc", &mut &b"data"[..]).is_err());
}

#[test]
fn add_decompresses_bzip2_and_xz() {
    use std::io::{Read, Write};
    // Big enough that the xz decoder thread fills the pipe more than once.
    let mut raw = tar_bytes();
    raw.extend(std::iter::repeat_n(0u8, 200 * 1024));
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&raw).unwrap();
    let bz = bz.finish().unwrap();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &raw[..], &mut xz).unwrap();
    let truncated = xz[..xz.len() - 20].to_vec();
    let f = fixture(|d| {
        write(d, "a.tar.bz2", &bz);
        write(d, "a.tar.xz", &xz);
        write(d, "cut.tar.xz", &truncated);
        write(d, "bogus.bz2", b"BZh9 not bzip2 at all");
    });
    let root = f.ctx.root();
    for (name, kind) in [
        ("a.tar.bz2", ArchiveKind::Bzip2),
        ("a.tar.xz", ArchiveKind::Xz),
    ] {
        assert_eq!(detect_archive(root, Path::new(name)).unwrap(), Some(kind));
        let file = std::fs::File::open(f.ctx.root().path().join(name)).unwrap();
        let mut out = Vec::new();
        decompress(kind, file)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == raw, "{name} decompresses to the original tar");
    }
    assert_eq!(detect_archive(root, Path::new("bogus.bz2")).unwrap(), None);
    // A truncated xz stream is an error at its end, not a short tar.
    let file = std::fs::File::open(f.ctx.root().path().join("cut.tar.xz")).unwrap();
    let mut out = Vec::new();
    let err = decompress(ArchiveKind::Xz, file)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err();
    assert!(!err.to_string().is_empty());

    let ex = RecordingExtractor(Default::default());
    let hasher = CachingHasher::new(StatCache::new());
    let src = ContextSource::new(f.ctx.root(), &f.index, &hasher);
    let mut req = CopyRequest::new(&["a.tar.xz"], "/x/");
    req.is_add = true;
    let sel = select(&src, &req).unwrap();
    let opts = ApplyOptions {
        extractor: Some(&ex),
        ..Default::default()
    };
    apply(&src, &sel, &req, &f.dest, &opts).unwrap();
    assert!(*ex.0.lock().unwrap() == raw, "the extractor gets the tar");
}
