//! Layer writer and applier tests: determinism, tar format details, confinement and whiteouts.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use super::tarfmt::{BLOCK, EntryHeader, Kind, padding};
use super::*;
use crate::changes::{Change, WhiteoutStyle};

fn set_mtime(p: &Path, secs: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A tree with every entry type; `reverse` creates it in a different order.
fn make_tree(dir: &Path, reverse: bool) {
    let mut steps: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| fs::create_dir_all(dir.join("usr/bin")).unwrap()),
        Box::new(|| {
            fs::write(dir.join("usr/bin/su"), b"#!/bin/true\n").unwrap();
            fs::set_permissions(dir.join("usr/bin/su"), fs::Permissions::from_mode(0o4755))
                .unwrap();
        }),
        Box::new(|| fs::write(dir.join("big"), vec![7u8; 70_000]).unwrap()),
        Box::new(|| {
            let long = dir.join("d".repeat(120));
            fs::create_dir_all(&long).unwrap();
            fs::write(long.join("f".repeat(110)), b"long").unwrap();
        }),
        Box::new(|| symlink("/etc/passwd", dir.join("abs-link")).unwrap()),
        Box::new(|| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                dir.join("fifo"),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap()
        }),
    ];
    if reverse {
        steps.reverse();
        // Parents must exist first.
        fs::create_dir_all(dir.join("usr/bin")).unwrap();
    }
    for s in &steps {
        s();
    }
    fs::hard_link(dir.join("usr/bin/su"), dir.join("usr/bin/su2")).unwrap();
    if is_root() {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        std::os::unix::fs::lchown(dir.join("big"), Some(1000), Some(1000)).unwrap();
    }
    let _ = rustix::fs::setxattr(
        dir.join("big"),
        "user.kiln",
        b"v",
        rustix::fs::XattrFlags::empty(),
    );
    for e in walkdir::WalkDir::new(dir).contents_first(true) {
        set_mtime(e.unwrap().path(), 1_600_000_000);
    }
}

fn tree_bytes(dir: &Path, opts: &LayerOptions) -> Vec<u8> {
    write_tree(&Root::open(dir).unwrap(), opts, Vec::new())
        .unwrap()
        .0
}

struct Listed {
    name: String,
    kind: tar::EntryType,
    link: Option<String>,
    mtime: u64,
    mode: u32,
    uname_empty: bool,
}

fn list(bytes: &[u8]) -> Vec<Listed> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            Listed {
                name: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                kind: h.entry_type(),
                link: e
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap()),
                mtime: h.mtime().unwrap(),
                mode: h.mode().unwrap(),
                uname_empty: h.username_bytes().is_none_or(|u| u.is_empty()),
            }
        })
        .collect()
}

#[test]
fn tree_layers_are_byte_identical_and_sorted() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    make_tree(a.path(), false);
    make_tree(b.path(), true);
    let opts = LayerOptions::default();
    let bytes = tree_bytes(a.path(), &opts);
    assert!(bytes == tree_bytes(a.path(), &opts));
    assert!(bytes == tree_bytes(b.path(), &opts), "creation order leaks");
    assert_eq!(bytes.len() % BLOCK, 0);

    let entries = list(&bytes);
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_by(|x, y| Path::new(x).cmp(Path::new(y)));
    assert_eq!(names, sorted);
    assert!(
        entries
            .iter()
            .all(|e| e.uname_empty && e.mtime == 1_600_000_000)
    );
    let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
    assert_eq!(get("usr/").kind, tar::EntryType::Directory);
    assert_eq!(get("usr/bin/su").mode, 0o4755);
    assert_eq!(get("usr/bin/su2").kind, tar::EntryType::Link);
    assert_eq!(get("usr/bin/su2").link.as_deref(), Some("usr/bin/su"));
    assert_eq!(get("abs-link").link.as_deref(), Some("/etc/passwd"));
    assert_eq!(get("fifo").kind, tar::EntryType::Fifo);
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(110));
    assert_eq!(get(&long).kind, tar::EntryType::Regular);
    if is_root() {
        assert_eq!(get("null").kind, tar::EntryType::Char);
    }

    let clamped = tree_bytes(
        a.path(),
        &LayerOptions {
            source_date_epoch: Some(1_500_000_000),
        },
    );
    assert!(list(&clamped).iter().all(|e| e.mtime == 1_500_000_000));
}

#[test]
fn whiteout_named_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("etc")).unwrap();
    fs::write(dir.path().join("etc/.wh.sneaky"), b"").unwrap();
    let err = write_tree(
        &Root::open(dir.path()).unwrap(),
        &LayerOptions::default(),
        Vec::new(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, LayerError::WhiteoutName { path } if path == Path::new("etc/.wh.sneaky")),
        "{err}"
    );
    assert!(err.to_string().contains("etc/.wh.sneaky"));
}

#[test]
fn changes_become_entries_whiteouts_and_parents() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("a/b")).unwrap();
    fs::create_dir_all(dir.path().join("opq")).unwrap();
    fs::write(dir.path().join("a/b/new"), b"x").unwrap();
    fs::write(dir.path().join("opq/kept"), b"y").unwrap();
    fs::write(dir.path().join("unchanged"), b"z").unwrap();
    let changes = vec![
        Change::Delete("a/gone".into()),
        Change::Upsert("a/b/new".into()),
        Change::Opaque("opq".into()),
        Change::Upsert("opq/kept".into()),
    ];
    let root = Root::open(dir.path()).unwrap();
    let (bytes, stats) =
        write_changes(&root, &changes, &LayerOptions::default(), Vec::new()).unwrap();
    let names: Vec<String> = list(&bytes).into_iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            "a/",
            "a/.wh.gone",
            "a/b/",
            "a/b/new",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/kept"
        ]
    );
    assert_eq!(stats.entries, 7);
}

#[test]
fn hostile_symlinks_in_the_source_are_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"host secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    symlink(outside.path(), dir.path().join("escape")).unwrap();
    let root = Root::open(dir.path()).unwrap();
    let (bytes, _) = write_tree(&root, &LayerOptions::default(), Vec::new()).unwrap();
    let entries = list(&bytes);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, tar::EntryType::Symlink);
    // Naming a path through the link resolves inside the root, where it does not exist.
    let err = write_changes(
        &root,
        &[Change::Upsert("escape/secret".into())],
        &LayerOptions::default(),
        Vec::new(),
    )
    .unwrap_err();
    assert!(!err.to_string().contains("host secret"));
}

#[test]
fn tree_round_trips_through_apply() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), false);
    let bytes = tree_bytes(src.path(), &LayerOptions::default());
    let dest = tempfile::tempdir().unwrap();
    let root = Root::open(dest.path()).unwrap();
    let stats = apply_layer(
        &root,
        &bytes[..],
        WhiteoutStyle::Apply,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert!(stats.entries >= 10, "{stats:?}");
    let again = tree_bytes(dest.path(), &LayerOptions::default());
    if again != bytes {
        let names = |b: &[u8]| {
            list(b)
                .into_iter()
                .map(|e| (e.name, e.mode, e.mtime))
                .collect::<Vec<_>>()
        };
        panic!("{:?}\n!=\n{:?}", names(&again), names(&bytes));
    }
    let su = fs::metadata(dest.path().join("usr/bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!(su.nlink(), 2);
    assert_eq!(
        fs::metadata(dest.path().join("usr")).unwrap().mtime(),
        1_600_000_000
    );
}

/// A raw tar built from hand-made headers, so names can be as hostile as we like.
pub(super) fn raw_tar(entries: &[(EntryHeader, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, data) in entries {
        let mut h = h.clone();
        h.size = data.len() as u64;
        h.write_to(&mut out).unwrap();
        out.extend_from_slice(data);
        out.extend_from_slice(&vec![0u8; padding(data.len() as u64)]);
    }
    out.extend_from_slice(&[0u8; 2 * BLOCK]);
    out
}

pub(super) fn hdr(name: &str, kind: Kind) -> EntryHeader {
    EntryHeader {
        name: name.as_bytes().to_vec(),
        kind,
        mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 1_000_000_000,
        link: Vec::new(),
        dev_major: 0,
        dev_minor: 0,
        xattrs: Vec::new(),
    }
}

pub(super) fn link(name: &str, kind: Kind, target: &str) -> EntryHeader {
    let mut h = hdr(name, kind);
    h.link = target.as_bytes().to_vec();
    h
}

#[test]
fn gzip_and_zstd_layers_are_detected() {
    let tar = raw_tar(&[(hdr("f", Kind::File), b"data")]);
    let gz = gzip_parallel(&tar[..], Vec::new(), 2).unwrap();
    let zst = zstd::encode_all(&tar[..], 1).unwrap();
    for (bytes, kind) in [
        (&tar, ArchiveCompression::None),
        (&gz, ArchiveCompression::Gzip),
        (&zst, ArchiveCompression::Zstd),
    ] {
        assert_eq!(detect_compression(bytes), kind);
        let dest = tempfile::tempdir().unwrap();
        let root = Root::open(dest.path()).unwrap();
        apply_layer(
            &root,
            &bytes[..],
            WhiteoutStyle::Apply,
            &ApplyOptions::default(),
        )
        .unwrap();
        assert_eq!(fs::read(dest.path().join("f")).unwrap(), b"data");
    }
    let dest = tempfile::tempdir().unwrap();
    let err = apply_layer(
        &Root::open(dest.path()).unwrap(),
        &b"BZh91AY&SY"[..],
        WhiteoutStyle::Apply,
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, LayerError::UnsupportedCompression("bzip2")),
        "{err}"
    );
}

#[test]
fn gzip_is_deterministic_across_thread_counts() {
    // Incompressible and compressible parts, not a multiple of the block size.
    let mut data = Vec::new();
    let mut x: u32 = 1;
    for i in 0..(GZIP_BLOCK * 3 + 12345) {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        data.push(if i % 3 == 0 {
            (x >> 24) as u8
        } else {
            b'a' + (i % 7) as u8
        });
    }
    let one = gzip_parallel(&data[..], Vec::new(), 1).unwrap();
    assert!(one == gzip_parallel(&data[..], Vec::new(), 2).unwrap());
    assert!(one == gzip_parallel(&data[..], Vec::new(), 5).unwrap());
    assert!(one.len() < data.len());
    let mut back = Vec::new();
    // A single gzip member: the plain (not multi-member) decoder reads it all.
    flate2::read::GzDecoder::new(&one[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == data, "gzip round trip");
    // Incompressible data is stored, not grown, and still round-trips.
    let random: Vec<u8> = (0..GZIP_BLOCK + 70_000)
        .map(|i| {
            x = x
                .wrapping_mul(1_664_525)
                .wrapping_add(1_013_904_223 ^ i as u32);
            (x >> 24) as u8
        })
        .collect();
    let gz = gzip_parallel(&random[..], Vec::new(), 2).unwrap();
    assert!(
        gz.len() < random.len() + random.len() / 1000,
        "{}",
        gz.len()
    );
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == random, "stored blocks round trip");
    let empty = gzip_parallel(&b""[..], Vec::new(), 2).unwrap();
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&empty[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back.is_empty());
    if let Ok(mut child) = std::process::Command::new("gzip")
        .args(["-t", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&one).unwrap();
        assert!(
            child.wait().unwrap().success(),
            "gzip -t rejects the output"
        );
    }
}

#[test]
fn compressed_layers_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::content::ContentStore::open(dir.path()).unwrap();
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), false);
    let (layer, _) = write_tree_to_store(
        &store,
        &Root::open(src.path()).unwrap(),
        &LayerOptions::default(),
    )
    .unwrap();
    let opts = CompressOptions::default();
    for c in [
        crate::image::Compression::Gzip,
        crate::image::Compression::Zstd,
    ] {
        assert!(lookup_compressed(&store, &layer.digest, c).is_none());
        let first = compress_layer(&store, &layer.digest, c, &opts).unwrap();
        assert_eq!(lookup_compressed(&store, &layer.digest, c), Some(first));
        let mtime = fs::metadata(store.blob_path(&first.digest))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            compress_layer(&store, &layer.digest, c, &opts).unwrap(),
            first
        );
        assert_eq!(
            fs::metadata(store.blob_path(&first.digest))
                .unwrap()
                .modified()
                .unwrap(),
            mtime
        );
        let mut back = Vec::new();
        decompress(store.open_verified(&first.digest).unwrap())
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(crate::content::Digest::of(&back), layer.digest);
    }
    // A corrupt source layer is not compressed into a blob.
    let path = store.blob_path(&layer.digest);
    let mut bytes = fs::read(&path).unwrap();
    bytes[600] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    fs::remove_dir_all(store.state_dir().join("compressed")).unwrap();
    let err = compress_layer(
        &store,
        &layer.digest,
        crate::image::Compression::Gzip,
        &opts,
    )
    .unwrap_err();
    assert!(
        matches!(&err, LayerError::Content(c) if c.is_corrupt()),
        "{err}"
    );
}

#[test]
fn a_file_that_is_no_tar_is_never_quoted() {
    let mut text = String::from("root:$6$SHADOWSECRET$abc:19000:0:99999:7:::\n");
    for i in 0..40 {
        text.push_str(&format!(
            "user{i}:$6$SHADOWSECRET{i}$x:19000:0:99999:7:::\n"
        ));
    }
    let dest = tempfile::tempdir().unwrap();
    let err = apply_layer(
        &Root::open(dest.path()).unwrap(),
        text.as_bytes(),
        WhiteoutStyle::Apply,
        &ApplyOptions::default(),
    )
    .unwrap_err();
    let shown = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(!shown.contains("SHADOWSECRET"), "{shown}");
    assert!(matches!(err, LayerError::Read(_)), "{err}");
}

#[test]
fn a_placeholder_written_from_its_source_gives_the_layer_of_the_real_file() {
    let real = tempfile::tempdir().unwrap();
    let holder = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..3 * BLOCK as u32 + 7).map(|i| (i % 251) as u8).collect();
    for dir in [real.path(), holder.path()] {
        fs::create_dir_all(dir.join("d")).unwrap();
        fs::write(dir.join("d/a.txt"), b"a").unwrap();
        set_mtime(&dir.join("d/a.txt"), 1_000);
    }
    fs::write(real.path().join("d/big"), &content).unwrap();
    // The placeholder: the size, no bytes.
    let placeholder = fs::File::create(holder.path().join("d/big")).unwrap();
    placeholder.set_len(content.len() as u64).unwrap();
    for dir in [real.path(), holder.path()] {
        set_mtime(&dir.join("d/big"), 2_000);
        set_mtime(&dir.join("d"), 3_000);
    }
    let source = fs::File::open(real.path().join("d/big")).unwrap();
    let st = fs::metadata(holder.path().join("d/big")).unwrap();
    let mut subst = Substitutes::default();
    subst.files.insert(
        "d/big".into(),
        (source, content.len() as u64, (st.dev(), st.ino())),
    );
    let opts = LayerOptions::default();
    let src = crate::fsroot::Root::open(holder.path()).unwrap();
    let (bytes, _) = write_tree_substituted(&src, &opts, Vec::new(), &mut subst).unwrap();
    assert_eq!(
        bytes,
        tree_bytes(real.path(), &opts),
        "the real file's layer"
    );
    assert!(subst.files.is_empty());
    let [(path, at, size)] = subst.placed.as_slice() else {
        panic!("one file placed: {:?}", subst.placed);
    };
    assert_eq!(path, Path::new("d/big"));
    assert_eq!(*size, content.len() as u64);
    assert_eq!(&bytes[*at as usize..(*at + *size) as usize], &content[..]);

    // A file of another inode at that path is written as it is.
    let other = fs::File::open(real.path().join("d/big")).unwrap();
    let mut subst = Substitutes::default();
    subst
        .files
        .insert("d/big".into(), (other, content.len() as u64, (0, 0)));
    let src = crate::fsroot::Root::open(real.path()).unwrap();
    let (bytes, _) = write_tree_substituted(&src, &opts, Vec::new(), &mut subst).unwrap();
    assert_eq!(bytes, tree_bytes(real.path(), &opts));
    assert!(subst.placed.is_empty());
}

#[test]
fn a_tree_written_and_applied_again() -> Result<(), Box<dyn std::error::Error>> {
    use crate::{content::ContentStore, fsroot::Root, layer};
    let src = tempfile::tempdir()?;
    std::fs::write(src.path().join("hello"), "hi\n")?;
    let store_dir = tempfile::tempdir()?;
    let store = ContentStore::open(store_dir.path())?;
    let (blob, _stats) =
        layer::write_tree_to_store(&store, &Root::open(src.path())?, &Default::default())?;
    let dest = tempfile::tempdir()?;
    layer::apply_layer(
        &Root::open(dest.path())?,
        store.open_verified(&blob.digest)?,
        crate::changes::WhiteoutStyle::Apply,
        &Default::default(),
    )?;
    assert_eq!(std::fs::read(dest.path().join("hello"))?, b"hi\n");
    Ok(())
}
