//! Small per-step costs: cache key computation and Dockerfile word expansion.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_builder_core::testing::internals::{CacheKey, KeyBuilder, Network, Op, RunOp, step_key};
use kiln_dockerfile_parser::shell::Expander;

fn keys(c: &mut Criterion) {
    let parent = CacheKey([7; 32]);
    let mut group = c.benchmark_group("cache_key");
    group.bench_function("key_builder_10_fields", |b| {
        b.iter(|| {
            let mut k = KeyBuilder::new("run", Some(black_box(&parent)));
            k.list(
                "argv",
                &["/bin/sh", "-c", "apt-get update && apt-get install -y curl"],
            )
            .list("env", &["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root"])
            .str("user", "")
            .str("cwd", "/app")
            .opt("platform", Some("linux/amd64"));
            k.finish()
        })
    });
    let run = Op::Run(RunOp {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            "cargo build --release --locked && strip target/release/app".into(),
        ],
        env: (0..12)
            .map(|i| {
                (
                    format!("VAR_{i:02}"),
                    format!("value-{i}-{}", "x".repeat(i * 4)),
                )
            })
            .collect(),
        env_not_cached: BTreeSet::from(["HTTP_PROXY".to_string()]),
        user: "1000:1000".into(),
        cwd: "/src".into(),
        network: Network::None,
        mounts: Vec::new(),
        inline: Vec::new(),
        insecure: false,
        settings: Default::default(),
    });
    let sources = BTreeMap::new();
    group.bench_function("step_key_run_12_env", |b| {
        b.iter(|| step_key(black_box(&run), &parent, None, &sources))
    });
    group.finish();
}

fn expand(c: &mut Criterion) {
    let env: HashMap<String, String> = [
        ("HOME", "/root"),
        ("APP", "kiln"),
        ("VERSION", "1.2.3"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let lookup = |k: &str| env.get(k).cloned();
    let words = [
        "/opt/${APP}/bin",
        "$HOME/.cache/${APP:-app}-${VERSION}",
        "\"${APP} ${VERSION}\" 'literal $HOME' ${UNSET:-fallback} ${APP:+set}",
        "PATH=/opt/$APP/bin:$PATH",
        "plain-word-without-variables",
    ];
    let bytes: usize = words.iter().map(|w| w.len()).sum();
    let ex = Expander::default();
    let mut group = c.benchmark_group("expand");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("expand_5_words", |b| {
        b.iter(|| {
            for w in &words {
                black_box(ex.expand(black_box(w), &lookup).expect("expands"));
            }
        })
    });
    group.bench_function("expand_words_5_words", |b| {
        b.iter(|| {
            for w in &words {
                black_box(ex.expand_words(black_box(w), &lookup).expect("expands"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, keys, expand);
criterion_main!(benches);
