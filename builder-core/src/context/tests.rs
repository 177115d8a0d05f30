//! Walk, hash and stat-cache tests over temporary contexts.

use super::*;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

fn write(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn paths(index: &ContextIndex) -> Vec<String> {
    index
        .iter()
        .map(|e| e.path.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn walk_applies_dockerignore_and_keeps_reincluded_children() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "Dockerfile", b"FROM scratch");
    write(
        d,
        ".dockerignore",
        b"node_modules\ndocs\n!docs/keep.md\n*.log\nDockerfile\n",
    );
    write(d, "node_modules/x/y.js", b"1");
    write(d, "docs/a.md", b"2");
    write(d, "docs/keep.md", b"3");
    write(d, "docs/sub/deep.md", b"4");
    write(d, "app.log", b"5");
    write(d, "src/main.rs", b"6");
    write(d, "src/a.b", b"7");
    let ctx = BuildContext::open(d, None).unwrap();
    let index = ctx.walk().unwrap();
    assert_eq!(
        paths(&index),
        [
            "",
            ".dockerignore",
            "docs",
            "docs/keep.md",
            "src",
            "src/a.b",
            "src/main.rs"
        ]
    );
    let kids: Vec<_> = index
        .children(Path::new("src"))
        .map(|e| e.path.clone())
        .collect();
    assert_eq!(
        kids,
        [PathBuf::from("src/a.b"), PathBuf::from("src/main.rs")]
    );
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, ".dockerignore", b"a\n");
    write(d, "build/app.Dockerfile", b"FROM scratch");
    write(d, "build/app.Dockerfile.dockerignore", b"b\n");
    write(d, "a", b"");
    write(d, "b", b"");
    let ctx = BuildContext::open(d, Some(&d.join("build/app.Dockerfile"))).unwrap();
    let index = ctx.walk().unwrap();
    assert!(index.get(Path::new("a")).is_some());
    assert!(index.get(Path::new("b")).is_none());
    let ctx = BuildContext::open(d, Some(&d.join("Dockerfile"))).unwrap();
    let index = ctx.walk().unwrap();
    assert!(index.get(Path::new("a")).is_none());
    assert!(index.get(Path::new("b")).is_some());
}

#[test]
fn invalid_ignore_pattern_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".dockerignore", b"ok\n\n[\n");
    let err = BuildContext::open(dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(".dockerignore:3: invalid pattern \"[\""),
        "{err}"
    );
}

#[test]
fn symlinks_are_recorded_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret/file", b"host secret");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    symlink(outside.path().join("secret"), d.join("abs")).unwrap();
    symlink("../../../../../../", d.join("up")).unwrap();
    symlink("/etc", d.join("evil")).unwrap();
    let index = BuildContext::open(d, None).unwrap().walk().unwrap();
    assert_eq!(paths(&index), ["", "abs", "evil", "up"]);
    let evil = index.get(Path::new("evil")).unwrap();
    assert_eq!(evil.kind, EntryKind::Symlink);
    assert_eq!(evil.link_target.as_deref(), Some(Path::new("/etc")));
    // Hashing through a link is refused rather than followed.
    let root = Root::open(d).unwrap();
    assert!(hash_file(&root, Path::new("abs/file")).is_err());
    assert!(hash_file(&root, Path::new("evil")).is_err());
}

#[test]
fn caching_hasher_reads_only_changed_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "a", b"one");
    write(d, "b", b"two");
    // Age the files past the racy window so their digests are cacheable.
    std::thread::sleep(hash::RACY_WINDOW + std::time::Duration::from_millis(20));
    let root = Root::open(d).unwrap();
    let index = walk(&root, &IgnoreMatcher::empty()).unwrap();
    let files: Vec<&Entry> = index.iter().filter(|e| e.kind == EntryKind::File).collect();
    let hasher = CachingHasher::new(StatCache::new());
    let first = hash_all(&root, &hasher, &files, 2).unwrap();
    assert_eq!(first[0], ContentDigest::of(b"one"));
    assert_eq!(first[1], ContentDigest::of(b"two"));
    assert_eq!(hasher.files_read(), 2);

    let cache_file = d.join("cache/ctx.statcache");
    hasher.into_cache().save(&cache_file).unwrap();
    let loaded = StatCache::load(&cache_file);
    assert_eq!(loaded.len(), 2);

    write(d, "b", b"changed");
    let index = walk(&root, &IgnoreMatcher::empty()).unwrap();
    let files: Vec<&Entry> = index
        .iter()
        .filter(|e| e.kind == EntryKind::File && !e.path.starts_with("cache"))
        .collect();
    let hasher = CachingHasher::new(loaded);
    let second = hash_all(&root, &hasher, &files, 1).unwrap();
    assert_eq!(second[0], first[0]);
    assert_eq!(second[1], ContentDigest::of(b"changed"));
    assert_eq!(hasher.files_read(), 1, "only the changed file is read");
}

#[test]
fn stat_cache_saved_for_an_index_keeps_what_the_walk_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("ctx");
    write(&d, "a", b"one");
    write(&d, "sub/b", b"two");
    write(&d, "gone", b"three");
    std::thread::sleep(hash::RACY_WINDOW + std::time::Duration::from_millis(20));
    let ctx = BuildContext::open(&d, None).unwrap();
    let cache_file = dir.path().join("statcache");
    // First build: everything read, saved for the index.
    let index = ctx.walk_cached(&StatCache::new()).unwrap();
    let files: Vec<&Entry> = index.iter().filter(|e| e.kind == EntryKind::File).collect();
    let hasher = CachingHasher::new(StatCache::new());
    hash_all(ctx.root(), &hasher, &files, 1).unwrap();
    hasher.into_cache().save_for(&cache_file, &index).unwrap();
    let first = StatCache::load(&cache_file);
    assert_eq!(first.len(), 3);

    // Second build: one file gone, one changed. The walk finds the unchanged digest, the
    // loaded cache is dropped, and saving writes back what the walk found with what was read.
    std::fs::remove_file(d.join("gone")).unwrap();
    write(&d, "sub/b", b"changed");
    let index = ctx.walk_cached(&StatCache::load(&cache_file)).unwrap();
    assert_eq!(
        index.get(Path::new("a")).unwrap().digest.get().copied(),
        Some(ContentDigest::of(b"one"))
    );
    assert_eq!(index.get(Path::new("sub/b")).unwrap().digest.get(), None);
    let files: Vec<&Entry> = index.iter().filter(|e| e.kind == EntryKind::File).collect();
    let hasher = CachingHasher::new(StatCache::new());
    let digests = hash_all(ctx.root(), &hasher, &files, 1).unwrap();
    assert_eq!(digests[1], ContentDigest::of(b"changed"));
    assert_eq!(hasher.files_read(), 1);
    // Too fresh to be cached: only "a" is recorded.
    hasher.into_cache().save_for(&cache_file, &index).unwrap();
    let second = StatCache::load(&cache_file);
    assert_eq!(second.len(), 1);
    let a = index.get(Path::new("a")).unwrap();
    assert_eq!(
        second.known(Path::new("a"), &StatKey::of(a)),
        first.known(Path::new("a"), &StatKey::of(a))
    );
}

/// A stat key for caches written and read back without a real file.
fn sample_key() -> StatKey {
    StatKey {
        size: 1,
        mtime: (1, 2),
        ctime: (3, 4),
        ino: 5,
        mode: 0o644,
    }
}

#[test]
fn damaged_stat_cache_loads_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = StatCache::new();
    let key = sample_key();
    cache.insert(PathBuf::from("x/y"), key, ContentDigest::of(b"x"));
    let p = dir.path().join("c");
    cache.save(&p).unwrap();
    assert_eq!(StatCache::load(&p), cache);
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&p, &bytes).unwrap();
    assert!(StatCache::load(&p).is_empty());
    std::fs::write(&p, &bytes[..10]).unwrap();
    assert!(StatCache::load(&p).is_empty());
    assert!(StatCache::load(&dir.path().join("missing")).is_empty());
}

#[test]
fn content_digests_are_blake3_of_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Several read buffers long, not a multiple of one, so every read and the tail count.
    let mut bytes: Vec<u8> = (0..(1u32 << 20) + 4099)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    write(d, "big", &bytes);
    let root = Root::open(d).unwrap();
    let digest = hash_file(&root, Path::new("big")).unwrap();
    assert_eq!(digest.0, *blake3::hash(&bytes).as_bytes());
    assert_eq!(digest, ContentDigest::of(&bytes));
    assert!(digest.to_string().starts_with("blake3:"));
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    write(d, "big", &bytes);
    assert_ne!(hash_file(&root, Path::new("big")).unwrap(), digest);
}

#[test]
fn halves_hashed_apart_give_the_one_pass_digest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for size in [1025usize, 2048, 3 * 1024 + 1, (1 << 20) + 4099, 5 << 20] {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
        write(d, "f", &bytes);
        let file = std::fs::File::open(d.join("f")).unwrap();
        let got = hash::hash_halves(&file, size as u64).unwrap();
        assert_eq!(got, Some(ContentDigest::of(&bytes)), "{size} bytes");
        // A file shorter or longer than announced is left to the one-pass hash.
        assert_eq!(hash::hash_halves(&file, size as u64 + 1).unwrap(), None);
        assert_eq!(hash::hash_halves(&file, size as u64 - 1).unwrap(), None);
    }
    let file = std::fs::File::open(d.join("f")).unwrap();
    assert_eq!(hash::hash_halves(&file, 1024).unwrap(), None);
}

#[test]
fn a_stat_cache_of_sha256_digests_loads_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = StatCache::new();
    let key = sample_key();
    cache.insert(PathBuf::from("x"), key, ContentDigest::of(b"x"));
    let mut bytes = cache.encode();
    // The same records under version 2's magic, checksum redone: still refused.
    bytes.truncate(bytes.len() - 32);
    bytes[..8].copy_from_slice(b"KILNSTC2");
    let sum: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&bytes).into();
    bytes.extend_from_slice(&sum);
    let p = dir.path().join("c");
    std::fs::write(&p, &bytes).unwrap();
    assert!(StatCache::load(&p).is_empty());
}

/// Context hashing of 10,000 files × 3 KiB (30 MB), cold and with a warm stat cache.
/// Run: `cargo test -p kiln-builder-core --release --lib context::tests::bench_ -- --ignored --nocapture`
#[test]
#[ignore = "timing; run explicitly"]
fn bench_context_hashing_10k_files() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = vec![b'x'; 3 * 1024];
    for i in 0..10_000 {
        let rel = format!("d{:02}/f{:05}", i % 100, i);
        let p = d.join(&rel);
        if i < 100 {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        }
        let mut content = data.clone();
        content[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(p, content).unwrap();
    }
    std::thread::sleep(hash::RACY_WINDOW);
    let root = Root::open(d).unwrap();
    let cache_file = tempfile::tempdir().unwrap();
    let cache_path = cache_file.path().join("ctx.statcache");
    for threads in [1, 2] {
        let t = Instant::now();
        let index = walk(&root, &IgnoreMatcher::empty()).unwrap();
        let walked = t.elapsed();
        let files: Vec<&Entry> = index.iter().filter(|e| e.kind == EntryKind::File).collect();
        let hasher = CachingHasher::new(StatCache::new());
        hash_all(&root, &hasher, &files, threads).unwrap();
        let cold = t.elapsed();
        hasher.into_cache().save(&cache_path).unwrap();
        let t = Instant::now();
        let index = walk(&root, &IgnoreMatcher::empty()).unwrap();
        let files: Vec<&Entry> = index.iter().filter(|e| e.kind == EntryKind::File).collect();
        let hasher = CachingHasher::new(StatCache::load(&cache_path));
        hash_all(&root, &hasher, &files, threads).unwrap();
        let warm = t.elapsed();
        assert_eq!(hasher.files_read(), 0);
        println!(
            "threads={threads}: walk {walked:?}, cold walk+hash {cold:?}, warm walk+load+lookup {warm:?} ({} files)",
            files.len()
        );
    }
}

#[test]
fn stat_cache_skips_xattr_listing_only_while_the_stat_key_holds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "a.txt", b"a");
    write(d, "b.txt", b"b");
    // Outside the racy window, so the digests are cached.
    std::thread::sleep(std::time::Duration::from_millis(150));
    let ctx = BuildContext::open(d, None).unwrap();
    let hasher = CachingHasher::new(StatCache::new());
    let index = hasher.with_cache(|c| ctx.walk_cached(c)).unwrap();
    for e in index.iter().filter(|e| e.kind == EntryKind::File) {
        hasher.digest(ctx.root(), e).unwrap();
    }
    let cache = hasher.into_cache();
    let a = index.get(Path::new("a.txt")).unwrap();
    assert!(cache.is_plain(Path::new("a.txt"), &StatKey::of(a)));
    let bytes = cache.encode();
    let dir2 = tempfile::tempdir().unwrap();
    cache.save(&dir2.path().join("c")).unwrap();
    let loaded = StatCache::load(&dir2.path().join("c"));
    assert_eq!(loaded, cache, "plain flags survive a save");
    assert_eq!(loaded.encode(), bytes);

    // Adding an xattr changes ctime, so the walk lists it again.
    let path = d.join("a.txt");
    match rustix::fs::setxattr(&path, "user.kiln", b"1", rustix::fs::XattrFlags::empty()) {
        Ok(()) => {
            let index = ctx.walk_cached(&loaded).unwrap();
            let a = index.get(Path::new("a.txt")).unwrap();
            assert!(!loaded.is_plain(Path::new("a.txt"), &StatKey::of(a)));
            assert_eq!(a.xattrs.as_ref().unwrap().len(), 1);
            let b = index.get(Path::new("b.txt")).unwrap();
            assert!(loaded.is_plain(Path::new("b.txt"), &StatKey::of(b)));
        }
        // A filesystem without user xattrs: nothing more to check.
        Err(rustix::io::Errno::NOTSUP) | Err(rustix::io::Errno::PERM) => {}
        Err(e) => panic!("setxattr: {e}"),
    }
}

#[test]
fn parallel_walk_is_in_path_order_and_answers_lookups() {
    // Names that sort differently byte-wise and component-wise (`a/x` < `a.b` < `a0`), spread
    // over enough directories that several threads list them.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut want = vec![String::new()];
    for top in ["a", "a.b", "a-b", "a0", "b"] {
        for sub in ["x", "x.y", "x-y"] {
            for f in ["f", "f.txt", "g"] {
                write(d, &format!("{top}/{sub}/{f}"), f.as_bytes());
                want.push(format!("{top}/{sub}/{f}"));
            }
            want.push(format!("{top}/{sub}"));
        }
        want.push(top.to_string());
    }
    write(d, "a.txt", b"");
    want.push("a.txt".into());
    want.sort_by(|x, y| Path::new(x).cmp(Path::new(y)));
    let index = BuildContext::open(d, None).unwrap().walk().unwrap();
    assert_eq!(paths(&index), want);
    for p in &want {
        assert_eq!(index.get(Path::new(p)).unwrap().path, PathBuf::from(p));
        let below: Vec<_> = index
            .descendants(Path::new(p))
            .map(|e| e.path.to_string_lossy().into_owned())
            .collect();
        let expect: Vec<_> = want
            .iter()
            .filter(|q| *q != p && Path::new(q).starts_with(p))
            .cloned()
            .collect();
        assert_eq!(below, expect, "below {p:?}");
        let kids: Vec<_> = index
            .children(Path::new(p))
            .map(|e| e.path.to_string_lossy().into_owned())
            .collect();
        let depth = Path::new(p).components().count() + 1;
        let expect: Vec<_> = expect
            .into_iter()
            .filter(|q| Path::new(q).components().count() == depth)
            .collect();
        assert_eq!(kids, expect, "children of {p:?}");
    }
    // Spellings `Path` treats as the same path find the same entry.
    assert!(index.get(Path::new("a/x/")).is_some());
    assert!(index.get(Path::new("./a//x")).is_some());
    assert_eq!(index.children(Path::new("a/")).count(), 3);
    assert!(index.get(Path::new("a/nope")).is_none());
    assert_eq!(index.descendants(Path::new("nope")).count(), 0);
}

proptest::proptest! {
    #[test]
    fn byte_order_of_clean_paths_is_path_order(
        a in proptest::collection::vec("[a./_-]{1,3}", 1..4),
        b in proptest::collection::vec("[a./_-]{1,3}", 1..4),
    ) {
        let clean = |v: &Vec<String>| {
            v.iter()
                .map(|c| c.replace('/', "_"))
                .filter(|c| c != "." && c != "..")
                .collect::<Vec<_>>()
                .join("/")
        };
        let (a, b) = (clean(&a), clean(&b));
        proptest::prop_assert_eq!(
            index::cmp_paths(a.as_bytes(), b.as_bytes()),
            Path::new(&a).cmp(Path::new(&b))
        );
    }
}
