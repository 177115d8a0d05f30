//! Parser throughput: a 1 MB and a 10 MB synthetic Dockerfile (to check linearity) and the corpus,
//! with `parse` (the AST) and `block::parse_blocks` (one block per instruction, the prototype of
//! the compact AST; `_blocks` in the name).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::dockerfiles::synthetic;
use kiln_dockerfile_parser::block::parse_blocks;
use kiln_dockerfile_parser::{Text, parse};

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
        // The source copied into a `Text` in the loop, as `parse(&str)` does.
        group.bench_function(format!("{name}_blocks"), |b| {
            b.iter(|| parse_blocks(&Text::from(black_box(src.as_str()))))
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
        group.bench_function("corpus_blocks", |b| {
            b.iter(|| {
                for f in &files {
                    let _ = black_box(parse_blocks(&Text::from(black_box(f.as_str()))));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
