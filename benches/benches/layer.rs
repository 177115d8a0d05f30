//! Layer writing of a 256 MiB mixed tree: the deterministic tar writer alone, tar + sha256 (the
//! diff_id pass), and gzip (parallel, byte-identical for any thread count) and zstd -3 of the
//! same tar bytes; extraction of that layer into an empty directory. The physical-limit
//! references run in the same group on the same bytes: GNU `gzip -1`, the `zstd -3` command
//! line tool and `sha256sum`, when they are installed (they read the tar from a file in the
//! page cache and write to /dev/null).

use std::io::{self, Write};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::trees::mixed_256m;
use kiln_builder_core::testing::internals::{
    ApplyOptions, LayerOptions, Root, WhiteoutStyle, apply_layer, gzip_parallel, write_tree,
};
use sha2::{Digest as _, Sha256};

/// A writer that only hashes, as the store writer does besides writing.
struct HashSink(Sha256);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn layer(c: &mut Criterion) {
    let (dir, _) = mixed_256m();
    let root = Root::open(&dir).expect("open the bench tree");
    let opts = LayerOptions::default();
    let (tar, _) = write_tree(&root, &opts, Vec::new()).expect("write the bench layer");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let mut group = c.benchmark_group("layer_256m");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(tar.len() as u64));
    group.bench_function("tar", |b| {
        b.iter(|| write_tree(&root, &opts, io::sink()).expect("write").1)
    });
    group.bench_function("tar_sha256", |b| {
        b.iter(|| {
            let (h, _) = write_tree(&root, &opts, HashSink(Sha256::new())).expect("write");
            h.0.finalize()
        })
    });
    group.bench_function(format!("gzip_parallel_{threads}_threads"), |b| {
        b.iter(|| gzip_parallel(&tar[..], io::sink(), threads).expect("gzip"))
    });
    group.bench_function("gzip_parallel_1_thread", |b| {
        b.iter(|| gzip_parallel(&tar[..], io::sink(), 1).expect("gzip"))
    });
    group.bench_function("zstd_3", |b| {
        b.iter(|| {
            let mut enc = zstd::stream::write::Encoder::new(io::sink(), 3).expect("zstd");
            enc.write_all(&tar).expect("zstd");
            enc.finish().expect("zstd")
        })
    });
    let scratch = kiln_benches::trees::data_dir().join("extract");
    group.bench_function("extract", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_dir_all(&scratch);
                std::fs::create_dir_all(&scratch).expect("create the extraction directory");
                Root::open(&scratch).expect("open the extraction directory")
            },
            |dest| {
                apply_layer(
                    &dest,
                    &tar[..],
                    WhiteoutStyle::Apply,
                    &ApplyOptions::default(),
                )
                .expect("extract")
            },
            criterion::BatchSize::PerIteration,
        )
    });
    let _ = std::fs::remove_dir_all(&scratch);

    // The same bytes through the usual command line tools: what "fast" is measured against.
    let tar_file = kiln_benches::trees::data_dir().join("layer_256m.tar");
    std::fs::write(&tar_file, &tar).expect("write the reference tar");
    for (name, tool, args) in [
        ("reference_gnu_gzip_1", "gzip", &["-1", "-c"][..]),
        (
            "reference_zstd_cli_3",
            "zstd",
            &["-3", "-q", "-c", "-T1"][..],
        ),
        ("reference_sha256sum", "sha256sum", &[][..]),
    ] {
        if !tool_exists(tool) {
            eprintln!("{name}: `{tool}` is not installed, skipped");
            continue;
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                let status = std::process::Command::new(tool)
                    .args(args)
                    .arg(&tar_file)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("run the reference tool");
                assert!(status.success(), "{tool} failed");
            })
        });
    }
    group.finish();
}

fn tool_exists(name: &str) -> bool {
    std::process::Command::new(name)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

criterion_group!(benches, layer);
criterion_main!(benches);
