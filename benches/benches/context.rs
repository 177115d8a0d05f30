//! Build-context work: `.dockerignore` matching on 100,000 paths, and the walk + sha256 of a
//! 10,000-file context (the shape of scenario S1) and of a 100,000-file one (S6) without a stat
//! cache and with a warm one.
//!
//! "cold" means no stat cache (every file is read and hashed); the page cache is warm in both,
//! as it is on a developer's machine rebuilding the same tree.

use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::trees::{DOCKERIGNORE, context_paths, small_files};
use kiln_builder_core::testing::internals::{
    CachingHasher, DirectHasher, EntryKind, FileHasher, IgnoreMatcher, Root, StatCache, hash_all,
    walk,
};

fn ignore(c: &mut Criterion) {
    let paths = context_paths(100_000);
    let matcher = IgnoreMatcher::from_strings(Path::new(".dockerignore"), DOCKERIGNORE)
        .expect("the bench patterns parse");
    let bytes: usize = paths.iter().map(String::len).sum();
    let mut group = c.benchmark_group("dockerignore");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("match_100k_paths", |b| {
        b.iter(|| {
            paths
                .iter()
                .filter(|p| matcher.matches(black_box(p)))
                .count()
        })
    });
    group.finish();
}

fn hash_context(root: &Root, hasher: &dyn FileHasher, threads: usize) -> usize {
    let index = walk(root, &IgnoreMatcher::empty()).expect("walk the bench context");
    let files: Vec<_> = index.iter().filter(|e| e.kind == EntryKind::File).collect();
    hash_all(root, hasher, &files, threads)
        .expect("hash the bench context")
        .len()
}

fn context(c: &mut Criterion) {
    context_of(c, "context_10k", 10_000, 2048, 4096);
    context_of(c, "context_100k", 100_000, 64, 1024);
}

fn context_of(c: &mut Criterion, name: &str, files: usize, min: u64, max: u64) {
    let (dir, bytes) = small_files(files, min, max);
    let root = Root::open(&dir).expect("open the bench context");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("walk", |b| {
        b.iter(|| walk(&root, &IgnoreMatcher::empty()).map(|i| i.len()))
    });
    group.bench_function("walk_hash_cold", |b| {
        b.iter(|| hash_context(&root, &DirectHasher, threads))
    });
    let warm = {
        let h = CachingHasher::new(StatCache::new());
        hash_context(&root, &h, threads);
        h.into_cache()
    };
    assert!(
        warm.len() >= files,
        "every bench file is old enough to cache"
    );
    group.bench_function("walk_hash_warm_stat_cache", |b| {
        b.iter_batched(
            || CachingHasher::new(warm.clone()),
            |h| {
                let n = hash_context(&root, &h, threads);
                assert_eq!(h.files_read(), 0);
                n
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("stat_cache_encode_load", |b| b.iter(|| warm.encode().len()));
    group.finish();
}

criterion_group!(benches, ignore, context);
criterion_main!(benches);
