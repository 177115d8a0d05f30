//! Parser throughput: a 1 MB and a 10 MB synthetic Dockerfile (to check linearity) and the corpus,
//! with `parse` (one block per instruction) and `parse_typed` (the typed layer of boxed nodes it
//! replaced, the tests' reference; `_typed` in the name).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::dockerfiles::synthetic;
use kiln_dockerfile_parser::{parse, parse_typed};

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dockerfiles/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, size) in [("synthetic_1mb", 1 << 20), ("synthetic_10mb", 10 << 20)] {
        let src = synthetic(size);
        assert!(parse(&src).is_ok(), "synthetic input must parse");
        group.throughput(Throughput::Bytes(src.len() as u64));
        if size > 1 << 20 {
            group.sample_size(10);
        }
        group.bench_function(name, |b| b.iter(|| parse(black_box(&src))));
        group.bench_function(format!("{name}_typed"), |b| {
            b.iter(|| parse_typed(black_box(&src)))
        });
    }
    let files = corpus();
    let total: usize = files.iter().map(String::len).sum();
    if total > 0 {
        group.sample_size(50);
        group.throughput(Throughput::Bytes(total as u64));
        group.bench_function("corpus", |b| {
            b.iter(|| {
                for f in &files {
                    let _ = black_box(parse(black_box(f)));
                }
            })
        });
        group.bench_function("corpus_typed", |b| {
            b.iter(|| {
                for f in &files {
                    let _ = black_box(parse_typed(black_box(f)));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
